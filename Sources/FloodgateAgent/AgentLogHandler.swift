#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging

/// The agent's swift-log handler, writing one line per event to standard error: as text
/// (`TIME LEVEL LABEL : key=value … [SOURCE] message`) or as one JSON object (time, level, label, message and the
/// metadata; numbers and booleans given as such, `.stringConvertible(n)`, are JSON numbers and booleans, arrays
/// and dictionaries JSON arrays and objects, everything else a string).
///
/// When standard error is the journal (`$JOURNAL_STREAM` names its device and inode, as systemd sets it), each
/// line starts with its syslog priority, `<N>` (sd-daemon(3)), which journald strips and keeps as the entry's
/// PRIORITY: `journalctl -p warning` then shows the warnings and worse. The text form then leaves out the time,
/// which the journal keeps.
public struct AgentLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    /// One level for every logger of the process, so that a reload of `log.level` changes them all.
    public var logLevel: Logger.Level {
        get { AgentLogHandler.level.value }
        set { AgentLogHandler.level.value = newValue }
    }
    static let level = SharedLevel()
    /// Sets the level of every logger using this handler: at start, and on a reload of `log.level`. A level set
    /// `fromCommandLine` (`--verbose`) stays while the process lives.
    public static func setLevel(_ newLevel: Logger.Level, fromCommandLine: Bool = false) {
        level.set(newLevel, pin: fromCommandLine)
    }

    final class SharedLevel: @unchecked Sendable {
        private let lock = NSLock()
        private var stored = Logger.Level.info
        private var pinned = false
        var value: Logger.Level {
            get { lock.withLock { stored } }
            set { set(newValue, pin: false) }
        }
        func set(_ level: Logger.Level, pin: Bool) {
            lock.withLock {
                if pinned && !pin { return }
                stored = level
                pinned = pinned || pin
            }
        }
    }
    private let label: String
    private let format: AgentConfig.LogFormat
    private let journal: Bool

    public init(label: String, format: AgentConfig.LogFormat, journal: Bool = AgentLogHandler.standardErrorIsJournal()) {
        self.label = label
        self.format = format
        self.journal = journal
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// The syslog priority of a level (sd-daemon(3)): debug 7 … critical 2.
    public static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    /// Whether standard error is connected to the journal: `$JOURNAL_STREAM` is "DEVICE:INODE" of the stream
    /// systemd connected, and fd 2 is still that stream (systemd.exec(5)).
    public static func standardErrorIsJournal() -> Bool {
        guard let value = ProcessInfo.processInfo.environment["JOURNAL_STREAM"] else { return false }
        let parts = value.split(separator: ":")
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return false }
        var st = stat()
        guard fstat(2, &st) == 0 else { return false }
        return UInt64(st.st_dev) == device && UInt64(st.st_ino) == inode
    }

    public func log(event: LogEvent) {
        var line = journal ? "<\(AgentLogHandler.priority(event.level))>" : ""
        let merged = metadata.merging(event.metadata ?? [:], uniquingKeysWith: { $1 })
        switch format {
        case .json:
            var fields: [String: Any] = [:]
            for (k, v) in merged { fields[k] = AgentLogHandler.jsonValue(v) }
            fields["time"] = Date().formatted(AgentLogHandler.timeStyle)
            fields["level"] = event.level.rawValue
            fields["label"] = label
            fields["message"] = event.message.description
            if let error = event.error { fields["error"] = "\(error)" }
            let data = (try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])) ?? Data("{}".utf8)
            line += String(decoding: data, as: UTF8.self)
        case .text:
            if !journal { line += Date().formatted(AgentLogHandler.timeStyle) + " " }
            line += "\(event.level) \(label) :"
            // One event, one line: a value an outsider chose (an interface name in an API request, say) can't
            // start a line of its own, or a journal entry at a priority of its choosing.
            for (k, v) in merged.sorted(by: { $0.key < $1.key }) { line += " \(k)=" + AgentLogHandler.escaped("\(v)") }
            if let error = event.error { line += " error=" + AgentLogHandler.escaped("\(error)") }
            line += " [\(event.source)] " + AgentLogHandler.escaped(event.message.description)
        }
        line += "\n"
        FileHandle.standardError.write(Data(line.utf8))
    }

    /// Timestamps: ISO 8601 with milliseconds, UTC (a value type: safe from any thread).
    static let timeStyle = Date.ISO8601FormatStyle(includingFractionalSeconds: true)

    /// `text` with control characters written as escapes (\n, \r, \t, \u{1b}…).
    static func escaped(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else { return text }
        var out = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F: out += "\\u{\(String(scalar.value, radix: 16))}"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// A metadata value as JSON: numbers and booleans typed, the rest strings.
    static func jsonValue(_ value: Logger.Metadata.Value) -> Any {
        switch value {
        case .string(let s): return s
        case .stringConvertible(let c):
            switch c {
            case let b as Bool: return b
            case let n as Int: return n
            case let n as Int64: return n
            case let n as Int32: return n
            case let n as UInt: return n
            case let n as UInt64: return n
            case let n as UInt32: return n
            case let n as UInt16: return n
            case let n as UInt8: return n
            case let d as Double: return d.isFinite ? d : "\(d)"
            default: return c.description
            }
        case .array(let a): return a.map(jsonValue)
        case .dictionary(let d): return d.mapValues(jsonValue)
        }
    }
}


/// The example config and the systemd unit, as shipped (Sources/FloodgateAgent/Resources).
public enum ShippedFiles {
    public static var exampleConfig: String { String(decoding: PackageResources.floodgate_yaml, as: UTF8.self) }
    public static var systemdUnit: String { String(decoding: PackageResources.floodgate_service, as: UTF8.self) }
    /// The unit with its commands running `binary` (the package's /usr/bin/floodgate, or where it was installed).
    public static func systemdUnit(binary: String) -> String {
        systemdUnit.replacingOccurrences(of: "/usr/bin/floodgate ", with: "\(binary) ")
    }
    /// The block-list fetcher (a shell script), and its systemd service and timer templates.
    public static var fetchListScript: String { String(decoding: PackageResources.fetch_list_sh, as: UTF8.self) }
    public static var fetchListService: String { String(decoding: PackageResources.fetch_list_service, as: UTF8.self) }
    public static var fetchListTimer: String { String(decoding: PackageResources.fetch_list_timer, as: UTF8.self) }
    /// A fail2ban action banning in the filter.
    public static var fail2banAction: String { String(decoding: PackageResources.fail2ban_conf, as: UTF8.self) }
    /// Destination rules for the ranges toll-fraud reports name, each group with its source.
    public static var highRiskDestinations: String { String(decoding: PackageResources.high_risk_txt, as: UTF8.self) }
    /// Prometheus alerting rules over the agent's metrics.
    public static var alertRules: String { String(decoding: PackageResources.alerts_yml, as: UTF8.self) }
    /// A Grafana dashboard over the agent's metrics (import it; it asks for a Prometheus data source).
    public static var grafanaDashboard: String { String(decoding: PackageResources.grafana_dashboard_json, as: UTF8.self) }
}
