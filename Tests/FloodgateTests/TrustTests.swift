import CFloodgate
@testable import FloodgateBPF
import FloodgateCore
import FloodgateLab
import Foundation
import Testing

/// The inside program (BPF/lib/trust.h) through BPF_PROG_TEST_RUN: the SIP server's answers as they leave
/// towards external sources, matched to the requests the external program let in, and what they do to its
/// verdicts.
@Suite struct TrustTests {
    /// A SIP response from the server (`from`:5060) to `destination`:5070, naming the transaction (Call-ID, CSeq)
    /// that `Packet.request` sends by default.
    static func response(
        _ status: String, to destination: String, cseq: String = "1 REGISTER", callID: String? = nil,
        from server: String = "198.18.2.2", extra: [String] = []
    ) -> [UInt8] {
        let text = (["SIP/2.0 \(status)", "Via: SIP/2.0/UDP \(destination):5070;branch=z9hG4bK-1",
                     "From: <sip:100@198.18.2.2>;tag=1", "To: <sip:100@198.18.2.2>;tag=2",
                     "Call-ID: \(callID ?? "1@\(destination)")", "CSeq: \(cseq)"] + extra + ["Content-Length: 0"])
            .joined(separator: "\r\n") + "\r\n\r\n"
        return Packet.ethernet(Packet.EtherType.ipv4, Packet.ipv4(
            src: server, dst: destination, proto: Packet.Proto.udp,
            Packet.udp(sport: 5060, dport: 5070, Array(text.utf8))))
    }

    static let credentials = credentials(nonce: "abc")

    /// An Authorization header answering `nonce` (a wrong password or a right one: the filter cannot tell).
    static func credentials(nonce: String) -> String {
        "Authorization: Digest username=\"100\", realm=\"198.18.2.2\", nonce=\"\(nonce)\", "
            + "uri=\"sip:198.18.2.2\", response=\"0123456789abcdef0123456789abcdef\""
    }

    /// The server's challenge header with `nonce`.
    static func challengeHeader(_ nonce: String, algorithm: String = "MD5") -> String {
        "WWW-Authenticate: Digest realm=\"198.18.2.2\", nonce=\"\(nonce)\", algorithm=\(algorithm)"
    }

    /// A REGISTER from `address` whose credentials answer `nonce`, and the server's `answer` to it if it was let in.
    static func credentialedRegister(_ p: FloodgateProgram, _ address: String, nonce: String, call: String, n: Int = 1,
                                     answer: String = "200 OK", extra: [String] = []) throws -> Reason? {
        let reason = try p.judge(Packet.request("REGISTER", src: address, extra: [credentials(nonce: nonce)],
                                                callID: call, cseq: "\(n) REGISTER")).2
        if reason == .passed {
            try inside(p, response(answer, to: address, cseq: "\(n) REGISTER", callID: call, extra: extra))
        }
        return reason
    }

    /// A filter that counts failures and learns trust; its auto-ban bans at 50 drops in 10 s.
    static func program(failures: UInt32 = 3, policy: FilterPolicy = FilterPolicy(), testClock: Bool = false) throws
        -> FloodgateProgram
    {
        var settings = Settings.defaults
        settings.bruteForce = BruteForce(failures: failures, windowSeconds: 60, banSeconds: 60)
        settings.trustSeconds = 60
        settings.autoBan.drops = 50
        settings.autoBan.windowMilliseconds = 10_000
        return try loadProgram(settings: settings, policy: policy, testClock: testClock)
    }

    static func inside(_ program: FloodgateProgram, _ frame: [UInt8]) throws {
        let action = try FloodgateProgram.testRun(programFD: program.insideProgramFD, packet: frame).action
        #expect(action == XDP_PASS_ACTION, "the inside program passes everything")
    }

    /// The server's challenge to `address` (as to its first REGISTER): the nonce its credentials then answer.
    static func challenge(_ p: FloodgateProgram, _ address: String, nonce: String = "abc") throws {
        try inside(p, response("401 Unauthorized", to: address, callID: "challenge-\(nonce)",
                               extra: [challengeHeader(nonce)]))
    }

    /// A phone at `address` is challenged, registers with credentials (Call-ID `call`, CSeq `n`) at `ttl`, and
    /// the server answers 200: the way a source becomes verified.
    static func register(_ p: FloodgateProgram, _ address: String, ttl: UInt8 = 64, call: String = "reg-1", n: Int = 1,
                         answer: String = "200 OK") throws -> Reason? {
        try challenge(p, address)
        let reason = try p.judge(Packet.request("REGISTER", src: address, extra: [credentials], callID: call,
                                                cseq: "\(n) REGISTER", ttl: ttl)).2
        try inside(p, response(answer, to: address, cseq: "\(n) REGISTER", callID: call))
        return reason
    }

    /// The server's answer with `vias` Via lines of 110 bytes (echoed from a request) before From, To, Call-ID,
    /// CSeq and a challenge, and `first` before them all: twelve push the Call-ID past any first fragment.
    static func answerPastTheMTU(_ status: String, callID: String, vias: Int = 12, first: [String] = []) -> [UInt8] {
        let via = (0..<vias).map { "Via: SIP/2.0/UDP 198.18.6.\($0 + 1):5060;branch=z9hG4bK-" + String(repeating: "v", count: 70) }
        let lines = ["SIP/2.0 \(status)"] + first + via + ["From: <sip:100@198.18.2.2>;tag=1",
            "To: <sip:100@198.18.2.2>;tag=2", "Call-ID: \(callID)", "CSeq: 1 REGISTER",
            "WWW-Authenticate: Digest realm=\"198.18.2.2\", nonce=\"n-\(callID)\"", "Content-Length: 0"]
        return Array((lines.joined(separator: "\r\n") + "\r\n\r\n").utf8)
    }

    /// The first fragment of `text` sent over UDP from `server`:5060 to `destination` (IPv4 or IPv6, IP ID `id`):
    /// its first 1,232 bytes of the datagram (within IPv6's minimum MTU), more to come.
    static func firstFragment(_ text: [UInt8], to destination: String, from server: String = "198.18.2.2",
                              id: UInt32 = 7) -> [UInt8] {
        let datagram = Packet.udp(sport: 5060, dport: 5070, text)
        #expect(datagram.count > 1_232, "the answer needs fragments")
        let fragment = Array(datagram.prefix(1_232))
        return destination.contains(":")
            ? Packet.ethernet(Packet.EtherType.ipv6, Packet.ipv6(
                src: server, dst: destination, proto: Packet.Proto.udp, fragment,
                extensions: [(Packet.Proto.fragment, Packet.fragmentBody(offset: 0, more: true, id: id))]))
            : Packet.ethernet(Packet.EtherType.ipv4, Packet.ipv4(
                src: server, dst: destination, proto: Packet.Proto.udp, fragment, moreFragments: true,
                id: UInt16(truncatingIfNeeded: id)))
    }

    static func trusted(_ p: FloodgateProgram) throws -> [String: TrustedSource] {
        Dictionary(uniqueKeysWithValues: try p.maps.trustedSources().map { ($0.address.description, $0) })
    }

    /// 401s to REGISTERs that carried credentials are failures; the third bans the source. A phone whose every
    /// first REGISTER is challenged (no credentials yet) and then accepted is never banned.
    @Test func failedAuthenticationsBanButFirstChallengesDoNot() throws {
        let p = try TrustTests.program()
        let guesser = "198.18.5.5", phone = "198.18.5.6"
        for round in 1...3 {
            #expect(try TrustTests.register(p, guesser, call: "g\(round)", answer: "401 Unauthorized") == .passed)
            let ban = p.maps.ban(of: SourceAddress(guesser)!)
            #expect((ban != nil) == (round == 3), "round \(round): \(String(describing: ban))")
        }
        let ban = try #require(p.maps.ban(of: SourceAddress(guesser)!))
        #expect(ban.bruteForce && ban.origin == "brute-force")
        #expect(try p.judge(Packet.request("REGISTER", src: guesser)).2 == .droppedBan)

        for round in 1...5 {
            let call = "p\(round)"
            #expect(try p.judge(Packet.request("REGISTER", src: phone, callID: call, cseq: "1 REGISTER")).2 == .passed)
            try TrustTests.inside(p, TrustTests.response("401 Unauthorized", to: phone, cseq: "1 REGISTER", callID: call))
            #expect(try TrustTests.register(p, phone, call: call, n: 2) == .passed)
        }
        #expect(p.maps.ban(of: SourceAddress(phone)!) == nil)
        // Proxy-Authorization counts as credentials too, in any case; 407 and 403 are failures.
        let other = "198.18.5.7"
        for (n, status) in [(1, "407 Proxy Authentication Required"), (2, "403 Forbidden")] {
            #expect(try p.judge(Packet.request("INVITE", src: other, extra: ["proxy-authorization: Digest x"],
                                               callID: "o", cseq: "\(n) INVITE")).2 == .passed)
            try TrustTests.inside(p, TrustTests.response(status, to: other, cseq: "\(n) INVITE", callID: "o"))
        }
        #expect(p.maps.ban(of: SourceAddress(other)!) == nil)
        #expect(try p.judge(Packet.request("INVITE", src: other, extra: ["proxy-authorization: Digest x"],
                                           callID: "o", cseq: "3 INVITE")).2 == .passed)
        try TrustTests.inside(p, TrustTests.response("403 Forbidden", to: other, cseq: "3 INVITE", callID: "o"))
        #expect(p.maps.ban(of: SourceAddress(other)!)?.bruteForce == true)
    }

    /// A Call-ID is hashed whole, however long (the header walk takes a value up to four words a step, and a long
    /// one over several steps): an answer whose Call-ID differs from the request's only at its 41st byte, past the
    /// walk's first step for the value, or only in its last byte, matches nothing, and the exact one verifies the
    /// phone. A forger who knows a Call-ID's start can't complete someone else's transaction with it.
    @Test func aLongCallIDIsMatchedWhole() throws {
        let p = try TrustTests.program()
        let phone = "198.18.5.30"
        let call = String(repeating: "0123456789", count: 5) + "@198.18.5.30"
        try TrustTests.challenge(p, phone)
        #expect(try p.judge(Packet.request("REGISTER", src: phone, extra: [TrustTests.credentials], callID: call,
                                           cseq: "1 REGISTER")).2 == .passed)
        for forged in [String(call.prefix(40)) + "X" + String(call.dropFirst(41)), String(call.dropLast()) + "1"] {
            #expect(forged.count == call.count && forged != call)
            try TrustTests.inside(p, TrustTests.response("200 OK", to: phone, callID: forged))
            #expect(try TrustTests.trusted(p)[phone] == nil, "verified by an answer naming \(forged)")
        }
        try TrustTests.inside(p, TrustTests.response("200 OK", to: phone, callID: call))
        #expect(try TrustTests.trusted(p)[phone] != nil, "the answer naming the request's own Call-ID verifies it")
    }

    /// A nonce is hashed a word at a time (BPF/lib/scanner.h, fg_nonce_mix), from its value's first byte: credentials
    /// answer the challenge whatever the nonce's length, wherever its words fall in either frame (a username of 1 to
    /// 8 bytes before it shifts them), and whether the credentials quote it or not. A forger's answer that differs in
    /// any one byte, has a byte more (a NUL too, or its short last word's length) or one fewer verifies nothing: not
    /// one hash of a word's stale bytes past the value's end, nor a short last word taken for a longer one.
    @Test func aNonceIsMatchedWholeWhateverItsLengthPlaceAndQuoting() throws {
        let p = try TrustTests.program(failures: 1000, policy: perSourceOnly)
        var n = 0
        func verifies(_ challenge: String, _ answer: String, pad: Int, quoted: Bool) throws -> Bool {
            n += 1
            let address = "198.18.30.\(n)"
            try TrustTests.inside(p, TrustTests.response(
                "401 Unauthorized", to: address, callID: "c\(n)",
                extra: ["WWW-Authenticate: Digest realm=\"198.18.2.2\", nonce=\"\(challenge)\", algorithm=MD5"]))
            let auth = "Authorization: Digest username=\"\(String(repeating: "1", count: 1 + pad % 8))\", nonce="
                + (quoted ? "\"\(answer)\"" : answer) + ", uri=\"sip:198.18.2.2\", response=\"0\""
            let reason = try p.judge(Packet.request("REGISTER", src: address, extra: [auth], callID: "r\(n)",
                                                    cseq: "1 REGISTER")).2
            #expect(reason == .passed, "\(auth)")
            try TrustTests.inside(p, TrustTests.response("200 OK", to: address, callID: "r\(n)"))
            return try TrustTests.trusted(p)[address] != nil
        }
        let hex = Array("0123456789abcdef")
        func nonce(_ length: Int) -> String { String((0..<length).map { hex[($0 * 7 + length) % 16] }) }
        for length in [1, 2, 7, 8, 9, 15, 16, 17, 24, 31, 33, 47, 64, 100] {
            #expect(try verifies(nonce(length), nonce(length), pad: length, quoted: length % 2 == 0), "\(length) bytes")
        }
        let long = nonce(32)
        for pad in 0..<8 {
            for quoted in [true, false] {
                #expect(try verifies(long, long, pad: pad, quoted: quoted), "pad \(pad), quoted \(quoted)")
            }
        }
        for (challenge, quoted) in [(long, true), (nonce(9), false), (nonce(31), true)] {
            var forged = (0..<challenge.count).map { i in
                var bytes = Array(challenge)
                bytes[i] = "Z"
                return String(bytes)
            }
            // One byte more: a digit, a NUL, and the byte that is the short last word's length (7 of the 31).
            forged += [challenge + "0", challenge + "\u{0}", challenge + "\u{7}", String(challenge.dropLast()),
                       challenge + challenge]
            for (i, answer) in forged.enumerated() {
                #expect(try !verifies(challenge, answer, pad: i, quoted: quoted), "\(challenge) answered by \(answer)")
            }
        }
    }

    /// The parameters' names are read a word at a time (BPF/lib/scanner.h, fg_scan_params): the separators before a
    /// name up to a word at once, then "nonce" or "stale" in any case with the byte after it, in one turn. A name
    /// counts whole and only after a separator (a comma, a blank, a tab), with blanks allowed before its `=`; the
    /// first nonce is the one answered. A forger's near names (cnonce, nonces, nonc, a colon for the `=`, a `;` for
    /// the separator) must neither verify an answer nor pass for stale=true, which would spare a guess its failure.
    @Test func aNonceOrStaleCountsByItsWholeNameAfterASeparatorInAnyCase() throws {
        let p = try TrustTests.program(failures: 1000, policy: perSourceOnly)
        var n = 0
        // `~` stands for the challenge's nonce.
        func verifies(_ params: String) throws -> Bool {
            n += 1
            let address = "198.18.31.\(n)", nonce = "4b6f\(n)e2a9c"
            try TrustTests.inside(p, TrustTests.response(
                "401 Unauthorized", to: address, callID: "c\(n)",
                extra: ["WWW-Authenticate: Digest realm=\"198.18.2.2\", nonce=\"\(nonce)\""]))
            let auth = "Authorization: Digest " + params.replacingOccurrences(of: "~", with: nonce)
            let reason = try p.judge(Packet.request("REGISTER", src: address, extra: [auth], callID: "r\(n)",
                                                    cseq: "1 REGISTER")).2
            #expect(reason == .passed, "\(auth)")
            try TrustTests.inside(p, TrustTests.response("200 OK", to: address, callID: "r\(n)"))
            return try TrustTests.trusted(p)[address] != nil
        }
        let answers = [
            "nonce=\"~\"", "NONCE=\"~\"", "NoNcE=~", "nonce =\"~\"", "nonce\t= \t\"~\"", "nonce  =~",
            "username=\"u\",nonce=\"~\"", "username=\"u\" ,\t, nonce=\"~\"", "realm=\"r\",  \t        nonce=\"~\"",
            "cnonce=\"zz\", nonce=\"~\"", "nc=1,nonce=~", "nonce=\"~\", nonce=\"zz\"", "nonce,nonce=\"~\"",
            "nonces=x, nonce=\"~\"", "nonc=x,nonce=~", "stale=false, nonce=\"~\"", "s=1,n=2,nonce=\"~\"",
        ]
        for params in answers {
            #expect(try verifies(params), "\(params) answers the challenge")
        }
        let forged = [
            "cnonce=\"~\"", "xnonce=\"~\"", "nonces=\"~\"", "nonc=\"~\"", "nonce:\"~\"", "nonce\"~\"",
            "_nonce=\"~\"", "username=\"u\";nonce=\"~\"", "nonce=\"zz\", nonce=\"~\"", "n0nce=\"~\"",
            // After a separator, the byte that differs from it in the lowest bit only (the comma's -, the blank's !,
            // the tab's backspace): the usual zero-byte test's borrow would flag it as a separator too.
            "username=\"u\", !nonce=\"~\"", "username=\"u\",-nonce=\"~\"", "username=\"u\",\t\u{8}nonce=\"~\"",
            // A line break where a name would begin.
            "username=\"u\",\t\nnonce=\"~\"",
        ]
        for params in forged {
            #expect(try !verifies(params), "\(params) answers nothing")
        }

        // stale=true in a challenge spares the credentials it answers their failure; a near name does not. One
        // failure bans.
        let q = try TrustTests.program(failures: 1, policy: perSourceOnly)
        func bans(_ params: String) throws -> Bool {
            n += 1
            let address = "198.18.32.\(n)"
            #expect(try q.judge(Packet.request("REGISTER", src: address, extra: [TrustTests.credentials],
                                               callID: "s\(n)", cseq: "1 REGISTER")).2 == .passed)
            try TrustTests.inside(q, TrustTests.response(
                "401 Unauthorized", to: address, callID: "s\(n)",
                extra: ["WWW-Authenticate: Digest realm=\"x\", nonce=\"n\(n)\", " + params]))
            return q.maps.ban(of: SourceAddress(address)!)?.bruteForce == true
        }
        for params in ["stale=true", "STALE=TRUE", "Stale = True", "stale=\"true\"", "stale= \t\"TRUE\"",
                       "algorithm=MD5,stale=true", "qop=\"auth\",  \t       stale=true"] {
            #expect(try !bans(params), "\(params) is stale=true")
        }
        for params in ["xstale=true", "stales=true", "stale=tru", "stale=false", "cstale=true", "stale:true",
                       "qop=auth;stale=true", "algorithm=MD5"] {
            #expect(try bans(params), "\(params) is not stale=true")
        }
    }

    /// What does not count as a failure: a 401 with stale=true (an old nonce, not a wrong password), a 403 to a
    /// request without credentials, and answers naming a transaction the source never sent. A 2xx clears nothing:
    /// an account holder guessing at other accounts would log in between its guesses.
    @Test func onlyMatchedAnswersToCredentialedRequestsAreFailures() throws {
        let p = try TrustTests.program(failures: 2)
        let phone = "198.18.5.20"
        for round in 1...4 {
            #expect(try p.judge(Packet.request("REGISTER", src: phone, extra: [TrustTests.credentials],
                                               callID: "s\(round)", cseq: "1 REGISTER")).2 == .passed)
            try TrustTests.inside(p, TrustTests.response(
                "401 Unauthorized", to: phone, callID: "s\(round)",
                extra: ["WWW-Authenticate: Digest realm=\"x\", nonce=\"n\(round)\", STALE=TRUE, algorithm=MD5"]))
        }
        for round in 1...4 {
            #expect(try p.judge(Packet.request("REGISTER", src: phone, callID: "n\(round)")).2 == .passed)
            try TrustTests.inside(p, TrustTests.response("403 Forbidden", to: phone, callID: "n\(round)"))
            try TrustTests.inside(p, TrustTests.response("401 Unauthorized", to: phone, callID: "never-sent-\(round)"))
        }
        #expect(p.maps.ban(of: SourceAddress(phone)!) == nil)
        // One failure, then a success, then a second failure: banned.
        #expect(try TrustTests.register(p, phone, call: "f1", answer: "401 Unauthorized") == .passed)
        #expect(try TrustTests.register(p, phone, call: "ok") == .passed)
        #expect(p.maps.ban(of: SourceAddress(phone)!) == nil)
        #expect(try TrustTests.register(p, phone, call: "f2", answer: "401 Unauthorized") == .passed)
        #expect(p.maps.ban(of: SourceAddress(phone)!)?.bruteForce == true)
    }

    /// A request from another hop distance than a verified source's pin may be a forger's, but its failure is
    /// excused only if unproven: a guesser holding the account that sends its guesses at another TTL, answering the
    /// address's own challenges, is counted and banned. Made-up credentials from there are counted apart: they
    /// quarantine the address's credentials from other hop distances only, and are then dropped as spoofed; at its
    /// pin the address's credentials are not touched.
    @Test func aVerifiedGuesserAtAnotherTTLIsCountedAndAForgerThereOnlyQuarantines() throws {
        let p = try TrustTests.program(failures: 3)
        let guesser = "198.18.6.10", phone = "198.18.6.11"
        for address in [guesser, phone] { #expect(try TrustTests.register(p, address, ttl: 64) == .passed) }
        for round in 1...3 {
            #expect(p.maps.ban(of: SourceAddress(guesser)!) == nil, "round \(round)")
            #expect(try TrustTests.register(p, guesser, ttl: 40, call: "g\(round)", n: 2,
                                             answer: "401 Unauthorized") == .passed)
        }
        #expect(p.maps.ban(of: SourceAddress(guesser)!)?.bruteForce == true, "its own challenges' failures count")

        let auth = "Authorization: Digest username=\"200\", nonce=\"made-up\", response=\"0\""
        func forged(_ n: Int) throws -> Reason? {
            try p.judge(Packet.request("REGISTER", src: phone, extra: [auth], callID: "f\(n)", cseq: "1 REGISTER", ttl: 40)).2
        }
        for n in 1...3 {
            #expect(try forged(n) == .passed)
            try TrustTests.inside(p, TrustTests.response("401 Unauthorized", to: phone, callID: "f\(n)"))
        }
        #expect(p.maps.ban(of: SourceAddress(phone)!) == nil)
        let trust = try TrustTests.trusted(p)[phone]
        #expect(trust?.awayQuarantineUntilSeconds != nil && trust?.quarantineUntilSeconds == nil)
        #expect(try forged(4) == .droppedSpoofed)
        #expect(try p.judge(Packet.request("REGISTER", src: phone, extra: [auth], callID: "pin", cseq: "1 REGISTER",
                                           ttl: 64)).2 == .passed, "at its pin: not quarantined")
        #expect(try TrustTests.register(p, phone, ttl: 64, call: "own", n: 3) == .passed)
    }

    /// The operator lifts a quarantine (`floodgate unquarantine`), at the pin and from elsewhere, each where it is
    /// in force. The counts of unproven failures start afresh, so that as many again as a quarantine takes put it
    /// back; the proven failures stay counted. Nothing is lifted from a source with no quarantine in force, nor
    /// from one not verified (or no longer).
    @Test func anOperatorLiftsAQuarantineAndItsUnprovenCountsStartAfresh() throws {
        let p = try TrustTests.program(failures: 3)
        let phone = "198.18.6.12", address = SourceAddress("198.18.6.12")!
        #expect(try TrustTests.register(p, phone, ttl: 64) == .passed)
        #expect(try p.maps.liftQuarantine(of: address).any == false, "no quarantine in force")
        #expect(try p.maps.liftQuarantine(of: SourceAddress("198.18.6.13")!).any == false, "not verified")
        let auth = "Authorization: Digest username=\"200\", nonce=\"made-up\", response=\"0\""
        func forged(_ n: Int, ttl: UInt8) throws -> Reason? {
            try p.judge(Packet.request("REGISTER", src: phone, extra: [auth], callID: "q\(n)", cseq: "1 REGISTER",
                                       ttl: ttl)).2
        }
        func failed(_ n: Int, ttl: UInt8) throws {
            #expect(try forged(n, ttl: ttl) == .passed, "q\(n) at TTL \(ttl)")
            try TrustTests.inside(p, TrustTests.response("401 Unauthorized", to: phone, callID: "q\(n)"))
        }
        // Quarantined at its pin; two unproven failures from elsewhere, one short of a quarantine there; two
        // proven failures (its own challenges answered), one short of a ban.
        for n in 1...3 { try failed(n, ttl: 64) }
        #expect(try forged(4, ttl: 64) == .droppedUnproven)
        for n in 5...6 { try failed(n, ttl: 40) }
        for g in 1...2 {
            #expect(try TrustTests.register(p, phone, call: "g\(g)", n: 2, answer: "401 Unauthorized") == .passed)
        }
        #expect(p.maps.ban(of: address) == nil)

        #expect(try p.maps.liftQuarantine(of: address, now: monotonicNanoseconds() + 3_600_000_000_000).any == false,
                "an hour on, the source is no longer verified")
        #expect(try p.maps.liftQuarantine(of: address) == .init(atPin: true, elsewhere: false))
        #expect(try TrustTests.trusted(p)[phone]?.quarantineUntilSeconds == nil)
        #expect(try forged(7, ttl: 64) == .passed, "lifted at the pin")
        // The count from elsewhere started afresh: a third failure there does not quarantine; three do.
        try failed(8, ttl: 40)
        #expect(try forged(9, ttl: 40) == .passed, "one of three since the lift")
        for n in 10...11 { try failed(n, ttl: 40) }
        #expect(try forged(12, ttl: 40) == .droppedSpoofed)
        #expect(try p.maps.liftQuarantine(of: address) == .init(atPin: false, elsewhere: true))
        #expect(try forged(13, ttl: 40) == .passed, "lifted from elsewhere")
        #expect(try p.maps.liftQuarantine(of: address).any == false, "nothing left to lift")
        // The proven failures were kept: the third bans.
        #expect(try TrustTests.register(p, phone, call: "g3", n: 2, answer: "401 Unauthorized") == .passed)
        #expect(p.maps.ban(of: address)?.bruteForce == true)
        #expect(try TrustTests.trusted(p)[phone] != nil, "a lift leaves the verification as it was")
    }

    /// A guesser that makes the server's refusals unreadable: long headers it echoes (here twelve Via lines) push
    /// the answer past the MTU, and its first fragment ends before the Call-ID and CSeq that name the transaction.
    /// Such a refusal over UDP is a failure of the address it goes to, against one of its credentialed requests
    /// still unanswered, which it uses up; but not of a verified address, in whose name a forger could have sent
    /// that request. With none pending (a first challenge that fragments) it counts for nothing, and a refusal sent
    /// again counts once. A first fragment that names a noted transaction counts as a whole answer would; a stale
    /// challenge and a 200 in a first fragment count for nothing. Over TCP a segment may start anywhere in the
    /// stream: one that starts like a refusal and names no transaction (bytes someone put in a message relayed to
    /// the address) counts for nothing.
    @Test func aRefusalWhoseTransactionCannotBeReadIsAFailureOfItsDestination() throws {
        let p = try TrustTests.program(failures: 3)
        let guesser = "198.18.6.20", phone = "198.18.6.21", other = "198.18.6.22", caller = "198.18.6.23"
        func answer(_ status: String, to destination: String, callID: String, vias: Int, first: [String] = [])
            -> [UInt8]
        {
            TrustTests.answerPastTheMTU(status, callID: callID, vias: vias, first: first)
        }
        func firstFragment(_ text: [UInt8], to destination: String) -> [UInt8] {
            TrustTests.firstFragment(text, to: destination)
        }
        func unreadable(to destination: String, callID: String) throws {
            try TrustTests.inside(p, firstFragment(answer("401 Unauthorized", to: destination, callID: callID, vias: 12),
                                                   to: destination))
        }
        /// A credentialed REGISTER from `source`, let in and noted.
        func guess(from source: String, _ callID: String) throws {
            #expect(try p.judge(Packet.request("REGISTER", src: source, extra: [TrustTests.credentials], callID: callID,
                                               cseq: "1 REGISTER")).2 == .passed, "\(source) \(callID)")
        }
        func counts() throws -> [String: UInt64] { try p.maps.insideCounts() }

        // An unverified guesser: its third unreadable refusal bans it. Sent again, one counts once.
        for n in 1...3 {
            #expect(p.maps.ban(of: SourceAddress(guesser)!) == nil, "\(n)")
            try guess(from: guesser, "g\(n)")
            for _ in 1...(n == 1 ? 3 : 1) { try unreadable(to: guesser, callID: "g\(n)") }
            if n == 1 {
                let c = try counts()
                #expect(c["auth-failures-unreadable"] == 1, "three copies of one refusal: \(c)")
            }
        }
        #expect(p.maps.ban(of: SourceAddress(guesser)!)?.bruteForce == true)
        do {
            let c = try counts()
            #expect(c["auth-failures-unreadable"] == 3 && c["auth-failures"] == 0, "\(c)")
        }

        // What counts for nothing: unreadable refusals with no credentialed request pending (first challenges
        // that fragment); first fragments whose Call-ID and CSeq are read and name no noted request; a stale
        // challenge's; and a 200's.
        for n in 1...3 { try unreadable(to: other, callID: "c\(n)") }
        try guess(from: other, "o1")
        for n in 1...3 {
            try TrustTests.inside(p, firstFragment(answer("401 Unauthorized", to: other, callID: "c\(n)", vias: 3)
                                                   + Array(String(repeating: "x", count: 1_200).utf8), to: other))
            try TrustTests.inside(p, firstFragment(answer("401 Unauthorized", to: other, callID: "s\(n)", vias: 12,
                first: ["WWW-Authenticate: Digest realm=\"198.18.2.2\", nonce=\"s\(n)\", stale=true"]), to: other))
        }
        #expect(p.maps.ban(of: SourceAddress(other)!) == nil)
        try TrustTests.challenge(p, phone)
        try guess(from: phone, "r1")
        try TrustTests.inside(p, firstFragment(answer("200 OK", to: phone, callID: "r1", vias: 3)
                                               + Array(String(repeating: "x", count: 1_200).utf8), to: phone))
        #expect(try TrustTests.trusted(p)[phone] == nil, "a 200 in fragments verifies nothing")
        do {
            let c = try counts()
            #expect(c["auth-failures-unreadable"] == 3 && c["auth-failures"] == 0, "\(c)")
        }

        // A first fragment naming a noted credentialed request is its failure, as a whole answer is.
        try guess(from: caller, "k1")
        try TrustTests.inside(p, firstFragment(answer("401 Unauthorized", to: caller, callID: "k1", vias: 3)
                                               + Array(String(repeating: "x", count: 1_200).utf8), to: caller))
        // Its one request is answered: an unreadable refusal after it has nothing to count against.
        try unreadable(to: caller, callID: "k2")
        do {
            let c = try counts()
            #expect(c["auth-failures"] == 1 && c["auth-failures-unreadable"] == 3, "\(c)")
        }
        // A first fragment whose Call-ID and CSeq come first, naming a noted request, while its header block goes
        // on past it: a 200 uses the request up (so a first challenge after it has nothing to count against), a
        // refusal is taken as unreadable (a stale=true could hide past it), against that request.
        let named = ["Call-ID: k3", "CSeq: 1 REGISTER"]
        try guess(from: caller, "k3")
        try TrustTests.inside(p, firstFragment(answer("200 OK", to: caller, callID: "k3", vias: 12, first: named),
                                               to: caller))
        try unreadable(to: caller, callID: "first-challenge")
        do {
            let c = try counts()
            #expect(c["auth-failures"] == 1 && c["auth-failures-unreadable"] == 3, "the 200 used it up: \(c)")
        }
        try guess(from: caller, "k3")
        try TrustTests.inside(p, firstFragment(answer("401 Unauthorized", to: caller, callID: "k3", vias: 12,
                                                      first: named), to: caller))
        do {
            let c = try counts()
            #expect(c["auth-failures"] == 1 && c["auth-failures-unreadable"] == 4, "\(c)")
        }

        // A verified phone: its credentialed requests may be a forger's, so unreadable refusals count nowhere.
        #expect(try TrustTests.register(p, phone, call: "r2", n: 2) == .passed)
        #expect(try TrustTests.trusted(p)[phone] != nil)
        let notCounted = try counts()["auth-failures-not-counted"] ?? 0
        for n in 1...4 {
            try guess(from: phone, "p\(n)")
            try unreadable(to: phone, callID: "p\(n)")
        }
        try guess(from: phone, "p5")
        try TrustTests.inside(p, firstFragment(answer("401 Unauthorized", to: phone, callID: "p5", vias: 12,
                                                      first: ["Call-ID: p5", "CSeq: 1 REGISTER"]), to: phone))
        #expect(p.maps.ban(of: SourceAddress(phone)!) == nil)
        #expect(try TrustTests.trusted(p)[phone]?.quarantineUntilSeconds == nil)
        do {
            let c = try counts()
            #expect(c["auth-failures-not-counted"] == notCounted + 5 && c["auth-failures-unreadable"] == 4, "\(c)")
        }
        // Over TCP, a phone with credentialed requests pending: refusals from the server, read where its stream's
        // messages start, that name no one transaction (no Call-ID or CSeq; two Call-IDs) count for nothing.
        let answersBefore = try counts()["answers"]!
        var stream = try ServerStream(p, to: other)
        for n in 1...4 {
            #expect(try p.judge(TrustTests.tcp("REGISTER sip:198.18.2.2 SIP/2.0\r\nCall-ID: t\(n)\r\nCSeq: 1 REGISTER\r\n"
                                               + "\(TrustTests.credentials)\r\nContent-Length: 0\r\n\r\n", from: other,
                                               ack: 1)).2 == .passed)
            try stream.send(Array("SIP/2.0 401 SIP/2.0 401 SIP/2.0 401 \r\nContent-Length: 0\r\n\r\n".utf8))
            try stream.send(TrustTests.message(TrustTests.response("401 Unauthorized", to: other, callID: "t\(n)",
                                                                   extra: ["Call-ID: t\(n + 1)"])))
        }
        #expect(p.maps.ban(of: SourceAddress(other)!) == nil)
        do {
            let c = try counts()
            #expect(c["answers"] == answersBefore + 8, "each was read: \(c)")
            #expect(c["auth-failures-unreadable"] == 4 && c["auth-failures"] == 1, "\(c)")
        }
    }

    /// Why an unreadable refusal counts nowhere against a verified address, even while requests of its own that
    /// answer its challenges are pending: refusals are not one for one with noted requests. A server sends a final
    /// non-2xx answer to an INVITE again until the ACK comes (RFC 3261 17.2.1: about ten copies in 32 s), and it
    /// refuses requests without credentials, which are not noted. A forger at a verified PBX's hop distance sends
    /// one INVITE without credentials, whose 407 it pushes past the MTU, while three of the PBX's calls ring, their
    /// credentialed INVITEs pending until their final answers: the 407's copies ban no one. (64fabff held such
    /// refusals against the PBX's pending requests once no other was pending, and this banned it; reverted.)
    @Test func aForgedInvitesUnreadableRefusalsSentAgainDoNotCountAgainstAVerifiedPBX() throws {
        let p = try TrustTests.program(failures: 3)
        let pbx = "198.18.6.70"
        #expect(try TrustTests.register(p, pbx) == .passed)
        #expect(try TrustTests.trusted(p)[pbx] != nil)
        let credentials = TrustTests.credentials.replacingOccurrences(of: "Authorization:", with: "Proxy-Authorization:")
        for n in 1...3 {
            #expect(try p.judge(Packet.request("INVITE", src: pbx, extra: [credentials], callID: "call-\(n)")).2
                == .passed, "the PBX's call \(n)")
        }
        #expect(try p.judge(Packet.request("INVITE", src: pbx, callID: "forged")).2 == .passed)
        let refusal = TrustTests.firstFragment(TrustTests.answerPastTheMTU("407 Proxy Authentication Required",
                                                                           callID: "forged"), to: pbx)
        let before = try p.maps.insideCounts()["auth-failures-unreadable"] ?? 0
        for _ in 1...10 { try TrustTests.inside(p, refusal) }
        #expect(p.maps.ban(of: SourceAddress(pbx)!) == nil)
        #expect(try p.maps.insideCounts()["auth-failures-unreadable"] ?? 0 == before)
    }

    /// An address's credentialed requests pending lapse FG_AUTH_PENDING_SECONDS (32 s, a UDP transaction's
    /// timeout) after the last was noted: a request dropped after its note, or never answered, leaves nothing for
    /// an unreadable first challenge to be counted against later.
    @Test func pendingCredentialedRequestsLapseAfterATransactionsTimeout() throws {
        let p = try TrustTests.program(failures: 3, testClock: true)
        let start: UInt64 = 5_000 * 1_000_000_000
        let client = "198.18.6.25"
        let refusal = TrustTests.firstFragment(TrustTests.answerPastTheMTU("401 Unauthorized", callID: "c@x"), to: client)
        func noted(_ callID: String, at seconds: UInt64) throws {
            try p.setTestClock(nanoseconds: start + seconds * 1_000_000_000)
            #expect(try p.judge(Packet.request("REGISTER", src: client, extra: [TrustTests.credentials], callID: callID,
                                               cseq: "1 REGISTER")).2 == .passed)
        }
        func refused(at seconds: UInt64) throws -> UInt64 {
            try p.setTestClock(nanoseconds: start + seconds * 1_000_000_000)
            try TrustTests.inside(p, refusal)
            return try p.maps.insideCounts()["auth-failures-unreadable"] ?? 0
        }
        try noted("a", at: 0)
        #expect(try refused(at: 33) == 0, "33 s after the note: lapsed")
        try noted("b", at: 40)
        try noted("c", at: 60)
        #expect(try refused(at: 92) == 1, "32 s after the last note: both still pending")
        #expect(try refused(at: 92) == 2)
        #expect(try refused(at: 92) == 2, "none left")
    }

    /// A credentialed request the SIP budget sheds, or a destination rule refuses, never reaches the server, so it
    /// is not noted. A forger's credentialed requests under a flood that the budget sheds then leave no pending count
    /// for an unreadable refusal to count against, and no transaction for an answer to match: not the address's, nor,
    /// forged at another hop distance, a verified address's.
    @Test func aCredentialedRequestShedOrRefusedAfterItsWalkIsNotNoted() throws {
        var settings = Settings.defaults
        settings.bruteForce = BruteForce(failures: 50, windowSeconds: 60, banSeconds: 60)
        settings.trustSeconds = 600
        settings.numbers = DestinationTests.ukPlan
        var policy = perSourceOnly
        policy.budget = .rate(1, burst: 41)
        policy.destinations = [try DestinationRule("+44900", .block)]
        let p = try loadProgram(limits: Limit.defaults.merging([.invite: .unlimited, .register: .unlimited]) { $1 },
                                settings: settings, policy: policy, testClock: true)
        let caller = "198.18.6.40", victim = "198.18.6.41", phone = "198.18.6.42"
        let failureCounts = ["auth-failures", "auth-failures-unproven", "auth-failures-not-counted",
                             "auth-failures-unreadable"]
        func failures() throws -> [String: UInt64] {
            let c = try p.maps.insideCounts()
            return Dictionary(uniqueKeysWithValues: failureCounts.map { ($0, c[$0] ?? 0) })
        }
        func invite(_ uri: String, callID: String) throws -> Reason? {
            try p.judge(Packet.sipRaw(Array(("INVITE \(uri) SIP/2.0\r\nVia: SIP/2.0/UDP \(caller):5060;branch=z9hG4bK-1\r\n"
                + "From: <sip:200@\(caller)>;tag=1\r\nTo: <sip:x@198.18.0.2>\r\nCall-ID: \(callID)\r\n"
                + "CSeq: 1 INVITE\r\nMax-Forwards: 70\r\n\(TrustTests.credentials)\r\nContent-Length: 0\r\n\r\n").utf8),
                src: caller)).2
        }
        func register(from source: String, _ callID: String, credentials: Bool = true, ttl: UInt8 = 64) throws
            -> Reason?
        {
            try p.judge(Packet.request("REGISTER", src: source, extra: credentials ? [TrustTests.credentials] : [],
                                       callID: callID, ttl: ttl)).2
        }
        func unreadable(to destination: String) throws {
            try TrustTests.inside(p, TrustTests.firstFragment(
                TrustTests.answerPastTheMTU("401 Unauthorized", callID: "u@\(destination)"), to: destination))
        }
        #expect(try TrustTests.register(p, phone) == .passed)
        #expect(try TrustTests.trusted(p)[phone] != nil)

        // A credentialed INVITE to a blocked number: neither its answer nor an unreadable refusal counts.
        let before = try failures()
        #expect(try invite("sip:+449001234567@198.18.0.2", callID: "blocked") == .droppedDestination)
        try TrustTests.inside(p, TrustTests.response("401 Unauthorized", to: caller, cseq: "1 INVITE", callID: "blocked"))
        try unreadable(to: caller)
        #expect(try failures() == before, "a refused INVITE was noted")
        // The same INVITE to a number no rule blocks is noted: its unreadable refusal counts.
        #expect(try invite("sip:+441234567890@198.18.0.2", callID: "allowed") == .passed)
        try unreadable(to: caller)
        #expect(try failures()["auth-failures-unreadable"] == before["auth-failures-unreadable"]! + 1)

        // The budget drained by REGISTERs without credentials; then a stranger's credentialed REGISTERs, and one
        // forged in the verified phone's name at another hop distance, are shed, and none is noted.
        var drained = 0
        while try register(from: "198.18.8.1", "drain-\(drained)", credentials: false) == .passed, drained < 200 {
            drained += 1
        }
        #expect(drained > 0 && drained < 200, "\(drained) REGISTERs before the budget shed one")
        let shed = try failures()
        for n in 1...3 {
            #expect(try register(from: victim, "shed-\(n)") == .droppedShed, "\(n)")
            #expect(try register(from: phone, "forged-\(n)", ttl: 40) == .droppedShed, "\(n)")
        }
        for n in 1...3 {
            try TrustTests.inside(p, TrustTests.response("401 Unauthorized", to: victim, callID: "shed-\(n)"))
            try TrustTests.inside(p, TrustTests.response("401 Unauthorized", to: phone, callID: "forged-\(n)"))
            try unreadable(to: victim)
        }
        #expect(try failures() == shed, "a shed request was noted")
        #expect(try TrustTests.trusted(p)[phone]?.quarantineUntilSeconds == nil)
        // A credentialed INVITE the destination rules pass and the budget sheds (drained by INVITEs too, whose
        // place in it may differ from a REGISTER's) is not noted either.
        var invites = 0
        while try p.judge(Packet.request("INVITE", src: "198.18.8.1", callID: "drain-i\(invites)")).2 == .passed,
              invites < 200 { invites += 1 }
        #expect(invites < 200)
        #expect(try invite("sip:+441234567890@198.18.0.2", callID: "shed-invite") == .droppedShed)
        try TrustTests.inside(p, TrustTests.response("401 Unauthorized", to: caller, cseq: "1 INVITE",
                                                     callID: "shed-invite"))
        try unreadable(to: caller)
        #expect(try failures() == shed, "a shed INVITE was noted")
        // Once the budget has refilled, the stranger's credentialed REGISTER is let in and noted.
        try p.setTestClock(nanoseconds: 1_000_000_000_000 + 300_000_000_000)
        #expect(try register(from: victim, "let-in") == .passed)
        try TrustTests.inside(p, TrustTests.response("401 Unauthorized", to: victim, callID: "let-in"))
        #expect(try failures()["auth-failures"] == shed["auth-failures"]! + 1)
    }

    /// The server's challenge pushed past the MTU (by headers it echoes) is noted from its first fragment if its
    /// nonce is read whole there: a phone whose challenges fragment can verify (if the CSeq naming REGISTER is read
    /// there too), and a forger who quarantined it does not keep its credentials out. A nonce the fragment's end cuts
    /// is not noted: credentials answering the part of it that was read prove nothing, nor do they answering the
    /// whole. One whose CSeq lies past the fragment may be another method's, relayed: it verifies nothing.
    @Test func aChallengeReadWholeInAFirstFragmentIsNoted() throws {
        let p = try TrustTests.program(failures: 3, testClock: true)
        let phone = "198.18.6.50", other = "198.18.6.51"
        func challenge(_ nonce: String) -> String { TrustTests.challengeHeader(nonce) }
        /// A 401 whose Call-ID and CSeq lie past its first fragment, with `first` before them: only that fragment.
        func inFragments(to destination: String, callID: String, first: [String]) throws {
            try TrustTests.inside(p, TrustTests.firstFragment(
                TrustTests.answerPastTheMTU("401 Unauthorized", callID: callID, first: first), to: destination))
        }
        func register(_ source: String, nonce: String, call: String, n: Int, answer: String = "200 OK",
                      extra: [String] = []) throws -> Reason? {
            try TrustTests.credentialedRegister(p, source, nonce: nonce, call: call, n: n, answer: answer, extra: extra)
        }
        let challenges = try p.maps.insideCounts()["challenges"] ?? 0
        let unknown = "198.18.6.53"
        try inFragments(to: unknown, callID: "c0", first: [challenge("frag-0")])
        #expect(try p.maps.insideCounts()["challenges"] == challenges + 1)
        #expect(try register(unknown, nonce: "frag-0", call: "r0", n: 1) == .passed)
        #expect(try TrustTests.trusted(p)[unknown] == nil, "a challenge whose CSeq is past the fragment proves nothing")
        try inFragments(to: phone, callID: "c1", first: ["CSeq: 1 REGISTER", challenge("frag-1")])
        #expect(try p.maps.insideCounts()["challenges"] == challenges + 2)
        #expect(try register(phone, nonce: "frag-1", call: "r1", n: 1) == .passed)
        #expect(try TrustTests.trusted(p)[phone] != nil, "credentials answering a challenge read in a first fragment")

        // Quarantined by a forger's made-up credentials from its hop distance, the phone answers a new challenge
        // that fragments: its credentials pass, made-up ones do not.
        for n in 1...3 {
            #expect(try register(phone, nonce: "made-up-\(n)", call: "forged-\(n)", n: 1, answer: "401 Unauthorized",
                                 extra: [challenge("fresh-\(n)")]) == .passed)
        }
        #expect(try TrustTests.trusted(p)[phone]?.quarantineUntilSeconds != nil)
        #expect(try register(phone, nonce: "made-up-4", call: "forged-4", n: 1) == .droppedUnproven)
        try inFragments(to: phone, callID: "c2", first: [challenge("frag-2")])
        #expect(try register(phone, nonce: "frag-2", call: "r2", n: 2) == .passed,
                "its own challenge, in fragments (whatever method it answered)")

        // A nonce the first fragment cuts, 100 bytes into it (the fragment holds 1,224 bytes of the text).
        let nonce = String((0..<300).map { i in Character(UnicodeScalar(UInt8(97 + i % 26))) })
        let lead = Array("SIP/2.0 401 Unauthorized\r\nCSeq: 1 REGISTER\r\nX-Pad: ".utf8).count
        let before = Array("\r\nWWW-Authenticate: Digest realm=\"198.18.2.2\", nonce=\"".utf8).count
        let pad = String(repeating: "p", count: 1_224 - 100 - lead - before)
        let cut = TrustTests.answerPastTheMTU("401 Unauthorized", callID: "c3",
                                              first: ["CSeq: 1 REGISTER", "X-Pad: " + pad, challenge(nonce)])
        #expect(String(decoding: cut[(1_224 - 100)..<1_224], as: UTF8.self) == String(nonce.prefix(100)),
                "the fragment ends 100 bytes into the nonce")
        let counted = try p.maps.insideCounts()["challenges"] ?? 0
        try TrustTests.inside(p, TrustTests.firstFragment(cut, to: other))
        #expect(try p.maps.insideCounts()["challenges"] == counted, "a cut nonce is no challenge")
        #expect(try register(other, nonce: String(nonce.prefix(100)), call: "p1", n: 1) == .passed)
        #expect(try register(other, nonce: nonce, call: "p2", n: 1) == .passed)
        #expect(try TrustTests.trusted(p)[other] == nil, "credentials answering a cut nonce verify nothing")

        // The fragment's last byte (its 1,224th of the text) at each edge of a nonce, quoted and not: noted only if
        // the byte that ends the nonce is in it. Before each, a longer answer to another address leaves bytes past
        // that point in the walk's copy (on the CPU it ran on), which must not be read.
        func edge(_ params: (String) -> String, last: String, noted: Bool, _ what: String) throws {
            let nonce = "edge-" + what.replacingOccurrences(of: " ", with: "-")
            let value = params(nonce)
            let head = Array("SIP/2.0 401 Unauthorized\r\nX-Pad: ".utf8).count
            let start = Array("\r\nWWW-Authenticate: Digest realm=\"198.18.2.2\", ".utf8).count
            // A last byte of CR is the one that ends the header's line.
            let core = last.hasSuffix("\r") ? String(last.dropLast()) : last
            let end = try #require(value.range(of: core)).upperBound.utf16Offset(in: value) + last.count - core.count
            let pad = String(repeating: "p", count: 1_224 - head - start - end)
            let text = TrustTests.answerPastTheMTU("401 Unauthorized", callID: "e-\(nonce)",
                first: ["X-Pad: " + pad, "WWW-Authenticate: Digest realm=\"198.18.2.2\", " + value])
            #expect(String(decoding: text[(1_224 - last.utf8.count)..<1_224], as: UTF8.self) == last, "\(what)")
            let stale = Array(text.prefix(1_224)) + Array(String(repeating: "\",\r", count: 100).utf8)
            try TrustTests.inside(p, TrustTests.response("200 OK", to: "198.18.6.52", callID: "stale",
                                                         extra: ["X-Stale: " + String(decoding: stale, as: UTF8.self)]))
            let before = try p.maps.insideCounts()["challenges"] ?? 0
            try TrustTests.inside(p, TrustTests.firstFragment(text, to: other))
            #expect(try p.maps.insideCounts()["challenges"] == before + (noted ? 1 : 0), "\(what)")
        }
        try edge({ "nonce=\"\($0)\", algorithm=MD5" }, last: "1-quoted\"", noted: true, "1 quoted")
        try edge({ "nonce=\"\($0)\", algorithm=MD5" }, last: "2-quoted", noted: false, "2 quoted")
        try edge({ "nonce=\($0), algorithm=MD5" }, last: "3-token,", noted: true, "3 token")
        try edge({ "nonce=\($0), algorithm=MD5" }, last: "4-tok", noted: false, "4 token")
        try edge({ "nonce=\($0)" }, last: "5-token\r", noted: true, "5 token")
    }

    /// A server offering two algorithms sends two challenges (RFC 8760), each with a nonce that may be its own: a
    /// phone that answers the second verifies, as one answering the first does. Each nonce is noted for the address
    /// its answer went to only, and a third distinct one in an answer is not noted.
    @Test func aSecondChallengesNonceIsNotedToo() throws {
        let p = try TrustTests.program(failures: 3)
        let first = "198.18.6.80", second = "198.18.6.81", other = "198.18.6.82", third = "198.18.6.83"
        let challenges = [TrustTests.challengeHeader("sha-n", algorithm: "SHA-256"),
                          TrustTests.challengeHeader("md5-n")]
        func verifies(_ address: String, answering nonce: String) throws -> Bool {
            #expect(try TrustTests.credentialedRegister(p, address, nonce: nonce, call: "r-\(nonce)") == .passed)
            return try TrustTests.trusted(p)[address] != nil
        }
        for address in [first, second] {
            try TrustTests.inside(p, TrustTests.response("401 Unauthorized", to: address, callID: "c-\(address)",
                                                         extra: challenges))
        }
        #expect(try verifies(first, answering: "sha-n"))
        #expect(try verifies(second, answering: "md5-n"), "the second challenge's nonce")
        // Another address, challenged with a nonce of its own only: the others' second nonce verifies nothing there.
        try TrustTests.inside(p, TrustTests.response("401 Unauthorized", to: other, callID: "c-other",
                                                     extra: [TrustTests.challengeHeader("own-n")]))
        #expect(try !verifies(other, answering: "md5-n"))
        // Three challenges: the third nonce is not noted.
        try TrustTests.inside(p, TrustTests.response("401 Unauthorized", to: third, callID: "c-third", extra: challenges
            + [TrustTests.challengeHeader("third-n", algorithm: "SHA-512-256")]))
        #expect(try !verifies(third, answering: "third-n"))
        #expect(try verifies(third, answering: "md5-n"))
    }

    /// A server that challenges a SUBSCRIBE, a MESSAGE or an OPTIONS checks the password in its credentials as it
    /// would a REGISTER's, so a 401 or 407 to one counts too; a 403 to one is as often policy, and does not.
    /// Several guesses sent under one Call-ID and CSeq count one each, a request at another TTL among them excuses
    /// none, and one answering the address's own challenge makes them all proven. A transaction is its CSeq method
    /// too: an OPTIONS's 200 under a REGISTER's Call-ID and CSeq number verifies nothing.
    @Test func aFailureCountsInAnyMethodAndForEachRequestUnderOneCallIDAndCSeq() throws {
        let p = try TrustTests.program(failures: 3)
        func guess(_ src: String, _ method: String, call: String, n: Int = 1, ttl: UInt8 = 64) throws -> Reason? {
            try p.judge(Packet.request(method, src: src, extra: [TrustTests.credentials], callID: call,
                                       cseq: "\(n) \(method)", ttl: ttl)).2
        }
        func answer(_ src: String, _ status: String, _ method: String, call: String, n: Int = 1) throws {
            try TrustTests.inside(p, TrustTests.response(status, to: src, cseq: "\(n) \(method)", callID: call))
        }
        let methods = "198.18.6.1"
        for i in 1...4 {
            #expect(try guess(methods, "SUBSCRIBE", call: "policy-\(i)") == .passed)
            try answer(methods, "403 Forbidden", "SUBSCRIBE", call: "policy-\(i)")
        }
        #expect(p.maps.ban(of: SourceAddress(methods)!) == nil, "a 403 to a SUBSCRIBE is no failure")
        for (i, (method, status)) in [("SUBSCRIBE", "401 Unauthorized"), ("MESSAGE", "407 Proxy Authentication Required"),
                                      ("OPTIONS", "401 Unauthorized")].enumerated() {
            #expect(p.maps.ban(of: SourceAddress(methods)!) == nil, "before \(method)")
            #expect(try guess(methods, method, call: "m\(i)") == .passed)
            // An answer naming the same Call-ID and CSeq number but another method is not this request's.
            try answer(methods, status, "NOTIFY", call: "m\(i)")
            #expect(p.maps.ban(of: SourceAddress(methods)!) == nil, "\(method): a NOTIFY's answer is not its")
            try answer(methods, status, method, call: "m\(i)")
        }
        #expect(p.maps.ban(of: SourceAddress(methods)!)?.bruteForce == true, "three methods, three failures")

        // Three guesses under one Call-ID and CSeq, each answered 401: three failures.
        let oneKey = "198.18.6.2"
        for _ in 1...3 { #expect(try guess(oneKey, "REGISTER", call: "same") == .passed) }
        for round in 1...3 {
            #expect(p.maps.ban(of: SourceAddress(oneKey)!) == nil, "answer \(round)")
            try answer(oneKey, "401 Unauthorized", "REGISTER", call: "same")
        }
        #expect(p.maps.ban(of: SourceAddress(oneKey)!)?.bruteForce == true)

        // A verified source's guess, then one under the same key from another hop distance (whose failure alone
        // would not count): both count, and a third bans it.
        let verified = "198.18.6.3"
        #expect(try TrustTests.register(p, verified) == .passed)
        try TrustTests.challenge(p, verified)
        #expect(try guess(verified, "REGISTER", call: "mixed", n: 5) == .passed)
        _ = try guess(verified, "REGISTER", call: "mixed", n: 5, ttl: 40)
        try answer(verified, "401 Unauthorized", "REGISTER", call: "mixed", n: 5)
        try answer(verified, "401 Unauthorized", "REGISTER", call: "mixed", n: 5)
        #expect(p.maps.ban(of: SourceAddress(verified)!) == nil)
        #expect(try TrustTests.register(p, verified, call: "third", answer: "401 Unauthorized") == .passed)
        #expect(p.maps.ban(of: SourceAddress(verified)!)?.bruteForce == true)

        // Made-up credentials, then the address's own under the same key: both failures are proven, and a third bans.
        let merged = "198.18.6.5"
        #expect(try TrustTests.register(p, merged) == .passed)
        let madeUp = "Authorization: Digest username=\"200\", nonce=\"made-up\", response=\"0\""
        #expect(try p.judge(Packet.request("REGISTER", src: merged, extra: [madeUp], callID: "mix", cseq: "7 REGISTER")).2
            == .passed)
        try TrustTests.challenge(p, merged)
        #expect(try guess(merged, "REGISTER", call: "mix", n: 7) == .passed)
        try answer(merged, "401 Unauthorized", "REGISTER", call: "mix", n: 7)
        try answer(merged, "401 Unauthorized", "REGISTER", call: "mix", n: 7)
        #expect(p.maps.ban(of: SourceAddress(merged)!) == nil)
        #expect(try TrustTests.register(p, merged, call: "third", answer: "401 Unauthorized") == .passed)
        #expect(p.maps.ban(of: SourceAddress(merged)!)?.bruteForce == true, "two proven and a third")

        // A REGISTER answering the address's challenge, and an OPTIONS with credentials under its Call-ID and CSeq
        // number: the OPTIONS's 200 verifies nothing, the REGISTER's does.
        let phone = "198.18.6.4"
        try TrustTests.challenge(p, phone)
        #expect(try guess(phone, "REGISTER", call: "both") == .passed)
        #expect(try guess(phone, "OPTIONS", call: "both") == .passed)
        try answer(phone, "200 OK", "OPTIONS", call: "both")
        #expect(try TrustTests.trusted(p)[phone] == nil, "an OPTIONS's 200")
        try answer(phone, "200 OK", "REGISTER", call: "both")
        #expect(try TrustTests.trusted(p)[phone] != nil, "the REGISTER's 200")
    }

    /// Someone forging a verified phone from its own hop distance (which its pin cannot tell apart) sends made-up
    /// credentials in its name. The server's 401s answer no challenge it sent the phone, so they are unproven
    /// failures: as many as a ban takes quarantine the phone rather than ban it. Until the quarantine ends, its
    /// credentialed requests must answer one of its own challenges, and the rest of its traffic is not
    /// touched. A guesser holding an account looks the same and gets as many unproven guesses; then only guesses
    /// answering its own challenges pass, and they count towards a ban, with a decoy header's nonce too.
    @Test func aForgerAtAVerifiedSourcesHopDistanceQuarantinesItsCredentialsAndCannotBanIt() throws {
        let p = try TrustTests.program(failures: 3, testClock: true)
        let start: UInt64 = 1_000 * 1_000_000_000
        try p.setTestClock(nanoseconds: start)
        let events = try EventReader(p.maps)
        let phone = "198.18.5.30"
        #expect(try TrustTests.register(p, phone) == .passed)
        #expect(Set(try TrustTests.trusted(p).keys) == [phone])
        func forged(_ n: Int, nonce: String? = nil, decoy: [String] = []) throws -> Reason? {
            let auth = "Authorization: Digest username=\"200\", realm=\"198.18.2.2\", nonce=\"\(nonce ?? "made-up-\(n)")\", "
                + "response=\"0\""
            return try p.judge(Packet.request("REGISTER", src: phone, extra: decoy + [auth], callID: "forged-\(n)",
                                              cseq: "1 REGISTER")).2
        }
        func failed(_ n: Int, nonce: String? = nil) throws {
            try TrustTests.inside(p, TrustTests.response(
                "401 Unauthorized", to: phone, callID: "forged-\(n)",
                extra: ["WWW-Authenticate: Digest realm=\"198.18.2.2\", nonce=\"\(nonce ?? "fresh-\(n)")\""]))
        }
        for n in 1...3 {
            #expect(try forged(n) == .passed, "\(n): not quarantined yet")
            // The third answer's own challenge carries the nonce the forgery made up: it is noted after the check,
            // so the failure is still unproven.
            try failed(n, nonce: n == 3 ? "made-up-3" : nil)
        }
        #expect(p.maps.ban(of: SourceAddress(phone)!) == nil, "unproven failures ban no one")
        var counts = try p.maps.insideCounts()
        #expect(counts["auth-failures-unproven"] == 3 && counts["auth-failures"] == 0, "\(counts)")
        let quarantines = events.drain().filter { $0.kind == .quarantine }
        #expect(quarantines.count == 1 && quarantines.first?.address == SourceAddress(phone)
            && quarantines.first?.drops == 3, "\(quarantines)")
        // Kept with the phone's trust (where `floodgate trusted` shows it), for the ban's 60 s.
        #expect(try TrustTests.trusted(p)[phone]?.quarantineUntilSeconds == UInt32(start / 1_000_000_000) + 60)

        // Quarantined: made-up credentials are dropped, REGISTER and INVITE alike.
        #expect(try forged(4) == .droppedUnproven)
        let invite = "Proxy-Authorization: Digest username=\"200\", nonce=\"made-up\", response=\"0\""
        #expect(try p.judge(Packet.request("INVITE", src: phone, extra: [invite], callID: "forged-i", cseq: "1 INVITE")).2
            == .droppedUnproven)
        // The phone's own: credentials answering its challenge, a REGISTER without any, an OPTIONS.
        #expect(try TrustTests.register(p, phone, call: "own", n: 2) == .passed)
        #expect(try p.judge(Packet.request("REGISTER", src: phone, callID: "plain")).2 == .passed)
        #expect(try p.judge(Packet.request("OPTIONS", src: phone, callID: "o")).2 == .passed)
        #expect(Set(try TrustTests.trusted(p).keys) == [phone] && p.maps.ban(of: SourceAddress(phone)!) == nil)
        // A decoy header carrying the phone's own nonce gets made-up credentials past the check, but then their
        // failure is proven: it counts towards a ban.
        #expect(try forged(5, decoy: ["Proxy-Authorization: Digest username=\"200\", nonce=\"abc\", response=\"0\""])
            == .passed)
        try failed(5)
        counts = try p.maps.insideCounts()
        #expect(counts["auth-failures"] == 1 && counts["auth-failures-unproven"] == 3, "\(counts)")

        // The quarantine lasts as long as a ban (60 s): then made-up credentials pass again, and the window's counts
        // start again.
        try p.setTestClock(nanoseconds: start + 59 * 1_000_000_000)
        #expect(try forged(6) == .droppedUnproven, "at 59 s")
        try p.setTestClock(nanoseconds: start + 61 * 1_000_000_000)
        #expect(try TrustTests.register(p, phone, call: "renew", n: 3) == .passed)
        #expect(Set(try TrustTests.trusted(p).keys) == [phone])
        #expect(try forged(7) == .passed)
        // Guesses answering the phone's own challenges are its failures, and a success between them clears nothing.
        #expect(try TrustTests.register(p, phone, call: "g1", answer: "401 Unauthorized") == .passed)
        #expect(try TrustTests.register(p, phone, call: "ok", n: 4) == .passed)
        #expect(try TrustTests.register(p, phone, call: "g2", answer: "401 Unauthorized") == .passed)
        #expect(p.maps.ban(of: SourceAddress(phone)!) == nil)
        #expect(try TrustTests.register(p, phone, call: "g3", answer: "401 Unauthorized") == .passed)
        #expect(p.maps.ban(of: SourceAddress(phone)!)?.bruteForce == true)
    }

    /// The server's challenge to `address` for a request of `method` (a 407 naming CSeq `1 <method>`), with
    /// `nonce`: for an INVITE, possibly a phone's behind the server, relayed.
    static func challengeTo(_ method: String, _ p: FloodgateProgram, _ address: String, nonce: String, call: String)
        throws
    {
        try inside(p, response("407 Proxy Authentication Required", to: address, cseq: "1 \(method)", callID: call,
                               extra: ["Proxy-Authenticate: Digest realm=\"198.18.2.2\", nonce=\"\(nonce)\""]))
    }

    /// A challenge the server relays proves nothing. Someone with a phone behind the server forges an INVITE from
    /// a verified phone's address to its own phone, which challenges it with a nonce of its choosing; the server
    /// relays that 407 to the verified address, where the inside program sees it leave like the server's own. Then
    /// requests forged in the address's name, answering that nonce, are refused by the server: from another hop
    /// distance and from the address's own, they are unproven failures (a challenge to a method other than
    /// REGISTER proves nothing), which quarantine its credentials there and, failing again in the quarantine,
    /// make it strict; they never ban it. Before the strict quarantine, the phone's own INVITE answering the
    /// server's challenge to it passes; after it, only credentials answering a challenge to a REGISTER pass there,
    /// the phone's registration goes on, and it stays verified and unbanned. A REGISTER answering a relayed nonce
    /// that the server accepts (a server whose nonces are not bound to the address) verifies nothing.
    @Test func aChallengeTheServerRelaysProvesNothingAndCanOnlyMakeAQuarantineStrict() throws {
        let p = try TrustTests.program(failures: 3)
        let events = try EventReader(p.maps)
        let phone = "198.18.5.40", address = SourceAddress(phone)!
        #expect(try TrustTests.register(p, phone, ttl: 64) == .passed)
        // The forger's phone's challenge to the INVITE forged in the phone's name, relayed.
        try TrustTests.challengeTo("INVITE", p, phone, nonce: "chosen", call: "relay-1")
        var n = 0
        func forged(ttl: UInt8, nonce: String = "chosen") throws -> Reason? {
            n += 1
            return try p.judge(Packet.request("REGISTER", src: phone, extra: [TrustTests.credentials(nonce: nonce)],
                                              callID: "forged-\(n)", cseq: "1 REGISTER", ttl: ttl)).2
        }
        func refused(ttl: UInt8) throws {
            #expect(try forged(ttl: ttl) == .passed, "request \(n) at TTL \(ttl)")
            try TrustTests.inside(p, TrustTests.response("401 Unauthorized", to: phone, callID: "forged-\(n)"))
        }
        func quarantine() throws -> (TrustedSource?, counts: [String: UInt64]) {
            (try TrustTests.trusted(p)[phone], try p.maps.insideCounts())
        }

        // From another hop distance: quarantined there, then strict there.
        for _ in 1...3 { try refused(ttl: 40) }
        var (trust, counts) = try quarantine()
        #expect(p.maps.ban(of: address) == nil, "a relayed challenge's failures ban no one")
        #expect(counts["auth-failures-unproven"] == 3 && counts["auth-failures"] == 0, "\(counts)")
        #expect(trust?.awayQuarantineUntilSeconds != nil && trust?.strictElsewhere == false
            && trust?.quarantineUntilSeconds == nil)
        #expect(try forged(ttl: 40, nonce: "made-up") == .droppedSpoofed, "made-up credentials from there: dropped")
        for _ in 1...3 { try refused(ttl: 40) }
        (trust, counts) = try quarantine()
        #expect(p.maps.ban(of: address) == nil)
        #expect(trust?.strictElsewhere == true && trust?.quarantineUntilSeconds == nil, "\(String(describing: trust))")
        #expect(try forged(ttl: 40) == .droppedSpoofed, "strict: the relayed nonce no longer passes from there")

        // At its pin: its own INVITE, answering the server's challenge to it, passes through the quarantine there;
        // the forger's failures then make that quarantine strict, and the phone's INVITE no longer passes.
        for _ in 1...3 { try refused(ttl: 64) }
        (trust, _) = try quarantine()
        #expect(trust?.quarantineUntilSeconds != nil && trust?.strictAtPin == false)
        #expect(try forged(ttl: 64, nonce: "made-up") == .droppedUnproven)
        func call(_ i: Int) throws -> Reason? {
            try TrustTests.challengeTo("INVITE", p, phone, nonce: "server-\(i)", call: "call-\(i)")
            return try p.judge(Packet.request("INVITE", src: phone, extra: [TrustTests.credentials(nonce: "server-\(i)")],
                                              callID: "call-\(i)", cseq: "2 INVITE")).2
        }
        #expect(try call(1) == .passed, "in a quarantine, a challenge to the phone's INVITE is answered")
        for _ in 1...3 { try refused(ttl: 64) }
        (trust, counts) = try quarantine()
        #expect(p.maps.ban(of: address) == nil, "never banned")
        #expect(counts["auth-failures-unproven"] == 12 && counts["auth-failures"] == 0, "\(counts)")
        #expect(trust?.strictAtPin == true, "\(String(describing: trust))")
        #expect(try call(2) == .droppedUnproven, "strict: only a REGISTER's challenge is answered")
        #expect(try forged(ttl: 64) == .droppedUnproven)
        #expect(try TrustTests.register(p, phone, call: "renew", n: 5) == .passed, "its registration goes on")
        #expect(try p.judge(Packet.request("INVITE", src: phone, callID: "plain", cseq: "1 INVITE")).2 == .passed,
                "and its requests without credentials")
        #expect(Set(try TrustTests.trusted(p).keys) == [phone] && p.maps.ban(of: address) == nil)
        let made = events.drain().filter { $0.kind == .quarantine }.map { ($0.quarantineAway, $0.quarantineMadeStrict) }
        #expect(made.map(\.0) == [true, true, false, false] && made.map(\.1) == [false, true, false, true],
                "quarantined elsewhere, strict there, at its pin, strict there: \(made)")

        // A REGISTER answering a relayed nonce, accepted: no verification. Answering the registrar's: verified.
        let other = "198.18.5.41"
        try TrustTests.challengeTo("INVITE", p, other, nonce: "chosen-2", call: "relay-2")
        #expect(try TrustTests.credentialedRegister(p, other, nonce: "chosen-2", call: "r1") == .passed)
        #expect(try TrustTests.trusted(p)[other] == nil, "a relayed nonce verifies nothing")
        try TrustTests.challenge(p, other, nonce: "registrar")
        #expect(try TrustTests.credentialedRegister(p, other, nonce: "registrar", call: "r2", n: 2) == .passed)
        #expect(try TrustTests.trusted(p)[other] != nil)
    }

    /// A forger without a phone behind the server sends made-up credentials in a verified phone's name, at its hop
    /// distance, twice as many as a quarantine takes, all let in before the first refusals come back: the
    /// refusals after the quarantine began are of requests let in before it, and do not make it strict. The
    /// phone's INVITE answering the server's challenge to it still passes.
    @Test func aForgersRequestsLetInBeforeAQuarantineDoNotMakeItStrict() throws {
        let p = try TrustTests.program(failures: 3)
        let phone = "198.18.5.43"
        #expect(try TrustTests.register(p, phone, ttl: 64) == .passed)
        for n in 1...6 {
            #expect(try p.judge(Packet.request("REGISTER", src: phone, extra: [TrustTests.credentials(nonce: "made-up-\(n)")],
                                               callID: "early-\(n)", cseq: "1 REGISTER")).2 == .passed, "\(n)")
        }
        for n in 1...6 {
            try TrustTests.inside(p, TrustTests.response("401 Unauthorized", to: phone, callID: "early-\(n)"))
        }
        let trust = try TrustTests.trusted(p)[phone]
        #expect(trust?.quarantineUntilSeconds != nil && trust?.strictAtPin == false, "\(String(describing: trust))")
        #expect(try p.maps.insideCounts()["auth-failures-unproven"] == 6)
        try TrustTests.challengeTo("INVITE", p, phone, nonce: "server", call: "call")
        #expect(try p.judge(Packet.request("INVITE", src: phone, extra: [TrustTests.credentials(nonce: "server")],
                                           callID: "call", cseq: "2 INVITE")).2 == .passed)
    }

    /// A verified guesser that answers the server's challenges to INVITEs (which prove nothing: a proxy may relay
    /// them) gets as many unproven guesses at its pin as a quarantine takes, and as many again in it before it is
    /// strict; then only guesses answering its challenges to REGISTERs pass, which count towards a ban. A nonce the
    /// registrar sent stays the registrar's when another method's challenge carries it too.
    @Test func aVerifiedGuesserAnsweringChallengesToInvitesIsQuarantinedThenBanned() throws {
        let p = try TrustTests.program(failures: 3)
        let guesser = "198.18.5.42", address = SourceAddress(guesser)!
        #expect(try TrustTests.register(p, guesser, ttl: 64) == .passed)
        func guess(_ i: Int) throws -> Reason? {
            try TrustTests.challengeTo("INVITE", p, guesser, nonce: "g-\(i)", call: "c-\(i)")
            let reason = try p.judge(Packet.request("INVITE", src: guesser, extra: [TrustTests.credentials(nonce: "g-\(i)")],
                                                    callID: "c-\(i)", cseq: "2 INVITE")).2
            if reason == .passed {
                try TrustTests.inside(p, TrustTests.response("403 Forbidden", to: guesser, cseq: "2 INVITE",
                                                             callID: "c-\(i)"))
            }
            return reason
        }
        for i in 1...6 {
            #expect(try guess(i) == .passed, "guess \(i)")
            #expect(p.maps.ban(of: address) == nil, "guess \(i)")
        }
        let trust = try TrustTests.trusted(p)[guesser]
        #expect(trust?.quarantineUntilSeconds != nil && trust?.strictAtPin == true, "\(String(describing: trust))")
        #expect(try guess(7) == .droppedUnproven)
        // Guesses answering challenges to REGISTERs: proven, so the third bans. The first's nonce is one the
        // registrar sent; a challenge to an INVITE carrying it after leaves it the registrar's. The second's was
        // noted first from a challenge to an INVITE, then from the registrar's: the registrar's.
        try TrustTests.challenge(p, guesser, nonce: "reg-1")
        try TrustTests.challengeTo("INVITE", p, guesser, nonce: "reg-1", call: "again")
        try TrustTests.challengeTo("INVITE", p, guesser, nonce: "reg-2", call: "before")
        for i in 1...3 {
            if i > 1 { try TrustTests.challenge(p, guesser, nonce: "reg-\(i)") }
            #expect(try TrustTests.credentialedRegister(p, guesser, nonce: "reg-\(i)", call: "r-\(i)", n: 3,
                                                        answer: "401 Unauthorized") == .passed, "REGISTER guess \(i)")
        }
        #expect(p.maps.ban(of: address)?.bruteForce == true)

        // Of two requests under one Call-ID and CSeq, the second answering a challenge to a REGISTER, the first
        // another method's: their refusal is proven.
        let other = "198.18.5.44"
        #expect(try TrustTests.register(p, other, ttl: 64) == .passed)
        try TrustTests.challengeTo("INVITE", p, other, nonce: "inv", call: "inv")
        try TrustTests.challenge(p, other, nonce: "reg")
        for nonce in ["inv", "reg"] {
            #expect(try p.judge(Packet.request("REGISTER", src: other, extra: [TrustTests.credentials(nonce: nonce)],
                                               callID: "both", cseq: "4 REGISTER")).2 == .passed)
        }
        let before = try p.maps.insideCounts()
        try TrustTests.inside(p, TrustTests.response("401 Unauthorized", to: other, cseq: "4 REGISTER", callID: "both"))
        let after = try p.maps.insideCounts()
        #expect(after["auth-failures"] == (before["auth-failures"] ?? 0) + 1
            && after["auth-failures-unproven"] == before["auth-failures-unproven"], "\(before) \(after)")
    }

    /// A credentialed REGISTER answered 200 verifies its source, pinned at its TTL; a 2xx to an OPTIONS, to a
    /// REGISTER without credentials, or naming a transaction never sent earns nothing. A verified source gets
    /// through while a random-source flood has drained its /24, whose other sources are dropped.
    @Test func anAcceptedRegistrationEarnsTrustThatOutlastsADrainedPrefix() throws {
        // A /24 bucket that refills at 1/s: a slow, busy test machine cannot refill it between the flood and the
        // prober's packet (with the default 200/s it could, and did once in CI).
        var policy = FilterPolicy()
        policy.prefix = .rate(1, burst: 20)
        let p = try TrustTests.program(policy: policy)
        let phone = "198.18.6.6", prober = "198.18.6.7", bare = "198.18.6.8", liar = "198.18.6.9"
        #expect(try TrustTests.register(p, phone, ttl: 57) == .passed)
        #expect(try p.judge(Packet.request("OPTIONS", src: prober)).2 == .passed)
        try TrustTests.inside(p, TrustTests.response("200 OK", to: prober, cseq: "1 OPTIONS"))
        #expect(try p.judge(Packet.request("REGISTER", src: bare)).2 == .passed)
        try TrustTests.inside(p, TrustTests.response("200 OK", to: bare, cseq: "1 REGISTER"))
        try TrustTests.inside(p, TrustTests.response("200 OK", to: liar, cseq: "1 REGISTER"))
        let trusted = try TrustTests.trusted(p)
        #expect(Set(trusted.keys) == [phone])
        #expect(trusted[phone]?.ttl == 57)
        // The /24's bucket drained by spoofed sources of the same /24.
        var dropped = 0
        for i in 0..<200 {
            let src = "198.18.6.\(10 + i % 200)"
            if try p.judge(Packet.request("INVITE", src: src)).2 == .droppedPrefix { dropped += 1 }
        }
        #expect(dropped >= 170)
        #expect(try p.judge(Packet.request("INVITE", src: prober)).2 == .droppedPrefix)
        for _ in 0..<5 { #expect(try p.judge(Packet.request("REGISTER", src: phone, ttl: 57)).2 == .passed) }
        // Its own per-source limit still holds: a verified source's (REGISTER 30/s, burst 60), not a stranger's
        // (8/s, burst 16).
        let start = ContinuousClock.now
        let reasons = try (0..<400).map { _ in try p.judge(Packet.request("REGISTER", src: phone, ttl: 57)).2 }
        let refill = 30 * (Int((ContinuousClock.now - start).components.seconds) + 1)
        #expect(reasons.prefix(50).allSatisfy { $0 == .passed }, "\(reasons)")
        let passed = reasons.filter { $0 == .passed }.count
        #expect(passed >= 50 && passed <= 60 + refill, "\(passed) of 400 passed")
    }

    /// Verified sources have per-source limits of their own (`limit set CLASS --tier verified`): a registered
    /// PBX is not throttled like a stranger, and a stranger does not get the verified limits.
    @Test func verifiedSourcesHaveTheirOwnLimits() throws {
        var policy = FilterPolicy()
        policy.prefix = .unlimited
        policy.widePrefix = .unlimited
        let p = try TrustTests.program(policy: policy)
        try p.maps.setLimit(.rate(1, burst: 100), for: .invite, tier: .verified)
        try p.maps.setLimit(.rate(1, burst: 3), for: .invite)
        #expect(try p.maps.limit(for: .invite, tier: .verified) == .rate(1, burst: 100))
        let pbx = "198.18.6.40", stranger = "198.18.6.41"
        #expect(try TrustTests.register(p, pbx) == .passed)
        let start = ContinuousClock.now
        let calls = try (0..<150).map { i in try p.judge(Packet.request("INVITE", src: pbx, callID: "c\(i)")).2 }
        let other = try (0..<20).map { i in try p.judge(Packet.request("INVITE", src: stranger, callID: "s\(i)")).2 }
        let refill = Int((ContinuousClock.now - start).components.seconds) + 1  // both refill at 1/s
        #expect(calls.prefix(100).allSatisfy { $0 == .passed }, "\(calls)")
        #expect(calls.filter { $0 == .passed }.count <= 100 + refill)
        #expect(other.prefix(3).allSatisfy { $0 == .passed } && other.filter { $0 == .passed }.count <= 3 + refill,
                "\(other)")
    }

    /// When the SIP budget runs short, a verified source is shed after every class a stranger sends, the
    /// in-dialog requests and responses of calls included, and before the allow-listed.
    @Test func theBudgetShedsVerifiedSourcesAfterEveryStrangerAndBeforeTheAllowList() throws {
        var policy = FilterPolicy()
        policy.budget = .rate(1, burst: 81)  // tolerance 80 intervals: level L of 8 reaches (L + 1) * 10 of them
        policy.allow = [try CIDR("198.18.7.9")]
        var settings = Settings.defaults
        settings.trustSeconds = 60
        let p = try loadProgram(settings: settings, policy: policy, testClock: true)
        #expect(try TrustTests.register(p, "198.18.7.5") == .passed)  // one REGISTER of the budget: 79 left
        // Strangers' BYEs (in-dialog, level 5) take the budget to 60 intervals deep, then are shed.
        let byes = try (0..<70).map { i in try p.judge(Packet.request("BYE", src: "198.18.8.\(i % 10 + 1)", callID: "b\(i)")).2 }
        #expect(byes.filter { $0 == .passed }.count == 60 && byes.last == .droppedShed, "\(byes)")
        // The verified source goes on to 70, the allow-listed one to 80.
        let verified = try (0..<15).map { i in try p.judge(Packet.request("BYE", src: "198.18.7.5", callID: "v\(i)")).2 }
        #expect(verified.filter { $0 == .passed }.count == 10 && verified.last == .droppedShed, "\(verified)")
        let allowed = try (0..<15).map { i in try p.judge(Packet.request("BYE", src: "198.18.7.9", callID: "a\(i)")).2 }
        #expect(allowed.filter { $0 == .passedAllow }.count == 10 && allowed.last == .droppedShed, "\(allowed)")
    }

    /// Only the SIP server's answers count when `sip.servers` names it: a 200 from another inside address (a
    /// compromised host beside the server, say) verifies nothing.
    @Test func answersFromOtherInsideAddressesCountForNothingWhenServersAreNamed() throws {
        let p = try TrustTests.program()
        try p.maps.setServers([try CIDR("198.18.2.2")])
        let phone = "198.18.6.30", other = "198.18.6.31"
        #expect(try p.judge(Packet.request("REGISTER", src: other, extra: [TrustTests.credentials],
                                           callID: "x", cseq: "1 REGISTER")).2 == .passed)
        try TrustTests.inside(p, TrustTests.response("200 OK", to: other, callID: "x", from: "198.18.2.3"))
        #expect(try TrustTests.register(p, phone) == .passed)
        #expect(Set(try TrustTests.trusted(p).keys) == [phone])
    }

    /// A TCP segment from `source`:40000 to the server's 5060 (PSH-ACK, or `flags`), carrying `text`.
    static func tcp(_ text: String, from source: String, flags: UInt8 = 0x18, ack: UInt32 = 0, ttl: UInt8 = 64) -> [UInt8] {
        Packet.ethernet(Packet.EtherType.ipv4, Packet.ipv4(
            src: source, dst: "198.18.2.2", proto: Packet.Proto.tcp,
            Packet.tcp(sport: 40000, dport: 5060, flags: flags, seq: 100, ack: ack, Array(text.utf8)), ttl: ttl))
    }

    /// The server's TCP segment from 5060 to `destination`:`port`.
    static func tcpAnswer(_ text: [UInt8], to destination: String, flags: UInt8 = 0x18, seq: UInt32 = 500,
                          port: UInt16 = 40000) -> [UInt8] {
        Packet.ethernet(Packet.EtherType.ipv4, Packet.ipv4(
            src: "198.18.2.2", dst: destination, proto: Packet.Proto.tcp,
            Packet.tcp(sport: 5060, dport: port, flags: flags, seq: seq, ack: 1, text)))
    }

    /// The SIP message of one of ``response(_:to:cseq:callID:from:extra:)``'s frames (its UDP payload).
    static func message(_ frame: [UInt8]) -> [UInt8] { Array(frame[42...]) }

    /// The server's TCP stream to `peer`:40000, opened by its SYN-ACK (initial sequence number `isn`) as the inside
    /// program sees it leave: ``send(_:)`` puts the server's bytes on it, each segment where the last one ended.
    struct ServerStream {
        let p: FloodgateProgram
        let peer: String
        /// The sequence number of the stream's next byte.
        var seq: UInt32

        init(_ p: FloodgateProgram, to peer: String, isn: UInt32 = 7) throws {
            (self.p, self.peer, seq) = (p, peer, isn &+ 1)
            try TrustTests.inside(p, TrustTests.tcpAnswer([], to: peer, flags: 0x12, seq: isn))
        }

        /// One segment of `bytes` at the stream's next byte.
        mutating func send(_ bytes: [UInt8]) throws {
            try TrustTests.inside(p, TrustTests.tcpAnswer(bytes, to: peer, seq: seq))
            seq &+= UInt32(bytes.count)
        }
    }

    /// SIP over TCP: a segment that starts with a request line is classified, walked and noted like a datagram,
    /// and the server's answers over TCP count: a password guesser is banned at the threshold. A 2xx to credentials
    /// that answered no nonce sent to the address verifies nothing; a request whose header block goes on in the
    /// next segment is let through (its connection would stall otherwise) but not noted.
    @Test func bruteForceOverTCPIsCounted() throws {
        let p = try TrustTests.program()
        let guesser = "198.18.8.5"
        var stream = try ServerStream(p, to: guesser)
        for round in 1...3 {
            let register = "REGISTER sip:198.18.2.2 SIP/2.0\r\nVia: SIP/2.0/TCP \(guesser):40000;branch=z9hG4bK-\(round)\r\n"
                + "Call-ID: t\(round)@x\r\nCSeq: 2 REGISTER\r\n\(TrustTests.credentials)\r\nContent-Length: 0\r\n\r\n"
            #expect(try p.judge(TrustTests.tcp(register, from: guesser)) == (XDP_PASS_ACTION, .register, .passed))
            let answer = TrustTests.response("401 Unauthorized", to: guesser, cseq: "2 REGISTER", callID: "t\(round)@x")
            try stream.send(TrustTests.message(answer))
            #expect((p.maps.ban(of: SourceAddress(guesser)!) != nil) == (round == 3), "round \(round)")
        }
        #expect(p.maps.ban(of: SourceAddress(guesser)!)?.bruteForce == true)
        // A 200 to credentials that answered no challenge verifies nothing.
        let phone = "198.18.8.6"
        let register = "REGISTER sip:198.18.2.2 SIP/2.0\r\nCall-ID: ok@x\r\nCSeq: 2 REGISTER\r\n"
            + "\(TrustTests.credentials)\r\n\r\n"
        #expect(try p.judge(TrustTests.tcp(register, from: phone)).2 == .passed)
        let ok = TrustTests.response("200 OK", to: phone, cseq: "2 REGISTER", callID: "ok@x")
        var phoneStream = try ServerStream(p, to: phone)
        try phoneStream.send(TrustTests.message(ok))
        #expect(try TrustTests.trusted(p).isEmpty)
        #expect(try p.maps.insideCounts()["answers"] == 4)
        // Scanners over TCP are caught too, and a header block cut at the segment's end is malformed.
        #expect(try p.judge(TrustTests.tcp("OPTIONS sip:x SIP/2.0\r\nUser-Agent: sipvicious\r\n\r\n", from: "198.18.8.7")).2
            == .droppedScanner)
        #expect(try p.judge(TrustTests.tcp("OPTIONS sip:x SIP/2.0\r\nCall-ID: c@x\r\n", from: "198.18.8.8")).2
            == .passed)
        // The rest of a message, or TLS, is the stream.
        #expect(try p.judge(TrustTests.tcp("v=0\r\no=- 1 1 IN IP4 198.18.8.9\r\n", from: "198.18.8.9")).1 == .sipStream)
    }

    /// Over TCP as over UDP, a client is verified by a REGISTER whose credentials answer the nonce of a challenge
    /// sent to it, accepted; a completed handshake alone proves its address real, not that it has an account, and
    /// verifies nothing.
    @Test func overTCPAnAcceptedRegisterVerifiesAndAHandshakeAloneDoesNot() throws {
        let p = try TrustTests.program()
        let client = "198.18.8.20", other = "198.18.8.21"
        try TrustTests.inside(p, TrustTests.tcpAnswer([], to: other, flags: 0x12, seq: 7))
        #expect(try p.judge(TrustTests.tcp("", from: other, flags: 0x10, ack: 8)).2 == .passed)
        let challenge = TrustTests.response("401 Unauthorized", to: client, cseq: "1 REGISTER", callID: "tcp@x",
                                            extra: ["WWW-Authenticate: Digest realm=\"x\", nonce=\"abc\""])
        var stream = try ServerStream(p, to: client, isn: 0xFFFF_FFF0)
        try stream.send(TrustTests.message(challenge))
        let register = "REGISTER sip:198.18.2.2 SIP/2.0\r\nCall-ID: tcp@x\r\nCSeq: 2 REGISTER\r\n"
            + "\(TrustTests.credentials)\r\n\r\n"
        #expect(try p.judge(TrustTests.tcp(register, from: client, ttl: 55)).2 == .passed)
        let ok = TrustTests.response("200 OK", to: client, cseq: "2 REGISTER", callID: "tcp@x")
        try stream.send(TrustTests.message(ok))
        let trusted = try TrustTests.trusted(p)
        #expect(Set(trusted.keys) == [client])
        #expect(trusted[client]?.ttl == 55)
    }

    /// A request the server sends over TCP, from 198.18.2.2 to `peer`, with `body` (`length`: the Content-Length
    /// line, if not the body's own).
    static func serverRequest(_ method: String, to peer: String, body: [UInt8], length: String? = nil,
                              extra: [String] = []) -> [UInt8] {
        let head = (["\(method) sip:100@\(peer):40000;transport=tcp SIP/2.0",
                     "Via: SIP/2.0/TCP 198.18.2.2;branch=z9hG4bK-\(method.lowercased())",
                     "From: <sip:evil@198.18.2.2>;tag=e", "To: <sip:100@198.18.2.2>", "Call-ID: \(method)@x",
                     "CSeq: 1 \(method)", "Content-Type: text/plain"] + extra
                    + [length ?? "Content-Length: \(body.count)"]).joined(separator: "\r\n") + "\r\n\r\n"
        return Array(head.utf8) + body
    }

    /// A 401 to `peer` naming a REGISTER (Call-ID `call`), with `nonce`.
    static func registerChallenge(to peer: String, call: String, nonce: String) -> [UInt8] {
        message(response("401 Unauthorized", to: peer, cseq: "1 REGISTER", callID: call, extra: [challengeHeader(nonce)]))
    }

    /// The hole a body framed as an answer opened (found by a review on 2026-12-06, night). Someone with an account
    /// has the server relay to a verified phone connected over TCP a MESSAGE padded so that a segment of the relay
    /// starts with a made-up `401` naming REGISTER, with a nonce of their choosing, and naming a transaction that a
    /// segment forged in the phone's name had noted on the way in. Read as the server's answer, it counted a failure
    /// against the phone and noted the nonce as the registrar's, so that requests forged in the phone's name
    /// answering it failed as proven and got the phone banned. Now the server's stream is followed from its first
    /// byte, and only a segment where one of its messages starts is read: the body is the MESSAGE's, the failures
    /// are unproven (a quarantine, never a ban), and the server's own challenge after the MESSAGE is read where it
    /// starts. A segment that goes on past where the next message starts without starting there loses the stream.
    @Test func anAnswerFramedInsideATCPBodyIsNotRead() throws {
        let p = try TrustTests.program()
        let phone = "198.18.8.30"
        #expect(try TrustTests.register(p, phone) == .passed)
        #expect(try TrustTests.trusted(p)[phone] != nil)
        // The forged segment: a credentialed REGISTER in the phone's name (the server's kernel drops it; the
        // filter, which cannot tell, notes it).
        let forged = "REGISTER sip:198.18.2.2 SIP/2.0\r\nCall-ID: forged@x\r\nCSeq: 1 REGISTER\r\n"
            + "\(TrustTests.credentials(nonce: "evil"))\r\nContent-Length: 0\r\n\r\n"
        #expect(try p.judge(TrustTests.tcp(forged, from: phone, ack: 1)).2 == .passed)
        let before = try p.maps.insideCounts()
        var stream = try ServerStream(p, to: phone)
        let fake = TrustTests.registerChallenge(to: phone, call: "forged@x", nonce: "evil")
        let padding = Array(repeating: UInt8(ascii: "x"), count: 300)
        let relay = TrustTests.serverRequest("MESSAGE", to: phone, body: padding + fake + padding)
        let cut = relay.count - fake.count - padding.count
        try stream.send(Array(relay[..<cut]))
        let fakeAt = stream.seq
        try stream.send(Array(relay[cut..<(cut + fake.count)]))
        try stream.send(Array(relay[(cut + fake.count)...]))
        // The fake sent again, alone (a retransmission of the body's bytes), is not read either.
        try TrustTests.inside(p, TrustTests.tcpAnswer(fake, to: phone, seq: fakeAt))
        do {
            let c = try p.maps.insideCounts()
            #expect(c["challenges"] == before["challenges"], "the fake's nonce is not noted: \(c)")
            #expect(c["answers"] == before["answers"], "\(c)")
            #expect(c["auth-failures"] == before["auth-failures"] && c["auth-failures-unproven"] == before["auth-failures-unproven"])
        }
        // Requests forged in the phone's name answering the fake's nonce fail unproven: a quarantine, no ban (with
        // the fake read, the third banned the phone).
        for n in 1...3 {
            #expect(try TrustTests.credentialedRegister(p, phone, nonce: "evil", call: "f\(n)", answer: "401 Unauthorized")
                == .passed)
        }
        #expect(p.maps.ban(of: SourceAddress(phone)!) == nil)
        #expect(try TrustTests.trusted(p)[phone]?.quarantineUntilSeconds != nil)
        // The server's own challenge, where the next message starts, is read.
        let real = TrustTests.registerChallenge(to: phone, call: "real@x", nonce: "real"), realAt = stream.seq
        try stream.send(real)
        #expect(try p.maps.insideCounts()["challenges"] == before["challenges"]! + 1)
        // That challenge sent again with the next message (a retransmission that takes in new bytes): read from
        // where the next message starts, past the bytes already read.
        let next = TrustTests.registerChallenge(to: phone, call: "real2@x", nonce: "real2")
        try TrustTests.inside(p, TrustTests.tcpAnswer(real + next, to: phone, seq: realAt))
        stream.seq &+= UInt32(next.count)
        do {
            let c = try p.maps.insideCounts()
            #expect(c["challenges"] == before["challenges"]! + 2, "\(c)")
            #expect(c["tcp-streams-lost"] == before["tcp-streams-lost"] && c["tcp-segments-unread"] == before["tcp-segments-unread"],
                    "\(c)")
        }
        // The fake once more, in one segment with a whole message before it: there it starts a message of the
        // server's own (the phone's parser reads it as one), and is read as one.
        try stream.send(TrustTests.serverRequest("MESSAGE", to: phone, body: padding) + fake)
        #expect(try p.maps.insideCounts()["challenges"] == before["challenges"]! + 3)
    }

    /// The server's TCP stream is read where each of its messages starts, as the phone's parser finds it: past
    /// keep-alive CRLFs, a body over several segments, two messages in one segment (each read as an answer), a
    /// compact Content-Length, a gap (a segment after a lost one waits for it), the rest of a body coalesced with the
    /// next message, names that only start like Content-Length's, lines ending in LF alone, the sequence numbers'
    /// wrap. A stream the filter did not see open is not read; one whose next start can't be told (no Content-Length
    /// or two, one folded, not a number, too long, or ended by a CR alone, more steps in a segment than are walked)
    /// is lost, and nothing more on it is read until the server opens another. The server's RST or FIN (after its
    /// data) ends the stream; one it opens is followed. (Header blocks cut by their segment, or longer than a copy:
    /// ``aHeaderBlockCutAnywhereGoesOnInTheNextSegment``.)
    @Test func theServersTCPStreamIsReadWhereEachOfItsMessagesStarts() throws {
        let p = try TrustTests.program()
        let peer = "198.18.8.31"
        func counts() throws -> (challenges: UInt64, answers: UInt64, lost: UInt64, unread: UInt64) {
            let c = try p.maps.insideCounts()
            return (c["challenges"]!, c["answers"]!, c["tcp-streams-lost"]!, c["tcp-segments-unread"]!)
        }
        func challenge(_ nonce: String) -> [UInt8] { TrustTests.registerChallenge(to: peer, call: nonce, nonce: nonce) }
        // Not seen open: not read.
        try TrustTests.inside(p, TrustTests.tcpAnswer(challenge("n0"), to: peer, seq: 8))
        #expect(try counts() == (0, 0, 0, 1))
        var stream = try ServerStream(p, to: peer)
        try stream.send(Array("\r\n\r\n".utf8))
        try stream.send(challenge("n1"))
        #expect(try counts() == (1, 1, 0, 1))
        // An INVITE whose body takes three segments, then a challenge.
        let invite = TrustTests.serverRequest("INVITE", to: peer, body: Array(repeating: UInt8(ascii: "v"), count: 900))
        try stream.send(Array(invite[..<400]))
        try stream.send(Array(invite[400..<800]))
        try stream.send(Array(invite[800...]))
        try stream.send(challenge("n2"))
        #expect(try counts() == (2, 2, 0, 1))
        // Two messages in one segment, keep-alive CRLFs between them: each is read; the next segment is.
        try stream.send(challenge("n3") + Array("\r\n\r\n".utf8) + challenge("n4"))
        try stream.send(challenge("n5"))
        #expect(try counts() == (5, 5, 0, 1))
        // A compact Content-Length ("l"), in any case, with blanks; then a challenge.
        try stream.send(TrustTests.serverRequest("MESSAGE", to: peer, body: Array("hello".utf8), length: "L :  5 "))
        try stream.send(challenge("n6"))
        #expect(try counts() == (6, 6, 0, 1))
        // A gap: the segment after a lost one is not read (counted unread), and the lost one, sent again, is.
        let first = challenge("n7"), second = challenge("n8")
        try TrustTests.inside(p, TrustTests.tcpAnswer(second, to: peer, seq: stream.seq &+ UInt32(first.count)))
        #expect(try counts() == (6, 6, 0, 2))
        try stream.send(first)
        try stream.send(second)
        #expect(try counts() == (8, 8, 0, 2))
        // Coalesced: the rest of a body and the next message in one segment; the message is read where it starts.
        let message = TrustTests.serverRequest("MESSAGE", to: peer, body: Array(repeating: UInt8(ascii: "b"), count: 300))
        let cut = message.count - 200  // in the body
        try stream.send(Array(message[..<cut]))
        try stream.send(Array(message[cut...]) + challenge("n9"))
        #expect(try counts() == (9, 9, 0, 2), "coalesced")
        // Names that start like Content-Length's are other headers; blanks before the colon and leading zeros.
        try stream.send(TrustTests.serverRequest("MESSAGE", to: peer, body: Array("hello".utf8),
                                                 length: "Lorem: 9\r\nContent-Length-X: 9\r\ncontent-length :0005"))
        #expect(try counts() == (9, 9, 0, 2), "look-alike names")
        // Lines that end in LF alone.
        try stream.send(Array("MESSAGE sip:x SIP/2.0\nCall-ID: lf@x\nContent-Length: 2\n\nhi".utf8))
        try stream.send(challenge("n10"))
        #expect(try counts() == (10, 10, 0, 2))
        // Where the next start can't be told, the stream is lost: the challenge after each of these is not read (the
        // challenges before the steps run out are; the others are requests, no answers). The server's next SYN-ACK
        // on the ports opens a new stream.
        let steps = Int(FG_STREAM_STEPS)
        let lost: [(String, [UInt8], read: Int?)] = [
            ("no Content-Length", TrustTests.serverRequest("OPTIONS", to: peer, body: [], length: "Max-Forwards: 70"), nil),
            ("two", TrustTests.serverRequest("MESSAGE", to: peer, body: Array("hi".utf8), extra: ["Content-Length: 2"]), nil),
            ("folded", TrustTests.serverRequest("MESSAGE", to: peer, body: Array("hi".utf8), length: "Content-Length: 2\r\n 0"), nil),
            ("not a number", TrustTests.serverRequest("MESSAGE", to: peer, body: [], length: "Content-Length: x"), nil),
            ("too long", TrustTests.serverRequest("MESSAGE", to: peer, body: [], length: "Content-Length: 99999999"), nil),
            ("more messages than a segment's steps", Array((0...steps).map { _ in challenge("c2") }.joined()), steps),
            ("a CR alone after the Content-Length", TrustTests.serverRequest("MESSAGE", to: peer, body: [], length: "Content-Length: 0\rX: y"), nil),
        ]
        for (i, (what, segment, read)) in lost.enumerated() {
            let was = try counts()
            stream = try ServerStream(p, to: peer, isn: UInt32(1000 * (i + 1)))
            try stream.send(segment)
            try stream.send(challenge("after-\(i)"))
            let now = try counts()
            #expect(now.lost == was.lost + 1 && now.unread == was.unread + 1, "\(what): \(now)")
            if let read { #expect(now.answers == was.answers + UInt64(read), "\(what): \(now)") }
        }
        // And one followed again: a new stream reads, across the sequence numbers' wrap.
        stream = try ServerStream(p, to: peer, isn: 0xFFFF_FF00)
        let was = try counts()
        try stream.send(Array(message[..<cut]))
        try stream.send(Array(message[cut...]) + challenge("n11"))
        try stream.send(challenge("n12"))
        #expect(try counts().challenges == was.challenges + 2)
        // The server's RST, or its FIN, ends the stream: what follows is not read. A stream the server opens (its
        // SYN) is followed like one it accepts.
        for (flags, data, what) in [(UInt8(0x14), false, "RST"), (UInt8(0x11), false, "FIN"), (UInt8(0x19), true, "FIN with data")] {
            stream = try ServerStream(p, to: peer, isn: 5)
            try stream.send(challenge("e1"))
            let last = data ? challenge("e2") : []
            var before = try counts()
            try TrustTests.inside(p, TrustTests.tcpAnswer(last, to: peer, flags: flags, seq: stream.seq))
            stream.seq &+= UInt32(last.count)
            #expect(try counts().challenges == before.challenges + (data ? 1 : 0), "\(what): its data is read")
            before = try counts()
            try stream.send(challenge("e3"))
            #expect(try counts().unread == before.unread + 1 && counts().challenges == before.challenges, "\(what)")
        }
        try TrustTests.inside(p, TrustTests.tcpAnswer([], to: peer, flags: 0x02, seq: 77))
        let opened = try counts()
        try TrustTests.inside(p, TrustTests.tcpAnswer(challenge("e3"), to: peer, seq: 78))
        #expect(try counts().challenges == opened.challenges + 1)
    }

    /// A header block the server's segment cuts goes on in the next (the walk's state kept in the stream's entry),
    /// wherever the cut falls: inside a line, inside "Content-Length" or a compact "l", between its digits, between
    /// a CR and its LF, at a line's start. Before, any such cut lost the stream, and anyone who could have the server
    /// send a phone a message (a MESSAGE whose header block the relay makes longer than a segment) could lose the
    /// phone's stream and so let its trust lapse. Each cut, and a message sent a byte a segment, is followed: the
    /// challenge after it is read, nothing is lost. No cut makes a message read otherwise than whole: two
    /// Content-Lengths, one folded, or a CR alone lose the stream wherever the cut; a Content-Length named inside
    /// another header's value is not one; a cut's next segment that reads like a challenge is not read as one; a
    /// message whose header block is cut is not read as an answer. A header block longer than a copy (2,048
    /// bytes) goes on in the next copy, a copy ending on each byte of the Content-Length line as well as inside a long
    /// value; one longer than FG_STREAM_MAX_HEADER loses the stream.
    @Test func aHeaderBlockCutAnywhereGoesOnInTheNextSegment() throws {
        let p = try TrustTests.program()
        let peer = "198.18.8.33"
        var isn: UInt32 = 100
        func counts() throws -> (challenges: UInt64, answers: UInt64, lost: UInt64, unread: UInt64) {
            let c = try p.maps.insideCounts()
            return (c["challenges"]!, c["answers"]!, c["tcp-streams-lost"]!, c["tcp-segments-unread"]!)
        }
        func challenge(_ nonce: String) -> [UInt8] { TrustTests.registerChallenge(to: peer, call: nonce, nonce: nonce) }
        /// A new stream that carries `segments`, then a challenge (in a segment of its own, or `coalesced` at the end
        /// of the last): whether that challenge was read, and whether the stream was lost.
        func followed(_ segments: [[UInt8]], coalesced: Bool = false) throws -> (read: Bool, lost: Bool) {
            isn &+= 100_000
            var stream = try ServerStream(p, to: peer, isn: isn)
            let before = try counts()
            var segments = segments
            if coalesced { segments[segments.count - 1] += challenge("after") }
            for segment in segments.dropLast() { try stream.send(segment) }
            let was = try counts()
            try stream.send(segments[segments.count - 1])
            if !coalesced { try stream.send(challenge("after")) }
            let now = try counts()
            return (now.challenges == was.challenges + 1, now.lost > before.lost)
        }
        // Messages whose every byte is tried as a cut: CRLF lines with a Content-Length of two digits (its body
        // twelve bytes: a cut between the digits that took "1" or "2" for the length would lose the stream), a
        // header whose value names Content-Length; LF lines with a compact, upper-case "L" and blanks.
        let crlf = TrustTests.serverRequest("MESSAGE", to: peer, body: Array("hello, world".utf8),
                                            extra: ["X-Note: Content-Length: 7", "Subject: content-length"])
        let lf = Array("NOTIFY sip:x SIP/2.0\nCall-ID: lf@x\nContent-Type: text/plain\nL :  12 \n\nhello, world".utf8)
        for (name, message) in [("CRLF", crlf), ("LF", lf)] {
            var failed: [Int] = []
            for cut in 1..<message.count {
                for coalesced in [false, true] {
                    let (read, lost) = try followed([Array(message[..<cut]), Array(message[cut...])], coalesced: coalesced)
                    if !read || lost { failed.append(cut) }
                }
            }
            #expect(failed.isEmpty, "\(name): cuts after which the stream was not followed (alone, and with the challenge in the rest's segment): \(failed)")
            let (read, lost) = try followed(message.map { [$0] })
            #expect(read && !lost, "\(name), a byte a segment")
        }
        // Cut anywhere, a message whose length can't be told loses the stream.
        let refused: [(String, [UInt8])] = [
            ("two Content-Lengths", TrustTests.serverRequest("MESSAGE", to: peer, body: Array("hi".utf8), extra: ["Content-Length: 2"])),
            ("one folded", TrustTests.serverRequest("MESSAGE", to: peer, body: Array("hi".utf8), length: "Content-Length: 2\r\n 0")),
            ("a CR alone after it", TrustTests.serverRequest("MESSAGE", to: peer, body: [], length: "Content-Length: 0\rX: y")),
            ("a CR alone at a line's start", TrustTests.serverRequest("MESSAGE", to: peer, body: [], length: "Content-Length: 0\r\n\rX: y")),
        ]
        for (what, message) in refused {
            var kept: [Int] = []
            for cut in 1..<message.count {
                let (read, lost) = try followed([Array(message[..<cut]), Array(message[cut...])])
                if read || !lost { kept.append(cut) }
            }
            #expect(kept.isEmpty, "\(what): cuts after which the stream was still followed: \(kept)")
        }
        // A challenge cut by its segment is not read (its start line is in the first, the rest in the second); the
        // next one is. A segment that goes on a header block and reads like a challenge is not read as one.
        do {
            let cut = challenge("cut")
            isn &+= 100_000
            var stream = try ServerStream(p, to: peer, isn: isn)
            var was = try counts()
            try stream.send(Array(cut[..<40]))
            try stream.send(Array(cut[40...]))
            #expect(try counts() == (was.challenges, was.answers, was.lost, was.unread), "a cut challenge")
            let fake = "SIP/2.0 401 Unauthorized\r\nCall-ID: fake@x\r\nCSeq: 1 REGISTER\r\n"
                + TrustTests.challengeHeader("fake") + "\r\nContent-Length: 0\r\n\r\n"
            let head = Array("MESSAGE sip:x SIP/2.0\r\nCall-ID: m@x\r\n".utf8)
            was = try counts()
            try stream.send(head)
            try stream.send(Array(fake.utf8))
            #expect(try counts() == (was.challenges, was.answers, was.lost, was.unread), "a fake in a header block")
        }
        // Header blocks past a copy's 2,048 bytes: in one segment, and over several.
        func segments(_ bytes: [UInt8], of size: Int) -> [[UInt8]] {
            stride(from: 0, to: bytes.count, by: size).map { Array(bytes[$0..<min($0 + size, bytes.count)]) }
        }
        let long = TrustTests.serverRequest("MESSAGE", to: peer, body: Array("hi".utf8),
                                            extra: ["X-Long: " + String(repeating: "y", count: 3000)])
        #expect(try followed([long]) == (true, false), "a header block over two copies in one segment")
        #expect(try followed([long], coalesced: true) == (true, false), "and a challenge after it in that segment")
        #expect(try followed(segments(long, of: 1400)) == (true, false), "over segments")
        // A copy's end on each byte from before the Content-Length line to past the blank line, a challenge after the
        // message in the same segment; and more than a copy of keep-alives before a challenge.
        func padded(_ n: Int) -> [UInt8] {
            TrustTests.serverRequest("MESSAGE", to: peer, body: Array("hello, world".utf8),
                                     extra: ["X-Pad: " + String(repeating: "p", count: n)])
        }
        let probe = padded(0), name = Array("Content-Length".utf8)
        let lengthAt = (0...(probe.count - name.count)).first { Array(probe[$0..<($0 + name.count)]) == name }!
        var missed: [Int] = []
        for before in -3...24 {
            // The copy ends `before` bytes into the Content-Length line ("Content-Length: 12", CRLF, CRLF: 22 bytes).
            let message = padded(Int(FG_SIP_SCAN_BYTES) - lengthAt - before)
            if try followed([message], coalesced: true) != (true, false) { missed.append(before) }
        }
        #expect(missed.isEmpty, "copies ending this far into the Content-Length line: \(missed)")
        #expect(try followed([Array(String(repeating: "\r\n", count: 1100).utf8)], coalesced: true) == (true, false),
                "keep-alives over a copy")
        // Past FG_STREAM_MAX_HEADER, lost.
        let line = "X-Long: " + String(repeating: "z", count: 990)
        let over = Int(FG_STREAM_MAX_HEADER) / 1000
        let huge = TrustTests.serverRequest("MESSAGE", to: peer, body: [], extra: Array(repeating: line, count: over + 2))
        #expect(try followed(segments(huge, of: 3000)) == (false, true), "past the longest header block")
        let under = TrustTests.serverRequest("MESSAGE", to: peer, body: [], extra: Array(repeating: line, count: over - 2))
        #expect(try followed(segments(under, of: 3000)) == (true, false), "under it")
    }

    /// Answers the server coalesces in one segment (a client that held its receive window shut) are each read:
    /// three refusals to a guesser's credentials in one segment ban it, as three in three segments do.
    @Test func answersCoalescedInOneSegmentAreEachRead() throws {
        let p = try TrustTests.program()
        let guesser = "198.18.8.34"
        var stream = try ServerStream(p, to: guesser)
        var answers: [UInt8] = Array("\r\n".utf8)
        for round in 1...3 {
            let register = "REGISTER sip:198.18.2.2 SIP/2.0\r\nVia: SIP/2.0/TCP \(guesser):40000;branch=z9hG4bK-\(round)\r\n"
                + "Call-ID: c\(round)@x\r\nCSeq: 2 REGISTER\r\n\(TrustTests.credentials)\r\nContent-Length: 0\r\n\r\n"
            #expect(try p.judge(TrustTests.tcp(register, from: guesser)) == (XDP_PASS_ACTION, .register, .passed))
            answers += TrustTests.message(TrustTests.response("401 Unauthorized", to: guesser, cseq: "2 REGISTER",
                                                              callID: "c\(round)@x"))
        }
        #expect(p.maps.ban(of: SourceAddress(guesser)!) == nil)
        try stream.send(answers)
        let c = try p.maps.insideCounts()
        #expect(c["answers"] == 3 && c["auth-failures"] == 3, "\(c)")
        #expect(p.maps.ban(of: SourceAddress(guesser)!)?.bruteForce == true)
    }

    /// The server's SYN-ACKs to forged SYNs open streams that never carry data: they are noted in an LRU of their
    /// own (fg_stream_opens), never among the streams followed, so that a flood of them does not push out a phone's
    /// connection. (The kernel's LRU alone would keep an entry looked up since it was made over ones never looked
    /// up; the maps' contents are what shows the two kept apart.)
    @Test func aFollowedStreamOutlastsAFloodOfSynAcks() throws {
        let p = try TrustTests.program()
        let phone = "198.18.8.32"
        var stream = try ServerStream(p, to: phone)
        try stream.send(TrustTests.registerChallenge(to: phone, call: "c1", nonce: "c1"))
        let flood = Int(FG_MAX_STREAMS) + 4096
        for i in 0..<flood {
            try TrustTests.inside(p, TrustTests.tcpAnswer([], to: "198.19.\((i >> 8) & 255).\(i & 255)", flags: 0x12,
                                                          seq: UInt32(i), port: UInt16(40001 + (i >> 16))))
        }
        let followed: BPFMap<fg_stream_key, fg_stream> = p.maps.map(FG_MAP_STREAMS)
        let opening: BPFMap<fg_stream_key, UInt32> = p.maps.map(FG_MAP_STREAM_OPENS)
        let keys = try followed.keys()
        #expect(keys.count == 1 && keys.first.map { SourceAddress($0.peer).description } == phone)
        #expect(try opening.keys().count > flood / 2, "the SYN-ACKs are noted apart")
        let before = try p.maps.insideCounts()["challenges"]!
        try stream.send(TrustTests.registerChallenge(to: phone, call: "c2", nonce: "c2"))
        #expect(try p.maps.insideCounts()["challenges"] == before + 1)
    }

    /// Accepted credentials verify only if they answer a nonce the server sent that address, and only a
    /// REGISTER's (a server may accept an INVITE without checking): a server that accepts
    /// a request without checking them (an INVITE to voicemail, say) proves nothing about its source, and its 2xx
    /// does not clear a guesser's failures either. A nonce sent to another address, or another nonce, is no proof.
    @Test func acceptedCredentialsVerifyOnlyIfTheyAnswerANonceSentToThatAddress() throws {
        let p = try TrustTests.program(failures: 2)
        let forged = "198.18.9.1", other = "198.18.9.2"
        func invite(_ n: Int, nonce: String) throws {
            let auth = "Authorization: Digest username=\"100\",realm=\"198.18.2.2\",cnonce=\"cn\",nc=00000001,"
                + "nonce=\"\(nonce)\",uri=\"sip:200@198.18.2.2\",response=\"0123\""
            #expect(try p.judge(Packet.request("INVITE", src: forged, extra: [auth], callID: "v\(n)", cseq: "1 INVITE")).2
                == .passed)
            try TrustTests.inside(p, TrustTests.response("200 OK", to: forged, cseq: "1 INVITE", callID: "v\(n)"))
        }
        try invite(1, nonce: "abc")  // never challenged
        try TrustTests.challenge(p, forged, nonce: "zzz")
        try invite(2, nonce: "abc")  // challenged, but with another nonce
        try TrustTests.challenge(p, other, nonce: "abc")
        try invite(3, nonce: "abc")  // "abc" went to another address
        // The right nonce to the right address, but an INVITE: a server may accept one without checking its
        // credentials, so its 2xx is no proof.
        try TrustTests.challenge(p, forged, nonce: "good")
        try invite(5, nonce: "good")
        #expect(try TrustTests.trusted(p).isEmpty)
        // The 2xx does not clear failures: one failure, a forged acceptance, a second failure: banned.
        #expect(try TrustTests.register(p, forged, call: "f1", answer: "401 Unauthorized") == .passed)
        try invite(4, nonce: "nope")
        #expect(try TrustTests.register(p, forged, call: "f2", answer: "401 Unauthorized") == .passed)
        #expect(p.maps.ban(of: SourceAddress(forged)!)?.bruteForce == true)
        // The right nonce, to the right address, a REGISTER: verified.
        try TrustTests.challenge(p, other, nonce: "xyz")
        let auth = "Authorization: Digest username=\"100\", nonce=xyz, response=\"0\""
        #expect(try p.judge(Packet.request("REGISTER", src: other, extra: [auth], callID: "o", cseq: "2 REGISTER")).2 == .passed)
        try TrustTests.inside(p, TrustTests.response("200 OK", to: other, cseq: "2 REGISTER", callID: "o"))
        #expect(Set(try TrustTests.trusted(p).keys) == [other])
    }

    /// stale=true counts only in the challenge header: the answer echoes the request's From, To and Call-ID, so a
    /// guesser who puts stale=true there must not escape the count.
    @Test func staleTrueCountsOnlyInTheChallengeHeader() throws {
        let p = try TrustTests.program(failures: 2)
        let guesser = "198.18.9.10"
        for round in 1...2 {
            #expect(try p.judge(Packet.request("REGISTER", src: guesser, extra: [TrustTests.credentials],
                                               callID: "s\(round);stale=true", cseq: "1 REGISTER")).2 == .passed)
            try TrustTests.inside(p, TrustTests.response(
                "401 Unauthorized", to: guesser, callID: "s\(round);stale=true",
                extra: ["X-Echo: stale=true", "WWW-Authenticate: Digest realm=\"x\", nonce=\"n\(round)\""]))
        }
        #expect(p.maps.ban(of: SourceAddress(guesser)!)?.bruteForce == true)
    }

    /// A verified source keeps getting through a drained prefix after the prefix length changes: its prefix is
    /// marked again at the new length, so the drop cache does not drop the prefix before the policy sees it.
    @Test func aVerifiedSourceOutlastsAPrefixLengthChange() throws {
        var policy = FilterPolicy()
        policy.prefix = .rate(1, burst: 20)
        let p = try TrustTests.program(policy: policy)
        let phone = "198.18.10.6"
        #expect(try TrustTests.register(p, phone) == .passed)
        var settings = try p.maps.settings()
        settings.prefixV4 = 22
        try p.maps.setSettings(settings)
        try onOneCPU {
            var dropped = 0
            for i in 0..<200 {
                if try p.judge(Packet.request("INVITE", src: "198.18.\(8 + i % 4).\(20 + i % 200)")).2 == .droppedPrefix {
                    dropped += 1
                }
            }
            #expect(dropped >= 170)
            for _ in 0..<5 { #expect(try p.judge(Packet.request("REGISTER", src: phone)).2 == .passed) }
        }
    }

    /// A verified source keeps getting through when a flood from the other /24s of its wider network drains the
    /// network: the network is marked as holding it (by XDP when it is verified, by the agent again when the lengths
    /// change), so the drop cache does not hold the network whole before the policy sees the source: a denied
    /// source in an untouched /24 reaches the deny list, where in a network without a verified source it is dropped
    /// in the cache. A stranger beside the phone is still dropped. (The test clock: no token comes due meanwhile.)
    @Test func aVerifiedSourceOutlastsADrainedWideNetwork() throws {
        var policy = FilterPolicy()
        policy.widePrefix = .rate(1, burst: 50)
        policy.deny = Set(try ["198.18.200.9", "198.18.30.9", "198.19.200.9", "198.18.22.9", "198.18.22.10"]
            .map { try CIDR($0) })
        let p = try TrustTests.program(policy: policy, testClock: true)
        // Stopped at the machine's own time: the agent's marks after the change of lengths judge the source's trust
        // (60 s) by it.
        try p.setTestClock(nanoseconds: monotonicNanoseconds())
        let phone = "198.18.22.6"
        #expect(try TrustTests.register(p, phone) == .passed)
        func flood(_ thirds: [Int], network: Int = 18) throws -> Int {
            try (0..<300).filter { i in
                try p.judge(Packet.request(
                    "INVITE", src: "198.\(network).\(thirds[i % thirds.count]).\(20 + i / thirds.count)")).2 == .droppedPrefix
            }.count
        }
        try onOneCPU { () throws -> Void in
            // 198.18/16, from 100 /24s that are not the phone's.
            #expect(try flood(Array(30..<130)) >= 200)
            for _ in 0..<5 { #expect(try p.judge(Packet.request("REGISTER", src: phone)).2 == .passed) }
            #expect(try p.judge(Packet.request("INVITE", src: "198.18.22.7")).2 == .droppedPrefix)
            #expect(try p.judge(Packet.request("INVITE", src: "198.18.200.9")).2 == .droppedDeny)
            // The drained /24s are held one by one.
            #expect(try p.judge(Packet.request("INVITE", src: "198.18.30.9")).2 == .droppedPrefix)
            // 198.19/16 holds no verified source: held whole.
            #expect(try flood(Array(30..<130), network: 19) >= 200)
            #expect(try p.judge(Packet.request("INVITE", src: "198.19.200.9")).2 == .droppedPrefix)
        }
        // Wider networks of /20: the phone's is 198.18.16.0/20 (not a key its /16's mark shares).
        var settings = try p.maps.settings()
        settings.wideV4 = 20
        try p.maps.setSettings(settings)
        try onOneCPU { () throws -> Void in
            #expect(try flood((16..<32).filter { $0 != 22 }) >= 200)
            for _ in 0..<5 { #expect(try p.judge(Packet.request("REGISTER", src: phone)).2 == .passed) }
            #expect(try p.judge(Packet.request("INVITE", src: "198.18.22.7")).2 == .droppedPrefix)
            #expect(try p.judge(Packet.request("INVITE", src: "198.18.22.9")).2 == .droppedDeny)
        }
        // The phone's trust ends (60 s): its marks, still in the map, no longer keep the network out of the cache. (A
        // new denied probe: the last one's denial is held by its source, ahead of the network's slot.)
        try p.setTestClock(nanoseconds: monotonicNanoseconds() + 61_000_000_000)
        try onOneCPU { () throws -> Void in
            #expect(try flood((16..<32).filter { $0 != 22 }) >= 200)
            #expect(try p.judge(Packet.request("INVITE", src: "198.18.22.10")).2 == .droppedPrefix)
            #expect(try p.judge(Packet.request("REGISTER", src: phone)).2 == .droppedPrefix)
        }
    }

    /// A source verified while its prefix (or its wider network) is held in the drop cache gets through at once:
    /// the verification ends the slots of both on every CPU, which were filled before its marks were made. Here the
    /// phone's credentialed REGISTER passes, a flood from its /24 (from its /16, for the second phone) gets the
    /// aggregate held on one CPU before the server's 200 goes out, the answer is seen on another CPU, and the phone's
    /// next packet on the first CPU, dropped in its cache until then, passes; a stranger beside it is still dropped.
    /// Before it, a forged 200 (naming a transaction the phone never sent) releases nothing.
    /// (The test clock stands still: without it the holds would end on their own and the test could not fail.)
    @Test func aSourceVerifiedWhileItsAggregateIsHeldGetsThroughAtOnce() throws {
        var policy = FilterPolicy()
        policy.prefix = .rate(1, burst: 20)
        policy.widePrefix = .rate(1, burst: 50)
        let p = try TrustTests.program(policy: policy, testClock: true)
        try p.setTestClock(nanoseconds: monotonicNanoseconds())
        // The flood's CPU: another than the answer's (CPU 0), where there is one.
        let floodCPU: Int32 = sysconf(Int32(_SC_NPROCESSORS_ONLN)) > 1 ? 1 : 0
        for (phone, flood) in [("198.18.23.6", { (i: Int) in "198.18.23.\(100 + i % 100)" }),
                               ("198.19.23.6", { (i: Int) in "198.19.\(30 + i % 100).\(10 + i / 100)" })] {
            try TrustTests.challenge(p, phone)
            try onCPU(floodCPU) { () throws -> Void in
                #expect(try p.judge(Packet.request("REGISTER", src: phone, extra: [TrustTests.credentials], callID: "h1",
                                                   cseq: "1 REGISTER")).2 == .passed)
                let dropped = try (0..<300).filter { try p.judge(Packet.request("OPTIONS", src: flood($0))).2 == .droppedPrefix }
                #expect(dropped.count >= 200, "\(phone)")
                #expect(try p.judge(Packet.request("OPTIONS", src: phone)).2 == .droppedPrefix, "\(phone), held")
            }
            // The forger's turn first: a 200 to the phone naming a transaction it never sent verifies nothing, so
            // it releases nothing either.
            try onCPU(0) {
                try TrustTests.inside(p, TrustTests.response("200 OK", to: phone, cseq: "1 REGISTER", callID: "forged-h1"))
            }
            #expect(try TrustTests.trusted(p)[phone] == nil)
            try onCPU(floodCPU) { () throws -> Void in
                #expect(try p.judge(Packet.request("OPTIONS", src: phone)).2 == .droppedPrefix, "\(phone), still held")
            }
            try onCPU(0) {
                try TrustTests.inside(p, TrustTests.response("200 OK", to: phone, cseq: "1 REGISTER", callID: "h1"))
            }
            #expect(try TrustTests.trusted(p)[phone] != nil)
            try onCPU(floodCPU) { () throws -> Void in
                #expect(try p.judge(Packet.request("OPTIONS", src: phone)).2 == .passed, "\(phone), verified")
                #expect(try p.judge(Packet.request("OPTIONS", src: flood(7))).2 == .droppedPrefix)
            }
        }
    }

    /// A network's mark keeps the latest end of its sources' trust: a phone verified for 120 s, then (the trust
    /// shortened to 60 s) a neighbour verified for 60, and at 90 s, the neighbour lapsed, the first phone still gets
    /// through a flood that drains the network and the network is not held whole. Its marks made again by the agent
    /// (the network length changed) keep that end too.
    @Test func aNetworksMarkLastsAsLongAsItsLatestVerifiedSource() throws {
        var policy = FilterPolicy()
        policy.widePrefix = .rate(1, burst: 50)
        policy.deny = Set(try ["198.18.22.9", "198.18.22.10"].map { try CIDR($0) })
        let p = try TrustTests.program(policy: policy, testClock: true)
        let start = monotonicNanoseconds()
        try p.setTestClock(nanoseconds: start)
        let phone = "198.18.22.6", neighbour = "198.18.22.8"
        func setTrust(_ seconds: UInt32, wideV4: UInt8? = nil) throws {
            var settings = try p.maps.settings()
            settings.trustSeconds = seconds
            if let wideV4 { settings.wideV4 = wideV4 }
            try p.maps.setSettings(settings)
        }
        try setTrust(120)
        #expect(try TrustTests.register(p, phone) == .passed)
        try setTrust(60)
        #expect(try TrustTests.register(p, neighbour, call: "reg-2") == .passed)
        func drain(probe: String) throws {
            try p.setTestClock(nanoseconds: start + 90_000_000_000)
            try onOneCPU { () throws -> Void in
                let dropped = try (0..<300).filter { i in
                    try p.judge(Packet.request("INVITE", src: "198.18.\(16 + i % 6).\(20 + i / 6)")).2 == .droppedPrefix
                }.count
                #expect(dropped >= 200)
                #expect(try p.judge(Packet.request("REGISTER", src: phone)).2 == .passed)
                #expect(try p.judge(Packet.request("INVITE", src: probe)).2 == .droppedDeny)
            }
        }
        try drain(probe: "198.18.22.9")
        // The agent marks the /20s again, the trust still 60 s: the phone's mark ends with its 120.
        try p.setTestClock(nanoseconds: start)
        try setTrust(60, wideV4: 20)
        try drain(probe: "198.18.22.10")
        // The agent's marks take the latest end in whichever order the map hands it the sources.
        let sources = [(address: SourceAddress(phone)!, untilNS: UInt64(120)), (SourceAddress(neighbour)!, 60),
                       (SourceAddress("198.18.40.1")!, 90)]
        // Keys: the IPv4-mapped address masked, then the level's key class and three bytes of padding.
        func key(_ a: UInt8, _ b: UInt8, _ c: UInt8, wide: Bool) -> [UInt8] {
            let level = UInt8(FG_CLASS_MAX.rawValue) + (wide ? 1 : 0)
            return [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, 0, level, 0, 0, 0]
        }
        for order in [sources, sources.reversed()] {
            let marks = FilterMaps.trustedPrefixMarks(order, prefixV4: 24, prefixV6: 64, wideV4: 16, wideV6: 48)
            #expect(marks.count == 3)
            #expect(marks[key(198, 18, 22, wide: false)] == 120)
            #expect(marks[key(198, 18, 40, wide: false)] == 90)
            #expect(marks[key(198, 18, 0, wide: true)] == 120)
        }
    }

    /// The same over IPv6, through the inside program's IPv6 path: a challenge, a credentialed REGISTER answered
    /// 200 verifies the phone at its hop limit; another hop limit is dropped as spoofed; a random-source flood
    /// drains the phone's /64 (IPv6 prefix aggregates) but not the phone, and not another /64.
    @Test func ipv6SourcesAreVerifiedPinnedAndTheirPrefixesAggregated() throws {
        var policy = FilterPolicy()
        policy.prefix = .rate(1, burst: 20)
        let p = try TrustTests.program(policy: policy)
        let phone = "2001:db8:60:1::6", server = "2001:db8:2::2"
        func sip(_ text: String, from src: String, to dst: String, sport: UInt16, dport: UInt16, hopLimit: UInt8 = 64)
            -> [UInt8]
        {
            Packet.ethernet(Packet.EtherType.ipv6, Packet.ipv6(
                src: src, dst: dst, proto: Packet.Proto.udp, Packet.udp(sport: sport, dport: dport, Array(text.utf8)),
                hopLimit: hopLimit))
        }
        func answer(_ status: String, cseq: String, extra: [String] = []) -> [UInt8] {
            let text = (["SIP/2.0 \(status)", "Via: SIP/2.0/UDP [\(phone)]:5070", "Call-ID: v6@x", "CSeq: \(cseq)"] + extra
                + ["Content-Length: 0"]).joined(separator: "\r\n") + "\r\n\r\n"
            return sip(text, from: server, to: phone, sport: 5060, dport: 5070)
        }
        try TrustTests.inside(p, answer("401 Unauthorized", cseq: "1 REGISTER",
                                        extra: ["WWW-Authenticate: Digest realm=\"x\", nonce=\"abc\""]))
        let register = "REGISTER sip:[\(server)] SIP/2.0\r\nCall-ID: v6@x\r\nCSeq: 2 REGISTER\r\n"
            + "\(TrustTests.credentials)\r\nContent-Length: 0\r\n\r\n"
        #expect(try p.judge(sip(register, from: phone, to: server, sport: 5070, dport: 5060, hopLimit: 58)).2 == .passed)
        try TrustTests.inside(p, answer("200 OK", cseq: "2 REGISTER"))
        #expect(try TrustTests.trusted(p)[phone]?.ttl == 58)
        let options = "OPTIONS sip:x SIP/2.0\r\nCall-ID: o@x\r\nCSeq: 1 OPTIONS\r\n\r\n"
        #expect(try p.judge(sip(options, from: phone, to: server, sport: 5070, dport: 5060, hopLimit: 64)).2 == .droppedSpoofed)
        try onOneCPU {
            var dropped = 0
            for i in 0..<200 {
                let src = "2001:db8:60:1:\(String(i, radix: 16))::\(i + 1)"
                if try p.judge(sip(options, from: src, to: server, sport: 5070, dport: 5060)).2 == .droppedPrefix { dropped += 1 }
            }
            #expect(dropped >= 170)
            #expect(try p.judge(sip(options, from: "2001:db8:60:1::99", to: server, sport: 5070, dport: 5060)).2
                == .droppedPrefix)
            #expect(try p.judge(sip(options, from: phone, to: server, sport: 5070, dport: 5060, hopLimit: 58)).2 == .passed)
            #expect(try p.judge(sip(options, from: "2001:db8:60:2::99", to: server, sport: 5070, dport: 5060)).2 == .passed)
        }
    }

    /// The inside program reads the server's answers through the same walk as the filter: an IPv6 answer behind
    /// extension headers (hop-by-hop, destination options) is read; one in fragments is not.
    @Test func theInsideProgramReadsIPv6AnswersBehindExtensionHeaders() throws {
        let p = try TrustTests.program()
        let phone = "2001:db8:61:1::7", server = "2001:db8:2::2"
        func answer(_ status: String, cseq: String, extra: [String] = [], extensions: [(type: UInt8, body: [UInt8])])
            -> [UInt8]
        {
            let text = (["SIP/2.0 \(status)", "Via: SIP/2.0/UDP [\(phone)]:5070", "Call-ID: ext@x", "CSeq: \(cseq)"]
                + extra + ["Content-Length: 0"]).joined(separator: "\r\n") + "\r\n\r\n"
            return Packet.ethernet(Packet.EtherType.ipv6, Packet.ipv6(
                src: server, dst: phone, proto: Packet.Proto.udp, Packet.udp(sport: 5060, dport: 5070, Array(text.utf8)),
                extensions: extensions))
        }
        let options: [(type: UInt8, body: [UInt8])] = [(Packet.Proto.hopByHop, Packet.optionsBody()),
                                                       (Packet.Proto.destOpts, Packet.optionsBody(units: 2))]
        try TrustTests.inside(p, answer("401 Unauthorized", cseq: "1 REGISTER",
                                        extra: ["WWW-Authenticate: Digest realm=\"x\", nonce=\"abc\""], extensions: options))
        func register(_ n: Int) throws -> Reason? {
            let text = "REGISTER sip:[\(server)] SIP/2.0\r\nCall-ID: ext@x\r\nCSeq: \(n) REGISTER\r\n"
                + "\(TrustTests.credentials)\r\nContent-Length: 0\r\n\r\n"
            return try p.judge(Packet.ethernet(Packet.EtherType.ipv6, Packet.ipv6(
                src: phone, dst: server, proto: Packet.Proto.udp, Packet.udp(sport: 5070, dport: 5060, Array(text.utf8)),
                hopLimit: 60))).2
        }
        // In fragments (an atomic fragment header): not read, so not verified.
        #expect(try register(2) == .passed)
        try TrustTests.inside(p, answer("200 OK", cseq: "2 REGISTER",
                                        extensions: [(Packet.Proto.fragment, Packet.fragmentBody(offset: 0, more: false))]))
        #expect(try TrustTests.trusted(p)[phone] == nil)
        // Behind hop-by-hop and destination options: verified, at the TTL its REGISTER came with.
        #expect(try register(3) == .passed)
        try TrustTests.inside(p, answer("200 OK", cseq: "3 REGISTER", extensions: options))
        #expect(try TrustTests.trusted(p)[phone]?.ttl == 60)
    }
}
