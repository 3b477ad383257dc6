import CFloodgate
import FloodgateAgent
import FloodgateCore
import FloodgateLab
import Foundation
import Testing

/// Bans shared over BGP: the XDP side of a learned ban, the config, and real gobgpd daemons in namespaces.
@Suite(.serialized) struct BGPTests {
    /// A ban learned from a peer drops its network's packets, but never an allow-listed or verified source's,
    /// ends at its time, and goes when withdrawn.
    @Test func aLearnedBanDropsItsNetworkButNotTheTrusted() throws {
        var policy = FilterPolicy()
        policy.allow = [try CIDR("198.18.60.7")]
        let program = try loadProgram(limits: Dictionary(uniqueKeysWithValues: TrafficClass.all.map { ($0, Limit.unlimited) }),
                                      policy: policy)
        let options = { (src: String) in Packet.request("OPTIONS", src: src) }
        #expect(try program.verdict(options("198.18.60.5")) == XDP_PASS_ACTION)
        let now = monotonicNanoseconds()
        // The second ban's end far enough away that a loaded machine still sees it in force first.
        try program.maps.changePeerBans(set: [PeerBan(network: try CIDR("198.18.60.0/24"), expiresNS: nil),
                                              PeerBan(network: try CIDR("198.18.61.9"), expiresNS: now + 2_000_000_000)],
                                        remove: [])
        #expect(try program.verdict(options("198.18.60.5")) == XDP_DROP_ACTION)
        #expect(try program.verdict(options("198.18.60.7")) == XDP_PASS_ACTION, "allow-listed: a peer's word never drops it")
        #expect(try program.verdict(options("198.18.62.1")) == XDP_PASS_ACTION)
        let inForce = try program.verdict(options("198.18.61.9"))
        if monotonicNanoseconds() < now + 2_000_000_000 { #expect(inForce == XDP_DROP_ACTION) }
        Thread.sleep(forTimeInterval: max(0, Double(Int64(now + 2_050_000_000) - Int64(monotonicNanoseconds())) / 1e9))
        #expect(try program.verdict(options("198.18.61.9")) == XDP_PASS_ACTION, "an ended ban drops nothing")
        try program.maps.changePeerBans(set: [], remove: [try CIDR("198.18.60.0/24"), try CIDR("198.18.61.9")])
        #expect(try program.verdict(options("198.18.60.5")) == XDP_PASS_ACTION, "withdrawn: the drop cache must not keep it")
        #expect(try program.maps.peerBans().isEmpty)
    }

    @Test func theBGPSectionIsCheckedField() throws {
        func problems(_ yaml: String) -> String {
            do {
                _ = try AgentConfig.parse("interfaces:\n  external: eth9\n" + yaml, file: "t.yaml")
                return ""
            } catch { return "\(error)" }
        }
        #expect(problems("bgp:\n  daemon: gobgp\n  community: 64496:666\n").isEmpty)
        #expect(problems("bgp:\n  daemon: bird\n").contains("bgp.daemon"))
        #expect(problems("bgp:\n  daemon: gobgp\n").contains("bgp.community"))
        #expect(problems("bgp:\n  daemon: gobgp\n  community: 65535:666\n").contains("bgp.community"))
        #expect(problems("bgp:\n  daemon: gobgp\n  community: 64496:666\n  export: [explicit, peer]\n").contains("'peer' is not an origin"))
        #expect(problems("bgp:\n  daemon: gobgp\n  community: 64496:666\n  rtbh: [explicit]\n").contains("bgp.next_hop"))
        #expect(problems("bgp:\n  daemon: gobgp\n  community: 64496:666\n  aggregate: 1\n").contains("bgp.aggregate"))
        #expect(problems("bgp:\n  daemon: gobgp\n  community: 64496:666\n  next_hop: [192.0.2.1]\n  rtbh: [scanner]\n")
            .contains("can't be RTBH"))
        #expect(problems("bgp:\n  daemon: gobgp\n  community: 64496:666\n  hold: 10s\n").contains("bgp.hold"))
        #expect(problems("bgp:\n  daemon: gobgp\n  community: 64496:666\n  communities: [64511:666, x]\n")
            .contains("'x' is not a community"))
        #expect(problems("bgp:\n  daemon: gobgp\n  community: 64496:666\n  interval: 5\n").contains("bgp.interval"))
        #expect(problems("bgp:\n  daemon: gobgp\n  community: 64496:666\n  comunity: 1:1\n").contains("did you mean 'community'"))

        // The example's commented section, taken in, states the defaults.
        let lines = ShippedFiles.exampleConfig.split(separator: "\n", omittingEmptySubsequences: false)
        let start = try #require(lines.firstIndex(of: "# bgp:"))
        let section = lines[start...].prefix { $0.hasPrefix("# ") }.map { $0.dropFirst(2) }.joined(separator: "\n")
        let parsed = try AgentConfig.parse("interfaces:\n  external: eth9\n" + section + "\n", file: "t.yaml")
        var expected = BGPConfig()
        expected.community = BGPConfig.community("64496:666")!
        #expect(parsed.bgp == expected)
    }

    /// Two Floodgate routers (A, B) with a gobgpd each, a route reflector and an upstream speaker (gobgpd, AS 64511),
    /// on a backbone bridge in namespaces of their own.
    final class Cluster: @unchecked Sendable {
        let a: NetworkLab
        let b: NetworkLab
        let backbone: String
        let upstream: String
        let dir: String
        var daemons: [String: Process] = [:]
        static let address = ["a": "198.18.20.1", "b": "198.18.20.2", "up": "198.18.20.3", "rr": "198.18.20.254"]

        init() throws {
            // A's outside also has nine sources in 198.18.9.0/24, for scanner bans enough to fill an aggregate.
            a = try NetworkLab(prefix: "fgb", extraOutsideAddresses: ["198.18.0.10", "198.18.0.66", "198.18.0.77"]
                + (1...9).map { "198.18.9.\($0)" })
            b = try NetworkLab(prefix: "fgb", extraOutsideAddresses: ["198.18.0.10", "198.18.0.66", "198.18.0.77"])
            backbone = "fgbb-\(getpid())-\(a.id)"
            upstream = "fgbu-\(getpid())-\(a.id)"
            dir = FileManager.default.temporaryDirectory.appendingPathComponent("fgbgp-\(a.id)").path
            do { try setUp() } catch {
                tearDown()
                throw error
            }
        }

        func namespace(_ who: String) -> String {
            switch who {
            case "a": a.routerNS
            case "b": b.routerNS
            case "up": upstream
            default: backbone
            }
        }

        private func setUp() throws {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            for ns in [backbone, upstream] { try NetworkLab.run(["ip", "netns", "add", ns]) }
            try NetworkLab.run(["ip", "-n", backbone, "link", "add", "br0", "type", "bridge"])
            try NetworkLab.run(["ip", "-n", backbone, "addr", "add", "198.18.20.254/24", "dev", "br0"])
            for ns in [backbone, upstream] { try NetworkLab.run(["ip", "-n", ns, "link", "set", "lo", "up"]) }
            try NetworkLab.run(["ip", "-n", backbone, "link", "set", "br0", "up"])
            for who in ["a", "b", "up"] {
                let here = "bb\(who)\(a.id)".prefix(15), there = "bx\(who)\(a.id)".prefix(15)
                try NetworkLab.run(["ip", "link", "add", String(here), "netns", namespace(who), "type", "veth", "peer",
                                    "name", String(there), "netns", backbone])
                try NetworkLab.run(["ip", "-n", backbone, "link", "set", String(there), "master", "br0", "up"])
                try NetworkLab.run(["ip", "-n", namespace(who), "addr", "add", "\(Cluster.address[who]!)/24", "dev", String(here)])
                try NetworkLab.run(["ip", "-n", namespace(who), "link", "set", String(here), "up"])
            }
            for who in ["rr", "a", "b", "up"] { try startDaemon(who) }
        }

        /// gobgpd's config for `who`: the reflector has A and B as clients and the upstream as an eBGP peer.
        func daemonConfig(_ who: String) -> String {
            let families = ["ipv4-flowspec", "ipv6-flowspec", "ipv4-unicast", "ipv6-unicast"]
            // The reflector waits for the others to connect (no open collisions); they retry every second.
            func neighbor(_ address: String, _ asn: Int, client: Bool = false) -> String {
                var s = "[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"\(address)\"\n    peer-as = \(asn)\n"
                s += "  [neighbors.timers.config]\n    connect-retry = 1\n"
                if who == "rr" { s += "  [neighbors.transport.config]\n    passive-mode = true\n" }
                if client {
                    s += "  [neighbors.route-reflector.config]\n    route-reflector-client = true\n"
                        + "    route-reflector-cluster-id = \"198.18.20.254\"\n"
                }
                for f in families { s += "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"\(f)\"\n" }
                return s
            }
            let me = Cluster.address[who]!
            var s = "[global.config]\n  as = \(who == "up" ? 64511 : 64496)\n  router-id = \"\(me)\"\n"
                + "  local-address-list = [\"\(me)\"]\n"
            switch who {
            case "rr": s += neighbor("198.18.20.1", 64496, client: true) + neighbor("198.18.20.2", 64496, client: true)
                + neighbor("198.18.20.3", 64511)
            case "up": s += neighbor("198.18.20.254", 64496)
            default: s += neighbor("198.18.20.254", 64496)
            }
            return s
        }

        func startDaemon(_ who: String) throws {
            let path = "\(dir)/\(who).toml"
            try daemonConfig(who).write(toFile: path, atomically: true, encoding: .utf8)
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/nsenter")
            p.arguments = ["--net=/run/netns/\(namespace(who))", "/usr/bin/gobgpd", "-f", path, "--api-hosts", "127.0.0.1:50051",
                           "--log-level", "warn"]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle(forWritingAtPath: "/dev/null")
            try p.run()
            daemons[who] = p
        }

        func killDaemon(_ who: String) {
            guard let p = daemons[who] else { return }
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            daemons[who] = nil
        }

        /// `gobgp` in `who`'s namespace.
        func gobgp(_ who: String, _ arguments: [String]) throws -> String {
            try NetworkLab.run(["nsenter", "--net=/run/netns/\(namespace(who))", "/usr/bin/gobgp"] + arguments)
        }

        /// The FlowSpec source prefixes `who`'s RIB holds (IPv4), and the RTBH prefixes.
        func routes(_ who: String) -> (flowspec: Set<String>, rtbh: Set<String>) {
            let paths = { (family: String) -> [[String: Any]] in
                guard let text = try? self.gobgp(who, ["global", "rib", "-a", family, "-j"]),
                      let dump = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] else { return [] }
                return dump.values.flatMap { $0 as? [[String: Any]] ?? [] }
            }
            var flowspec = Set<String>(), rtbh = Set<String>()
            for p in paths("ipv4-flowspec") {
                for part in (p["nlri"] as? [String: Any])?["value"] as? [[String: Any]] ?? [] where (part["type"] as? Int) == 2 {
                    if let prefix = (part["value"] as? [String: Any])?["prefix"] as? String { flowspec.insert(prefix) }
                }
            }
            for p in paths("ipv4") {
                if let prefix = (p["nlri"] as? [String: Any])?["prefix"] as? String { rtbh.insert(prefix) }
            }
            return (flowspec, rtbh)
        }

        /// Waits until every session of the reflector is up (at most `seconds`).
        func waitForSessions(_ who: String = "rr", count: Int, seconds: Double = 40) -> Bool {
            wait(seconds) {
                guard let text = try? self.gobgp(who, ["neighbor", "-j"]),
                      let list = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [[String: Any]] else { return false }
                return list.filter { (($0["state"] as? [String: Any])?["session_state"] as? Int) == 6 }.count == count
            }
        }

        func tearDown() {
            for who in Array(daemons.keys) { killDaemon(who) }
            for ns in [backbone, upstream] { _ = try? NetworkLab.run(["ip", "netns", "del", ns]) }
            a.tearDown()
            b.tearDown()
            try? FileManager.default.removeItem(atPath: dir)
        }
    }

    static func wait(_ seconds: Double, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return condition()
    }

    static func agentConfig(_ lab: NetworkLab, port: Int, router: String, extra: String = "") -> String {
        AgentTests.config(lab, port: port, extra: """
            allow: [198.18.0.10]
            bgp:
              daemon: gobgp
              community: 64496:666
              export: [explicit, scanner]
              rtbh: [explicit]
              next_hop: [\(router)]
              destination: [198.18.0.0/24]
              communities: [64511:666]
              interval: 100ms
            \(extra)
            """)
    }

    /// Whether `ns`'s server at `address` still gets OPTIONS from `source` (a few tries): yes as soon as one
    /// arrives, no after a second without (a delivery late by a loaded machine is not taken for a drop).
    static func reaches(_ lab: NetworkLab, from source: String, server: UDPSocket) throws -> Bool {
        let sender = try lab.udpSocket(in: lab.outsideNS, bindTo: source)
        let payload = Array("OPTIONS sip:100@198.18.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP \(source)\r\nCall-ID: 1@x\r\nCSeq: 1 OPTIONS\r\n\r\n".utf8)
        _ = server.drain(quiet: 0.01)
        for _ in 0..<3 { try sender.send(payload, to: lab.routerAddress, port: 5060) }
        return server.receives(from: source, within: 1)
    }

    /// The scanner banned at A is dropped at B within a second and the upstream holds its FlowSpec route; an
    /// allow-listed source banned by hand is never announced; unban withdraws everywhere; a daemon killed and
    /// started again gets its routes back; a router that lost its filter and daemon learns the bans again.
    @Test func bansAreSharedAndAnnouncedAndNeverTheTrusted() throws {
        try requireRoot()
        try requireTool("/usr/bin/gobgpd", package: "gobgpd")
        let cluster = try Cluster()
        defer { cluster.tearDown() }
        #expect(cluster.waitForSessions(count: 3), "the reflector's sessions did not come up: \((try? cluster.gobgp("rr", ["neighbor"])) ?? "")")
        let agentA = try AgentTests.RunningAgent(lab: cluster.a, config: BGPTests.agentConfig(cluster.a, port: 19481, router: "198.18.20.1"))
        var agentB: AgentTests.RunningAgent? = try AgentTests.RunningAgent(
            lab: cluster.b, config: BGPTests.agentConfig(cluster.b, port: 19482, router: "198.18.20.2"))
        defer { agentA.stop(); agentB?.stop() }
        #expect(agentA.waitForLog("BGP: driving gobgpd") && agentB!.waitForLog("BGP: driving gobgpd"), "\(agentA.log.text())")
        let serverA = try cluster.a.udpSocket(in: cluster.a.routerNS, bindTo: cluster.a.routerAddress, port: 5060)
        let serverB = try cluster.b.udpSocket(in: cluster.b.routerNS, bindTo: cluster.b.routerAddress, port: 5060)
        #expect(try BGPTests.reaches(cluster.b, from: "198.18.0.66", server: serverB))

        // A scanner at A.
        let scanner = try cluster.a.udpSocket(in: cluster.a.outsideNS, bindTo: "198.18.0.66")
        let started = Date()
        try scanner.send(Array("OPTIONS sip:100@198.18.0.2 SIP/2.0\r\nUser-Agent: friendly-scanner\r\nCall-ID: 9@x\r\nCSeq: 1 OPTIONS\r\n\r\n".utf8),
                         to: cluster.a.routerAddress, port: 5060)
        let droppedAtB = BGPTests.wait(10) { !((try? BGPTests.reaches(cluster.b, from: "198.18.0.66", server: serverB)) ?? true) }
        let latency = Date().timeIntervalSince(started)
        #expect(droppedAtB, "B never dropped the scanner A banned: \(agentB!.log.text())")
        // Each check sends and waits a second for the OPTIONS: the drop came at most that much before it was seen.
        print("BGP: a scanner banned at A was dropped at B after \(String(format: "%.2f", latency)) s"
            + " (within 1 s of it)")
        #expect(latency < 5, "slower than 5 s on a loaded machine: \(latency) s")
        #expect(BGPTests.wait(5) { cluster.routes("up").flowspec.contains("198.18.0.66/32") }, "the upstream has no FlowSpec route")
        // Scoped to this edge's network: the upstream drops the source's SIP to here, not to all it serves.
        let upstreamRoutes = try cluster.gobgp("up", ["global", "rib", "-a", "ipv4-flowspec"])
        #expect(upstreamRoutes.split(separator: "\n").contains {
            $0.contains("[destination: 198.18.0.0/24]") && $0.contains("[source: 198.18.0.66/32]")
        }, "\(upstreamRoutes)")
        // B learned it: never announced again by B.
        let bStatus = try run(["nsenter", "--net=/run/netns/\(cluster.b.routerNS)", floodgateBinary, "bgp", "status", "--json",
                               "--config", agentB!.configPath])
        #expect(bStatus.status == 0 && bStatus.out.contains("\"learnedCount\" : 1") && bStatus.out.contains("\"announcedCount\" : 0"),
                "\(bStatus)")
        let bansAtB = try cluster.b.floodgate(["bans", "--json"]).out
        #expect(bansAtB.contains("198.18.0.66") && bansAtB.contains("\"peer\""), "\(bansAtB)")

        // An allow-listed source banned by hand at A, then another source: the second is announced (flowspec and
        // rtbh: explicit), the first never.
        #expect(try cluster.a.floodgate(["ban", "198.18.0.10", "--for", "1h"]).status == 0)
        #expect(try cluster.a.floodgate(["ban", "198.18.0.77", "--for", "1h"]).status == 0)
        #expect(BGPTests.wait(5) {
            let r = cluster.routes("up")
            return r.flowspec.contains("198.18.0.77/32") && r.rtbh.contains("198.18.0.77/32")
        }, "the upstream never got the explicit ban's routes")
        // With the upstream's own community (bgp.communities) beside BLACKHOLE and Floodgate's.
        let rtbhRoutes = try cluster.gobgp("up", ["global", "rib", "-a", "ipv4"])
        #expect(rtbhRoutes.split(separator: "\n").contains {
            $0.contains("198.18.0.77/32") && $0.contains("64511:666") && $0.contains("blackhole") && $0.contains("64496:666")
        }, "\(rtbhRoutes)")
        #expect(!cluster.routes("up").rtbh.contains("198.18.0.66/32"), "scanner bans are never RTBH")
        for who in ["a", "rr", "up", "b"] {
            let r = cluster.routes(who)
            #expect(!r.flowspec.contains("198.18.0.10/32") && !r.rtbh.contains("198.18.0.10/32"), "\(who) holds the allow-listed source")
        }
        #expect(try BGPTests.reaches(cluster.b, from: "198.18.0.10", server: serverB), "B dropped an allow-listed source")

        // A renewed ban keeps its route: a later end is an update, never a withdrawal.
        let withdrawalsBefore = try BGPTests.metric(cluster.a, port: 19481, "floodgate_bgp_updates_total", label: "action=\"withdraw\"")
        let announcementsBefore = try BGPTests.metric(cluster.a, port: 19481, "floodgate_bgp_updates_total", label: "action=\"announce\"")
        #expect(try cluster.a.floodgate(["ban", "198.18.0.77", "--for", "1h"]).status == 0)
        #expect(try cluster.a.floodgate(["ban", "198.18.0.77", "--for", "3h"]).status == 0)
        #expect(BGPTests.wait(5) {
            ((try? BGPTests.metric(cluster.a, port: 19481, "floodgate_bgp_updates_total", label: "action=\"announce\"")) ?? 0)
                >= announcementsBefore + 1
        }, "the later end was not announced")
        Thread.sleep(forTimeInterval: 0.5)
        #expect(try BGPTests.metric(cluster.a, port: 19481, "floodgate_bgp_updates_total", label: "action=\"withdraw\"") == withdrawalsBefore)
        // One update: the FlowSpec route's end moved two hours; the RTBH route carries none; the first renewal
        // moved it by seconds, under the tenth of the hour left.
        #expect(try BGPTests.metric(cluster.a, port: 19481, "floodgate_bgp_updates_total", label: "action=\"announce\"")
            == announcementsBefore + 1)

        // IPv6: announced as an ipv6-flowspec route, and learned by B.
        #expect(try cluster.a.floodgate(["ban", "2001:db8:66::1", "--for", "1h"]).status == 0)
        #expect(BGPTests.wait(5) {
            ((try? cluster.gobgp("up", ["global", "rib", "-a", "ipv6-flowspec"])) ?? "").contains("2001:db8:66::1/128")
        }, "no IPv6 FlowSpec route upstream")
        #expect(BGPTests.wait(5) { (try? BGPTests.metric(cluster.b, port: 19482, "floodgate_bgp_learned_bans")) == 3 },
                "B should hold 198.18.0.66, .77 and 2001:db8:66::1")

        // What another AS sends with Floodgate's community bans nothing here, nor does a route wider than a /24
        // made inside the AS (the reflector's own).
        _ = try cluster.gobgp("up", ["global", "rib", "-a", "ipv4-flowspec", "add", "match", "source", "198.18.0.10/32",
                                     "then", "discard", "community", "64496:666"])
        _ = try cluster.gobgp("up", ["global", "rib", "-a", "ipv4-flowspec", "add", "match", "source", "198.18.0.99/32",
                                     "then", "discard", "community", "64496:666"])
        _ = try cluster.gobgp("rr", ["global", "rib", "-a", "ipv4-flowspec", "add", "match", "source", "198.18.0.0/16",
                                     "then", "discard", "community", "64496:666"])
        _ = try cluster.gobgp("rr", ["global", "rib", "-a", "ipv4-flowspec", "add", "match", "source", "198.18.0.98/32",
                                     "then", "accept", "community", "64496:666"])
        #expect(BGPTests.wait(5) {
            ((try? BGPTests.metric(cluster.b, port: 19482, "floodgate_bgp_learned_refused_total", label: "foreign-as")) ?? 0) >= 2
                && ((try? BGPTests.metric(cluster.b, port: 19482, "floodgate_bgp_learned_refused_total", label: "too-wide")) ?? 0) >= 1
                && ((try? BGPTests.metric(cluster.b, port: 19482, "floodgate_bgp_learned_refused_total", label: "not-discard")) ?? 0) >= 1
        }, "B did not refuse the foreign, the wide and the accepting routes: \(agentB!.log.text())")
        #expect(try BGPTests.metric(cluster.b, port: 19482, "floodgate_bgp_learned_bans") == 3)

        // Forgeable bans never make an aggregate: nine scanner packets from one /24 (their sources may be forged:
        // a forger could name any /24) go out as nine host routes, never as the /24, which would drop everyone in
        // it upstream.
        for host in 1...9 {
            let forged = try cluster.a.udpSocket(in: cluster.a.outsideNS, bindTo: "198.18.9.\(host)")
            try forged.send(Array("OPTIONS sip:100@198.18.0.2 SIP/2.0\r\nUser-Agent: friendly-scanner\r\nCall-ID: \(host)@x\r\nCSeq: 1 OPTIONS\r\n\r\n".utf8),
                            to: cluster.a.routerAddress, port: 5060)
        }
        #expect(BGPTests.wait(10) { (1...9).allSatisfy { cluster.routes("up").flowspec.contains("198.18.9.\($0)/32") } },
                "\(cluster.routes("up").flowspec.sorted())")
        #expect(!cluster.routes("up").flowspec.contains("198.18.9.0/24"), "forged scanner bans were aggregated")
        for host in 1...9 { #expect(try cluster.a.floodgate(["unban", "198.18.9.\(host)"]).status == 0) }
        #expect(BGPTests.wait(10) {
            !cluster.routes("up").flowspec.contains { $0.hasPrefix("198.18.9.") }
                && (try? BGPTests.metric(cluster.b, port: 19482, "floodgate_bgp_learned_bans")) == 3
        }, "the scanner bans were not lifted everywhere")

        // Unban at A: withdrawn everywhere, and B lets it through again.
        #expect(try cluster.a.floodgate(["unban", "198.18.0.66"]).status == 0)
        #expect(BGPTests.wait(5) { !cluster.routes("up").flowspec.contains("198.18.0.66/32") }, "still announced after unban")
        #expect(BGPTests.wait(5) { (try? BGPTests.reaches(cluster.b, from: "198.18.0.66", server: serverB)) ?? false },
                "B still drops the unbanned source")
        #expect(try BGPTests.reaches(cluster.a, from: "198.18.0.66", server: serverA))

        // A's daemon killed: the agent says so and keeps filtering; started again, it gets the routes back.
        cluster.killDaemon("a")
        #expect(agentA.waitForLog("BGP: gobgpd refused a request or is unreachable"),
                "\(agentA.log.text())")
        #expect(try cluster.a.floodgate(["bans"]).out.contains("198.18.0.77"))
        let down = try run(["nsenter", "--net=/run/netns/\(cluster.a.routerNS)", floodgateBinary, "bgp", "status", "--config", agentA.configPath])
        #expect(down.status == 1 && down.err.contains("does not answer"), "\(down)")
        #expect(BGPTests.wait(10) { !cluster.routes("up").flowspec.contains("198.18.0.77/32") }, "the route outlived A's daemon")
        // Split brain, behind the reflector: A's routes went with its session, not lifted; B keeps the ban.
        #expect(BGPTests.waitForMore(agentB!, "went without being lifted", than: 0), "\(agentB!.log.text())")
        #expect(!(try BGPTests.reaches(cluster.b, from: "198.18.0.77", server: serverB)), "B let A's banned source in")
        try cluster.startDaemon("a")
        #expect(BGPTests.wait(40) { cluster.routes("up").flowspec.contains("198.18.0.77/32") }, "not announced again: \(agentA.log.text())")
        #expect(agentA.log.text().components(separatedBy: "BGP: gobgpd reachable").count - 1 >= 2, "\(agentA.log.text())")

        // B loses everything (agent, daemon, filter) and comes back: it learns the ban from its peers again.
        #expect(BGPTests.wait(5) { !((try? BGPTests.reaches(cluster.b, from: "198.18.0.77", server: serverB)) ?? true) })
        agentB!.stop()
        agentB = nil
        cluster.killDaemon("b")
        #expect(try cluster.b.floodgate(["detach", cluster.b.routerInterface, "--force"]).status == 0)
        try cluster.startDaemon("b")
        #expect(cluster.waitForSessions(count: 3))
        agentB = try AgentTests.RunningAgent(lab: cluster.b, config: BGPTests.agentConfig(cluster.b, port: 19482, router: "198.18.20.2"))
        #expect(BGPTests.wait(15) { !((try? BGPTests.reaches(cluster.b, from: "198.18.0.77", server: serverB)) ?? true) },
                "the restarted router did not learn the ban again: \(agentB!.log.text())")

        // Split brain: the reflector gone, B's session with it goes down and its routes with it; B keeps the bans
        // it learned until they end.
        #expect(BGPTests.wait(10) { (try? BGPTests.metric(cluster.b, port: 19482, "floodgate_bgp_learned_bans")) == 2 })
        let lostBefore = BGPTests.count(agentB!, "went without being lifted")
        cluster.killDaemon("rr")
        #expect(BGPTests.waitForMore(agentB!, "went without being lifted", than: lostBefore), "\(agentB!.log.text())")
        #expect(!(try BGPTests.reaches(cluster.b, from: "198.18.0.77", server: serverB)), "B let the banned source in")
        #expect(try BGPTests.metric(cluster.b, port: 19482, "floodgate_bgp_learned_bans") == 2)

        // Learning turned off: the bans learned before go at start (nothing would lift them otherwise).
        agentB!.stop()
        agentB = nil  // (its config file goes with it)
        agentB = try AgentTests.RunningAgent(lab: cluster.b, config: BGPTests.agentConfig(
            cluster.b, port: 19482, router: "198.18.20.2", extra: "  learn: false"))
        #expect(agentB!.waitForLog("bans learned over BGP removed"), "\(agentB!.log.text())")
        #expect(!(try cluster.b.floodgate(["bans", "--json"]).out.contains("\"peer\"")))
        #expect(try BGPTests.reaches(cluster.b, from: "198.18.0.77", server: serverB))
    }

    static func count(_ agent: AgentTests.RunningAgent, _ text: String) -> Int {
        agent.log.text().components(separatedBy: text).count - 1
    }

    /// Waits until the log holds `text` more than `than` times.
    static func waitForMore(_ agent: AgentTests.RunningAgent, _ text: String, than: Int, seconds: Double = 10) -> Bool {
        wait(seconds) { count(agent, text) > than }
    }

    /// The value of a series on a router's metrics endpoint (the sum over the series whose labels hold `label`).
    static func metric(_ lab: NetworkLab, port: Int, _ name: String, label: String = "") throws -> Double {
        let text = try NetworkLab.run(["nsenter", "--net=/run/netns/\(lab.routerNS)", "curl", "-s", "http://127.0.0.1:\(port)/metrics"])
        var total = 0.0
        for line in text.split(separator: "\n") where line.hasPrefix(name + " ") || line.hasPrefix(name + "{") {
            guard label.isEmpty || line.contains(label), let value = line.split(separator: " ").last.flatMap({ Double($0) })
            else { continue }
            total += value
        }
        return total
    }

    /// 10,000 bans at A: the routes announced stay at the cap, dense /24s go out as one route each, and the
    /// /24 that holds an allow-listed source is never aggregated nor is that source announced.
    @Test func theCapAndAggregationHoldUnderTenThousandBans() throws {
        try requireRoot()
        try requireTool("/usr/bin/gobgpd", package: "gobgpd")
        let cluster = try Cluster()
        defer { cluster.tearDown() }
        #expect(cluster.waitForSessions(count: 3))
        let config = BGPTests.agentConfig(cluster.a, port: 19483, router: "198.18.20.1", extra: """
              max_routes: 300
              aggregate: 8
              rate: 5000
              never_export: [198.19.0.0/24]
            """).replacingOccurrences(of: "allow: [198.18.0.10]", with: "allow: [198.18.0.10, 198.18.50.7]")
            .replacingOccurrences(of: "rtbh: [explicit]", with: "rtbh: []")
        let agent = try AgentTests.RunningAgent(lab: cluster.a, config: config)
        defer { agent.stop() }
        #expect(agent.waitForLog("BGP: driving gobgpd"), "\(agent.log.text())")
        // 40 dense /24s (225 bans each), 20 in the /24 of the allow-listed source (it among them), 980 sparse.
        var addresses: [String] = []
        for net in 100..<140 { for host in 1...225 { addresses.append("198.18.\(net).\(host)") } }
        for host in 1...20 { addresses.append("198.18.50.\(host)") }
        for net in 0..<196 { for host in 1...5 { addresses.append("198.19.\(net).\(host * 10)") } }
        #expect(addresses.count == 10_000)
        // Trusted at run time, not in the config: an allow entry added by hand, and a verified source (written
        // into the trust map as the inside program would, for a day).
        #expect(try cluster.a.floodgate(["allow", "add", "198.19.1.10", "--force"]).status == 0)
        let key = "00 00 00 00 00 00 00 00 00 00 ff ff c6 13 02 0a".split(separator: " ").map(String.init)
        let trust = ["ff", "ff", "ff", "ff", "ff", "ff", "ff", "0f", "40", "01", "00", "00"] + Array(repeating: "00", count: 12)
        try NetworkLab.run(["bpftool", "map", "update", "pinned", "\(cluster.a.pinRoot)/\(cluster.a.routerInterface)/fg_trusted",
                            "key", "hex"] + key + ["value", "hex"] + trust)
        try NetworkLab.inNamespace(cluster.a.routerNS) {
            let maps = try PinRoot(cluster.a.pinRoot).maps(of: cluster.a.routerInterface)
            for a in addresses { try maps.ban(SourceAddress(a)!, seconds: 3600) }
        }
        // Settled: 300 routes upstream and in the agent's count, none a host of an aggregated /24 (one lifted
        // but not yet withdrawn, say).
        func hostsOfAggregates(_ routes: Set<String>) -> [String] {
            routes.filter { route in
                let octets = route.split(separator: "/")[0].split(separator: ".")
                return route.hasSuffix("/32") && route.hasPrefix("198.18.") && (100..<140).contains(Int(octets[2]) ?? 0)
            }.sorted()
        }
        #expect(BGPTests.wait(90) {
            let up = cluster.routes("up").flowspec
            return up.count == 300 && hostsOfAggregates(up).isEmpty
                && (try? BGPTests.metric(cluster.a, port: 19483, "floodgate_bgp_routes", label: "flowspec")) == 300
                // (a round that began while the bans went in counts fewer: the one after it counts them all)
                && (try? BGPTests.metric(cluster.a, port: 19483, "floodgate_bgp_routes_over_cap")) == 732
        }, "\(cluster.routes("up").flowspec.count) routes")
        let r = cluster.routes("up")
        #expect(r.flowspec.count == 300, "over the cap")
        #expect(r.rtbh.isEmpty)
        for net in 100..<140 { #expect(r.flowspec.contains("198.18.\(net).0/24"), "198.18.\(net).0/24 not aggregated") }
        #expect(!r.flowspec.contains("198.18.50.0/24") && !r.flowspec.contains("198.18.50.7/32"))
        #expect(r.flowspec.contains("198.18.50.8/32"))
        // never_export, the allow entry added by hand and the verified source: not announced; their neighbours are.
        #expect(!r.flowspec.contains { $0.hasPrefix("198.19.0.") }, "never_export announced")
        #expect(!r.flowspec.contains("198.19.1.10/32") && !r.flowspec.contains("198.19.2.10/32"), "a trusted source announced")
        #expect(r.flowspec.contains("198.19.1.20/32") && r.flowspec.contains("198.19.2.20/32"))
        // No host of an aggregated /24 goes out on its own.
        #expect(hostsOfAggregates(r.flowspec).isEmpty, "\(hostsOfAggregates(r.flowspec).prefix(5))")
        let metrics = try NetworkLab.run(["nsenter", "--net=/run/netns/\(cluster.a.routerNS)", "curl", "-s", "http://127.0.0.1:19483/metrics"])
        // 40 aggregates, 19 hosts of 198.18.50.0/24 and 973 of the 980 sparse: 1,032 routes, 300 announced.
        #expect(metrics.contains("floodgate_bgp_routes_over_cap 732"), "\(metrics)")
        #expect(metrics.contains("floodgate_bgp_routes{type=\"flowspec\"} 300"), "\(metrics)")
    }
}
