internal import CFloodgate
import Foundation

/// What digits dialled without a `+` or a dialling prefix are (`enum fg_bare`).
public enum BareNumbers: String, Sendable, CaseIterable {
    /// Already international (`4420…`): what carriers' trunks expect.
    case e164
    /// National without the national prefix: the country code goes in front.
    case national
    /// Extensions and local numbers: no destination rule applies.
    case local
}

/// How the site dials (BPF/lib/numbers.h): how an INVITE's Request-URI number is made an E.164 number. A `+` makes
/// it E.164 as it is; else an international prefix is taken off; else the national prefix is replaced by the
/// country code; else ``bare`` says what the digits are.
public struct NumberPlan: Equatable, Sendable {
    /// The site's country code (1 to 3 digits); empty: none (then there is no national prefix either).
    public var countryCode: String = ""
    /// International dialling prefixes, at most two (`00`, `011`).
    public var international: [String] = ["00"]
    /// The national (trunk) prefix (`0`); empty: none.
    public var national: String = ""
    public var bare: BareNumbers = .e164

    public init() {}

    public init(countryCode: String, international: [String], national: String, bare: BareNumbers) {
        self.countryCode = countryCode
        self.international = international
        self.national = national
        self.bare = bare
    }

    public func validate() throws {
        func digits(_ s: String, _ what: String, _ range: ClosedRange<Int>) throws {
            guard range.contains(s.count), s.allSatisfy({ $0.isASCII && $0.isNumber }) else {
                throw FloodgateError("\(what) must be \(range.lowerBound) to \(range.upperBound) digits (got '\(s)')")
            }
        }
        if !countryCode.isEmpty { try digits(countryCode, "the country code", 1...3) }
        guard international.count <= Int(FG_MAX_INTERNATIONAL_PREFIXES) else {
            throw FloodgateError("at most \(FG_MAX_INTERNATIONAL_PREFIXES) international prefixes (got \(international.count))")
        }
        for p in international { try digits(p, "an international prefix", 1...7) }
        if !national.isEmpty {
            try digits(national, "the national prefix", 1...7)
            guard !countryCode.isEmpty else {
                throw FloodgateError("a national prefix needs the country code it stands for")
            }
            // The international prefixes are tried first: a national prefix that starts with one is never reached.
            if let p = international.first(where: { national.hasPrefix($0) }) {
                throw FloodgateError("the national prefix \(national) starts with the international prefix \(p): it would never be used")
            }
        }
        if bare == .national && countryCode.isEmpty {
            throw FloodgateError("numbers dialled bare as national need the country code")
        }
    }

    init(_ raw: fg_settings) {
        func text(_ p: fg_dial_prefix) -> String {
            withUnsafeBytes(of: p.digits) { d in
                String(d.prefix(Int(min(p.len, 7))).map { Character(String($0)) })
            }
        }
        countryCode = text(raw.country)
        let prefixes = withUnsafeBytes(of: raw.international) { Array($0.bindMemory(to: fg_dial_prefix.self)) }
        international = prefixes.filter { $0.len > 0 }.map(text)
        national = text(raw.national)
        bare = raw.bare_numbers == FG_BARE_NATIONAL.rawValue ? .national
            : raw.bare_numbers == FG_BARE_LOCAL.rawValue ? .local : .e164
    }

    func write(into raw: inout fg_settings) {
        func prefix(_ s: String) -> fg_dial_prefix {
            var p = fg_dial_prefix()
            let digits = s.utf8.prefix(7).map { $0 - 0x30 }
            p.len = UInt8(digits.count)
            withUnsafeMutableBytes(of: &p.digits) { $0.copyBytes(from: digits) }
            return p
        }
        raw.country = prefix(countryCode)
        raw.national = prefix(national)
        withUnsafeMutableBytes(of: &raw.international) { buffer in
            let slots = buffer.bindMemory(to: fg_dial_prefix.self)
            for i in 0..<slots.count { slots[i] = i < international.count ? prefix(international[i]) : fg_dial_prefix() }
        }
        raw.bare_numbers = switch bare {
        case .e164: FG_BARE_E164.rawValue
        case .national: FG_BARE_NATIONAL.rawValue
        case .local: FG_BARE_LOCAL.rawValue
        }
    }

    /// The E.164 digits of `dialled` (the digits read from a Request-URI, and whether a `+` led them), as
    /// BPF/lib/numbers.h makes them; nil when no rule applies (a local number, a prefix alone).
    public func e164(digits dialled: String, plus: Bool) -> String? {
        var number = dialled
        if !plus {
            if let p = international.first(where: { !$0.isEmpty && dialled.hasPrefix($0) }) {
                number = String(dialled.dropFirst(p.count))
            } else if !national.isEmpty, dialled.hasPrefix(national) {
                number = countryCode + dialled.dropFirst(national.count)
                if dialled.count == national.count { return nil }
            } else {
                switch bare {
                case .e164: break
                case .national: number = countryCode + dialled
                case .local: return nil
                }
            }
        }
        return number.isEmpty ? nil : number
    }
}

/// A destination rule (BPF/lib/destinations.h): what INVITEs to numbers starting with ``prefix`` (E.164 digits)
/// may do, from sources of one tier or of all. The longest prefix decides; no rule: the call goes on.
public struct DestinationRule: Hashable, Sendable, Comparable, CustomStringConvertible {
    public enum Action: Hashable, Sendable, CustomStringConvertible {
        case allow
        case block
        /// Calls per minute: per source, and over all sources (nil: no such limit; at least one is given).
        case limit(perSource: UInt32?, total: UInt32?)

        public var description: String {
            switch self {
            case .allow: return "allow"
            case .block: return "block"
            case .limit(let perSource, let total):
                return (["limit"] + [perSource.map { "\($0)/min" }, total.map { "total \($0)/min" }].compactMap { $0 })
                    .joined(separator: " ")
            }
        }
    }

    /// Whose calls a rule judges.
    public enum Tier: String, Sendable, CaseIterable, Comparable {
        case unverified, verified, allowed
        var index: UInt8 {
            switch self {
            case .unverified: UInt8(FG_TIER_UNVERIFIED)
            case .verified: UInt8(FG_TIER_VERIFIED)
            case .allowed: UInt8(FG_TIER_ALLOWED)
            }
        }
        public static func < (a: Tier, b: Tier) -> Bool { a.index < b.index }
    }

    /// E.164 digits, without `+`: up to 15 of them; none (written `+` or `any`): every number.
    public let prefix: String
    /// nil: every tier.
    public let tier: Tier?
    public let action: Action
    /// Calls to the prefix count toward the fraud thresholds' high-risk calls a minute.
    public let highRisk: Bool

    public static let maxPerMinute: UInt32 = 1_000_000

    /// `prefix` in E.164 digits, with or without a leading `+`; `+` alone or `any`: every number.
    public init(_ prefix: String, _ action: Action, tier: Tier? = nil, highRisk: Bool = false) throws {
        let digits = prefix == "any" ? "" : prefix.hasPrefix("+") ? String(prefix.dropFirst()) : prefix
        guard digits.count <= 15, !digits.isEmpty || prefix == "+" || prefix == "any",
              digits.allSatisfy({ $0.isASCII && $0.isNumber })
        else {
            throw FloodgateError("a destination prefix must be 1 to 15 digits of an E.164 number, with or without +, or + alone for every number (got '\(prefix)')")
        }
        if case .limit(let perSource, let total) = action {
            guard perSource != nil || total != nil else { throw FloodgateError("a limit needs calls per minute") }
            for n in [perSource, total].compactMap({ $0 }) where !(1...DestinationRule.maxPerMinute).contains(n) {
                throw FloodgateError("calls per minute must be 1 to \(DestinationRule.maxPerMinute) (got \(n))")
            }
        }
        self.prefix = digits
        self.tier = tier
        self.action = action
        self.highRisk = highRisk
    }

    /// The rule for every tier, or for one.
    public var tiers: [Tier] { tier.map { [$0] } ?? Tier.allCases }

    public var description: String {
        "+\(prefix)\(tier.map { " (\($0.rawValue))" } ?? "") \(action)\(highRisk ? " high-risk" : "")"
    }

    public static func < (a: DestinationRule, b: DestinationRule) -> Bool {
        (a.prefix, a.tier?.index ?? 255) < (b.prefix, b.tier?.index ?? 255)
    }

    /// "N/min" (or a bare N): calls per minute.
    public static func parsePerMinute(_ s: String) throws -> UInt32 {
        let text = s.hasSuffix("/min") ? String(s.dropLast(4)) : s
        guard let n = UInt32(text), (1...maxPerMinute).contains(n) else {
            throw FloodgateError("calls per minute must be N/min, 1 to \(maxPerMinute) (got '\(s)')")
        }
        return n
    }

    /// A list file: one rule per line, `PREFIX block|allow|limit N/min [total N/min] [tier T] [high-risk]`; `#` and `;`
    /// comments. Every bad line is named; nothing of a file with one is used.
    public static func parseList(_ text: String, name: String) throws -> [DestinationRule] {
        var rules: [DestinationRule] = []
        var problems: [String] = []
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.split(whereSeparator: { $0 == "#" || $0 == ";" }).first.map(String.init) ?? ""
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).map(String.init)
            if words.isEmpty || raw.first == "#" || raw.first == ";" { continue }
            do { rules.append(try parse(words)) } catch { problems.append("\(name):\(i + 1): \(error)") }
        }
        if !problems.isEmpty { throw FloodgateError(problems.joined(separator: "\n")) }
        return rules
    }

    /// `PREFIX block|allow|limit N/min [total N/min] [tier T] [high-risk]`.
    public static func parse(_ words: [String]) throws -> DestinationRule {
        guard words.count >= 2 else {
            throw FloodgateError("a rule is PREFIX block|allow|limit N/min [total N/min] [tier T] [high-risk]")
        }
        var rest = Array(words.dropFirst(2))
        let highRisk = rest.contains("high-risk")
        rest.removeAll { $0 == "high-risk" }
        var tier: Tier?
        if let t = rest.firstIndex(of: "tier") {
            guard t + 1 < rest.count, let value = Tier(rawValue: rest[t + 1]) else {
                throw FloodgateError("tier must be unverified, verified or allowed")
            }
            tier = value
            rest.removeSubrange(t...t + 1)
        }
        let action: Action
        switch words[1] {
        case "block" where rest.isEmpty: action = .block
        case "allow" where rest.isEmpty: action = .allow
        case "limit":
            var perSource: UInt32?, total: UInt32?
            if let first = rest.first, first != "total" {
                perSource = try parsePerMinute(first)
                rest.removeFirst()
            }
            if rest.first == "total" {
                guard rest.count >= 2 else { throw FloodgateError("total needs calls per minute") }
                total = try parsePerMinute(rest[1])
                rest.removeFirst(2)
            }
            guard rest.isEmpty else { throw FloodgateError("unexpected '\(rest.joined(separator: " "))'") }
            action = .limit(perSource: perSource, total: total)
        default:
            throw FloodgateError("the action must be block, allow or limit N/min [total N/min] (got '\(words.dropFirst().joined(separator: " "))')")
        }
        return try DestinationRule(words[0], action, tier: tier, highRisk: highRisk)
    }
}

extension FilterCapacity {
    /// Destination rules, counted once per tier they apply to.
    public static let destinations = Int(FG_MAX_DESTINATIONS) / 2
}

/// The rules as the filter holds them: one entry per prefix and tier.
struct DestinationEntry: Hashable {
    var prefix: String
    var tier: DestinationRule.Tier
    var action: DestinationRule.Action
    var highRisk = false
    /// Of a rule for every tier (whose entries share one limited rule's buckets).
    var everyTier = false

    /// The name of a limited rule's buckets: its prefix, tier(s) and limits.
    var bucketName: String { "\(prefix) \(everyTier ? "all" : tier.rawValue) \(action)" }
}

extension Array where Element == DestinationRule {
    /// One entry per prefix and tier; throws if two rules give the same prefix and tier.
    func entries() throws -> [DestinationEntry] {
        var seen: [String: DestinationRule] = [:]
        var result: [DestinationEntry] = []
        for rule in self.sorted() {
            for tier in rule.tiers {
                let id = "\(rule.prefix)/\(tier.rawValue)"
                if let other = seen[id] {
                    throw FloodgateError("two destination rules for +\(rule.prefix) from \(tier.rawValue) sources: \(other) and \(rule)")
                }
                seen[id] = rule
                result.append(DestinationEntry(prefix: rule.prefix, tier: tier, action: rule.action, highRisk: rule.highRisk,
                                               everyTier: rule.tier == nil))
            }
        }
        return result
    }
}

extension Set where Element == DestinationRule {
    /// The same rules as the filter would read them back: a prefix with one action for all three tiers is one rule.
    public var normalized: Set<DestinationRule> {
        guard let entries = try? Array(self).entries() else { return self }
        return Set(DestinationEntry.collapse(entries))
    }
}

extension DestinationEntry {
    static func collapse(_ entries: [DestinationEntry]) -> [DestinationRule] {
        var byPrefix: [String: [DestinationEntry]] = [:]
        for e in entries { byPrefix[e.prefix, default: []].append(e) }
        var rules: [DestinationRule] = []
        for (prefix, list) in byPrefix {
            if list.count == DestinationRule.Tier.allCases.count, Set(list.map(\.action)).count == 1,
               Set(list.map(\.highRisk)).count == 1 {
                rules.append(try! DestinationRule("+" + prefix, list[0].action, highRisk: list[0].highRisk))
            } else {
                rules += list.map { try! DestinationRule("+" + prefix, $0.action, tier: $0.tier, highRisk: $0.highRisk) }
            }
        }
        return rules.sorted()
    }
}

extension FilterMaps {
    var destinationsMap: BPFMap<fg_destination_key, fg_destination_rule> { map(FG_MAP_DESTINATIONS) }
    var destinationTotalsMap: BPFMap<UInt32, UInt64> { map(FG_MAP_DESTINATION_TOTALS) }

    static func destinationKey(_ prefix: String, tier: DestinationRule.Tier, bank: UInt32) -> fg_destination_key {
        var key = fg_destination_key()
        let digits = prefix.utf8.map { $0 - 0x30 }
        key.prefixlen = UInt32(8 + 4 * digits.count)
        key.set = UInt8(bank << 2) | tier.index
        packDigits(prefix, into: &key.digits)
        return key
    }

    /// Decimal digits four bits each, the first in the high half of the first byte (`fg_destination_key.digits`,
    /// `fg_caller_range_key.digits`).
    static func packDigits<T>(_ digits: String, into field: inout T) {
        withUnsafeMutableBytes(of: &field) { d in
            for (i, digit) in digits.utf8.map({ $0 - 0x30 }).enumerated() { d[i / 2] |= i % 2 == 1 ? digit : digit << 4 }
        }
    }

    /// The first `count` digits packed as ``packDigits(_:into:)`` packs them.
    static func unpackDigits<T>(_ field: T, count: Int) -> String {
        withUnsafeBytes(of: field) { d in
            String((0..<min(count, 2 * d.count)).map { i -> Character in
                let byte: UInt8 = d[i / 2]
                return Character(UnicodeScalar(0x30 + (i % 2 == 1 ? byte & 0xF : byte >> 4)))
            })
        }
    }

    /// Every entry of the rules, both banks: (bank, prefix, tier) and the value.
    private func destinationEntries() throws -> [(bank: UInt32, entry: DestinationEntry, id: UInt32)] {
        try destinationsMap.entries().compactMap { key, value in
            let bank = UInt32(key.set >> 2)
            guard let tier = DestinationRule.Tier.allCases.first(where: { $0.index == key.set & 3 }) else { return nil }
            let prefix = FilterMaps.unpackDigits(key.digits, count: Int(key.prefixlen - 8) / 4)
            let action: DestinationRule.Action
            switch Int32(value.action & UInt32(FG_DEST_ACTION_MASK)) {
            case Int32(FG_DEST_ALLOW.rawValue): action = .allow
            case Int32(FG_DEST_BLOCK.rawValue): action = .block
            default:
                action = .limit(perSource: value.interval == 0 ? nil : value.per_minute,
                                total: value.total_interval == 0 ? nil : value.total_per_minute)
            }
            return (bank, DestinationEntry(prefix: prefix, tier: tier, action: action,
                                           highRisk: value.action & UInt32(FG_DEST_HIGH_RISK) != 0), value.id)
        }
    }

    /// Where the rules stand: the bank in force, the entries the settings count, and the entries in the trie
    /// (both banks; the same number but while a change is written).
    public func destinationStatus() throws -> (bank: UInt32, entries: UInt32, stored: Int) {
        let raw = try rawSettings()
        return (raw.destination_bank, raw.destination_entries, try destinationsMap.keys().count)
    }

    /// What the rules made of the INVITEs they judged, by outcome name (`fg_destination_outcome_name`), summed over
    /// CPUs.
    public func destinationOutcomes() throws -> [String: UInt64] {
        var result: [String: UInt64] = [:]
        for o in 0..<FG_DEST_OUT_MAX.rawValue {
            let name = String(cString: fg_destination_outcome_name(o))
            result[name] = try readEveryCPU(fd(FG_MAP_DESTINATION_OUTCOMES), key: o, as: UInt64.self,
                                            what: FG_MAP_DESTINATION_OUTCOMES).reduce(0, &+)
        }
        return result
    }

    /// The outcome names, in order.
    public static var destinationOutcomeNames: [String] {
        (0..<FG_DEST_OUT_MAX.rawValue).map { String(cString: fg_destination_outcome_name($0)) }
    }

    /// The destination rules in force.
    public func destinationRules() throws -> [DestinationRule] {
        let bank = try rawSettings().destination_bank
        return DestinationEntry.collapse(try destinationEntries().filter { $0.bank == bank }.map(\.entry))
    }

    /// Puts `rules` in force at once: written into the bank not in force, which then becomes the one in force with
    /// one write of the settings; the old bank's entries are removed after. A limited rule that stays keeps its
    /// buckets (its id); a new one starts with full ones. All or nothing: on a failure before the switch the new
    /// bank's entries are removed and the rules in force are untouched.
    public func setDestinationRules(_ rules: [DestinationRule]) throws {
        let entries = try rules.entries()
        guard entries.count <= Int(FG_MAX_DESTINATIONS) / 2 else {
            throw FloodgateError("\(entries.count) destination entries (a rule counts once per tier); at most \(FG_MAX_DESTINATIONS / 2)")
        }
        let current = try rawSettings().destination_bank & 1
        let next = current ^ 1
        let existing = try destinationEntries()
        // Leftovers of an interrupted change in the bank about to be filled.
        for old in existing where old.bank == next {
            _ = try destinationsMap.delete(FilterMaps.destinationKey(old.entry.prefix, tier: old.entry.tier, bank: next))
        }
        // Ids: a limited rule (prefix, tier or every tier, limits) in force keeps its id; new ones take the lowest id
        // no rule in force has, so none inherits the buckets of one that goes.
        let inForce = existing.filter { $0.bank == current }
        var kept: [String: UInt32] = [:]
        for old in inForce {
            guard case .limit = old.entry.action else { continue }
            var entry = old.entry
            entry.everyTier = inForce.filter { $0.id == old.id }.count == DestinationRule.Tier.allCases.count
            kept[entry.bucketName] = old.id
        }
        let wanted = Set(entries.compactMap { e -> String? in
            if case .limit = e.action { return e.bucketName } else { return nil }
        })
        var ids = kept.filter { wanted.contains($0.key) }
        var used = Set(inForce.map(\.id))
        var nextFree: UInt32 = 1
        var written: [fg_destination_key] = []
        do {
            for e in entries {
                var value = fg_destination_rule()
                switch e.action {
                case .allow: value.action = FG_DEST_ALLOW.rawValue
                case .block: value.action = FG_DEST_BLOCK.rawValue
                case .limit(let perSource, let total):
                    value.action = FG_DEST_LIMIT.rawValue
                    let name = e.bucketName
                    if ids[name] == nil {
                        while used.contains(nextFree) { nextFree += 1 }
                        guard nextFree < FG_MAX_DESTINATION_IDS else { throw FloodgateError("too many limited destinations") }
                        ids[name] = nextFree
                        used.insert(nextFree)
                        // A fresh bucket over all sources: full.
                        try destinationTotalsMap.update(nextFree, 0)
                    }
                    value.id = ids[name]!
                    if let perSource { (value.interval, value.tau) = FilterMaps.perMinute(perSource); value.per_minute = perSource }
                    if let total { (value.total_interval, value.total_tau) = FilterMaps.perMinute(total); value.total_per_minute = total }
                }
                if e.highRisk { value.action |= UInt32(FG_DEST_HIGH_RISK) }
                let key = FilterMaps.destinationKey(e.prefix, tier: e.tier, bank: next)
                try destinationsMap.update(key, value, what: "add destination rule +\(e.prefix)")
                written.append(key)
            }
            try updateSettings {
                $0.destination_bank = next
                $0.destination_entries = UInt32(entries.count)
            }
        } catch {
            for key in written { _ = try? destinationsMap.delete(key) }
            throw error
        }
        for old in existing where old.bank == current {
            _ = try? destinationsMap.delete(FilterMaps.destinationKey(old.entry.prefix, tier: old.entry.tier, bank: current))
        }
    }

    /// N calls a minute, at most N at once: a bucket's interval and tolerance in ticks.
    static func perMinute(_ n: UInt32) -> (UInt64, UInt64) {
        let interval = 60 * UInt64(FG_TICKS_PER_SEC) / UInt64(n)
        return (interval, UInt64(n - 1) * interval)
    }
}

extension Array where Element == DestinationRule {
    /// The entries the filter would hold for these rules (one per tier a rule applies to); throws if two rules
    /// give the same prefix and tier.
    public func destinationEntryCount() throws -> Int { try entries().count }
}

extension Set where Element == DestinationRule {
    private var expanded: [DestinationEntry] {
        flatMap { rule in
            rule.tiers.map { DestinationEntry(prefix: rule.prefix, tier: $0, action: rule.action, highRisk: rule.highRisk) }
        }
    }

    /// These rules with `rules` in force for their prefixes and tiers (a rule for every tier replaces each tier's
    /// rule of its prefix; a rule for one tier replaces only that tier's).
    public func replacing(with rules: [DestinationRule]) -> Set<DestinationRule> {
        let new = Swift.Set<DestinationRule>(rules).expanded
        let covered = Swift.Set<String>(new.map { "\($0.prefix)/\($0.tier.rawValue)" })
        let kept = expanded.filter { !covered.contains("\($0.prefix)/\($0.tier.rawValue)") }
        return Set(DestinationEntry.collapse(kept + new))
    }

    /// These rules without those of `prefixes` for `tier` (nil: every tier). Throws, naming them, if some prefix
    /// has no rule there.
    public func removing(prefixes: [String], tier: DestinationRule.Tier?) throws -> Set<DestinationRule> {
        let tiers = tier.map { [$0] } ?? DestinationRule.Tier.allCases
        let all = expanded
        let missing = prefixes.filter { p in !all.contains { $0.prefix == p && tiers.contains($0.tier) } }
        guard missing.isEmpty else {
            throw FloodgateError(
                "no destination rule\(tier.map { " for \($0.rawValue) sources" } ?? "") for \(missing.map { "+\($0)" }.joined(separator: ", "))",
                hint: "floodgate dest list shows the rules and their tiers")
        }
        return Set(DestinationEntry.collapse(all.filter { !(prefixes.contains($0.prefix) && tiers.contains($0.tier)) }))
    }
}

/// Fraud thresholds (BPF/lib/destinations.h): per source and tier, new calls a minute to international numbers
/// (outside the number plan's country code) and to destinations a rule marks high-risk. A source over one is
/// refused new calls for ``blockSeconds``; its registrations and its calls in progress go on. And calls in progress
/// (BPF/lib/calls.h): per source and tier, at most ``Thresholds/concurrent`` ringing or answered at once; a new call
/// over it is refused (the source is not blocked).
public struct FraudPolicy: Equatable, Sendable {
    public struct Thresholds: Equatable, Sendable {
        /// Calls a minute (at most that many at once); nil: not counted.
        public var international: UInt32?
        public var highRisk: UInt32?
        /// Calls in progress (ringing or answered); nil: no limit.
        public var concurrent: UInt32?
        public init(international: UInt32? = nil, highRisk: UInt32? = nil, concurrent: UInt32? = nil) {
            self.international = international
            self.highRisk = highRisk
            self.concurrent = concurrent
        }
    }

    /// 0: no velocity thresholds (calls in progress may still be limited).
    public var blockSeconds: UInt32 = 0
    public var thresholds: [DestinationRule.Tier: Thresholds] = [:]
    /// How long a call let in counts without an answer (a proxy's timer C is 3 min).
    public var ringSeconds: UInt32 = FraudPolicy.defaultRingSeconds
    /// How long an answered call counts after its last 2xx when no BYE is seen.
    public var callSeconds: UInt32 = FraudPolicy.defaultCallSeconds

    /// A new call over the limit of calls in progress also blocks its source for new calls for ``blockSeconds``
    /// (config `concurrent_action: block`); otherwise it is only refused.
    public var blockWhenFull = false

    public static let defaultRingSeconds: UInt32 = 180
    public static let defaultCallSeconds: UInt32 = 4 * 3600
    public static let maxConcurrent: UInt32 = 100_000

    public init() {}

    public init(blockSeconds: UInt32, thresholds: [DestinationRule.Tier: Thresholds],
                ringSeconds: UInt32 = FraudPolicy.defaultRingSeconds, callSeconds: UInt32 = FraudPolicy.defaultCallSeconds) {
        self.blockSeconds = blockSeconds
        self.thresholds = thresholds
        self.ringSeconds = ringSeconds
        self.callSeconds = callSeconds
    }

    public func thresholds(of tier: DestinationRule.Tier) -> Thresholds { thresholds[tier] ?? Thresholds() }

    /// Are calls in progress counted? With any fraud check on (so `floodgate calls` shows them).
    public var tracksCalls: Bool { blockSeconds > 0 || thresholds.values.contains { $0.concurrent != nil } }

    /// As the maps hold it: no velocity thresholds without a block time, none kept that count nothing, and the
    /// call timers at their defaults when no call is counted.
    public var normalized: FraudPolicy {
        var kept: [DestinationRule.Tier: Thresholds] = [:]
        for (tier, t) in thresholds {
            let n = blockSeconds > 0 ? t : Thresholds(concurrent: t.concurrent)
            if n != Thresholds() { kept[tier] = n }
        }
        var p = FraudPolicy(blockSeconds: blockSeconds, thresholds: kept, ringSeconds: ringSeconds, callSeconds: callSeconds)
        p.blockWhenFull = blockWhenFull && blockSeconds > 0 && kept.values.contains { $0.concurrent != nil }
        return p.tracksCalls ? p : FraudPolicy()
    }

    public func validate() throws {
        guard blockSeconds <= 30 * 86400 else { throw FloodgateError("a fraud block lasts at most 30d") }
        for t in thresholds.values {
            for n in [t.international, t.highRisk].compactMap({ $0 }) where !(1...DestinationRule.maxPerMinute).contains(n) {
                throw FloodgateError("a fraud threshold must be 1 to \(DestinationRule.maxPerMinute) calls a minute (got \(n))")
            }
            if let n = t.concurrent, !(1...FraudPolicy.maxConcurrent).contains(n) {
                throw FloodgateError("a limit of calls in progress must be 1 to \(FraudPolicy.maxConcurrent) (got \(n))")
            }
        }
        guard (1...3600).contains(ringSeconds) else { throw FloodgateError("a call rings at most 1h (ring_timeout 1s to 1h)") }
        guard (60...7 * 86400).contains(callSeconds) else { throw FloodgateError("call_timeout must be 1m to 7d") }
    }
}

/// A source's calls (`fg_callers`): `claimed` for the calls let in from another hop distance than its pinned one,
/// counted apart.
public struct CallerCount: Sendable, Equatable {
    public var address: SourceAddress
    public var claimed: Bool
    /// Ringing or answered now.
    public var calls: Int32
    public var answered: Int32
    public var callsThisMinute: UInt32
    /// Calls charged to its international and high-risk thresholds within the last minute.
    public var international: UInt32
    public var highRisk: UInt32
}

/// A source blocked for new calls (`fg_fraud_blocks`).
public struct FraudBlock: Sendable, Equatable {
    public var address: SourceAddress
    /// "international", "high-risk" or "concurrent".
    public var kind: String
    /// The threshold crossed: calls a minute, or ("concurrent") calls in progress.
    public var perMinute: UInt32
    public var untilNS: UInt64

    static func kindName(_ kind: UInt32) -> String {
        switch Int32(bitPattern: kind) {
        case FG_FRAUD_HIGH_RISK: "high-risk"
        case FG_FRAUD_CONCURRENT: "concurrent"
        default: "international"
        }
    }
}

extension FilterMaps {
    var fraudBlocksMap: BPFMap<fg_addr, fg_fraud_block> { map(FG_MAP_FRAUD_BLOCKS) }

    static func fraudIndex(_ kind: Int32, _ tier: DestinationRule.Tier) -> UInt32 {
        UInt32(kind == FG_FRAUD_HIGH_RISK ? FG_LIMIT_FRAUD_HIGH_RISK.rawValue : FG_LIMIT_FRAUD_INTERNATIONAL.rawValue)
            + UInt32(tier.index)
    }

    /// The fraud policy the maps hold.
    public func fraudPolicy() throws -> FraudPolicy {
        var policy = FraudPolicy()
        let raw = try rawSettings()
        policy.blockSeconds = raw.fraud_block_seconds
        if raw.calls_tracked != 0 {
            policy.ringSeconds = raw.ring_seconds
            policy.callSeconds = raw.call_seconds
            policy.blockWhenFull = raw.calls_tracked & UInt32(FG_CALLS_BLOCK_WHEN_FULL) != 0
        }
        let concurrent = withUnsafeBytes(of: raw.concurrent_calls) { Array($0.bindMemory(to: UInt32.self)) }
        for tier in DestinationRule.Tier.allCases {
            func read(_ kind: Int32) throws -> UInt32? {
                let limit = try limitsMap.value(at: FilterMaps.fraudIndex(kind, tier))
                return limit.interval == 0 ? nil : limit.rate
            }
            let n = concurrent[Int(tier.index)]
            let t = FraudPolicy.Thresholds(international: try read(FG_FRAUD_INTERNATIONAL), highRisk: try read(FG_FRAUD_HIGH_RISK),
                                           concurrent: raw.calls_tracked != 0 && n > 0 ? n : nil)
            if t != FraudPolicy.Thresholds() { policy.thresholds[tier] = t }
        }
        return policy.normalized
    }

    /// Writes `policy`: the thresholds first, then the settings (the block time turns the velocity checks on or
    /// off; calls_tracked the count of calls in progress).
    public func setFraudPolicy(_ policy: FraudPolicy) throws {
        try policy.validate()
        let p = policy.normalized
        for tier in DestinationRule.Tier.allCases {
            for (kind, n) in [(FG_FRAUD_INTERNATIONAL, p.thresholds(of: tier).international),
                              (FG_FRAUD_HIGH_RISK, p.thresholds(of: tier).highRisk)] {
                var limit = fg_limit()
                if let n {
                    (limit.interval, limit.tau) = FilterMaps.perMinute(n)
                    limit.rate = n
                    limit.burst = n
                }
                try limitsMap.update(FilterMaps.fraudIndex(kind, tier), limit, what: "set a fraud threshold")
            }
        }
        // Counts left from an earlier time calls were tracked would refuse calls that are no longer in progress.
        if try rawSettings().calls_tracked == 0, p.tracksCalls {
            let calls: BPFMap<fg_active_call_key, (UInt64, UInt64, UInt64, UInt64)> = map(FG_MAP_ACTIVE_CALLS)
            for key in try calls.keys() { _ = try calls.delete(key) }
            let callers: BPFMap<fg_caller_key, fg_caller> = map(FG_MAP_CALLERS)
            for key in try callers.keys() { _ = try callers.delete(key) }
        }
        try updateSettings {
            let tiers = DestinationRule.Tier.allCases.sorted { $0.index < $1.index }
            $0.concurrent_calls = (p.thresholds(of: tiers[0]).concurrent ?? 0, p.thresholds(of: tiers[1]).concurrent ?? 0,
                                   p.thresholds(of: tiers[2]).concurrent ?? 0)
            $0.ring_seconds = p.ringSeconds
            $0.call_seconds = p.callSeconds
            $0.calls_tracked = p.tracksCalls ? UInt32(FG_CALLS_TRACKED) | (p.blockWhenFull ? UInt32(FG_CALLS_BLOCK_WHEN_FULL) : 0) : 0
            $0.fraud_block_seconds = p.blockSeconds
        }
    }

    /// Sources blocked for new calls now.
    public func fraudBlocks(now: UInt64 = monotonicNanoseconds()) throws -> [FraudBlock] {
        try fraudBlocksMap.entries().filter { $0.value.until_ns > now }.map { key, value in
            FraudBlock(address: SourceAddress(key), kind: FraudBlock.kindName(value.kind),
                       perMinute: value.per_minute, untilNS: value.until_ns)
        }.sorted { $0.address.bytes.lexicographicallyPrecedes($1.address.bytes) }
    }

    /// Each source's calls as XDP counts them (BPF/lib/calls.h): in progress, answered, and new calls let in
    /// during the current minute; with the fill of its international and high-risk buckets (calls charged in the
    /// last minute, as the thresholds see them). Sources with nothing counted are left out.
    public func callers(now: UInt64 = monotonicNanoseconds()) throws -> [CallerCount] {
        let map: BPFMap<fg_caller_key, fg_caller> = self.map(FG_MAP_CALLERS)
        let buckets: BPFMap<fg_destination_source_key, UInt64> = self.map(FG_MAP_DESTINATION_SOURCES)
        let nowS = UInt32(truncatingIfNeeded: now / 1_000_000_000)
        let ticks = now << UInt64(FG_TICK_SHIFT)
        let policy = try fraudPolicy()
        func recent(_ address: fg_addr, _ claimed: Bool, _ kind: Int32, _ perMinute: UInt32?) throws -> UInt32 {
            guard let perMinute else { return 0 }
            var key = fg_destination_source_key()
            key.addr = address
            key.id = FG_DEST_FRAUD_ID | UInt32(kind) | (claimed ? FG_DEST_CLAIMED : 0)
            guard let tat = try buckets.lookup(key), tat > ticks else { return 0 }
            let interval = FilterMaps.perMinute(perMinute).0
            return UInt32(min((tat - ticks + interval - 1) / interval, UInt64(perMinute)))
        }
        // The thresholds of the tier a source is in now aren't known here: the unverified ones are the tightest.
        let t = policy.thresholds(of: .unverified)
        var result: [CallerCount] = []
        for (key, value) in try map.entries() {
            let minute = nowS &- value.window_s < 60 ? value.window_calls : 0
            let claimed = key.claimed != 0
            let c = CallerCount(address: SourceAddress(key.addr), claimed: claimed, calls: Int32(bitPattern: value.calls),
                                answered: Int32(bitPattern: value.up), callsThisMinute: minute,
                                international: try recent(key.addr, claimed, FG_FRAUD_INTERNATIONAL, t.international),
                                highRisk: try recent(key.addr, claimed, FG_FRAUD_HIGH_RISK, t.highRisk))
            if c.calls != 0 || c.callsThisMinute != 0 || c.international != 0 || c.highRisk != 0 { result.append(c) }
        }
        return result.sorted {
            $0.address == $1.address ? !$0.claimed && $1.claimed : $0.address.bytes.lexicographicallyPrecedes($1.address.bytes)
        }
    }

    /// Lifts a source's block, and empties its fraud buckets' record (full again: otherwise its next such call
    /// would block it again at once); whether it had a block.
    @discardableResult
    public func unblockCalls(of address: SourceAddress) throws -> Bool {
        let buckets: BPFMap<fg_destination_source_key, UInt64> = map(FG_MAP_DESTINATION_SOURCES)
        for kind in [FG_FRAUD_INTERNATIONAL, FG_FRAUD_HIGH_RISK] {
            var key = fg_destination_source_key()
            key.addr = address.raw
            key.id = FG_DEST_FRAUD_ID | UInt32(kind)
            _ = try buckets.delete(key)
        }
        return try fraudBlocksMap.delete(address.raw, what: "lift the block on \(address)")
    }
}
