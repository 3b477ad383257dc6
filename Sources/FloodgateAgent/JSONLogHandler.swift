import Foundation
import Logging

/// swift-log handler writing one JSON object per line to standard error: time, level, label, message and the
/// metadata as string fields.
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    private let label: String

    public init(label: String) { self.label = label }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields: [String: String] = [:]
        for (k, v) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { $1 }) { fields[k] = "\(v)" }
        fields["time"] = ISO8601DateFormatter.withFraction.string(from: Date())
        fields["level"] = event.level.rawValue
        fields["label"] = label
        fields["message"] = event.message.description
        if let error = event.error { fields["error"] = "\(error)" }
        var data = (try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])) ?? Data("{}".utf8)
        data.append(0x0A)
        FileHandle.standardError.write(data)
    }
}

extension ISO8601DateFormatter {
    nonisolated(unsafe) static let withFraction: ISO8601DateFormatter = {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f
    }()
}

/// The example config and the systemd unit, as shipped (Sources/FloodgateAgent/Resources).
public enum ShippedFiles {
    public static var exampleConfig: String { String(decoding: PackageResources.floodgate_yaml, as: UTF8.self) }
    public static var systemdUnit: String { String(decoding: PackageResources.floodgate_service, as: UTF8.self) }
    /// Destination rules for the ranges toll-fraud reports name, each group with its source.
    public static var highRiskDestinations: String { String(decoding: PackageResources.high_risk_txt, as: UTF8.self) }
    /// Prometheus alerting rules over the agent's metrics.
    public static var alertRules: String { String(decoding: PackageResources.alerts_yml, as: UTF8.self) }
    /// A Grafana dashboard over the agent's metrics (import it; it asks for a Prometheus data source).
    public static var grafanaDashboard: String { String(decoding: PackageResources.grafana_dashboard_json, as: UTF8.self) }
}
