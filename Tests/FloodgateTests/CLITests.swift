import CFloodgate
import FloodgateCore
import FloodgateLab
import Foundation
import Testing

/// Every bad argument gets one clear error line and a non-zero exit, and changes nothing.
@Suite struct CLITests {
    /// Runs the CLI outside any lab with a pin root nothing is attached under.
    /// Never name a real interface here: these run in the root network namespace.
    func floodgate(_ arguments: [String]) throws -> (status: Int32, out: String, err: String) {
        try requireRoot()
        let pinRoot = arguments.contains("--pin-root") ? [] : ["--pin-root", "/sys/fs/bpf/fgtest-empty-\(uniqueID())"]
        return try run([floodgateBinary] + arguments + pinRoot)
    }

    func expectError(_ arguments: [String], _ message: String, sourceLocation: SourceLocation = #_sourceLocation)
        throws
    {
        let result = try floodgate(arguments)
        #expect(result.status != 0, "exit status of \(arguments)", sourceLocation: sourceLocation)
        let first = result.err.split(separator: "\n").first.map(String.init) ?? ""
        #expect(first.hasPrefix("Error: "), "\(result.err)", sourceLocation: sourceLocation)
        #expect(first.contains(message), "\(first)", sourceLocation: sourceLocation)
    }

    @Test func badLimitArguments() throws {
        try expectError(["limit", "set", "bogus", "--rate", "10"], "Unknown class 'bogus'; the classes are invite, register")
        try expectError(["limit", "set", "options", "--rate", "0", "--burst", "5"], "rate must be at least 1 packet/s (got 0)")
        try expectError(["limit", "set", "options", "--rate=-5"], "rate must be at least 1 packet/s (got -5)")
        try expectError(["limit", "set", "options", "--rate", "10", "--burst=-3"], "burst must be at least 1 packet (got -3)")
        try expectError(["limit", "set", "options", "--rate", "200000000"], "above the maximum of 100000000")
        try expectError(["limit", "set", "options", "--rate", "5", "--unlimited"], "exactly one of --rate, --unlimited or --block")
        try expectError(["limit", "set", "options"], "exactly one of --rate, --unlimited or --block")
        try expectError(["limit", "set", "options", "--block", "--burst", "4"], "--burst goes with --rate only")
        try expectError(["limit", "set", "options", "--rate", "ten"], "ten")
        try expectError(["top", "-n", "0"], "-n must be at least 1")
        try expectError(["stats", "--interval=-1"], "--interval takes seconds from 0 to 3600")
        try expectError(["stats", "--watch", "--interval", "0"], "--watch needs an --interval of at least 0.1 s")
        try expectError(["top", "--count", "2"], "--count goes with --watch")
        try expectError(["top", "--watch", "--count", "0"], "--count must be at least 1")
    }

    @Test func badAttachArguments() throws {
        try expectError(["attach", "fgtnone0"], "no interface named fgtnone0 in this network namespace")
        try expectError(["attach", "fgtnone0", "--mode", "turbo"], "turbo")
        try expectError(["attach", "fgt-interface-name-too-long"], "is not a valid interface name")
        try expectError(["attach", "fgtnone0", "--sip-ports", "5060,0"], "--sip-ports takes ports 1-65535")
        try expectError(["attach", "fgtnone0", "--sip-ports", "1,2,3,4,5"], "at most 4 ports")
        try expectError(["attach", "fgtnone0", "--rtp-ports", "20000-10000"], "--rtp-ports takes FIRST-LAST")
        try expectError(["attach", "fgtnone0", "--max-sources", "0"], "--max-sources must be between 1 and")
        try expectError(["attach", "fgtnone0", "--pin-root", "relative/dir"], "--pin-root must be an absolute path")
    }

    /// `flood` builds its own lab and pin root, so it takes no --pin-root.
    @Test func badFloodArguments() throws {
        try requireRoot()
        func expectFloodError(_ arguments: [String], _ message: String, sourceLocation: SourceLocation = #_sourceLocation)
            throws
        {
            let result = try run([floodgateBinary, "flood"] + arguments)
            #expect(result.status != 0, sourceLocation: sourceLocation)
            let first = result.err.split(separator: "\n").first.map(String.init) ?? ""
            #expect(first.hasPrefix("Error: ") && first.contains(message), "\(first)", sourceLocation: sourceLocation)
        }
        try expectFloodError(["--scenario", "tsunami"], "unknown flood scenario 'tsunami'")
        try expectFloodError(["--scenario", "random-v4-/8"], "unknown flood scenario 'random-v4-/8'")
        try expectFloodError(["--filter", "iptables"], "The value 'iptables' is invalid for '--filter <filter>'")
        let filters = try run([floodgateBinary, "flood", "--filter", "iptables"]).err
        #expect(FilterUnderTest.allCases.allSatisfy { filters.contains("- \($0.rawValue)") }, "\(filters)")
        try expectFloodError(["--filter", "none", "--dedicated-cpu"], "--dedicated-cpu needs an XDP program on the router end")
        try expectFloodError(["--packets", "0"], "--packets must be 1 to 1000000000")
        try expectFloodError(["--seconds", "0"], "--seconds must be above 0 and at most 600")
        try expectFloodError(["--calls=-1"], "--calls must be 0 to 10000")
        try expectFloodError(["--scenario", "random-v4-/24", "--filter", "xdp-filter", "--packets", "1000"],
                             "xdp-filter denies single addresses; random-v4-/24 has random sources")
        for scenario in ["rtp", "syn-5061"] {
            try expectFloodError(["--scenario", scenario, "--filter", "floor", "--packets", "1000"],
                                 "the floor holds SIP over UDP to port 5060; \(scenario) is not")
        }
    }

    @Test func commandsOnInterfacesWithoutAFilter() throws {
        try expectError(["detach", "fgt-none0"], "fgt-none0 has no Floodgate filter attached")
        try expectError(["stats", "-i", "fgt-none0"], "fgt-none0 has no Floodgate filter attached")
        try expectError(["stats"], "no Floodgate filter is attached")
        try expectError(["top"], "no Floodgate filter is attached")
        try expectError(["limit", "set", "options", "--rate", "5"], "no Floodgate filter is attached")
        try expectError(["limit", "list"], "no Floodgate filter is attached")
        let status = try floodgate(["status"])
        #expect(status.status == 0)
        #expect(status.out.contains("No Floodgate filter is attached"))
    }

    /// The version comes from one place (FloodgateCore's `floodgateVersion`), which the agent's build-info
    /// metric reads too.
    @Test func theVersionIsTheOneWrittenInCore() throws {
        let result = try run([floodgateBinary, "--version"])
        #expect(result.status == 0 && result.out.trimmingCharacters(in: .whitespacesAndNewlines) == floodgateVersion,
                "\(result)")
    }

    @Test func nonRootIsToldToUseRoot() throws {
        try requireRoot()
        let result = try run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", floodgateBinary, "status"])
        #expect(result.status != 0)
        #expect(result.err.hasPrefix("Error: floodgate must run as root"), "\(result.err)")
    }

    @Test func aLimitForSeveralInterfacesIsAllOrNothing() throws {
        try withLab { lab in
            #expect(try lab.floodgate(["attach", lab.routerInterface, "--max-sources", "100"]).status == 0)
            let result = try lab.floodgate(["limit", "set", "options", "--rate", "7", "-i", lab.routerInterface, "-i", "fgt-none0"])
            #expect(result.status != 0)
            #expect(result.err.contains("fgt-none0 has no Floodgate filter attached"))
            let list = try lab.floodgate(["limit", "list", "--json"])
            #expect(list.status == 0)
            struct Entry: Decodable {
                struct Row: Decodable { var `class`: String; var rate: UInt32? }
                var limits: [Row]
            }
            let entries = try JSONDecoder().decode([Entry].self, from: Data(list.out.utf8))
            #expect(entries.first?.limits.first { $0.class == "options" }?.rate == 8, "the limit must be untouched")
        }
    }

    @Test func anInterfaceWithSomeoneElsesXDPProgramIsLeftAlone() throws {
        try withLab { lab in
            #expect(try lab.floodgate(["attach", lab.routerInterface, "--max-sources", "100"]).status == 0)
            let program = try lab.routerXDPProgram()
            // The same interface seen from another pin root: the program there is not this root's.
            let other = try run(["nsenter", "--net=/run/netns/\(lab.routerNS)", floodgateBinary, "attach", lab.routerInterface,
                                 "--pin-root", "\(lab.pinRoot)-other"])
            defer { _ = try? run(["rm", "-rf", "\(lab.pinRoot)-other"]) }
            #expect(other.status != 0)
            #expect(other.err.contains("already has an XDP program (id \(program ?? "?")) that Floodgate did not attach"),
                    "\(other.err)")
            #expect(try lab.routerXDPProgram() == program)
            #expect(!FileManager.default.fileExists(atPath: "\(lab.pinRoot)-other/\(lab.routerInterface)"))
        }
    }
}
