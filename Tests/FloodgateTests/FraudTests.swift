import CFloodgate
import FloodgateCore
import FloodgateLab
import Foundation
import Testing

/// Fraud thresholds (BPF/lib/destinations.h): new calls a minute to international and high-risk numbers, per
/// source and tier, and the block for new calls that crossing one earns. The program's clock stands still.
@Suite struct FraudTests {
    static func program(policy base: FilterPolicy = perSourceOnly,
                        thresholds: [DestinationRule.Tier: FraudPolicy.Thresholds] = [
                            .unverified: .init(international: 3, highRisk: 2)],
                        rules: [DestinationRule] = []) throws -> FloodgateProgram {
        var policy = base
        var settings = Settings.defaults
        settings.numbers = NumberPlan(countryCode: "44", international: ["00"], national: "0", bare: .e164)
        policy.destinations = Set(rules)
        policy.fraud = FraudPolicy(blockSeconds: 3600, thresholds: thresholds)
        return try loadProgram(limits: Limit.defaults.merging([.invite: .unlimited]) { $1 }, settings: settings,
                               policy: policy, testClock: true)
    }

    static func invite(_ number: String, callID: String, src: String = "198.18.1.1", to: String = "<sip:x@h>",
                       extra: String = "", ttl: UInt8 = 64) -> [UInt8] {
        Packet.sipRaw(Array(("INVITE sip:\(number)@198.18.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP \(src);branch=z9hG4bK-\(callID)\r\n"
            + "From: <sip:200@\(src)>;tag=f\r\nTo: \(to)\r\n\(extra)Call-ID: \(callID)\r\nCSeq: 1 INVITE\r\n\r\n").utf8),
            src: src, ttl: ttl)
    }

    /// International calls at 3 a minute: the fourth is the first refused, and from then on the source gets no
    /// new call, national ones included, while its registrations, its retransmissions and the re-INVITEs of its
    /// calls in progress go on. The event names the source and the block's end; an hour later it may call again.
    @Test func theCallThatCrossesAThresholdIsTheFirstRefusedAndBlocksNewCalls() throws {
        let program = try FraudTests.program()
        let events = try EventReader(program.maps)
        func call(_ number: String, _ id: String, to: String = "<sip:x@h>", extra: String = "") throws -> Reason? {
            try program.judge(FraudTests.invite(number, callID: id, to: to, extra: extra)).2
        }
        #expect(try call("0033123456789", "a") == .passed)
        #expect(try call("+12125550100", "b") == .passed)
        #expect(try call("02079460000", "n1") == .passed, "national: not counted")
        #expect(try call("004930123456", "c") == .passed)
        #expect(try call("0033123456789", "d") == .droppedFraud, "the fourth international call")
        let fraud = events.drain().filter { $0.kind == .fraud }
        #expect(fraud.count == 1 && fraud.first?.address.description == "198.18.1.1" && fraud.first?.fraudKind == "international"
                && fraud.first?.drops == 3, "\(fraud)")
        let blocks = try program.maps.fraudBlocks(now: 0)
        #expect(blocks.count == 1 && blocks.first?.kind == "international")

        #expect(try call("02079460000", "n2") == .droppedFraud, "no new call at all, national included")
        #expect(try call("0033123456789", "a") == .droppedFraud,
                "a late copy of a call's first INVITE too (the server has the first; the block comes first)")
        #expect(try call("0033123456789", "a", to: "<sip:x@h>;tag=77") == .passed, "a re-INVITE of a call in progress")
        #expect(try call("0033123456789", "zz", to: "<sip:x@h>;tag=77") == .droppedFraud,
                "a To tag on a call never let in proves nothing")
        #expect(try program.judge(Packet.request("REGISTER", src: "198.18.1.1")).2 == .passed, "registrations go on")
        #expect(try program.judge(FraudTests.invite("0033123456789", callID: "o1", src: "198.18.1.2")).2 == .passed,
                "another source is not blocked")

        // An hour later the block is over (and the bucket full again).
        let later: UInt64 = 1_000_000_000_000 + 3_601_000_000_000
        try program.setTestClock(nanoseconds: later)
        #expect(try call("0033123456789", "e") == .passed)
        #expect(try program.maps.fraudBlocks(now: later).isEmpty, "the block's time is over")
    }

    /// A Call-ID let in is no pass for another number: a new INVITE on it dialling elsewhere is a new call, judged
    /// and counted as one (a server takes it for one: its From tag is new).
    @Test func aCallIDLetInIsNoPassForAnotherNumber() throws {
        let program = try FraudTests.program(rules: [try DestinationRule("+4490", .block)])
        for id in ["a", "b", "c"] {
            #expect(try program.judge(FraudTests.invite("0033123456789", callID: id)).2 == .passed)
        }
        #expect(try program.judge(FraudTests.invite("0033123456789", callID: "b")).2 == .passed,
                "b's retransmission, the same number: its verdict")
        #expect(try program.judge(FraudTests.invite("09012345678", callID: "a")).2 == .droppedDestination,
                "a blocked number on a Call-ID that was let in")
        #expect(try program.judge(FraudTests.invite("0049301234567", callID: "a")).2 == .droppedFraud,
                "another international number on it: the fourth call")
    }

    /// Calls to a prefix a rule marks high-risk have a threshold of their own.
    @Test func highRiskDestinationsHaveTheirOwnThreshold() throws {
        let program = try FraudTests.program(rules: [try DestinationRule("+4487", .allow, highRisk: true)])
        #expect(try program.judge(FraudTests.invite("08712345678", callID: "h1")).2 == .passed)
        #expect(try program.judge(FraudTests.invite("08712345678", callID: "h2")).2 == .passed)
        #expect(try program.judge(FraudTests.invite("08712345678", callID: "h3")).2 == .droppedFraud)
        #expect(try program.maps.fraudBlocks(now: 0).first?.kind == "high-risk")
        #expect(try program.maps.destinationRules() == [try DestinationRule("+4487", .allow, highRisk: true)])
    }

    /// A tag counts only where a server reads one: after the URI, outside the quoted display name, in the only To
    /// header.
    @Test func onlyARealToTagMakesARequestInDialog() throws {
        let program = try FraudTests.program()
        for i in 0..<3 { _ = try program.judge(FraudTests.invite("0033123456789", callID: "c\(i)")) }
        #expect(try program.judge(FraudTests.invite("0033123456789", callID: "c3")).2 == .droppedFraud)
        // Past the 32 s in which a copy of c0 is a retransmission; the block lasts an hour.
        try program.setTestClock(nanoseconds: 1_000_000_000_000 + 40_000_000_000)
        #expect(try program.judge(FraudTests.invite("0033123456789", callID: "c0")).2 == .droppedFraud)
        // c0 was let in: its re-INVITEs pass, however the To header is written (an empty tag is no tag).
        #expect(try program.judge(FraudTests.invite("0033123456789", callID: "c0", to: "<sip:x@h>;tag=")).2 == .droppedFraud)
        #expect(try program.judge(FraudTests.invite("0033123456789", callID: "c0", to: "<sip:x@h>;tag= ;x=1")).2 == .droppedFraud)
        // A tagged INVITE on c0 dialling another number is a new call.
        #expect(try program.judge(FraudTests.invite("0049301234567", callID: "c0", to: "<sip:x@h>;tag=1")).2 == .droppedFraud)
        for to in ["<sip:x@h>;tag=1", "<sip:x@h> ; TAG = 1", "\"x\" <sip:x@h>;tag=1", "sip:x@h;tag=1"] {
            #expect(try program.judge(FraudTests.invite("0033123456789", callID: "c0", to: to)).2 == .passed, "\(to)")
        }
        // Not a tag, even on c0's Call-ID: in the display name, in the URI, a parameter only named like it, or two To
        // headers (which one a server reads is anyone's guess). Without a tag, c0 again is a new call, refused.
        for (to, extra) in [("\"a;tag=1\" <sip:x@h>", ""), ("<sip:x@h;tag=1>", ""), ("<sip:x@h>;tags=1", ""),
                            ("<sip:x@h>;xtag=1", ""), ("<sip:x@h>;tag=1", "To: <sip:y@h>\r\n"),
                            ("\"a\\\";tag=1\" <sip:x@h>", "")] {
            let r = try program.judge(FraudTests.invite("0033123456789", callID: "c0", to: to, extra: extra)).2
            #expect(r == .droppedFraud, "\(to) \(extra.debugDescription): \(String(describing: r))")
        }
    }

    /// INVITEs forged from an allow-listed address at another hop distance are judged as a stranger's and charged
    /// to a bucket of their own: they never block the address, which goes on calling abroad.
    @Test func forgedCallsCannotGetASourceBlocked() throws {
        var policy = perSourceOnly
        policy.allow = [try CIDR("198.18.5.9/32")]
        let program = try FraudTests.program(policy: policy, thresholds: [
            .unverified: .init(international: 2), .allowed: .init(international: 5),
        ])
        func call(_ id: String, ttl: UInt8) throws -> Reason? {
            try program.judge(FraudTests.invite("0033123456789", callID: id, src: "198.18.5.9", ttl: ttl)).2
        }
        #expect(try call("real-1", ttl: 64) == .passedAllow, "pins the trunk's TTL")
        var refused = 0
        for i in 0..<10 where try call("forged-\(i)", ttl: 20) == .droppedFraud { refused += 1 }
        #expect(refused == 8, "the forgeries: 2 a minute, as a stranger's")
        #expect(try program.maps.fraudBlocks(now: 0).isEmpty, "the address is not blocked")
        for i in 2...5 { #expect(try call("real-\(i)", ttl: 64) == .passedAllow) }
        #expect(try call("real-6", ttl: 64) == .droppedFraud, "its own threshold, 5")
        #expect(try program.maps.fraudBlocks(now: 0).count == 1)
    }
}
