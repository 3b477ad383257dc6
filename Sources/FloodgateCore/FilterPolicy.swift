import Foundation

/// Everything an operator sets in a filter's maps, as one value: its settings, the per-class limits of both tiers,
/// the aggregate limits, the deny and allow lists with the allow entries' options, the SIP servers and the scanner
/// signatures. What the agent's config file says, what `floodgate attach` writes and what every CLI change edits
/// (``PinRoot/changePolicy(_:_:)``): read from the maps, changed, validated, and applied with ``apply(to:)``,
/// which changes only what differs and can be undone.
///
/// Bans, verified sources and buckets are not policy: the filter writes them itself.
public struct FilterPolicy: Sendable, Equatable {
    public var settings: Settings = .defaults
    /// Per-source limits of unverified sources, and of verified ones (`limit set CLASS --tier verified`).
    public var limits: [TrafficClass: Limit] = Limit.defaults
    public var verifiedLimits: [TrafficClass: Limit] = Limit.verifiedDefaults
    public var prefix: Limit = Limit.defaultPrefix
    public var widePrefix: Limit = Limit.defaultWidePrefix
    public var budget: Limit = Limit.defaultBudget
    public var newSources: Limit = Limit.defaultNewSources
    public var allow: Set<CIDR> = []
    public var deny: Set<CIDR> = []
    /// Allow entries' own bucket and TTL range; an entry missing here has ``AllowOptions``' defaults.
    public var allowOptions: [CIDR: AllowOptions] = [:]
    /// The SIP server addresses whose answers count on the inside interface; empty: any address there.
    public var servers: Set<CIDR> = []
    public var signatures: Set<Signature> = Set(Signature.defaults)
    /// What INVITEs may dial (BPF/lib/destinations.h); the number plan is in ``settings``.
    public var destinations: Set<DestinationRule> = []
    /// Fraud thresholds and the block they earn (off unless a block time is set).
    public var fraud = FraudPolicy()
    /// The caller numbers listed sources may present (off unless a mode and entries are set).
    public var callerID = CallerIDPolicy()

    public init() {}

    /// The defaults without the aggregate limits (prefix, wider network) or the new-source budget: only the
    /// per-source buckets decide. What measurements and tests of the buckets themselves use.
    public static let perSourceOnly: FilterPolicy = {
        var policy = FilterPolicy()
        policy.prefix = .unlimited
        policy.widePrefix = .unlimited
        policy.newSources = .unlimited
        return policy
    }()

    /// The defaults but for `settings` and the per-source `limits` of unverified sources (a class missing from
    /// `limits` keeps its default).
    public init(settings: Settings, limits: [TrafficClass: Limit] = Limit.defaults) {
        self.settings = settings
        self.limits = limits
    }

    /// The policy `maps` hold now.
    public init(reading maps: FilterMaps) throws {
        settings = try maps.settings()
        limits = try maps.limits(tier: .unverified)
        verifiedLimits = try maps.limits(tier: .verified)
        prefix = try maps.limit(.prefix)
        widePrefix = try maps.limit(.widePrefix)
        budget = try maps.limit(.budget)
        newSources = try maps.limit(.newSources)
        deny = Set(try maps.cidrs(in: .deny))
        let entries = try maps.allowEntries()
        allow = Set(entries.map(\.cidr))
        allowOptions = Dictionary(uniqueKeysWithValues: entries.filter { $0.options != AllowOptions() }
            .map { ($0.cidr, $0.options) })
        servers = Set(try maps.servers())
        signatures = Set(try maps.signatures())
        destinations = Set(try maps.destinationRules())
        fraud = try maps.fraudPolicy()
        callerID = try maps.callerIDPolicy()
    }

    /// The per-source limit a class has in a tier.
    public func limit(for trafficClass: TrafficClass, tier: Tier) -> Limit {
        switch tier {
        case .unverified: return limits[trafficClass] ?? Limit.defaults[trafficClass] ?? .unlimited
        case .verified: return verifiedLimits[trafficClass] ?? Limit.verifiedDefaults[trafficClass] ?? .unlimited
        }
    }

    /// The options of an allow entry.
    public func options(of cidr: CIDR) -> AllowOptions { allowOptions[cidr] ?? AllowOptions() }

    /// The policy as the maps hold it, and so as it reads back: settings as written (``Settings/normalized``),
    /// every class's limit spelt out, and options only for entries on the allow list that differ from the
    /// defaults. Policies are compared, diffed and applied in this form.
    public var normalized: FilterPolicy {
        var p = self
        p.settings = settings.normalized
        p.limits = Dictionary(uniqueKeysWithValues: TrafficClass.all.map { ($0, limit(for: $0, tier: .unverified)) })
        p.verifiedLimits = Dictionary(uniqueKeysWithValues: TrafficClass.all.map { ($0, limit(for: $0, tier: .verified)) })
        p.allowOptions = allowOptions.filter { allow.contains($0.key) && $0.value != AllowOptions() }
        p.destinations = destinations.normalized
        p.fraud = fraud.normalized
        p.callerID = callerID.normalized
        return p
    }

    /// Equal if the maps would hold the same (their ``normalized`` forms are the same).
    public static func == (a: FilterPolicy, b: FilterPolicy) -> Bool {
        let (x, y) = (a.normalized, b.normalized)
        return x.settings == y.settings && x.limits == y.limits && x.verifiedLimits == y.verifiedLimits
            && x.prefix == y.prefix && x.widePrefix == y.widePrefix && x.budget == y.budget
            && x.newSources == y.newSources && x.allow == y.allow && x.deny == y.deny && x.allowOptions == y.allowOptions
            && x.servers == y.servers && x.signatures == y.signatures && x.destinations == y.destinations
            && x.fraud == y.fraud && x.callerID == y.callerID
    }

    /// Throws if the maps could not take this policy (so nothing of it is written).
    public func validate() throws {
        try settings.validate()
        for limit in Array(limits.values) + Array(verifiedLimits.values) + [prefix, widePrefix, budget, newSources] {
            try limit.validate()
        }
        for (cidr, options) in allowOptions where allow.contains(cidr) {
            try options.validate()
            try options.limit.validate()
        }
        for (name, list) in [("allow", allow), ("deny", deny)] where list.count > FilterCapacity.listEntries {
            throw FloodgateError("the \(name) list holds \(list.count) networks; at most \(FilterCapacity.listEntries)")
        }
        guard servers.count <= FilterCapacity.servers else {
            throw FloodgateError("at most \(FilterCapacity.servers) SIP server addresses (got \(servers.count))")
        }
        guard signatures.count <= FilterCapacity.signatures else {
            throw FloodgateError("at most \(FilterCapacity.signatures) scanner signatures (got \(signatures.count))")
        }
        try fraud.validate()
        try callerID.validate()
        let entries = try Array(destinations).destinationEntryCount()
        guard entries <= FilterCapacity.destinations else {
            throw FloodgateError("the destination rules need \(entries) entries (one per tier a rule applies to); at most \(FilterCapacity.destinations)")
        }
    }

    /// What differs from `old`, in words, in the order ``apply(to:)`` changes it.
    public func diff(from old: FilterPolicy) -> [String] {
        let (new, old) = (normalized, old.normalized)
        return new.diffNormalized(from: old)
    }

    private func diffNormalized(from old: FilterPolicy) -> [String] {
        var changes: [String] = []
        if settings != old.settings { changes.append("settings") }
        for tier in Tier.allCases {
            for c in TrafficClass.all {
                let (was, now) = (old.limit(for: c, tier: tier), limit(for: c, tier: tier))
                if was != now { changes.append("\(tier == .verified ? "verified " : "")\(c) \(was) → \(now)") }
            }
        }
        for (index, was, now) in [(GlobalLimit.prefix, old.prefix, prefix), (.widePrefix, old.widePrefix, widePrefix),
                                  (.budget, old.budget, budget), (.newSources, old.newSources, newSources)] where was != now {
            changes.append("\(index) \(was) → \(now)")
        }
        for (name, was, now) in [("allow", old.allow, allow), ("deny", old.deny, deny)] where was != now {
            changes.append("\(name) +\(now.subtracting(was).count) −\(was.subtracting(now).count)")
        }
        for cidr in allow.intersection(old.allow).sorted() where options(of: cidr) != old.options(of: cidr) {
            changes.append("allow \(cidr) \(options(of: cidr))")
        }
        if servers != old.servers { changes.append("SIP servers \(old.servers.count) → \(servers.count)") }
        if signatures != old.signatures {
            changes.append("signatures +\(signatures.subtracting(old.signatures).count) "
                + "−\(old.signatures.subtracting(signatures).count)")
        }
        if fraud != old.fraud { changes.append("fraud thresholds") }
        if callerID != old.callerID { changes.append("caller ID \(callerID.mode.rawValue), \(callerID.entries.count) entries") }
        if destinations != old.destinations {
            changes.append("destinations +\(destinations.subtracting(old.destinations).count) "
                + "−\(old.destinations.subtracting(destinations).count)")
        }
        return changes
    }

    /// What ``apply(to:)`` changed, and how to put it back.
    public struct Applied {
        /// What changed, in words (``diff(from:)``).
        public let changes: [String]
        private let steps: [() -> Void]

        init(changes: [String], steps: [() -> Void]) {
            self.changes = changes
            self.steps = steps
        }

        /// Puts back what was there, last change first.
        public func undo() {
            for step in steps.reversed() { step() }
        }
    }

    /// Brings `maps` to this policy, changing only what differs, and nothing unset on the way: settings and
    /// limits are replaced by single map updates, list entries are added before the old ones go. If a step
    /// fails, the steps before it are undone and the error is thrown. The caller holds the pin root's lock.
    public func apply(to maps: FilterMaps) throws -> Applied {
        try validate()
        return try normalized.applyNormalized(to: maps)
    }

    private func applyNormalized(to maps: FilterMaps) throws -> Applied {
        let old = try FilterPolicy(reading: maps).normalized
        var undo: [() -> Void] = []
        do {
            if settings != old.settings {
                try maps.setSettings(settings)
                undo.append { try? maps.setSettings(old.settings) }
            }
            for tier in Tier.allCases {
                for c in TrafficClass.all {
                    let (was, now) = (old.limit(for: c, tier: tier), limit(for: c, tier: tier))
                    guard was != now else { continue }
                    try maps.setLimit(now, for: c, tier: tier)
                    undo.append { try? maps.setLimit(was, for: c, tier: tier) }
                }
            }
            for (index, was, now) in [(GlobalLimit.prefix, old.prefix, prefix), (.widePrefix, old.widePrefix, widePrefix),
                                      (.budget, old.budget, budget), (.newSources, old.newSources, newSources)] where was != now {
                try maps.setLimit(now, index)
                undo.append { try? maps.setLimit(was, index) }
            }
            for (list, was, now) in [(PolicyList.allow, old.allow, allow), (.deny, old.deny, deny)] {
                let add = now.subtracting(was).sorted(), remove = was.subtracting(now).sorted()
                if !add.isEmpty {
                    try maps.addCIDRs(add, to: list, options: allowOptions)
                    undo.append { _ = try? maps.removeCIDRs(add, from: list) }
                }
                if !remove.isEmpty {
                    try maps.removeCIDRs(remove, from: list)
                    undo.append { _ = try? maps.addCIDRs(remove, to: list, options: old.allowOptions) }
                }
            }
            // Allow entries kept whose bucket or TTL range changed.
            for cidr in allow.intersection(old.allow).sorted() where options(of: cidr) != old.options(of: cidr) {
                try maps.setAllowOptions(options(of: cidr), for: cidr)
                undo.append { try? maps.setAllowOptions(old.options(of: cidr), for: cidr) }
            }
            if servers != old.servers {
                try maps.setServers(servers.sorted())
                undo.append { try? maps.setServers(old.servers.sorted()) }
            }
            let add = signatures.subtracting(old.signatures).sorted(), remove = old.signatures.subtracting(signatures).sorted()
            if !add.isEmpty {
                try maps.addSignatures(add)
                undo.append { _ = try? maps.removeSignatures(add) }
            }
            if !remove.isEmpty {
                try maps.removeSignatures(remove)
                undo.append { _ = try? maps.addSignatures(remove) }
            }
            if destinations != old.destinations {
                try maps.setDestinationRules(destinations.sorted())
                undo.append { try? maps.setDestinationRules(old.destinations.sorted()) }
            }
            if fraud != old.fraud {
                try maps.setFraudPolicy(fraud)
                undo.append { try? maps.setFraudPolicy(old.fraud) }
            }
            if callerID != old.callerID {
                try maps.setCallerIDPolicy(callerID)
                undo.append { try? maps.setCallerIDPolicy(old.callerID) }
            }
        } catch {
            for step in undo.reversed() { step() }
            throw error
        }
        return Applied(changes: diffNormalized(from: old), steps: undo)
    }
}
