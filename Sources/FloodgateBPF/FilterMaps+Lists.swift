internal import CFloodgate
import Foundation

/// What an allow-list entry carries besides its network (`struct fg_allow_entry`).
public struct AllowOptions: Equatable, Sendable, CustomStringConvertible {
    /// One bucket over every SIP class of all the entry's addresses: a forger who takes an allow-listed address
    /// gets at most this. Never `block` (that is the deny list).
    public var limit: Limit = Limit.defaultAllowEntry
    /// The TTLs (IPv6: hop limits) its packets may arrive with; nil: a host entry (/32, /128) is pinned at its
    /// first SIP packet's TTL, a wider entry is not pinned.
    public var ttl: ClosedRange<UInt8>? = nil

    public init(limit: Limit = Limit.defaultAllowEntry, ttl: ClosedRange<UInt8>? = nil) {
        self.limit = limit
        self.ttl = ttl
    }

    init(_ raw: fg_allow_entry) {
        limit = Limit(fg_limit(interval: raw.interval, tau: raw.tau, rate: raw.rate, burst: raw.burst))
        ttl = raw.ttl_max == 0 ? nil : raw.ttl_min...raw.ttl_max
    }

    public func validate() throws {
        if limit == .block { throw FloodgateError("an allow entry cannot block: use the deny list") }
        if let ttl, ttl.lowerBound < 1 { throw FloodgateError("a TTL range starts at 1 or above") }
    }

    /// The map value for `cidr`, whose being a single address decides whether it is pinned without a range.
    func raw(for cidr: CIDR) -> fg_allow_entry {
        var value = fg_allow_entry()
        value.host = cidr.keyLength == 128 ? 1 : 0
        let l = limit.raw
        value.interval = l.interval
        value.tau = l.tau
        value.rate = l.rate
        value.burst = l.burst
        value.ttl_min = ttl?.lowerBound ?? 1
        value.ttl_max = ttl?.upperBound ?? 0
        return value
    }

    public var description: String {
        "limit \(limit)" + (ttl.map { ", TTL \($0.lowerBound)-\($0.upperBound)" } ?? "")
    }

    /// "60-64" or "64".
    public static func parseTTL(_ text: String) throws -> ClosedRange<UInt8> {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false).map { UInt8($0) }
        guard (1...2).contains(parts.count), let low = parts.first!, let high = parts.last!, low >= 1, low <= high else {
            throw FloodgateError("'\(text)' is not a TTL range: give MIN-MAX or one TTL, 1 to 255")
        }
        return low...high
    }
}

/// The deny and allow lists.
public enum PolicyList: String, Sendable, CaseIterable {
    case deny, allow
}

extension FilterMaps {
    // MARK: Deny and allow lists

    /// The CIDRs of a list, in order (`bpf_map_get_next_key` over the LPM trie).
    public func cidrs(in list: PolicyList) throws -> [CIDR] {
        try listKeys(list).map(CIDR.init(key:)).sorted()
    }

    /// A list's keys (the allow list's values are its entries, the deny list's a plain 1).
    private func listKeys(_ list: PolicyList) throws -> [fg_cidr_key] {
        list == .allow ? try allowMap.keys() : try denyMap.keys()
    }

    /// Removes a list entry; false if it was not there.
    @discardableResult
    private func deleteEntry(_ cidr: CIDR, from list: PolicyList) throws -> Bool {
        let what = "remove \(cidr) from the \(list.rawValue) list"
        return list == .allow ? try allowMap.delete(cidr.key, what: what) : try denyMap.delete(cidr.key, what: what)
    }

    /// Adds `cidrs` to `list` (allow entries with `options`, by default ``AllowOptions``' defaults). All or
    /// nothing: if the kernel refuses one (the list is full, say), the ones this call added are removed again and
    /// the error is thrown. Returns how many were new. Entries already on the list keep their options.
    @discardableResult
    public func addCIDRs(_ cidrs: [CIDR], to list: PolicyList, options: [CIDR: AllowOptions] = [:]) throws -> Int {
        let existing = Set(try self.cidrs(in: list))
        for o in options.values { try o.validate() }
        var added: [CIDR] = []
        do {
            for cidr in Set(cidrs).subtracting(existing).sorted() {
                try writeEntry(cidr, in: list, options: options[cidr] ?? AllowOptions(), flags: BPF_NOEXIST)
                added.append(cidr)
            }
            try recount(list)
        } catch {
            for cidr in added { _ = try? deleteEntry(cidr, from: list) }
            try? recount(list)
            throw error
        }
        return added.count
    }

    /// One list entry: a deny entry's value is a plain 1, an allow entry's its bucket and TTL range.
    private func writeEntry(_ cidr: CIDR, in list: PolicyList, options: AllowOptions, flags: Int) throws {
        let what = "\(flags == BPF_EXIST ? "change" : "add") \(cidr) \(flags == BPF_EXIST ? "on" : "to") the \(list.rawValue) list"
        if list == .allow {
            try allowMap.update(cidr.key, options.raw(for: cidr), flags: flags, what: what)
        } else {
            try denyMap.update(cidr.key, 1, flags: flags, what: what)
        }
    }

    /// The allow entries with their options (`bpf_map_lookup_elem` on each).
    public func allowEntries() throws -> [(cidr: CIDR, options: AllowOptions)] {
        try allowMap.entries().map { (CIDR(key: $0.key), AllowOptions($0.value)) }.sorted { $0.cidr < $1.cidr }
    }

    /// The TTL each host allow entry (/32, /128) without a fixed range was pinned at by its first SIP packet.
    public func allowPins() throws -> [CIDR: UInt8] {
        var pins: [CIDR: UInt8] = [:]
        for (key, value) in try allowMap.entries() where value.ttl_max == 0 && value.pin.set != 0 {
            pins[CIDR(key: key)] = value.pin.ttl
        }
        return pins
    }

    /// Changes an allow entry's bucket or TTL range (one map update; its bucket starts full again, and its pin is
    /// cleared: the next SIP packet sets it).
    public func setAllowOptions(_ options: AllowOptions, for cidr: CIDR) throws {
        try options.validate()
        try writeEntry(cidr, in: .allow, options: options, flags: BPF_EXIST)
    }

    /// Removes `cidrs` from `list`; every one must be on it, or nothing is removed.
    @discardableResult
    public func removeCIDRs(_ cidrs: [CIDR], from list: PolicyList) throws -> Int {
        let existing = Set(try self.cidrs(in: list))
        let missing = Set(cidrs).subtracting(existing)
        guard missing.isEmpty else {
            throw FloodgateError("not on the \(list.rawValue) list: \(missing.sorted().map(\.description).joined(separator: ", "))")
        }
        let saved = list == .allow ? Dictionary(uniqueKeysWithValues: try allowEntries().map { ($0.cidr, $0.options) }) : [:]
        var removed: [CIDR] = []
        do {
            for cidr in Set(cidrs).sorted() {
                try deleteEntry(cidr, from: list)
                removed.append(cidr)
            }
            try recount(list)
        } catch {
            for cidr in removed {
                try? writeEntry(cidr, in: list, options: saved[cidr] ?? AllowOptions(), flags: BPF_ANY)
            }
            try? recount(list)
            throw error
        }
        return removed.count
    }

    /// Writes the list's size into the settings (the XDP program skips an empty list) and invalidates the
    /// drop caches, whose slots may hold a verdict the change overturns.
    private func recount(_ list: PolicyList) throws {
        let count = UInt32(try listKeys(list).count)
        if list == .allow {
            try syncAllowPrefixes(try settings())
        }
        let first = list == .allow ? FilterMaps.allowFirstBytes(try listKeys(.allow).map(CIDR.init(key:))) : nil
        try updateSettings { settings in
            if let first {
                settings.allow_entries = count
                settings.allow_v4_first = (first.v4[0], first.v4[1], first.v4[2], first.v4[3])
                settings.allow_v6_first = (first.v6[0], first.v6[1], first.v6[2], first.v6[3])
            } else {
                settings.deny_entries = count
            }
            settings.policy_generation &+= 1
        }
    }

    /// The first bytes of the addresses the allow list holds (`fg_settings.allow_v4_first` and `allow_v6_first`,
    /// four words of 64 bits each): bit b of the IPv4 set if an entry holds an IPv4 source whose first octet is b,
    /// of the IPv6 set if one holds an IPv6 source (not IPv4-mapped) whose first byte is b. XDP looks an address up
    /// only if its bit is set, so a bit may be set needlessly (one lookup more) but never left clear.
    ///
    /// A reader of the settings while they are rewritten (a memcpy) may see each byte old or new: a bit set in both
    /// is set in either, so no entry that was on the list before the change and stays on it is missed meanwhile.
    public static func allowFirstBytes(_ allow: [CIDR]) -> (v4: [UInt64], v6: [UInt64]) {
        var v4 = [UInt64](repeating: 0, count: 4), v6 = [UInt64](repeating: 0, count: 4)
        /// Sets the bits of the first bytes a network of `bits` bits whose first byte is `first` starts with (one if
        /// `bits` >= 8). From the network's start: a key read back with host bits set must not reach past 255.
        func mark(_ words: inout [UInt64], _ first: UInt8, _ bits: Int) {
            let count = bits >= 8 ? 1 : 1 << (8 - max(bits, 0))
            let start = Int(first) & ~(count - 1)
            for b in start..<start + count { words[b >> 6] |= 1 << UInt64(b & 63) }
        }
        let mappedZero = SourceAddress(bytes: [UInt8](repeating: 0, count: 10) + [0xFF, 0xFF, 0, 0, 0, 0])
        for cidr in allow {
            let bytes = cidr.address.bytes
            if cidr.keyLength > 96 {
                // Within ::ffff:0:0/96 (IPv4) or wholly outside it (IPv6).
                if cidr.address.isIPv4 {
                    mark(&v4, bytes[12], cidr.keyLength - 96)
                } else {
                    mark(&v6, bytes[0], cidr.keyLength)
                }
                continue
            }
            // A network of 96 bits or fewer holds all of IPv4 if it holds ::ffff:0.0.0.0, and IPv6 addresses too.
            if cidr.contains(mappedZero) { mark(&v4, 0, 0) }
            mark(&v6, bytes[0], cidr.keyLength)
        }
        return (v4, v6)
    }

    // MARK: SIP servers

    /// The addresses whose answers the inside program reads (`fg_servers`; empty: any address on the inside).
    public func servers() throws -> [CIDR] {
        try serversMap.keys().map(CIDR.init(key:)).sorted()
    }

    /// Makes `cidrs` the SIP server addresses. The new ones are added before the old ones go, so the set never
    /// passes through empty (which would mean "any address").
    public func setServers(_ cidrs: [CIDR]) throws {
        let old = Set(try servers()), new = Set(cidrs)
        guard new.count <= Int(FG_MAX_SERVERS) else {
            throw FloodgateError("at most \(FG_MAX_SERVERS) SIP server addresses (got \(new.count))")
        }
        var added: [CIDR] = []
        do {
            for cidr in new.subtracting(old).sorted() {
                try serversMap.update(cidr.key, 1, flags: BPF_NOEXIST, what: "add \(cidr) to the SIP servers")
                added.append(cidr)
            }
        } catch {
            for cidr in added { _ = try? serversMap.delete(cidr.key) }
            throw error
        }
        if !new.isEmpty { try updateSettings { $0.server_entries = UInt32(new.count) } }
        // The new set is in force: a stale entry that will not go only widens it by one address, as before.
        for cidr in old.subtracting(new) { _ = try? serversMap.delete(cidr.key) }
        if new.isEmpty { try updateSettings { $0.server_entries = 0 } }
    }

    /// The two aggregate levels under these lengths, as `fg_prefixes` keys them: the prefix (key class
    /// FG_CLASS_MAX) and the wider network (FG_CLASS_MAX + 1), each with its IPv4 and IPv6 length.
    static func aggregateLevels(prefixV4: UInt8, prefixV6: UInt8, wideV4: UInt8, wideV6: UInt8)
        -> [(v4: UInt8, v6: UInt8, keyClass: UInt8)]
    {
        [(prefixV4, prefixV6, UInt8(FG_CLASS_MAX.rawValue)), (wideV4, wideV6, UInt8(FG_CLASS_MAX.rawValue + 1))]
    }

    /// The bytes of the `fg_source_key` of `address` masked to `length` bits (of its 128-bit form), key class
    /// `keyClass`: the masked address, the class and the key's three bytes of padding.
    static func aggregateKeyBytes(_ address: SourceAddress, length: Int, keyClass: UInt8) -> [UInt8] {
        CIDR.masked(address, length).bytes + [keyClass, 0, 0, 0]
    }

    /// The `fg_source_key` whose bytes are `bytes` (``aggregateKeyBytes(_:length:keyClass:)``).
    static func sourceKey(_ bytes: [UInt8]) -> fg_source_key {
        var key = fg_source_key()
        withUnsafeMutableBytes(of: &key) { $0.copyBytes(from: bytes) }
        return key
    }

    /// The aggregates (`fg_prefixes` keys of both levels: prefixes of /`prefixV4` and /`prefixV6`, wider networks of
    /// /`wideV4` and /`wideV6`) that an allow-list entry narrower than them lies in: XDP caches a drained aggregate's
    /// drop only outside them.
    public static func allowPrefixKeys(_ allow: [CIDR], prefixV4: UInt8, prefixV6: UInt8, wideV4: UInt8, wideV6: UInt8)
        -> Set<[UInt8]>
    {
        var keys = Set<[UInt8]>()
        let levels = aggregateLevels(prefixV4: prefixV4, prefixV6: prefixV6, wideV4: wideV4, wideV6: wideV6)
        for cidr in allow {
            for (v4, v6, keyClass) in levels {
                let aggregate = cidr.address.isIPv4 && cidr.keyLength > 96 ? 96 + Int(v4) : Int(v6)
                guard cidr.keyLength > aggregate else { continue }  // as wide as the aggregate: XDP finds it in fg_allow
                keys.insert(aggregateKeyBytes(cidr.address, length: aggregate, keyClass: keyClass))
            }
        }
        return keys
    }

    /// Makes `fg_allow_prefixes` match the allow list under `settings`' aggregate lengths: adds what is missing first,
    /// then, if `removeStale`, removes what is stale (a stale entry only keeps an aggregate out of the drop cache).
    /// Before a change of lengths, call it without removing: XDP still reads the old lengths' keys until the switch.
    func syncAllowPrefixes(_ settings: Settings, removeStale: Bool = true) throws {
        let wanted = FilterMaps.allowPrefixKeys(try cidrs(in: .allow), prefixV4: settings.prefixV4,
                                                prefixV6: settings.prefixV6, wideV4: settings.wideV4,
                                                wideV6: settings.wideV6)
        let present = Set(try allowPrefixesMap.keys().map { key in withUnsafeBytes(of: key) { Array($0) } })
        for bytes in wanted.subtracting(present) {
            try allowPrefixesMap.update(FilterMaps.sourceKey(bytes), 1, what: "mark an allow-listed prefix")
        }
        guard removeStale else { return }
        for bytes in present.subtracting(wanted) { _ = try? allowPrefixesMap.delete(FilterMaps.sourceKey(bytes)) }
    }

    /// The marks of the aggregates (`fg_trusted_prefixes` keys of both levels, spelt as
    /// ``allowPrefixKeys(_:prefixV4:prefixV6:wideV4:wideV6:)`` spells them) that hold the verified `sources`, each
    /// with the latest end of its sources' trust (XDP reads an expired mark as none, so a mark must last as long as
    /// its longest-trusted source, whatever the order).
    public static func trustedPrefixMarks(_ sources: [(address: SourceAddress, untilNS: UInt64)], prefixV4: UInt8,
                                          prefixV6: UInt8, wideV4: UInt8, wideV6: UInt8) -> [[UInt8]: UInt64]
    {
        var marks: [[UInt8]: UInt64] = [:]
        let levels = aggregateLevels(prefixV4: prefixV4, prefixV6: prefixV6, wideV4: wideV4, wideV6: wideV6)
        for source in sources {
            for (v4, v6, keyClass) in levels {
                let length = source.address.isIPv4 ? 96 + Int(v4) : Int(v6)
                let key = aggregateKeyBytes(source.address, length: length, keyClass: keyClass)
                marks[key] = max(marks[key] ?? 0, source.untilNS)
            }
        }
        return marks
    }

    /// Marks the aggregates (under `settings`' lengths, both levels) that hold a verified source in
    /// `fg_trusted_prefixes`, as XDP does when it verifies one: after the lengths change, the marks made at the old
    /// ones would no longer keep a drained aggregate holding a verified source out of the drop cache. Marks at the old
    /// lengths stay until the LRU drops them or their end passes (they only keep an aggregate out of the cache). A mark
    /// read with a later end is left as it is, since XDP may have renewed a source in it after the sources were read;
    /// a renewal between that read and the write is still lost, and the mark then ends with the sources' trust as
    /// read, until XDP's next verification in it raises it again.
    func syncTrustedPrefixes(_ settings: Settings) throws {
        let now = monotonicNanoseconds()
        let live = try trustedSources().filter { $0.untilNS > now }.map { ($0.address, $0.untilNS) }
        let marks = FilterMaps.trustedPrefixMarks(live, prefixV4: settings.prefixV4, prefixV6: settings.prefixV6,
                                                  wideV4: settings.wideV4, wideV6: settings.wideV6)
        for (bytes, until) in marks {
            let key = FilterMaps.sourceKey(bytes)
            if let mark = try trustedPrefixesMap.lookup(key), mark >= until { continue }
            try trustedPrefixesMap.update(key, until, what: "mark a prefix holding a verified source")
        }
    }

    // MARK: Bans

    /// The two ban maps: the operator's (`fg_bans`, never written by XDP, so a flood cannot fill it) and the
    /// filter's own (`fg_auto_bans`, an LRU).
    static let banMaps = [FG_MAP_BANS, FG_MAP_AUTO_BANS]

    /// Every ban, the operator's and the filter's (an address can have one of each).
    public func bans() throws -> [Ban] {
        // In batches: the agent reads them four times a second, and the filter's own may hold 262,144.
        try FilterMaps.banMaps.flatMap { name in
            try banMap(name).batchedEntries().map { Ban(address: SourceAddress($0.key), value: $0.value) }
        }.sorted { $0.address.bytes.lexicographicallyPrecedes($1.address.bytes) }
    }

    /// How many bans are in force at `now`, by origin (explicit, scanner, auto, brute-force): a batched walk that
    /// builds nothing per ban in force, for a caller that only counts (over maps that may hold 262,144).
    public func activeBanCounts(now: UInt64 = monotonicNanoseconds()) throws -> [String: Int] {
        try walkBans(now: now).active
    }

    /// ``sweepExpiredBans(now:)`` and ``activeBanCounts(now:)`` in one walk of each ban map (the agent's
    /// housekeeping: at a full ban map each walk is most of what the agent costs).
    public func sweepAndCountBans(now: UInt64 = monotonicNanoseconds()) throws -> (removed: Int, active: [String: Int]) {
        let walk = try walkBans(now: now)
        var removed = 0
        for (name, expired) in walk.expired { removed += try deleteExpired(expired, from: name) }
        return (removed, walk.active)
    }

    /// Removes `address`'s bans that ran out by `now` (a lookup and a delete, no walk); how many it removed.
    @discardableResult
    public func removeExpiredBans(of address: SourceAddress, now: UInt64 = monotonicNanoseconds()) throws -> Int {
        var removed = 0
        for name in FilterMaps.banMaps {
            guard let value = try banMap(name).lookup(address.raw), value.expires_ns != 0, value.expires_ns <= now
            else { continue }
            removed += try deleteExpired([(address.raw, value.expires_ns)], from: name)
        }
        return removed
    }

    /// Removes the bans that expired by `now` (CLOCK_MONOTONIC nanoseconds); the XDP program already lets their
    /// sources pass. Returns how many were removed.
    @discardableResult
    public func sweepExpiredBans(now: UInt64 = monotonicNanoseconds()) throws -> Int {
        try sweepAndCountBans(now: now).removed
    }

    /// One batched walk of each ban map: the bans in force at `now` counted by origin, and those that ran out
    /// (key and expiry) by map.
    private func walkBans(now: UInt64) throws -> (active: [String: Int], expired: [String: [(fg_addr, UInt64)]]) {
        let origins = Ban.origins + ["other"]
        let bits = [FG_BAN_INTEGRATION, FG_BAN_EXPLICIT, FG_BAN_SCANNER, FG_BAN_AUTO, FG_BAN_BRUTE_FORCE].map { UInt32($0) }
        var counts = [Int](repeating: 0, count: origins.count)
        var expired: [String: [(fg_addr, UInt64)]] = [:]
        for name in FilterMaps.banMaps {
            try banMap(name).batches { keys, values, n in
                for i in 0..<n {
                    let v = values[i]
                    if v.expires_ns != 0 && v.expires_ns <= now {
                        expired[name, default: []].append((keys[i], v.expires_ns))
                    } else {
                        counts[bits.firstIndex { v.flags & $0 != 0 } ?? origins.count - 1] += 1
                    }
                }
            }
        }
        var active = Dictionary(uniqueKeysWithValues: zip(origins.dropLast(), counts.dropLast()))
        if counts[origins.count - 1] > 0 { active["other"] = counts[origins.count - 1] }
        return (active, expired)
    }

    /// Deletes the bans of map `name` that are still the ones that ran out (XDP may have renewed one since it was
    /// read: a new offence); if the map is then empty, lets XDP skip its lookup again (updateSettings re-sets the
    /// flag if XDP banned meanwhile). How many it deleted.
    private func deleteExpired(_ expired: [(fg_addr, UInt64)], from name: String) throws -> Int {
        let map = banMap(name)
        var removed = 0
        for (key, expires) in expired {
            if let again = try map.lookup(key), again.expires_ns == expires, try map.delete(key) { removed += 1 }
        }
        if removed > 0, try !hasBans(in: name) {
            try updateSettings {
                if name == FG_MAP_BANS { $0.bans_present = 0 } else { $0.auto_bans_present = 0 }
            }
        }
        return removed
    }

    /// The ban on `address`, if it has one (expired or not): the operator's if there is one, else the filter's.
    public func ban(of address: SourceAddress) -> Ban? {
        for name in FilterMaps.banMaps {
            if let value = try? banMap(name).lookup(address.raw) { return Ban(address: address, value: value) }
        }
        return nil
    }

    /// Bans `address` explicitly for `seconds` (nil: until unbanned). An explicit ban beats the allow list.
    /// Returns what puts back the explicit ban that was there before (or none); the filter's own bans are not
    /// touched either way.
    @discardableResult
    public func ban(_ address: SourceAddress, seconds: UInt64?) throws -> () -> Void {
        let map = banMap(FG_MAP_BANS)
        let old = try map.lookup(address.raw)
        var value = fg_ban()
        value.expires_ns = seconds.map { monotonicNanoseconds() + $0 * 1_000_000_000 } ?? 0
        value.flags = UInt32(FG_BAN_EXPLICIT)
        try map.update(address.raw, value)
        try updateSettings { $0.policy_generation &+= 1 }  // also sets bans_present
        return { if let old { try? map.update(address.raw, old) } else { _ = try? map.delete(address.raw, what: "undo a ban") } }
    }

    /// What an integration's ban did.
    public enum IntegrationBanResult: Equatable, Sendable {
        /// Banned (or a ban of its own lengthened).
        case banned
        /// An integration ban already there lasts at least as long: left as it was.
        case alreadyLonger
        /// The operator's own ban is in force: left as it was.
        case operatorBan
    }

    /// Bans `address` for an integration (the local API, fail2ban) for `seconds` (nil: until lifted), never
    /// touching the operator's own ban and never shortening a longer one of its own; with an undo that puts back
    /// what was there.
    public func integrationBan(_ address: SourceAddress, seconds: UInt64?, now: UInt64 = monotonicNanoseconds())
        throws -> (result: IntegrationBanResult, undo: () -> Void)
    {
        let map = banMap(FG_MAP_BANS)
        let old = try map.lookup(address.raw)
        if let old, old.expires_ns == 0 || old.expires_ns > now {
            if old.flags & UInt32(FG_BAN_INTEGRATION) == 0 { return (.operatorBan, {}) }
            let newExpiry = seconds.map { now + $0 * 1_000_000_000 } ?? 0
            if old.expires_ns == 0 || (newExpiry != 0 && old.expires_ns >= newExpiry) { return (.alreadyLonger, {}) }
        }
        var value = fg_ban()
        value.expires_ns = seconds.map { now + $0 * 1_000_000_000 } ?? 0
        value.flags = UInt32(FG_BAN_EXPLICIT | FG_BAN_INTEGRATION)
        try map.update(address.raw, value)
        try updateSettings { $0.policy_generation &+= 1 }  // also sets bans_present
        return (.banned, {
            if let old { try? map.update(address.raw, old) } else { _ = try? map.delete(address.raw, what: "undo a ban") }
        })
    }

    /// Lifts the integration ban on `address` (not the operator's, not the filter's own); false if it had none.
    @discardableResult
    public func liftIntegrationBan(_ address: SourceAddress) throws -> Bool {
        guard let value = try banMap(FG_MAP_BANS).lookup(address.raw), value.flags & UInt32(FG_BAN_INTEGRATION) != 0,
              try banMap(FG_MAP_BANS).delete(address.raw, what: "remove the ban on \(address)")
        else { return false }
        try updateSettings { $0.policy_generation &+= 1 }
        return true
    }

    /// Lifts the bans on `address`, the operator's and the filter's; false if it had none.
    @discardableResult
    public func unban(_ address: SourceAddress) throws -> Bool {
        var found = false
        for name in FilterMaps.banMaps where try banMap(name).delete(address.raw, what: "remove the ban on \(address)") {
            found = true
        }
        guard found else { return false }
        // The last ban gone: let XDP skip the lookups again (updateSettings re-sets a flag if XDP banned meanwhile).
        try updateSettings {
            $0.policy_generation &+= 1
            $0.bans_present = 0
            $0.auto_bans_present = 0
        }
        return true
    }

    // MARK: Scanner signatures

    public func signatures() throws -> [Signature] {
        try signaturesMap.keys().compactMap(Signature.init(key:)).sorted()
    }

    /// Adds signatures, all or nothing. Returns how many were new.
    @discardableResult
    public func addSignatures(_ new: [Signature]) throws -> Int {
        let existing = Set(try signatures())
        var added: [Signature] = []
        do {
            for signature in Set(new).subtracting(existing).sorted() {
                try signaturesMap.update(signature.key, 1, flags: BPF_NOEXIST, what: "add scanner signature \(signature)")
                added.append(signature)
            }
            try recountSignatures()
        } catch {
            for signature in added { _ = try? signaturesMap.delete(signature.key) }
            try? recountSignatures()
            throw error
        }
        return added.count
    }

    /// Removes signatures; every one must be present, or nothing is removed.
    @discardableResult
    public func removeSignatures(_ old: [Signature]) throws -> Int {
        let missing = Set(old).subtracting(try signatures())
        guard missing.isEmpty else {
            throw FloodgateError("no such scanner signature: \(missing.sorted().map(\.description).joined(separator: ", "))")
        }
        for signature in Set(old) {
            try signaturesMap.delete(signature.key, what: "remove scanner signature \(signature)")
        }
        try recountSignatures()
        return old.count
    }

    private func recountSignatures() throws {
        let count = UInt32(try signaturesMap.keys().count)
        try updateSettings { $0.signature_entries = count }
    }
}
