import FloodgateCore
import Foundation
import Logging

/// The agent behind `floodgate run`: attaches the filter the config describes (or adopts the one already
/// pinned, keeping its bans and counters), applies config changes as differences, and on every poll reads the
/// XDP program's events, sweeps expired bans, watches class rates for anomalies and refreshes the metrics.
///
/// Not thread-safe: one task drives it (``AgentService``); the metrics endpoint only reads the registry.
public final class Agent: @unchecked Sendable {
    public let configPath: String
    public private(set) var config: AgentConfig
    public let metrics: AgentMetrics
    let logger: Logger
    let root: PinRoot
    private(set) var maps: FilterMaps
    private(set) var filter: AttachedFilter
    private var events: EventReader?
    private var anomalies: AnomalyDetector
    private let limiter: LogLimiter
    private var lastCounters: Counters?
    private var lastOutcomes: [String: UInt64]?
    private var lastInside: [String: UInt64]?
    private var lastPoll = monotonicNanoseconds()
    private var fileStamp: [String: String] = [:]
    /// Changed files as the previous check saw them: applied once a check sees them the same again.
    private var pendingStamp: [String: String]?
    private var lastOccupancy: UInt64 = 0
    /// The known-source filter as the last walk of the source map left it, and when that walk was.
    private var lastSourceWalk: (mark: KnownSources.Mark, at: UInt64)?
    private var lastBanSweep: UInt64 = 0
    /// Nanoseconds from one walk of the ban maps to the next (``poll()``).
    private var banSweepInterval: UInt64 = 10_000_000_000
    /// Bans XDP reported, and when they run out; the earliest of those times.
    private var banExpiries: [(expires: UInt64, address: SourceAddress)] = []
    private var earliestExpiry = UInt64.max
    /// The scheduled destination rules in force when the policy was last applied.
    private var scheduleInForce: [DestinationRule] = []
    /// Whether the filter was there before this agent started (adopted) rather than attached by it.
    public let adopted: Bool
    /// Bans announced and learned over BGP (`bgp:`), on a thread of its own.
    private var bgp: BGPSpeaker?

    /// Attaches (or adopts) the filter of `config` and applies `config` to it.
    public init(configPath: String, config: AgentConfig, logger: Logger) throws {
        guard config.external != nil else { throw FloodgateError("the config names no external interface") }
        // The uplink whose filter the others share: the first of the config's that already has one (a restart,
        // whatever the order now), else the first.
        let probe = PinRoot(config.pinRoot, logger: logger)
        let external = config.externals.first { name in
            guard let f = try? probe.inspect(interfaceName: name), let i = try? Interface(name) else { return false }
            return f.linkIfindex == UInt32(i.index)
        } ?? config.external!
        let others = config.externals.filter { $0 != external }
        // The files as they were read (as near as this gets): one changed while the filter is attached is seen.
        let stampsAtStart = Agent.stamps(configPath, config.listFiles)
        self.configPath = configPath
        self.config = config
        self.logger = logger
        root = PinRoot(config.pinRoot, logger: logger)
        metrics = AgentMetrics(interface: external)
        limiter = LogLimiter(perSecond: config.logPerSecond)
        anomalies = AnomalyDetector(config.anomaly)

        let started = Date()
        scheduleInForce = config.scheduledInForce(at: started)
        let outcome = try root.attach(try Interface(external), mode: config.mode, policy: config.effectivePolicy(at: started),
                                      maxSources: config.maxSources, maxAutoBans: config.maxAutoBans)
        switch outcome {
        case .attached(let f):
            filter = f
            adopted = false
            maps = try root.maps(of: external)
            logger.notice("attached the filter", metadata: [
                "interface": "\(external)", "program": .stringConvertible(f.programID), "mode": "\(f.mode ?? "?")",
            ])
        case .alreadyAttached(let f):
            filter = f
            adopted = true
            maps = try root.maps(of: external)
            // The pinned filter keeps protecting meanwhile; bring its policy to this config.
            let changes = try Agent.apply(config, at: started, to: maps, root: root)
            logger.notice("adopted the pinned filter: its bans and counters are kept", metadata: [
                "interface": "\(external)", "program": .stringConvertible(f.programID), "changes": .stringConvertible(changes.count),
            ])
        }
        // Further uplinks: the same program and maps (bans, lists, buckets and counters are one filter's).
        for uplink in others {
            switch try root.attachSharing(try Interface(uplink), with: external, mode: config.mode) {
            case .attached(let f):
                logger.notice("attached the filter to another uplink, sharing its maps", metadata: [
                    "interface": "\(uplink)", "with": "\(external)", "mode": "\(f.mode ?? "?")"])
                metrics.attached(interface: uplink, mode: f.mode ?? "unknown", program: f.programID)
            case .alreadyAttached(let f):
                metrics.attached(interface: uplink, mode: f.mode ?? "unknown", program: f.programID)
            }
        }
        if let inside = config.inside {
            try root.attachInside(externalName: external, inside: try Interface(inside), mode: config.mode)
            logger.notice("watching the SIP server's answers", metadata: ["inside": "\(inside)"])
            if config.policy.servers.isEmpty {
                logger.warning(
                    "sip.servers is empty: any host on the inside interface can answer for the SIP server (verify sources, count failures); name the server's addresses",
                    metadata: ["inside": "\(inside)"])
            }
        }
        // The CLI refuses (without --force) changes of what this config owns while the agent runs.
        try root.locked { try maps.setAgentPID(getpid()) }
        let pinnedSize = try maps.maxSources()
        if pinnedSize != config.maxSources {
            logger.warning("max_sources differs from the pinned filter's; it takes a detach and a new attach",
                           metadata: ["pinned": .stringConvertible(pinnedSize), "config": .stringConvertible(config.maxSources)])
        }
        events = try? EventReader(maps)
        if events == nil { logger.warning("cannot read the XDP program's event ring: bans are still issued, not logged") }
        fileStamp = stampsAtStart
        metrics.attached(interface: external, mode: filter.mode ?? "unknown", program: filter.programID)
        metrics.inside(config.inside)
        metrics.reloads(ok: true, seconds: Date().timeIntervalSince(started))
        if let b = config.bgp {
            bgp = BGPSpeaker(config: b, maps: try root.maps(of: external), root: root, logger: logger,
                             metrics: BGPMetrics(metrics.registry), policy: config.policy)
        } else {
            // Bans learned over BGP by an earlier run: nothing would lift them now.
            BGPSpeaker.clearPeerBans(maps: maps, root: root, logger: logger, why: "no bgp section")
        }
    }

    /// Starts what runs beside the poll (the BGP speaker).
    public func start() { bgp?.start() }

    /// Stops claiming the filter (the CLI may change its policy again without --force); the agent is stopping.
    public func release() {
        bgp?.stop()
        _ = try? root.locked {
            if try maps.rawAgentPID() == UInt32(bitPattern: getpid()) { try maps.setAgentPID(0) }
        }
    }

    // MARK: Config

    /// Reads the config file again and applies what changed. A file with problems changes nothing: the
    /// filter keeps the last good config. Returns whether the new config was applied.
    @discardableResult
    public func reload(reason: String) -> Bool {
        let started = Date()
        // Taken before the files are read: a change made while they are read is seen at the next check.
        let before = Agent.stamps(configPath, config.listFiles)
        fileStamp = before
        pendingStamp = nil
        let new: AgentConfig
        do {
            new = try AgentConfig.load(path: configPath)
        } catch {
            logger.error("config not applied: the filter keeps the last good one", metadata: [
                "file": "\(configPath)", "trigger": "\(reason)", "problems": "\(error)",
            ])
            metrics.reloads(ok: false, seconds: Date().timeIntervalSince(started))
            return false
        }
        let fixed: [(String, Bool)] = [
            ("interfaces.external", new.externals != config.externals), ("interfaces.inside", new.inside != config.inside),
            ("interfaces.mode", new.mode != config.mode), ("pin_root", new.pinRoot != config.pinRoot),
            ("max_sources", new.maxSources != config.maxSources), ("max_bans", new.maxAutoBans != config.maxAutoBans),
            ("metrics.listen", new.metricsListen != config.metricsListen),
            ("api", new.apiSocket != config.apiSocket || new.apiGroup != config.apiGroup),
            ("bgp", new.bgp != config.bgp),
        ]
        let needRestart = fixed.filter(\.1).map(\.0)
        guard needRestart.isEmpty else {
            logger.error("config not applied: these fields take a restart of the agent", metadata: [
                "fields": "\(needRestart.joined(separator: ", "))", "file": "\(configPath)",
            ])
            metrics.reloads(ok: false, seconds: Date().timeIntervalSince(started))
            return false
        }
        do {
            let now = Date()
            for warning in new.warnings {
                logger.warning("list file line skipped", metadata: ["line": "\(warning)"])
            }
            let changes = try Agent.apply(new, at: now, to: maps, root: root)
            scheduleInForce = new.scheduledInForce(at: now)
            config = new
            fileStamp = Agent.stamps(configPath, new.listFiles).merging(before) { _, old in old }
                .filter { $0.key == configPath || new.listFiles.contains($0.key) }
            anomalies.policy = new.anomaly
            bgp?.setPolicy(new.policy)
            limiter.perSecond = new.logPerSecond
            AgentLogHandler.setLevel(new.logLevel)
            logger.notice("config reloaded", metadata: [
                "trigger": "\(reason)", "changes": "\(changes.isEmpty ? "none" : changes.joined(separator: "; "))",
            ])
            metrics.reloads(ok: true, seconds: Date().timeIntervalSince(started))
            return true
        } catch {
            logger.error("config not applied (what was changed was undone)", metadata: ["error": "\(error)"])
            metrics.reloads(ok: false, seconds: Date().timeIntervalSince(started))
            return false
        }
    }

    /// Brings the maps to `config`'s policy (``FilterPolicy/apply(to:)``: only what differs, nothing unset on the
    /// way, undone if a step fails), holding the pin root's lock. Returns what changed, in words.
    static func apply(_ config: AgentConfig, at date: Date, to maps: FilterMaps, root: PinRoot) throws -> [String] {
        try root.locked { try config.effectivePolicy(at: date).apply(to: maps).changes }
    }

    /// At a window's edge, the scheduled destination rules that come into or go out of force: the filter's rule
    /// set switches with them (one bank switch).
    private func switchSchedule() {
        guard !config.scheduledDestinations.isEmpty else { return }
        let now = Date()
        let inForce = config.scheduledInForce(at: now)
        guard inForce != scheduleInForce else { return }
        do {
            let changes = try Agent.apply(config, at: now, to: maps, root: root)
            scheduleInForce = inForce
            metrics.destinationSwitches()
            logger.notice("destination rules switched at a window's edge", metadata: [
                "scheduled_in_force": "\(inForce.isEmpty ? "none" : inForce.map(\.description).joined(separator: ", "))",
                "changes": "\(changes.joined(separator: "; "))",
            ])
        } catch {
            logger.error("destination rules not switched (the rules before stay in force)", metadata: ["error": "\(error)"])
        }
    }

    /// Fingerprints (size, modification time, inode; "missing") of the config file and its list files.
    static func stamps(_ path: String, _ lists: [String]) -> [String: String] {
        var result: [String: String] = [:]
        for p in [path] + lists {
            var st = stat()
            result[p] = stat(p, &st) == 0 ? "\(st.st_size)/\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)/\(st.st_ino)" : "missing"
        }
        return result
    }

    /// Whether the config file or one of its list files changed since it was last read and is ready to be read
    /// again: the previous check (a second before) found it as it is now, so that a file being written is not read
    /// half-way (a block list cut short would lift the blocks of its missing lines). A file renamed into place is
    /// whole; one written in place is read once its writer has paused for a check.
    public func filesChanged() -> Bool {
        let now = Agent.stamps(configPath, config.listFiles)
        guard now != fileStamp else {
            pendingStamp = nil
            return false
        }
        defer { pendingStamp = now }
        return pendingStamp == now
    }

    // MARK: Polling

    /// One round: the XDP program's events, expired bans, counters and anomalies, metrics.
    public func poll() {
        let now = monotonicNanoseconds()
        let seconds = Double(now - lastPoll) / 1e9
        lastPoll = now
        switchSchedule()
        do {
            if let events {
                for event in events.drain() { handle(event) }
            }
            let counters = try maps.counters()
            if let last = lastCounters, seconds > 0 {
                metrics.add(counters, since: last)
                for alert in anomalies.observe(counters, since: last, seconds: seconds) {
                    metrics.anomaly(alert)
                    if limiter.allow() {
                        logger.warning("anomaly: \(alert.kind) of \(alert.trafficClass) packets", metadata: [
                            "class": "\(alert.trafficClass)", "kind": "\(alert.kind)",
                            "rate": .stringConvertible(Int(alert.rate)), "baseline": .stringConvertible(Int(alert.baseline)),
                        ])
                    }
                }
            } else {
                metrics.add(counters, since: Counters())
            }
            lastCounters = counters
            // What the destination rules, fraud checks, call counts and caller ID made of the INVITEs (not read
            // when none of them is on: the XDP program judges no INVITE then).
            let p = config.policy
            if !p.destinations.isEmpty || !config.scheduledDestinations.isEmpty || p.fraud.normalized.tracksCalls
                || p.callerID.normalized != CallerIDPolicy() {
                let outcomes = try maps.destinationOutcomes()
                metrics.destinations(outcomes, since: lastOutcomes ?? [:])
                lastOutcomes = outcomes
            }
            if config.inside != nil {
                let inside = try maps.insideCounts()
                metrics.inside(inside, since: lastInside ?? [:])
                lastInside = inside
            }
            // The bans XDP reported as it issued them, removed as each runs out: a lookup each, no walk.
            let swept = try expireReportedBans(now: now)
            if swept > 0 { logger.info("expired bans removed", metadata: ["count": .stringConvertible(swept)]) }
            // Housekeeping walks whole maps, which at full maps (262,144 bans, a million sources) is most of what
            // the agent costs: the bans every 10 s, or less often when a walk is slow (the ones no event reported
            // — the ring buffer was full, the operator's own, an agent restarted — are removed there; XDP already
            // lets a source whose ban ran out pass), the source map's occupancy every 60 s.
            if lastBanSweep == 0 || now - lastBanSweep >= banSweepInterval {
                lastBanSweep = now
                let started = monotonicNanoseconds()
                // Under the pin root's lock when it is free; when a CLI holds it, at the next round.
                if let (swept, active) = try root.lockedIfFree({ try maps.sweepAndCountBans(now: now) }) {
                    if swept > 0 { logger.info("expired bans removed", metadata: ["count": .stringConvertible(swept)]) }
                    metrics.bans(active: active)
                    // A walk of two full ban maps took about 115 ms on a slow 2-vCPU VM: the next one waits 200
                    // times as long as this one took, from 10 s up to a minute (half a percent of a CPU while a walk
                    // takes under 300 ms; a walk a minute beyond). Wall time: a starved machine walks less often.
                    banSweepInterval = min(60_000_000_000, max(10_000_000_000, 200 * (monotonicNanoseconds() - started)))
                } else {
                    lastBanSweep = 0
                }
            }
            if lastOccupancy == 0 || now - lastOccupancy >= 60_000_000_000 {
                lastOccupancy = now
                // One walk of the source map for its occupancy and for the known-source filter's bits, under the
                // pin root's lock: one rebuild at a time (two would zero the half the other just made current).
                // Not while the filter's bits are as the last walk left them (KnownSources.Mark), for up to ten
                // minutes: no source was added since whose bit was clear, and a full map at rest then costs a
                // count of the filter's bits, not a walk of a million entries. Skipping clears no bit, so no
                // source with state is ever taken for new.
                let walked = try root.lockedIfFree {
                    try KnownSources(maps).rebuild(unlessUnchangedSince: lastSourceWalk, now: now)
                }
                switch walked {
                case nil: lastOccupancy = 0
                case .some(nil): break
                case let walk??:
                    lastSourceWalk = (walk.mark, now)
                    metrics.occupancy(sources: walk.sources, capacity: try maps.maxSources())
                }
                metrics.trusted(try maps.trustedSources().filter { $0.untilNS > now }.count)
            }
            if let suppressed = limiter.takeSuppressed() {
                logger.notice("log lines suppressed by the rate limit", metadata: ["count": .stringConvertible(suppressed)])
            }
            metrics.healthy()
        } catch {
            logger.error("reading the filter's maps failed", metadata: ["error": "\(error)"])
        }
    }

    /// Removes the reported bans whose time is up (``noteExpiry(_:at:)``); how many it removed. Only when the
    /// earliest is due does it look through the list (in memory, no system call per entry that is not due).
    private func expireReportedBans(now: UInt64) throws -> Int {
        guard earliestExpiry <= now else { return 0 }
        var removed = 0
        var kept: [(expires: UInt64, address: SourceAddress)] = []
        kept.reserveCapacity(banExpiries.count)
        // Under the pin root's lock, as every writer of the settings (the API's bans, the CLI) is; when a CLI
        // holds it, at the next poll.
        let done: Void? = try root.lockedIfFree {
            for entry in banExpiries {
                if entry.expires <= now {
                    removed += try maps.removeExpiredBans(of: entry.address, now: now)
                } else {
                    kept.append(entry)
                }
            }
        }
        guard done != nil else { return 0 }
        banExpiries = kept
        earliestExpiry = kept.map(\.expires).min() ?? .max
        return removed
    }

    /// Remembers when a ban XDP reported runs out (bounded by the default ban map's capacity: the ban maps' walk finds
    /// the rest).
    private func noteExpiry(_ address: SourceAddress, at expires: UInt64) {
        guard expires != 0, banExpiries.count < FilterCapacity.defaultAutoBans else { return }
        banExpiries.append((expires, address))
        earliestExpiry = min(earliestExpiry, expires)
    }

    private func handle(_ event: FilterEvent) {
        let address = event.address
        if [.autoBan, .bruteForce, .scanner].contains(event.kind) {
            noteExpiry(address, at: event.expiresNS)
            bgp?.bansChanged()
        }
        // A source verified now must not stay announced.
        if event.kind == .verified { bgp?.bansChanged() }
        let trafficClass = event.trafficClass?.name ?? "?"
        let now = monotonicNanoseconds()
        let seconds = event.expiresNS > now ? Double(event.expiresNS - now) / 1e9 : 0
        switch event.kind {
        case .autoBan:
            metrics.banIssued(origin: "auto")
            if limiter.allow() {
                logger.warning("auto-banned a source that kept exceeding its limit", metadata: [
                    "source": "\(address)", "class": "\(trafficClass)", "drops": .stringConvertible(event.drops),
                    "offence": .stringConvertible(event.offence), "seconds": .stringConvertible(Int(seconds.rounded())),
                ])
            }
        case .bruteForce:
            metrics.banIssued(origin: "brute-force")
            if limiter.allow() {
                logger.warning("banned a source for failed authentications", metadata: [
                    "source": "\(address)", "failures": .stringConvertible(event.drops), "seconds": .stringConvertible(Int(seconds.rounded())),
                ])
            }
        case .verified:
            metrics.trustLearned()
            if limiter.allow() {
                logger.info("verified: the SIP server accepted a source's credentialed REGISTER or INVITE", metadata: [
                    "source": "\(address)", "seconds": .stringConvertible(Int(seconds.rounded())), "ttl": .stringConvertible(event.offence),
                ])
            }
        case .spared:
            let origin = event.sparedScanner ? "scanner" : "auto"
            metrics.banSpared(origin: origin)
            if limiter.allow() {
                logger.warning("not banned: the source is verified or allow-listed, and its address may be forged", metadata: [
                    "source": "\(address)", "class": "\(trafficClass)", "would-be": "\(origin)",
                ])
            }
        case .fraud:
            let kind = event.fraudKind ?? "?"
            metrics.fraudBlocked(kind: kind)
            if limiter.allow() {
                logger.warning("blocked a source for new calls: over its \(kind == "concurrent" ? "calls in progress" : "\(kind) calls a minute")", metadata: [
                    "source": "\(address)", "threshold_per_minute": .stringConvertible(event.drops), "kind": "\(kind)",
                    "seconds": .stringConvertible(Int(seconds.rounded())),
                ])
            }
        case .callerID:
            let action = event.callerIDEnforced ? "refused" : "flagged"
            if limiter.allow() {
                logger.warning("\(action) a call: its caller number is not one its source may present", metadata: [
                    "source": "\(address)", "caller": "\(event.callerNumber ?? "none in range")", "action": "\(action)",
                ])
            }
        case .quarantine:
            metrics.quarantined(strict: event.quarantineMadeStrict)
            if limiter.allow() {
                let message: Logger.Message = !event.quarantineMadeStrict
                    ? "quarantined a verified source's credentials: they failed answering no challenge sent to it (forged, or nonces fetched elsewhere)"
                    : "made a verified source's quarantine strict: in it, its credentials failed answering challenges to other methods than REGISTER (which a proxy may relay from a phone behind it); only those answering a REGISTER's challenge pass"
                logger.warning(message, metadata: [
                    "source": "\(address)", "failures": .stringConvertible(event.drops), "seconds": .stringConvertible(Int(seconds.rounded())),
                    "where": "\(!event.quarantineAway ? "at its pin" : "from other hop distances")",
                ])
            }
        case .spoofed:
            metrics.spoofedReported()
            if limiter.allow() {
                logger.warning("dropped packets claiming a verified or allow-listed address at another hop distance",
                               metadata: ["source": "\(address)", "class": "\(trafficClass)", "ttl": .stringConvertible(event.offence)])
            }
        case .dropSample:
            let reason = event.reason?.name ?? "?"
            metrics.dropSampled(trafficClass: trafficClass, reason: reason)
            logger.debug("sampled drop", metadata: ["source": "\(address)", "class": "\(trafficClass)",
                                                    "reason": "\(reason)", "of": .stringConvertible(event.drops)])
        case .scanner:
            metrics.banIssued(origin: "scanner")
            if limiter.allow() {
                logger.warning("banned a scanner", metadata: [
                    "source": "\(address)", "class": "\(trafficClass)", "seconds": .stringConvertible(Int(seconds.rounded())),
                ])
            }
        case .unknown:
            break
        }
    }

    /// Detaches the filter and removes its pins (`--detach-on-exit`).
    public func detach() throws {
        events = nil
        for uplink in config.externals where uplink != filter.interfaceName && (try? root.inspect(interfaceName: uplink)) != nil {
            try root.detach(interfaceName: uplink)
            logger.notice("detached the filter", metadata: ["interface": "\(uplink)"])
        }
        try root.detach(interfaceName: filter.interfaceName)
        logger.notice("detached the filter", metadata: ["interface": "\(filter.interfaceName)"])
    }
}

/// At most `perSecond` log lines a second about individual sources; the rest are counted and reported.
final class LogLimiter: @unchecked Sendable {
    var perSecond: Int
    private var second: UInt64 = 0
    private var used = 0
    private var suppressed = 0

    init(perSecond: Int) { self.perSecond = perSecond }

    func allow() -> Bool {
        let now = monotonicNanoseconds() / 1_000_000_000
        if now != second {
            second = now
            used = 0
        }
        used += 1
        if used <= perSecond { return true }
        suppressed += 1
        return false
    }

    /// The lines suppressed since the last call, if any.
    func takeSuppressed() -> Int? {
        defer { suppressed = 0 }
        return suppressed > 0 ? suppressed : nil
    }
}
