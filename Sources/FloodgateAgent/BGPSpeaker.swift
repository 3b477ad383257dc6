import FloodgateCore
import Foundation
import Logging

/// Keeps gobgpd's routes in step with the filter's bans, and the filter's peer bans in step with the routes other
/// Floodgate routers announce. Runs on a thread of its own (a `gobgp` command takes milliseconds; the agent's poll
/// must not wait for it).
///
/// Export: every interval, the bans of the exported origins (less the never-exported: allow-listed, SIP servers,
/// verified, `never_export`) become routes: one per source, or one per /24 (/64) holding `aggregate` bans or more
/// and nothing that must not be announced; at most `max_routes`, announced and withdrawn at most `rate` a second.
/// What is announced is read back from the daemon's RIB (at start, after the daemon was unreachable, and every
/// minute), so a restarted agent announces nothing twice and a restarted daemon gets every route again. A renewed
/// ban keeps its route; only a later end time is announced again (an update, never a withdrawal).
///
/// Learning: `gobgp monitor` streams the FlowSpec RIB; a route from a peer carrying Floodgate's community becomes a
/// peer ban (`fg_peer_bans`) until its end time, or until it is withdrawn while the session it came over is up. A
/// withdrawal because a session went down (split brain) leaves the ban until its end. Learned bans are never
/// announced again (they are not in the ban maps this reads), and never drop allow-listed or verified sources.
final class BGPSpeaker: @unchecked Sendable {
    let config: BGPConfig
    private let gobgp: GoBGP
    private let maps: FilterMaps
    private let root: PinRoot
    private let logger: Logger
    private let metrics: BGPMetrics
    private let limiter = LogLimiter(perSecond: 20)

    private let lock = NSLock()
    private var protectedNetworks: [CIDR] = []
    private var stopped = false
    private var thread: Thread?

    /// Routes announced, as the daemon holds them (or as this thread made them since it last read them).
    private var announced: [RouteKey: UInt64?] = [:]
    private var daemonUp = false
    private var lastRead: UInt64 = 0
    private var tokens: Double
    private var lastRefill = monotonicNanoseconds()
    private var lastSessions: UInt64 = 0
    private var sessions: [BGPSession] = []

    /// Learned bans by network: when they end (Unix seconds, nil: until withdrawn), the peer, when learned.
    private var learned: [CIDR: Learned] = [:]
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

    struct Learned {
        var expiry: UInt64?
        var neighbor: String?
        var at: UInt64
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
    /// that holds one of them.
    func setPolicy(_ policy: FilterPolicy) {
        lock.lock(); defer { lock.unlock() }
        protectedNetworks = Array(policy.allow) + Array(policy.servers) + config.neverExport
    }

    func start() {
        // The peer bans already in the filter (an agent restarted): kept until a read of the RIB says otherwise.
        if let existing = try? maps.peerBans() {
            let nowUnix = UInt64(Date().timeIntervalSince1970), now = monotonicNanoseconds()
            for ban in existing {
                learned[ban.network] = Learned(expiry: ban.expiresNS.map { $0 > now ? nowUnix + ($0 - now) / 1_000_000_000 : 0 },
                                               neighbor: nil, at: 0)
            }
        }
        let t = Thread { [self] in loop() }
        t.name = "floodgate-bgp"
        thread = t
        t.start()
    }

    func stop() {
        lock.lock(); stopped = true; lock.unlock()
        for p in monitors.values where p.isRunning { p.terminate() }
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
            Thread.sleep(forTimeInterval: Double(config.intervalMilliseconds) / 1000)
        }
        for p in monitors.values where p.isRunning { p.terminate() }
    }

    func tick() {
        let now = monotonicNanoseconds()
        if !daemonUp || now - lastRead >= 60_000_000_000 {
            do {
                try readAnnounced()
                if !daemonUp {
                    logger.notice("BGP: gobgpd reachable; routes announced", metadata: ["routes": "\(announced.count)"])
                }
                daemonUp = true
                lastRead = now
            } catch {
                if daemonUp || lastRead == 0 {
                    logger.error("BGP: gobgpd unreachable: the filter keeps its bans here; routes are announced when it is back",
                                 metadata: ["error": "\(error)"])
                    lastRead = now
                }
                daemonUp = false
            }
        }
        metrics.daemon(up: daemonUp)
        if daemonUp {
            // The sessions every 2 s: also how a daemon that went away is noticed when no route changes.
            if now - lastSessions >= 2_000_000_000 {
                lastSessions = now
                do {
                    sessions = try gobgp.sessions()
                    metrics.peers(up: sessions.filter(\.established).count)
                } catch {
                    failed(error)
                    return
                }
            }
            export(now: now)
        }
        if config.learn { learn(now: now) }
    }

    // MARK: Export

    private func readAnnounced() throws {
        var found: [RouteKey: UInt64?] = [:]
        for family in ["ipv4-flowspec", "ipv6-flowspec"] {
            for p in try gobgp.rib(family) where p.neighbor == nil && p.communities.contains(config.community) {
                if let n = CIDR(gobgp: p.prefix) { found[RouteKey(network: n, rtbh: false)] = p.expiry(asn: config.asn) }
            }
        }
        if !config.rtbh.isEmpty {
            for family in ["ipv4", "ipv6"] {
                for p in try gobgp.rib(family)
                where p.neighbor == nil && p.communities.contains(config.community) && p.communities.contains(BGPConfig.blackhole) {
                    if let n = CIDR(gobgp: p.prefix) { found[RouteKey(network: n, rtbh: true)] = UInt64?.none }
                }
            }
        }
        announced = found
        metrics.routes(flowspec: found.keys.filter { !$0.rtbh }.count, rtbh: found.keys.filter(\.rtbh).count)
    }

    /// The routes the bans call for now: ``BGPSpeaker``'s export rule.
    func desiredRoutes(now: UInt64) throws -> (routes: [RouteKey: UInt64?], overCap: Int) {
        let nowUnix = UInt64(Date().timeIntervalSince1970)
        func unix(_ ns: UInt64?) -> UInt64? { ns.map { nowUnix + ($0 > now ? ($0 - now + 999_999_999) / 1_000_000_000 : 0) } }
        // Each exported ban: its end (Unix seconds, nil: none) and origin.
        var bans: [SourceAddress: (expiry: UInt64?, origin: String)] = [:]
        for ban in try maps.bans() where config.export.contains(ban.origin) {
            if let e = ban.expiresNS, e <= now { continue }
            if let old = bans[ban.address], old.expiry == nil { continue }
            bans[ban.address] = (unix(ban.expiresNS), ban.origin)
        }
        if config.export.contains("fraud") {
            for block in try maps.fraudBlocks(now: now) where bans[block.address] == nil {
                bans[block.address] = (unix(block.untilNS), "fraud")
            }
        }
        guard !bans.isEmpty else { return ([:], 0) }
        let protected: [CIDR] = { lock.lock(); defer { lock.unlock() }; return protectedNetworks }()
        let verified = Set(try maps.trustedSources().filter { $0.untilNS > now }.map(\.address))
        var hosts: [CIDR: (expiry: UInt64?, origin: String)] = [:]
        for (address, ban) in bans {
            if verified.contains(address) || protected.contains(where: { $0.contains(address) }) { continue }
            hosts[try CIDR(address.description)] = ban
        }
        // Aggregates: a /24 (/64) with enough bans, holding nothing that must not be announced.
        var groups: [CIDR: [CIDR]] = [:]
        if config.aggregate > 0 {
            for host in hosts.keys {
                groups[try CIDR.network(of: host.address, length: host.isIPv4 ? 24 : 64), default: []].append(host)
            }
        }
        var routes: [(key: RouteKey, expiry: UInt64?, aggregate: Bool)] = []
        var covered = Set<CIDR>()
        for (network, members) in groups where members.count >= config.aggregate {
            if protected.contains(where: { $0.overlaps(network) }) || verified.contains(where: { network.contains($0) }) { continue }
            let expiries = members.map { hosts[$0]!.expiry }
            let expiry: UInt64? = expiries.contains { $0 == nil } ? nil : expiries.compactMap { $0 }.max()
            let rtbh = members.allSatisfy { config.rtbh.contains(hosts[$0]!.origin) }
            routes.append((RouteKey(network: network, rtbh: false), expiry, true))
            if rtbh && hasNextHop(network) { routes.append((RouteKey(network: network, rtbh: true), nil, true)) }
            covered.formUnion(members)
        }
        for (host, ban) in hosts where !covered.contains(host) {
            routes.append((RouteKey(network: host, rtbh: false), ban.expiry, false))
            if config.rtbh.contains(ban.origin) && hasNextHop(host) { routes.append((RouteKey(network: host, rtbh: true), nil, false)) }
        }
        // Over the cap: aggregates first (each covers many), then in address order, so the same ones stay out.
        routes.sort { $0.aggregate != $1.aggregate ? $0.aggregate : $0.key < $1.key }
        let kept = routes.prefix(config.maxRoutes)
        return (Dictionary(kept.map { ($0.key, $0.expiry) }, uniquingKeysWith: { a, _ in a }), routes.count - kept.count)
    }

    private func hasNextHop(_ network: CIDR) -> Bool { network.isIPv4 ? config.nextHopV4 != nil : config.nextHopV6 != nil }

    private func export(now: UInt64) {
        let desired: [RouteKey: UInt64?]
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
        // Withdrawals first: they end what should no longer be dropped upstream, and free room under the cap.
        let withdraw = announced.keys.filter { desired[$0] == nil }.sorted()
        var announce = desired.keys.filter { announced[$0] == nil }.sorted()
        // A renewed ban: its route stays; a later end is announced again (an update), an earlier one is not.
        for (key, expiry) in desired {
            guard let old = announced[key], let had = old else { continue }
            if let expiry {
                let nowUnix = UInt64(Date().timeIntervalSince1970)
                if expiry > had + max(60, (had > nowUnix ? had - nowUnix : 0) / 10) { announce.append(key) }
            } else {
                announce.append(key)
            }
        }
        for key in withdraw {
            guard tokens >= 1 else { break }
            tokens -= 1
            do {
                if key.rtbh { try gobgp.withdrawRTBH(key.network) } else {
                    try gobgp.withdrawFlowSpec(key.network, ports: config.ports)
                }
                announced[key] = nil
                metrics.update(rtbh: key.rtbh, announce: false)
                if limiter.allow() { logger.info("BGP: route withdrawn", metadata: ["route": "\(key)"]) }
            } catch {
                failed(error)
                return
            }
        }
        for key in announce {
            guard tokens >= 1 else { break }
            tokens -= 1
            let expiry = desired[key] ?? nil
            do {
                if key.rtbh {
                    try gobgp.announceRTBH(key.network, nextHop: (key.network.isIPv4 ? config.nextHopV4 : config.nextHopV6)!,
                                           community: config.community)
                } else {
                    try gobgp.announceFlowSpec(key.network, ports: config.ports, community: config.community, expiry: expiry)
                }
                announced[key] = .some(expiry)
                metrics.update(rtbh: key.rtbh, announce: true)
                if limiter.allow() {
                    logger.info("BGP: route announced", metadata: [
                        "route": "\(key)", "until": "\(expiry.map { "\($0)" } ?? "withdrawn")"])
                }
            } catch {
                failed(error)
                return
            }
        }
        if let n = limiter.takeSuppressed() { logger.info("BGP: route changes not logged (rate limit)", metadata: ["count": "\(n)"]) }
        metrics.routes(flowspec: announced.keys.filter { !$0.rtbh }.count, rtbh: announced.keys.filter(\.rtbh).count)
    }

    private func failed(_ error: Error) {
        logger.error("BGP: gobgpd refused a request or is unreachable: the filter keeps its bans here; routes are announced when it is back",
                     metadata: ["error": "\(error)"])
        daemonUp = false
        lastRead = monotonicNanoseconds()
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
        var set: [CIDR: Learned] = [:]
        var remove = Set<CIDR>()
        let events = monitorEvents.take()
        if !events.isEmpty {
            let withdrawnFrom = Set(events.filter(\.withdrawal).compactMap(\.neighbor))
            // A withdrawal counts only while its session is up: one that comes because the session went down
            // leaves the ban until its end.
            var up = Set<String>()
            if !withdrawnFrom.isEmpty, let s = try? gobgp.sessions() {
                sessions = s
                up = Set(s.filter(\.established).map(\.address))
            }
            for p in events {
                guard let neighbor = p.neighbor, p.communities.contains(config.community), let network = CIDR(gobgp: p.prefix)
                else { continue }
                if p.withdrawal {
                    guard learned[network] != nil || set[network] != nil else { continue }
                    if up.contains(neighbor) {
                        remove.insert(network)
                        set[network] = nil
                    } else if limiter.allow() {
                        logger.notice("BGP: a learned ban's route went with its session: kept until it ends",
                                      metadata: ["network": "\(network)", "peer": "\(neighbor)"])
                    }
                } else if let entry = admit(p, network, neighbor: neighbor, now: now) {
                    set[network] = entry
                    remove.remove(network)
                }
            }
        }
        if daemonUp, learnResyncDue != 0, now >= learnResyncDue {
            learnResyncDue = now + 30_000_000_000
            resyncLearned(now: now, set: &set, remove: &remove)
        }
        // Ended bans.
        let nowUnix = UInt64(Date().timeIntervalSince1970)
        for (network, entry) in learned where (entry.expiry.map { $0 <= nowUnix } ?? false) && set[network] == nil {
            remove.insert(network)
        }
        apply(set: set, remove: remove, now: now)
    }

    /// A learned route as a ban, or nil when refused (from another AS, too wide, ended, over the cap).
    private func admit(_ p: BGPPath, _ network: CIDR, neighbor: String, now: UInt64) -> Learned? {
        // Only routes made inside this AS: another AS (an upstream, a customer) that sends Floodgate's community,
        // by mistake or not, bans nothing here.
        if p.asPathLength > 0 {
            metrics.refused("foreign-as")
            return nil
        }
        let expiry = p.expiry(asn: config.asn)
        // At most a /24 (/64): what aggregation makes. A wider route is some other router's business.
        if network.isIPv4 ? network.length < 24 : network.length < 64 {
            metrics.refused("too-wide")
            return nil
        }
        if let expiry, expiry <= UInt64(Date().timeIntervalSince1970) { return nil }
        if learned[network] == nil && learned.count >= config.maxLearned {
            metrics.refused("cap")
            return nil
        }
        return Learned(expiry: expiry, neighbor: neighbor, at: now)
    }

    /// Brings the learned bans to the RIB: adds what it holds, removes what it no longer holds when the session
    /// it came over (or, for bans of a previous run, any session) has been up at least 10 s.
    private func resyncLearned(now: UInt64, set: inout [CIDR: Learned], remove: inout Set<CIDR>) {
        var seen: [CIDR: Learned] = [:]
        do {
            for family in ["ipv4-flowspec", "ipv6-flowspec"] {
                for p in try gobgp.rib(family) where p.neighbor != nil && p.communities.contains(config.community) {
                    guard let network = CIDR(gobgp: p.prefix), seen[network] == nil,
                          let entry = learned[network] != nil && p.asPathLength == 0
                            ? Learned(expiry: p.expiry(asn: config.asn), neighbor: p.neighbor, at: learned[network]!.at)
                            : admit(p, network, neighbor: p.neighbor!, now: now)
                    else { continue }
                    seen[network] = entry
                }
            }
            sessions = try gobgp.sessions()
        } catch { return }
        let settled = Set(sessions.filter { $0.established && Int(Date().timeIntervalSince1970) - $0.upSince >= 10 }.map(\.address))
        for (network, entry) in seen where learned[network]?.expiry != entry.expiry || learned[network] == nil {
            set[network] = entry
        }
        for (network, entry) in learned where seen[network] == nil && set[network] == nil {
            let peerSettled = entry.neighbor.map { settled.contains($0) } ?? !settled.isEmpty
            if peerSettled && entry.at < now { remove.insert(network) }
        }
    }

    private func apply(set: [CIDR: Learned], remove: Set<CIDR>, now: UInt64) {
        guard !set.isEmpty || !remove.isEmpty else { return }
        let nowUnix = UInt64(Date().timeIntervalSince1970)
        let bans = set.map { network, entry in
            PeerBan(network: network, expiresNS: entry.expiry.map { now + ($0 > nowUnix ? $0 - nowUnix : 0) * 1_000_000_000 })
        }
        do {
            try root.locked { try maps.changePeerBans(set: bans, remove: Array(remove)) }
            for (network, entry) in set {
                if learned[network] == nil && limiter.allow() {
                    logger.info("BGP: ban learned from a peer", metadata: [
                        "network": "\(network)", "peer": "\(entry.neighbor ?? "?")", "until": "\(entry.expiry.map { "\($0)" } ?? "withdrawn")"])
                }
                learned[network] = entry
            }
            for network in remove where learned.removeValue(forKey: network) != nil && limiter.allow() {
                logger.info("BGP: learned ban lifted", metadata: ["network": "\(network)"])
            }
        } catch {
            logger.error("BGP: writing the learned bans failed", metadata: ["error": "\(error)"])
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

extension CIDR {
    /// The network of `length` (in the family's terms) that holds `address`.
    static func network(of address: SourceAddress, length: Int) throws -> CIDR {
        var bytes = address.bytes
        let keyLength = address.isIPv4 ? 96 + length : length
        for i in 0..<16 {
            let bitsHere = max(0, min(8, keyLength - i * 8))
            bytes[i] &= bitsHere == 8 ? 0xFF : UInt8(truncatingIfNeeded: 0xFF << (8 - bitsHere))
        }
        return try CIDR("\(SourceAddress(bytes: bytes))/\(length)")
    }
}
