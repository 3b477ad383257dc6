import CFloodgate
import FloodgateCore
import FloodgateLab
import Foundation
import Testing

/// The number an INVITE dials, as BPF/lib/numbers.h describes it, written again from that description: what the
/// program's verdicts on random Request-URIs are compared with.
enum DialledNumber: Equatable {
    case unreadable
    case none
    case found(digits: String, plus: Bool)

    /// Reads the request `bytes` (up to `end`), as the filter does.
    static func read(_ bytes: [UInt8], end: Int) -> DialledNumber { readStopping(bytes, end: end).number }

    /// The same, and the index of the byte after the last one read.
    static func readStopping(_ bytes: [UInt8], end: Int) -> (number: DialledNumber, stop: Int) {
        var i = 0
        func next() -> UInt8? {
            guard i < end else { return nil }
            defer { i += 1 }
            return bytes[i]
        }
        func blank(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 }
        // Where the URI ends: a sip user part may hold ? and , (RFC 3261 user-unreserved); a tel number may not.
        func sipEnd(_ b: UInt8) -> Bool { blank(b) || b == 0x0D || b == 0x0A || b == UInt8(ascii: ">") }
        func telEnd(_ b: UInt8) -> Bool { sipEnd(b) || b == UInt8(ascii: "?") || b == UInt8(ascii: ",") }
        // Blanks and line ends, the method, blanks.
        var b: UInt8
        repeat { guard let c = next() else { return (.unreadable, i) }; b = c } while b == 0x0D || b == 0x0A || blank(b)
        while true {
            guard let c = next() else { return (.unreadable, i) }
            if blank(c) { break }
            if c == 0x0D || c == 0x0A { return (.none, i) }
        }
        repeat { guard let c = next() else { return (.unreadable, i) }; b = c } while blank(b)
        // The scheme.
        var scheme: [UInt8] = []
        while b != UInt8(ascii: ":") {
            if scheme.count >= 4 || b < UInt8(ascii: "A") { return (.none, i) }
            scheme.append(b | 0x20)
            guard let c = next() else { return (.unreadable, i) }
            b = c
        }
        let name = String(decoding: scheme, as: UTF8.self)
        guard ["sip", "sips", "tel"].contains(name) else { return (.none, i) }
        let tel = name == "tel"
        var digits = "", plus = false, any = false
        func complete() -> DialledNumber { digits.isEmpty ? .none : .found(digits: digits, plus: plus) }
        // The user part: +, digits, separators, escapes; then (sip) the rest up to '@'.
        while true {
            guard var c = next() else { return (.unreadable, i) }
            var escaped = false
            if c == UInt8(ascii: "%") {
                guard let h = next() else { return (.unreadable, i) }
                guard let hv = hex(h) else { return (.none, i) }
                guard let l = next() else { return (.unreadable, i) }
                guard let lv = hex(l) else { return (.none, i) }
                c = hv << 4 | lv
                escaped = true
            }
            if (0x30...0x39).contains(c) { digits.append(Character(UnicodeScalar(c))); any = true; continue }
            if c == UInt8(ascii: "+") && !any && !plus { plus = true; continue }
            if "-.()".utf8.contains(c) { any = true; continue }
            if !escaped {
                if c == UInt8(ascii: "@") { return (tel ? .none : complete(), i) }
                if c == UInt8(ascii: ";") && tel { return (complete(), i) }
                if tel ? telEnd(c) : sipEnd(c) { return (tel ? complete() : .none, i) }
            }
            if digits.isEmpty { return (.none, i) }
            if tel { return (complete(), i) }
            break
        }
        while true {
            guard let c = next() else { return (.unreadable, i) }
            if c == UInt8(ascii: "@") { return (complete(), i) }
            if sipEnd(c) { return (.none, i) }
        }
    }

    static func hex(_ b: UInt8) -> UInt8? {
        switch b {
        case 0x30...0x39: return b - 0x30
        case 0x41...0x46, 0x61...0x66: return (b | 0x20) - 0x61 + 10
        default: return nil
        }
    }
}

@Suite struct NumberDifferentialTests {
    /// Random start lines built from the pieces a forger would vary (schemes in any case, +, escapes of digits and
    /// of other bytes, separators, letters, feature codes, parameters, blanks, long and cut-off user parts) under
    /// random rules and number plans: the program's verdict on each INVITE is the model's. A failure names the
    /// seed: FLOODGATE_DIFF_SEED=N replays it.
    @Test func theProgramReadsNumbersAsTheModelDoes() throws {
        let seed = ProcessInfo.processInfo.environment["FLOODGATE_DIFF_SEED"].flatMap(UInt64.init) ?? UInt64.random(in: 1...UInt64.max / 2)
        var rng = SplitMix64(seed: seed)
        func pick<T>(_ items: [T]) -> T { items[Int(rng.next() % UInt64(items.count))] }
        func chance(_ p: Double) -> Bool { Double(rng.next() % 10_000) / 10_000 < p }
        func digits(_ n: Int) -> String { String((0..<n).map { _ in Character(String(rng.next() % 10)) }) }

        var compared = 0, skipped = 0
        var seen: [String: Int] = [:]
        for round in 0..<6 {
            var plan = NumberPlan()
            plan.countryCode = pick(["44", "1", "49", "353"])
            plan.international = pick([["00"], ["011"], ["00", "011"], []])
            plan.national = pick(["0", "", "1"])
            if plan.national == "1" && plan.countryCode != "1" { plan.national = "0" }
            if plan.international.contains(plan.national) { plan.national = "" }
            plan.bare = pick(BareNumbers.allCases)
            try plan.validate()
            // Rules: prefixes of the numbers the generator dials, and a few others.
            let stems = ["44", "449", "44900", "1", "1900", "49", "4930", "353", "3531", "9", "0", "2"]
            var rules: [String: DestinationRule] = [:]
            for stem in stems where chance(0.5) {
                rules[stem] = try DestinationRule(stem, pick([.block, .block, .allow]))
            }
            var policy = FilterPolicy.perSourceOnly
            policy.settings.numbers = plan
            policy.destinations = Set(rules.values)
            policy.limits[.invite] = .unlimited
            let program = try loadProgram(limits: policy.limits, settings: policy.settings, policy: policy)

            for _ in 0..<250 {
                // The user part, piece by piece.
                var user = ""
                if chance(0.4) { user += pick(["+", "+", "+", "%2B", "%2b", "++", "-+"]) }
                for _ in 0..<Int(1 + rng.next() % 5) {
                    switch rng.next() % 12 {
                    case 0...3, 10, 11: user += pick(stems) + digits(Int(rng.next() % 6))
                    case 4: user += pick(["-", ".", "(", ")", "%2D", "%28"])
                    case 5: user += "%3" + String(rng.next() % 10)
                    case 6: user += pick(["abc", "*67", "#", "%41", "%40", "%", "%G1", "%3", "?", ",", "&x=1", "%3F"])
                    case 7: user += pick([";isub=1", ";phone-context=example.com", ";ext=12"])
                    case 8: user += digits(Int(rng.next() % 40))
                    default: user += pick(["00", "011", "0", "1"]) + digits(Int(rng.next() % 12))
                    }
                }
                let scheme = chance(0.85) ? pick(["sip:", "sips:", "tel:", "SIP:", "Tel:", "sIpS:"])
                    : pick(["mailto:", "sipx:", "si:", ":", "s1p:"])
                var uri = scheme + user
                if !scheme.lowercased().hasPrefix("tel") || chance(0.2) { uri += pick(["@198.18.0.2", "@h;user=phone", "", "@"]) }
                if chance(0.05) { uri += String(repeating: "-", count: Int(rng.next() % 300)) }
                let gap = pick([" ", " ", "  ", "\t", " \t "])
                let lead = pick(["", "", "\r\n", "\r\n\r\n"])
                var line = lead + "INVITE" + gap + uri + pick([" SIP/2.0", " SIP/2.0", ">", ""])
                // Cut off somewhere in the URI: the datagram ends there.
                let cut = chance(0.1)
                if cut { line = String(line.prefix(lead.count + 6 + gap.count + Int(rng.next() % UInt64(uri.count + 1)))) }
                let text = cut ? line : line + "\r\nCall-ID: r\(round)@x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
                let bytes = Array(text.utf8)
                let frame = Packet.sipRaw(bytes)
                let (_, c, r) = try program.judge(frame)
                guard c == .invite, r == .passed || r == .droppedDestination else {
                    skipped += 1
                    continue
                }
                let read = DialledNumber.read(bytes, end: min(bytes.count, Int(FG_RURI_BYTES)))
                var expected = Reason.passed
                switch read {
                case .unreadable: expected = .droppedDestination
                case .none: break
                case .found(let d, let plus):
                    if let number = plan.e164(digits: d, plus: plus),
                       let rule = rules.values.filter({ number.hasPrefix($0.prefix) }).max(by: { $0.prefix.count < $1.prefix.count }),
                       rule.action == .block {
                        expected = .droppedDestination
                    }
                }
                compared += 1
                switch read {
                case .unreadable: seen["unreadable", default: 0] += 1
                case .none: seen["not a number", default: 0] += 1
                case .found: seen[expected == .passed ? "number, passed" : "number, blocked", default: 0] += 1
                }
                #expect(r == expected, "seed \(seed): \(text.debugDescription) read as \(read), plan \(plan), rules \(rules.values.sorted())")
                if r != expected { return }
            }
        }
        // Every kind of verdict was reached, often.
        #expect(compared >= 1000, "seed \(seed): compared \(compared), skipped \(skipped)")
        for kind in ["unreadable", "not a number", "number, passed", "number, blocked"] {
            #expect(seen[kind, default: 0] >= 20, "seed \(seed): \(seen)")
        }
    }
}
