import ArgumentParser
import FloodgateCore
import Foundation

// `floodgate dest`: what INVITEs may dial, by prefix of the E.164 number.

extension DestinationRule.Tier: ExpressibleByArgument {}

extension Floodgate {
    struct Dest: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Destination rules: allow, block or limit INVITEs by the prefix of the number they dial.",
            discussion: """
                The number is the user part of the INVITE's Request-URI (sip:, sips:, tel:), made an E.164 number \
                with the site's dialling prefixes (config `numbers:`). The longest prefix decides; no rule: the \
                call goes on.
                """,
            subcommands: [Add.self, Del.self, List.self])

        struct Prefixes: ParsableArguments {
            @Argument(help: "E.164 prefixes (1 to 15 digits, with or without +; + alone: every number).") var prefixes: [String]
            @Option(help: "Only for sources of this tier: unverified, verified or allowed (default: all).")
            var tier: DestinationRule.Tier?
        }

        struct Add: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Add destination rules (or replace those of the same prefixes and tier).")
            @OptionGroup var input: Prefixes
            @Flag(help: "Drop INVITEs to these prefixes.") var block = false
            @Flag(help: "Let them through (carves an exception out of a shorter blocked prefix).") var allow = false
            @Option(help: "At most N calls a minute from each source (N/min), at most N at once.") var limit: String?
            @Option(help: "At most N calls a minute from all sources together (N/min).") var total: String?
            @OptionGroup var selection: FilterSelection

            func rules() throws -> [DestinationRule] {
                guard !input.prefixes.isEmpty else { throw ValidationError("Give at least one prefix.") }
                let limited = limit != nil || total != nil
                guard [block, allow, limited].filter({ $0 }).count == 1 else {
                    throw ValidationError("Give one of --block, --allow, or --limit N/min and/or --total N/min.")
                }
                do {
                    let action: DestinationRule.Action = block ? .block : allow ? .allow
                        : .limit(perSource: try limit.map(DestinationRule.parsePerMinute),
                                 total: try total.map(DestinationRule.parsePerMinute))
                    return try input.prefixes.map { try DestinationRule($0, action, tier: input.tier) }
                } catch let error as ValidationError { throw error } catch { throw ValidationError("\(error).") }
            }

            func validate() throws { _ = try rules() }

            func run() throws {
                let root = try selection.common.root()
                let rules = try rules()
                let filters = try root.changePolicy(selection.interface) { _, policy in
                    policy.destinations = policy.destinations.replacing(with: rules)
                }
                for f in filters {
                    print("\(f.interfaceName): \(rules.map(\.description).joined(separator: ", ")).")
                }
            }
        }

        struct Del: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Remove destination rules.")
            @OptionGroup var input: Prefixes
            @OptionGroup var selection: FilterSelection

            func targets() throws -> [String] {
                guard !input.prefixes.isEmpty else { throw ValidationError("Give at least one prefix.") }
                do { return try input.prefixes.map { try DestinationRule($0, .block).prefix } } catch {
                    throw ValidationError("\(error).")
                }
            }

            func validate() throws { _ = try targets() }

            func run() throws {
                let root = try selection.common.root()
                let prefixes = try targets()
                let filters = try root.changePolicy(selection.interface) { _, policy in
                    policy.destinations = try policy.destinations.removing(prefixes: prefixes, tier: input.tier)
                }
                for f in filters { print("\(f.interfaceName): \(prefixes.count) destination rules removed.") }
            }
        }

        struct List: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Show the destination rules and the number plan.")
            @Flag(help: "Print JSON.") var json = false
            @OptionGroup var selection: FilterSelection

            struct Rule: Codable {
                var prefix: String
                var tier: String
                var action: String
                var perSourcePerMinute: UInt32?
                var totalPerMinute: UInt32?
                enum CodingKeys: String, CodingKey {
                    case prefix, tier, action
                    case perSourcePerMinute = "per_source_per_minute", totalPerMinute = "total_per_minute"
                }
            }
            struct Entry: Codable {
                var interface: String
                var countryCode: String
                var international: [String]
                var national: String
                var bare: String
                var rules: [Rule]
                var outcomes: [String: UInt64]
                enum CodingKeys: String, CodingKey {
                    case interface, international, national, bare, rules, outcomes, countryCode = "country_code"
                }
            }

            func run() throws {
                let root = try selection.common.root()
                let entries = try root.selectFilters(selection.interface).map { f in
                    let maps = try root.maps(of: f.interfaceName)
                    let plan = try maps.settings().numbers
                    let rules = try maps.destinationRules().map { r -> Rule in
                        var rule = Rule(prefix: "+" + r.prefix, tier: r.tier?.rawValue ?? "all", action: "\(r.action)")
                        if case .limit(let perSource, let total) = r.action {
                            rule.action = "limit"
                            rule.perSourcePerMinute = perSource
                            rule.totalPerMinute = total
                        }
                        return rule
                    }
                    return Entry(interface: f.interfaceName, countryCode: plan.countryCode, international: plan.international,
                                 national: plan.national, bare: plan.bare.rawValue, rules: rules,
                                 outcomes: try maps.destinationOutcomes())
                }
                if json { return try printJSON(entries) }
                for e in entries {
                    let cc = e.countryCode.isEmpty ? "none" : "+\(e.countryCode)"
                    print("\(e.interface): country code \(cc), international prefixes \(e.international.joined(separator: " ")), "
                        + "national prefix \(e.national.isEmpty ? "none" : e.national), bare numbers \(e.bare)")
                    if e.rules.isEmpty { print("  no destination rules: every number may be called") }
                    print("  INVITEs judged so far: " + FilterMaps.destinationOutcomeNames.map { "\($0) \(e.outcomes[$0] ?? 0)" }
                        .joined(separator: ", "))
                    for r in e.rules {
                        var action = r.action
                        if let n = r.perSourcePerMinute { action += " \(n)/min per source" }
                        if let n = r.totalPerMinute { action += " \(n)/min in total" }
                        print("  \(r.prefix.padding(toLength: 17, withPad: " ", startingAt: 0)) \(r.tier.padding(toLength: 10, withPad: " ", startingAt: 0)) \(action)")
                    }
                }
            }
        }
    }
}

extension Floodgate {
    struct Calls: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Fraud checks: the thresholds, and the sources blocked for new calls.",
            discussion: """
                A source over a fraud threshold (new calls a minute to international numbers, or to destinations \
                a rule marks high-risk; config `fraud:`) gets no new calls for the block time; its registrations \
                and its calls in progress go on.
                """,
            subcommands: [List.self, Unblock.self], defaultSubcommand: List.self)

        struct List: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Show the thresholds and the blocked sources.")
            @Flag(help: "Print JSON.") var json = false
            @OptionGroup var selection: FilterSelection

            struct Blocked: Codable {
                var source: String
                var kind: String
                var perMinute: UInt32
                var seconds: Double
                enum CodingKeys: String, CodingKey { case source, kind, seconds, perMinute = "per_minute" }
            }
            struct Threshold: Codable {
                var tier: String
                var international: UInt32?
                var highRisk: UInt32?
                enum CodingKeys: String, CodingKey { case tier, international, highRisk = "high_risk" }
            }
            struct Entry: Codable {
                var interface: String
                var blockSeconds: UInt32
                var thresholds: [Threshold]
                var blocked: [Blocked]
                enum CodingKeys: String, CodingKey { case interface, thresholds, blocked, blockSeconds = "block_seconds" }
            }

            func run() throws {
                let root = try selection.common.root()
                let now = monotonicNanoseconds()
                let entries = try root.selectFilters(selection.interface).map { f in
                    let maps = try root.maps(of: f.interfaceName)
                    let policy = try maps.fraudPolicy()
                    return Entry(
                        interface: f.interfaceName, blockSeconds: policy.blockSeconds,
                        thresholds: DestinationRule.Tier.allCases.map { tier in
                            let t = policy.thresholds(of: tier)
                            return Threshold(tier: tier.rawValue, international: t.international, highRisk: t.highRisk)
                        },
                        blocked: try maps.fraudBlocks(now: now).map {
                            Blocked(source: $0.address.description, kind: $0.kind, perMinute: $0.perMinute,
                                    seconds: Double($0.untilNS - now) / 1e9)
                        })
                }
                if json { return try printJSON(entries) }
                for e in entries {
                    guard e.blockSeconds > 0 else {
                        print("\(e.interface): no fraud checks (config fraud.block is off)")
                        continue
                    }
                    let per = { (n: UInt32?) in n.map { "\($0)/min" } ?? "off" }
                    print("\(e.interface): over a threshold, no new calls for \(e.blockSeconds)s; "
                        + e.thresholds.map { "\($0.tier): international \(per($0.international)), high-risk \(per($0.highRisk))" }
                        .joined(separator: "; "))
                    if e.blocked.isEmpty { print("  no source is blocked") }
                    for b in e.blocked {
                        print("  \(b.source) blocked for new calls: over \(b.perMinute) \(b.kind) calls a minute, "
                            + String(format: "%.0f s left", b.seconds))
                    }
                }
            }
        }

        struct Unblock: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Let a blocked source place new calls again.")
            @Argument(help: "The blocked address.") var address: String
            @OptionGroup var selection: FilterSelection

            func validate() throws {
                guard SourceAddress(address) != nil else { throw ValidationError("'\(address)' is not an IPv4 or IPv6 address.") }
            }

            func run() throws {
                let root = try selection.common.root()
                let source = SourceAddress(address)!
                var lifted = false
                let filters = try root.change(selection.interface) { _, maps in
                    lifted = try maps.unblockCalls(of: source) || lifted
                    return {}
                }
                // Idempotent, as scripts need: an address not blocked is said so, not an error.
                for f in filters {
                    print("\(f.interfaceName): \(lifted ? "lifted the block on" : "no block on") \(source).")
                }
            }
        }
    }
}
