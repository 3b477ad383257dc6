import FloodgateCore
import Foundation
import Logging

/// Keeps gobgpd's routes in step with the filter's bans, and the filter's peer bans in step with the routes other
/// Floodgate routers announce. Runs on a thread of its own (a `gobgp` command takes milliseconds; the agent's poll
/// must not wait for it).
///
/// Export: every interval, the bans of the exported origins (less the never-exported: allow-listed, SIP servers,
/// verified, `never_export`) become routes: one per source, or one per /24 (/64) holding `aggregate` operator's
/// bans or more and nothing that must not be announced; at most `max_routes` (aggregates, the operator's bans and
/// routes already out first), changed at most `rate` times a second. What is announced is read back from the
/// daemon's RIB (at start, after the daemon was unreachable, and every minute), so a restarted agent announces
/// nothing twice and a restarted daemon gets every route again. A renewed ban keeps its route; a later end is
/// announced again (an update, never a withdrawal). A route whose ban is lifted is first announced again with
/// the end time 0, then withdrawn two seconds later: the peers tell a lifted ban from a route lost with a session.
///
/// Learning: `gobgp monitor` streams the FlowSpec RIB; a discard route made inside the AS and carrying
/// Floodgate's community, and that covers nothing this router protects (allow list, SIP servers, `never_export`),
/// becomes a peer ban (`fg_peer_bans`) until its end time (capped at 30 days away), or, without one, until lifted.
/// Its end time 0 lifts it at once. A plain withdrawal (a session lost somewhere between the routers: split
/// brain) leaves it until its end, or for `hold` if it had none. Learned bans are never announced again (they are
/// not in the ban maps the export reads), and never drop allow-listed or verified sources.
final class BGPSpeaker: @unchecked Sendable {
    let config: BGPConfig
    private let gobgp: GoBGP
    private let maps: FilterMaps
    private let root: PinRoot
    private let logger: Logger
    private let metrics: BGPMetrics
    private let limiter = LogLimiter(perSecond: 20)

    private let lock = NSLock()
    private var configuredProtected: [CIDR] = []
    private var configuredProtectedSet = NetworkSet([])
    private var stopped = false
    private let finished = DispatchSemaphore(value: 0)

    /// Routes announced, as the daemon holds them (or as this thread made them since it last read them).
    private var announced: [RouteKey: Announced] = [:]
    /// The last routes worked out, the policy generation then, when, and the first end among them.
    private var desiredCache: (generation: UInt64, at: UInt64, firstEnd: UInt64, routes: [RouteKey: Desired])?
    /// Set by the agent's thread when the filter issued a ban or verified a source.
    private var bansDidChange = false
    /// Routes the daemon refused (while answering otherwise): not tried again before this time.
    private var refused: [RouteKey: UInt64] = [:]
    private var daemonUp = false
    private var lastRead: UInt64 = 0
    private var lastAttempt: UInt64 = 0
    private var tokens: Double
    private var lastRefill = monotonicNanoseconds()
    private var lastSessions: UInt64 = 0
    /// The established sessions and since when, at the last check: a change (the daemon restarted between two
    /// checks, say) has the announced routes read back again.
    private var sessionStamp: [String: Int]?
    private var sessions: [BGPSession] = []
    private var rereadNeeded = false
    /// How long a lifted route stays before its withdrawal: longer than a reflector holds updates back (MRAI).
    static let liftGap: UInt64 = 2_000_000_000

    /// Learned bans by network.
    private var learned: [CIDR: Learned] = [:]
    /// Changes not yet written (the pin root's lock was busy).
    private var pendingSet: [CIDR: Learned] = [:]
    private var pendingRemove = Set<CIDR>()
    private let monitorEvents = EventQueue()
    private var monitors: [String: Process] = [:]
    private var lastMonitorStart: UInt64 = 0
    private var learnResyncDue: UInt64 = 0

    struct RouteKey: Hashable, Comparable, CustomStringConvertible {
        let network: CIDR
        let rtbh: Bool
        static func < (a: RouteKey, b: RouteKey) -> Bool { a.network == b.network ? !a.rtbh && b.rtbh : a.network < b.network }
        var description: String { "\(rtbh ? "rtbh" : "flowspec") \(network)" }
    }

    struct Announced {
        /// The end time carried (Unix seconds); nil: none.
        var expiry: UInt64?
        /// Announced again with end time 0 at this time (monotonic ns): withdrawn ``liftGap`` later.
        var liftedAt: UInt64?
        /// The FlowSpec match's ports and destination, as announced (a withdrawal must name the same match).
        var ports: [UInt16]
        var destination: CIDR?
    }

    struct Desired {
        var expiry: UInt64?
        /// Ranks it under the cap: an aggregate, the operator's, already announced.
        var aggregate: Bool
        var explicit: Bool
    }

    struct Learned: Equatable {
        /// When the ban ends (Unix seconds); nil: when its route is lifted.
        var expiry: UInt64?
        var neighbor: String?
        /// The route went without being lifted: kept until `expiry`.
        var lost = false
    }

    init(config: BGPConfig, maps: FilterMaps, root: PinRoot, logger: Logger, metrics: BGPMetrics, policy: FilterPolicy) {
        self.config = config
        gobgp = GoBGP(executable: config.gobgp, api: config.api)
        self.maps = maps
        self.root = root
        self.logger = logger
        self.metrics = metrics
        tokens = Double(config.rate)
        setPolicy(policy)
    }

    /// What the config trusts (allow list, SIP servers) and `never_export`: never announced, nor any network
    /// that holds one of them. (The filter's own allow list and servers, which a CLI may have changed, are read
    /// as well at each round.)
    func setPolicy(_ policy: FilterPolicy) {
        lock.lock(); defer { lock.unlock() }
        configuredProtected = Array(policy.allow) + Array(policy.servers) + config.neverExport
        configuredProtectedSet = NetworkSet(configuredProtected)
    }

    func start() {
        if config.learn {
            // The peer bans already in the filter (an agent restarted): kept until a read of the RIB says otherwise.
            if let existing = try? maps.peerBans() {
                let nowUnix = UInt64(Date().timeIntervalSince1970), now = monotonicNanoseconds()
                for ban in existing {
                    learned[ban.network] = Learned(
                        expiry: ban.expiresNS.map { $0 > now ? nowUnix + ($0 - now) / 1_000_000_000 : 0 }, neighbor: nil)
                }
            }
        } else {
            BGPSpeaker.clearPeerBans(maps: maps, root: root, logger: logger, why: "bgp.learn is off")
        }
        let t = Thread { [self] in
            loop()
            finished.signal()
        }
        t.name = "floodgate-bgp"
        t.start()
    }

    /// Removes every peer ban (learning is off, or BGP is): nothing else would ever lift them.
    static func clearPeerBans(maps: FilterMaps, root: PinRoot, logger: Logger, why: String) {
        guard let bans = try? maps.peerBans(), !bans.isEmpty else { return }
        do {
            try root.locked { try maps.changePeerBans(set: [], remove: bans.map(\.network)) }
            logger.notice("bans learned over BGP removed", metadata: ["count": "\(bans.count)", "why": "\(why)"])
        } catch {
            logger.error("removing the bans learned over BGP failed", metadata: ["error": "\(error)"])
        }
    }

    /// Stops the thread and its `gobgp monitor` children: waits for the route change under way (a `gobgp` command
    /// is killed after 10 s).
    func stop() {
        lock.lock(); stopped = true; lock.unlock()
        _ = finished.wait(timeout: .now() + 15)
    }

    /// The filter issued a ban or verified a source (the agent read its event): work the routes out again.
    func bansChanged() {
        lock.lock(); bansDidChange = true; lock.unlock()
    }

    private var isStopped: Bool { lock.lock(); defer { lock.unlock() }; return stopped }

    private func loop() {
        logger.notice("BGP: driving gobgpd", metadata: [
            "api": "\(config.api)", "community": "\(BGPConfig.communityText(config.community))",
            "export": "\(config.export.sorted().joined(separator: ","))", "rtbh": "\(config.rtbh.sorted().joined(separator: ","))",
            "learn": "\(config.learn)",
        ])
        while !isStopped {
            tick()
            var slept = 0
            while slept < config.intervalMilliseconds && !isStopped {
                Thread.sleep(forTimeInterval: 0.05)
                slept += 50
            }
        }
        for p in monitors.values where p.isRunning {
            p.terminate()
            p.waitUntilExit()
        }
    }

    func tick() {
        let now = monotonicNanoseconds()
        if !daemonUp && now - lastAttempt >= 2_000_000_000 || daemonUp && (rereadNeeded || now - lastRead >= 60_000_000_000) {
            lastAttempt = now
            rereadNeeded = false
            do {
                try readAnnounced()
                if !daemonUp {
                    logger.notice("BGP: gobgpd reachable; routes announced read back", metadata: ["routes": "\(announced.count)"])
                }
                daemonUp = true
                lastRead = now
                lastSessions = 0
            } catch {
                if daemonUp || lastRead == 0 {
                    logger.error("BGP: gobgpd unreachable: the filter keeps its bans here; routes are announced when it is back",
                                 metadata: ["error": "\(error)"])
                    lastRead = now
                }
                daemonUp = false
            }
        }
        // The sessions every 10 s (2 s without learning): also how a daemon that went away is noticed when no route
        // changes. A monitor that ended (its daemon gone, most likely) has them checked at once. (A `gobgp`
        // process costs about 12 ms of CPU: every 2 s, that alone was 0.6% of a CPU.)
        if daemonUp && monitors.values.contains(where: { !$0.isRunning }) { lastSessions = 0 }
        if daemonUp && now - lastSessions >= (config.learn ? 10_000_000_000 : 2_000_000_000) {
            lastSessions = now
            do {
                sessions = try gobgp.sessions()
                let stamp = Dictionary(sessions.filter(\.established).map { ($0.address, $0.upSince) }, uniquingKeysWith: { a, _ in a })
                if let old = sessionStamp, old != stamp { rereadNeeded = true }
                sessionStamp = stamp
                metrics.peers(up: stamp.count)
            } catch {
                failed(error)
            }
        }
        metrics.daemon(up: daemonUp)
        if config.learn { learn(now: now) }
        if daemonUp { export(now: now) }
    }

    // MARK: Export

    private func readAnnounced() throws {
        var found: [RouteKey: Announced] = [:]
        for family in ["ipv4-flowspec", "ipv6-flowspec"] {
            for p in try gobgp.rib(family) where p.neighbor == nil && p.communities.contains(config.community) {
                guard let n = CIDR(gobgp: p.prefix) else { continue }
                let key = RouteKey(network: n, rtbh: false)
                let expiry = p.expiry(asn: config.asn)
                // A lifted route keeps its time (or, new to this run, starts it now): withdrawn after the gap.
                found[key] = Announced(expiry: expiry, liftedAt: expiry == 0 ? announced[key]?.liftedAt ?? monotonicNanoseconds() : nil,
                                       ports: p.ports, destination: p.destination.flatMap { CIDR(gobgp: $0) })
            }
        }
        if !config.rtbh.isEmpty {
            for family in ["ipv4", "ipv6"] {
                for p in try gobgp.rib(family)
                where p.neighbor == nil && p.communities.contains(config.community) && p.communities.contains(BGPConfig.blackhole) {
                    if let n = CIDR(gobgp: p.prefix) {
                        found[RouteKey(network: n, rtbh: true)] = Announced(expiry: nil, ports: [], destination: nil)
                    }
                }
            }
        }
        announced = found
        metrics.routes(flowspec: found.keys.filter { !$0.rtbh }.count, rtbh: found.keys.filter(\.rtbh).count)
    }

    /// The routes the bans call for now (``BGPSpeaker``'s export rule), and how many the cap left out.
    func desiredRoutes(now: UInt64) throws -> (routes: [RouteKey: Desired], overCap: Int) {
        let nowUnix = UInt64(Date().timeIntervalSince1970)
        func unix(_ ns: UInt64?) -> UInt64? { ns.map { nowUnix + ($0 > now ? ($0 - now + 999_999_999) / 1_000_000_000 : 0) } }
        // Each exported ban: its end (Unix seconds, nil: none) and origins. An address may have a ban in each
        // map: the later end, and every origin.
        var bans: [SourceAddress: (expiry: UInt64?, origins: Set<String>)] = [:]
        func add(_ address: SourceAddress, _ expiry: UInt64?, _ origin: String) {
            if let old = bans[address] {
                let later: UInt64? = old.expiry == nil || expiry == nil ? nil : max(old.expiry!, expiry!)
                bans[address] = (later, old.origins.union([origin]))
            } else {
                bans[address] = (expiry, [origin])
            }
        }
        for ban in try maps.bans() where config.export.contains(ban.origin) {
            if let e = ban.expiresNS, e <= now { continue }
            add(ban.address, unix(ban.expiresNS), ban.origin)
        }
        if config.export.contains("fraud") {
            for block in try maps.fraudBlocks(now: now) { add(block.address, unix(block.untilNS), "fraud") }
        }
        guard !bans.isEmpty else { return ([:], 0) }
        let configured: [CIDR] = { lock.lock(); defer { lock.unlock() }; return configuredProtected }()
        var protected = NetworkSet(configured + (try maps.cidrs(in: .allow)) + (try maps.servers()))
        for source in try maps.trustedSources() where source.untilNS > now { protected.insert(CIDR(host: source.address)) }
        var hosts: [CIDR: (expiry: UInt64?, origins: Set<String>)] = [:]
        for (address, ban) in bans where !protected.contains(address) { hosts[CIDR(host: address)] = ban }
        // Aggregates: a /24 (/64) with enough of the operator's bans, holding nothing that must not be announced.
        var groups: [CIDR: [CIDR]] = [:]
        if config.aggregate > 0 {
            for (host, ban) in hosts where !ban.origins.isDisjoint(with: BGPConfig.unforgeable) {
                groups[try CIDR.network(of: host.address, length: host.isIPv4 ? 24 : 64), default: []].append(host)
            }
        }
        var routes: [(key: RouteKey, route: Desired)] = []
        var covered = Set<CIDR>()
        for (network, members) in groups where members.count >= config.aggregate && !protected.overlaps(network) {
            let expiries = members.map { hosts[$0]!.expiry }
            let expiry: UInt64? = expiries.contains { $0 == nil } ? nil : expiries.compactMap { $0 }.max()
            routes.append((RouteKey(network: network, rtbh: false), Desired(expiry: expiry, aggregate: true, explicit: true)))
            if members.allSatisfy({ !hosts[$0]!.origins.isDisjoint(with: config.rtbh) }) && hasNextHop(network) {
                routes.append((RouteKey(network: network, rtbh: true), Desired(expiry: nil, aggregate: true, explicit: true)))
            }
            covered.formUnion(members)
        }
        for (host, ban) in hosts where !covered.contains(host) {
            let explicit = !ban.origins.isDisjoint(with: BGPConfig.unforgeable)
            routes.append((RouteKey(network: host, rtbh: false), Desired(expiry: ban.expiry, aggregate: false, explicit: explicit)))
            if !ban.origins.isDisjoint(with: config.rtbh) && hasNextHop(host) {
                routes.append((RouteKey(network: host, rtbh: true), Desired(expiry: nil, aggregate: false, explicit: explicit)))
            }
        }
        // Over the cap: aggregates first (each covers many), then the operator's bans (no forged packet pushes one
        // out), then routes already out (no churn), then in address order.
        func rank(_ r: (key: RouteKey, route: Desired)) -> (Int, Int, Int) {
            (r.route.aggregate ? 0 : 1, r.route.explicit ? 0 : 1, announced[r.key] != nil ? 0 : 1)
        }
        routes.sort { rank($0) != rank($1) ? rank($0) < rank($1) : $0.key < $1.key }
        let kept = routes.prefix(config.maxRoutes)
        return (Dictionary(kept.map { ($0.key, $0.route) }, uniquingKeysWith: { a, _ in a }), routes.count - kept.count)
    }

    private func hasNextHop(_ network: CIDR) -> Bool { network.isIPv4 ? config.nextHopV4 != nil : config.nextHopV6 != nil }

    private func export(now: UInt64) {
        let desired: [RouteKey: Desired]
        do {
            // Worked out again when the policy generation moved (the operator's bans, lists, servers), when the
            // filter issued a ban or verified a source (its events, through the agent), when one of the bans ends,
            // and every 15 s (a lost event, fraud blocks); else the last answer stands. At 10,000 bans, working it
            // out takes some 50 ms, and a walk of the ban maps to tell whether anything changed cost more than
            // that at two walks a second.
            let generation = try maps.policyGeneration()
            let nowUnix = UInt64(Date().timeIntervalSince1970)
            let changed: Bool = { lock.lock(); defer { bansDidChange = false; lock.unlock() }; return bansDidChange }()
            if let cached = desiredCache, !changed, cached.generation == generation, now >= cached.at,
               now - cached.at < 15_000_000_000, nowUnix < cached.firstEnd {
                desired = cached.routes
            } else {
                let d = try desiredRoutes(now: now)
                logger.debug("BGP: routes worked out", metadata: [
                    "routes": "\(d.routes.count)", "over_cap": "\(d.overCap)",
                    "ms": "\((monotonicNanoseconds() - now) / 1_000_000)"])
                desired = d.routes
                metrics.overCap(d.overCap)
                desiredCache = (generation, now, d.routes.values.compactMap(\.expiry).min() ?? .max, d.routes)
            }
        } catch {
            logger.error("BGP: reading the bans failed", metadata: ["error": "\(error)"])
            return
        }
        let elapsed = Double(now - lastRefill) / 1e9
        lastRefill = now
        tokens = min(Double(config.rate), tokens + elapsed * Double(config.rate))
        refused = refused.filter { $0.value > now }
        let nowUnix = UInt64(Date().timeIntervalSince1970)
        func destination(_ n: CIDR) -> CIDR? { n.isIPv4 ? config.destinationV4 : config.destinationV6 }

        // 1. Lifted: FlowSpec routes announced again with end time 0 (peers lift their bans at once); RTBH
        //    routes withdrawn. First: an unbanned source must not wait behind new bans.
        let lift = announced.filter { desired[$0.key] == nil && $0.value.liftedAt == nil && refused[$0.key] == nil }.keys.sorted()
        // 2. Lifted at least the gap ago: withdrawn (before new routes, so that the routes out stay near the cap).
        let withdraw = announced.filter {
            desired[$0.key] == nil && $0.value.liftedAt.map { now >= $0 && now - $0 >= BGPSpeaker.liftGap } == true
                && refused[$0.key] == nil
        }.keys.sorted()
        // 3. New routes, routes lifted and banned again, later ends; in the cap's order (the operator's first).
        var announce: [RouteKey] = []
        for (key, want) in desired where refused[key] == nil {
            guard let have = announced[key] else { announce.append(key); continue }
            if have.liftedAt != nil || !key.rtbh && (have.ports != config.ports || have.destination != destination(key.network)) {
                announce.append(key)
            } else if !key.rtbh, let end = want.expiry {
                // A later end: at least 5 s, or a tenth of the time that was left, later (an hour's ban renewed each
                // minute is not announced each minute).
                if have.expiry.map({ end > $0 + max(5, ($0 > nowUnix ? $0 - nowUnix : 0) / 10) }) ?? true { announce.append(key) }
            } else if !key.rtbh, want.expiry == nil, have.expiry != nil {
                announce.append(key)
            }
        }
        func rank(_ k: RouteKey) -> (Int, Int) { (desired[k]!.aggregate ? 0 : 1, desired[k]!.explicit ? 0 : 1) }
        announce.sort { rank($0) != rank($1) ? rank($0) < rank($1) : $0 < $1 }

        for key in lift {
            guard tokens >= 1, !isStopped else { break }
            tokens -= 1
            let have = announced[key]!
            switch perform(key, {
                if key.rtbh { try gobgp.withdrawRTBH(key.network) } else {
                    try gobgp.announceFlowSpec(key.network, destination: have.destination, ports: have.ports,
                                               community: config.community, extra: config.extraCommunities, expiry: 0)
                }
            }) {
            case .daemonDown: return
            case .skipped: continue
            case .done: break
            }
            if key.rtbh {
                announced[key] = nil
                metrics.update(rtbh: true, announce: false)
                note("BGP: route withdrawn", key, nil)
            } else {
                // The gap runs from when the daemon took the lift, not from the start of the round.
                announced[key]!.liftedAt = monotonicNanoseconds()
                announced[key]!.expiry = 0
                metrics.update(rtbh: false, announce: true)
                note("BGP: route lifted (end time 0; withdrawn in two seconds)", key, nil)
            }
        }
        for key in withdraw {
            guard tokens >= 1, !isStopped else { break }
            tokens -= 1
            let have = announced[key]!
            switch perform(key, { try gobgp.withdrawFlowSpec(key.network, destination: have.destination, ports: have.ports) }) {
            case .daemonDown: return
            case .skipped: continue
            case .done: break
            }
            announced[key] = nil
            metrics.update(rtbh: false, announce: false)
            note("BGP: route withdrawn", key, nil)
        }
        for key in announce {
            guard tokens >= 1, !isStopped else { break }
            tokens -= 1
            let expiry = desired[key]!.expiry
            let old = announced[key]
            let dest = destination(key.network)
            switch perform(key, {
                if key.rtbh {
                    try gobgp.announceRTBH(key.network, nextHop: (key.network.isIPv4 ? config.nextHopV4 : config.nextHopV6)!,
                                           community: config.community, extra: config.extraCommunities)
                } else {
                    // A route announced with another match (another config) is another route: withdraw it first.
                    if let old, old.ports != config.ports || old.destination != dest {
                        try gobgp.withdrawFlowSpec(key.network, destination: old.destination, ports: old.ports)
                    }
                    try gobgp.announceFlowSpec(key.network, destination: dest, ports: config.ports, community: config.community,
                                               extra: config.extraCommunities, expiry: expiry)
                }
            }) {
            case .daemonDown: return
            case .skipped: continue
            case .done: break
            }
            announced[key] = Announced(expiry: key.rtbh ? nil : expiry, liftedAt: nil, ports: key.rtbh ? [] : config.ports,
                                       destination: key.rtbh ? nil : dest)
            metrics.update(rtbh: key.rtbh, announce: true)
            note(old == nil ? "BGP: route announced" : "BGP: route announced again", key, expiry)
        }
        if let n = limiter.takeSuppressed() { logger.info("BGP: route changes not logged (rate limit)", metadata: ["count": "\(n)"]) }
        metrics.routes(flowspec: announced.keys.filter { !$0.rtbh }.count, rtbh: announced.keys.filter(\.rtbh).count)
    }

    private func note(_ message: Logger.Message, _ key: RouteKey, _ expiry: UInt64?) {
        guard limiter.allow() else { return }
        var metadata: Logger.Metadata = ["route": "\(key)"]
        if let expiry { metadata["until"] = "\(expiry)" }
        logger.info(message, metadata: metadata)
    }

    enum Outcome { case done, skipped, daemonDown }

    /// Runs one route change. A daemon that answers otherwise refused this route: it is left for a minute and the
    /// rest go on (skipped). One that doesn't answer is down: the round ends.
    private func perform(_ key: RouteKey, _ change: () throws -> Void) -> Outcome {
        do {
            try change()
            return .done
        } catch {
            if (try? gobgp.sessions()) != nil {
                refused[key] = monotonicNanoseconds() + 60_000_000_000
                logger.error("BGP: gobgpd refused a route: tried again in a minute", metadata: ["route": "\(key)", "error": "\(error)"])
                return .skipped
            }
            failed(error)
            return .daemonDown
        }
    }

    private func failed(_ error: Error) {
        logger.error("BGP: gobgpd refused a request or is unreachable: the filter keeps its bans here; routes are announced when it is back",
                     metadata: ["error": "\(error)"])
        daemonUp = false
        lastAttempt = monotonicNanoseconds()
        metrics.daemon(up: false)
        metrics.peers(up: 0)
    }

    // MARK: Learning

    private func learn(now: UInt64) {
        // The monitors: one per FlowSpec family, started again (at most every 2 s) when one ends.
        if daemonUp, monitors.values.contains(where: { !$0.isRunning }) || monitors.count < 2, now - lastMonitorStart >= 2_000_000_000 {
            lastMonitorStart = now
            for family in ["ipv4-flowspec", "ipv6-flowspec"] where !(monitors[family]?.isRunning ?? false) {
                startMonitor(family)
            }
            learnResyncDue = now + 1_000_000_000
        }
        var change = Change(set: pendingSet, remove: pendingRemove)
        let nowUnix = UInt64(Date().timeIntervalSince1970)
        for p in monitorEvents.take() {
            guard p.neighbor != nil, p.communities.contains(config.community), let network = CIDR(gobgp: p.prefix) else { continue }
            if p.withdrawal {
                // Withdrawn without being lifted: a session went down between here and its router, or its router
                // did. Kept until its end (split brain). (What another AS withdraws was never learned.)
                if p.asPathLength == 0, let current = change.current(network, learned), !current.lost {
                    change.put(network, lost(current, nowUnix: nowUnix), learned)
                }
            } else {
                consider([p], network, &change, nowUnix: nowUnix)
            }
        }
        if daemonUp, learnResyncDue != 0, now >= learnResyncDue {
            learnResyncDue = now + 30_000_000_000
            resyncLearned(&change, nowUnix: nowUnix)
        }
        // Ended bans.
        for (network, entry) in learned where (entry.expiry.map { $0 <= nowUnix } ?? false) && change.set[network] == nil {
            change.drop(network)
        }
        apply(change, now: now, nowUnix: nowUnix)
    }

    /// The learned bans to write: set (new, renewed, lost) and removed; and how many of the set are new (the cap).
    struct Change {
        var set: [CIDR: Learned]
        var remove: Set<CIDR>
        var added = 0

        init(set: [CIDR: Learned], remove: Set<CIDR>) {
            self.set = set
            self.remove = remove
        }

        func current(_ network: CIDR, _ learned: [CIDR: Learned]) -> Learned? {
            set[network] ?? (remove.contains(network) ? nil : learned[network])
        }

        mutating func put(_ network: CIDR, _ entry: Learned, _ learned: [CIDR: Learned]) {
            if set[network] == nil && learned[network] == nil { added += 1 }
            set[network] = entry
            remove.remove(network)
        }

        mutating func drop(_ network: CIDR) {
            set[network] = nil
            remove.insert(network)
        }
    }

    /// What the paths a peer holds for `network` (one from the monitor, or all of them from a read of the RIB)
    /// do to its learned ban. Only admissible paths count (made inside the AS, discard, not too wide, covering
    /// nothing protected): a path that bans wins over one that lifts; a lift (end time 0) removes the ban.
    private func consider(_ paths: [BGPPath], _ network: CIDR, _ change: inout Change, nowUnix: UInt64) {
        let usable = paths.filter { admissible($0, network) }
        guard !usable.isEmpty else { return }
        let current = change.current(network, learned)
        let banning = usable.filter { $0.expiry(asn: config.asn) != 0 }
        guard !banning.isEmpty else {
            if current != nil { change.drop(network) }  // lifted by its router
            return
        }
        // The latest end of them (none: until lifted).
        let ends = banning.map { $0.expiry(asn: config.asn) }
        let expiry: UInt64? = ends.contains { $0 == nil } ? nil : ends.compactMap { $0 }.max()
        if let expiry, expiry <= nowUnix { return }
        if current == nil && learned.count + change.added >= config.maxLearned {
            metrics.refused("cap")
            return
        }
        let entry = Learned(expiry: expiry.map { min($0, nowUnix + 30 * 86400) }, neighbor: banning[0].neighbor)
        if entry != current { change.put(network, entry, learned) }
    }

    /// Whether a peer's path may ban (or lift) anything here: made inside this AS (another AS, an upstream or a
    /// customer, that sends Floodgate's community, by mistake or not, bans nothing), discard (a route that says
    /// otherwise bans nothing), at most a /24 (/64: what aggregation makes), and covering nothing this router's
    /// config protects (allow list, SIP servers, never_export).
    private func admissible(_ p: BGPPath, _ network: CIDR) -> Bool {
        if p.asPathLength > 0 { metrics.refused("foreign-as"); return false }
        if !p.discard { metrics.refused("not-discard"); return false }
        if network.isIPv4 ? network.length < 24 : network.length < 64 { metrics.refused("too-wide"); return false }
        let protected: NetworkSet = { lock.lock(); defer { lock.unlock() }; return configuredProtectedSet }()
        if protected.overlaps(network) { metrics.refused("protected"); return false }
        return true
    }

    private func lost(_ entry: Learned, nowUnix: UInt64) -> Learned {
        var e = entry
        e.lost = true
        e.expiry = e.expiry ?? nowUnix + config.holdSeconds
        return e
    }

    /// Brings the learned bans to the RIB: adds what it holds, lifts what it lifts. What it no longer holds went
    /// without being lifted (a missed withdrawal, or a ban of a previous run): kept until its end, as a lost one;
    /// but only once every session has been up 10 s (a daemon just started is still filling its RIB).
    private func resyncLearned(_ change: inout Change, nowUnix: UInt64) {
        var byNetwork: [CIDR: [BGPPath]] = [:]
        do {
            for family in ["ipv4-flowspec", "ipv6-flowspec"] {
                for p in try gobgp.rib(family) where p.neighbor != nil && p.communities.contains(config.community) {
                    if let network = CIDR(gobgp: p.prefix) { byNetwork[network, default: []].append(p) }
                }
            }
            sessions = try gobgp.sessions()
        } catch { return }
        for (network, paths) in byNetwork { consider(paths, network, &change, nowUnix: nowUnix) }
        let nowSeconds = Int(Date().timeIntervalSince1970)
        let settled = !sessions.isEmpty && sessions.allSatisfy { $0.established && nowSeconds - $0.upSince >= 10 }
        guard settled else { return }
        for (network, entry) in learned where byNetwork[network] == nil && change.set[network] == nil
            && !change.remove.contains(network) && !entry.lost {
            change.put(network, lost(entry, nowUnix: nowUnix), learned)
        }
    }

    private func apply(_ change: Change, now: UInt64, nowUnix: UInt64) {
        guard !change.set.isEmpty || !change.remove.isEmpty else { return }
        let bans = change.set.map { network, entry in
            PeerBan(network: network, expiresNS: entry.expiry.map { now + ($0 > nowUnix ? $0 - nowUnix : 0) * 1_000_000_000 })
        }
        do {
            // Under the pin root's lock when it is free; when a CLI holds it, at the next round.
            guard try root.lockedIfFree({ try maps.changePeerBans(set: bans, remove: Array(change.remove)) }) != nil else {
                pendingSet = change.set
                pendingRemove = change.remove
                return
            }
            pendingSet = [:]
            pendingRemove = []
            for (network, entry) in change.set {
                if learned[network] == nil && limiter.allow() {
                    logger.info("BGP: ban learned from a peer", metadata: [
                        "network": "\(network)", "peer": "\(entry.neighbor ?? "?")", "until": "\(entry.expiry.map { "\($0)" } ?? "lifted")"])
                } else if entry.lost && learned[network]?.lost == false && limiter.allow() {
                    logger.notice("BGP: a learned ban's route went without being lifted (a lost session?): kept until it ends",
                                  metadata: ["network": "\(network)", "until": "\(entry.expiry.map { "\($0)" } ?? "?")"])
                }
                learned[network] = entry
            }
            for network in change.remove where learned.removeValue(forKey: network) != nil && limiter.allow() {
                logger.info("BGP: learned ban lifted", metadata: ["network": "\(network)"])
            }
        } catch {
            // Part may have been written (a full map): take the map as it is, so nothing in it goes untracked.
            logger.error("BGP: writing the learned bans failed", metadata: ["error": "\(error)"])
            pendingSet = [:]
            pendingRemove = []
            if let inMap = try? maps.peerBans() {
                var now = [CIDR: Learned]()
                for ban in inMap {
                    now[ban.network] = change.set[ban.network] ?? learned[ban.network]
                        ?? Learned(expiry: nowUnix + config.holdSeconds, neighbor: nil, lost: true)
                }
                learned = now
            }
        }
        metrics.learned(learned.count)
    }

    private func startMonitor(_ family: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: config.gobgp)
        process.arguments = gobgp.base + ["monitor", "global", "rib", "-a", family, "--current", "-j"]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch {
            logger.error("BGP: cannot run gobgp monitor", metadata: ["error": "\(error)"])
            return
        }
        if let old = monitors[family], !old.isRunning { old.waitUntilExit() }
        monitors[family] = process
        let queue = monitorEvents
        let handle = out.fileHandleForReading
        Thread.detachNewThread {
            var buffer = Data()
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                buffer.append(chunk)
                while let nl = buffer.firstIndex(of: 10) {
                    let line = String(decoding: buffer[buffer.startIndex..<nl], as: UTF8.self)
                    buffer.removeSubrange(buffer.startIndex...nl)
                    queue.add(GoBGP.paths(fromMonitorLine: line))
                }
            }
        }
    }
}

/// Paths the monitor threads read, for the speaker's thread.
private final class EventQueue: @unchecked Sendable {
    private let lock = NSLock()
    private var paths: [BGPPath] = []
    func add(_ new: [BGPPath]) { lock.lock(); paths += new; lock.unlock() }
    func take() -> [BGPPath] { lock.lock(); defer { paths = []; lock.unlock() }; return paths }
}

/// Networks, for "does one of them hold this address" and "does one overlap this network" without a walk of all
/// of them: a set of network addresses per prefix length.
struct NetworkSet {
    private var byLength: [Int: Set<SourceAddress>] = [:]
    private var all: [CIDR] = []

    init(_ networks: [CIDR]) { for n in networks { insert(n) } }

    mutating func insert(_ n: CIDR) {
        byLength[n.keyLength, default: []].insert(n.address)
        all.append(n)
    }

    func contains(_ address: SourceAddress) -> Bool {
        byLength.contains { length, set in set.contains(CIDR.masked(address, length)) }
    }

    /// Whether a network of the set holds `network` or lies inside it.
    func overlaps(_ network: CIDR) -> Bool {
        if byLength.contains(where: { length, set in length <= network.keyLength && set.contains(CIDR.masked(network.address, length)) }) {
            return true
        }
        return all.contains { $0.keyLength > network.keyLength && network.contains($0.address) }
    }
}

extension CIDR {
    /// The network of `length` (in the family's terms) that holds `address`.
    static func network(of address: SourceAddress, length: Int) throws -> CIDR {
        try CIDR("\(CIDR.masked(address, address.isIPv4 ? 96 + length : length))/\(length)")
    }
}
