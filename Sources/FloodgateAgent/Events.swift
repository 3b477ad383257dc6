import FloodgateCore
import Foundation

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
        for c in TrafficClass.counted {
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
