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
/// the end time 0, then withdrawn a second later: the peers tell a lifted ban from a route lost with a session.
///
/// Learning: `gobgp monitor` streams the FlowSpec RIB; a discard route made inside the AS and carrying
/// Floodgate's community becomes a peer ban (`fg_peer_bans`) until its end time (at most 30 days away). Its end
/// time 0 lifts it at once. A plain withdrawal (a session lost somewhere between the routers: split brain) leaves
/// it until its end, or for `hold` if it had none. Learned bans are never announced again (they are not in the ban
/// maps the export reads), and never drop allow-listed or verified sources.
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
    private var stopped = false
    private let finished = DispatchSemaphore(value: 0)

    /// Routes announced, as the daemon holds them (or as this thread made them since it last read them).
    private var announced: [RouteKey: Announced] = [:]
    /// Routes the daemon refused (while answering otherwise): not tried again before this time.
    private var refused: [RouteKey: UInt64] = [:]
    private var daemonUp = false
    private var lastRead: UInt64 = 0
    private var lastAttempt: UInt64 = 0
    private var tokens: Double
    private var lastRefill = monotonicNanoseconds()
    private var lastSessions: UInt64 = 0

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
        /// Announced again with end time 0 at this time (monotonic ns): withdrawn a second later.
        var liftedAt: UInt64?
        /// The FlowSpec match's ports, as announced (a withdrawal must name the same match).
        var ports: [UInt16]
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

    /// Stops the thread and its `gobgp monitor` children (waits up to 5 s for it).
    func stop() {
        lock.lock(); stopped = true; lock.unlock()
        _ = finished.wait(timeout: .now() + 5)
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
        if !daemonUp && now - lastAttempt >= 2_000_000_000 || daemonUp && now - lastRead >= 60_000_000_000 {
            lastAttempt = now
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
        // The sessions every 2 s: also how a daemon that went away is noticed when no route changes.
        if daemonUp && now - lastSessions >= 2_000_000_000 {
            lastSessions = now
            do {
                metrics.peers(up: try gobgp.sessions().filter(\.established).count)
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
                let expiry = p.expiry(asn: config.asn)
                found[RouteKey(network: n, rtbh: false)] = Announced(expiry: expiry, liftedAt: expiry == 0 ? 0 : nil, ports: p.ports)
            }
        }
        if !config.rtbh.isEmpty {
            for family in ["ipv4", "ipv6"] {
                for p in try gobgp.rib(family)
                where p.neighbor == nil && p.communities.contains(config.community) && p.communities.contains(BGPConfig.blackhole) {
                    if let n = CIDR(gobgp: p.prefix) { found[RouteKey(network: n, rtbh: true)] = Announced(expiry: nil, ports: []) }
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
        for source in try maps.trustedSources() where source.untilNS > now { protected.insert(try CIDR(source.address.description)) }
        var hosts: [CIDR: (expiry: UInt64?, origins: Set<String>)] = [:]
        for (address, ban) in bans where !protected.contains(address) { hosts[try CIDR(address.description)] = ban }
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
            let d = try desiredRoutes(now: now)
            desired = d.routes
            metrics.overCap(d.overCap)
        } catch {
            logger.error("BGP: reading the bans failed", metadata: ["error": "\(error)"])
            return
        }
        let elapsed = Double(now - lastRefill) / 1e9
        lastRefill = now
        tokens = min(Double(config.rate), tokens + elapsed * Double(config.rate))
        refused = refused.filter { $0.value > now }
        let nowUnix = UInt64(Date().timeIntervalSince1970)

        // 1. Lifted: FlowSpec routes announced again with end time 0 (peers lift their bans at once); RTBH
        //    routes withdrawn.
        let lift = announced.filter { desired[$0.key] == nil && $0.value.liftedAt == nil && refused[$0.key] == nil }.keys.sorted()
        // 2. New routes, routes lifted and banned again, and later ends.
        var announce: [RouteKey] = []
        for (key, want) in desired where refused[key] == nil {
            guard let have = announced[key] else { announce.append(key); continue }
            if have.liftedAt != nil || have.ports != config.ports && !key.rtbh {
                announce.append(key)
            } else if !key.rtbh, let end = want.expiry {
                // A later end: at least 5 s, or a tenth of the time that was left, later (an hour's ban renewed each
                // minute is not announced each minute).
                if have.expiry.map({ end > $0 + max(5, ($0 > nowUnix ? $0 - nowUnix : 0) / 10) }) ?? true { announce.append(key) }
            } else if !key.rtbh, want.expiry == nil, have.expiry != nil {
                announce.append(key)
            }
        }
        announce.sort()
        // 3. Lifted at least a second ago: withdrawn.
        let withdraw = announced.filter {
            desired[$0.key] == nil && $0.value.liftedAt.map { now - $0 >= 1_000_000_000 } == true && refused[$0.key] == nil
        }.keys.sorted()

        for key in lift {
            guard tokens >= 1 else { break }
            tokens -= 1
            let have = announced[key]!
            switch perform(key, {
                if key.rtbh { try gobgp.withdrawRTBH(key.network) } else {
                    try gobgp.announceFlowSpec(key.network, ports: have.ports, community: config.community, expiry: 0)
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
                announced[key]!.liftedAt = now
                announced[key]!.expiry = 0
                metrics.update(rtbh: false, announce: true)
                note("BGP: route lifted (end time 0; withdrawn in a second)", key, nil)
            }
        }
        for key in announce {
            guard tokens >= 1 else { break }
            tokens -= 1
            let expiry = desired[key]!.expiry
            let old = announced[key]
            switch perform(key, {
                if key.rtbh {
                    try gobgp.announceRTBH(key.network, nextHop: (key.network.isIPv4 ? config.nextHopV4 : config.nextHopV6)!,
                                           community: config.community)
                } else {
                    // A route announced with other ports (another config) is another route: withdraw it first.
                    if let old, old.ports != config.ports { try gobgp.withdrawFlowSpec(key.network, ports: old.ports) }
                    try gobgp.announceFlowSpec(key.network, ports: config.ports, community: config.community, expiry: expiry)
                }
            }) {
            case .daemonDown: return
            case .skipped: continue
            case .done: break
            }
            announced[key] = Announced(expiry: key.rtbh ? nil : expiry, liftedAt: nil, ports: key.rtbh ? [] : config.ports)
            metrics.update(rtbh: key.rtbh, announce: true)
            note(old == nil ? "BGP: route announced" : "BGP: route announced again", key, expiry)
        }
        for key in withdraw {
            guard tokens >= 1 else { break }
            tokens -= 1
            let have = announced[key]!
            switch perform(key, { try gobgp.withdrawFlowSpec(key.network, ports: have.ports) }) {
            case .daemonDown: return
            case .skipped: continue
            case .done: break
            }
            announced[key] = nil
            metrics.update(rtbh: false, announce: false)
            note("BGP: route withdrawn", key, nil)
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
        var set = pendingSet
        var remove = pendingRemove
        let nowUnix = UInt64(Date().timeIntervalSince1970)
        for p in monitorEvents.take() {
            guard p.neighbor != nil, p.communities.contains(config.community), let network = CIDR(gobgp: p.prefix) else { continue }
            consider(p, network, set: &set, remove: &remove, nowUnix: nowUnix)
        }
        if daemonUp, learnResyncDue != 0, now >= learnResyncDue {
            learnResyncDue = now + 30_000_000_000
            resyncLearned(set: &set, remove: &remove, nowUnix: nowUnix)
        }
        // Ended bans.
        for (network, entry) in learned where (entry.expiry.map { $0 <= nowUnix } ?? false) && set[network] == nil {
            remove.insert(network)
        }
        apply(set: set, remove: remove, now: now, nowUnix: nowUnix)
    }

    /// What a peer's route (or its withdrawal) does to the learned bans.
    private func consider(_ p: BGPPath, _ network: CIDR, set: inout [CIDR: Learned], remove: inout Set<CIDR>, nowUnix: UInt64) {
        let current = set[network] ?? (remove.contains(network) ? nil : learned[network])
        if p.withdrawal {
            // Withdrawn without being lifted: a session went down between here and its router, or its router
            // did. Kept until its end (split brain).
            if let current, !current.lost { set[network] = lost(current, nowUnix: nowUnix) }
            return
        }
        let expiry = p.expiry(asn: config.asn)
        if expiry == 0 {
            // Lifted by its router.
            if current != nil {
                remove.insert(network)
                set[network] = nil
            }
            return
        }
        if let entry = admit(p, network, expiry: expiry, isNew: current == nil, pending: set.count, nowUnix: nowUnix),
           entry != current {
            set[network] = entry
            remove.remove(network)
        }
    }

    private func lost(_ entry: Learned, nowUnix: UInt64) -> Learned {
        var e = entry
        e.lost = true
        e.expiry = e.expiry ?? nowUnix + config.holdSeconds
        return e
    }

    /// A learned route as a ban, or nil when refused (from another AS, not a discard, too wide, ended, over the
    /// cap). Its end is at most 30 days away.
    private func admit(_ p: BGPPath, _ network: CIDR, expiry: UInt64?, isNew: Bool, pending: Int, nowUnix: UInt64) -> Learned? {
        // Only routes made inside this AS: another AS (an upstream, a customer) that sends Floodgate's community,
        // by mistake or not, bans nothing here.
        if p.asPathLength > 0 { metrics.refused("foreign-as"); return nil }
        // Only what Floodgate announces: discard. A route that says otherwise (accept, redirect) bans nothing.
        if !p.discard { metrics.refused("not-discard"); return nil }
        // At most a /24 (/64): what aggregation makes. A wider route is some other router's business.
        if network.isIPv4 ? network.length < 24 : network.length < 64 { metrics.refused("too-wide"); return nil }
        if let expiry, expiry <= nowUnix { return nil }
        if isNew && learned.count + pending >= config.maxLearned { metrics.refused("cap"); return nil }
        return Learned(expiry: expiry.map { min($0, nowUnix + 30 * 86400) }, neighbor: p.neighbor)
    }

    /// Brings the learned bans to the RIB: adds what it holds; what it no longer holds went without being lifted
    /// (a missed withdrawal, or a ban of a previous run): kept until its end, as a lost one.
    private func resyncLearned(set: inout [CIDR: Learned], remove: inout Set<CIDR>, nowUnix: UInt64) {
        var seen = Set<CIDR>()
        var paths: [BGPPath] = []
        do {
            for family in ["ipv4-flowspec", "ipv6-flowspec"] { paths += try gobgp.rib(family) }
        } catch { return }
        for p in paths where p.neighbor != nil && p.communities.contains(config.community) {
            guard let network = CIDR(gobgp: p.prefix), seen.insert(network).inserted else { continue }
            consider(p, network, set: &set, remove: &remove, nowUnix: nowUnix)
        }
        for (network, entry) in learned where !seen.contains(network) && set[network] == nil && !remove.contains(network) && !entry.lost {
            set[network] = lost(entry, nowUnix: nowUnix)
        }
    }

    private func apply(set: [CIDR: Learned], remove: Set<CIDR>, now: UInt64, nowUnix: UInt64) {
        guard !set.isEmpty || !remove.isEmpty else { return }
        let bans = set.map { network, entry in
            PeerBan(network: network, expiresNS: entry.expiry.map { now + ($0 > nowUnix ? $0 - nowUnix : 0) * 1_000_000_000 })
        }
        do {
            // Under the pin root's lock when it is free; when a CLI holds it, at the next round.
            guard try root.lockedIfFree({ try maps.changePeerBans(set: bans, remove: Array(remove)) }) != nil else {
                pendingSet = set
                pendingRemove = remove
                return
            }
            pendingSet = [:]
            pendingRemove = []
            for (network, entry) in set {
                if learned[network] == nil && limiter.allow() {
                    logger.info("BGP: ban learned from a peer", metadata: [
                        "network": "\(network)", "peer": "\(entry.neighbor ?? "?")", "until": "\(entry.expiry.map { "\($0)" } ?? "lifted")"])
                } else if entry.lost && learned[network]?.lost == false && limiter.allow() {
                    logger.notice("BGP: a learned ban's route went without being lifted (a lost session?): kept until it ends",
                                  metadata: ["network": "\(network)", "until": "\(entry.expiry.map { "\($0)" } ?? "?")"])
                }
                learned[network] = entry
            }
            for network in remove where learned.removeValue(forKey: network) != nil && limiter.allow() {
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
                    now[ban.network] = set[ban.network] ?? learned[ban.network]
                        ?? Learned(expiry: ban.expiresNS.map { _ in nowUnix + config.holdSeconds }, neighbor: nil, lost: true)
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
