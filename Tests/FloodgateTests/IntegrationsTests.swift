import FloodgateCore
import FloodgateLab
import Foundation
import Testing

/// Floodgate driven by the tools operators already run, each the real one.
@Suite(.serialized) struct IntegrationsTests {
    /// fail2ban with the shipped action (`floodgate config fail2ban-action`), a jail fed by log lines: a source
    /// with a failed authentication is banned in the filter for fail2ban's ban time, fail2ban's unban lifts it, a
    /// ban time of -1 is a ban until lifted. The hostile half: a log line naming an allow-listed source (a
    /// forger's REGISTER with the trunk's address provokes one) leaves it unbanned, and fail2ban sees no error.
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

            try append("auth failed for 100 from 198.18.0.77", to: authLog)   // the forger's line, first
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
            #expect(waitUntil(seconds: 20) { ban("198.18.0.9") == nil }, "\(bans())")
            #expect(ban("198.18.0.10") != nil, "the other jail's ban stays")
            let log = (try? String(contentsOfFile: serverLog, encoding: .utf8)) ?? ""
            #expect(!log.contains("ERROR"), "fail2ban saw an action fail: \(log)")
        }
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
