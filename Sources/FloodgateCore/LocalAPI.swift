#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// The agent's local API: a unix stream socket (by default /run/floodgate/api.sock, mode 0660, group
/// `floodgate`) speaking JSON lines, so that a SIP server, fail2ban or a script can ban and unban without root.
/// One request per line, one answer per line, in order:
///
///     {"op": "ban", "address": "198.51.100.7", "for": "10m"}      → {"ok": true, "outcomes": [...]}
///     {"op": "ban", "address": "198.51.100.7", "seconds": 600}
///     {"op": "ban", "address": "198.51.100.7", "forever": true}
///     {"op": "unban", "address": "198.51.100.7"}                  → {"ok": true, "lifted": [...], "filters": [...]}
///     {"op": "bans"}                                              → {"ok": true, "bans": [...]}
///     {"op": "stats"}                                             → {"ok": true, "stats": [...]}
///     {"op": "ping"}                                              → {"ok": true, "version": "…"}
///
/// Every request may name `"interfaces": [...]` (default: every attached filter). Its bans are an integration's
/// (``PinRoot/banSource(_:seconds:interfaces:integration:spareTrusted:)``): they spare a source the allow list holds
/// or the filter verified (`"spare_trusted"`, true unless a root client sets it false), since the callers act on
/// log lines a forger can provoke with a trusted source's address; they never touch the operator's bans or
/// shorten a longer one; `unban` lifts only an integration's ban. Anything else — bad JSON, an unknown op or
/// field, a bad address, duration or interface — is answered `{"ok": false, "error": "…"}` and changes nothing; a
/// line over 4,096 bytes closes the connection.
public enum LocalAPI {
    public static let defaultSocket = "/run/floodgate/api.sock"
    public static let defaultGroup = "floodgate"
    public static let maxLineBytes = 4096
    public static let maxConnections = 16
    public static let maxConnectionsPerUser = 4
    public static let idleSeconds = 60

    /// A parsed request.
    public enum Request: Equatable, Sendable {
        case ban(SourceAddress, seconds: UInt64?, spareTrusted: Bool, interfaces: [String])
        case unban(SourceAddress, interfaces: [String])
        case bans(interfaces: [String])
        case stats(interfaces: [String])
        case ping

        public var op: String {
            switch self {
            case .ban: "ban"
            case .unban: "unban"
            case .bans: "bans"
            case .stats: "stats"
            case .ping: "ping"
            }
        }

        /// Reads one line; a request a root client (`peerIsRoot`) sends may turn `spare_trusted` off.
        public static func parse(_ line: [UInt8], peerIsRoot: Bool) throws -> Request {
            func bad(_ why: String) -> FloodgateError { FloodgateError(why) }
            guard let object = try? JSONSerialization.jsonObject(with: Data(line)),
                  let fields = object as? [String: Any]
            else { throw bad("not a JSON object") }
            guard let op = fields["op"] as? String else { throw bad("no \"op\" (ban, unban, bans, stats or ping)") }
            let known: [String: Set<String>] = [
                "ban": ["op", "address", "for", "seconds", "forever", "spare_trusted", "interfaces"],
                "unban": ["op", "address", "interfaces"], "bans": ["op", "interfaces"], "stats": ["op", "interfaces"],
                "ping": ["op"],
            ]
            guard let allowed = known[op] else { throw bad("unknown op '\(op)': ban, unban, bans, stats or ping") }
            if let extra = Set(fields.keys).subtracting(allowed).sorted().first {
                throw bad("'\(extra)' is not a field of \(op)")
            }
            var interfaces: [String] = []
            if let value = fields["interfaces"] {
                guard let names = value as? [String], names.allSatisfy(PinRoot.isInterfaceName) else {
                    throw bad("\"interfaces\" must be a list of interface names")
                }
                interfaces = names
            }
            func address() throws -> SourceAddress {
                guard let text = fields["address"] as? String else { throw bad("\(op) needs \"address\"") }
                guard let a = SourceAddress(text) else { throw bad("'\(text)' is not an IPv4 or IPv6 address") }
                return a
            }
            switch op {
            case "ban":
                let source = try address()
                let given = ["for", "seconds", "forever"].filter { fields[$0] != nil }
                guard given.count == 1 else { throw bad("ban takes exactly one of \"for\", \"seconds\" or \"forever\"") }
                var seconds: UInt64?
                if let text = fields["for"] {
                    guard let text = text as? String else { throw bad("\"for\" must be a duration string, e.g. \"10m\"") }
                    seconds = try parseDuration(text)
                } else if let number = fields["seconds"] {
                    guard !isBool(number), let n = number as? NSNumber,
                          n.doubleValue >= 1, n.doubleValue <= 315_360_000, n.doubleValue.rounded() == n.doubleValue
                    else { throw bad("\"seconds\" must be a whole number of seconds from 1 to 315360000") }
                    seconds = n.uint64Value
                } else {
                    guard isBool(fields["forever"]), fields["forever"] as? Bool == true else {
                        throw bad("\"forever\" must be true")
                    }
                }
                var spare = true
                if let value = fields["spare_trusted"] {
                    guard isBool(value), let b = value as? Bool else { throw bad("\"spare_trusted\" must be true or false") }
                    guard b || peerIsRoot else {
                        throw bad("only root may ban an allow-listed or verified source (\"spare_trusted\": false)")
                    }
                    spare = b
                }
                return .ban(source, seconds: seconds, spareTrusted: spare, interfaces: interfaces)
            case "unban": return .unban(try address(), interfaces: interfaces)
            case "bans": return .bans(interfaces: interfaces)
            case "stats": return .stats(interfaces: interfaces)
            default: return .ping
            }
        }

        /// The request as one JSON line.
        public func line() -> [UInt8] {
            var fields: [String: Any] = ["op": op]
            switch self {
            case .ban(let a, let seconds, let spare, let interfaces):
                fields["address"] = a.description
                if let seconds { fields["seconds"] = seconds } else { fields["forever"] = true }
                if !spare { fields["spare_trusted"] = false }
                if !interfaces.isEmpty { fields["interfaces"] = interfaces }
            case .unban(let a, let interfaces):
                fields["address"] = a.description
                if !interfaces.isEmpty { fields["interfaces"] = interfaces }
            case .bans(let interfaces), .stats(let interfaces):
                if !interfaces.isEmpty { fields["interfaces"] = interfaces }
            case .ping: break
            }
            return LocalAPI.encode(fields)
        }
    }

    /// One answer: `ok`, and an error or what the op returns.
    public struct Response: Codable, Sendable {
        public var ok: Bool
        public var error: String?
        public var outcomes: [BanOutcome]?
        public var lifted: [String]?
        public var filters: [String]?
        public var bans: [BanRow]?
        public var stats: [StatsReport]?
        public var version: String?

        public init(ok: Bool, error: String? = nil) {
            self.ok = ok
            self.error = error
        }

        public func line() -> [UInt8] {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            var data = (try? encoder.encode(self)) ?? Data(#"{"ok":false,"error":"cannot encode the answer"}"#.utf8)
            data.append(0x0A)
            return Array(data)
        }
    }

    /// Does what `request` asks to the filters under `root`.
    public static func perform(_ request: Request, root: PinRoot) -> Response {
        do {
            var answer = Response(ok: true)
            switch request {
            case .ban(let source, let seconds, let spare, let interfaces):
                answer.outcomes = try root.banSource(source, seconds: seconds, interfaces: interfaces, integration: true,
                                                     spareTrusted: spare)
            case .unban(let source, let interfaces):
                let result = try root.unbanSource(source, interfaces: interfaces, integration: true)
                answer.filters = result.filters
                answer.lifted = result.lifted
            case .bans(let interfaces):
                answer.bans = try root.banRows(interfaces: interfaces)
            case .stats(let interfaces):
                answer.stats = try root.selectFilters(interfaces).map {
                    try StatsReport.read($0, maps: try root.maps(of: $0.interfaceName))
                }
            case .ping:
                answer.version = floodgateVersion
            }
            return answer
        } catch {
            return Response(ok: false, error: "\(error)")
        }
    }

    /// Whether a JSONSerialization value is a JSON true or false (it bridges 0 and 1 to Bool too).
    static func isBool(_ value: Any?) -> Bool {
        guard let value else { return false }
        return ObjectIdentifier(type(of: value as AnyObject)) == booleanType
    }
    private static let booleanType = ObjectIdentifier(type(of: NSNumber(value: true)))

    static func encode(_ fields: [String: Any]) -> [UInt8] {
        var data = (try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])) ?? Data("{}".utf8)
        data.append(0x0A)
        return Array(data)
    }

    // MARK: Client

    /// Sends one request to the agent's socket at `path` and reads its answer (what the CLI does when it is not
    /// root and an agent serves the API).
    public static func call(_ request: Request, socket path: String = defaultSocket) throws -> Response {
        let fd = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw FloodgateError("cannot make a unix socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw FloodgateError("the API socket path is too long: \(path)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in for (i, b) in bytes.enumerated() { raw[i] = b } }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else {
            let why = errno
            let hint = why == EACCES
                ? "the socket is for root and the members of its group (\(defaultGroup) by default): add your user to it"
                : "is the agent running (floodgate run, systemctl status floodgate) with its API on?"
            throw FloodgateError("cannot reach the agent's API at \(path): \(String(cString: strerror(why)))", hint: hint)
        }
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let line = request.line()
        guard line.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == line.count else {
            throw FloodgateError("cannot send to the agent's API at \(path): \(String(cString: strerror(errno)))")
        }
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw FloodgateError("the agent's API at \(path) closed without an answer") }
            answer += buffer[0..<n]
            if buffer[0..<n].contains(0x0A) { break }  // only the new bytes are looked at
            guard answer.count < 256 << 20 else { throw FloodgateError("the agent's answer is too long") }
        }
        let data = Data(answer.prefix { $0 != 0x0A })
        do { return try JSONDecoder().decode(Response.self, from: data) } catch {
            throw FloodgateError("the agent's API answered something that is not an answer: \(error)")
        }
    }
}
