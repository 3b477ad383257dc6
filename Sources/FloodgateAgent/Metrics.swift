import FloodgateCore
import Foundation
import Prometheus

/// The agent's Prometheus registry (swift-prometheus): what `GET /metrics` returns.
public final class AgentMetrics: @unchecked Sendable {
    public let registry = PrometheusCollectorRegistry()
    private let interface: String
    private let lock = NSLock()
    private var packets: [String: Counter] = [:]
    private var bytes: [String: Counter] = [:]
    private var bansActive: [String: Gauge] = [:]
    private var bansIssued: [String: Counter] = [:]
    private var anomalies: [String: Counter] = [:]
    private var samples: [String: Counter] = [:]
    private let reloadsOK: Counter
    private let reloadsFailed: Counter
    private let tracked: Gauge
    private let capacity: Gauge
    private let lastPoll: Gauge
    private let trustedGauge: Gauge
    private let trustLearnedCounter: Counter
    private var spared: [String: Counter] = [:]
    private let spoofedEvents: Counter
    private let quarantines: Counter
    private let strictQuarantines: Counter
    private let destinationSwitchesCounter: Counter
    private var destinationOutcomes: [String: Counter] = [:]
    private var fraudBlocks: [String: Counter] = [:]
    private var apiRequests: [String: Counter] = [:]
    private var insideCounts: [String: Counter] = [:]
    private let lastReloadSuccess: Gauge
    private let lastReloadTime: Gauge
    private let lastReloadDuration: Gauge

    init(interface: String) {
        self.interface = interface
        let version = floodgateVersion
        registry.makeGauge(descriptor: metricName("floodgate_build_info", "Build of the floodgate agent; always 1"),
                           labels: [("version", version)]).set(to: 1)
        let reloads = metricName("floodgate_config_reloads_total", "Config loads, by result")
        reloadsOK = registry.makeCounter(descriptor: reloads, labels: [("result", "applied")])
        reloadsFailed = registry.makeCounter(descriptor: reloads, labels: [("result", "rejected")])
        lastReloadSuccess = registry.makeGauge(descriptor: metricName(
            "floodgate_config_last_reload_successful", "Whether the last config load (start or reload) was applied: 1, or 0"))
        lastReloadTime = registry.makeGauge(descriptor: metricName(
            "floodgate_config_last_reload_timestamp_seconds", "Unix time of the last config load, applied or not"))
        lastReloadDuration = registry.makeGauge(descriptor: metricName(
            "floodgate_config_last_reload_duration_seconds", "How long the last config load took, read to applied or refused"))
        // The names come from the shared header (fg_inside_count_name), so the help lists every one.
        let insideHelp = "What the inside program read in the SIP server's answers ("
            + FilterMaps.insideCountNames.joined(separator: ", ") + ")"
        for name in FilterMaps.insideCountNames {
            insideCounts[name] = registry.makeCounter(
                descriptor: metricName("floodgate_inside_events_total", insideHelp),
                labels: [("interface", interface), ("event", name)])
        }
        tracked = registry.makeGauge(
            descriptor: metricName("floodgate_tracked_sources", "(source, class) pairs in the source map"),
            labels: [("interface", interface)])
        capacity = registry.makeGauge(
            descriptor: metricName("floodgate_tracked_sources_capacity", "Size of the source map (max_sources)"),
            labels: [("interface", interface)])
        lastPoll = registry.makeGauge(descriptor: metricName(
            "floodgate_agent_last_poll_timestamp_seconds", "Unix time of the agent's last successful read of the maps"))
        trustedGauge = registry.makeGauge(
            descriptor: metricName("floodgate_trusted_sources", "Verified sources (learned trust) now"),
            labels: [("interface", interface)])
        trustLearnedCounter = registry.makeCounter(
            descriptor: metricName("floodgate_trust_learned_total", "Sources that became verified while the agent ran"),
            labels: [("interface", interface)])
        for origin in ["scanner", "auto"] {
            spared[origin] = registry.makeCounter(
                descriptor: metricName("floodgate_bans_spared_total",
                                       "Bans that UDP evidence would have issued on verified or allow-listed sources, by kind (scanner ones reported at most once a second per CPU)"),
                labels: [("interface", interface), ("origin", origin)])
        }
        destinationSwitchesCounter = registry.makeCounter(
            descriptor: metricName("floodgate_destination_switches_total",
                                   "Switches of the destination rule set at the edges of scheduled rules' hours"),
            labels: [("interface", interface)])
        for kind in ["international", "high-risk", "concurrent"] {
            fraudBlocks[kind] = registry.makeCounter(
                descriptor: metricName("floodgate_fraud_blocks_total",
                                       "Sources blocked for new calls over a fraud threshold, by threshold"),
                labels: [("interface", interface), ("kind", kind)])
        }
        for outcome in FilterMaps.destinationOutcomeNames {
            destinationOutcomes[outcome] = registry.makeCounter(
                descriptor: metricName("floodgate_destination_outcomes_total",
                                       "INVITEs the destination rules judged, by what they made of the number"),
                labels: [("interface", interface), ("outcome", outcome)])
        }
        spoofedEvents = registry.makeCounter(
            descriptor: metricName("floodgate_spoofed_events_total",
                                   "Reports of packets claiming a verified or allow-listed address at another hop distance "
                                   + "(at most one a second per CPU; the dropped-spoofed packets are in floodgate_packets_total)"),
            labels: [("interface", interface)])
        quarantines = registry.makeCounter(
            descriptor: metricName("floodgate_quarantines_total",
                                   "Verified sources quarantined: their credentials failed answering no challenge the registrar "
                                   + "sent them, so until the quarantine ends only credentials answering one sent them pass "
                                   + "(dropped-unproven)"),
            labels: [("interface", interface)])
        strictQuarantines = registry.makeCounter(
            descriptor: metricName("floodgate_quarantines_strict_total",
                                   "Quarantines made strict: in them, credentials failed answering challenges to other methods "
                                   + "than REGISTER (which a proxy may relay from a phone behind it), so only credentials "
                                   + "answering a challenge to a REGISTER pass there"),
            labels: [("interface", interface)])
        for origin in Ban.origins {
            let labels = [("interface", interface), ("origin", origin)]
            bansActive[origin] = registry.makeGauge(
                descriptor: metricName("floodgate_bans_active", "Bans in force, by who issued them"), labels: labels)
            bansIssued[origin] = registry.makeCounter(
                descriptor: metricName("floodgate_bans_issued_total", "Bans issued by the XDP program while the agent ran"),
                labels: labels)
        }
        for op in ["ban", "unban", "bans", "stats", "ping", "invalid"] {
            for result in ["ok", "error"] where op != "invalid" || result == "error" {
                apiRequests["\(op)/\(result)"] = registry.makeCounter(
                    descriptor: metricName("floodgate_api_requests_total", "Requests to the local API, by op and result"),
                    labels: [("op", op), ("result", result)])
            }
        }
        exportEverySeries()
    }

    func apiRequest(op: String, ok: Bool) {
        lock.withLock { apiRequests["\(op)/\(ok ? "ok" : "error")"] }?.increment()
    }

    /// The packets and bytes counters of a class and verdict (made on first use; the caller holds the lock).
    private func packetCounters(_ c: TrafficClass, _ r: Reason) -> (Counter, Counter) {
        let key = "\(c)/\(r)"
        if let p = packets[key], let b = bytes[key] { return (p, b) }
        let labels = [("interface", interface), ("class", c.name), ("verdict", r.name)]
        let p = registry.makeCounter(
            descriptor: metricName("floodgate_packets_total", "Packets the XDP program judged, by class and verdict"),
            labels: labels)
        let b = registry.makeCounter(
            descriptor: metricName("floodgate_bytes_total", "Bytes the XDP program judged, by class and verdict"),
            labels: labels)
        packets[key] = p
        bytes[key] = b
        return (p, b)
    }

    private func sampleCounter(_ trafficClass: String, _ reason: String) -> Counter {
        let key = "\(trafficClass)/\(reason)"
        if let counter = samples[key] { return counter }
        let counter = registry.makeCounter(
            descriptor: metricName("floodgate_drop_samples_total",
                                   "Drops the XDP program sampled to the agent (one in 65536 per CPU, class and verdict)"),
            labels: [("interface", interface), ("class", trafficClass), ("verdict", reason)])
        samples[key] = counter
        return counter
    }

    private func anomalyCounter(_ trafficClass: TrafficClass, _ kind: AnomalyAlert.Kind) -> Counter {
        let key = "\(trafficClass)/\(kind)"
        if let counter = anomalies[key] { return counter }
        let counter = registry.makeCounter(
            descriptor: metricName("floodgate_anomalies_total",
                                   "Anomaly alerts: a class's rate far above (spike) or below (drop) its moving baseline"),
            labels: [("interface", interface), ("class", trafficClass.name), ("kind", kind.rawValue)])
        anomalies[key] = counter
        return counter
    }

    /// Every series of the per-class families at zero from the start, so that rate() and alerts see them before
    /// their first packet.
    private func exportEverySeries() {
        lock.lock()
        defer { lock.unlock() }
        for c in TrafficClass.counted {
            for r in Reason.all {
                _ = packetCounters(c, r)
                if r.isDrop { _ = sampleCounter(c.name, r.name) }
            }
            for kind in [AnomalyAlert.Kind.spike, .drop] { _ = anomalyCounter(c, kind) }
        }
    }

    /// Adds what the counters gained since `before` (the first time: everything since attach).
    func add(_ now: Counters, since before: Counters) {
        lock.lock()
        defer { lock.unlock() }
        for c in TrafficClass.counted {
            for r in Reason.all {
                let dp = now.packets[c, r] &- before.packets[c, r]
                let db = now.bytes[c, r] &- before.bytes[c, r]
                let (p, b) = packetCounters(c, r)
                if dp > 0 { p.increment(by: Int64(clamping: dp)) }
                if db > 0 { b.increment(by: Int64(clamping: db)) }
            }
        }
    }

    /// The bans in force, by origin (``FilterMaps/activeBanCounts(now:)``).
    func bans(active count: [String: Int]) {
        for (origin, n) in count { bansActive[origin]?.set(to: Double(n)) }
    }

    func banIssued(origin: String) { bansIssued[origin]?.increment() }

    func trustLearned() { trustLearnedCounter.increment() }

    func banSpared(origin: String) { spared[origin]?.increment() }

    func spoofedReported() { spoofedEvents.increment() }
    func quarantined(strict: Bool) { (strict ? strictQuarantines : quarantines).increment() }

    /// One drop in FilterCapacity.dropSampleEvery per CPU, class and reason reaches the agent with its source.
    func dropSampled(trafficClass: String, reason: String) {
        lock.lock()
        defer { lock.unlock() }
        sampleCounter(trafficClass, reason).increment()
    }

    func trusted(_ count: Int) { trustedGauge.set(to: Double(count)) }

    func anomaly(_ alert: AnomalyAlert) {
        lock.lock()
        defer { lock.unlock() }
        anomalyCounter(alert.trafficClass, alert.kind).increment()
    }

    func occupancy(sources: Int, capacity size: UInt32) {
        tracked.set(to: Double(sources))
        capacity.set(to: Double(size))
    }

    /// A config load: applied or refused, and how long it took.
    func reloads(ok: Bool, seconds: Double) {
        (ok ? reloadsOK : reloadsFailed).increment()
        lastReloadSuccess.set(to: ok ? 1 : 0)
        lastReloadTime.set(to: Date().timeIntervalSince1970)
        lastReloadDuration.set(to: seconds)
    }

    /// The filter as attached: its mode (native or generic: an operator who asked for native and got generic
    /// sees it here) and program; the inside interface, if any.
    func attached(interface uplink: String, mode: String, program: UInt32) {
        registry.makeGauge(descriptor: metricName("floodgate_attach_info",
                                                  "The filter on an external interface: its XDP mode and program id; always 1"),
                           labels: [("interface", uplink), ("mode", mode), ("program", "\(program)")]).set(to: 1)
    }

    func inside(_ inside: String?) {
        registry.makeGauge(descriptor: metricName("floodgate_inside_attached",
                                                  "Whether an inside interface (the SIP server's side) is watched: 1, or 0"),
                           labels: [("interface", interface), ("inside", inside ?? "")]).set(to: inside == nil ? 0 : 1)
    }

    func inside(_ now: [String: UInt64], since before: [String: UInt64]) {
        for (name, n) in now {
            let d = n &- (before[name] ?? 0)
            if d > 0 { insideCounts[name]?.increment(by: Int64(clamping: d)) }
        }
    }
    func destinationSwitches() { destinationSwitchesCounter.increment() }
    func fraudBlocked(kind: String) { fraudBlocks[kind]?.increment() }

    func destinations(_ now: [String: UInt64], since before: [String: UInt64]) {
        for (outcome, n) in now {
            let d = n &- (before[outcome] ?? 0)
            if d > 0 { destinationOutcomes[outcome]?.increment(by: Int64(clamping: d)) }
        }
    }

    func healthy() { lastPoll.set(to: Date().timeIntervalSince1970) }

    /// The exposition text.
    public func render() -> [UInt8] {
        lock.lock()
        defer { lock.unlock() }
        return registry.emitToBuffer()
    }
}

/// A full metric name as swift-prometheus describes it: the part after the last underscore is the unit.
private func metricName(_ name: String, _ help: String) -> MetricNameDescriptor {
    let cut = name.lastIndex(of: "_")!
    return MetricNameDescriptor(metricName: String(name[..<cut]), unitName: String(name[name.index(after: cut)...]),
                                helpText: help)
}

/// The BGP speaker's series (``BGPSpeaker``), registered only when `bgp:` is on.
final class BGPMetrics: @unchecked Sendable {
    private let daemonUp: Gauge
    private let peersUp: Gauge
    private let routesFlowSpec: Gauge
    private let routesRTBH: Gauge
    private let overCapGauge: Gauge
    private let learnedGauge: Gauge
    private var updates: [String: Counter] = [:]
    private var refusedCounters: [String: Counter] = [:]

    init(_ registry: PrometheusCollectorRegistry) {
        daemonUp = registry.makeGauge(descriptor: metricName("floodgate_bgp_daemon_up",
                                                             "Whether the BGP daemon the agent drives answered: 1, or 0"))
        peersUp = registry.makeGauge(descriptor: metricName("floodgate_bgp_peers_up", "BGP sessions established"))
        let routes = metricName("floodgate_bgp_routes", "Routes this router announces, by type (flowspec, rtbh)")
        routesFlowSpec = registry.makeGauge(descriptor: routes, labels: [("type", "flowspec")])
        routesRTBH = registry.makeGauge(descriptor: routes, labels: [("type", "rtbh")])
        overCapGauge = registry.makeGauge(descriptor: metricName(
            "floodgate_bgp_routes_over_cap", "Routes the bans call for past bgp.max_routes, not announced"))
        learnedGauge = registry.makeGauge(descriptor: metricName("floodgate_bgp_learned_bans", "Bans learned from peers in force"))
        let updatesName = metricName("floodgate_bgp_updates_total", "Route announcements and withdrawals, by type and action")
        for type in ["flowspec", "rtbh"] {
            for action in ["announce", "withdraw"] {
                updates["\(type)/\(action)"] = registry.makeCounter(descriptor: updatesName, labels: [("type", type), ("action", action)])
            }
        }
        for reason in ["foreign-as", "not-discard", "too-wide", "protected", "cap"] {
            refusedCounters[reason] = registry.makeCounter(
                descriptor: metricName("floodgate_bgp_learned_refused_total",
                                       "Peer routes not installed as bans, by reason (foreign-as: from another AS; not-discard: another action; too-wide: wider than /24 or /64; protected: covers what the config protects; cap: bgp.max_learned)"),
                labels: [("reason", reason)])
        }
    }

    func daemon(up: Bool) { daemonUp.set(to: up ? 1 : 0) }
    func peers(up: Int) { peersUp.set(to: Double(up)) }
    func routes(flowspec: Int, rtbh: Int) {
        routesFlowSpec.set(to: Double(flowspec))
        routesRTBH.set(to: Double(rtbh))
    }
    func overCap(_ n: Int) { overCapGauge.set(to: Double(n)) }
    func learned(_ n: Int) { learnedGauge.set(to: Double(n)) }
    func update(rtbh: Bool, announce: Bool) { updates["\(rtbh ? "rtbh" : "flowspec")/\(announce ? "announce" : "withdraw")"]?.increment() }
    func refused(_ reason: String) { refusedCounters[reason]?.increment() }
}
