internal import CFloodgate
import Foundation

/// Typed access to the maps of one Floodgate filter: from a freshly loaded object (which owns the descriptors)
/// or from the pins of an attached filter (then its ``FileDescriptor``s close themselves). Every map is a
/// ``BPFMap`` typed by the header's key and value structs; the per-CPU ones are read with
/// ``readEveryCPU(_:key:count:as:what:valueSize:offset:)``.
public final class FilterMaps: @unchecked Sendable {
    private let descriptors: [String: FileDescriptor]
    /// What keeps borrowed descriptors open (the loaded object), as long as these maps are in use.
    private let owner: AnyObject?

    /// The map names, as the ELF object and the pins name them.
    public static let names = [
        FG_MAP_SETTINGS, FG_MAP_LIMITS, FG_MAP_SOURCES, FG_MAP_PREFIXES, FG_MAP_GLOBAL,
        FG_MAP_DROP_CACHE, FG_MAP_DENY, FG_MAP_ALLOW, FG_MAP_ALLOW_PREFIXES, FG_MAP_BANS, FG_MAP_AUTO_BANS, FG_MAP_SIGNATURES,
        FG_MAP_SCRATCH, FG_MAP_CPU, FG_MAP_OFFENCES, FG_MAP_EVENTS, FG_MAP_AUTH, FG_MAP_TRUSTED,
        FG_MAP_TRUSTED_PREFIXES, FG_MAP_TXNS, FG_MAP_SERVERS, FG_MAP_FRAGMENTS, FG_MAP_CHALLENGES,
        FG_MAP_DESTINATIONS, FG_MAP_DESTINATION_SOURCES, FG_MAP_DESTINATION_TOTALS, FG_MAP_CALLS,
        FG_MAP_DESTINATION_OUTCOMES, FG_MAP_FRAUD_BLOCKS, FG_MAP_DIALOGS, FG_MAP_ACTIVE_CALLS, FG_MAP_CALLERS,
        FG_MAP_CALLER_SOURCES, FG_MAP_CALLER_RANGES, FG_MAP_INSIDE_COUNTS, FG_MAP_PEER_BANS, FG_MAP_KNOWN,
        FG_MAP_STREAMS, FG_MAP_STREAM_OPENS,
    ]

    /// The maps of a loaded object (`owner`), which closes their descriptors: these maps keep it alive.
    convenience init(borrowing descriptors: [String: Int32], from owner: AnyObject) throws {
        try self.init(descriptors: descriptors.mapValues { FileDescriptor($0, owned: false) }, owner: owner)
    }

    init(descriptors: [String: FileDescriptor], owner: AnyObject? = nil) throws {
        for name in FilterMaps.names where (descriptors[name]?.raw ?? -1) < 0 {
            throw FloodgateError("BPF map \(name) is missing")
        }
        self.descriptors = descriptors
        self.owner = owner
    }

    /// The descriptor of map `name` (one of ``names``).
    public func fd(_ name: String) -> Int32 { descriptors[name]?.raw ?? -1 }

    /// Map `name`, typed by its key and value.
    func map<Key, Value>(_ name: String) -> BPFMap<Key, Value> {
        BPFMap(descriptor: descriptors[name] ?? FileDescriptor(-1, owned: false), name: name)
    }

    var settingsMap: BPFMap<UInt32, fg_settings> { map(FG_MAP_SETTINGS) }
    var limitsMap: BPFMap<UInt32, fg_limit> { map(FG_MAP_LIMITS) }
    var trustedMap: BPFMap<fg_addr, fg_trust> { map(FG_MAP_TRUSTED) }
    var authMap: BPFMap<fg_addr, fg_auth_state> { map(FG_MAP_AUTH) }
    var trustedPrefixesMap: BPFMap<fg_source_key, UInt64> { map(FG_MAP_TRUSTED_PREFIXES) }
    var allowMap: BPFMap<fg_cidr_key, fg_allow_entry> { map(FG_MAP_ALLOW) }
    var denyMap: BPFMap<fg_cidr_key, UInt32> { map(FG_MAP_DENY) }
    var allowPrefixesMap: BPFMap<fg_source_key, UInt32> { map(FG_MAP_ALLOW_PREFIXES) }
    var serversMap: BPFMap<fg_cidr_key, UInt32> { map(FG_MAP_SERVERS) }
    var signaturesMap: BPFMap<fg_signature_key, UInt32> { map(FG_MAP_SIGNATURES) }
    /// The operator's bans (`fg_bans`) or the filter's own (`fg_auto_bans`).
    func banMap(_ name: String) -> BPFMap<fg_addr, fg_ban> { map(name) }

    public var settingsFD: Int32 { fd(FG_MAP_SETTINGS) }
    public var limitsFD: Int32 { fd(FG_MAP_LIMITS) }
    public var sourcesFD: Int32 { fd(FG_MAP_SOURCES) }
    /// Per CPU: the counters of every class and the fast path's state (`struct fg_cpu_state`), then the drop cache's
    /// tags (`FG_CPU_TAGS_OFFSET`).
    public var cpuFD: Int32 { fd(FG_MAP_CPU) }
    public var dropCacheFD: Int32 { fd(FG_MAP_DROP_CACHE) }

    /// Opens the maps pinned in `directory` (`bpf_obj_get`), after checking that a filter of this build pinned
    /// them: each map's type, key size and value size (`bpf_obj_get_info_by_fd`) must be what the embedded object
    /// declares, and the settings must carry this build's FG_LAYOUT_VERSION. A filter pinned by another build is
    /// refused, never read as if it had this build's layouts.
    public static func openPinned(in directory: String) throws -> FilterMaps {
        // Owned: whatever happens below, what was opened is closed with the last reference to it.
        var descriptors: [String: FileDescriptor] = [:]
        func otherBuild(_ what: String) -> FloodgateError {
            let interface = URL(fileURLWithPath: directory).lastPathComponent
            return FloodgateError(
                "the filter pinned at \(directory) was loaded by another build of Floodgate (\(what))",
                hint: "Replace it: floodgate detach \(interface), then attach it again (or restart floodgate run); "
                    + "its bans and counters go with it")
        }
        do {
            let expected = try MapLayout.embedded()
            for name in names {
                let path = "\(directory)/\(name)"
                guard FileManager.default.fileExists(atPath: path) else { throw otherBuild("it has no map \(name)") }
                let fd = try check("open pinned map \(path)", bpf_obj_get(path))
                descriptors[name] = FileDescriptor(fd, owned: true)
                let found = try MapLayout(fd: fd, name: name)
                if let want = expected[name], found != want {
                    throw otherBuild("\(name) is \(found), this build's is \(want)")
                }
            }
            let maps = try FilterMaps(descriptors: descriptors)
            let version = try maps.rawSettings().layout_version
            guard version == UInt32(FG_LAYOUT_VERSION) else {
                throw otherBuild("layout version \(version), this build's is \(FG_LAYOUT_VERSION)")
            }
            return maps
        }
    }

    // MARK: Settings and limits

    public func settings() throws -> Settings { Settings(try rawSettings()) }

    /// The policy generation: it changes with every change of the limits, lists, servers or bans.
    public func policyGeneration() throws -> UInt64 { UInt64(try rawSettings().policy_generation) }

    func rawSettings() throws -> fg_settings {
        try settingsMap.value(at: 0)
    }

    /// Rewrites the settings value with one map update. The CLI and agent are its only writers; PinRoot's lock
    /// keeps two of them from interleaving.
    func updateSettings(_ change: (inout fg_settings) throws -> Void) throws {
        var value = try rawSettings()
        try change(&value)
        // XDP may have banned since the read: never write a 0 over bans that exist.
        if try hasBans(in: FG_MAP_BANS) { value.bans_present = 1 }
        if try hasBans(in: FG_MAP_AUTO_BANS) { value.auto_bans_present = 1 }
        // Only the agent writes the peer bans, under the pin root's lock: the flag follows the map.
        value.peer_bans = try peerBansMap.isEmpty() ? 0 : 1
        try settingsMap.update(0, value)
        // XDP may also have banned (inserting the ban, then setting the flag) between that check and the write,
        // which then put a 0 over its flag. A ban inserted before the write is seen now; one inserted after it
        // sets its flag after the write.
        // The same for an explicit ban another writer without the pin root's lock added meanwhile.
        let autoMissed = try value.auto_bans_present == 0 && hasBans(in: FG_MAP_AUTO_BANS)
        let explicitMissed = try value.bans_present == 0 && hasBans(in: FG_MAP_BANS)
        if autoMissed || explicitMissed {
            if autoMissed { value.auto_bans_present = 1 }
            if explicitMissed { value.bans_present = 1 }
            try settingsMap.update(0, value)
        }
    }

    /// The agent (`floodgate run`) that keeps this filter in step with its config file, if one is running: its
    /// pid, as it wrote it in the settings, and the config file its command line names.
    public func runningAgent() throws -> (pid: Int32, config: String)? {
        let pid = Int32(bitPattern: try rawSettings().agent_pid)
        guard pid > 0, pid != getpid(),
              let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"), !data.isEmpty
        else { return nil }
        let argv = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        guard let program = argv.first, (program as NSString).lastPathComponent.hasPrefix("floodgate"), argv.contains("run")
        else { return nil }
        let config = argv.firstIndex(of: "--config").flatMap { $0 + 1 < argv.count ? argv[$0 + 1] : nil }
            ?? argv.first { $0.hasPrefix("--config=") }.map { String($0.dropFirst("--config=".count)) }
            ?? "/etc/floodgate/floodgate.yaml"
        return (pid, config)
    }

    /// The agent pid as written in the settings (0: none), running or not.
    public func rawAgentPID() throws -> UInt32 { try rawSettings().agent_pid }

    /// Records (pid) or clears (0) the agent keeping this filter in step with its config.
    public func setAgentPID(_ pid: Int32) throws {
        try updateSettings { $0.agent_pid = UInt32(bitPattern: pid) }
    }

    /// Does the ban map `name` hold any entry?
    func hasBans(in name: String) throws -> Bool { try !banMap(name).isEmpty() }

    public func setSettings(_ settings: Settings) throws {
        try settings.validate()
        // The aggregates that hold allow-listed sources depend on the lengths: mark the new ones before the settings
        // switch to them, and drop the old ones only after, as XDP reads them until then.
        try syncAllowPrefixes(settings, removeStale: false)
        try syncTrustedPrefixes(settings)
        try updateSettings {
            $0 = settings.raw(over: $0)
            $0.policy_generation &+= 1
        }
        try syncAllowPrefixes(settings)
    }

    public func limit(for trafficClass: TrafficClass, tier: Tier = .unverified) throws -> Limit {
        Limit(try limitsMap.value(at: tier.limitIndex(trafficClass)))
    }

    public func limits(tier: Tier = .unverified) throws -> [TrafficClass: Limit] {
        var result: [TrafficClass: Limit] = [:]
        for c in TrafficClass.all { result[c] = try limit(for: c, tier: tier) }
        return result
    }

    /// Replaces one class's limit with a single map update: the XDP program sees the old or the new limit (see
    /// `struct fg_limit` for why a torn read is still a finite limit). Then bumps the policy generation, so no
    /// CPU keeps dropping from its drop cache what was decided under the old limit.
    public func setLimit(_ limit: Limit, for trafficClass: TrafficClass, tier: Tier = .unverified) throws {
        try limitsMap.update(tier.limitIndex(trafficClass), limit.raw)
        try updateSettings { $0.policy_generation &+= 1 }
    }

    /// One of the limits past the classes: prefix, budget, new sources.
    public func limit(_ index: GlobalLimit) throws -> Limit {
        Limit(try limitsMap.value(at: index.index))
    }

    public func setLimit(_ limit: Limit, _ index: GlobalLimit) throws {
        try limitsMap.update(index.index, limit.raw)
        try updateSettings { $0.policy_generation &+= 1 }
    }

    // MARK: Counters

    /// Counters per class and reason, summed over CPUs.
    public func counters() throws -> Counters {
        var counters = Counters()
        for cpu in try perCPUClassCounters() {
            for c in TrafficClass.counted {
                let value = cpu[Int(c.index)]
                for r in Reason.all {
                    counters.packets[c, r] += value.packets[Int(r.index)]
                    counters.bytes[c, r] += value.bytes[Int(r.index)]
                }
            }
        }
        return counters
    }

    /// One class's packets by reason (index: `Reason.index`), summed over CPUs: one map lookup.
    public func packets(of trafficClass: TrafficClass) throws -> [UInt64] {
        var sums = [UInt64](repeating: 0, count: Int(FG_REASON_MAX.rawValue))
        for cpu in try perCPUClassCounters() {
            for (i, v) in cpu[Int(trafficClass.index)].packets.prefix(sums.count).enumerated() { sums[i] += v }
        }
        return sums
    }

    /// Each CPU's counters (`fg_cpu[0].counters`), by class index (then the unparsed row): packets and bytes by
    /// reason index.
    private func perCPUClassCounters() throws -> [[(packets: [UInt64], bytes: [UInt64])]] {
        let slots = Int(FG_REASON_SLOTS)
        return try readEveryCPU(
            cpuFD, key: 0, count: 1, as: fg_cpu_state.self, what: FG_MAP_CPU, valueSize: Int(FG_CPU_VALUE_SIZE)
        ).map { state in
            withUnsafeBytes(of: state.counters) { raw in
                // Per class, per reason: packets, then bytes (fg_reason_counters).
                let words = raw.bindMemory(to: UInt64.self)
                return (0..<Int(FG_COUNTER_ROWS)).map { c in
                    let base = c * 2 * slots
                    return ((0..<slots).map { words[base + 2 * $0] }, (0..<slots).map { words[base + 2 * $0 + 1] })
                }
            }
        }
    }

    /// What the inside program read in the SIP server's answers, by count name (`fg_inside_count_name`):
    /// answers, challenges, auth-failures, auth-failures-not-counted, verified, server-byes, auth-failures-unproven,
    /// auth-failures-unreadable, tcp-segments-unread, tcp-streams-lost; summed over CPUs.
    public func insideCounts() throws -> [String: UInt64] {
        var result: [String: UInt64] = [:]
        for i in 0..<FG_INSIDE_COUNT_MAX.rawValue {
            result[String(cString: fg_inside_count_name(i))] =
                try readEveryCPU(fd(FG_MAP_INSIDE_COUNTS), key: i, as: UInt64.self, what: FG_MAP_INSIDE_COUNTS).reduce(0, &+)
        }
        return result
    }

    /// The names of ``insideCounts()``, in order.
    public static var insideCountNames: [String] {
        (0..<FG_INSIDE_COUNT_MAX.rawValue).map { String(cString: fg_inside_count_name($0)) }
    }

    // MARK: Sources

    /// Every tracked (source, class) bucket, read in batches (`bpf_map_lookup_batch`), with the drops the per-CPU
    /// drop cache holds for it and has not yet added.
    public func sources() throws -> [SourceEntry] {
        var entries = try trackedSources()
        let (byClass, bySource) = try pendingDrops()
        guard !byClass.isEmpty || !bySource.isEmpty else { return entries }
        var pending = byClass
        // A source-keyed slot's drops go where fg_flush_source would add them: to the entry of their class, or, if
        // the source has none and there are FG_SOURCE_SEARCH_PENDING or more, to its first other class that has one
        // (fragments aside); else nowhere.
        let tracked = Set(entries.map(SourceKey.init))
        for (key, count) in bySource {
            var home = key
            if !tracked.contains(key) {
                guard count >= UInt64(FG_SOURCE_SEARCH_PENDING),
                    let other = TrafficClass.all.first(where: {
                        $0 != .fragment && tracked.contains(SourceKey(address: key.address, trafficClass: $0))
                    })
                else { continue }
                home.trafficClass = other
            }
            pending[home, default: 0] += count
        }
        for i in entries.indices {
            if let extra = pending[SourceKey(entries[i])] {
                entries[i].packets += extra
                entries[i].drops += extra
            }
        }
        return entries
    }

    struct SourceKey: Hashable {
        var address: SourceAddress
        var trafficClass: TrafficClass
        init(address: SourceAddress, trafficClass: TrafficClass) {
            (self.address, self.trafficClass) = (address, trafficClass)
        }
        init(_ entry: SourceEntry) { (address, trafficClass) = (entry.address, entry.trafficClass) }
        init(_ key: fg_source_key) {
            address = SourceAddress(key.addr)
            trafficClass = TrafficClass(index: UInt32(key.traffic_class)) ?? .other
        }
    }

    /// Each CPU's drop-cache tags (in `fg_cpu`'s value, after the state: BPF/lib/drop_cache.h), by slot.
    func dropTags() throws -> [[UInt16]] {
        let slots = Int(FG_DROP_CACHE_SLOTS)
        let all = try readEveryCPU(
            cpuFD, key: 0, count: slots, as: UInt16.self, what: FG_MAP_CPU, valueSize: Int(FG_CPU_VALUE_SIZE),
            offset: Int(FG_CPU_TAGS_OFFSET))
        return stride(from: 0, to: all.count, by: slots).map { Array(all[$0..<$0 + slots]) }
    }

    /// The drop cache's slot and tag of `address`'s packets of class `trafficClass` (`fg_slot_hash`).
    static func dropSlot(_ address: SourceAddress, _ trafficClass: TrafficClass) -> (slot: Int, tag: UInt16) {
        dropSlot(address, keyClass: trafficClass.index)
    }

    /// The drop cache's slot and tag of `address`'s ban or denial held by source alone (key class `FG_SLOT_SOURCE`).
    static func sourceDropSlot(_ address: SourceAddress) -> (slot: Int, tag: UInt16) {
        dropSlot(address, keyClass: UInt32(FG_SLOT_SOURCE))
    }

    private static func dropSlot(_ address: SourceAddress, keyClass: UInt32) -> (slot: Int, tag: UInt16) {
        var raw = address.raw
        let hash = fg_addr_hash(&raw, keyClass)
        return (Int(fg_hash_slot(hash)), fg_hash_tag(hash))
    }

    /// Drops counted in the per-CPU drop cache and not yet in `fg_sources`: the (source, class) slots' by source and
    /// class, and the source-keyed slots' by source and the class each slot keeps for them (`source_class`), per slot.
    /// A CPU's held source counts its drops in the CPU's state (`held_source_pending`), for the slot whose index it
    /// keeps, which holds its key while there are any (BPF/lib/drop_cache.h): they are that slot's. (The states are
    /// read before the slots: a hold or a fill between the reads may show them twice or not at all in one reading.)
    func pendingDrops() throws -> (byClass: [SourceKey: UInt64], bySource: [(SourceKey, UInt64)]) {
        var byClass: [SourceKey: UInt64] = [:]
        var bySource: [(SourceKey, UInt64)] = []
        let groupSlots = Int(FG_DROP_CACHE_GROUP), slotMask = Int(FG_DROP_CACHE_SLOTS) - 1
        // Per CPU: the held source's slot and its pending drops.
        let held = try readEveryCPU(
            cpuFD, key: 0, count: 1, as: fg_cpu_state.self, what: FG_MAP_CPU, valueSize: Int(FG_CPU_VALUE_SIZE)
        ).map { (slot: Int($0.held_source_slot) & slotMask, pending: UInt64($0.held_source_pending)) }
        // Each entry is a group of FG_DROP_CACHE_GROUP slots (BPF/floodgate.h), CPU after CPU.
        for group in 0..<UInt32(FG_DROP_CACHE_GROUPS) {
            let slots = try readEveryCPU(
                dropCacheFD, key: group, count: groupSlots, as: fg_drop_slot.self, what: FG_MAP_DROP_CACHE)
            for (i, slot) in slots.enumerated() {
                var pending = slot.pending
                let cpu = i / groupSlots
                if cpu < held.count, held[cpu].slot == Int(group) * groupSlots + i % groupSlots {
                    pending += held[cpu].pending
                }
                guard pending > 0 else { continue }
                let keyClass = UInt32(slot.key.traffic_class)
                if keyClass < FG_CLASS_MAX.rawValue {
                    byClass[SourceKey(slot.key), default: 0] += pending
                } else if keyClass == UInt32(FG_SLOT_SOURCE), let owner = TrafficClass(index: slot.source_class) {
                    let key = SourceKey(address: SourceAddress(slot.key.addr), trafficClass: owner)
                    bySource.append((key, pending))
                }
                // Prefix slots count nothing.
            }
        }
        return (byClass, bySource)
    }

    /// The verified sources (learned trust): until when (CLOCK_MONOTONIC ns), the TTL pinned for each, and any
    /// quarantine of its credentials.
    public func trustedSources() throws -> [TrustedSource] {
        try trustedMap.entries().map { key, value in
            TrustedSource(address: SourceAddress(key), untilNS: value.until_ns, ttl: value.pin.ttl,
                                 candidateTTL: value.pin.candidate_count > 0 ? value.pin.candidate_ttl : nil,
                                 confirmations: value.pin.candidate_count,
                                 quarantineUntilSeconds: value.quarantine_until_s == 0 ? nil : value.quarantine_until_s,
                                 awayQuarantineUntilSeconds: value.away_until_s == 0 ? nil : value.away_until_s,
                                 strictAtPin: value.strict & UInt32(FG_STRICT_AT_PIN) != 0,
                                 strictElsewhere: value.strict & UInt32(FG_STRICT_AWAY) != 0)
        }
    }

    /// Where ``liftQuarantine(of:now:)`` lifted a quarantine: at the source's pin, from other hop distances.
    public struct LiftedQuarantine: Sendable, Equatable {
        public var atPin: Bool
        public var elsewhere: Bool
        public var any: Bool { atPin || elsewhere }
        public init(atPin: Bool, elsewhere: Bool) {
            self.atPin = atPin
            self.elsewhere = elsewhere
        }
    }

    /// Lifts the quarantine of verified `address`'s credentials, at its pin and from elsewhere, and starts its
    /// counts of unproven failures afresh (as a quarantine's start does), so the next one does not quarantine it
    /// again at once. Its proven failures stay counted. Where nothing is in force (`now`: CLOCK_MONOTONIC ns, or a
    /// test clock's), or the source is no longer verified, nothing is written. Each entry is read again just
    /// before it is written, and the write is given up and tried again (three times, then an error) if the inside
    /// program changed it meanwhile; what is left is a change it makes between that read and the write, which is
    /// lost.
    public func liftQuarantine(of address: SourceAddress, now: UInt64 = monotonicNanoseconds()) throws -> LiftedQuarantine {
        let nowSeconds = now / 1_000_000_000
        let key = address.raw
        for _ in 0..<3 {
            guard var trust = try trustedMap.lookup(key), trust.until_ns > now else { break }
            let lifted = LiftedQuarantine(atPin: UInt64(trust.quarantine_until_s) > nowSeconds,
                                          elsewhere: UInt64(trust.away_until_s) > nowSeconds)
            guard lifted.any else { return lifted }
            // The counts first: should the quarantine's write then fail, it is still in force, with fresh counts.
            if var counts = try authMap.lookup(key), counts.unproven != 0 || counts.away != 0 {
                // Its credentialed requests' count moves with every one: left out of the comparison.
                func failures(_ v: fg_auth_state?) -> [UInt32]? {
                    v.map { [$0.failures, $0.window_start_s, $0.unproven, $0.away] }
                }
                let read = failures(counts)
                counts.unproven = 0
                counts.away = 0
                guard try failures(authMap.lookup(key)) == read else { continue }
                // BPF_EXIST, as below.
                try authMap.update(key, counts, flags: BPF_EXIST, what: "clear the unproven failures of \(address)")
            }
            let read = trust
            trust.quarantine_until_s = 0
            trust.away_until_s = 0
            trust.strict = 0
            guard try Self.same(trustedMap.lookup(key), read) else { continue }
            // BPF_EXIST: an entry the LRU evicted meanwhile is not made again.
            try trustedMap.update(key, trust, flags: BPF_EXIST, what: "lift the quarantine of \(address)")
            return lifted
        }
        guard let trust = try trustedMap.lookup(key), trust.until_ns > now else {
            return LiftedQuarantine(atPin: false, elsewhere: false)
        }
        throw FloodgateError("the filter changed \(address)'s trust or failure counts three times while its quarantine was being lifted",
                             hint: "try again")
    }

    /// Whether a map value read again is byte for byte the one read before.
    private static func same<Value: BitwiseCopyable>(_ again: Value?, _ before: Value) -> Bool {
        guard let again else { return false }
        return withUnsafeBytes(of: again) { a in withUnsafeBytes(of: before) { b in a.elementsEqual(b) } }
    }

    /// Why `address` must not be banned on a word that may be forged (a log line, an integration's request):
    /// the allow-list entry that holds it, or that the filter verified it; nil when neither.
    public func protection(of address: SourceAddress, now: UInt64 = monotonicNanoseconds()) throws -> String? {
        if let entry = try cidrs(in: .allow).first(where: { $0.contains(address) }) { return "allow-listed (\(entry))" }
        if try trustedSources().contains(where: { $0.address == address && $0.untilNS > now }) { return "verified" }
        return nil
    }

    /// How many (source, class) entries `fg_sources` holds: a walk of it in batches.
    public func trackedSourceCount() throws -> Int {
        var total = 0
        try forEachSourceBatch { _, _, count in total += count }
        return total
    }

    /// Calls `body` with each batch of `fg_sources` (`bpf_map_lookup_batch`): keys, values, and how many are set.
    func forEachSourceBatch(_ body: ([fg_source_key], [fg_source_state], Int) -> Void) throws {
        let sources: BPFMap<fg_source_key, fg_source_state> = map(FG_MAP_SOURCES)
        try sources.batches(body)
    }

    /// The entries of `fg_sources` as they are.
    func trackedSources() throws -> [SourceEntry] {
        var entries: [SourceEntry] = []
        try forEachSourceBatch { keys, values, count in
            for i in 0..<count { entries.append(SourceEntry(key: keys[i], state: values[i])) }
        }
        return entries
    }

    /// Capacity of the per-source map (set at load time).
    public func maxSources() throws -> UInt32 { try maxEntries(FG_MAP_SOURCES) }

    /// Capacity of the map `name` (set at load time).
    public func maxEntries(_ name: String) throws -> UInt32 {
        var info = bpf_map_info()
        var length = UInt32(MemoryLayout<bpf_map_info>.size)
        try check("read info of \(name)", bpf_obj_get_info_by_fd(fd(name), &info, &length))
        return info.max_entries
    }

}

/// What a map is: its type, key size and value size. The expected ones are read from the embedded BPF object, so
/// nothing here restates the header's layouts.
struct MapLayout: Equatable, CustomStringConvertible {
    var type: UInt32
    var keySize: UInt32
    var valueSize: UInt32

    init(type: UInt32, keySize: UInt32, valueSize: UInt32) {
        self.type = type
        self.keySize = keySize
        self.valueSize = valueSize
    }

    /// A loaded map's (`bpf_obj_get_info_by_fd`).
    init(fd: Int32, name: String) throws {
        var info = bpf_map_info()
        var length = UInt32(MemoryLayout<bpf_map_info>.size)
        try check("read the map info of \(name)", bpf_obj_get_info_by_fd(fd, &info, &length))
        self.init(type: info.type, keySize: info.key_size, valueSize: info.value_size)
    }

    var description: String { "type \(type), key \(keySize) bytes, value \(valueSize) bytes" }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var cached: [String: MapLayout]?

    /// Every map of the embedded object, as declared (`bpf_object__open_mem`, not loaded).
    static func embedded() throws -> [String: MapLayout] {
        lock.lock()
        defer { lock.unlock() }
        if let cached { return cached }
        let bytes = FloodgateProgram.objectBytes
        var result: [String: MapLayout] = [:]
        try bytes.withUnsafeBytes { raw in
            var options = bpf_object_open_opts()
            options.sz = MemoryLayout<bpf_object_open_opts>.size
            guard let object = "floodgate".withCString({ name -> OpaquePointer? in
                options.object_name = name
                return bpf_object__open_mem(raw.baseAddress, raw.count, &options)
            }) else { throw FloodgateError("open the embedded BPF object", errno: errno) }
            defer { bpf_object__close(object) }
            for name in FilterMaps.names {
                guard let map = bpf_object__find_map_by_name(object, name) else { continue }
                result[name] = MapLayout(type: bpf_map__type(map).rawValue, keySize: bpf_map__key_size(map),
                                         valueSize: bpf_map__value_size(map))
            }
        }
        cached = result
        return result
    }
}

/// The limits in `fg_limits` after the per-class ones (`enum fg_limit_index`).
public enum GlobalLimit: Sendable, CaseIterable {
    case prefix, budget, newSources, widePrefix

    /// Its index in `fg_limits`, from the header.
    public var index: UInt32 {
        switch self {
        case .prefix: return FG_LIMIT_PREFIX.rawValue
        case .budget: return FG_LIMIT_BUDGET.rawValue
        case .newSources: return FG_LIMIT_NEW_SOURCES.rawValue
        case .widePrefix: return FG_LIMIT_WIDE_PREFIX.rawValue
        }
    }

    public var name: String {
        switch self {
        case .prefix: return "prefix"
        case .budget: return "budget"
        case .newSources: return "new-sources"
        case .widePrefix: return "wide-prefix"
        }
    }
}

/// One tracked bucket of `fg_sources`.
public struct SourceEntry: Sendable {
    public var address: SourceAddress
    public var trafficClass: TrafficClass
    public var packets: UInt64
    public var drops: UInt64
    /// GCRA state, in ticks of 1/16 ns of CLOCK_MONOTONIC.
    public var theoreticalArrival: UInt64

    init(key: fg_source_key, state: fg_source_state) {
        address = SourceAddress(key.addr)
        trafficClass = TrafficClass(index: UInt32(key.traffic_class)) ?? .other
        packets = state.packets
        drops = state.drops
        theoreticalArrival = state.tat
    }
}

/// Packets (or bytes) by class (and the unparsed row) and reason.
public struct CounterGrid: Equatable, Sendable {
    public private(set) var flat: [UInt64]

    public init() { flat = Array(repeating: 0, count: Int(FG_COUNTER_ROWS) * Int(FG_REASON_MAX.rawValue)) }

    init(flat: [UInt64]) {
        self.init()
        for (i, v) in flat.prefix(self.flat.count).enumerated() { self.flat[i] = v }
    }

    public subscript(c: TrafficClass, r: Reason) -> UInt64 {
        get { flat[Int(c.index * FG_REASON_MAX.rawValue + r.index)] }
        set { flat[Int(c.index * FG_REASON_MAX.rawValue + r.index)] = newValue }
    }

    public func total(_ c: TrafficClass) -> UInt64 { Reason.all.reduce(0) { $0 + self[c, $1] } }
}

/// The per-CPU counters of a filter, summed.
public struct Counters: Equatable, Sendable {
    public var packets = CounterGrid()
    public var bytes = CounterGrid()
    public init() {}
}
