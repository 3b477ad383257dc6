import FloodgateCore
import FloodgateLab
import Foundation
import Testing

/// Floodgate driven by the tools operators already run, each the real one.
@Suite(.serialized) struct IntegrationsTests {
    /// fail2ban with the shipped action (`floodgate config fail2ban-action`), a jail fed by log lines: a source
    /// with a failed authentication is banned in the filter for fail2ban's ban time, fail2ban's unban lifts it, a
    /// ban time of -1 is a ban until lifted. The hostile half: a log line naming an allow-listed source (a
    /// forger's REGISTER with the trunk's address provokes one) leaves it unbanned; one naming a source the
    /// operator banned for ever neither shortens nor, on fail2ban's unban, lifts that ban; fail2ban sees no error.
    @Test func fail2banBansThroughTheShippedActionButNeverAnAllowListedSource() throws {
        try requireTool("/usr/bin/fail2ban-server", package: "fail2ban")
        try withLab { lab in
            #expect(try lab.floodgate(["attach", lab.routerInterface]).status == 0)
            #expect(try lab.floodgate(["allow", "add", "198.18.0.77"]).status == 0)
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fgf2b-\(lab.id)")
            try FileManager.default.createDirectory(at: dir.appendingPathComponent("action.d"), withIntermediateDirectories: true)
            try FileManager.default.createDirectory(at: dir.appendingPathComponent("filter.d"), withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: dir) }
            let socket = dir.appendingPathComponent("f2b.sock").path
            let serverLog = dir.appendingPathComponent("f2b.log").path
            let authLog = dir.appendingPathComponent("sip.log").path
            let foreverLog = dir.appendingPathComponent("sip-forever.log").path
            for file in [authLog, foreverLog] { _ = FileManager.default.createFile(atPath: file, contents: nil) }

            let action = try run([floodgateBinary, "config", "fail2ban-action"])
            #expect(action.status == 0 && action.out.contains("actionban"))
            try action.out.write(to: dir.appendingPathComponent("action.d/floodgate.conf"), atomically: true, encoding: .utf8)
            try """
                [Definition]
                failregex = auth failed for \\S+ from <HOST>$
                """.write(to: dir.appendingPathComponent("filter.d/sip-auth.conf"), atomically: true, encoding: .utf8)
            try """
                [Definition]
                loglevel = INFO
                logtarget = \(serverLog)
                socket = \(socket)
                pidfile = \(dir.appendingPathComponent("f2b.pid").path)
                dbfile = :memory:
                """.write(to: dir.appendingPathComponent("fail2ban.conf"), atomically: true, encoding: .utf8)
            let floodgate = "nsenter --net=/run/netns/\(lab.routerNS) \(floodgateBinary)"
            try """
                [DEFAULT]
                backend = polling
                maxretry = 1
                findtime = 600
                action = floodgate[floodgate="\(floodgate)", options="--pin-root \(lab.pinRoot)"]

                [sip-auth]
                enabled = true
                filter = sip-auth
                logpath = \(authLog)
                bantime = 600

                [sip-auth-forever]
                enabled = true
                filter = sip-auth
                logpath = \(foreverLog)
                bantime = -1
                """.write(to: dir.appendingPathComponent("jail.conf"), atomically: true, encoding: .utf8)

            let client = ["fail2ban-client", "-c", dir.path, "-s", socket]
            let started = try run(client + ["-x", "start"])
            #expect(started.status == 0, "\(started.out) \(started.err)")
            defer { _ = try? run(client + ["stop"]) }
            // Let the polling backend take the files' starting size before lines are added.
            #expect(waitUntil(seconds: 20) { (try? run(client + ["status", "sip-auth"]).status) == 0 })
            Thread.sleep(forTimeInterval: 1.5)

            func append(_ line: String, to path: String) throws {
                let handle = try #require(FileHandle(forWritingAtPath: path))
                handle.seekToEndOfFile()
                let stamp = DateFormatter()
                stamp.dateFormat = "yyyy-MM-dd HH:mm:ss"
                stamp.timeZone = .current
                stamp.locale = Locale(identifier: "en_US_POSIX")
                handle.write(Data((stamp.string(from: Date()) + " " + line + "\n").utf8))
                try handle.close()
            }
            func bans() -> [[String: Any]] {
                guard let out = try? lab.floodgate(["bans", "--json"]).out,
                      let rows = try? JSONSerialization.jsonObject(with: Data(out.utf8)) as? [[String: Any]]
                else { return [] }
                return rows
            }
            func ban(_ address: String) -> [String: Any]? { bans().first { $0["address"] as? String == address } }

            #expect(try lab.floodgate(["ban", "198.18.0.11", "--forever"]).status == 0)   // the operator's own
            try append("auth failed for 99 from 198.18.0.11", to: authLog)
            try append("auth failed for 100 from 198.18.0.77", to: authLog)   // the forger's line
            try append("auth failed for 101 from 198.18.0.9", to: authLog)
            #expect(waitUntil(seconds: 20) { ban("198.18.0.9") != nil }, "\((try? String(contentsOfFile: serverLog, encoding: .utf8)) ?? "")")
            let left = ban("198.18.0.9")?["seconds_left"] as? Double
            #expect(left.map { $0 > 500 && $0 <= 600 } == true, "fail2ban's ban time of 600 s: \(String(describing: left))")
            let status = try run(client + ["status", "sip-auth"])
            #expect(status.out.contains("198.18.0.77") && status.out.contains("198.18.0.9"), "fail2ban banned both: \(status.out)")
            #expect(ban("198.18.0.77") == nil, "the allow-listed source was banned: \(bans())")

            try append("auth failed for 102 from 198.18.0.10", to: foreverLog)
            #expect(waitUntil(seconds: 20) { ban("198.18.0.10") != nil })
            #expect(ban("198.18.0.10").map { $0["seconds_left"] == nil || $0["seconds_left"] is NSNull } == true,
                    "bantime -1 is a ban until lifted: \(String(describing: ban("198.18.0.10")))")

            #expect(try run(client + ["set", "sip-auth", "unbanip", "198.18.0.9"]).status == 0)
            #expect(try run(client + ["set", "sip-auth", "unbanip", "198.18.0.77"]).status == 0)
            #expect(try run(client + ["set", "sip-auth", "unbanip", "198.18.0.11"]).status == 0)
            #expect(waitUntil(seconds: 20) { ban("198.18.0.9") == nil }, "\(bans())")
            #expect(ban("198.18.0.10") != nil, "the other jail's ban stays")
            #expect(ban("198.18.0.11").map { $0["origin"] as? String == "explicit" && $0["seconds_left"] == nil } == true,
                    "fail2ban neither shortened nor lifted the operator's ban: \(String(describing: ban("198.18.0.11")))")
            let log = (try? String(contentsOfFile: serverLog, encoding: .utf8)) ?? ""
            #expect(!log.contains("ERROR"), "fail2ban saw an action fail: \(log)")
        }
    }
}

extension IntegrationsTests {
    /// The XDP program itself lets an allow-listed or verified source through an integration's ban, even one made
    /// before the source was allow-listed (a forged log line banned the trunk; the operator then allow-lists it);
    /// the operator's own ban still beats the allow list.
    @Test func anIntegrationsBanNeverStopsAnAllowListedSource() throws {
        let program = try loadProgram()
        let (trunk, other) = (SourceAddress("198.18.5.7")!, SourceAddress("198.18.5.8")!)
        #expect(try program.maps.integrationBan(trunk, seconds: 600).result == .banned)
        try program.maps.ban(other, seconds: 600)
        #expect(try program.judge(Packet.request("OPTIONS", src: "198.18.5.7")).2 == .droppedBan)
        _ = try program.maps.addCIDRs([try CIDR("198.18.5.7"), try CIDR("198.18.5.8")], to: .allow)
        #expect(try program.judge(Packet.request("OPTIONS", src: "198.18.5.7")).2 == .passedAllow)
        #expect(try program.judge(Packet.request("OPTIONS", src: "198.18.5.8")).2 == .droppedBan)
    }
}

/// Polls `condition` every 0.1 s until it holds or `seconds` pass; whether it held.
func waitUntil(seconds: Double, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if condition() { return true }
        Thread.sleep(forTimeInterval: 0.1)
    }
    return condition()
}

extension IntegrationsTests {
    /// The agent's local API: a socket of mode 0660 owned by its group. A member without root bans and unbans
    /// through it (the CLI with --api-socket, and raw JSON lines); a user outside the group is refused by the
    /// kernel. The hostile half: the API never bans an allow-listed source for a non-root client, even when asked
    /// to; bad lines are answered with an error and change nothing; an over-long line closes the connection.
    @Test func theLocalAPIServesItsGroupWithoutRootAndSparesTrustedSources() throws {
        try withLab { lab in
            let group = "fgt\(lab.id)".prefix(30)
            #expect(try run(["groupadd", "--system", String(group)]).status == 0)
            defer { _ = try? run(["groupdel", String(group)]) }
            let gid = try #require(getgrnam(String(group))?.pointee.gr_gid)
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fgapi-\(lab.id)").path
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let socket = directory + "/api.sock"
            let agent = try AgentTests.RunningAgent(lab: lab, config: AgentTests.config(lab, port: 19480, extra: """
                allow: [198.18.0.77]
                """, api: "\(socket)\n  group: \(group)"))
            defer { agent.stop() }
            #expect(agent.waitForLog("serving the local API"), "\(agent.log.text())")
            var st = stat()
            #expect(stat(socket, &st) == 0 && st.st_mode & 0o777 == 0o660 && st.st_gid == gid && st.st_uid == 0,
                    "mode \(String(st.st_mode & 0o777, radix: 8)), gid \(st.st_gid)")
            let member = ["setpriv", "--reuid=65534", "--regid=\(gid)", "--clear-groups"]
            let outsider = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
            let maps = try PinRoot(lab.pinRoot).maps(of: lab.routerInterface)

            let banned = try run(member + [floodgateBinary, "ban", "198.18.0.9", "--for", "600", "--api-socket", socket])
            #expect(banned.status == 0 && banned.out.contains("banned 198.18.0.9 for 600"), "\(banned.out) \(banned.err)")
            #expect(maps.ban(of: SourceAddress("198.18.0.9")!)?.explicit == true)
            let spared = try run(member + [floodgateBinary, "ban", "198.18.0.77", "--forever", "--api-socket", socket])
            #expect(spared.status == 0 && spared.out.contains("not banned 198.18.0.77: it is allow-listed"), "\(spared.out) \(spared.err)")
            #expect(maps.ban(of: SourceAddress("198.18.0.77")!) == nil)
            let refused = try run(outsider + [floodgateBinary, "ban", "198.18.0.9", "--for", "60", "--api-socket", socket])
            #expect(refused.status != 0 && refused.err.contains("Permission denied") && refused.err.contains("group"),
                    "\(refused.err)")
            let listed = try run(member + [floodgateBinary, "bans", "--json", "--api-socket", socket])
            #expect(listed.status == 0 && listed.out.contains("\"198.18.0.9\""), "\(listed.out) \(listed.err)")

            // Raw lines from a member: each answered in order; only the good ones act.
            let client = """
                import json, socket, sys
                s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile('rwb')
                lines = [b'{"op":"ban","address":"198.18.0.77","forever":true,"spare_trusted":false}', b'not json',
                         b'{"op":"ban","address":"999.1.1.1","seconds":5}', b'{"op":"ban","address":"198.18.0.20","seconds":true}',
                         b'{"op":"ban","address":"198.18.0.20","seconds":5,"extra":1}', b'{"op":"ban","address":"198.18.0.20"}',
                         b'{"op":"ban","address":"198.18.0.20","for":"10 parsecs"}', b'{"op":"drop-table"}',
                         b'{"op":"bans","interfaces":["../fgx"]}',
                         b'{"op":"bans"}', b'{"op":"stats"}', b'{"op":"ping"}', b'x' * 5000]
                for line in lines:
                    f.write(line + b'\\n'); f.flush()
                    answer = f.readline()
                    print(answer.decode().strip() if answer else 'closed')
                print('closed' if f.readline() == b'' else 'open')
                """
            let raw = try run(member + ["/usr/bin/python3", "-c", client, socket])
            let answers = raw.out.split(separator: "\n").map(String.init)
            #expect(answers.count == 14, "\(raw.out) \(raw.err)")
            func object(_ i: Int) -> [String: Any] {
                guard i < answers.count, let o = try? JSONSerialization.jsonObject(with: Data(answers[i].utf8)) as? [String: Any]
                else { return [:] }
                return o
            }
            #expect((object(0)["error"] as? String)?.contains("only root may ban an allow-listed or verified source") == true)
            for i in 1...8 {
                #expect(object(i)["ok"] as? Bool == false && object(i)["error"] is String, "answer \(i): \(answers.count > i ? answers[i] : "")")
            }
            #expect((object(9)["bans"] as? [[String: Any]])?.contains {
                $0["address"] as? String == "198.18.0.9" && $0["origin"] as? String == "integration"
            } == true, "\(answers.count > 9 ? answers[9] : "")")
            #expect((object(10)["stats"] as? [[String: Any]])?.first?["interface"] as? String == lab.routerInterface)
            #expect(object(11)["version"] as? String == floodgateVersion)
            #expect((object(12)["error"] as? String)?.contains("longer than 4096 bytes") == true && answers.last == "closed")
            #expect(maps.ban(of: SourceAddress("198.18.0.77")!) == nil && maps.ban(of: SourceAddress("198.18.0.20")!) == nil)

            // An integration never shortens a longer ban, nor touches or lifts the operator's own.
            let shorter = try run(member + [floodgateBinary, "ban", "198.18.0.9", "--for", "5", "--api-socket", socket])
            #expect(shorter.status == 0 && shorter.out.contains("198.18.0.9 is already banned for longer; left as it is"),
                    "\(shorter.out) \(shorter.err)")
            #expect((maps.ban(of: SourceAddress("198.18.0.9")!)?.remainingSeconds() ?? 0) > 500)
            try maps.ban(SourceAddress("198.18.0.12")!, seconds: nil)
            let onOperators = try run(member + [floodgateBinary, "ban", "198.18.0.12", "--for", "60", "--api-socket", socket])
            #expect(onOperators.status == 0 && onOperators.out.contains("is banned by the operator; left as it is"), "\(onOperators.out)")
            let liftOperators = try run(member + [floodgateBinary, "unban", "198.18.0.12", "--api-socket", socket])
            #expect(liftOperators.status != 0 && liftOperators.err.contains("has no integration's ban"), "\(liftOperators.err)")
            #expect(maps.ban(of: SourceAddress("198.18.0.12")!).map { $0.explicit && !$0.integration && $0.expiresNS == nil } == true,
                    "the operator's ban stays, for ever")

            // Root may ban an allow-listed source on purpose (an explicit ban beats the allow list).
            let forced = try run([floodgateBinary, "ban", "198.18.0.77", "--for", "60", "--api-socket", socket])
            #expect(forced.status == 0 && forced.out.contains("banned 198.18.0.77 for 60"), "\(forced.out) \(forced.err)")
            let lifted = try run(member + [floodgateBinary, "unban", "198.18.0.9", "--api-socket", socket])
            #expect(lifted.status == 0 && lifted.out.contains("lifted the ban on 198.18.0.9"), "\(lifted.out) \(lifted.err)")
            let again = try run(member + [floodgateBinary, "unban", "198.18.0.9", "--if-exists", "--api-socket", socket])
            #expect(again.status == 0 && again.out.contains("nothing to lift"), "\(again.out) \(again.err)")
            #expect(maps.ban(of: SourceAddress("198.18.0.9")!) == nil)

            #expect(agent.log.text().contains("banned through the local API") && agent.log.text().contains("uid=65534"),
                    "\(agent.log.text())")
            let metrics = try NetworkLab.inNamespace(lab.routerNS) { try httpGet(port: 19480, path: "/metrics") }
            #expect(metrics.text.contains("floodgate_api_requests_total{op=\"invalid\",result=\"error\"} 10"),
                    "\(metrics.text.split(separator: "\n").filter { $0.contains("api_requests") })")
            agent.stop()
            #expect(!FileManager.default.fileExists(atPath: socket), "the socket is removed when the agent stops")
        }
    }
}

extension IntegrationsTests {
    /// The block-list fetcher (`floodgate config fetch-list`) against a real HTTP server (python's http.server, in
    /// the router's namespace): a Spamhaus-DROP-style list lands at its file whole, renamed into place, and the
    /// running agent applies it at its next check. What must never replace a good list — a 404, an HTML error
    /// page, a list cut to a tenth, a plain-HTTP URL while only HTTPS is allowed — leaves the file as it was (exit
    /// status 1) and no temporary file behind.
    @Test func theBlockListFetcherReplacesAListOnlyWithAWholeOne() throws {
        try requireTool("/usr/bin/curl", package: "curl")
        try withLab { lab in
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fgfetch-\(lab.id)")
            let www = dir.appendingPathComponent("www")
            try FileManager.default.createDirectory(at: www, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: dir) }
            let script = dir.appendingPathComponent("fetch-list").path
            let printed = try run([floodgateBinary, "config", "fetch-list"])
            #expect(printed.status == 0 && printed.out.hasPrefix("#!/bin/sh"))
            try printed.out.write(toFile: script, atomically: true, encoding: .utf8)
            chmod(script, 0o755)
            let lists = dir.appendingPathComponent("lists")
            try FileManager.default.createDirectory(at: lists, withIntermediateDirectories: true)
            let target = lists.appendingPathComponent("drop.txt").path
            try "198.19.255.0/24\n".write(toFile: target, atomically: true, encoding: .utf8)
            let drop = "; Spamhaus DROP List 2026/12/02 - (c) 2026 The Spamhaus Project\n"
                + (0..<200).map { "198.19.\($0).0/24 ; SBL\(1000 + $0)\n" }.joined()
            try drop.write(to: www.appendingPathComponent("drop.txt"), atomically: true, encoding: .utf8)
            try "<html><body>503 Service Unavailable</body></html>\n"
                .write(to: www.appendingPathComponent("error.html"), atomically: true, encoding: .utf8)
            try (0..<20).map { "198.19.\($0).0/24\n" }.joined()
                .write(to: www.appendingPathComponent("short.txt"), atomically: true, encoding: .utf8)

            let server = Process()
            server.executableURL = URL(fileURLWithPath: "/usr/bin/nsenter")
            server.arguments = ["--net=/run/netns/\(lab.routerNS)", "/usr/bin/python3", "-m", "http.server", "18080",
                                "--bind", "127.0.0.1", "--directory", www.path]
            server.standardOutput = FileHandle.nullDevice
            server.standardError = FileHandle.nullDevice
            try server.run()
            defer { kill(server.processIdentifier, SIGKILL); server.waitUntilExit() }
            let inRouter = ["nsenter", "--net=/run/netns/\(lab.routerNS)", "env", "FLOODGATE=\(floodgateBinary)"]
            #expect(waitUntil(seconds: 10) {
                (try? run(inRouter + ["curl", "-fs", "-o", "/dev/null", "http://127.0.0.1:18080/drop.txt"]).status) == 0
            })
            let agent = try AgentTests.RunningAgent(lab: lab, config: AgentTests.config(lab, port: 19483, extra: """
                deny:
                  - file: \(target)
                """))
            defer { agent.stop() }
            #expect(agent.waitForLog("] running"), "\(agent.log.text())")
            let maps = try PinRoot(lab.pinRoot).maps(of: lab.routerInterface)
            #expect(try maps.cidrs(in: .deny).count == 1)

            func fetch(_ path: String, http: Bool = true) throws -> (status: Int32, out: String, err: String) {
                try run(inRouter + (http ? ["FLOODGATE_FETCH_PROTOCOLS==http"] : []) + [script, "http://127.0.0.1:18080/\(path)", target])
            }
            let fetched = try fetch("drop.txt")
            #expect(fetched.status == 0 && fetched.out.contains("200 networks"), "\(fetched.out) \(fetched.err)")
            #expect(try String(contentsOfFile: target, encoding: .utf8) == drop)
            #expect(waitUntil(seconds: 10) { (try? maps.cidrs(in: .deny).count) == 200 }, "\(agent.log.text())")

            for (path, http, why) in [("missing.txt", true, "404"), ("error.html", true, "holds no list of networks"),
                                      ("short.txt", true, "holds 20 networks, fewer than 50% of the 200"),
                                      ("drop.txt", false, "Protocol")] {
                let refused = try fetch(path, http: http)
                #expect(refused.status != 0 && refused.err.contains(why), "\(path): \(refused.out) \(refused.err)")
                #expect(try String(contentsOfFile: target, encoding: .utf8) == drop, "\(path) replaced the list")
            }
            #expect(try FileManager.default.contentsOfDirectory(atPath: lists.path) == ["drop.txt"], "no temporary file left")
            Thread.sleep(forTimeInterval: 1.5)
            #expect(try maps.cidrs(in: .deny).count == 200)
        }
    }
}
