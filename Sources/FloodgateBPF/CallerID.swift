internal import CFloodgate
import Foundation

/// Caller ID (BPF/lib/callerid.h): the numbers each listed source may present in From and P-Asserted-Identity, as
/// E.164 prefixes; what a new call that presents another does (``Mode``). Sources in no entry are not checked.
public struct CallerIDPolicy: Equatable, Sendable {
    public enum Mode: String, Sendable, CaseIterable {
        /// Not checked.
        case off
        /// Counted (`caller-id-flagged`) and logged; the call goes on.
        case flag
        /// Refused (`dropped-caller-id`), counted and logged.
        case enforce

        var raw: UInt32 {
            switch self {
            case .off: FG_CALLER_ID_OFF.rawValue
            case .flag: FG_CALLER_ID_FLAG.rawValue
            case .enforce: FG_CALLER_ID_ENFORCE.rawValue
            }
        }
    }

    /// Source networks and the number prefixes they may present.
    public struct Entry: Equatable, Sendable {
        public var sources: [CIDR]
        /// E.164 digits without `+`, 1 to 15 of them.
        public var numbers: [String]

        /// `numbers` in E.164 digits, with or without `+`; spaces and `-` between digits are dropped.
        public init(sources: [CIDR], numbers: [String]) throws {
            guard !sources.isEmpty else { throw FloodgateError("a caller-ID entry needs at least one source network") }
            guard !numbers.isEmpty else { throw FloodgateError("a caller-ID entry needs at least one number prefix") }
            self.sources = Array(Swift.Set(sources)).sorted()
            self.numbers = Array(Swift.Set(try numbers.map(CallerIDPolicy.prefix))).sorted()
        }
    }

    public var mode: Mode = .off
    public var entries: [Entry] = []

    public init() {}

    public init(mode: Mode, entries: [Entry]) {
        self.mode = mode
        self.entries = entries
    }

    /// As the maps hold it: no entries when off, entries in the order of their first source.
    public var normalized: CallerIDPolicy {
        mode == .off || entries.isEmpty ? CallerIDPolicy() : CallerIDPolicy(mode: mode, entries: entries.sorted { $0.sources[0] < $1.sources[0] })
    }

    public static func prefix(_ text: String) throws -> String {
        let stripped = text.filter { $0 != " " && $0 != "-" }
        let digits = stripped.hasPrefix("+") ? String(stripped.dropFirst()) : stripped
        guard (1...15).contains(digits.count), digits.allSatisfy({ $0.isASCII && $0.isNumber }) else {
            throw FloodgateError("a caller number prefix must be 1 to 15 digits of an E.164 number, with or without + (got '\(text)')")
        }
        guard digits.first != "0" else {
            throw FloodgateError("'\(text)' is not E.164: a country code never starts with 0 (write +44…, not 0044… or 020…)")
        }
        return digits
    }

    public func validate() throws {
        var seen: [CIDR: Int] = [:]
        for (i, e) in entries.enumerated() {
            for s in e.sources {
                if let j = seen[s] { throw FloodgateError("caller_id: \(s) is in entries \(j + 1) and \(i + 1)") }
                seen[s] = i
            }
        }
        guard seen.count <= Int(FG_MAX_CALLER_SOURCES) else {
            throw FloodgateError("caller_id: \(seen.count) source networks; at most \(FG_MAX_CALLER_SOURCES)")
        }
        let ranges = entries.reduce(0) { $0 + $1.numbers.count }
        guard ranges <= Int(FG_MAX_CALLER_RANGES) / 2 else {
            throw FloodgateError("caller_id: \(ranges) number prefixes; at most \(FG_MAX_CALLER_RANGES / 2)")
        }
    }
}

extension FilterMaps {
    var callerSourcesMap: BPFMap<fg_cidr_key, UInt32> { map(FG_MAP_CALLER_SOURCES) }
    var callerRangesMap: BPFMap<fg_caller_range_key, UInt32> { map(FG_MAP_CALLER_RANGES) }

    static func callerRangeKey(id: UInt32, _ digits: String) -> fg_caller_range_key {
        var key = fg_caller_range_key()
        key.prefixlen = UInt32(32 + 4 * digits.utf8.count)
        key.id = id.bigEndian
        packDigits(digits, into: &key.digits)
        return key
    }

    static func callerDigits(_ key: fg_caller_range_key) -> String {
        unpackDigits(key.digits, count: (Int(key.prefixlen) - 32) / 4)
    }

    /// The caller-ID policy the maps hold (entries grouped by the ranges' id).
    public func callerIDPolicy() throws -> CallerIDPolicy {
        let raw = try rawSettings()
        guard raw.caller_id_entries != 0, let mode = CallerIDPolicy.Mode.allCases.first(where: { $0.raw == raw.caller_id_mode }),
              mode != .off
        else { return CallerIDPolicy() }
        var sources: [UInt32: [CIDR]] = [:]
        for (key, id) in try callerSourcesMap.entries() { sources[id, default: []].append(CIDR(key: key)) }
        var numbers: [UInt32: [String]] = [:]
        for key in try callerRangesMap.keys() { numbers[UInt32(bigEndian: key.id), default: []].append(FilterMaps.callerDigits(key)) }
        let entries = try sources.keys.sorted().compactMap { id -> CallerIDPolicy.Entry? in
            guard let n = numbers[id] else { return nil }
            return try CallerIDPolicy.Entry(sources: sources[id]!, numbers: n)
        }
        return CallerIDPolicy(mode: mode, entries: entries.sorted { $0.sources[0] < $1.sources[0] })
    }

    /// Puts `policy` in force. The new ranges are written under ids the old ones don't use, then each source is
    /// pointed at its new id (one write each), then what is left of the old is removed: a call is judged by the
    /// old entry of its source or the new one, whole. On a failure before the sources move, the new ranges are
    /// removed and the old policy stands.
    public func setCallerIDPolicy(_ policy: CallerIDPolicy) throws {
        try policy.validate()
        let p = policy.normalized
        let oldSources = try callerSourcesMap.entries()
        let oldRanges = try callerRangesMap.keys()
        let oldIDs = Set(oldSources.map(\.value) + oldRanges.map { UInt32(bigEndian: $0.id) })
        var nextID: UInt32 = 1
        func freshID() -> UInt32 {
            while oldIDs.contains(nextID) { nextID += 1 }
            defer { nextID += 1 }
            return nextID
        }
        var written: [fg_caller_range_key] = []
        var assignments: [(CIDR, UInt32)] = []
        do {
            for entry in p.entries {
                let id = freshID()
                for n in entry.numbers {
                    let key = FilterMaps.callerRangeKey(id: id, n)
                    try callerRangesMap.update(key, 1, what: "add the caller number +\(n)")
                    written.append(key)
                }
                assignments += entry.sources.map { ($0, id) }
            }
        } catch {
            for key in written { _ = try? callerRangesMap.delete(key) }
            throw error
        }
        do {
            for (cidr, id) in assignments { try callerSourcesMap.update(cidr.key, id, what: "add the caller-ID source \(cidr)") }
        } catch {
            // Back to the old entries, whole: their ranges are still there.
            let old = Dictionary(oldSources.map { (CIDR(key: $0.key), $0.value) }, uniquingKeysWith: { a, _ in a })
            for (cidr, _) in assignments {
                if let id = old[cidr] { _ = try? callerSourcesMap.update(cidr.key, id) } else { _ = try? callerSourcesMap.delete(cidr.key) }
            }
            for key in written { _ = try? callerRangesMap.delete(key) }
            throw error
        }
        try updateSettings {
            $0.caller_id_mode = p.mode.raw
            $0.caller_id_entries = UInt32(assignments.count)
        }
        let kept = Set(assignments.map { $0.0 })
        for (key, _) in oldSources where !kept.contains(CIDR(key: key)) { _ = try callerSourcesMap.delete(key) }
        for key in oldRanges { _ = try callerRangesMap.delete(key) }
    }

    /// INVITEs whose caller number was checked and did not match, by mode: flagged (let in) and refused.
    public func callerIDMismatches() throws -> (flagged: UInt64, refused: UInt64) {
        let outcomes = try destinationOutcomes()
        return (outcomes["caller-id-flagged"] ?? 0, outcomes["caller-id-refused"] ?? 0)
    }
}
