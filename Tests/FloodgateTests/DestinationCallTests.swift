import CFloodgate
import FloodgateCore
import FloodgateLab
import Foundation
import Testing

/// Destination rules on real calls: sipp places calls from outside through the router, where the agent runs the
/// filter with a UK number plan, to a sipp UAS behind it that answers every INVITE.
@Suite(.serialized) struct DestinationCallTests {
    @Test func premiumIsRefusedNationalConnectsAndALimitCountsCalls() throws {
        try requireTool("/usr/bin/sipp", package: "sip-tester")
        try requireRoot()
        let lab = try NetworkLab(prefix: "fgd", server: true)
        defer { lab.tearDown() }
        let agent = try AgentTests.RunningAgent(lab: lab, config: AgentTests.config(lab, port: 19471, extra: """
            numbers:
              country_code: "44"
              international: ["00"]
              national: "0"
            destinations:
              - "+44900 block"
              - "+4420 limit 3/min"
            """))
        defer { agent.stop() }
        #expect(agent.waitForLog("attached"), "\(agent.log.text())")
        let server = try SippUAS(namespace: lab.serverNS!, address: lab.serverAddress)
        defer { server.stop() }

        /// `calls` calls to `number` at 2 a second; sipp's count of those that connected.
        func calls(_ number: String, _ calls: Int, port: Int) throws -> Int {
            try SippUAS.calls(to: number, server: lab.serverAddress, from: lab.outsideAddress, port: port, count: calls,
                              namespace: lab.outsideNS)
        }
        let maps = try PinRoot(lab.pinRoot).maps(of: lab.routerInterface)
        #expect(try calls("00449001234567", 2, port: 5071) == 0, "premium: refused")
        let refused = try maps.counters().packets[.invite, .droppedDestination]
        #expect(refused >= 2, "each INVITE (and its retransmissions) dropped: \(refused)")
        #expect(try calls("01611234567", 3, port: 5072) == 3, "a national call elsewhere connects")
        #expect(try calls("02079460000", 5, port: 5073) == 3, "3 a minute to +4420: the fourth is the first refused")
        let limited = try maps.counters().packets[.invite, .droppedDestinationLimit]
        #expect(limited >= 2, "\(limited)")
        // The agent's metrics say why, per outcome.
        Thread.sleep(forTimeInterval: 0.5)
        let body = try NetworkLab.inNamespace(lab.routerNS) { try httpGet(port: 19471, path: "/metrics") }
        for outcome in ["blocked", "no-rule", "limit-passed", "limited"] {
            let line = body.text.split(separator: "\n").first {
                $0.hasPrefix("floodgate_destination_outcomes_total") && $0.contains("outcome=\"\(outcome)\"")
            }
            #expect(line.map { !$0.hasSuffix(" 0") } == true, "\(outcome): \(line ?? "missing")")
        }

        // At night: the test sets a window that ends 20 s from now (UTC) and reloads; premium calls are refused
        // until the window's edge, where the agent switches the rule set by itself, and then connect.
        let now = Int(Date().timeIntervalSince1970) % 86400
        func clock(_ t: Int) -> String {
            let s = (t + 86400) % 86400
            return String(format: "%02d:%02d:%02d", s / 3600, s / 60 % 60, s % 60)
        }
        let night = AgentTests.config(lab, port: 19471, extra: """
            time_zone: UTC
            numbers:
              country_code: "44"
              national: "0"
            destinations:
              - {rule: "+44900 block", hours: "daily \(clock(now - 3600))-\(clock(now + 20))"}
            """)
        try night.write(toFile: agent.configPath, atomically: true, encoding: .utf8)
        agent.signal(SIGHUP)
        #expect(agent.waitForLog("config reloaded"), "\(agent.log.text())")
        #expect(try maps.destinationRules() == [try DestinationRule("+44900", .block)], "in force at night")
        #expect(try calls("00449001234567", 1, port: 5074) == 0, "premium at night: refused")
        #expect(agent.waitForLog("destination rules switched at a window's edge", seconds: 40), "\(agent.log.text())")
        #expect(try maps.destinationRules().isEmpty)
        #expect(try calls("00449001234567", 1, port: 5075) == 1, "after the window's edge: connects")
    }

    /// Premium calls at night from one source, 2 a second: the first 3 connect, the fourth is refused and the
    /// agent reports the block; the source's national call is refused too while the block lasts,
    /// and another source's premium call still connects.
    @Test func premiumCallsAtNightBlockTheSourceForNewCalls() throws {
        try requireTool("/usr/bin/sipp", package: "sip-tester")
        try requireRoot()
        let lab = try NetworkLab(prefix: "fgq", extraOutsideAddresses: ["198.18.0.77"], server: true)
        defer { lab.tearDown() }
        let now = Int(Date().timeIntervalSince1970) % 86400
        func clock(_ t: Int) -> String {
            let s = (t + 86400) % 86400
            return String(format: "%02d:%02d:%02d", s / 3600, s / 60 % 60, s % 60)
        }
        let agent = try AgentTests.RunningAgent(lab: lab, config: AgentTests.config(lab, port: 19472, extra: """
            time_zone: UTC
            numbers: {country_code: "44", international: ["00"], national: "0"}
            destinations:
              - {rule: "+449 allow high-risk", hours: "daily \(clock(now - 3600))-\(clock(now + 3600))"}
            fraud:
              block: 1h
              high_risk: 3/min
            """))
        defer { agent.stop() }
        #expect(agent.waitForLog("attached"), "\(agent.log.text())")
        let server = try SippUAS(namespace: lab.serverNS!, address: lab.serverAddress)
        defer { server.stop() }
        func calls(_ number: String, _ n: Int, from source: String, port: Int) throws -> Int {
            try SippUAS.calls(to: number, server: lab.serverAddress, from: source, port: port, count: n,
                              namespace: lab.outsideNS)
        }
        let maps = try PinRoot(lab.pinRoot).maps(of: lab.routerInterface)
        #expect(try calls("09061234567", 3, from: lab.outsideAddress, port: 5081) == 3, "the first 3 premium calls connect")
        #expect(try maps.fraudBlocks().isEmpty)
        // The fourth, sent by hand so that its moment is known.
        let script = """
            import socket
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("\(lab.outsideAddress)", 5082))
            s.sendto(b"INVITE sip:09061234567@\(lab.serverAddress) SIP/2.0\\r\\nVia: SIP/2.0/UDP \(lab.outsideAddress):5082;branch=z9hG4bK-4\\r\\nFrom: <sip:p@\(lab.outsideAddress)>;tag=4\\r\\nTo: <sip:09061234567@\(lab.serverAddress)>\\r\\nCall-ID: fourth@x\\r\\nCSeq: 1 INVITE\\r\\nContent-Length: 0\\r\\n\\r\\n", ("\(lab.serverAddress)", 5060))
            """
        let sent = try run(["ip", "netns", "exec", lab.outsideNS, "timeout", "10", "/usr/bin/python3", "-c", script])
        #expect(sent.status == 0, "\(sent.err)")
        #expect(agent.waitForLog("blocked a source for new calls: over its high-risk calls a minute"),
                "the block event: \(agent.log.text())")
        #expect(try maps.counters().packets[.invite, .droppedFraud] >= 1)
        let blocks = try maps.fraudBlocks()
        #expect(blocks.map(\.address.description) == [lab.outsideAddress] && blocks.first?.kind == "high-risk")
        #expect(try calls("02079460000", 1, from: lab.outsideAddress, port: 5083) == 0, "no new call while blocked")
        #expect(try calls("09061234567", 1, from: "198.18.0.77", port: 5084) == 1, "another source's call connects")
        let list = try lab.floodgate(["calls", "--json"])
        #expect(list.status == 0 && list.out.contains(lab.outsideAddress) && list.out.contains("high-risk"), "\(list.out)")
        #expect(try lab.floodgate(["calls", "unblock", lab.outsideAddress]).status == 0)
        #expect(try calls("02079460000", 1, from: lab.outsideAddress, port: 5085) == 1, "unblocked: calls again")
    }

    /// The agent watching the inside interface too (the server's answers and BYEs).
    static func insideConfig(_ lab: NetworkLab, port: Int, extra: String) -> String {
        AgentTests.config(lab, port: port, extra: extra)
            .replacingOccurrences(of: "  mode: native\n", with: "  mode: native\n  inside: \(lab.routerInsideInterface!)\n")
    }

    /// Long calls against a limit of 2 in progress: 4 calls placed at once, held 6 s; the 2 let in ring, are
    /// answered (the server's 200 seen on the inside) and counted up, the other 2 are refused; the BYEs end them,
    /// and then the source calls again.
    @Test func aConcurrentCallLimitHoldsWithLongCalls() throws {
        try requireTool("/usr/bin/sipp", package: "sip-tester")
        try requireRoot()
        let lab = try NetworkLab(prefix: "fgk", server: true)
        defer { lab.tearDown() }
        let agent = try AgentTests.RunningAgent(lab: lab, config: DestinationCallTests.insideConfig(lab, port: 19473, extra: """
            fraud:
              concurrent: 2
            """))
        defer { agent.stop() }
        #expect(agent.waitForLog("watching the SIP server's answers"), "\(agent.log.text())")
        let server = try SippUAS(namespace: lab.serverNS!, address: lab.serverAddress)
        defer { server.stop() }
        let maps = try PinRoot(lab.pinRoot).maps(of: lab.routerInterface)

        final class Result: @unchecked Sendable { var connected = -1; let done = DispatchSemaphore(value: 0) }
        let result = Result()
        let (address, outside, serverAddress) = (lab.outsideAddress, lab.outsideNS, lab.serverAddress)
        Thread {
            result.connected = (try? SippUAS.calls(to: "100", server: serverAddress, from: address, port: 5091, count: 4,
                                                   namespace: outside, rate: 10, holdMilliseconds: 6000)) ?? -2
            result.done.signal()
        }.start()
        func mine() throws -> CallerCount? { try maps.callers().first { $0.address.description == address && !$0.claimed } }
        var deadline = Date().addingTimeInterval(15)
        while try mine().map({ $0.calls == 2 && $0.answered == 2 }) != true, Date() < deadline {
            Thread.sleep(forTimeInterval: 0.1)
        }
        let during = try mine()
        #expect(during?.calls == 2 && during?.answered == 2, "two calls up: \(String(describing: during))")
        let list = try lab.floodgate(["calls", "--json"])
        let json = try JSONSerialization.jsonObject(with: Data(list.out.utf8)) as? [[String: Any]]
        let sources = json?.first?["sources"] as? [[String: Any]]
        #expect(sources?.first?["source"] as? String == address && sources?.first?["answered"] as? Int == 2
                && (json?.first?["thresholds"] as? [[String: Any]])?.first?["concurrent"] as? Int == 2, "\(list.out)")
        #expect(result.done.wait(timeout: .now() + 60) == .success)
        #expect(result.connected == 2, "2 of the 4 connected")
        #expect(try maps.counters().packets[.invite, .droppedConcurrent] >= 2)
        deadline = Date().addingTimeInterval(10)
        while try mine().map({ $0.calls == 0 }) == false, Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
        #expect(try mine()?.calls ?? 0 == 0, "the BYEs ended them")
        #expect(try SippUAS.calls(to: "100", server: lab.serverAddress, from: lab.outsideAddress, port: 5092, count: 1,
                                  namespace: lab.outsideNS) == 1, "room again")
    }

    /// Caller ID from a listed source: in flag mode a call presenting a number outside its ranges connects and is
    /// counted and logged; after a reload to enforce it is refused, while a call presenting its own number
    /// connects either way.
    @Test func aCallerIDMismatchIsFlaggedThenRefused() throws {
        try requireTool("/usr/bin/sipp", package: "sip-tester")
        try requireRoot()
        let lab = try NetworkLab(prefix: "fgi", server: true)
        defer { lab.tearDown() }
        func config(_ mode: String) -> String {
            AgentTests.config(lab, port: 19474, extra: """
                numbers: {country_code: "44", international: ["00"], national: "0"}
                caller_id:
                  mode: \(mode)
                  sources:
                    - from: [\(lab.outsideAddress)]
                      numbers: ["+44 20 7946 01"]
                """)
        }
        let agent = try AgentTests.RunningAgent(lab: lab, config: config("flag"))
        defer { agent.stop() }
        #expect(agent.waitForLog("attached"), "\(agent.log.text())")
        let server = try SippUAS(namespace: lab.serverNS!, address: lab.serverAddress)
        defer { server.stop() }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fgcid-\(uniqueID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        func call(from caller: String, port: Int) throws -> Int {
            let file = dir.appendingPathComponent("\(port).xml")
            try SippTraffic.callScenario(caller: caller).write(to: file, atomically: true, encoding: .utf8)
            return try SippUAS.calls(to: "100", server: lab.serverAddress, from: lab.outsideAddress, port: port, count: 1,
                                     namespace: lab.outsideNS, scenario: file.path)
        }
        let maps = try PinRoot(lab.pinRoot).maps(of: lab.routerInterface)
        #expect(try call(from: "02079460123", port: 5093) == 1, "its own number (national form)")
        #expect(try call(from: "+33123456789", port: 5094) == 1, "flag: another number connects")
        #expect(try maps.callerIDMismatches() == (flagged: 1, refused: 0))
        #expect(agent.waitForLog("flagged a call: its caller number is not one its source may present"), "\(agent.log.text())")
        #expect(agent.log.text().contains("+33123456789"), "the log names the number")

        try config("enforce").write(toFile: agent.configPath, atomically: true, encoding: .utf8)
        agent.signal(SIGHUP)
        #expect(agent.waitForLog("config reloaded"), "\(agent.log.text())")
        #expect(try call(from: "+33123456789", port: 5095) == 0, "enforce: refused")
        #expect(try call(from: "+442079460199", port: 5096) == 1, "its own number still connects")
        #expect(try maps.callerIDMismatches().refused >= 1)
        #expect(try maps.counters().packets[.invite, .droppedCallerID] >= 1)
    }
}
