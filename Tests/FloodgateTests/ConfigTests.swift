import CFloodgate
import FloodgateAgent
import FloodgateCore
import Foundation
import Testing

/// The agent's YAML config: the shipped example, and bad files with their precise errors.
@Suite struct ConfigTests {
    /// The example config states the defaults: parsed, it is the configuration of an empty file.
    /// A list file is someone else's word: a line wider than a /8 (0.0.0.0/0 would deny everyone) is skipped,
    /// and so is a deny entry that covers an allow-listed network or a SIP server (the deny list is checked
    /// first); each with a warning. `strict: true` refuses such a file. The config's own entries are its own.
    @Test func aListFileCannotDenyEveryoneOrTheTrustedOnes() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fgwide-\(uniqueID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try "0.0.0.0/0 ; everything\n::/0\n198.18.5.0/24\n198.18.7.0/24\n203.0.113.0/24\n"
            .write(to: dir.appendingPathComponent("drop.txt"), atomically: true, encoding: .utf8)
        let text = """
            interfaces: {external: veth0}
            sip: {servers: [198.18.7.9]}
            allow: [198.18.5.7]
            deny:
              - 192.0.0.0/4
              - file: drop.txt
            """
        let c = try AgentConfig.parse(text, file: dir.appendingPathComponent("f.yaml").path)
        #expect(c.policy.deny == [try CIDR("192.0.0.0/4"), try CIDR("203.0.113.0/24")], "\(c.policy.deny)")
        #expect(c.warnings.contains { $0.contains("0.0.0.0/0 is wider than a list file may block") }, "\(c.warnings)")
        #expect(c.warnings.contains { $0.contains("198.18.5.0/24 covers 198.18.5.7/32") }, "\(c.warnings)")
        #expect(c.warnings.contains { $0.contains("198.18.7.0/24 covers 198.18.7.9/32") }, "\(c.warnings)")
        let strict = text.replacingOccurrences(of: "- file: drop.txt", with: "- {file: drop.txt, strict: true}")
        #expect(throws: ConfigErrors.self) { _ = try AgentConfig.parse(strict, file: dir.appendingPathComponent("f.yaml").path) }
    }

    @Test func theShippedExampleIsValidAndStatesTheDefaults() throws {
        let example = try AgentConfig.parse(ShippedFiles.exampleConfig, file: "floodgate.yaml")
        var empty = try AgentConfig.parse("interfaces:\n  external: eth1\n", file: "empty.yaml")
        #expect(example.external == "eth1")
        let uplinks = try AgentConfig.parse("interfaces:\n  external: [eth1, eth3]\n", file: "u.yaml")
        #expect(uplinks.externals == ["eth1", "eth3"] && uplinks.external == "eth1")
        #expect(example.policy.settings == Settings.defaults)
        #expect(example.policy.limits == Limit.defaults)
        #expect(example.policy.verifiedLimits == Limit.verifiedDefaults)
        #expect(example.policy.servers.isEmpty && example.policy.allowOptions.isEmpty)
        #expect(example.maxAutoBans == UInt32(FG_DEFAULT_MAX_AUTO_BANS))
        #expect(example.policy.prefix == Limit.defaultPrefix && example.policy.budget == Limit.defaultBudget)
        #expect(example.policy.newSources == Limit.defaultNewSources)
        #expect(example.policy.signatures == Set(Signature.defaults))
        #expect(example.bruteForce == BruteForce() && example.trustSeconds == 86400)
        // They take effect only with an inside interface.
        #expect(example.effectivePolicy.settings.bruteForce == nil && example.effectivePolicy.settings.trustSeconds == 0)
        let withInside = try AgentConfig.parse(
            ShippedFiles.exampleConfig.replacingOccurrences(of: "# inside: eth2", with: "inside: eth2"), file: "f.yaml")
        #expect(withInside.inside == "eth2")
        #expect(withInside.effectivePolicy.settings.bruteForce == BruteForce() && withInside.effectivePolicy.settings.trustSeconds == 86400)
        empty.policy.signatures = example.policy.signatures
        #expect(example == empty)
    }

    /// `numbers:` and `destinations:`: inline rules and rule files (`;` and `#` comments), and every bad value named
    /// with its line; a file with one bad line is not used.
    @Test func numbersAndDestinations() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fgcfg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try "; premium ranges\n+44900 block   # premium\n\n44871 block\n1900 limit 1/min total 5/min tier unverified\n"
            .write(to: dir.appendingPathComponent("risk.txt"), atomically: true, encoding: .utf8)
        let text = """
            interfaces: {external: veth0}
            numbers:
              country_code: "+44"
              international: ["00", "011"]
              national: "0"
              bare: national
            destinations:
              - "+44 allow"
              - "1 limit 3/min tier verified"
              - file: risk.txt
            """
        let c = try AgentConfig.parse(text, file: dir.appendingPathComponent("f.yaml").path)
        #expect(c.policy.settings.numbers == NumberPlan(countryCode: "44", international: ["00", "011"], national: "0", bare: .national))
        #expect(c.policy.destinations == [
            try DestinationRule("44", .allow), try DestinationRule("1", .limit(perSource: 3, total: nil), tier: .verified),
            try DestinationRule("44900", .block), try DestinationRule("44871", .block),
            try DestinationRule("1900", .limit(perSource: 1, total: 5), tier: .unverified),
        ])
        #expect(c.listFiles.contains { $0.hasSuffix("risk.txt") })

        try "44900 block\n44871 blok\n".write(to: dir.appendingPathComponent("bad.txt"), atomically: true, encoding: .utf8)
        let bad = """
            interfaces: {external: veth0}
            numbers:
              national: "0"
              bare: nowhere
            destinations:
              - "+44x block"
              - "44 limit 0/min"
              - "44 block"
              - "44 allow"
              - file: bad.txt
            """
        do {
            _ = try AgentConfig.parse(bad, file: dir.appendingPathComponent("g.yaml").path)
            Issue.record("a bad config was accepted")
        } catch let errors as ConfigErrors {
            let text = errors.description
            #expect(text.contains("numbers.bare: must be e164, national or local (got 'nowhere')"), "\(text)")
            #expect(text.contains("a national prefix needs the country code"), "\(text)")
            #expect(text.contains("a destination prefix must be 1 to 15 digits"), "\(text)")
            #expect(text.contains("calls per minute must be N/min"), "\(text)")
            #expect(text.contains("bad.txt:2: the action must be block, allow or limit"), "\(text)")
            #expect(text.contains("two destination rules for +44"), "\(text)")
        }
    }

    /// The shipped high-risk list: every line a rule, every group of rules under a comment that names its source.
    @Test func theHighRiskListParsesAndNamesItsSources() throws {
        let text = ShippedFiles.highRiskDestinations
        let rules = try DestinationRule.parseList(text, name: "high-risk.txt")
        #expect(rules.count >= 9 && rules.allSatisfy { $0.action == .block && $0.tier == nil })
        #expect(Set(rules.map(\.prefix)).isSuperset(of: ["870", "881", "882", "883", "979", "808", "449"]))
        var sourced = false
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.isEmpty { sourced = false } else if line.hasPrefix("#") {
                if line.contains("Source:") { sourced = true }
            } else {
                #expect(sourced, "\(line): no source named above it")
            }
        }
    }

    /// Each `(section, message)`: the config with that section after an external interface is refused, the
    /// message among its problems.
    static func expectRejected(_ cases: [(String, String)], sourceLocation: SourceLocation = #_sourceLocation) {
        for (bad, message) in cases {
            do {
                _ = try AgentConfig.parse("interfaces: {external: veth0}\n" + bad, file: "g.yaml")
                Issue.record("accepted: \(bad)", sourceLocation: sourceLocation)
            } catch let errors as ConfigErrors {
                #expect(errors.description.contains(message), "\(errors)", sourceLocation: sourceLocation)
            } catch {
                Issue.record("\(bad): \(error)", sourceLocation: sourceLocation)
            }
        }
    }

    /// `fraud:`: the thresholds at the top for every tier, a tier's section over them, `off`; and the checks that
    /// need the whole file.
    @Test func fraudThresholdsPerTier() throws {
        let text = """
            interfaces: {external: veth0}
            fraud:
              block: 2h
              international: 10/min
              high_risk: 2/min
              allowed: {international: off, high_risk: 20/min}
            numbers: {country_code: "44"}
            """
        let c = try AgentConfig.parse(text, file: "f.yaml")
        #expect(c.policy.fraud == FraudPolicy(blockSeconds: 7200, thresholds: [
            .unverified: .init(international: 10, highRisk: 2), .verified: .init(international: 10, highRisk: 2),
            .allowed: .init(international: nil, highRisk: 20),
        ]))
        #expect(try AgentConfig.parse("interfaces: {external: veth0}\n", file: "e.yaml").policy.fraud == FraudPolicy())
        ConfigTests.expectRejected([
            ("fraud: {international: 10/min}\nnumbers: {country_code: \"44\"}", "fraud.block: is needed"),
            ("fraud: {block: 1h, international: 10/min}", "needs numbers.country_code"),
            ("fraud: {block: 1h, high_risk: 10/s}", "calls per minute must be N/min"),
            ("fraud: {block: 40d}", "must be 1s to 30d"),
            ("fraud: {block: 1h, friends: {international: 1/min}}", "unknown field"),
        ])
    }

    /// `fraud:` calls in progress: a limit for every tier, a tier's own, the timers; a limit alone counts calls
    /// without velocity thresholds (no block time needed).
    @Test func callsInProgressPerTier() throws {
        let c = try AgentConfig.parse("""
            interfaces: {external: veth0}
            fraud:
              concurrent: 4
              ring_timeout: 90s
              call_timeout: 2h
              allowed: {concurrent: 300}
              verified: {concurrent: off}
            """, file: "c.yaml")
        #expect(c.policy.fraud == FraudPolicy(blockSeconds: 0, thresholds: [
            .unverified: .init(concurrent: 4), .allowed: .init(concurrent: 300),
        ], ringSeconds: 90, callSeconds: 7200))
        #expect(c.policy.fraud.tracksCalls && !c.policy.fraud.blockWhenFull)
        let blocking = try AgentConfig.parse("interfaces: {external: veth0}\nfraud: {block: 1h, concurrent: 3, concurrent_action: block}\n",
                                             file: "b.yaml")
        #expect(blocking.policy.fraud.blockWhenFull && blocking.policy.fraud.blockSeconds == 3600)
        ConfigTests.expectRejected([
            ("fraud: {concurrent: 0}", "must be a whole number from 1 to 100000"),
            ("fraud: {concurrent: many}", "must be a whole number"),
            ("fraud: {concurrent: 2, ring_timeout: 2h}", "must be 1s to 1h"),
            ("fraud: {concurrent: 2, call_timeout: 10s}", "must be 1m to 7d"),
            ("fraud: {concurrent: 2, concurrent_action: block}", "fraud.block: is needed"),
            ("fraud: {concurrent: 2, concurrent_action: maybe}", "must be refuse or block"),
        ])
    }

    /// `caller_id:`: the mode and each entry's source networks and number prefixes; every bad part named.
    @Test func callerIDEntries() throws {
        let c = try AgentConfig.parse("""
            interfaces: {external: veth0}
            caller_id:
              mode: enforce
              sources:
                - from: [198.51.100.0/24, "2001:db8:5::/48"]
                  numbers: ["+44 20 7946", "44161496"]
                - from: 203.0.113.7
                  numbers: "+331"
            """, file: "c.yaml")
        #expect(c.policy.callerID == CallerIDPolicy(mode: .enforce, entries: [
            try .init(sources: [try CIDR("198.51.100.0/24"), try CIDR("2001:db8:5::/48")], numbers: ["4420 7946", "+44161496"]),
            try .init(sources: [try CIDR("203.0.113.7")], numbers: ["331"]),
        ]))
        ConfigTests.expectRejected([
            ("caller_id: {mode: strict, sources: []}", "must be enforce, flag or off"),
            ("caller_id: {sources: []}", "caller_id.mode: is required"),
            ("caller_id: {mode: flag, sources: [{from: [10.0.0.1/8], numbers: [\"+44\"]}]}", "host bits set"),
            ("caller_id: {mode: flag, sources: [{from: [198.51.100.1], numbers: [\"+44x\"]}]}", "1 to 15 digits"),
            ("caller_id: {mode: flag, sources: [{from: [198.51.100.1]}]}", "at least one number prefix"),
            ("caller_id: {mode: flag, sources: [{from: [198.51.100.1], numbers: [\"0044161\"]}]}", "never starts with 0"),
            ("caller_id: {mode: flag, sources: [{from: 198.51.100.1, numbers: \"+44\"}, {from: 198.51.100.1, numbers: \"+33\"}]}",
             "is in entries 1 and 2"),
        ])
    }

    @Test func listsTakeInlineNetworksAndFilesRelativeToTheConfig() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fgcfg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try "# trunks\n198.51.100.0/24\n\n2001:db8:5::/48  # carrier B\n".write(
            to: dir.appendingPathComponent("trunks.txt"), atomically: true, encoding: .utf8)
        let text = """
            interfaces: {external: veth0}
            allow:
              - 198.18.0.10
              - file: trunks.txt
            deny: [203.0.113.0/24]
            """
        let c = try AgentConfig.parse(text, file: dir.appendingPathComponent("f.yaml").path)
        #expect(c.policy.allow.sorted().map(\.description) == ["198.18.0.10/32", "198.51.100.0/24", "2001:db8:5::/48"].sorted {
            try! CIDR($0) < CIDR($1)
        })
        #expect(c.policy.deny.sorted().map(\.description) == ["203.0.113.0/24"])
        #expect(c.listFiles == [dir.appendingPathComponent("trunks.txt").path])
        #expect(c.warnings.isEmpty)

        // A published block list (Spamhaus DROP's form): `;` comments, and one bad line, skipped with a warning
        // naming its file and line; the rest is used. `strict: true` refuses the file instead.
        let drop = dir.appendingPathComponent("drop.txt")
        try "; Spamhaus DROP List\n1.10.16.0/20 ; SBL256894\n203.0.113.7/24 ; host bits\n198.18.77.0/24\n".write(
            to: drop, atomically: true, encoding: .utf8)
        let denying = "interfaces: {external: veth0}\ndeny:\n  - file: drop.txt\n"
        try denying.write(to: dir.appendingPathComponent("d.yaml"), atomically: true, encoding: .utf8)
        let lenient = try AgentConfig.parse(denying, file: dir.appendingPathComponent("d.yaml").path)
        #expect(lenient.policy.deny.sorted().map(\.description) == ["1.10.16.0/20", "198.18.77.0/24"])
        #expect(lenient.warnings.count == 1 && lenient.warnings[0].hasPrefix("\(drop.path):3: '203.0.113.7/24' has host bits set"),
                "\(lenient.warnings)")
        do {
            _ = try AgentConfig.parse("interfaces: {external: veth0}\ndeny:\n  - {file: drop.txt, strict: true}\n",
                                      file: dir.appendingPathComponent("s.yaml").path)
            Issue.record("a strict list with a bad line was accepted")
        } catch let errors as ConfigErrors {
            #expect(errors.description.contains("drop.txt:3: '203.0.113.7/24' has host bits set"), "\(errors)")
        }
        // CRLF line ends, a header comment first: read line by line all the same. A file with no good line at all
        // (an error page where a list was expected) is refused.
        try "; Spamhaus DROP List\r\n1.10.16.0/20 ; SBL256894\r\n198.18.77.0/24\r\n".write(to: drop, atomically: true, encoding: .utf8)
        let crlf = try AgentConfig.parse(denying, file: dir.appendingPathComponent("d.yaml").path)
        #expect(crlf.policy.deny.count == 2 && crlf.warnings.isEmpty, "\(crlf.policy.deny) \(crlf.warnings)")
        try "<html>\n<body>Not Found</body>\n</html>\n".write(to: drop, atomically: true, encoding: .utf8)
        do {
            _ = try AgentConfig.parse(denying, file: dir.appendingPathComponent("d.yaml").path)
            Issue.record("a list file with no good line was accepted")
        } catch let errors as ConfigErrors {
            #expect(errors.description.contains("drop.txt:1:"), "\(errors)")
        }
        try "; Spamhaus DROP List\n1.10.16.0/20 ; SBL256894\n203.0.113.7/24 ; host bits\n198.18.77.0/24\n".write(
            to: drop, atomically: true, encoding: .utf8)
        let check = try run([floodgateBinary, "config", "check", dir.appendingPathComponent("d.yaml").path])
        #expect(check.status == 0 && check.err.contains("warning: skipped \(drop.path):3:"), "\(check.out)\(check.err)")
    }

    /// What the tiers take: allow entries with their own limit and TTL range, verified sources' limits, the SIP
    /// servers whose answers count, the TTL tolerance and the size of the filter's own ban map.
    @Test func tiersAllowEntriesAndServers() throws {
        let text = """
            interfaces: {external: veth0, inside: veth1}
            max_bans: 4096
            sip:
              servers: [198.18.2.2, 2001:db8:2::/64]
            allow:
              - 198.18.0.10
              - {cidr: 198.51.100.0/24, limit: 500/s burst 800, ttl: 60-64}
              - {cidr: 198.51.101.0/24, limit: unlimited}
            limits:
              invite: 4/s
              verified:
                invite: 40/s burst 80
            trust:
              duration: 1h
              ttl_tolerance: 1
            """
        let c = try AgentConfig.parse(text, file: "f.yaml")
        #expect(c.maxAutoBans == 4096)
        #expect(c.policy.servers.sorted().map(\.description) == ["198.18.2.2/32", "2001:db8:2::/64"])
        #expect(c.policy.allow.count == 3)
        #expect(c.policy.allowOptions[try CIDR("198.51.100.0/24")] == AllowOptions(limit: .rate(500, burst: 800), ttl: 60...64))
        #expect(c.policy.allowOptions[try CIDR("198.51.101.0/24")] == AllowOptions(limit: .unlimited))
        #expect(c.policy.allowOptions[try CIDR("198.18.0.10")] == nil)
        #expect(c.policy.limits[.invite] == .rate(4, burst: 4) && c.policy.verifiedLimits[.invite] == .rate(40, burst: 80))
        #expect(c.policy.verifiedLimits[.register] == Limit.verifiedDefaults[.register])
        #expect(c.effectivePolicy.settings.ttlTolerance == 1 && c.effectivePolicy.settings.trustSeconds == 3600)
    }

    /// Each bad file gives one problem, on the right line, naming the field and why.
    @Test(arguments: [
        ("interfaces:\n  inside: eth2\n", 1, "interfaces.external", "is required"),
        ("interfaces: {external: eth1}\nlimts:\n  invite: 8/s\n", 2, "limts", "did you mean 'limits'"),
        ("interfaces: {external: eth1}\nlimits:\n  invite: 8 per second\n", 3, "limits.invite", "RATE/s"),
        ("interfaces: {external: eth1}\nlimits:\n  invite: 0/s\n", 3, "limits.invite", "at least 1 packet/s"),
        ("interfaces: {external: eth1}\nlimits:\n  invitee: 8/s\n", 3, "limits.invitee", "did you mean 'invite'"),
        ("interfaces: {external: eth1}\nallow:\n  - 198.18.0.1/24\n", 3, "allow", "host bits set"),
        ("interfaces: {external: eth1}\ndeny:\n  - 10.0.0.0/33\n", 3, "deny", "bad prefix length"),
        ("interfaces: {external: eth1}\nallow:\n  - file: /nonexistent/trunks.txt\n", 3, "allow.file", "cannot read"),
        ("interfaces: {external: eth1}\nsip:\n  ports: [5060, 70000]\n", 3, "sip.ports", "1 to 65535"),
        ("interfaces: {external: eth1}\nsip:\n  rtp_ports: 20000-10000\n", 3, "sip.rtp_ports", "LOW-HIGH"),
        ("interfaces: {external: eth1}\nprefix:\n  ipv4: 40\n", 3, "prefix.ipv4", "8 to 32"),
        ("interfaces: {external: eth1}\nauto_ban:\n  window: 10 parsecs\n", 3, "auto_ban.window", "not a duration"),
        ("interfaces: {external: eth1}\nauto_ban:\n  window: 500\n", 3, "auto_ban.window", "needs a unit"),
        ("interfaces: {external: eth1}\nauto_ban:\n  durations: [1m, 2m, 3m, 4m, 5m]\n", 3, "auto_ban.durations", "1 to 4"),
        ("interfaces: {external: eth1}\nauto_ban:\n  jitter: 150%\n", 3, "auto_ban.jitter", "0% to 100%"),
        ("interfaces: {external: eth1}\nmetrics:\n  listen: 0.0.0.0\n", 3, "metrics.listen", "HOST:PORT"),
        ("interfaces: {external: eth1}\nlog:\n  format: xml\n", 3, "log.format", "text or json"),
        ("interfaces: {external: eth1}\nlog:\n  level: loud\n", 3, "log.level", "debug, info, notice, warning or error"),
        ("interfaces:\n  external: [eth1, eth1]\n", 2, "interfaces.external", "names eth1 twice"),
        ("interfaces:\n  external: [eth1, eth/2]\n", 2, "interfaces.external", "is not an interface name"),
        ("interfaces:\n  external: [eth1, eth2]\n  inside: eth2\n", 2, "interfaces.inside", "must differ from interfaces.external"),
        ("interfaces:\n  external: []\n", 1, "interfaces.external", "is required"),
        ("interfaces: {external: eth1}\napi:\n  socket: relative.sock\n", 3, "api.socket", "absolute path"),
        ("interfaces: {external: eth1, mode: turbo}\n", 1, "interfaces.mode", "native, generic or auto"),
        ("interfaces: {external: eth1}\nscanners:\n  signatures:\n    - user_agent: \"\"\n", 4, "scanners.signatures.user_agent", "1 to 31 bytes"),
        ("interfaces: {external: eth1}\nlimits: [8/s]\n", 2, "limits", "must be a mapping"),
        ("interfaces: {external: eth1\nlimits:\n", 2, "", "not valid YAML"),
        ("interfaces: {external: eth1}\nallow:\n  - {cidr: 198.18.0.0/24, limit: block}\n", 3, "allow.limit", "use the deny list"),
        ("interfaces: {external: eth1}\nallow:\n  - {cidr: 198.18.0.0/24, ttl: 70-60}\n", 3, "allow.ttl", "not a TTL range"),
        ("interfaces: {external: eth1}\nallow:\n  - {cidr: 198.18.0.0/24, rate: 5/s}\n", 3, "allow.rate", "did you mean"),
        ("interfaces: {external: eth1}\nlimits:\n  verified:\n    invite: 0/s\n", 4, "limits.verified.invite", "at least 1"),
        ("interfaces: {external: eth1}\ntrust:\n  ttl_tolerance: 300\n", 3, "trust.ttl_tolerance", "0 to 64"),
        ("interfaces: {external: eth1}\nsip:\n  servers: [198.18.2.2/33]\n", 3, "sip.servers", "bad prefix length"),
        ("interfaces: {external: eth1}\nmax_bans: 10\n", 2, "max_bans", "1024 to 10000000"),
    ])
    func aBadFileNamesItsLineFieldAndWhy(text: String, line: Int, field: String, why: String) throws {
        do {
            _ = try AgentConfig.parse(text, file: "bad.yaml")
            Issue.record("accepted: \(text)")
        } catch let errors as ConfigErrors {
            #expect(errors.problems.count == 1, "\(errors)")
            let p = try #require(errors.problems.first)
            #expect(p.file == "bad.yaml")
            #expect(p.line == line, "\(p)")
            #expect(p.field == field, "\(p)")
            #expect(p.description.contains(why), "\(p)")
        }
    }

    /// `floodgate config check` prints every problem and exits 1; a good file is summarised.
    @Test func configCheckReportsProblemsAndExitsNonZero() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fgcfg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let bad = dir.appendingPathComponent("bad.yaml")
        try "interfaces: {external: eth1}\nlimits:\n  invite: fast\n  register: 0/s\n".write(
            to: bad, atomically: true, encoding: .utf8)
        let result = try run([floodgateBinary, "config", "check", bad.path])
        #expect(result.status == 1)
        #expect(result.err.contains("\(bad.path):3: limits.invite:"), "\(result.err)")
        #expect(result.err.contains("\(bad.path):4: limits.register:"), "\(result.err)")
        let good = dir.appendingPathComponent("good.yaml")
        try ShippedFiles.exampleConfig.write(to: good, atomically: true, encoding: .utf8)
        let ok = try run([floodgateBinary, "config", "check", good.path])
        #expect(ok.status == 0, "\(ok.err)")
        #expect(ok.out.contains("OK"))
    }
}
