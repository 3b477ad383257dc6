import CFloodgate
import FloodgateCore
import FloodgateLab
import Foundation
import Testing

/// The policy commands: lists, bans, prefix, budget, scanners.
@Suite struct PolicyCLITests {
    func expectError(_ lab: NetworkLab, _ arguments: [String], _ message: String,
                     sourceLocation: SourceLocation = #_sourceLocation) throws {
        let result = try lab.floodgate(arguments)
        #expect(result.status != 0, "exit status of \(arguments)", sourceLocation: sourceLocation)
        let first = result.err.split(separator: "\n").first.map(String.init) ?? ""
        #expect(first.hasPrefix("Error: ") && first.contains(message), "\(first)", sourceLocation: sourceLocation)
    }

    @Test func listsBansAndBudgetsThroughTheCLI() throws {
        try withLab { lab in
            #expect(try lab.floodgate(["attach", lab.routerInterface, "--max-sources", "1000"]).status == 0)

            // Bad input changes nothing.
            try expectError(lab, ["allow", "add", "198.18.0.1/24"], "'198.18.0.1/24' has host bits set; the network is 198.18.0.0/24")
            try expectError(lab, ["deny", "add", "300.1.1.1"], "'300.1.1.1' is not an IPv4 or IPv6 address or CIDR")
            try expectError(lab, ["deny", "add", "2001:db8::/129"], "bad prefix length (0 to 128")
            try expectError(lab, ["deny", "add"], "Give at least one CIDR or --file")
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("fg-deny-\(lab.id).txt")
            defer { try? FileManager.default.removeItem(at: file) }
            try "# a block list\n198.18.10.0/24   # a comment\n\n198.18.11.0/24\nnot-a-cidr\n2001:db8:1::/48\n"
                .write(to: file, atomically: true, encoding: .utf8)
            try expectError(lab, ["deny", "add", "--file", file.path], "\(file.path):5: 'not-a-cidr'")
            #expect(try lab.floodgate(["deny", "list"]).out.contains("0 on the deny list"), "nothing was applied")

            // A good file, then removal.
            try "# a block list\n198.18.10.0/24   # a comment\n\n198.18.11.0/24\n2001:db8:1::/48\n"
                .write(to: file, atomically: true, encoding: .utf8)
            let add = try lab.floodgate(["deny", "add", "--file", file.path, "198.18.12.7"])
            #expect(add.status == 0, "\(add.err)")
            let list = try lab.floodgate(["deny", "list"]).out
            for cidr in ["198.18.10.0/24", "198.18.11.0/24", "2001:db8:1::/48", "198.18.12.7/32"] {
                #expect(list.contains(cidr), "\(cidr) in \(list)")
            }
            try expectError(lab, ["deny", "del", "198.18.10.0/24", "198.18.99.0/24"], "not on the deny list: 198.18.99.0/24")
            #expect(try lab.floodgate(["deny", "list"]).out.contains("198.18.10.0/24"), "a failed del removes nothing")
            // Idempotent, for scripts: the absent entry is named, the rest removed, exit 0.
            #expect(try lab.floodgate(["deny", "add", "198.18.11.0/24"]).status == 0)
            let gone = try lab.floodgate(["deny", "del", "--if-exists", "198.18.11.0/24", "198.18.99.0/24"])
            #expect(gone.status == 0 && gone.out.contains("deny list -1") && gone.out.contains("nothing to remove: 198.18.99.0/24"),
                    "\(gone.out)\(gone.err)")
            #expect(!(try lab.floodgate(["deny", "list"]).out.contains("198.18.11.0/24")))
            #expect(try lab.floodgate(["deny", "del", "198.18.10.0/24"]).status == 0)
            #expect(!(try lab.floodgate(["deny", "list"]).out.contains("198.18.10.0/24")))
            #expect(try lab.floodgate(["allow", "add", "198.18.20.0/24"]).status == 0)
            #expect(try lab.floodgate(["allow", "list"]).out.contains("198.18.20.0/24"))

            // Bans.
            try expectError(lab, ["ban", "198.18.0.5"], "Give exactly one of --for DURATION or --forever")
            try expectError(lab, ["ban", "198.18.0.5", "--for", "10x"], "'10x' is not a duration")
            try expectError(lab, ["ban", "nonsense", "--for", "1m"], "'nonsense' is not an IPv4 or IPv6 address")
            try expectError(lab, ["unban", "198.18.0.9"], "198.18.0.9 is not banned")
            let none = try lab.floodgate(["unban", "--if-exists", "198.18.0.9"])
            #expect(none.status == 0 && none.out.contains("198.18.0.9 is not banned") && none.out.contains("nothing to lift"),
                    "\(none.out)\(none.err)")
            #expect(try lab.floodgate(["ban", "198.18.0.6", "--for", "600"]).status == 0, "bare seconds, as fail2ban passes them")
            #expect(try lab.floodgate(["ban", "198.18.0.5", "--for", "10m"]).status == 0)
            #expect(try lab.floodgate(["ban", "2001:db8::5", "--forever"]).status == 0)
            let bans = try lab.floodgate(["bans"]).out
            #expect(bans.contains("198.18.0.5") && bans.contains("explicit") && bans.contains("forever"), "\(bans)")
            #expect(try lab.floodgate(["unban", "198.18.0.5"]).status == 0)
            #expect(!(try lab.floodgate(["bans"]).out.contains("198.18.0.5")))

            // Prefix, budget, scanners.
            try expectError(lab, ["prefix", "set", "--v4", "40"], "--v4 must be 8 to 32 (got 40)")
            try expectError(lab, ["prefix", "set"], "Give --v4, --v6, --rate or --unlimited")
            try expectError(lab, ["budget", "set"], "Give --pps, --unlimited or --new-sources")
            try expectError(lab, ["budget", "set", "--pps", "0"], "rate must be at least 1 packet/s (got 0)")
            try expectError(lab, ["scanners", "add", String(repeating: "x", count: 40)], "a signature must be 1 to 31 bytes (got 40)")
            try expectError(lab, ["scanners", "del", "not-there"], "no such scanner signature: user-agent: not-there")
            try expectError(lab, ["scanners", "ban-time", "soon"], "'soon' is not a duration")
            #expect(try lab.floodgate(["prefix", "set", "--v4", "22", "--rate", "300", "--burst", "600"]).status == 0)
            #expect(try lab.floodgate(["budget", "set", "--pps", "5000", "--new-sources", "1000"]).status == 0)
            #expect(try lab.floodgate(["scanners", "add", "EvilDialer", "--from"]).status == 0)
            #expect(try lab.floodgate(["scanners", "ban-time", "1h"]).status == 0)
            let limits = try lab.floodgate(["limit", "list"]).out
            #expect(limits.contains("prefix /22 /64") && limits.contains("300/s burst 600"), "\(limits)")
            #expect(limits.contains("5000/s burst 5000") && limits.contains("1000/s burst 1000"))
            let scanners = try lab.floodgate(["scanners", "list"]).out
            #expect(scanners.contains("banned for 3600s") && scanners.contains("evildialer") && scanners.contains("friendly-scanner"))
            #expect(try lab.floodgate(["scanners", "del", "evildialer", "--from"]).status == 0)
        }
    }

    /// Allow entries with their own bucket and TTL range, verified-tier limits and the verified list.
    @Test func allowEntriesTiersAndVerifiedSourcesThroughTheCLI() throws {
        try withLab { lab in
            #expect(try lab.floodgate(["attach", lab.routerInterface, "--max-sources", "1000", "--max-bans", "2048"]).status == 0)
            try expectError(lab, ["allow", "add", "198.18.21.0/24", "--ttl", "0-5"], "'0-5' is not a TTL range")
            try expectError(lab, ["allow", "add", "198.18.21.0/24", "--ttl", "64-60"], "'64-60' is not a TTL range")
            try expectError(lab, ["allow", "add", "198.18.21.0/24", "--limit", "0"], "rate must be at least 1 packet/s")
            try expectError(lab, ["allow", "add", "198.18.21.0/24", "--unlimited", "--limit", "5"],
                            "--unlimited goes without --limit and --burst")
            try expectError(lab, ["allow", "add", "198.18.21.0/24", "--burst", "5"], "--burst goes with --limit")
            try expectError(lab, ["limit", "set", "invite", "--rate", "5", "--tier", "friends"], "friends")
            try expectError(lab, ["attach", lab.routerInterface, "--max-bans", "0"], "--max-bans must be between 1")
            #expect(try lab.floodgate(["allow", "list"]).out.contains("0 on the allow list"), "nothing was applied")

            let add = try lab.floodgate(["allow", "add", "198.18.20.0/24", "--limit", "500", "--ttl", "60-64"])
            #expect(add.status == 0, "\(add.err)")
            #expect(try lab.floodgate(["allow", "add", "198.18.22.1"]).status == 0)
            let list = try lab.floodgate(["allow", "list", "--json"]).out
            #expect(list.contains("\"198.18.20.0/24\"") && list.contains("500/s burst 1000") && list.contains("60-64"), "\(list)")
            #expect(list.contains("2000/s burst 4000"), "the default entry bucket: \(list)")

            #expect(try lab.floodgate(["limit", "set", "invite", "--rate", "40", "--tier", "verified"]).status == 0)
            let limits = try lab.floodgate(["limit", "list"]).out
            #expect(limits.contains("verified invite") && limits.contains("40/s burst 40"), "\(limits)")
            #expect(try lab.floodgate(["trusted"]).out.contains("No verified sources."))
            let trusted = try JSONSerialization.jsonObject(with: Data(try lab.floodgate(["trusted", "--json"]).out.utf8))
            #expect((trusted as? [Any])?.isEmpty == true, "\(trusted)")

            // A quarantine lifted: none on a source not verified, nor twice. The verified source is written here as
            // the inside program would (TrustTests makes one with the server's answers).
            try expectError(lab, ["unquarantine", "198.18.22.9"], "198.18.22.9 is not quarantined on \(lab.routerInterface)")
            try expectError(lab, ["unquarantine", "phone"], "'phone' is not an IPv4 or IPv6 address")
            let trustedFD = bpf_obj_get("\(lab.pinRoot)/\(lab.routerInterface)/\(FG_MAP_TRUSTED)")
            try #require(trustedFD >= 0)
            defer { close(trustedFD) }
            var key = fg_addr()
            withUnsafeMutableBytes(of: &key) { $0.copyBytes(from: SourceAddress("198.18.22.9")!.bytes) }
            let now = monotonicNanoseconds()
            var trust = fg_trust()
            trust.until_ns = now + 600_000_000_000
            trust.pin.ttl = 64
            trust.pin.set = 1
            trust.quarantine_until_s = UInt32(now / 1_000_000_000 + 300)
            trust.strict = UInt32(FG_STRICT_AT_PIN)
            #expect(bpf_map_update_elem(trustedFD, &key, &trust, UInt64(BPF_ANY)) == 0)
            let quarantined = try lab.floodgate(["trusted"]).out
            #expect(quarantined.contains("198.18.22.9") && quarantined.contains("at pin")
                && quarantined.contains("s strict"), "\(quarantined)")
            let json = try lab.floodgate(["trusted", "--json"]).out
            #expect(json.contains("\"strict_at_pin\" : true") && json.contains("\"strict_elsewhere\" : false"), "\(json)")
            let lift = try lab.floodgate(["unquarantine", "198.18.22.9"])
            #expect(lift.status == 0 && lift.out.contains("lifted the quarantine of 198.18.22.9's credentials at its pin"),
                    "\(lift.out)\(lift.err)")
            #expect(!(try lab.floodgate(["trusted"]).out.contains("at pin")))
            #expect(bpf_map_lookup_elem(trustedFD, &key, &trust) == 0 && trust.strict == 0, "a lift ends its strictness too")
            try expectError(lab, ["unquarantine", "198.18.22.9"], "198.18.22.9 is not quarantined")
            let again = try lab.floodgate(["unquarantine", "--if-exists", "198.18.22.9"])
            #expect(again.status == 0 && again.out.contains("nothing to lift"), "\(again.out)\(again.err)")
        }
    }

    /// Destination rules through the CLI: bad prefixes and actions change nothing; a rule for one tier splits a
    /// rule for all; del and list, in text and JSON.
    @Test func destinationRulesThroughTheCLI() throws {
        try withLab { lab in
            #expect(try lab.floodgate(["attach", lab.routerInterface, "--max-sources", "1000"]).status == 0)
            try expectError(lab, ["dest", "add", "+44a", "--block"], "a destination prefix must be 1 to 15 digits")
            try expectError(lab, ["dest", "add", "1234567890123456", "--block"], "a destination prefix must be 1 to 15 digits")
            try expectError(lab, ["dest", "add", "44", "--block", "--allow"], "Give one of --block, --allow")
            try expectError(lab, ["dest", "add", "44"], "Give one of --block, --allow")
            try expectError(lab, ["dest", "add", "44", "--limit", "0/min"], "calls per minute must be N/min")
            try expectError(lab, ["dest", "add", "44", "--limit", "5/s"], "calls per minute must be N/min")
            try expectError(lab, ["dest", "add", "44", "--block", "--tier", "friends"], "friends")
            try expectError(lab, ["dest", "del", "44"], "no destination rule for +44")
            #expect(try lab.floodgate(["dest", "list"]).out.contains("no destination rules"), "nothing was applied")

            #expect(try lab.floodgate(["dest", "add", "+44900", "+44871", "--block"]).status == 0)
            #expect(try lab.floodgate(["dest", "add", "1", "--limit", "2/min", "--total", "30/min"]).status == 0)
            #expect(try lab.floodgate(["dest", "add", "1", "--allow", "--tier", "allowed"]).status == 0)
            let list = try lab.floodgate(["dest", "list"]).out
            #expect(list.contains("+44900") && list.contains("+44871") && list.contains("block"), "\(list)")
            #expect(list.contains("2/min per source") && list.contains("30/min in total"), "\(list)")
            let json = try JSONSerialization.jsonObject(with: Data(try lab.floodgate(["dest", "list", "--json"]).out.utf8))
            let rules = try #require(((json as? [[String: Any]])?.first?["rules"]) as? [[String: Any]], "\(json)")
            let summary = Set(rules.map { "\($0["prefix"]!) \($0["tier"]!) \($0["action"]!)" })
            #expect(summary == ["+1 unverified limit", "+1 verified limit", "+1 allowed allow", "+44871 all block",
                                "+44900 all block"], "\(summary)")
            #expect(rules.contains { $0["per_source_per_minute"] as? Int == 2 && $0["total_per_minute"] as? Int == 30 })

            #expect(try lab.floodgate(["dest", "del", "+44900"]).status == 0)
            try expectError(lab, ["dest", "del", "1", "--tier", "allowed", "44900"], "no destination rule for allowed sources for +44900")
            #expect(try lab.floodgate(["dest", "del", "1"]).status == 0)
            let after = try lab.floodgate(["dest", "list"]).out
            #expect(!after.contains("+44900") && !after.contains("+1 ") && after.contains("+44871"), "\(after)")
        }
    }

    /// A filter pinned by a build with other layouts is refused by every command that would read its maps, and
    /// by attach, with how to replace it; detach still removes it.
    @Test func aFilterPinnedByAnotherBuildIsRefusedWithHowToReplaceIt() throws {
        try withLab { lab in
            #expect(try lab.floodgate(["attach", lab.routerInterface, "--max-sources", "1000"]).status == 0)
            let dir = "\(lab.pinRoot)/\(lab.routerInterface)"
            // Another build's layout version in the settings.
            let settingsFD = bpf_obj_get("\(dir)/\(FG_MAP_SETTINGS)")
            try #require(settingsFD >= 0)
            var zero: UInt32 = 0
            var settings = fg_settings()
            #expect(bpf_map_lookup_elem(settingsFD, &zero, &settings) == 0)
            settings.layout_version = 1
            #expect(bpf_map_update_elem(settingsFD, &zero, &settings, UInt64(BPF_ANY)) == 0)
            close(settingsFD)
            try expectError(lab, ["stats"], "was loaded by another build of Floodgate (layout version 1, this build's is \(FG_LAYOUT_VERSION))")
            try expectError(lab, ["attach", lab.routerInterface], "was loaded by another build of Floodgate")
            #expect(try lab.floodgate(["stats"]).err.contains("floodgate detach \(lab.routerInterface)"))
            #expect(try lab.floodgate(["detach", lab.routerInterface]).status == 0)

            // Another build's map: an allow list whose values are 4 bytes.
            #expect(try lab.floodgate(["attach", lab.routerInterface, "--max-sources", "1000"]).status == 0)
            let path = "\(dir)/\(FG_MAP_ALLOW)"
            #expect(unlink(path) == 0)
            var options = bpf_map_create_opts()
            options.sz = MemoryLayout<bpf_map_create_opts>.size
            options.map_flags = UInt32(BPF_F_NO_PREALLOC)
            let old = bpf_map_create(BPF_MAP_TYPE_LPM_TRIE, "fg_allow", 20, 4, 16, &options)
            try #require(old >= 0)
            defer { close(old) }
            #expect(bpf_obj_pin(old, path) == 0)
            try expectError(lab, ["allow", "list"], "fg_allow is type \(BPF_MAP_TYPE_LPM_TRIE.rawValue), key 20 bytes, value 4 bytes")
            #expect(try lab.floodgate(["detach", lab.routerInterface]).status == 0)
            #expect(try lab.routerXDPProgram() == nil)
        }
    }
}
