import CFloodgate
import FloodgateCore
import FloodgateLab
import Foundation
import Testing

/// SIP classification and the policy order, through BPF_PROG_TEST_RUN.
@Suite struct SIPClassificationTests {
    /// Runs one packet on a fresh program and returns (action, class, reason) as counted.
    func verdict(_ packet: [UInt8], policy: FilterPolicy = perSourceOnly) throws -> (UInt32, TrafficClass?, Reason?) {
        let program = try loadProgram(policy: policy)
        return try program.judge(packet)
    }

    @Test(arguments: [
        ("INVITE", TrafficClass.invite), ("REGISTER", .register), ("OPTIONS", .options),
        ("SUBSCRIBE", .otherRequest), ("NOTIFY", .otherRequest), ("MESSAGE", .otherRequest), ("INFO", .otherRequest),
        ("UPDATE", .otherRequest), ("PRACK", .otherRequest), ("REFER", .otherRequest), ("PUBLISH", .otherRequest),
        ("ACK", .inDialog), ("BYE", .inDialog), ("CANCEL", .inDialog),
    ])
    func eachMethodHasItsClass(method: String, expected: TrafficClass) throws {
        let (action, c, r) = try verdict(Packet.request(method))
        #expect(action == XDP_PASS_ACTION)
        #expect(c == expected)
        #expect(r == .passed)
    }

    @Test func methodsAreCaseSensitiveAndNeedTheirSpace() throws {
        #expect(try verdict(Packet.request("invite")).1 == .sipOther)
        #expect(try verdict(Packet.sipRaw(Array("INVITEsip:x SIP/2.0\r\n\r\n".utf8))).1 == .sipOther)
        #expect(try verdict(Packet.sipRaw(Array("REGISTERS sip:x SIP/2.0\r\n\r\n".utf8))).1 == .sipOther)
    }

    @Test func responsesNeedAStatusLine() throws {
        #expect(try verdict(Packet.sip(["SIP/2.0 200 OK", "CSeq: 1 INVITE"])).1 == .response)
        #expect(try verdict(Packet.sip(["SIP/2.0 401 Unauthorized"])).1 == .response)
        #expect(try verdict(Packet.sip(["SIP/2.0 699 Whatever"])).1 == .response)
        #expect(try verdict(Packet.sip(["SIP/2.0 700 Nope"])).1 == .sipOther)
        #expect(try verdict(Packet.sip(["SIP/2.0 20 OK"])).1 == .sipOther)
        #expect(try verdict(Packet.sip(["SIP/3.0 200 OK"])).1 == .sipOther)
    }

    @Test func malformedSIPHasADefinedVerdict() throws {
        // No CRLF at all: the request line still names the method.
        #expect(try verdict(Packet.sipRaw(Array("INVITE sip:100@198.18.0.2 SIP/2.0".utf8))).1 == .invite)
        // Binary garbage and an empty datagram are "anything else to a SIP port".
        let garbage = (0..<200).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
        #expect(try verdict(Packet.sipRaw(garbage)).1 == .sipOther)
        #expect(try verdict(Packet.sipRaw([])).1 == .sipOther)
        #expect(try verdict(Packet.sipRaw([0x0d, 0x0a])).1 == .keepalive)
        // A UDP length under 8 is not UDP.
        var bad = Packet.request("INVITE")
        bad[14 + 20 + 4] = 0
        bad[14 + 20 + 5] = 7
        let (action, c, r) = try verdict(bad)
        #expect(action == XDP_DROP_ACTION && c == .other && r == .droppedMalformed)
    }

    @Test func sipOverTCPSynIsCountedPerSource() throws {
        let program = try loadProgram(limits: [.sipSyn: .rate(1, burst: 3)], policy: perSourceOnly, testClock: true)
        let syn = Packet.ethernet(Packet.EtherType.ipv4, Packet.ipv4(proto: Packet.Proto.tcp, Packet.tcp(dport: 5061)))
        let verdicts = try (0..<5).map { _ in try program.judge(syn) }
        #expect(verdicts.map(\.1) == Array(repeating: .sipSyn, count: 5))
        #expect(verdicts.map(\.2) == [.passed, .passed, .passed, .droppedRate, .droppedRate])
    }

    /// Non-first fragments carry no ports: they share a bucket per source prefix (/24), not one per source and not
    /// one for the whole interface.
    @Test func fragmentsShareABucketPerSourcePrefix() throws {
        let program = try loadProgram(limits: [.fragment: .rate(1, burst: 4)], policy: perSourceOnly, testClock: true)
        func fragment(_ src: String) -> [UInt8] {
            Packet.ethernet(Packet.EtherType.ipv4,
                            Packet.ipv4(src: src, proto: Packet.Proto.udp, Packet.udp(dport: 5060), fragmentOffset: 100))
        }
        let reasons = try (0..<6).map { i in try program.judge(fragment("198.18.5.\(i + 9)")).2 }
        #expect(reasons == [.passed, .passed, .passed, .passed, .droppedRate, .droppedRate])
        #expect(try program.judge(fragment("198.18.6.9")).2 == .passed)
    }
}
