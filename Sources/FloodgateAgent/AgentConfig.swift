import FloodgateCore
import Foundation
import Logging
import Yams

/// Everything `floodgate run` is told by its YAML file. Every field has a default; `AgentConfig()` is the
/// configuration of an empty file (but for the external interface, which has none).
public struct AgentConfig: Sendable, Equatable {
    public var external: String?
    /// Further uplinks (`interfaces.external` as a list: the first is ``external``): each gets the same filter,
    /// sharing its maps.
    public var otherExternal: [String] = []
    /// Every external interface, the first first.
    public var externals: [String] { (external.map { [$0] } ?? []) + otherExternal }
    public var inside: String?
    public var mode: AttachMode = .auto
    public var pinRoot: String = PinRoot.defaultPath
    public var maxSources: UInt32 = UInt32(FilterCapacity.defaultSources)
    /// The filter's own bans kept at most (an LRU); needs a restart to change.
    public var maxAutoBans: UInt32 = UInt32(FilterCapacity.defaultAutoBans)
    /// The filter's policy as the file gives it: settings, limits, lists, servers, signatures; but for brute-force
    /// detection and learned trust, which are ``bruteForce`` and ``trustSeconds`` (they depend on the inside
    /// interface). ``effectivePolicy`` is what is written to the filter.
    public var policy = FilterPolicy()
    /// The list files named, so that a change to one of them reloads too.
    public var listFiles: [String] = []
    /// Lines of CIDR list files that were skipped (file:line: why): the rest of each file is used, unless the
    /// entry says `strict: true`.
    public var warnings: [String] = []
    /// Brute-force detection and learned trust: in force only with an inside interface (``effectivePolicy``).
    public var bruteForce: BruteForce? = BruteForce()
    public var trustSeconds: UInt32 = 86400
    public var anomaly = AnomalyPolicy()
    /// host:port for the Prometheus endpoint; nil: no endpoint.
    public var metricsListen: String? = "127.0.0.1:9464"
    /// The local API's socket (``LocalAPI``); nil: none (`api.socket: off`).
    public var apiSocket: String? = LocalAPI.defaultSocket
    /// The group whose members may use the API socket.
    public var apiGroup = LocalAPI.defaultGroup
    public var logFormat: LogFormat = .text
    /// The least severe level logged: debug, info, notice, warning or error (`--verbose`: debug).
    public var logLevel: Logger.Level = .info
    /// Log lines about individual sources (bans, scanners, anomalies) per second at most; the rest are counted.
    public var logPerSecond: Int = 20
    /// How often the agent reads the maps (ban expiry, events, anomalies, metrics), in milliseconds.
    public var pollMilliseconds: Int = 250
    /// The site's time zone, for the hours of scheduled destination rules.
    public var timeZone: TimeZone = .current
    /// Bans announced through a local BGP daemon, and learned from other routers' (``BGPConfig``); nil: off.
    public var bgp: BGPConfig?
    /// Destination rules in force only at some hours (`destinations:` entries with `hours:` or `outside:`); the
    /// others are in ``policy``.
    public var scheduledDestinations: [ScheduledDestination] = []

    public init() {}

    public enum LogFormat: String, Sendable, CaseIterable { case text, json }

    /// The policy written to the filter now: ``effectivePolicy(at:)``.
    public var effectivePolicy: FilterPolicy { effectivePolicy(at: Date()) }

    /// The policy written to the filter at `date`: brute-force detection and learned trust only when an inside
    /// interface shows the SIP server's answers; the scheduled destination rules in force then.
    public func effectivePolicy(at date: Date) -> FilterPolicy {
        var p = policy
        p.settings.bruteForce = inside == nil ? nil : bruteForce
        p.settings.trustSeconds = inside == nil ? 0 : trustSeconds
        let scheduled = scheduledInForce(at: date)
        if !scheduled.isEmpty { p.destinations = p.destinations.replacing(with: scheduled) }
        return p
    }

    /// The scheduled destination rules in force at `date`.
    public func scheduledInForce(at date: Date) -> [DestinationRule] {
        scheduledDestinations.filter { $0.inForce(at: date, in: timeZone) }.map(\.rule)
    }
}

/// Alerts on sudden changes of a class's packet rate against its moving average.
public struct AnomalyPolicy: Sendable, Equatable {
    public var enabled = true
    /// Half-life of the exponentially weighted baseline.
    public var halfLifeSeconds: Double = 300
    /// A rate this many times above (spike) or below (drop) the baseline raises an alert.
    public var factor: Double = 10
    /// Neither the rate nor the baseline matter below this many packets/s.
    public var minimumRate: Double = 50
    public init() {}
}

/// One thing wrong with a config file: where, which field, and why.
public struct ConfigProblem: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int?
    public var field: String
    public var message: String

    public var description: String {
        "\(file):\(line.map(String.init) ?? "-"): \(field.isEmpty ? "" : "\(field): ")\(message)"
    }
}

/// Every problem of a config file; thrown when there is at least one.
public struct ConfigErrors: Error, Sendable, CustomStringConvertible {
    public var problems: [ConfigProblem]
    public var description: String { problems.map(\.description).joined(separator: "\n") }
}

extension AgentConfig {
    /// The default location of the config file.
    public static let defaultPath = "/etc/floodgate/floodgate.yaml"

    /// Reads and validates `path`. Throws ``ConfigErrors`` with every problem found, or an I/O error.
    public static func load(path: String) throws -> AgentConfig {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigErrors(problems: [ConfigProblem(file: path, line: nil, field: "",
                                                        message: "cannot read the file: \(error.localizedDescription)")])
        }
        return try parse(text, file: path)
    }

    /// Parses YAML `text` (named `file` in messages; list files are relative to its directory).
    public static func parse(_ text: String, file: String) throws -> AgentConfig {
        let reader = ConfigReader(file: file)
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw ConfigErrors(problems: [reader.syntaxProblem(error)])
        }
        var config = AgentConfig()
        if let root { reader.read(root, into: &config) }
        // A deny entry from a list file (someone else's word) that covers an allow-listed network or a SIP server
        // is left out: the deny list is checked before the allow list.
        for cidr in reader.fileDeny.sorted() {
            guard let covered = (config.policy.allow.sorted() + config.policy.servers.sorted()).first(where: cidr.overlaps)
            else { continue }
            config.policy.deny.remove(cidr)
            reader.skipped.append("a deny list file's \(cidr) covers \(covered), which the config allow-lists or names as a SIP server: left out")
        }
        config.warnings = reader.skipped
        if config.policy.fraud.thresholds.values.contains(where: { $0.international != nil }),
           config.policy.settings.numbers.countryCode.isEmpty {
            reader.problem(reader.fraudNode, "fraud.international",
                           "needs numbers.country_code: an international number is one with another country's code")
        }

        if config.external == nil {
            reader.problem(root, "interfaces.external", "is required: the interface facing the carriers")
        }
        if !reader.problems.isEmpty {
            throw ConfigErrors(problems: reader.problems.enumerated().sorted {
                ($0.element.line ?? 0, $0.offset) < ($1.element.line ?? 0, $1.offset)
            }.map(\.element))
        }
        return config
    }
}

/// Walks the YAML nodes, filling an ``AgentConfig`` and collecting problems with their lines.
final class ConfigReader {
    let file: String
    var problems: [ConfigProblem] = []
    /// The fraud section, for a check that needs the whole file read.
    var fraudNode: Node?

    init(file: String) { self.file = file }

    func problem(_ node: Node?, _ field: String, _ message: String) {
        problems.append(ConfigProblem(file: file, line: node?.mark?.line, field: field, message: message))
    }

    func syntaxProblem(_ error: YamlError) -> ConfigProblem {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _),
             .composer(_, let problem, let mark, _):
            return ConfigProblem(file: file, line: mark.line, field: "", message: "not valid YAML: \(problem)")
        case .duplicatedKeysInMapping(let duplicates, _):
            return ConfigProblem(file: file, line: nil, field: "",
                                 message: "duplicate keys: \(duplicates.joined(separator: ", "))")
        default:
            return ConfigProblem(file: file, line: nil, field: "", message: "not valid YAML: \(error)")
        }
    }

    /// The entries of a mapping, in order; a problem for anything else or for keys not in `known`.
    func mapping(_ node: Node, _ field: String, known: [String]) -> [(String, Node)] {
        guard let map = node.mapping else {
            problem(node, field, "must be a mapping of \(known.joined(separator: ", "))")
            return []
        }
        var entries: [(String, Node)] = []
        var seen = Set<String>()
        for (keyNode, value) in map {
            let path = field.isEmpty ? "" : field + "."
            guard let key = keyNode.scalar?.string else {
                problem(keyNode, field, "keys must be plain names")
                continue
            }
            guard known.contains(key) else {
                let hint = known.min { editDistance($0, key) < editDistance($1, key) }
                    .flatMap { editDistance($0, key) <= 3 ? " (did you mean '\($0)'?)" : nil } ?? ""
                problem(keyNode, path + key, "unknown field\(hint); known here: \(known.joined(separator: ", "))")
                continue
            }
            guard seen.insert(key).inserted else {
                problem(keyNode, path + key, "given twice")
                continue
            }
            entries.append((key, value))
        }
        return entries
    }

    func string(_ node: Node, _ field: String) -> String? {
        guard let s = node.scalar?.string else {
            problem(node, field, "must be a single value")
            return nil
        }
        return s
    }

    func integer(_ node: Node, _ field: String, _ range: ClosedRange<Int>) -> Int? {
        guard let s = string(node, field) else { return nil }
        guard let n = Int(s), range.contains(n) else {
            problem(node, field, "must be a whole number from \(range.lowerBound) to \(range.upperBound) (got '\(s)')")
            return nil
        }
        return n
    }

    func number(_ node: Node, _ field: String, _ range: ClosedRange<Double>) -> Double? {
        guard let s = string(node, field) else { return nil }
        guard let n = Double(s), n.isFinite, range.contains(n) else {
            problem(node, field, "must be a number from \(range.lowerBound) to \(range.upperBound) (got '\(s)')")
            return nil
        }
        return n
    }

    func boolean(_ node: Node, _ field: String) -> Bool? {
        guard let s = string(node, field) else { return nil }
        switch s.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default:
            problem(node, field, "must be true or false (got '\(s)')")
            return nil
        }
    }

    /// "90s", "10m", "1h", "2d", or "500ms".
    func duration(_ node: Node, _ field: String, milliseconds: Bool = false) -> UInt64? {
        guard let s = string(node, field) else { return nil }
        do {
            // A bare number is seconds elsewhere; where milliseconds are meant, say which.
            if milliseconds && UInt64(s.trimmingCharacters(in: .whitespaces)) != nil {
                throw FloodgateError("'\(s)' needs a unit here: 500ms, 1s, 2m")
            }
            return milliseconds ? try parseDurationMilliseconds(s) : try parseDuration(s)
        } catch {
            problem(node, field, "\(error)")
            return nil
        }
    }

    /// "8/s burst 16", "8/s" (burst = rate), "unlimited" or "block".
    func limit(_ node: Node, _ field: String) -> Limit? {
        guard let s = string(node, field) else { return nil }
        let words = s.split(separator: " ").map(String.init)
        switch words.first?.lowercased() {
        case "unlimited" where words.count == 1: return .unlimited
        case "block" where words.count == 1: return .block
        default: break
        }
        let bad = "must be 'RATE/s', 'RATE/s burst N', 'unlimited' or 'block' (got '\(s)')"
        guard let first = words.first, first.hasSuffix("/s"), let rate = Int(first.dropLast(2)) else {
            problem(node, field, bad)
            return nil
        }
        var burst: Int?
        if words.count == 3, words[1] == "burst", let b = Int(words[2]) {
            burst = b
        } else if words.count != 1 {
            problem(node, field, bad)
            return nil
        }
        do {
            return try Limit.validated(rate: rate, burst: burst)
        } catch {
            problem(node, field, "\(error)")
            return nil
        }
    }

    func sequence(_ node: Node, _ field: String) -> [Node] {
        if node.scalar != nil, node.scalar?.string == "" || node.tag.rawValue == Tag.Name.null.rawValue { return [] }
        guard let seq = node.sequence else {
            problem(node, field, "must be a list")
            return []
        }
        return Array(seq)
    }

    // MARK: The sections

    func read(_ root: Node, into c: inout AgentConfig) {
        let sections = ["interfaces", "pin_root", "max_sources", "max_bans", "sip", "limits", "prefix", "budget", "allow", "deny",
                        "scanners", "auto_ban", "brute_force", "trust", "anomaly", "metrics", "api", "log", "poll", "numbers",
                        "destinations", "time_zone", "fraud", "caller_id", "bgp"]
        for (key, node) in mapping(root, "", known: sections) {
            switch key {
            case "interfaces": interfaces(node, &c)
            case "pin_root":
                if let s = string(node, key) {
                    if s.hasPrefix("/") { c.pinRoot = s } else { problem(node, key, "must be an absolute path") }
                }
            case "max_sources":
                if let n = integer(node, key, 1024...100_000_000) { c.maxSources = UInt32(n) }
            case "max_bans":
                if let n = integer(node, key, 1024...10_000_000) { c.maxAutoBans = UInt32(n) }
            case "sip": sip(node, &c)
            case "limits":
                for (name, value) in mapping(node, key, known: TrafficClass.all.map(\.name) + ["verified"]) {
                    if name == "verified" {
                        for (name, value) in mapping(value, "limits.verified", known: TrafficClass.all.map(\.name)) {
                            if let l = limit(value, "limits.verified.\(name)"), let tc = TrafficClass(name: name) {
                                c.policy.verifiedLimits[tc] = l
                            }
                        }
                        continue
                    }
                    if let l = limit(value, "limits.\(name)"), let tc = TrafficClass(name: name) { c.policy.limits[tc] = l }
                }
            case "prefix": prefix(node, &c)
            case "budget":
                for (name, value) in mapping(node, key, known: ["sip", "new_sources"]) {
                    guard let l = limit(value, "budget.\(name)") else { continue }
                    if name == "sip" { c.policy.budget = l } else { c.policy.newSources = l }
                }
            case "allow":
                var options: [CIDR: AllowOptions]? = [:]
                c.policy.allow = Set(cidrList(node, key, files: &c.listFiles, options: &options))
                c.policy.allowOptions = options ?? [:]
            case "deny": c.policy.deny = Set(cidrList(node, key, files: &c.listFiles))
            case "scanners": scanners(node, &c)
            case "numbers": numbers(node, &c)
            case "destinations": destinations(node, &c)
            case "fraud": fraud(node, &c)
            case "caller_id": callerID(node, &c)
            case "bgp": bgp(node, &c)
            case "time_zone":
                if let s = string(node, key) {
                    if let zone = TimeZone(identifier: s) { c.timeZone = zone } else {
                        problem(node, key, "'\(s)' is not a time zone (an IANA name such as Europe/London or UTC)")
                    }
                }
            case "auto_ban": autoBan(node, &c)
            case "brute_force": bruteForce(node, &c)
            case "trust":
                for (name, value) in mapping(node, key, known: ["duration", "ttl_tolerance"]) {
                    if name == "ttl_tolerance" {
                        if let n = integer(value, "trust.ttl_tolerance", 0...64) { c.policy.settings.ttlTolerance = UInt8(n) }
                        continue
                    }
                    if value.scalar?.string == "off" { c.trustSeconds = 0; continue }
                    if let s = duration(value, "trust.duration") {
                        if s <= 365 * 86400 { c.trustSeconds = UInt32(s) } else {
                            problem(value, "trust.duration", "at most 365d")
                        }
                    }
                }
            case "anomaly": anomaly(node, &c)
            case "metrics":
                for (name, value) in mapping(node, key, known: ["listen"]) where name == "listen" {
                    guard let s = string(value, "metrics.listen") else { continue }
                    if s == "off" { c.metricsListen = nil } else if let problemText = checkListen(s) {
                        problem(value, "metrics.listen", problemText)
                    } else { c.metricsListen = s }
                }
            case "api":
                for (name, value) in mapping(node, key, known: ["socket", "group"]) {
                    guard let s = string(value, "api.\(name)") else { continue }
                    if name == "socket" {
                        if s == "off" { c.apiSocket = nil } else if !s.hasPrefix("/") || s.utf8.count > 107 {
                            problem(value, "api.socket", "must be an absolute path of at most 107 bytes, or off")
                        } else { c.apiSocket = s }
                    } else if s.isEmpty || s.utf8.count > 32 || s.contains(where: { $0.isWhitespace || $0 == ":" }) {
                        problem(value, "api.group", "must be a group name (got '\(s)')")
                    } else { c.apiGroup = s }
                }
            case "log":
                for (name, value) in mapping(node, key, known: ["format", "level", "per_second"]) {
                    if name == "level", let s = string(value, "log.level") {
                        let levels: [String: Logger.Level] = ["debug": .debug, "info": .info, "notice": .notice,
                                                             "warning": .warning, "error": .error]
                        if let l = levels[s] { c.logLevel = l } else {
                            problem(value, "log.level", "must be debug, info, notice, warning or error (got '\(s)')")
                        }
                    }
                    if name == "format", let s = string(value, "log.format") {
                        if let f = AgentConfig.LogFormat(rawValue: s) { c.logFormat = f } else {
                            problem(value, "log.format", "must be text or json (got '\(s)')")
                        }
                    }
                    if name == "per_second", let n = integer(value, "log.per_second", 1...10_000) { c.logPerSecond = n }
                }
            case "poll":
                if let ms = duration(node, key, milliseconds: true) {
                    if (50...10_000).contains(ms) { c.pollMilliseconds = Int(ms) } else {
                        problem(node, key, "must be from 50ms to 10s")
                    }
                }
            default: break
            }
        }
    }

    func interfaces(_ node: Node, _ c: inout AgentConfig) {
        for (name, value) in mapping(node, "interfaces", known: ["external", "inside", "mode"]) {
            let field = "interfaces.\(name)"
            if name == "external", let items = value.sequence {
                // Several uplinks.
                var names: [String] = []
                for item in items {
                    guard let s = string(item, field) else { continue }
                    if !PinRoot.isInterfaceName(s) { problem(item, field, "'\(s)' is not an interface name") }
                    else if names.contains(s) { problem(item, field, "names \(s) twice") }
                    else { names.append(s) }
                }
                if names.count > 8 { problem(value, field, "names \(names.count) interfaces; at most 8") }
                c.external = names.first
                c.otherExternal = Array(names.dropFirst())
                continue
            }
            guard let s = string(value, field) else { continue }
            switch name {
            case "mode":
                if let m = AttachMode(rawValue: s) { c.mode = m } else {
                    problem(value, field, "must be native, generic or auto (got '\(s)')")
                }
            default:
                guard !s.isEmpty, s.count < 16, !s.contains("/"), !s.contains(" ") else {
                    problem(value, field, "'\(s)' is not an interface name")
                    continue
                }
                if name == "external" { c.external = s } else { c.inside = s }
            }
        }
        if let inside = c.inside, c.externals.contains(inside) {
            problem(node, "interfaces.inside", "must differ from interfaces.external")
        }
    }

    func sip(_ node: Node, _ c: inout AgentConfig) {
        for (name, value) in mapping(node, "sip", known: ["ports", "rtp_ports", "malformed", "servers"]) {
            let field = "sip.\(name)"
            switch name {
            case "servers":
                let servers = cidrList(value, field, files: &c.listFiles)
                if servers.count > FilterCapacity.servers {
                    problem(value, field, "at most \(FilterCapacity.servers) addresses")
                } else { c.policy.servers = Set(servers) }
            case "ports":
                let ports = sequence(value, field).compactMap { integer($0, field, 1...65535) }.map(UInt16.init)
                if ports.isEmpty || ports.count > FilterCapacity.sipPorts {
                    problem(value, field, "must list 1 to \(FilterCapacity.sipPorts) ports")
                } else { c.policy.settings.sipPorts = ports }
            case "rtp_ports":
                guard let s = string(value, field) else { continue }
                if s == "none" { c.policy.settings.rtpPorts = nil; continue }
                let parts = s.split(separator: "-").compactMap { UInt16($0) }
                if parts.count == 2, parts[0] >= 1, parts[0] <= parts[1] { c.policy.settings.rtpPorts = parts[0]...parts[1] } else {
                    problem(value, field, "must be LOW-HIGH (ports 1 to 65535) or none (got '\(s)')")
                }
            case "malformed":
                guard let s = string(value, field) else { continue }
                if let m = MalformedAction(rawValue: s) { c.policy.settings.malformed = m } else {
                    problem(value, field, "must be drop or pass (got '\(s)')")
                }
            default: break
            }
        }
        if let rtp = c.policy.settings.rtpPorts, c.policy.settings.sipPorts.contains(where: { rtp.contains($0) }) {
            problem(node, "sip.rtp_ports", "overlaps the SIP ports")
        }
    }

    func prefix(_ node: Node, _ c: inout AgentConfig) {
        for (name, value) in mapping(node, "prefix", known: ["ipv4", "ipv6", "limit", "wide_ipv4", "wide_ipv6", "wide_limit"]) {
            let field = "prefix.\(name)"
            switch name {
            case "ipv4": if let n = integer(value, field, 8...32) { c.policy.settings.prefixV4 = UInt8(n) }
            case "ipv6": if let n = integer(value, field, 16...128) { c.policy.settings.prefixV6 = UInt8(n) }
            case "wide_ipv4": if let n = integer(value, field, 8...32) { c.policy.settings.wideV4 = UInt8(n) }
            case "wide_ipv6": if let n = integer(value, field, 16...128) { c.policy.settings.wideV6 = UInt8(n) }
            case "wide_limit": if let l = limit(value, field) { c.policy.widePrefix = l }
            default: if let l = limit(value, field) { c.policy.prefix = l }
            }
        }
        if c.policy.settings.wideV4 > c.policy.settings.prefixV4 { problem(node, "prefix.wide_ipv4", "must be at most prefix.ipv4") }
        if c.policy.settings.wideV6 > c.policy.settings.prefixV6 { problem(node, "prefix.wide_ipv6", "must be at most prefix.ipv6") }
    }

    func scanners(_ node: Node, _ c: inout AgentConfig) {
        for (name, value) in mapping(node, "scanners", known: ["ban", "signatures"]) {
            let field = "scanners.\(name)"
            if name == "ban" {
                if value.scalar?.string == "off" { c.policy.settings.scannerBanSeconds = 0 } else if let s = duration(value, field) {
                    if s <= UInt64(UInt32.max / 2) { c.policy.settings.scannerBanSeconds = UInt32(s) } else {
                        problem(value, field, "is too long")
                    }
                }
                continue
            }
            // "default", or a list of {user_agent: ...} / {from: ...}, optionally with "default" among them.
            if value.scalar?.string == "default" { c.policy.signatures = Set(Signature.defaults); continue }
            var list: [Signature] = []
            for item in sequence(value, field) {
                if item.scalar?.string == "default" { list += Signature.defaults; continue }
                for (header, text) in mapping(item, field, known: ["user_agent", "from"]) {
                    guard let s = string(text, "\(field).\(header)") else { continue }
                    do {
                        list.append(try Signature(header == "from" ? .from : .userAgent, s))
                    } catch {
                        problem(text, "\(field).\(header)", "\(error)")
                    }
                }
            }
            if list.count > FilterCapacity.signatures {
                problem(value, field, "at most \(FilterCapacity.signatures) signatures")
            } else { c.policy.signatures = Set(list) }
        }
    }

    /// `numbers: {country_code: "44", international: ["00"], national: "0", bare: e164|national|local}`.
    func numbers(_ node: Node, _ c: inout AgentConfig) {
        var plan = c.policy.settings.numbers
        for (name, value) in mapping(node, "numbers", known: ["country_code", "international", "national", "bare"]) {
            let field = "numbers.\(name)"
            switch name {
            case "country_code": if let s = string(value, field) { plan.countryCode = s.hasPrefix("+") ? String(s.dropFirst()) : s }
            case "international":
                plan.international = value.scalar != nil ? (string(value, field).map { [$0] } ?? [])
                    : sequence(value, field).compactMap { string($0, field) }
            case "national": if let s = string(value, field) { plan.national = s == "none" ? "" : s }
            default:
                guard let s = string(value, field) else { continue }
                if let b = BareNumbers(rawValue: s) { plan.bare = b } else {
                    problem(value, field, "must be e164, national or local (got '\(s)')")
                }
            }
        }
        do {
            try plan.validate()
            c.policy.settings.numbers = plan
        } catch { problem(node, "numbers", "\(error)") }
    }

    /// A list of rules, each `PREFIX block|allow|limit N/min [total N/min] [tier T]`; `file: PATH` entries of such
    /// lines; and `{rule: RULE, hours: WINDOW}` or `{rule: RULE, outside: WINDOW}` (a window or a list of them):
    /// rules in force only at those hours.
    func destinations(_ node: Node, _ c: inout AgentConfig) {
        var rules: [DestinationRule] = []
        func rule(_ item: Node, _ field: String) -> DestinationRule? {
            guard let text = string(item, field) else { return nil }
            do {
                return try DestinationRule.parse(text.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init))
            } catch {
                problem(item, field, "\(error)")
                return nil
            }
        }
        for item in sequence(node, "destinations") {
            if item.scalar != nil {
                if let r = rule(item, "destinations") { rules.append(r) }
                continue
            }
            if item.mapping?.keys.contains(where: { $0.string == "rule" }) == true {
                var scheduled: DestinationRule?
                var windows: [HoursWindow] = []
                var outside: Bool?
                for (name, value) in mapping(item, "destinations", known: ["rule", "hours", "outside"]) {
                    let field = "destinations.\(name)"
                    if name == "rule" { scheduled = rule(value, field); continue }
                    if outside != nil {
                        problem(value, field, "give hours or outside, not both")
                        continue
                    }
                    outside = name == "outside"
                    let texts = value.scalar != nil ? [value] : sequence(value, field)
                    for text in texts {
                        guard let s = string(text, field) else { continue }
                        do { windows.append(try HoursWindow(s)) } catch { problem(text, field, "\(error)") }
                    }
                }
                if outside == nil { problem(item, "destinations", "a rule with a schedule needs hours: or outside:") }
                if let scheduled, let outside, !windows.isEmpty {
                    c.scheduledDestinations.append(ScheduledDestination(rule: scheduled, windows: windows, outside: outside))
                }
                continue
            }
            rules += listFiles(item, "destinations", files: &c.listFiles, DestinationRule.parseList)
        }
        do {
            // The scheduled rules replace others while in force; two for one prefix and tier would fight.
            _ = try c.scheduledDestinations.map(\.rule).destinationEntryCount()
            let count = try rules.destinationEntryCount() + c.scheduledDestinations.map(\.rule).destinationEntryCount()
            if count > FilterCapacity.destinations {
                problem(node, "destinations", "needs \(count) entries (one per tier a rule applies to); at most \(FilterCapacity.destinations)")
            } else { c.policy.destinations = Set(rules) }
        } catch { problem(node, "destinations", "\(error)") }
    }

    /// `fraud: {block: 1h, international: N/min, high_risk: N/min, concurrent: N, ring_timeout: 3m, call_timeout: 4h,
    /// unverified|verified|allowed: {international, high_risk, concurrent}}`: the thresholds at the top apply to every
    /// tier but those a tier section sets; `off` counts nothing.
    func fraud(_ node: Node, _ c: inout AgentConfig) {
        typealias Entry = (international: UInt32??, highRisk: UInt32??, concurrent: UInt32??)
        var policy = FraudPolicy()
        var all = FraudPolicy.Thresholds()
        var tiers: [DestinationRule.Tier: Entry] = [:]
        func perMinute(_ value: Node, _ field: String) -> UInt32?? {
            guard let s = string(value, field) else { return .none }
            if s == "off" { return .some(nil) }
            do { return .some(try DestinationRule.parsePerMinute(s)) } catch {
                problem(value, field, "\(error)")
                return .none
            }
        }
        func calls(_ value: Node, _ field: String) -> UInt32?? {
            if value.scalar?.string == "off" { return .some(nil) }
            guard let n = integer(value, field, 1...Int(FraudPolicy.maxConcurrent)) else { return .none }
            return .some(UInt32(n))
        }
        func seconds(_ value: Node, _ field: String, _ range: ClosedRange<UInt64>, _ what: String) -> UInt32? {
            guard let s = duration(value, field) else { return nil }
            guard range.contains(s) else {
                problem(value, field, "must be \(what)")
                return nil
            }
            return UInt32(s)
        }
        let tierNames = DestinationRule.Tier.allCases.map(\.rawValue)
        let known = ["block", "international", "high_risk", "concurrent", "concurrent_action", "ring_timeout", "call_timeout"]
            + tierNames
        for (name, value) in mapping(node, "fraud", known: known) {
            let field = "fraud.\(name)"
            switch name {
            case "block":
                if value.scalar?.string == "off" { policy.blockSeconds = 0; continue }
                if let s = seconds(value, field, 1...30 * 86400, "1s to 30d") { policy.blockSeconds = s }
            case "international": if case .some(let n) = perMinute(value, field) { all.international = n }
            case "high_risk": if case .some(let n) = perMinute(value, field) { all.highRisk = n }
            case "concurrent": if case .some(let n) = calls(value, field) { all.concurrent = n }
            case "concurrent_action":
                switch string(value, field) {
                case "refuse": policy.blockWhenFull = false
                case "block": policy.blockWhenFull = true
                case let s?: problem(value, field, "must be refuse or block (got '\(s)')")
                case nil: break
                }
            case "ring_timeout": if let s = seconds(value, field, 1...3600, "1s to 1h") { policy.ringSeconds = s }
            case "call_timeout": if let s = seconds(value, field, 60...7 * 86400, "1m to 7d") { policy.callSeconds = s }
            default:
                guard let tier = DestinationRule.Tier(rawValue: name) else { continue }
                var entry: Entry = (.none, .none, .none)
                for (kind, v) in mapping(value, field, known: ["international", "high_risk", "concurrent"]) {
                    switch kind {
                    case "international": entry.international = perMinute(v, "\(field).international")
                    case "high_risk": entry.highRisk = perMinute(v, "\(field).high_risk")
                    default: entry.concurrent = calls(v, "\(field).concurrent")
                    }
                }
                tiers[tier] = entry
            }
        }
        for tier in DestinationRule.Tier.allCases {
            var t = all
            if let entry = tiers[tier] {
                if case .some(let n) = entry.international { t.international = n }
                if case .some(let n) = entry.highRisk { t.highRisk = n }
                if case .some(let n) = entry.concurrent { t.concurrent = n }
            }
            policy.thresholds[tier] = t
        }
        if policy.blockSeconds == 0
            && (policy.blockWhenFull || policy.thresholds.values.contains(where: { $0.international != nil || $0.highRisk != nil })) {
            problem(node, "fraud.block", "is needed: how long a source over a threshold gets no new calls (e.g. 1h)")
        }
        c.policy.fraud = policy.normalized
        fraudNode = node
    }

    /// `caller_id: {mode: enforce|flag|off, sources: [{from: [CIDR…], numbers: [PREFIX…]}]}`: the caller numbers
    /// (E.164 prefixes) each listed source network may present in From and P-Asserted-Identity.
    func callerID(_ node: Node, _ c: inout AgentConfig) {
        var policy = CallerIDPolicy()
        var modeGiven = false
        for (name, value) in mapping(node, "caller_id", known: ["mode", "sources"]) {
            switch name {
            case "mode":
                guard let s = string(value, "caller_id.mode") else { continue }
                if let m = CallerIDPolicy.Mode(rawValue: s) { policy.mode = m; modeGiven = true } else {
                    problem(value, "caller_id.mode", "must be enforce, flag or off (got '\(s)')")
                }
            default:
                for (i, item) in sequence(value, "caller_id.sources").enumerated() {
                    let field = "caller_id.sources[\(i + 1)]"
                    var sources: [CIDR] = []
                    var numbers: [String] = []
                    for (key, v) in mapping(item, field, known: ["from", "numbers"]) {
                        let sub = "\(field).\(key)"
                        let items = v.scalar != nil ? [v] : sequence(v, sub)
                        for entry in items {
                            guard let text = string(entry, sub) else { continue }
                            if key == "from" {
                                do { sources.append(try CIDR(text)) } catch { problem(entry, sub, "\(error)") }
                            } else {
                                do { numbers.append(try CallerIDPolicy.prefix(text)) } catch { problem(entry, sub, "\(error)") }
                            }
                        }
                    }
                    do { policy.entries.append(try CallerIDPolicy.Entry(sources: sources, numbers: numbers)) } catch {
                        problem(item, field, "\(error)")
                    }
                }
            }
        }
        if !modeGiven { problem(node, "caller_id.mode", "is required: enforce, flag or off") }
        do { try policy.validate() } catch { problem(node, "caller_id", "\(error)") }
        c.policy.callerID = policy.normalized
    }

    func autoBan(_ node: Node, _ c: inout AgentConfig) {
        let known = ["enabled", "drops", "window", "durations", "jitter", "forget"]
        for (name, value) in mapping(node, "auto_ban", known: known) {
            let field = "auto_ban.\(name)"
            switch name {
            case "enabled": if let b = boolean(value, field) { c.policy.settings.autoBan.enabled = b }
            case "drops": if let n = integer(value, field, 1...100_000_000) { c.policy.settings.autoBan.drops = UInt32(n) }
            case "window":
                if let ms = duration(value, field, milliseconds: true) {
                    if (100...3_600_000).contains(ms) { c.policy.settings.autoBan.windowMilliseconds = UInt32(ms) } else {
                        problem(value, field, "must be from 100ms to 1h")
                    }
                }
            case "durations":
                let items = sequence(value, field)
                let durations = items.compactMap { duration($0, field) }
                if items.isEmpty || items.count > 4 {
                    problem(value, field, "must list 1 to 4 durations, one per offence (the last repeats)")
                } else if durations.count == items.count {
                    if durations.contains(where: { $0 > 30 * 86400 }) {
                        problem(value, field, "a ban lasts at most 30d")
                    } else { c.policy.settings.autoBan.durations = durations.map(UInt32.init) }
                }
            case "jitter":
                guard let s = string(value, field) else { continue }
                if s.hasSuffix("%"), let n = UInt32(s.dropLast()), n <= 100 { c.policy.settings.autoBan.jitterPercent = n } else {
                    problem(value, field, "must be a percentage from 0% to 100% (got '\(s)')")
                }
            case "forget":
                if let s = duration(value, field) {
                    if s <= 365 * 86400 { c.policy.settings.autoBan.forgetSeconds = UInt32(s) } else { problem(value, field, "at most 365d") }
                }
            default: break
            }
        }
    }

    func bruteForce(_ node: Node, _ c: inout AgentConfig) {
        var b = c.bruteForce ?? BruteForce()
        var enabled = true
        for (name, value) in mapping(node, "brute_force", known: ["enabled", "failures", "window", "ban"]) {
            let field = "brute_force.\(name)"
            switch name {
            case "enabled": if let v = boolean(value, field) { enabled = v }
            case "failures": if let n = integer(value, field, 1...100_000) { b.failures = UInt32(n) }
            case "window":
                if let s = duration(value, field) {
                    if s <= 86400 { b.windowSeconds = UInt32(s) } else { problem(value, field, "at most 1d") }
                }
            case "ban":
                if let s = duration(value, field) {
                    if s <= 30 * 86400 { b.banSeconds = UInt32(s) } else { problem(value, field, "a ban lasts at most 30d") }
                }
            default: break
            }
        }
        c.bruteForce = enabled ? b : nil
    }

    func anomaly(_ node: Node, _ c: inout AgentConfig) {
        for (name, value) in mapping(node, "anomaly", known: ["enabled", "half_life", "factor", "minimum_rate"]) {
            let field = "anomaly.\(name)"
            switch name {
            case "enabled": if let b = boolean(value, field) { c.anomaly.enabled = b }
            case "half_life": if let s = duration(value, field) { c.anomaly.halfLifeSeconds = Double(s) }
            case "factor": if let f = number(value, field, 1.5...1000) { c.anomaly.factor = f }
            case "minimum_rate": if let f = number(value, field, 1...1e9) { c.anomaly.minimumRate = f }
            default: break
            }
        }
    }

    /// Inline CIDRs and `file: PATH` entries (relative to the config file), merged and deduplicated.
    func cidrList(_ node: Node, _ field: String, files: inout [String]) -> [CIDR] {
        var none: [CIDR: AllowOptions]? = nil
        return cidrList(node, field, files: &files, options: &none)
    }

    /// A list of CIDRs: inline ones, `file:` entries, and (where `options` is given: the allow list) entries
    /// `{cidr: CIDR, limit: RATE/s [burst N]|unlimited, ttl: MIN-MAX}`.
    func cidrList(_ node: Node, _ field: String, files: inout [String], options: inout [CIDR: AllowOptions]?) -> [CIDR] {
        var result: [CIDR] = []
        for item in sequence(node, field) {
            if let text = item.scalar?.string {
                do { result.append(try CIDR(text)) } catch { problem(item, field, "\(error)") }
                continue
            }
            if options != nil, item.mapping?.keys.contains(where: { $0.string == "cidr" }) == true {
                var cidr: CIDR?
                var entry = AllowOptions()
                for (name, value) in mapping(item, field, known: ["cidr", "limit", "ttl"]) {
                    let sub = "\(field).\(name)"
                    switch name {
                    case "cidr":
                        guard let text = string(value, sub) else { continue }
                        do { cidr = try CIDR(text) } catch { problem(value, sub, "\(error)") }
                    case "limit":
                        guard let l = limit(value, sub) else { continue }
                        if l == .block { problem(value, sub, "cannot be block: use the deny list") } else { entry.limit = l }
                    default:
                        guard let text = string(value, sub) else { continue }
                        do { entry.ttl = try AllowOptions.parseTTL(text) } catch { problem(value, sub, "\(error)") }
                    }
                }
                if let cidr {
                    result.append(cidr)
                    options?[cidr] = entry
                }
                continue
            }
            result += cidrFile(item, field, files: &files)
        }
        if result.count > FilterCapacity.listEntries {
            problem(node, field, "holds \(result.count) networks; at most \(FilterCapacity.listEntries)")
        }
        return Array(Set(result)).sorted()
    }

    /// A `{file: PATH}` entry of a list (relative to the config file's folder): its items, parsed by `parse`
    /// (which names every bad line of the file itself); noted in `files` so that a change to it reloads.
    func listFiles<T>(_ item: Node, _ field: String, files: inout [String], known: [String] = ["file"],
                      _ parse: (String, String) throws -> [T]) -> [T] {
        var result: [T] = []
        for (key, pathNode) in mapping(item, field, known: known) where key == "file" {
            guard let path = string(pathNode, "\(field).file") else { continue }
            let resolved = path.hasPrefix("/") ? path
                : URL(fileURLWithPath: file).deletingLastPathComponent().appendingPathComponent(path).path
            files.append(resolved)
            do {
                result += try parse(try String(contentsOfFile: resolved, encoding: .utf8), resolved)
            } catch let error as FloodgateError {
                problem(pathNode, "\(field).file", "\(error)")
            } catch {
                problem(pathNode, "\(field).file", "cannot read \(resolved): \(error.localizedDescription)")
            }
        }
        return result
    }

    /// Lines skipped in CIDR list files, for ``AgentConfig/warnings``.
    var skipped: [String] = []
    /// Deny entries read from list files (checked against the allow list and the SIP servers once all is read).
    var fileDeny: Set<CIDR> = []

    /// A CIDR list file entry, `{file: PATH, strict: BOOL}`: without `strict: true` a bad line is skipped with a
    /// warning (a published block list with one odd line still blocks the rest); with it, one bad line refuses
    /// the file. `#` and `;` start comments.
    func cidrFile(_ item: Node, _ field: String, files: inout [String]) -> [CIDR] {
        var strict = false
        if let node = item.mapping?["strict"] {
            strict = boolean(node, "\(field).strict") ?? false
        }
        return listFiles(item, field, files: &files, known: ["file", "strict"]) { text, name in
            var (cidrs, bad) = strict ? (try CIDR.parseList(text, name: name), []) : CIDR.parseListSkipping(text, name: name)
            // Nothing good in it: not a list file at all (a wrong path, an HTML error page).
            if cidrs.isEmpty && !bad.isEmpty { return try CIDR.parseList(text, name: name) }
            let wide = cidrs.filter(\.tooWideForAListFile)
            if !wide.isEmpty {
                let why = "\(wide[0]) is wider than a list file may \(field == "deny" ? "block" : "trust") (IPv4 under /8, IPv6 under /16; write it in the config itself if it is meant)"
                if strict { throw FloodgateError("\(name): \(why)") }
                bad.append("\(name): \(why)" + (wide.count > 1 ? ", and \(wide.count - 1) more such" : ""))
                cidrs.removeAll(where: \.tooWideForAListFile)
            }
            if field == "deny" { self.fileDeny.formUnion(cidrs) }
            self.skipped += bad.prefix(5)
            if bad.count > 5 { self.skipped.append("\(name): and \(bad.count - 5) more bad lines") }
            return cidrs
        }
    }

    func checkListen(_ s: String) -> String? {
        guard let colon = s.lastIndex(of: ":"), let port = Int(s[s.index(after: colon)...]), (1...65535).contains(port)
        else { return "must be HOST:PORT, e.g. 127.0.0.1:9464, or off (got '\(s)')" }
        let host = String(s[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        guard SourceAddress(host) != nil || host == "localhost" else {
            return "the host must be an IP address (got '\(host)')"
        }
        return nil
    }
}

/// Levenshtein distance, for "did you mean" hints.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    var row = Array(0...b.count)
    for i in 1...max(a.count, 1) where !a.isEmpty {
        var previous = row[0]
        row[0] = i
        for j in stride(from: 1, through: b.count, by: 1) {
            let current = row[j]
            row[j] = min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] == b[j - 1] ? 0 : 1))
            previous = current
        }
    }
    return a.isEmpty ? b.count : row[b.count]
}

extension ConfigReader {
    /// The `bgp:` section (``BGPConfig``).
    func bgp(_ node: Node, _ c: inout AgentConfig) {
        var b = BGPConfig()
        var daemon: String?
        let known = ["daemon", "gobgp", "api", "community", "export", "rtbh", "next_hop", "ports", "max_routes", "rate",
                     "aggregate", "never_export", "learn", "max_learned", "hold", "interval", "destination", "communities"]
        for (name, value) in mapping(node, "bgp", known: known) {
            let field = "bgp.\(name)"
            switch name {
            case "daemon":
                guard let s = string(value, field) else { continue }
                if s == "gobgp" || s == "off" { daemon = s } else {
                    problem(value, field, "must be gobgp (the daemon driven) or off (got '\(s)')")
                }
            case "gobgp":
                if let s = string(value, field) {
                    if s.hasPrefix("/") { b.gobgp = s } else { problem(value, field, "must be an absolute path") }
                }
            case "api":
                if let s = string(value, field) {
                    if let problemText = checkListen(s) { problem(value, field, problemText) } else { b.api = s }
                }
            case "community":
                if let s = string(value, field) {
                    if let v = BGPConfig.community(s), v >> 16 != 0, v >> 16 != 0xFFFF { b.community = v } else {
                        problem(value, field, "must be ASN:value with a 16-bit ASN other than 0 and 65535 (got '\(s)')")
                    }
                }
            case "communities":
                for item in sequence(value, field) {
                    guard let s = string(item, field) else { continue }
                    if let v = BGPConfig.community(s) { b.extraCommunities.append(v) } else {
                        problem(item, field, "'\(s)' is not a community (ASN:value, each 0 to 65535)")
                    }
                }
            case "export", "rtbh":
                var origins = Set<String>()
                for item in sequence(value, field) {
                    guard let s = string(item, field) else { continue }
                    if !BGPConfig.origins.contains(s) {
                        problem(item, field, "'\(s)' is not an origin: \(BGPConfig.origins.joined(separator: ", "))")
                    } else if name == "rtbh" && !BGPConfig.unforgeable.contains(s) {
                        problem(item, field, "'\(s)' can't be RTBH: its bans come from packets or log lines whose source may be forged, and RTBH drops all of an address's traffic upstream (explicit only)")
                    } else { origins.insert(s) }
                }
                if name == "export" { b.export = origins } else { b.rtbh = origins }
            case "next_hop":
                for item in sequence(value, field) {
                    guard let s = string(item, field) else { continue }
                    guard let a = SourceAddress(s) else { problem(item, field, "'\(s)' is not an address"); continue }
                    if a.isIPv4 { b.nextHopV4 = s } else { b.nextHopV6 = s }
                }
            case "ports":
                var ports: [UInt16] = []
                for p in sequence(value, field).compactMap({ integer($0, field, 1...65535).map(UInt16.init) }) where !ports.contains(p) {
                    ports.append(p)
                }
                b.ports = ports
                if b.ports.isEmpty { problem(value, field, "needs at least one port") }
            case "destination":
                var files: [String] = []
                for n in cidrList(value, field, files: &files) {
                    if n.isIPv4 ? b.destinationV4 != nil : b.destinationV6 != nil {
                        problem(value, field, "one network per family (a FlowSpec route holds one destination)")
                    } else if n.isIPv4 { b.destinationV4 = n } else { b.destinationV6 = n }
                }
                if !files.isEmpty { problem(value, field, "takes networks, not files") }
            case "max_routes":
                if let n = integer(value, field, 1...1_000_000) { b.maxRoutes = n }
            case "rate":
                if let n = integer(value, field, 1...10_000) { b.rate = n }
            case "aggregate":
                if value.scalar?.string == "off" { b.aggregate = 0 } else if let n = integer(value, field, 2...256) {
                    b.aggregate = n
                }
            case "never_export":
                var files: [String] = []
                b.neverExport = cidrList(value, field, files: &files)
                if !files.isEmpty { problem(value, field, "takes networks, not files") }
            case "learn":
                if let v = boolean(value, field) { b.learn = v }
            case "max_learned":
                if let n = integer(value, field, 0...FilterCapacity.peerBans) { b.maxLearned = n }
            case "hold":
                if let seconds = duration(value, field) {
                    if (60...30 * 86400).contains(seconds) { b.holdSeconds = seconds } else { problem(value, field, "must be 1m to 30d") }
                }
            case "interval":
                if let ms = duration(value, field, milliseconds: true) {
                    if (100...10_000).contains(ms) { b.intervalMilliseconds = Int(ms) } else {
                        problem(value, field, "must be 100ms to 10s")
                    }
                }
            default: break
            }
        }
        if daemon == nil { problem(node, "bgp.daemon", "is needed: gobgp, or off") }
        if b.community == 0 && daemon == "gobgp" {
            problem(node, "bgp.community", "is needed: the community that marks Floodgate's routes, such as 64496:666")
        }
        if !b.rtbh.isSubset(of: b.export) {
            problem(node, "bgp.rtbh", "names origins bgp.export does not: \(b.rtbh.subtracting(b.export).sorted().joined(separator: ", "))")
        }
        if !b.rtbh.isEmpty && b.nextHopV4 == nil && b.nextHopV6 == nil {
            problem(node, "bgp.next_hop", "is needed for RTBH routes (the discard next hop the upstream agreed)")
        }
        c.bgp = daemon == "gobgp" ? b : nil
    }
}
