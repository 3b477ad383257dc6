import FloodgateCore
import Foundation

/// The `bgp:` section: bans announced as FlowSpec (and RTBH) routes through a local gobgpd, and bans learned from
/// the routes other Floodgate routers announce. Restart-only.
public struct BGPConfig: Sendable, Equatable {
    /// The ban origins that may be exported. `fraud`: sources the fraud checks blocked for new calls.
    public static let origins = ["explicit", "integration", "scanner", "auto", "brute-force", "fraud"]
    /// The origins only the operator's word makes: the others come from packets or log lines whose source address
    /// may be forged, so they never go out as RTBH (all traffic dropped upstream) nor aggregated into a /24.
    public static let unforgeable: Set<String> = ["explicit"]
    /// RFC 7999's BLACKHOLE community, 65535:666.
    public static let blackhole: UInt32 = 0xFFFF_029A
    /// The gobgp command-line client that drives the daemon.
    public var gobgp = "/usr/bin/gobgp"
    /// The daemon's gRPC address (host:port).
    public var api = "127.0.0.1:50051"
    /// The standard community that marks Floodgate's routes (ASN << 16 | value); the large community ASN:1:T
    /// beside it carries when the ban ends (Unix seconds).
    public var community: UInt32 = 0
    /// More standard communities on every route announced: an upstream's own, such as the one its blackhole or
    /// FlowSpec service asks for.
    public var extraCommunities: [UInt32] = []
    /// Origins announced as FlowSpec routes.
    public var export: Set<String> = ["explicit"]
    /// Origins also announced as RTBH routes (BLACKHOLE community, RFC 7999), for an upstream that drops by source
    /// (uRPF against the blackhole route, RFC 5635): all their traffic, not only SIP.
    public var rtbh: Set<String> = []
    public var nextHopV4: String?
    public var nextHopV6: String?
    /// Destination ports of the FlowSpec routes (UDP and TCP).
    public var ports: [UInt16] = [5060, 5061]
    /// The FlowSpec routes' destination, per family: the networks of this SIP edge. Without one, an upstream that
    /// takes the route drops the source's SIP to every network it serves, and some refuse such routes (RFC 8955
    /// validation).
    public var destinationV4: CIDR?
    public var destinationV6: CIDR?
    /// Routes announced at most; bans past it stay local (``BGPSpeaker``'s over-cap count).
    public var maxRoutes = 1000
    /// Route announcements and withdrawals a second at most (each a `gobgp` process: about 12 ms of CPU here).
    public var rate = 50
    /// Bans in one /24 (IPv6 /64) from which they go out as one route for the network; 0: never.
    public var aggregate = 8
    /// Networks never announced, whatever is banned (the allow list and the SIP servers are never announced
    /// either, nor verified sources).
    public var neverExport: [CIDR] = []
    /// Install the bans other Floodgate routers announce.
    public var learn = true
    /// Learned bans kept at most.
    public var maxLearned = 10000
    /// How long a learned ban whose route went without being lifted (a lost session somewhere) and that carried
    /// no end time is kept.
    public var holdSeconds: UInt64 = 3600
    /// How often the bans are compared with the routes.
    public var intervalMilliseconds = 500

    public init() {}

    /// "64496:666" as a 32-bit community.
    public static func community(_ text: String) -> UInt32? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let a = UInt16(parts[0]), let b = UInt16(parts[1]) else { return nil }
        return UInt32(a) << 16 | UInt32(b)
    }

    public static func communityText(_ value: UInt32) -> String { "\(value >> 16):\(value & 0xFFFF)" }

    var asn: UInt32 { community >> 16 }
}

/// A route in gobgpd's RIB, as `gobgp ... -j` prints it (the parts Floodgate reads).
public struct BGPPath: Sendable, Equatable {
    /// The source prefix of a FlowSpec route, or a unicast route's prefix, as gobgp writes it.
    public var prefix: String
    /// The peer it came from; nil: announced by this router.
    public var neighbor: String?
    public var communities: [UInt32]
    /// The large communities, as (global administrator, local data 1, local data 2).
    public var largeCommunities: [(UInt32, UInt32, UInt32)]
    /// ASes on the AS path: 0 for a route made inside this AS.
    public var asPathLength = 0
    /// A FlowSpec route's destination ports (`==N` components) and destination prefix, and whether its action is
    /// discard (traffic-rate 0).
    public var ports: [UInt16] = []
    public var destination: String?
    public var discard = false
    public var withdrawal: Bool

    public static func == (a: BGPPath, b: BGPPath) -> Bool {
        a.prefix == b.prefix && a.neighbor == b.neighbor && a.communities == b.communities && a.withdrawal == b.withdrawal
            && a.largeCommunities.map { [$0.0, $0.1, $0.2] } == b.largeCommunities.map { [$0.0, $0.1, $0.2] }
    }

    /// When the ban ends (Unix seconds), from the large community `asn`:1:T; nil: none given; 0: lifted (the route
    /// is about to be withdrawn, on purpose).
    public func expiry(asn: UInt32) -> UInt64? {
        largeCommunities.first { $0.0 == asn && $0.1 == 1 }.map { UInt64($0.2) }
    }
}

/// A BGP session as gobgpd reports it.
public struct BGPSession: Sendable, Equatable {
    public var address: String
    public var peerAS: UInt32
    public var established: Bool
    /// Unix seconds when the session came up (meaningful while established).
    public var upSince: Int
}

/// Drives gobgpd through its command-line client (`gobgp`), which speaks the daemon's gRPC API: a process per
/// command, JSON read back.
public struct GoBGP: Sendable {
    public let executable: String
    let host: String
    let port: String

    public init(executable: String, api: String) {
        self.executable = executable
        let colon = api.lastIndex(of: ":")!
        host = String(api[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        port = String(api[api.index(after: colon)...])
    }

    var base: [String] { ["-u", host, "-p", port] }

    /// Runs `gobgp` with `arguments`; its standard output, or an error with what it wrote to standard error.
    /// A command that hangs is killed after 10 s.
    @discardableResult
    public func run(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = base + arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch {
            throw FloodgateError("cannot run \(executable): \(error)")
        }
        let pid = process.processIdentifier
        let watchdog = DispatchWorkItem { kill(pid, SIGKILL) }
        DispatchQueue.global().asyncAfter(deadline: .now() + 10, execute: watchdog)
        let errData = ErrorCollector(err.fileHandleForReading)
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        watchdog.cancel()
        let text = String(decoding: data, as: UTF8.self)
        guard process.terminationReason == .exit, process.terminationStatus == 0 else {
            let why = errData.text().trimmingCharacters(in: .whitespacesAndNewlines)
            throw FloodgateError("gobgp \(arguments.prefix(4).joined(separator: " ")) failed: \(why.isEmpty ? "status \(process.terminationStatus)" : why)")
        }
        return text
    }

    /// The routes of the global RIB of `family` (ipv4-flowspec, ipv6-flowspec, ipv4, ipv6).
    public func rib(_ family: String) throws -> [BGPPath] {
        try GoBGP.paths(fromRIB: run(["global", "rib", "-a", family, "-j"]))
    }

    public func sessions() throws -> [BGPSession] {
        let text = try run(["neighbor", "-j"])
        guard let list = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [[String: Any]] else {
            if text.trimmingCharacters(in: .whitespacesAndNewlines) == "null" { return [] }
            throw FloodgateError("gobgp neighbor -j: not a list of sessions")
        }
        return list.compactMap { n in
            let state = n["state"] as? [String: Any] ?? [:]
            let timers = (n["timers"] as? [String: Any])?["state"] as? [String: Any] ?? [:]
            guard let address = state["neighbor_address"] as? String ?? (n["conf"] as? [String: Any])?["neighbor_address"] as? String
            else { return nil }
            return BGPSession(address: address, peerAS: GoBGP.uint(state["peer_asn"]) ?? 0,
                              established: GoBGP.uint(state["session_state"]) == 6,
                              upSince: Int(GoBGP.uint((timers["uptime"] as? [String: Any])?["seconds"]) ?? 0))
        }
    }

    static func uint(_ v: Any?) -> UInt32? {
        if let n = v as? NSNumber { return n.uint32Value }
        if let s = v as? String { return UInt32(s) }
        return nil
    }

    /// The paths of a `global rib -j` dump: an object from each destination to its paths.
    static func paths(fromRIB text: String) throws -> [BGPPath] {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.isEmpty || trimmed == "null" || trimmed == "{}" { return [] }
        guard let dump = try JSONSerialization.jsonObject(with: Data(trimmed.utf8)) as? [String: Any] else {
            throw FloodgateError("gobgp rib -j: not an object of destinations")
        }
        return dump.values.flatMap { ($0 as? [[String: Any]] ?? []).compactMap(path) }
    }

    /// The paths of one line of `monitor global rib -j`: a list of paths.
    static func paths(fromMonitorLine line: String) -> [BGPPath] {
        guard let list = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [[String: Any]] else { return [] }
        return list.compactMap(path)
    }

    static func path(_ p: [String: Any]) -> BGPPath? {
        let nlri = p["nlri"] as? [String: Any] ?? [:]
        var prefix = nlri["prefix"] as? String
        var ports: [UInt16] = []
        var destination: String?
        if prefix == nil, let parts = nlri["value"] as? [[String: Any]] {
            // FlowSpec: the source prefix component (type 2), the destination ports (type 5).
            prefix = parts.first { uint($0["type"]) == 2 }.flatMap { ($0["value"] as? [String: Any])?["prefix"] as? String }
            destination = parts.first { uint($0["type"]) == 1 }.flatMap { ($0["value"] as? [String: Any])?["prefix"] as? String }
            for part in parts where uint(part["type"]) == 5 {
                ports += (part["value"] as? [[String: Any]] ?? []).compactMap { uint($0["value"]).flatMap { UInt16(exactly: $0) } }
            }
        }
        guard let prefix else { return nil }
        var communities: [UInt32] = []
        var large: [(UInt32, UInt32, UInt32)] = []
        var asPathLength = 0
        var discard = false
        for attr in p["attrs"] as? [[String: Any]] ?? [] {
            switch uint(attr["type"]) {
            case 16:
                // Extended communities: traffic-rate (type 0x80, subtype 6) of 0 is discard.
                for v in attr["value"] as? [[String: Any]] ?? [] where uint(v["type"]) == 128 && uint(v["subtype"]) == 6 {
                    if (v["rate"] as? NSNumber)?.doubleValue == 0 { discard = true }
                }
            case 2:
                for segment in attr["as_paths"] as? [[String: Any]] ?? [] { asPathLength += (segment["asns"] as? [Any])?.count ?? 0 }
            case 8: communities = (attr["communities"] as? [Any] ?? []).compactMap(uint)
            case 32:
                for v in attr["value"] as? [[String: Any]] ?? [] {
                    if let a = uint(v["ASN"]), let b = uint(v["LocalData1"]), let c = uint(v["LocalData2"]) { large.append((a, b, c)) }
                }
            default: break
            }
        }
        let neighbor = p["neighbor-ip"] as? String
        return BGPPath(prefix: prefix, neighbor: neighbor == "<nil>" || neighbor?.isEmpty == true ? nil : neighbor,
                       communities: communities, largeCommunities: large, asPathLength: asPathLength, ports: ports,
                       destination: destination, discard: discard, withdrawal: p["withdrawal"] as? Bool ?? false)
    }

    /// The FlowSpec match of a ban's route: the destination (if any), the source, UDP or TCP, the SIP ports.
    func flowSpecMatch(_ network: CIDR, destination: CIDR?, ports: [UInt16]) -> [String] {
        ["match"] + (destination.map { ["destination", "\($0)"] } ?? []) + ["source", "\(network)", "protocol", "==udp", "==tcp",
                                                                          "destination-port"] + ports.map { "==\($0)" }
    }

    /// `expiry` 0 marks the ban lifted: the route is withdrawn a moment later, and peers tell that from a
    /// withdrawal for a lost session.
    public func announceFlowSpec(_ network: CIDR, destination: CIDR?, ports: [UInt16], community: UInt32, extra: [UInt32] = [],
                                 expiry: UInt64?) throws {
        var args = ["global", "rib", "-a", network.isIPv4 ? "ipv4-flowspec" : "ipv6-flowspec", "add"]
            + flowSpecMatch(network, destination: destination, ports: ports)
            + ["then", "discard", "community", ([community] + extra).map(BGPConfig.communityText).joined(separator: ",")]
        if let expiry { args += ["large-community", "\(community >> 16):1:\(min(expiry, UInt64(UInt32.max)))"] }
        try run(args)
    }

    public func withdrawFlowSpec(_ network: CIDR, destination: CIDR?, ports: [UInt16]) throws {
        try run(["global", "rib", "-a", network.isIPv4 ? "ipv4-flowspec" : "ipv6-flowspec", "del"]
            + flowSpecMatch(network, destination: destination, ports: ports) + ["then", "discard"])
    }

    public func announceRTBH(_ network: CIDR, nextHop: String, community: UInt32, extra: [UInt32] = []) throws {
        try run(["global", "rib", "-a", network.isIPv4 ? "ipv4" : "ipv6", "add", "\(network)", "nexthop", nextHop,
                 "community", ([BGPConfig.blackhole, community] + extra).map(BGPConfig.communityText).joined(separator: ",")])
    }

    public func withdrawRTBH(_ network: CIDR) throws {
        try run(["global", "rib", "-a", network.isIPv4 ? "ipv4" : "ipv6", "del", "\(network)"])
    }
}

/// A child's standard error, read on a thread of its own so that the child never blocks on a full pipe.
private final class ErrorCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    private let done = DispatchSemaphore(value: 0)

    init(_ handle: FileHandle) {
        Thread.detachNewThread { [self] in
            let d = handle.readDataToEndOfFile()
            lock.lock(); data = d; lock.unlock()
            done.signal()
        }
    }

    func text() -> String {
        _ = done.wait(timeout: .now() + 1)
        lock.lock(); defer { lock.unlock() }
        return String(decoding: data, as: UTF8.self)
    }
}

extension CIDR {
    /// gobgp's way of writing a prefix: "198.18.5.5/32", or for IPv6 FlowSpec "2001:db8::1/128/0" (an offset).
    init?(gobgp text: String) {
        var t = text
        if t.filter({ $0 == "/" }).count == 2, let last = t.lastIndex(of: "/") { t = String(t[..<last]) }
        guard let c = try? CIDR(t) else { return nil }
        self = c
    }
}
