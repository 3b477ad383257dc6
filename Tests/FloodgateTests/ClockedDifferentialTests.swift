import CFloodgate
import FloodgateCore
import FloodgateLab
import Foundation
import Testing

/// The XDP programs and the reference model over time: both read one clock (the program's test clock, the model's
/// `now`), so rates, prefixes, the new-source and SIP budgets, bans that run out, auto-bans and their offences,
/// learned trust and its pins, brute force and fragments can be compared frame by frame, over thousands of
/// sources, with the server's answers on the inside.
@Suite struct ClockedDifferentialTests {
    /// One run's randomised policy: limits tight enough that every step of the policy drops something.
    struct Scenario {
        var settings = Settings.defaults
        var limits: [TrafficClass: Limit] = [:]
        var verifiedLimits: [TrafficClass: Limit] = [:]
        var policy = FilterPolicy()

        init(_ rng: inout FrameFactory) {
            settings.dropCache = false
            settings.scannerBanSeconds = UInt32(rng.int(2...20))
            settings.autoBan.drops = UInt32(rng.int(3...30))
            settings.autoBan.windowMilliseconds = 1000
            settings.autoBan.durations = [1, 3, 10, 30]
            settings.autoBan.jitterPercent = 0
            settings.autoBan.forgetSeconds = 60
            settings.bruteForce = BruteForce(failures: 3, windowSeconds: 30, banSeconds: UInt32(rng.int(5...20)))
            settings.trustSeconds = UInt32(rng.int(10...60))
            for c in TrafficClass.all {
                let roll = rng.int(0...99)
                limits[c] = roll < 12 ? .unlimited : roll < 16 ? .block
                    : .rate(UInt32(rng.int(1...40)), burst: UInt32(rng.int(1...30)))
                verifiedLimits[c] = rng.chance(0.1) ? .unlimited
                    : .rate(UInt32(rng.int(10...100)), burst: UInt32(rng.int(5...60)))
            }
            // Requests from strangers are always limited, so that auto-bans happen.
            for c in [TrafficClass.register, .options, .invite] {
                limits[c] = .rate(UInt32(rng.int(1...20)), burst: UInt32(rng.int(1...20)))
            }
            policy.prefix = .rate(UInt32(rng.int(20...200)), burst: UInt32(rng.int(5...60)))
            policy.widePrefix = .rate(UInt32(rng.int(100...600)), burst: UInt32(rng.int(50...300)))
            policy.newSources = .rate(UInt32(rng.int(50...500)), burst: UInt32(rng.int(20...150)))
            policy.budget = rng.chance(0.2) ? .unlimited
                : .rate(UInt32(rng.int(100...600)), burst: UInt32(rng.int(20...100)))
            policy.verifiedLimits = verifiedLimits
            policy.deny = [try! CIDR("198.18.64.0/28"), try! CIDR("2001:db8:a::/123")]
            policy.allow = [try! CIDR("198.18.65.0/29"), try! CIDR("198.18.65.20"), try! CIDR("198.18.66.0/30"),
                            try! CIDR("2001:db8:b::/126"), try! CIDR("2001:db8:b::10")]
            for cidr in policy.allow {
                var options = AllowOptions(limit: .rate(UInt32(rng.int(20...200)), burst: UInt32(rng.int(10...100))))
                if cidr == (try! CIDR("198.18.66.0/30")) { options.ttl = 60...64 }
                policy.allowOptions[cidr] = options
            }
        }

        func model() -> ReferenceModel {
            var model = ReferenceModel(settings: settings, deny: Array(policy.deny), allow: Array(policy.allow),
                                       signatures: Array(policy.signatures))
            model.limits = limits
            model.verifiedLimits = verifiedLimits
            model.prefix = policy.prefix
            model.widePrefix = policy.widePrefix
            model.newSources = policy.newSources
            model.budget = policy.budget
            model.allowOptions = policy.allowOptions
            return model
        }
    }

    /// A phone that registers the way real ones do (challenge, credentialed REGISTER, answer), from a hop
    /// distance that a route change may move.
    struct Phone {
        var address: String
        var ttl: UInt8
        var stage = 0
        var round = 1
        var nonce = ""
    }

    static func isV6(_ address: String) -> Bool { address.contains(":") }

    /// A SIP message over UDP (or TCP) from `src`:5070 to the server's 5060.
    static func sip(_ text: String, from src: String, ttl: UInt8) -> [UInt8] {
        let udp = Packet.udp(sport: 5070, dport: 5060, Array(text.utf8))
        return isV6(src)
            ? Packet.ethernet(Packet.EtherType.ipv6, Packet.ipv6(src: src, proto: Packet.Proto.udp, udp, hopLimit: ttl))
            : Packet.ethernet(Packet.EtherType.ipv4, Packet.ipv4(src: src, proto: Packet.Proto.udp, udp, ttl: ttl))
    }

    static func register(from src: String, callID: String, cseq: Int, nonce: String?, extra: [String] = []) -> String {
        var lines = ["REGISTER sip:198.18.0.2 SIP/2.0", "Via: SIP/2.0/UDP \(src):5070;branch=z9hG4bK-\(cseq)",
                     "From: <sip:phone@198.18.0.2>;tag=\(cseq)", "To: <sip:phone@198.18.0.2>", "Call-ID: \(callID)",
                     "CSeq: \(cseq) REGISTER", "Max-Forwards: 70"] + extra
        if let nonce {
            lines.append("Authorization: Digest username=\"phone\", realm=\"198.18.0.2\", nonce=\"\(nonce)\", "
                + "uri=\"sip:198.18.0.2\", response=\"0123456789abcdef0123456789abcdef\"")
        }
        return (lines + ["Content-Length: 0"]).joined(separator: "\r\n") + "\r\n\r\n"
    }

    /// A random frame from `address`.
    static func frame(_ f: inout FrameFactory, from address: String, ttl: UInt8) -> [UInt8] {
        isV6(address) ? f.frame(v6: address, ttl: ttl) : f.frame(v4: address, ttl: ttl)
    }

    /// The server's answer, leaving on the inside towards `destination`.
    static func answer(_ status: String, to destination: String, callID: String, cseq: String, extra: [String] = [])
        -> [UInt8]
    {
        let text = (["SIP/2.0 \(status)", "Via: SIP/2.0/UDP \(destination):5070;branch=z9hG4bK-1",
                     "From: <sip:phone@198.18.0.2>;tag=1", "To: <sip:phone@198.18.0.2>;tag=2", "Call-ID: \(callID)",
                     "CSeq: \(cseq)"] + extra + ["Content-Length: 0"]).joined(separator: "\r\n") + "\r\n\r\n"
        let udp = Packet.udp(sport: 5060, dport: 5070, Array(text.utf8))
        return isV6(destination)
            ? Packet.ethernet(Packet.EtherType.ipv6, Packet.ipv6(src: "2001:db8::2", dst: destination,
                                                                  proto: Packet.Proto.udp, udp))
            : Packet.ethernet(Packet.EtherType.ipv4, Packet.ipv4(src: "198.18.0.2", dst: destination,
                                                                  proto: Packet.Proto.udp, udp))
    }

    /// The first fragment of the server's 401 to `destination`, pushed past the MTU by twelve long Via lines it
    /// echoes: it ends before the Call-ID and CSeq, so it names no transaction that can be read.
    static func unreadableRefusal(to destination: String, id: UInt32) -> [UInt8] {
        TrustTests.firstFragment(TrustTests.answerPastTheMTU("401 Unauthorized", callID: "unreadable-\(id)"),
                                 to: destination, from: isV6(destination) ? "2001:db8::2" : "198.18.0.2", id: id)
    }

    /// A first fragment of a UDP datagram to 5060 (IP ID `id`), or one of its later fragments.
    static func fragment(from src: String, id: UInt32, first: Bool, ttl: UInt8) -> [UInt8] {
        let body: [UInt8] = first
            ? Packet.udp(sport: 5070, dport: 5060, Array(("INVITE sip:1@198.18.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP x\r\n"
                    + "X-Pad: " + String(repeating: "p", count: 200)).utf8))
            : [UInt8](repeating: 0x70, count: 200)
        if isV6(src) {
            return Packet.ethernet(Packet.EtherType.ipv6, Packet.ipv6(
                src: src, proto: first ? Packet.Proto.udp : 17, body,
                extensions: [(Packet.Proto.fragment, Packet.fragmentBody(offset: first ? 0 : 30, more: first, id: id))],
                hopLimit: ttl))
        }
        return Packet.ethernet(Packet.EtherType.ipv4, Packet.ipv4(
            src: src, proto: Packet.Proto.udp, body, fragmentOffset: first ? 0 : 30, moreFragments: first, ttl: ttl,
            id: UInt16(truncatingIfNeeded: id)))
    }

    @Test func theProgramAndTheModelAgreeOverTimeOnThousandsOfSources() throws {
        try requireRoot()
        let steps = Int(ProcessInfo.processInfo.environment["FLOODGATE_DIFF_STEPS"] ?? "") ?? 25_000
        let seed = UInt64(ProcessInfo.processInfo.environment["FLOODGATE_DIFF_SEED"] ?? "") ?? UInt64.random(in: 0...UInt64.max)
        var f = FrameFactory(rng: SplitMix64(seed: seed))
        let scenario = Scenario(&f)
        // 3,000 IPv4 sources in 12 /24s of two /16s, 600 IPv6 ones in 6 /64s of two /48s.
        let v4Pool = [64, 65, 66, 67, 68, 69].flatMap { c in (1...250).map { "198.18.\(c).\($0)" } }
            + (10...15).flatMap { c in (1...250).map { "198.19.\(c).\($0)" } }
        let v6Pool = ["a", "b"].flatMap { n in (0...2).flatMap { s in (1...100).map { "2001:db8:\(n):\(s)::\($0)" } } }
        f.v4Sources = v4Pool
        f.v6Sources = v6Pool
        // Among them, two allow-listed ones, to empty their entries' buckets.
        let flooders = (0..<28).map { _ in (f.pick(v4Pool), f.pick(v6Pool)) }
            + [("198.18.65.5", "2001:db8:b::2"), ("198.18.66.2", "2001:db8:b::1")]
        var phones = (0..<12).map { _ in Phone(address: f.pick(Array(v4Pool[500...])), ttl: UInt8(f.int(50...60))) }
            + (0..<4).map { _ in Phone(address: "2001:db8:a:1::\(f.int(40...99))", ttl: UInt8(f.int(50...60))) }
            + [Phone(address: "198.18.65.20", ttl: 57), Phone(address: "2001:db8:b::10", ttl: 55)]
        let guessers = (0..<3).map { _ in f.pick(v4Pool) }

        var policy = scenario.policy
        policy.settings = scenario.settings
        policy.limits = scenario.limits
        let program = try FloodgateProgram(maxSources: 1 << 18, policy: policy, testClock: true)
        var model = scenario.model()
        var clock = timespec()
        clock_gettime(CLOCK_MONOTONIC, &clock)
        model.now = UInt64(clock.tv_sec) * 1_000_000_000 + UInt64(clock.tv_nsec)
        // Explicit bans, two of which run out during the run; their expiry is what the map holds.
        for (address, seconds) in [(f.pick(v4Pool), UInt64(5)), (f.pick(v6Pool), UInt64(30)), ("198.18.65.3", UInt64(3600))] {
            try program.maps.ban(SourceAddress(address)!, seconds: seconds)
        }
        for ban in try program.maps.bans() where ban.explicit { model.explicitBans[ban.address] = .some(ban.expiresNS) }

        var expected = Dictionary(uniqueKeysWithValues: TrafficClass.all.map {
            ($0, [UInt64](repeating: 0, count: Int(FG_REASON_MAX.rawValue)))
        })
        var seen: [String: Int] = [:]
        var mismatch: String?
        var frames = 0

        func send(_ frame: [UInt8]) throws {
            guard mismatch == nil else { return }
            try program.setTestClock(nanoseconds: model.now)
            let (cls, reason) = model.verdict(frame)
            seen["\(cls.name)/\(reason.name)", default: 0] += 1
            let action = try program.verdict(frame)
            expected[cls]![Int(reason.index)] += 1
            frames += 1
            let counted = try program.maps.packets(of: cls)
            if counted != expected[cls]! || action != (reason.isDrop ? XDP_DROP_ACTION : XDP_PASS_ACTION) {
                let got = zip(counted, expected[cls]!).enumerated().filter { $0.element.0 != $0.element.1 }
                    .map { Reason.all[$0.offset].name }
                mismatch = "frame \(frames) at +\(model.now) ns: the model says \(cls.name)/\(reason.name), the program "
                    + "counted \(got.isEmpty ? "action \(action)" : got.joined(separator: ", ")): "
                    + frame.map { String(format: "%02x", $0) }.joined()
            }
        }
        func inside(_ status: String, to phone: String, callID: String, cseq: Int, method: String = "REGISTER",
                    extra: [String] = [], nonce: String? = nil, stale: Bool = false) throws {
            guard mismatch == nil else { return }
            try program.setTestClock(nanoseconds: model.now)
            let frame = Self.answer(status, to: phone, callID: callID, cseq: "\(cseq) \(method)", extra: extra)
            _ = try FloodgateProgram.testRun(programFD: program.insideProgramFD, packet: frame)
            model.answer(to: SourceAddress(phone)!, code: Int(status.prefix(3))!, callID: callID, cseq: UInt32(cseq),
                         method: method, nonce: nonce, stale: stale)
        }
        var fragmentID: UInt32 = 1
        func unreadable(to address: String) throws {
            guard mismatch == nil else { return }
            try program.setTestClock(nanoseconds: model.now)
            fragmentID += 1
            _ = try FloodgateProgram.testRun(programFD: program.insideProgramFD,
                                             packet: Self.unreadableRefusal(to: address, id: fragmentID))
            model.unreadableRefusal(to: SourceAddress(address)!)
        }
        func challenge(_ address: String, nonce: String, stale: Bool = false) throws {
            let header = "WWW-Authenticate: Digest realm=\"198.18.0.2\", nonce=\"\(nonce)\"\(stale ? ", stale=true" : "")"
            try inside("401 Unauthorized", to: address, callID: "challenge-\(nonce)", cseq: 1, extra: [header],
                       nonce: nonce, stale: stale)
        }
        func advance() {
            let roll = f.int(0...999)
            let ns: Int = roll < 600 ? f.int(0...100_000) : roll < 970 ? f.int(100_000...10_000_000)
                : roll < 998 ? f.int(10_000_000...1_000_000_000) : f.int(1_000_000_000...15_000_000_000)
            model.now += UInt64(ns)
        }
        /// A random address in the IPv4 /24 `net` (198.18.64–79, or anywhere in 198.19) or IPv6 /64 `net6`.
        func fresh(_ net: Int, _ net6: String) -> (String, String) {
            ((net < 16 ? "198.18.\(64 + net)" : "198.19.\(net - 16)") + ".\(f.int(1...254))",
             "2001:db8:\(net6)::\(String(f.int(1...65535), radix: 16))")
        }

        for _ in 0..<steps where mismatch == nil {
            advance()
            let roll = f.int(0...99)
            switch roll {
            case 0..<35:  // anything, from anyone in the pools
                try send(f.frame())
            case 35..<47:  // a flooder's burst of one frame
                let (v4, v6) = f.pick(flooders)
                let frame = f.chance(0.6) ? Self.sip(Self.register(from: v4, callID: "f\(f.int(0...9))", cseq: 1, nonce: nil),
                                                     from: v4, ttl: 64) : f.frame(v4: v4, v6: v6, ttl: 64)
                for _ in 0..<f.int(5...60) {
                    model.now += UInt64(f.int(0...30_000))
                    try send(frame)
                }
            case 47..<55:  // forged sources, one each, in bursts that drain a prefix and the new-source budget
                // From one /24 (draining its prefix), or each from another (draining the new-source budget).
                let (net, net6) = (f.chance(0.7) ? f.int(0...15) : f.int(16...271), "\(f.pick(["a", "b", "c"])):\(f.int(0...3))")
                let spread = f.chance(0.3)
                for _ in 0..<(f.chance(0.3) ? f.int(20...(spread ? 300 : 120)) : 1) {
                    model.now += UInt64(f.int(0...20_000))
                    let (v4, v6) = spread ? fresh(f.int(16...271), "c:\(f.int(0...3))") : fresh(net, net6)
                    let src = f.chance(0.7) ? v4 : v6
                    try send(f.chance(0.5) ? Self.sip(Self.register(from: src, callID: "x", cseq: 1, nonce: nil), from: src, ttl: 64)
                        : f.frame(v4: v4, v6: v6))
                }
            case 55..<70:  // a phone registers
                let i = f.int(0...(phones.count - 1))
                var phone = phones[i]
                if f.chance(0.01) { phone.ttl = UInt8(f.int(45...62)) }  // a route change
                let callID = "reg-\(i)-\(phone.round)"
                switch phone.stage {
                case 0:
                    phone.nonce = "n\(i)x\(phone.round)"
                    try challenge(phone.address, nonce: phone.nonce)
                    phone.stage = 1
                case 1:
                    try send(Self.sip(Self.register(from: phone.address, callID: callID, cseq: phone.round,
                                                    nonce: f.chance(0.9) ? phone.nonce : "wrong"),
                                      from: phone.address, ttl: phone.ttl))
                    phone.stage = 2
                default:
                    let roll = f.int(0...99)
                    if roll < 70 {
                        try inside("200 OK", to: phone.address, callID: callID, cseq: phone.round)
                    } else if roll < 80 {
                        try challenge(phone.address, nonce: "again\(phone.round)")
                        try inside("401 Unauthorized", to: phone.address, callID: callID, cseq: phone.round,
                                   extra: ["WWW-Authenticate: Digest realm=\"x\", nonce=\"n\(i)y\(phone.round)\""],
                                   nonce: "n\(i)y\(phone.round)")
                    } else if roll < 85 {
                        try inside("401 Unauthorized", to: phone.address, callID: callID, cseq: phone.round,
                                   extra: ["WWW-Authenticate: Digest realm=\"x\", nonce=\"s\(i)\", stale=true"],
                                   nonce: "s\(i)", stale: true)
                    } else if roll < 92 {
                        try inside("403 Forbidden", to: phone.address, callID: callID, cseq: phone.round)
                    } else {
                        try inside(f.pick(["100 Trying", "500 Server Error", "302 Moved"]), to: phone.address,
                                   callID: callID, cseq: phone.round)
                    }
                    if roll < 92 || f.chance(0.5) {
                        phone.stage = 0
                        phone.round += 1
                    }
                }
                phones[i] = phone
            case 70..<78:  // a phone's other traffic, at its own TTL
                let phone = f.pick(phones)
                for _ in 0..<(f.chance(0.2) ? f.int(5...40) : 1) {
                    model.now += UInt64(f.int(0...50_000))
                    try send(Self.frame(&f, from: phone.address, ttl: phone.ttl))
                }
            case 78..<81:  // a forger with a phone behind the server: its challenge to an INVITE forged in a phone's
                // name, relayed by the server to the phone's address, and requests in that name answering it
                let phone = f.pick(phones)
                let ttl = f.chance(0.5) ? UInt8(f.pick([64, Int(phone.ttl) + 3])) : phone.ttl
                // Sometimes the phone's own nonce: a challenge to a REGISTER with it stays the registrar's, and
                // one noted first as another method's becomes the registrar's when the phone's comes.
                let nonce = f.chance(0.1) && !phone.nonce.isEmpty ? phone.nonce : "relayed\(f.int(0...3))"
                if f.chance(0.4) {
                    try inside("407 Proxy Authentication Required", to: phone.address, callID: "relay-\(f.int(0...99))",
                               cseq: f.int(1...9), method: f.pick(["INVITE", "MESSAGE"]),
                               extra: ["Proxy-Authenticate: Digest realm=\"x\", nonce=\"\(nonce)\""], nonce: nonce)
                }
                for _ in 0..<f.int(1...4) {
                    model.now += UInt64(f.int(0...20_000))
                    let callID = "relayed-\(f.int(0...99))", cseq = f.int(1...9)
                    try send(Self.sip(Self.register(from: phone.address, callID: callID, cseq: cseq, nonce: nonce),
                                      from: phone.address, ttl: ttl))
                    if f.chance(0.8) { try inside("401 Unauthorized", to: phone.address, callID: callID, cseq: cseq) }
                }
            case 81..<86:  // a forger claims a phone's address, mostly from another hop distance
                let phone = f.pick(phones)
                let ttl = f.chance(0.8) ? UInt8(f.pick([64, 128, 255, Int(phone.ttl) + 3, Int(phone.ttl) - 5]))
                    : phone.ttl
                let forged = f.chance(0.4)
                    ? Self.sip(Self.register(from: phone.address, callID: "forged-\(f.int(0...99))", cseq: f.int(1...9),
                                             nonce: "forged", extra: f.chance(0.3) ? ["User-Agent: friendly-scanner"] : []),
                               from: phone.address, ttl: ttl)
                    : Self.frame(&f, from: phone.address, ttl: ttl)
                for _ in 0..<(f.chance(0.3) ? f.int(10...80) : 1) {
                    model.now += UInt64(f.int(0...20_000))
                    try send(forged)
                }
                if f.chance(0.5) {  // the server challenges the forged REGISTER: the address's failure?
                    try inside("401 Unauthorized", to: phone.address, callID: "forged-\(f.int(0...99))",
                               cseq: f.int(1...9))
                } else if f.chance(0.2) {  // a refusal the forgery made unreadable
                    try unreadable(to: phone.address)
                }
            case 86..<92:  // a password guesser
                let guesser = f.pick(guessers)
                let n = f.int(1...1000)
                try challenge(guesser, nonce: "g\(n)")
                try send(Self.sip(Self.register(from: guesser, callID: "guess-\(n)", cseq: n, nonce: "g\(n)"),
                                  from: guesser, ttl: 64))
                if f.chance(0.8) {
                    try inside("401 Unauthorized", to: guesser, callID: "guess-\(n)", cseq: n)
                } else {  // a guess whose refusal it made unreadable
                    try unreadable(to: guesser)
                }
            default:  // fragments: a first one and its followers, or followers of nothing
                let src = f.chance(0.5) ? f.pick(f.chance(0.7) ? v4Pool : v6Pool) : f.pick(phones).address
                let ttl = f.chance(0.9) ? (phones.first { $0.address == src }?.ttl ?? 64) : 64
                fragmentID += 1
                if f.chance(0.7) { try send(Self.fragment(from: src, id: fragmentID, first: true, ttl: ttl)) }
                for _ in 0..<f.int(1...(f.chance(0.1) ? 60 : 3)) {
                    model.now += UInt64(f.int(0...10_000))
                    try send(Self.fragment(from: src, id: f.chance(0.9) ? fragmentID : UInt32(f.int(0...99)), first: false,
                                           ttl: ttl))
                }
            }
        }
        #expect(mismatch == nil, "seed \(seed): \(mismatch ?? "")")
        guard mismatch == nil else { return }

        // The state each side was left with: the filter's own bans (with their expiry) and the verified sources.
        let bans = try program.maps.bans().filter { !$0.explicit }
        #expect(Dictionary(uniqueKeysWithValues: bans.map { ($0.address, $0.expiresNS ?? 0) }) == model.bans,
                "seed \(seed): the filter's own bans differ")
        let trusted = try program.maps.trustedSources()
        #expect(Dictionary(uniqueKeysWithValues: trusted.map { ($0.address, "\($0.untilNS) \($0.ttl)") })
            == model.trusted.mapValues { "\($0.until) \($0.pin.ttl)" }, "seed \(seed): the verified sources differ")
        // Their quarantines, and which are strict.
        func strict(_ on: Bool) -> String { on ? " strict" : "" }
        #expect(Dictionary(uniqueKeysWithValues: trusted.map { t in
            (t.address, "\(t.quarantineUntilSeconds ?? 0)\(strict(t.strictAtPin)) \(t.awayQuarantineUntilSeconds ?? 0)\(strict(t.strictElsewhere))")
        }) == Dictionary(uniqueKeysWithValues: model.trusted.keys.map { a in
            let bits = model.strictQuarantines[a] ?? 0
            return (a, "\(model.quarantines[a] ?? 0)\(strict(bits & UInt32(FG_STRICT_AT_PIN) != 0)) "
                + "\(model.awayQuarantines[a] ?? 0)\(strict(bits & UInt32(FG_STRICT_AWAY) != 0))")
        }), "seed \(seed): the quarantines differ")

        // The run must have gone through every step of the policy, or it proves little.
        for reason in ["dropped-rate", "dropped-prefix", "dropped-new-source", "dropped-ban", "dropped-scanner",
                       "dropped-spoofed", "dropped-allow-limit", "passed-allow", "passed", "dropped-deny"] {
            #expect(seen.keys.contains { $0.hasSuffix("/" + reason) }, "seed \(seed): no frame was \(reason)")
        }
        if case .rate = scenario.policy.budget {
            #expect(seen.keys.contains { $0.hasSuffix("/dropped-shed") }, "seed \(seed): nothing was shed")
        }
        // (A scenario that leaves fragments unlimited, one in eight, has nothing to drop them for.)
        let fragmentsLimited = scenario.limits[.fragment].map { if case .unlimited = $0 { false } else { true } } ?? true
        #expect(seen["fragment/passed", default: 0] > 0
            && (!fragmentsLimited || seen.keys.contains("fragment/dropped-rate") || seen.keys.contains("fragment/dropped-blocked")),
                "seed \(seed): fragments \(seen.filter { $0.key.hasPrefix("fragment/") })")
        for what in ["scanner", "auto", "brute-force", "verified", "quarantine", "strict"] {
            #expect(model.issued[what, default: 0] > 0, "seed \(seed): nothing \(what)")
        }
        #expect(model.verifiedDecisions > 0 && model.sparedBans > 0, "seed \(seed): verified \(model.verifiedDecisions), spared \(model.sparedBans)")
        print("clocked differential, seed \(seed): \(frames) frames over \(model.now / 1_000_000_000 - UInt64(clock.tv_sec)) s, "
            + "\(model.sources.count) (source, class) buckets, issued \(model.issued), \(model.verifiedDecisions) verified "
            + "decisions, \(model.sparedBans) spared")
    }
}
