import CFloodgate
import FloodgateCore
import FloodgateLab
import Foundation
import Testing

/// Calls in progress (BPF/lib/calls.h), judged by the loaded programs through BPF_PROG_TEST_RUN: the external
/// program lets INVITEs in and sees the sources' BYEs and CANCELs; the inside program sees the SIP server's
/// answers and BYEs on their way out.
@Suite struct CallTests {
    static func program(concurrent: [DestinationRule.Tier: UInt32] = [.unverified: 2], ringSeconds: UInt32 = 180,
                        blockWhenFull: Bool = false, settings base: Settings? = nil) throws -> FloodgateProgram {
        var policy = perSourceOnly
        var settings = base ?? Settings.defaults
        settings.numbers = NumberPlan(countryCode: "44", international: ["00"], national: "0", bare: .e164)
        policy.fraud = FraudPolicy(blockSeconds: blockWhenFull ? 3600 : 0, thresholds: concurrent.mapValues { .init(concurrent: $0) },
                                   ringSeconds: ringSeconds)
        policy.fraud.blockWhenFull = blockWhenFull
        return try loadProgram(limits: Limit.defaults.merging([.invite: .unlimited, .inDialog: .unlimited]) { $1 },
                               settings: settings, policy: policy, testClock: true)
    }

    static func invite(_ callID: String, src: String = "198.18.1.1", cseq: Int = 1, to: String = "<sip:x@h>",
                       ttl: UInt8 = 64, fromTag: String = "f") -> [UInt8] {
        Packet.sip(["INVITE sip:02079460000@198.18.0.2 SIP/2.0", "Via: SIP/2.0/UDP \(src);branch=z9hG4bK-\(callID)-\(cseq)",
                    "From: <sip:200@\(src)>;tag=\(fromTag)", "To: \(to)", "Call-ID: \(callID)", "CSeq: \(cseq) INVITE"],
                   src: src, ttl: ttl)
    }

    static func request(_ method: String, _ callID: String, src: String = "198.18.1.1", cseq: Int, ttl: UInt8 = 64)
        -> [UInt8]
    {
        Packet.sip(["\(method) sip:02079460000@198.18.0.2 SIP/2.0", "Via: SIP/2.0/UDP \(src);branch=z9hG4bK-\(callID)-b",
                    "From: <sip:200@\(src)>;tag=f", "To: <sip:x@h>;tag=t", "Call-ID: \(callID)", "CSeq: \(cseq) \(method)"],
                   src: src, ttl: ttl)
    }

    /// The server's answer to an INVITE of `callID`, or its own BYE (`status` "BYE"), to `destination`.
    static func server(_ status: String, _ callID: String, to destination: String = "198.18.1.1", cseq: String = "1 INVITE")
        -> [UInt8]
    {
        let start = status == "BYE" ? "BYE sip:200@\(destination):5060 SIP/2.0" : "SIP/2.0 \(status)"
        let text = ([start, "Via: SIP/2.0/UDP \(destination):5060;branch=z9hG4bK-s", "From: <sip:200@\(destination)>;tag=f",
                     "To: <sip:x@h>;tag=t", "Call-ID: \(callID)", "CSeq: \(status == "BYE" ? "7 BYE" : cseq)", "Content-Length: 0"])
            .joined(separator: "\r\n") + "\r\n\r\n"
        return Packet.ethernet(Packet.EtherType.ipv4, Packet.ipv4(
            src: "198.18.2.2", dst: destination, proto: Packet.Proto.udp, Packet.udp(sport: 5060, dport: 5060, Array(text.utf8))))
    }

    static func inside(_ program: FloodgateProgram, _ frame: [UInt8]) throws {
        let action = try FloodgateProgram.testRun(programFD: program.insideProgramFD, packet: frame).action
        #expect(action == XDP_PASS_ACTION, "the inside program passes everything")
    }

    /// (in progress, answered) for `address`, claimed or not.
    static func count(_ program: FloodgateProgram, _ address: String = "198.18.1.1", claimed: Bool = false) throws
        -> (Int32, Int32)
    {
        let c = try program.maps.callers(now: 1_000_000_000_000).first {
            $0.address.description == address && $0.claimed == claimed
        }
        return (c?.calls ?? 0, c?.answered ?? 0)
    }

    /// A call counts from its INVITE let in until its end: a limit of 2 refuses the third new call while two ring;
    /// a retransmission is no new call. Until the filter has read one of the server's answers, the source's
    /// CANCEL (while ringing) and BYE end calls, on trust, and an INVITE resent with another CSeq (after a
    /// challenge the filter never saw) takes its call's place.
    @Test func callsInProgressAreCountedAndTheSourcesEndsTrustedWithoutTheInside() throws {
        let p = try CallTests.program()
        func invite(_ id: String, cseq: Int = 1) throws -> Reason? { try p.judge(CallTests.invite(id, cseq: cseq)).2 }
        #expect(try invite("a") == .passed)
        #expect(try invite("b") == .passed)
        #expect(try CallTests.count(p) == (2, 0))
        #expect(try invite("c") == .droppedConcurrent, "the third call while two ring")
        #expect(try invite("a") == .passed, "a retransmission of a call counted is no new call")
        #expect(try CallTests.count(p) == (2, 0))
        #expect(try p.judge(CallTests.request("CANCEL", "b", cseq: 2)).2 == .passed)
        #expect(try CallTests.count(p) == (2, 0), "a CANCEL must carry its INVITE's CSeq")
        #expect(try p.judge(CallTests.request("CANCEL", "b", cseq: 1)).2 == .passed)
        #expect(try CallTests.count(p) == (1, 0), "cancelled while ringing")
        #expect(try p.judge(CallTests.request("BYE", "a", cseq: 2)).2 == .passed)
        #expect(try CallTests.count(p) == (0, 0), "the source's BYE")
        #expect(try p.judge(CallTests.request("BYE", "a", cseq: 2)).2 == .passed)
        #expect(try CallTests.count(p) == (0, 0), "a second end is not taken off again")
        #expect(try invite("d") == .passed)
        #expect(try invite("d", cseq: 2) == .passed, "resent with credentials: the same call")
        #expect(try CallTests.count(p) == (1, 0))
        // The same Call-ID and CSeq with another From tag is another call to a server, not a copy.
        #expect(try p.judge(CallTests.invite("d", cseq: 2, fromTag: "other")).2 == .droppedConcurrent)
        #expect(try p.judge(CallTests.invite("d", cseq: 2, fromTag: "F")).2 == .droppedConcurrent, "tags are compared exactly")
        #expect(try p.judge(CallTests.invite("d", cseq: 2)).2 == .passed, "a copy still passes")
        #expect(try CallTests.count(p) == (1, 0))
        #expect(try p.maps.destinationOutcomes()["concurrent"] == 3)
    }

    /// Once the server's answers are read, its word ends calls: a 2xx puts a call up; a failure answer to its
    /// INVITE (a 487 after a CANCEL, a 407 challenge) ends it while it rings; its 2xx to a BYE, or its own BYE,
    /// ends it. What the source says alone ends nothing: a BYE or CANCEL the server refuses would leave the call
    /// going and the count down. A new INVITE with another From tag on a Call-ID whose call is in progress is
    /// refused (a server takes it for another call); a re-INVITE is no new call.
    @Test func onceTheServerIsHeardItsWordEndsCalls() throws {
        let p = try CallTests.program()
        func invite(_ id: String, cseq: Int = 1, to: String = "<sip:x@h>") throws -> Reason? {
            try p.judge(CallTests.invite(id, cseq: cseq, to: to)).2
        }
        #expect(try invite("a") == .passed)
        #expect(try invite("b") == .passed)
        try CallTests.inside(p, CallTests.server("180 Ringing", "a"))
        #expect(try CallTests.count(p) == (2, 0), "a provisional answer changes nothing")
        try CallTests.inside(p, CallTests.server("200 OK", "a"))
        #expect(try CallTests.count(p) == (2, 1), "answered: up")
        try CallTests.inside(p, CallTests.server("200 OK", "a"))
        #expect(try CallTests.count(p) == (2, 1), "a retransmitted 2xx counts once")

        #expect(try p.judge(CallTests.request("BYE", "a", cseq: 3)).2 == .passed)
        #expect(try p.judge(CallTests.request("CANCEL", "b", cseq: 1)).2 == .passed)
        #expect(try CallTests.count(p) == (2, 1), "the source's BYE and CANCEL alone end nothing")
        try CallTests.inside(p, CallTests.server("481 Call/Transaction Does Not Exist", "a", cseq: "3 BYE"))
        #expect(try CallTests.count(p) == (2, 1), "a BYE the server refuses ends nothing")
        try CallTests.inside(p, CallTests.server("200 OK", "a", cseq: "3 BYE"))
        #expect(try CallTests.count(p) == (1, 0), "the server's 2xx to the BYE ends it")
        try CallTests.inside(p, CallTests.server("487 Request Terminated", "b"))
        #expect(try CallTests.count(p) == (0, 0), "the server's 487 ends the cancelled call")

        #expect(try invite("c") == .passed)
        #expect(try p.judge(CallTests.invite("c", cseq: 9, fromTag: "other")).2 == .droppedConcurrent,
                "another caller's INVITE on a Call-ID in progress")
        try CallTests.inside(p, CallTests.server("407 Proxy Authentication Required", "c"))
        #expect(try CallTests.count(p) == (0, 0), "the challenge ends the attempt")
        #expect(try invite("c", cseq: 2) == .passed, "and its credentialed resend is the call")
        try CallTests.inside(p, CallTests.server("200 OK", "c", cseq: "2 INVITE"))
        #expect(try invite("c", cseq: 3, to: "<sip:x@h>;tag=t") == .passed, "a re-INVITE within the call")
        try CallTests.inside(p, CallTests.server("491 Request Pending", "c", cseq: "3 INVITE"))
        #expect(try CallTests.count(p) == (1, 1), "no new call, and its failure doesn't end the call")
        try CallTests.inside(p, CallTests.server("BYE", "c"))
        #expect(try CallTests.count(p) == (0, 0), "the server's BYE ends it")
        // A re-INVITE on a call the server placed to the source (its To tag, a Call-ID the filter never let in):
        // not a new call, whatever the limit.
        #expect(try invite("d") == .passed)
        #expect(try invite("e") == .passed)
        #expect(try invite("placed-by-server", cseq: 5, to: "<sip:x@h>;tag=s") == .passed)
        #expect(try CallTests.count(p) == (2, 0))
    }

    /// `concurrent_action: block`: the new call over the limit is refused and blocks its source for new calls, as
    /// a fraud threshold does (kind "concurrent"); a forgery from another hop distance is refused and blocks
    /// nothing.
    @Test func overTheLimitBlocksWhereTheConfigSaysSo() throws {
        var settings = Settings.defaults
        settings.trustSeconds = 3600
        let p = try CallTests.program(concurrent: [.unverified: 1, .verified: 1], blockWhenFull: true, settings: settings)
        #expect(try p.maps.fraudPolicy().blockWhenFull)
        let events = try EventReader(p.maps)
        // A verified phone, and a forger of its address at another hop distance over the stranger's limit.
        #expect(try TrustTests.register(p, "198.18.1.9", ttl: 64) == .passed)
        #expect(try p.judge(CallTests.invite("f1", src: "198.18.1.9", ttl: 50)).2 == .passed)
        #expect(try p.judge(CallTests.invite("f2", src: "198.18.1.9", ttl: 50)).2 == .droppedConcurrent)
        #expect(try p.maps.fraudBlocks(now: 1_000_000_000_000).isEmpty, "a forgery blocks nothing")

        #expect(try p.judge(CallTests.invite("a")).2 == .passed)
        #expect(try p.judge(CallTests.invite("b")).2 == .droppedConcurrent, "the call over the limit")
        let blocks = try p.maps.fraudBlocks(now: 1_000_000_000_000)
        #expect(blocks.map(\.address.description) == ["198.18.1.1"] && blocks.first?.kind == "concurrent"
                && blocks.first?.perMinute == 1, "\(blocks)")
        let fraud = events.drain().filter { $0.kind == .fraud }
        #expect(fraud.count == 1 && fraud.first?.fraudKind == "concurrent", "\(fraud)")
        try CallTests.inside(p, CallTests.server("486 Busy Here", "a"))
        #expect(try CallTests.count(p) == (0, 0))
        #expect(try p.judge(CallTests.invite("c")).2 == .droppedFraud, "blocked for new calls, room or not")
        #expect(try p.judge(CallTests.invite("d", src: "198.18.1.2")).2 == .passed, "another source calls")
    }

    /// Other sources have their own count, tiers their own limit, and a source with no limit is only counted.
    @Test func eachSourceHasItsOwnCount() throws {
        let p = try CallTests.program(concurrent: [.unverified: 1])
        #expect(try p.judge(CallTests.invite("a", src: "198.18.1.1")).2 == .passed)
        #expect(try p.judge(CallTests.invite("b", src: "198.18.1.1")).2 == .droppedConcurrent)
        #expect(try p.judge(CallTests.invite("c", src: "198.18.1.2")).2 == .passed, "another source")
        let listed = try p.maps.callers(now: 1_000_000_000_000)
        #expect(listed.map(\.address.description) == ["198.18.1.1", "198.18.1.2"] && listed.allSatisfy { $0.calls == 1 },
                "\(listed)")
        #expect(listed.first?.callsThisMinute == 1)
    }

    /// A call whose end the filter never sees is forgotten when its timer runs out: ring_seconds without a 2xx.
    @Test func aCallThatNeverEndsRunsOut() throws {
        let p = try CallTests.program(concurrent: [.unverified: 1], ringSeconds: 1)
        #expect(try p.judge(CallTests.invite("a")).2 == .passed)
        #expect(try p.judge(CallTests.invite("b")).2 == .droppedConcurrent)
        // The timer runs on the kernel's clock; wait for it (bounded), however loaded the machine.
        let deadline = Date().addingTimeInterval(20)
        while try CallTests.count(p).0 != 0, Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
        #expect(try CallTests.count(p) == (0, 0), "the ringing call ran out")
        #expect(try p.judge(CallTests.invite("c")).2 == .passed)
        // An answered call counts for call_seconds (60 at least) after its 2xx, not ring_seconds.
        try CallTests.inside(p, CallTests.server("200 OK", "c"))
        Thread.sleep(forTimeInterval: 2.5)
        #expect(try CallTests.count(p) == (1, 1), "answered: not forgotten with the ringing ones")
        // The callee chooses when it answers: a 2xx after the ring timer ran out counts the call again, up.
        try CallTests.inside(p, CallTests.server("200 OK", "a"))
        #expect(try CallTests.count(p) == (2, 2), "a late answer is counted")
        #expect(try p.judge(CallTests.invite("f")).2 == .droppedConcurrent)
        // Its BYE ends it, and a late copy of its 2xx doesn't count it again.
        try CallTests.inside(p, CallTests.server("BYE", "a"))
        try CallTests.inside(p, CallTests.server("200 OK", "a"))
        #expect(try CallTests.count(p) == (1, 1))
    }

    /// Once the server is heard, a call that rings out without a final answer read is taken as up, not as over:
    /// its 2xx may have been one the inside program could not read (made long by the caller's own Record-Route).
    @Test func aCallRungOutUnheardIsTakenAsUp() throws {
        let p = try CallTests.program(concurrent: [.unverified: 5], ringSeconds: 1)
        #expect(try p.judge(CallTests.invite("heard")).2 == .passed)
        try CallTests.inside(p, CallTests.server("486 Busy Here", "heard"))
        #expect(try p.judge(CallTests.invite("long")).2 == .passed)
        let deadline = Date().addingTimeInterval(20)
        while try CallTests.count(p).1 != 1, Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
        #expect(try CallTests.count(p) == (1, 1), "still counted, as up")
        try CallTests.inside(p, CallTests.server("200 OK", "long", cseq: "2 BYE"))
        #expect(try CallTests.count(p) == (0, 0), "until its BYE is answered")
    }

    /// Someone who forges a verified phone's address from another hop distance can't fill its calls: the calls
    /// let in from there are counted apart ("claimed"), against the stranger's limit; the phone still places its
    /// own calls, and a forged BYE or CANCEL (from another hop distance) ends none of them.
    @Test func forgedCallsDoNotFillARealSourcesCalls() throws {
        var settings = Settings.defaults
        settings.trustSeconds = 3600
        let p = try CallTests.program(concurrent: [.unverified: 2, .verified: 2], settings: settings)
        let phone = "198.18.1.1"
        #expect(try TrustTests.register(p, phone, ttl: 64) == .passed)
        #expect(try p.judge(CallTests.invite("real-1", ttl: 64)).2 == .passed)
        for n in 0..<2 {
            #expect(try p.judge(CallTests.invite("forged-\(n)", ttl: 50)).2 == .passed, "a forgery goes on as a stranger's")
        }
        #expect(try p.judge(CallTests.invite("forged-2", ttl: 50)).2 == .droppedConcurrent, "the claimed calls' limit")
        #expect(try CallTests.count(p, phone, claimed: true) == (2, 0))
        #expect(try CallTests.count(p, phone) == (1, 0), "the phone's own count is its own")
        #expect(try p.judge(CallTests.invite("real-2", ttl: 64)).2 == .passed, "the phone still calls")
        #expect(try p.judge(CallTests.request("BYE", "real-1", cseq: 2, ttl: 50)).2 == .droppedSpoofed)
        #expect(try p.judge(CallTests.request("CANCEL", "real-2", cseq: 1, ttl: 50)).2 == .droppedSpoofed)
        #expect(try CallTests.count(p, phone) == (2, 0), "forged ends end nothing")
        #expect(try p.judge(CallTests.request("BYE", "unknown", cseq: 2, ttl: 64)).2 == .passed)
        #expect(try CallTests.count(p, phone) == (2, 0), "a BYE for no call of the source's ends nothing")
        // The server answers the forgeries to the real address (the forger never sees it): a challenge ends them.
        try CallTests.inside(p, CallTests.server("407 Proxy Authentication Required", "forged-0", to: phone))
        #expect(try CallTests.count(p, phone, claimed: true) == (1, 0))
    }
}

/// Caller ID (BPF/lib/callerid.h): the numbers a listed source may present in From and P-Asserted-Identity.
@Suite struct CallerIDTests {
    static func program(_ mode: CallerIDPolicy.Mode) throws -> FloodgateProgram {
        var policy = perSourceOnly
        var settings = Settings.defaults
        settings.numbers = NumberPlan(countryCode: "44", international: ["00"], national: "0", bare: .e164)
        policy.callerID = CallerIDPolicy(mode: mode, entries: [
            try .init(sources: [try CIDR("198.18.1.0/24")], numbers: ["+44207946", "+44 161 496 0"]),
            try .init(sources: [try CIDR("198.18.9.9")], numbers: ["+331"]),
        ])
        return try loadProgram(limits: Limit.defaults.merging([.invite: .unlimited]) { $1 }, settings: settings,
                               policy: policy, testClock: true)
    }

    static func invite(_ headers: [String], src: String = "198.18.1.1", id: String = uniqueID()) -> [UInt8] {
        let to = headers.contains { $0.hasPrefix("To:") } ? [] : ["To: <sip:01134960000@198.18.0.2>"]
        return Packet.sip(["INVITE sip:01134960000@198.18.0.2 SIP/2.0", "Via: SIP/2.0/UDP \(src);branch=z9hG4bK-\(id)"]
            + headers + to + ["Call-ID: \(id)", "CSeq: 1 INVITE"], src: src)
    }

    /// Enforce: every number presented must be in the source's ranges, and at least one must be; written any way
    /// a server reads it; a number in a display name, or past a quoted '<', is not the URI's.
    @Test func enforceRefusesCallsPresentingAnotherNumber() throws {
        let p = try CallerIDTests.program(.enforce)
        func judge(_ headers: [String], src: String = "198.18.1.1") throws -> Reason? {
            try p.judge(CallerIDTests.invite(headers, src: src)).2
        }
        let good = "<sip:+442079460123@198.18.1.1>;tag=1"
        let bad = "<sip:+33123456789@198.18.1.1>;tag=1"
        #expect(try judge(["From: \(good)"]) == .passed)
        #expect(try judge(["From: \"Front desk\" <sip:02079460123@198.18.1.1;user=phone>;tag=1"]) == .passed,
                "national form, made E.164")
        #expect(try judge(["f: <tel:+44-161-496-0999>;tag=1"]) == .passed, "compact From, tel URI, the second range")
        #expect(try judge(["From: sip:00442079460123@198.18.1.1;tag=1"]) == .passed, "a bare URI, international prefix")
        #expect(try judge(["From: \(bad)"]) == .droppedCallerID)
        #expect(try judge(["From: \"+442079460123\" \(bad)"]) == .droppedCallerID, "the number in the display name isn't the URI's")
        #expect(try judge(["From: \"a \\\" <sip:+442079460123@x>\" \(bad)"]) == .droppedCallerID,
                "nor one past an escaped quote inside it")
        #expect(try judge(["From: Anonymous <sip:anonymous@anonymous.invalid>;tag=1",
                           "P-Asserted-Identity: <sip:+442079460123@198.18.1.1>"]) == .passed,
                "anonymous From, the identity in PAI")
        #expect(try judge(["From: Anonymous <sip:anonymous@anonymous.invalid>;tag=1"]) == .droppedCallerID,
                "no number at all")
        #expect(try judge(["From: \(good)", "P-Asserted-Identity: <sip:+33123456789@x>"]) == .droppedCallerID,
                "PAI out of range")
        #expect(try judge(["From: \(good)", "P-Asserted-Identity: <sip:+442079460123@x>",
                           "P-Asserted-Identity: <tel:+33123456789>"]) == .droppedCallerID, "the last PAI too")
        #expect(try judge(["From: \(good)", "P-Asserted-Identity: <sip:+442079460123@x>",
                           "P-Asserted-Identity: <tel:+442079460123>"]) == .passed, "a sip and a tel URI")
        #expect(try judge(["From: \(good)", "P-Asserted-Identity: <sip:+442079460123@x>", "P-Asserted-Identity: <tel:+442079460123>",
                           "P-Asserted-Identity: <tel:+442079460123>"]) == .droppedCallerID, "three: which one counts?")
        #expect(try judge(["From: \(good)", "From: \(bad)"]) == .droppedCallerID, "two From headers")
        #expect(try judge(["From: tel:+442079460123 <sip:+33123456789@x>;tag=1"]) == .droppedCallerID,
                "a bare URI and a bracketed one: which does the server take?")
        #expect(try judge(["From: \(good)", "P-Asserted-Identity: <sip:+442079460123@x>, <tel:+33123456789>"])
                == .droppedCallerID, "a second URI after a comma")
        #expect(try judge(["From: \"Front desk\"\r\n <sip:+33123456789@x>;tag=1",
                           "P-Asserted-Identity: <sip:+442079460123@x>"]) == .droppedCallerID, "a folded From")
        #expect(try judge(["From: \(good)", "Remote-Party-ID: \"x\" <sip:+33123456789@x>;party=calling"]) == .droppedCallerID,
                "Remote-Party-ID out of range")
        #expect(try judge(["From: \(good)", "P-Preferred-Identity: <sip:+33123456789@x>"]) == .droppedCallerID,
                "P-Preferred-Identity out of range")
        #expect(try judge(["From: \(good)", "Remote-Party-ID: <sip:+442079460123@x>;party=calling"]) == .passed)
        #expect(try judge(["From: < sip:+33123456789@x>;tag=1", "P-Asserted-Identity: <sip:+442079460123@x>"]) == .droppedCallerID,
                "a blank after '<' hides nothing (parsers skip it)")
        #expect(try judge(["From: \(good)", "P-Asserted-Identity: \"Desk, main\" <sip:+442079460123@x>, <tel:+442079460123>"]) == .passed,
                "RFC 3325's sip and tel URIs in one header, a comma in a quoted name")
        #expect(try judge(["From: tel:+442079460123,tel:+33123456789;tag=1"]) == .droppedCallerID, "a From with two values")
        #expect(try judge(["From: \(good)", "P-Asserted-Identity: tel:+442079460123,tel:+33123456789"]) == .droppedCallerID,
                "a bare tel URI ended by the comma: the next value is read too")
        #expect(try judge(["From: \(good)", "Remote-Party-ID: <sip:+442079460123@x>;party=calling",
                           "P-Preferred-Identity: <sip:+442079460123@x>"]) == .passed, "one of each is fine")
        #expect(try judge(["From: \(good)"], src: "198.18.9.9") == .droppedCallerID, "another source's ranges")
        #expect(try judge(["From: <sip:+33123456789@x>;tag=1"], src: "198.18.9.9") == .passed)
        #expect(try judge(["From: \(bad)"], src: "198.18.5.5") == .passed, "a source in no entry is not checked")
        #expect(try p.judge(CallTests.request("BYE", "x", cseq: 2)).2 == .passed, "only new calls are checked")
        #expect(try judge(["From: <sip:+33123456789@x>;tag=far", "To: <sip:+442079460123@x>;tag=near"]) == .passed,
                "a re-INVITE (To tag) on a call the server placed: its From is the far end's")
        let outcomes = try p.maps.destinationOutcomes()
        #expect(outcomes["caller-id-refused"] == 17 && outcomes["caller-id-flagged"] == 0, "\(outcomes)")
        #expect(try p.maps.counters().packets[.invite, .droppedCallerID] == 17)
    }

    /// Flag: the call goes on, counted and told to the agent with the number presented.
    @Test func flagCountsAndReports() throws {
        let p = try CallerIDTests.program(.flag)
        let events = try EventReader(p.maps)
        #expect(try p.judge(CallerIDTests.invite(["From: <sip:+33123456789@198.18.1.1>;tag=1"])).2 == .passed)
        #expect(try p.judge(CallerIDTests.invite(["From: <sip:+442079460123@198.18.1.1>;tag=1"])).2 == .passed)
        #expect(try p.maps.destinationOutcomes()["caller-id-flagged"] == 1)
        let reported = events.drain().filter { $0.kind == .callerID }
        #expect(reported.count == 1 && reported.first?.callerNumber == "+33123456789" && reported.first?.callerIDEnforced == false
                && reported.first?.address.description == "198.18.1.1", "\(reported)")
    }

    /// The policy reads back as written, and a new one replaces it whole.
    @Test func thePolicyReadsBackAndIsReplacedWhole() throws {
        let p = try CallerIDTests.program(.enforce)
        let read = try p.maps.callerIDPolicy()
        #expect(read.mode == .enforce && read.entries.count == 2, "\(read)")
        #expect(read.entries.first?.numbers == ["441614960", "44207946"] && read.entries.first?.sources.map(\.description) == ["198.18.1.0/24"])
        let next = CallerIDPolicy(mode: .flag, entries: [try .init(sources: [try CIDR("198.18.1.0/24")], numbers: ["+4420"])])
        try p.maps.setCallerIDPolicy(next)
        #expect(try p.maps.callerIDPolicy() == next)
        #expect(try p.judge(CallerIDTests.invite(["From: <sip:+33123456789@x>;tag=1"], src: "198.18.9.9")).2 == .passed,
                "the removed entry checks nothing")
        try p.maps.setCallerIDPolicy(CallerIDPolicy())
        #expect(try p.maps.callerIDPolicy() == CallerIDPolicy())
    }

    /// Random From values built from what a reframer would vary (display names as tokens or quoted, with '<', '>',
    /// digits, escaped quotes and backslashes in them; bare URIs and bracketed ones; the dialled-number generator's
    /// user parts; parameters; values cut short by the line's end) under random number plans and ranges: the
    /// program's verdict in enforce mode is that of a second reading written from lib/callerid.h's description
    /// (find the URI, then read it as a Request-URI is read). FLOODGATE_DIFF_SEED=N replays a failure.
    @Test func theProgramReadsCallerNumbersAsTheModelDoes() throws {
        let seed = ProcessInfo.processInfo.environment["FLOODGATE_DIFF_SEED"].flatMap(UInt64.init) ?? UInt64.random(in: 1...UInt64.max / 2)
        var rng = SplitMix64(seed: seed)
        func pick<T>(_ items: [T]) -> T { items[Int(rng.next() % UInt64(items.count))] }
        func chance(_ p: Double) -> Bool { Double(rng.next() % 10_000) / 10_000 < p }
        func digits(_ n: Int) -> String { String((0..<n).map { _ in Character(String(rng.next() % 10)) }) }
        let stems = ["44", "4420", "442079", "1", "1212", "49", "4930", "33", "0", "00", "011"]

        /// Where the URI of a From value starts (the scheme's first byte), and whether it is in angle brackets, as
        /// the description says; nil: none on the line.
        func uriStart(_ v: [UInt8]) -> (Int, Bool)? {
            var i = 0
            while i < v.count, v[i] == 0x20 || v[i] == 0x09 { i += 1 }
            // A scheme at the start: a bare URI.
            var j = i, letters = 0
            while j < v.count, letters < 4, v[j] >= UInt8(ascii: "A"), v[j] != UInt8(ascii: ":") { j += 1; letters += 1 }
            if j < v.count, v[j] == UInt8(ascii: ":") { return (i, false) }
            // A display name, then '<' outside quotes.
            var quoted = false, escaped = false
            while i < v.count {
                let b = v[i]
                if b == 0x0D || b == 0x0A { return nil }
                if escaped { escaped = false } else if quoted {
                    if b == UInt8(ascii: "\\") { escaped = true } else if b == UInt8(ascii: "\"") { quoted = false }
                } else if b == UInt8(ascii: "\"") { quoted = true } else if b == UInt8(ascii: "<") { return (i + 1, true) }
                i += 1
            }
            return nil
        }

        /// Does the rest of the line, from `i`, hold no second URI (',' or '<' outside quotes and brackets)?
        func tailClean(_ v: [UInt8], from start: Int, inAngle: Bool, budget: Int) -> Bool {
            var angle = inAngle, quoted = false, escaped = false
            var i = start
            while i < v.count, i - start < budget {
                let b = v[i]
                i += 1
                if b == 0x0D || b == 0x0A { return true }
                if angle {
                    if b == UInt8(ascii: ">") { angle = false }
                } else if escaped { escaped = false } else if quoted {
                    if b == UInt8(ascii: "\\") { escaped = true } else if b == UInt8(ascii: "\"") { quoted = false }
                } else if b == UInt8(ascii: "\"") { quoted = true } else if b == UInt8(ascii: "<") || b == UInt8(ascii: ",") {
                    return false
                }
            }
            return false
        }

        var seen: [String: Int] = [:]
        var compared = 0
        for _ in 0..<5 {
            var plan = NumberPlan()
            plan.countryCode = pick(["44", "1", "49"])
            plan.international = pick([["00"], ["011"], ["00", "011"]])
            plan.national = pick(["0", ""])
            plan.bare = pick(BareNumbers.allCases)
            try plan.validate()
            let ranges = Array(Set((0..<Int(1 + rng.next() % 4)).map { _ in pick(["44", "4420", "442079", "1212", "4930", "33"]) }))
            var policy = FilterPolicy.perSourceOnly
            policy.settings.numbers = plan
            policy.limits[.invite] = .unlimited
            policy.callerID = CallerIDPolicy(mode: .enforce, entries: [try .init(sources: [try CIDR("198.18.1.0/24")], numbers: ranges)])
            let program = try loadProgram(limits: policy.limits, settings: policy.settings, policy: policy)
            for n in 0..<240 {
                var user = chance(0.4) ? pick(["+", "+", "%2B", "++"]) : ""
                // A third of them a number in one of the ranges, written as its owner would.
                if chance(0.33) { user = pick(["+", "00", "%2B"]) + pick(ranges) + digits(Int(rng.next() % 8)) }
                for _ in 0..<Int(user.count > 4 ? rng.next() % 2 : 1 + rng.next() % 3) {
                    switch rng.next() % 8 {
                    case 0...3: user += pick(stems) + digits(Int(rng.next() % 9))
                    case 4: user += pick(["-", ".", "(", ")", "%2D"])
                    case 5: user += pick(["anonymous", "abc", "*67", "%41", "?", ";isub=1"])
                    default: user += digits(Int(rng.next() % 14))
                    }
                }
                let scheme = chance(0.9) ? pick(["sip:", "sips:", "tel:", "SIP:"]) : pick(["mailto:", "si:", ""])
                var uri = scheme + user
                if !scheme.lowercased().hasPrefix("tel") || chance(0.2) { uri += pick(["@198.18.1.1", "@h;user=phone", "", "@"]) }
                let inner = pick(["", "\\\"", "<", ">", "\\\\", "+442079460000", "<sip:+442079460000@x>", "a b", "\\"])
                let name = pick(["", "", "Alice ", "123 ", "\"\(inner)\" ", "\"\(inner)\"", "\"Bob \(inner) x\" ", "sip ", "<"])
                var value: String
                switch rng.next() % 5 {
                case 0: value = uri + pick([";tag=1", ""])
                case 1: value = name + uri + ";tag=1"
                default: value = name + "<" + uri + pick([">;tag=1", ">", ";x>", ""])
                }
                // A second URI after it, as lenient parsers might take instead.
                if chance(0.15) { value += pick([", <tel:+33123456789>", " <sip:+442079460000@x>", ";x=\",<\"", ",", " \"<\""]) }
                let text = "INVITE sip:100@198.18.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 198.18.1.1;branch=z9hG4bK-\(n)\r\n"
                    + "From: \(value)\r\nTo: <sip:100@198.18.0.2>\r\nCall-ID: d\(n)@x\r\nCSeq: 1 INVITE\r\n\r\n"
                let (_, c, r) = try program.judge(Packet.sipRaw(Array(text.utf8)))
                guard c == .invite, r == .passed || r == .droppedCallerID else {
                    Issue.record("seed \(seed): \(text.debugDescription): \(String(describing: c)) \(String(describing: r))")
                    return
                }
                // The model: the URI's start, then its number read as a Request-URI's (after a method and a
                // blank), within the bytes the walk reads from the value's start.
                let valueBytes = Array(value.utf8) + Array("\r\nTo: <sip:100@198.18.0.2>\r\n".utf8)
                var expected = Reason.droppedCallerID
                var kind = "no URI"
                let budget = (Int(FG_RURI_BYTES) / 16 + 1) * 16
                if let (start, bracketed) = uriStart(valueBytes) {
                    let rest = Array(valueBytes[start...])
                    let (read, stop) = DialledNumber.readStopping(Array("I ".utf8) + rest, end: 2 + min(rest.count, max(0, budget - start)))
                    let after = start + stop - 2
                    let last = valueBytes[after - 1]
                    let inAngle = bracketed && last != UInt8(ascii: ">")
                    // A bare URI (a tel number) may end at the ',' or '<' itself: a second value or URI.
                    let endedBySecond = !bracketed && (last == UInt8(ascii: ",") || last == UInt8(ascii: "<"))
                    switch read {
                    case .unreadable: kind = "unreadable"
                    case _ where endedBySecond || !tailClean(valueBytes, from: after, inAngle: inAngle, budget: 2048): kind = "two URIs"
                    case .none: kind = "not a number"
                    case .found(let d, let plus):
                        if let number = plan.e164(digits: d, plus: plus) {
                            if ranges.contains(where: { number.hasPrefix($0) }) { expected = .passed; kind = "in range" } else {
                                kind = "out of range"
                            }
                        } else { kind = "local" }
                    }
                }
                seen[kind, default: 0] += 1
                compared += 1
                #expect(r == expected, "seed \(seed): From: \(value.debugDescription) (\(kind)), plan \(plan), ranges \(ranges)")
                if r != expected { return }
            }
        }
        #expect(compared >= 1000, "seed \(seed)")
        for kind in ["no URI", "not a number", "in range", "out of range", "two URIs"] {
            #expect(seen[kind, default: 0] >= 20, "seed \(seed): \(seen)")
        }
    }
}
