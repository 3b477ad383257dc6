import ArgumentParser
import FloodgateAgent
import FloodgateCore
import Foundation

/// `floodgate bgp`: what the BGP daemon the agent drives holds.
struct BGPCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bgp", abstract: "Bans shared over BGP: the daemon's sessions and Floodgate's routes.",
        subcommands: [BGPStatus.self])
}

struct BGPStatus: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "The BGP sessions, the routes this router announces and the bans it learned from peers.",
        discussion: """
            Asks the daemon the config's bgp: section names (gobgpd, through gobgp). Routes are Floodgate's when \
            they carry its community. Exit status 1 when the daemon does not answer.
            """)
    @Option(help: "The agent's config file.") var config = AgentConfig.defaultPath
    @Flag(help: "Print JSON.") var json = false
    @Option(help: "Routes listed of each kind at most (the counts are whole).") var limit = 50

    func validate() throws {
        guard limit >= 0 else { throw ValidationError("--limit must be 0 or more.") }
    }

    struct Report: Encodable {
        struct Session: Encodable {
            var address: String
            var peerAS: UInt32
            var state: String
            var upSince: Int?
        }
        struct Route: Encodable {
            var network: String
            var type: String
            var until: UInt64?
            var peer: String?
        }
        var api: String
        var community: String
        var reachable: Bool
        var error: String?
        var sessions: [Session] = []
        var announcedCount = 0
        var learnedCount = 0
        var announced: [Route] = []
        var learned: [Route] = []
    }

    func run() throws {
        let c: AgentConfig
        do { c = try AgentConfig.load(path: config) } catch let errors as ConfigErrors {
            FileHandle.standardError.write(Data((errors.description + "\n").utf8))
            throw ExitCode(1)
        }
        guard let b = c.bgp else { throw FloodgateError("\(config) has no bgp: section (or daemon: off)") }
        let gobgp = GoBGP(executable: b.gobgp, api: b.api)
        var report = Report(api: b.api, community: BGPConfig.communityText(b.community), reachable: true)
        do {
            report.sessions = try gobgp.sessions().map {
                .init(address: $0.address, peerAS: $0.peerAS, state: $0.established ? "established" : "down",
                      upSince: $0.established ? $0.upSince : nil)
            }
            var announced: [Report.Route] = [], learned: [Report.Route] = []
            for family in ["ipv4-flowspec", "ipv6-flowspec", "ipv4", "ipv6"] {
                let unicast = !family.hasSuffix("flowspec")
                for p in try gobgp.rib(family) where p.communities.contains(b.community) {
                    if unicast && !p.communities.contains(BGPConfig.blackhole) { continue }
                    // What the agent would learn: discard routes made inside the AS (lifted ones are on their way out).
                    if p.neighbor != nil && (unicast || p.asPathLength > 0 || !p.discard) { continue }
                    let expiry = p.expiry(asn: b.community >> 16)
                    let route = Report.Route(network: p.prefix, type: unicast ? "rtbh" : "flowspec", until: expiry, peer: p.neighbor)
                    if p.neighbor == nil { announced.append(route) } else if !unicast { learned.append(route) }
                }
            }
            report.announcedCount = announced.count
            report.learnedCount = learned.count
            report.announced = Array(announced.sorted { $0.network < $1.network }.prefix(limit))
            report.learned = Array(learned.sorted { $0.network < $1.network }.prefix(limit))
        } catch {
            report.reachable = false
            report.error = "\(error)"
        }
        if json {
            try printJSON(report)
        } else if !report.reachable {
            FileHandle.standardError.write(Data("gobgpd at \(b.api) does not answer: \(report.error ?? "")\n".utf8))
        } else {
            print("gobgpd at \(b.api), Floodgate's community \(report.community)")
            print("sessions: \(report.sessions.filter { $0.state == "established" }.count) of \(report.sessions.count) up")
            for s in report.sessions { print("  \(s.address) AS\(s.peerAS) \(s.state)") }
            print("announced: \(report.announcedCount) routes")
            for r in report.announced { print("  \(r.type) \(r.network)\(r.until.map { " until \($0)" } ?? "")") }
            print("learned from peers: \(report.learnedCount) routes")
            for r in report.learned { print("  \(r.network) from \(r.peer ?? "?")\(r.until.map { " until \($0)" } ?? "")") }
        }
        if !report.reachable { throw ExitCode(1) }
    }
}
