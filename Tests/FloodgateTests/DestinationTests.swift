import CFloodgate
import FloodgateCore
import FloodgateLab
import Foundation
import Testing

/// Dialled numbers (BPF/lib/numbers.h) and destination rules (BPF/lib/destinations.h), judged by the loaded
/// program on crafted INVITEs.
@Suite struct DestinationTests {
    /// A UK site: +44, 00 or 011 for international calls, 0 for national ones.
    static let ukPlan = NumberPlan(countryCode: "44", international: ["00", "011"], national: "0", bare: .e164)

    static func program(_ rules: [DestinationRule], plan: NumberPlan = ukPlan, policy base: FilterPolicy = perSourceOnly,
                        testClock: Bool = false) throws -> FloodgateProgram {
        var policy = base
        var settings = Settings.defaults
        settings.numbers = plan
        policy.destinations = Set(rules)
        return try loadProgram(limits: Limit.defaults.merging([.invite: .unlimited]) { $1 }, settings: settings,
                               policy: policy, testClock: testClock)
    }

    /// An INVITE whose start line is `startLine` (with its CRLF), from `src`.
    static func invite(_ startLine: String, src: String = "198.18.1.1", callID: String = "c1@x", lead: String = "")
        -> [UInt8]
    {
        Packet.sipRaw(Array((lead + startLine + "\r\nVia: SIP/2.0/UDP \(src):5060;branch=z9hG4bK-1\r\n"
            + "From: <sip:200@\(src)>;tag=1\r\nTo: <sip:x@198.18.0.2>\r\nCall-ID: \(callID)\r\nCSeq: 1 INVITE\r\n"
            + "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n").utf8), src: src)
    }

    static func dialling(_ uri: String, src: String = "198.18.1.1", callID: String = "c1@x") -> [UInt8] {
        invite("INVITE \(uri) SIP/2.0", src: src, callID: callID)
    }

    /// Every way of writing a premium-rate number (+44 90…) that a SIP server would dial is blocked by the one
    /// rule; numbers elsewhere, and URIs that are not numbers, are not.
    @Test func everySpellingOfANumberMeetsItsRule() throws {
        let program = try DestinationTests.program([try DestinationRule("+44900", .block)])
        let blocked = [
            "sip:+449001234567@198.18.0.2",
            "sip:00449001234567@198.18.0.2",
            "sip:011449001234567@198.18.0.2",
            "sip:09001234567@198.18.0.2", // national: 0 → +44
            "sips:+44-900-123-4567@198.18.0.2;user=phone",
            "SIP:+44.900.(123).4567@198.18.0.2",
            "tel:+44(900)1234567;phone-context=example.com",
            "TEL:09001234567",
            "sip:%2B449001234567@198.18.0.2", // %2B is +
            "sip:%34%34900%31234567@198.18.0.2", // escaped digits
            "sip:+449001234567;isub=77;phone-context=x@198.18.0.2",
            "sip:449001234567@198.18.0.2", // bare: E.164 already
            "sip:449001234567abc@198.18.0.2", // digits, then letters: the digits count
            "sip:+44900" + String(repeating: "1", count: 35) + "@198.18.0.2", // 40 digits
            "sip:00449001234567?@198.18.0.2", // ? and , may be in a sip user part (RFC 3261)
            "sip:0044900,1234567@198.18.0.2",
        ]
        for uri in blocked {
            let (action, c, r) = try program.judge(DestinationTests.dialling(uri))
            #expect(action == XDP_DROP_ACTION && c == .invite && r == .droppedDestination, "\(uri)")
        }
        let passed = [
            "sip:+442079460000@198.18.0.2",
            "sip:02079460000@198.18.0.2",
            "sip:+4490@198.18.0.2", // shorter than the rule's prefix
            "sip:alice@198.18.0.2",
            "sip:198.18.0.2", // no user part
            "sip:9001234567@198.18.0.2;user=phone", // bare 900…: +900, not +44 900
            "sip:*67449001234567@198.18.0.2", // starts with a feature code: not a number (see the README)
            "sip:00@198.18.0.2", // a prefix alone
            "mailto:+449001234567@198.18.0.2",
            "sip:+44" + String(repeating: "2", count: 38) + "@198.18.0.2",
        ]
        for uri in passed {
            #expect(try program.judge(DestinationTests.dialling(uri)).2 == .passed, "\(uri)")
        }
        // Only INVITEs are judged.
        let message = Packet.sip(["MESSAGE sip:+449001234567@198.18.0.2 SIP/2.0", "Call-ID: m@x", "CSeq: 1 MESSAGE"])
        #expect(try program.judge(message).2 == .passed)
        // And counted by what was made of them.
        let outcomes = try program.maps.destinationOutcomes()
        #expect(outcomes == ["blocked": UInt64(blocked.count), "no-rule": 5, "not-a-number": 5, "unreadable": 0,
                             "allowed": 0, "limit-passed": 0, "limited": 0, "fraud": 0, "concurrent": 0, "untracked": 0,
                             "caller-id-flagged": 0, "caller-id-refused": 0], "\(outcomes)")
        // An INVITE in lower case is one to a lenient server (pjsip), so it is judged as one.
        let lower = Packet.sip(["invite sip:+449001234567@198.18.0.2 SIP/2.0", "Call-ID: l@x", "CSeq: 1 invite"])
        #expect(try program.judge(lower).2 == .droppedDestination)
        let lowerElsewhere = Packet.sip(["Invite sip:+442079460000@198.18.0.2 SIP/2.0", "Call-ID: l2@x", "CSeq: 1 Invite"])
        #expect(try program.judge(lowerElsewhere).2 == .passed)
    }

    /// Bytes a forger frames differently to walk past the rule: CRLFs before the start line, blanks between the
    /// method and the URI, the number split over two TCP segments, a user part that runs past the bytes read.
    /// Each is either read as the server reads it or dropped as unreadable; none passes as a number it isn't.
    @Test func reframedBytesDoNotWalkPastARule() throws {
        let program = try DestinationTests.program([try DestinationRule("+44900", .block)])
        let lead = DestinationTests.invite("INVITE sip:+449001234567@198.18.0.2 SIP/2.0", lead: "\r\n\r\n")
        #expect(try program.judge(lead).2 == .droppedDestination)
        let blanks = DestinationTests.invite("INVITE \t sip:+449001234567@198.18.0.2 SIP/2.0")
        #expect(try program.judge(blanks).2 == .droppedDestination)
        // The user part goes on past FG_RURI_BYTES: its number could be anything.
        let long = "sip:+44" + String(repeating: "-", count: Int(FG_RURI_BYTES)) + "900@198.18.0.2"
        #expect(try program.judge(DestinationTests.dialling(long)).2 == .droppedDestination)
        // A datagram that ends inside the user part.
        let cut = Packet.sipRaw(Array("INVITE sip:+4490".utf8))
        #expect(try program.judge(cut).2 == .droppedDestination)
        // Over TCP, a first segment that ends inside the number is unreadable, so dropped; the whole request in one
        // segment is read like a datagram.
        func segment(_ text: String) -> [UInt8] {
            Packet.ethernet(Packet.EtherType.ipv4, Packet.ipv4(proto: Packet.Proto.tcp,
                                                              Packet.tcp(dport: 5060, flags: 0x18, Array(text.utf8))))
        }
        #expect(try program.judge(segment("INVITE sip:+44900")).2 == .droppedDestination)
        let whole = "INVITE sip:+449001234567@198.18.0.2 SIP/2.0\r\nCall-ID: t@x\r\nCSeq: 1 INVITE\r\n\r\n"
        #expect(try program.judge(segment(whole)).2 == .droppedDestination)
        let national = "INVITE sip:02079460000@198.18.0.2 SIP/2.0\r\nCall-ID: t@x\r\nCSeq: 1 INVITE\r\n\r\n"
        #expect(try program.judge(segment(national)).2 == .passed)
        // An IPv4 first fragment that ends inside the number: dropped (its header block doesn't end in it either);
        // an IPv6 datagram whose number is blocked is read like an IPv4 one.
        let whole6 = Array("INVITE sip:+449001234567@198.18.0.2 SIP/2.0\r\nCall-ID: f@x\r\nCSeq: 1 INVITE\r\n\r\n".utf8)
        let udp = Packet.udp(dport: 5060, whole6)
        let first = Packet.ethernet(Packet.EtherType.ipv4, Packet.ipv4(proto: Packet.Proto.udp, Array(udp.prefix(8 + 16)),
                                                                    moreFragments: true))
        let (action, _, reason) = try program.judge(first)
        #expect(action == XDP_DROP_ACTION, "\(String(describing: reason))")
        let v6 = Packet.ethernet(Packet.EtherType.ipv6, Packet.ipv6(proto: Packet.Proto.udp, udp))
        #expect(try program.judge(v6).2 == .droppedDestination)
    }

    /// The longest prefix decides: +44 blocked, +4420 allowed inside it, +44207946 blocked again.
    @Test func theLongestPrefixDecides() throws {
        let program = try DestinationTests.program([
            try DestinationRule("+44", .block), try DestinationRule("4420", .allow), try DestinationRule("44207946", .block),
        ])
        #expect(try program.judge(DestinationTests.dialling("sip:+441611234567@h")).2 == .droppedDestination)
        #expect(try program.judge(DestinationTests.dialling("sip:+442071234567@h")).2 == .passed)
        #expect(try program.judge(DestinationTests.dialling("sip:+442079460000@h")).2 == .droppedDestination)
        #expect(try program.judge(DestinationTests.dialling("sip:+33123456789@h")).2 == .passed)
        // "+" alone: every number ("international off" is "+ block" beside "+44 allow").
        let night = try DestinationTests.program([try DestinationRule("+", .block), try DestinationRule("+44", .allow)])
        #expect(try night.judge(DestinationTests.dialling("sip:0033123456789@h")).2 == .droppedDestination)
        #expect(try night.judge(DestinationTests.dialling("sip:02079460000@h")).2 == .passed)
        #expect(try night.judge(DestinationTests.dialling("sip:alice@h")).2 == .passed, "not a number")
        #expect(try Set(night.maps.destinationRules()) == [try DestinationRule("+", .block), try DestinationRule("44", .allow)])
    }

    /// Rules per tier: international blocked for strangers, allowed for the allow-listed trunk.
    @Test func rulesApplyToTheirTier() throws {
        var policy = perSourceOnly
        policy.allow = [try CIDR("198.18.5.0/24")]
        let program = try DestinationTests.program(
            [try DestinationRule("1", .block, tier: .unverified), try DestinationRule("1", .allow, tier: .allowed)],
            policy: policy)
        let uri = "sip:0012125550100@198.18.0.2"
        #expect(try program.judge(DestinationTests.dialling(uri, src: "198.18.1.1")).2 == .droppedDestination)
        #expect(try program.judge(DestinationTests.dialling(uri, src: "198.18.5.9")).2 == .passedAllow)
        #expect(try Set(program.maps.destinationRules()) == [
            try DestinationRule("1", .block, tier: .unverified), try DestinationRule("1", .allow, tier: .allowed),
        ])
    }

    /// The same limit for two tiers is two rules with buckets of their own: strangers spending their total leave
    /// the allow-listed trunk's alone.
    @Test func limitedRulesOfEachTierHaveTheirOwnBuckets() throws {
        var policy = perSourceOnly
        policy.allow = [try CIDR("198.18.5.0/24")]
        let limit = DestinationRule.Action.limit(perSource: nil, total: 1)
        let program = try DestinationTests.program(
            [try DestinationRule("+44", limit, tier: .unverified), try DestinationRule("+44", limit, tier: .allowed)],
            policy: policy, testClock: true)
        let uri = "sip:+442079460000@198.18.0.2"
        #expect(try program.judge(DestinationTests.dialling(uri, src: "198.18.1.1", callID: "u1")).2 == .passed)
        #expect(try program.judge(DestinationTests.dialling(uri, src: "198.18.1.2", callID: "u2")).2 == .droppedDestinationLimit)
        #expect(try program.judge(DestinationTests.dialling(uri, src: "198.18.5.9", callID: "t1")).2 == .passedAllow)
    }

    /// The number plan: bare digits as national numbers, or as local ones that no rule sees.
    @Test func bareNumbersAreWhatThePlanSays() throws {
        var plan = DestinationTests.ukPlan
        plan.bare = .national
        let national = try DestinationTests.program([try DestinationRule("+44900", .block)], plan: plan)
        #expect(try national.judge(DestinationTests.dialling("sip:9001234567@h")).2 == .droppedDestination)
        plan.bare = .local
        let local = try DestinationTests.program([try DestinationRule("+44900", .block), try DestinationRule("900", .block)],
                                                 plan: plan)
        #expect(try local.judge(DestinationTests.dialling("sip:9001234567@h")).2 == .passed)
        #expect(try local.judge(DestinationTests.dialling("sip:+9001234567@h")).2 == .droppedDestination)
        #expect(try local.maps.settings().numbers == plan)
    }

    /// A limited prefix: 3 calls a minute from each source, 5 from all. The fourth call of a source is the first
    /// refused; a retransmission of an admitted call passes and costs nothing, one of a refused call stays
    /// refused; another source has its own 3, until the total runs out; time brings one call back per 20 s.
    @Test func limitedDestinationsCountCallsNotCopies() throws {
        let program = try DestinationTests.program(
            [try DestinationRule("+44", .limit(perSource: 3, total: 5))], testClock: true)
        func call(_ n: Int, from src: String = "198.18.1.1") throws -> Reason? {
            try program.judge(DestinationTests.dialling("sip:+442079460000@h", src: src, callID: "call-\(n)@\(src)")).2
        }
        #expect(try (1...3).map { try call($0) } == [.passed, .passed, .passed])
        #expect(try call(2) == .passed, "a retransmission of an admitted call")
        #expect(try program.judge(DestinationTests.dialling("sip:+442079460001@h", callID: "call-2@198.18.1.1")).2
                == .droppedDestinationLimit, "its Call-ID dialling another number: a new call, the fourth")
        // More copies than a UDP transaction ever resends are new calls, however alike.
        for _ in 0..<Int(FG_CALL_COPIES) { #expect(try call(3) == .passed) }
        #expect(try call(3) == .droppedDestinationLimit, "the eighth retransmission of call 3")
        #expect(try call(4) == .droppedDestinationLimit)
        #expect(try call(4) == .droppedDestinationLimit, "its retransmission")
        let other = "198.18.1.2"
        #expect(try call(1, from: other) == .passed)
        #expect(try call(2, from: other) == .passed)
        #expect(try call(3, from: other) == .droppedDestinationLimit, "the total of 5 is spent")
        try program.setTestClock(nanoseconds: 1_000_000_000_000 + 21_000_000_000)
        #expect(try call(5) == .passed, "20 s bring one call back")
        #expect(try call(6) == .droppedDestinationLimit)
        // Another prefix is not limited.
        #expect(try program.judge(DestinationTests.dialling("sip:+33123456789@h", callID: "fr@x")).2 == .passed)
    }

    /// Rules change at once: a new set is written beside the one in force and switched in with one write; the
    /// old entries go, and a limited rule that stays keeps its buckets.
    @Test func changingTheRulesSwitchesBanksAndKeepsBuckets() throws {
        let limit = try DestinationRule("+44", .limit(perSource: 1, total: nil))
        let program = try DestinationTests.program([limit], testClock: true)
        #expect(try program.judge(DestinationTests.dialling("sip:+442079460000@h", callID: "a@x")).2 == .passed)
        #expect(try program.judge(DestinationTests.dialling("sip:+442079460000@h", callID: "b@x")).2 == .droppedDestinationLimit)
        let bank = try program.maps.destinationStatus().bank
        try program.maps.setDestinationRules([limit, try DestinationRule("+33", .block)])
        let status = try program.maps.destinationStatus()
        #expect(status.bank == bank ^ 1)
        #expect(status.entries == 6 && status.stored == 6, "two rules, three tiers each, one bank: \(status)")
        #expect(try program.judge(DestinationTests.dialling("sip:+33123456789@h", callID: "c@x")).2 == .droppedDestination)
        #expect(try program.judge(DestinationTests.dialling("sip:+442079460000@h", callID: "d@x")).2 == .droppedDestinationLimit,
                "the +44 bucket is the same one, still empty")
        try program.maps.setDestinationRules([])
        let empty = try program.maps.destinationStatus()
        #expect(empty.entries == 0 && empty.stored == 0)
        #expect(try program.judge(DestinationTests.dialling("sip:+33123456789@h", callID: "e@x")).2 == .passed)
    }

    /// Forged INVITEs that claim a verified or allow-listed address from another hop distance are judged as a
    /// stranger's, and never spend the real source's per-source destination bucket.
    @Test func forgedCallsDoNotSpendTheClaimedSourcesBucket() throws {
        var policy = perSourceOnly
        policy.allow = [try CIDR("198.18.5.9/32")]
        let program = try DestinationTests.program([try DestinationRule("+44", .limit(perSource: 2, total: nil))],
                                                   policy: policy, testClock: true)
        func call(_ id: String, ttl: UInt8) throws -> Reason? {
            let frame = Packet.sipRaw(Array(("INVITE sip:+442079460000@h SIP/2.0\r\nCall-ID: \(id)\r\nCSeq: 1 INVITE\r\n\r\n").utf8),
                                      src: "198.18.5.9", ttl: ttl)
            return try program.judge(frame).2
        }
        // The trunk's first packet pins its TTL (64); then forgeries at TTL 20 try to use up its 2 calls.
        #expect(try call("real-1", ttl: 64) == .passedAllow)
        for i in 0..<10 { _ = try call("forged-\(i)", ttl: 20) }
        #expect(try call("real-2", ttl: 64) == .passedAllow, "the trunk still has its second call")
        #expect(try call("real-3", ttl: 64) == .droppedDestinationLimit)
    }
}
