import CFloodgate
import FloodgateCore
import Foundation

/// Reads the records the XDP program writes to its `fg_events` ring buffer (libbpf's ring_buffer API).
final class EventReader: @unchecked Sendable {
    private var ring: OpaquePointer?
    fileprivate var pending: [fg_event] = []

    init(fd: Int32) throws {
        let callback: ring_buffer_sample_fn = { context, data, size in
            guard let context, let data, size >= MemoryLayout<fg_event>.size else { return 0 }
            let reader = Unmanaged<EventReader>.fromOpaque(context).takeUnretainedValue()
            reader.pending.append(data.loadUnaligned(as: fg_event.self))
            return 0
        }
        guard let ring = ring_buffer__new(fd, callback, Unmanaged.passUnretained(self).toOpaque(), nil) else {
            throw FloodgateError("open the event ring buffer \(FG_MAP_EVENTS)", errno: errno)
        }
        self.ring = ring
    }

    deinit { ring_buffer__free(ring) }

    /// Every record written since the last call (without waiting).
    func drain() -> [fg_event] {
        _ = ring_buffer__consume(ring)
        defer { pending.removeAll(keepingCapacity: true) }
        return pending
    }
}

/// One anomaly: a class's rate far above (a spike) or below (a drop) its moving baseline.
public struct AnomalyAlert: Sendable, Equatable {
    public enum Kind: String, Sendable { case spike, drop }
    public var trafficClass: TrafficClass
    public var kind: Kind
    public var rate: Double
    public var baseline: Double
}

/// Per class, an exponentially weighted moving average of packets/s (every verdict). An alert is raised when
/// the rate crosses `factor` times above or below the baseline (both ignored under `minimumRate`), once per
/// episode: the class must come back within the factor before it alerts again. The first half-life after the
/// agent starts only learns.
final class AnomalyDetector: @unchecked Sendable {
    var policy: AnomalyPolicy
    private var baseline: [TrafficClass: Double] = [:]
    private var inAlert: [TrafficClass: AnomalyAlert.Kind] = [:]
    private var learned = 0.0

    init(_ policy: AnomalyPolicy) { self.policy = policy }

    func observe(_ now: Counters, since before: Counters, seconds: Double) -> [AnomalyAlert] {
        guard policy.enabled, seconds > 0 else { return [] }
        let weight = 1 - pow(0.5, seconds / max(policy.halfLifeSeconds, 1))
        let warm = learned >= policy.halfLifeSeconds
        learned += seconds
        var alerts: [AnomalyAlert] = []
        for c in TrafficClass.all {
            let rate = Double(now.packets.total(c) &- before.packets.total(c)) / seconds
            guard let base = baseline[c] else {
                baseline[c] = rate
                continue
            }
            var kind: AnomalyAlert.Kind?
            if rate >= policy.minimumRate && rate > policy.factor * max(base, policy.minimumRate / policy.factor) {
                kind = .spike
            } else if base >= policy.minimumRate && rate < base / policy.factor {
                kind = .drop
            }
            if warm, let kind, inAlert[c] != kind {
                alerts.append(AnomalyAlert(trafficClass: c, kind: kind, rate: rate, baseline: base))
            }
            inAlert[c] = kind
            baseline[c] = base + weight * (rate - base)
        }
        return alerts
    }
}
