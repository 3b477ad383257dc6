import FloodgateCore
import Foundation
import Testing

/// Real SIP tools through the filter: sipp (Debian's sip-tester) places calls while sipvicious' svmap scans.
@Suite struct SIPToolsTests {
    /// Starts a command in a namespace; the caller terminates it.
    func start(_ ns: String, _ command: [String], environment: [String: String] = [:]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = environment.map { "\($0.key)=\($0.value)" } + ["ip", "netns", "exec", ns] + command
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return process
    }

    @Test func sippCallsCompleteWhileAnSvmapScanIsDroppedAsAScanner() throws {
        try requireTool("/usr/bin/sipp", package: "sip-tester")
        try requireTool("/usr/bin/svmap", package: "sipvicious")
        let scanner = "198.18.0.66"
        try withLab(extraAddresses: [scanner]) { lab in
            #expect(try lab.floodgate(["attach", lab.routerInterface, "--mode", "native", "--max-sources", "10000"]).status == 0)
            let work = FileManager.default.temporaryDirectory.appendingPathComponent("fgsip-\(lab.id)")
            try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: work) }

            let uas = try start(lab.routerNS, ["sipp", "-sn", "uas", "-i", lab.routerAddress, "-p", "5060", "-nostdin",
                                               "-timeout", "60s"])
            // sipp's UAS does not stop on SIGTERM.
            defer { kill(uas.processIdentifier, SIGKILL); uas.waitUntilExit() }
            Thread.sleep(forTimeInterval: 0.5)

            // svmap sends OPTIONS with User-Agent: friendly-scanner and From: "sipvicious"; bounded by timeout(1).
            let svmap = try start(lab.outsideNS, ["timeout", "30", "svmap", "-b", scanner, "-P", "5062", "-t", "1",
                                                  "-p", "5060", "\(lab.routerAddress)"],
                                  environment: ["HOME": work.path])
            // 20 calls at 10 per second from an ordinary, unlisted phone.
            let uac = try run(["ip", "netns", "exec", lab.outsideNS, "timeout", "60", "sipp", "-sn", "uac",
                               "\(lab.routerAddress):5060", "-i", lab.outsideAddress, "-p", "5070", "-m", "20", "-r",
                               "10", "-l", "10", "-nostdin", "-timeout", "40s", "-timeout_error", "-trace_err",
                               "-error_file", work.appendingPathComponent("uac-errors.log").path])
            svmap.waitUntilExit()
            #expect(uac.status == 0, "sipp: every call must complete (exit \(uac.status)) \(uac.out.suffix(400))")

            let stats = try lab.floodgate(["stats", "--json"])
            struct Stats: Decodable {
                struct Class: Decodable { var `class`: String; var packets: [String: UInt64] }
                var classes: [Class]
            }
            let classes = try JSONDecoder().decode([Stats].self, from: Data(stats.out.utf8)).first?.classes ?? []
            func count(_ c: String, _ r: String) -> UInt64 { classes.first { $0.class == c }?.packets[r] ?? 0 }
            #expect(count("options", "dropped-scanner") >= 1, "svmap's OPTIONS must be dropped as a scanner")
            #expect(count("invite", "passed") >= 20, "every INVITE of sipp passes")
            #expect(count("invite", "dropped-rate") + count("invite", "dropped-shed") == 0)
            #expect(count("in-dialog", "passed") >= 40, "ACK and BYE of every call pass")

            let bans = try lab.floodgate(["bans", "--json"])
            #expect(bans.out.contains("\"address\" : \"\(scanner)\""), "the scanner is banned: \(bans.out)")
            #expect(bans.out.contains("\"origin\" : \"scanner\""))
            #expect(!bans.out.contains("\"address\" : \"\(lab.outsideAddress)\""), "the phone is not banned")
        }
    }
}
