import CFloodgate
import FloodgateCore
import Foundation
import Testing

/// The inside program (BPF/lib/trust.h) through BPF_PROG_TEST_RUN: the SIP server's answers as they leave
/// towards external sources, and what they do to the external program's verdicts.
@Suite struct TrustTests {
    /// A SIP response from the server (198.18.2.2:5060) to `destination`:5070.
    static func response(_ status: String, to destination: String, cseq: String = "2 REGISTER") -> [UInt8] {
        let text = "SIP/2.0 \(status)\r\nVia: SIP/2.0/UDP \(destination):5070;branch=z9hG4bK-1\r\n"
            + "From: <sip:100@198.18.2.2>;tag=1\r\nTo: <sip:100@198.18.2.2>;tag=2\r\nCall-ID: 1@\(destination)\r\n"
            + "CSeq: \(cseq)\r\nContent-Length: 0\r\n\r\n"
        return Packet.ethernet(Packet.EtherType.ipv4, Packet.ipv4(
            src: "198.18.2.2", dst: destination, proto: Packet.Proto.udp,
            Packet.udp(sport: 5060, dport: 5070, Array(text.utf8))))
    }

    static let credentials = "Authorization: Digest username=\"100\", realm=\"198.18.2.2\", nonce=\"abc\", "
        + "uri=\"sip:198.18.2.2\", response=\"0123456789abcdef0123456789abcdef\""

    func program(failures: UInt32 = 3) throws -> FloodgateProgram {
        var settings = Settings.defaults
        settings.bruteForce = BruteForce(failures: failures, windowSeconds: 60, banSeconds: 60)
        settings.trustSeconds = 60
        return try loadProgram(settings: settings)
    }

    func inside(_ program: FloodgateProgram, _ frame: [UInt8]) throws {
        let action = try FloodgateProgram.testRun(programFD: program.insideProgramFD, packet: frame).action
        #expect(action == XDP_PASS_ACTION, "the inside program passes everything")
    }

    /// 401s to REGISTERs that carried credentials are failures; the third bans the source. A phone whose every
    /// first REGISTER is challenged (no credentials yet) and then accepted is never banned.
    @Test func failedAuthenticationsBanButFirstChallengesDoNot() throws {
        let p = try program()
        let guesser = "198.18.5.5", phone = "198.18.5.6"
        for round in 1...3 {
            #expect(try p.judge(Packet.request("REGISTER", src: guesser, extra: [TrustTests.credentials])).2 == .passed)
            try inside(p, TrustTests.response("401 Unauthorized", to: guesser))
            let ban = p.maps.ban(of: SourceAddress(guesser)!)
            #expect((ban != nil) == (round == 3), "round \(round): \(String(describing: ban))")
        }
        let ban = try #require(p.maps.ban(of: SourceAddress(guesser)!))
        #expect(ban.bruteForce && ban.origin == "brute-force")
        #expect(try p.judge(Packet.request("REGISTER", src: guesser)).2 == .droppedBan)

        for _ in 1...5 {
            #expect(try p.judge(Packet.request("REGISTER", src: phone)).2 == .passed)
            try inside(p, TrustTests.response("401 Unauthorized", to: phone))
            #expect(try p.judge(Packet.request("REGISTER", src: phone, extra: [TrustTests.credentials])).2 == .passed)
            try inside(p, TrustTests.response("200 OK", to: phone))
        }
        #expect(p.maps.ban(of: SourceAddress(phone)!) == nil)
        // Proxy-Authorization counts as credentials too, in any case; 407 and 403 are failures.
        let other = "198.18.5.7"
        #expect(try p.judge(Packet.request("INVITE", src: other, extra: ["proxy-authorization: Digest x"])).2 == .passed)
        try inside(p, TrustTests.response("407 Proxy Authentication Required", to: other, cseq: "1 INVITE"))
        try inside(p, TrustTests.response("403 Forbidden", to: other))
        #expect(p.maps.ban(of: SourceAddress(other)!) == nil)
        try inside(p, TrustTests.response("403 Forbidden", to: other))
        #expect(p.maps.ban(of: SourceAddress(other)!)?.bruteForce == true)
    }

    /// A 2xx to a REGISTER makes its destination known-good; a 2xx to an OPTIONS does not. A known-good source
    /// gets through while a random-source flood has drained its /24, whose other sources are dropped.
    @Test func anAcceptedRegistrationEarnsTrustThatOutlastsADrainedPrefix() throws {
        // A /24 bucket that refills at 1/s: a slow, busy test machine cannot refill it between the flood and the
        // prober's packet (with the default 200/s it could, and did once in CI).
        var settings = Settings.defaults
        settings.trustSeconds = 60
        var policy = Policy()
        policy.prefix = .rate(1, burst: 20)
        let p = try loadProgram(settings: settings, policy: policy)
        let phone = "198.18.6.6", prober = "198.18.6.7"
        try inside(p, TrustTests.response("200 OK", to: phone, cseq: "2 REGISTER"))
        try inside(p, TrustTests.response("200 OK", to: prober, cseq: "1 OPTIONS"))
        let trusted = Set(try p.maps.trustedSources().map(\.address.description))
        #expect(trusted == [phone])
        // The /24's bucket drained by spoofed sources of the same /24.
        var dropped = 0
        for i in 0..<200 {
            let src = "198.18.6.\(10 + i % 200)"
            if try p.judge(Packet.request("INVITE", src: src)).2 == .droppedPrefix { dropped += 1 }
        }
        #expect(dropped >= 170)
        #expect(try p.judge(Packet.request("INVITE", src: prober)).2 == .droppedPrefix)
        for _ in 0..<5 { #expect(try p.judge(Packet.request("REGISTER", src: phone)).2 == .passed) }
        // Its own per-source limit still holds (REGISTER 8/s, burst 16).
        let reasons = try (0..<20).map { _ in try p.judge(Packet.request("REGISTER", src: phone)).2 }
        #expect(reasons.contains(.droppedRate))
    }
}
