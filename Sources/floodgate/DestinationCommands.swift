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
            @OptionGroup var selection: PolicySelection

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
                let filters = try root.changePolicy(selection.interface, force: selection.force) { _, policy in
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
            @OptionGroup var selection: PolicySelection

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
                let filters = try root.changePolicy(selection.interface, force: selection.force) { _, policy in
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
            abstract: "Calls and fraud checks: each source's calls, the thresholds, and the sources blocked for new calls.",
            discussion: """
                Per source: its calls in progress (ringing or answered) and answered, the new calls it was let \
                through this minute, and its international and high-risk calls within the last minute as the \
                thresholds count them. Calls let in from another hop distance than a verified or allow-listed \
                address's own are counted apart ("claimed"). A source over a fraud threshold (config `fraud:`) \
                gets no new calls for the block time; its registrations and its calls in progress go on. A new \
                call over its tier's `concurrent` limit is refused.
                """,
            subcommands: [List.self, Unblock.self], defaultSubcommand: List.self)

        struct List: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Show each source's calls, the thresholds and the blocked sources.")
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
                var concurrent: UInt32?
                enum CodingKeys: String, CodingKey { case tier, international, concurrent, highRisk = "high_risk" }
            }
            struct Source: Codable {
                var source: String
                var claimed: Bool
                var calls: Int32
                var answered: Int32
                var callsThisMinute: UInt32
                var international: UInt32
                var highRisk: UInt32
                var blockedSeconds: Double?
                enum CodingKeys: String, CodingKey {
                    case source, claimed, calls, answered, international
                    case callsThisMinute = "calls_this_minute", highRisk = "high_risk", blockedSeconds = "blocked_seconds"
                }
            }
            struct Entry: Codable {
                var interface: String
                var blockSeconds: UInt32
                var tracked: Bool
                var ringSeconds: UInt32
                var callSeconds: UInt32
                var thresholds: [Threshold]
                var sources: [Source]
                var blocked: [Blocked]
                enum CodingKeys: String, CodingKey {
                    case interface, tracked, thresholds, sources, blocked
                    case blockSeconds = "block_seconds", ringSeconds = "ring_seconds", callSeconds = "call_seconds"
                }
            }

            func run() throws {
                let root = try selection.common.root()
                let now = monotonicNanoseconds()
                let entries = try root.selectFilters(selection.interface).map { f in
                    let maps = try root.maps(of: f.interfaceName)
                    let policy = try maps.fraudPolicy()
                    let blocks = try maps.fraudBlocks(now: now)
                    let blocked = blocks.map {
                        Blocked(source: $0.address.description, kind: $0.kind, perMinute: $0.perMinute,
                                seconds: Double($0.untilNS - now) / 1e9)
                    }
                    let sources = try maps.callers(now: now).map { c in
                        Source(source: c.address.description, claimed: c.claimed, calls: c.calls, answered: c.answered,
                               callsThisMinute: c.callsThisMinute, international: c.international, highRisk: c.highRisk,
                               blockedSeconds: c.claimed ? nil : blocks.first { $0.address == c.address }
                                   .map { Double($0.untilNS - now) / 1e9 })
                    }
                    return Entry(
                        interface: f.interfaceName, blockSeconds: policy.blockSeconds, tracked: policy.tracksCalls,
                        ringSeconds: policy.ringSeconds, callSeconds: policy.callSeconds,
                        thresholds: DestinationRule.Tier.allCases.map { tier in
                            let t = policy.thresholds(of: tier)
                            return Threshold(tier: tier.rawValue, international: t.international, highRisk: t.highRisk,
                                             concurrent: t.concurrent)
                        },
                        sources: sources, blocked: blocked)
                }
                if json { return try printJSON(entries) }
                for e in entries {
                    guard e.tracked else {
                        print("\(e.interface): no fraud checks and no calls counted (config fraud: is off)")
                        continue
                    }
                    let per = { (n: UInt32?) in n.map { "\($0)/min" } ?? "off" }
                    let velocity = e.blockSeconds > 0 ? "over a threshold, no new calls for \(e.blockSeconds)s" : "no velocity thresholds"
                    print("\(e.interface): \(velocity); calls ring at most \(e.ringSeconds)s, last at most \(e.callSeconds)s after a 2xx")
                    for th in e.thresholds {
                        print("  \(th.tier): international \(per(th.international)), high-risk \(per(th.highRisk)), "
                            + "calls in progress \(th.concurrent.map(String.init) ?? "unlimited")")
                    }
                    if e.sources.isEmpty { print("  no calls counted") }
                    for s in e.sources {
                        print("  \(s.source)\(s.claimed ? " (claimed from another hop distance)" : ""): "
                            + "\(s.calls) in progress, \(s.answered) answered, \(s.callsThisMinute) new this minute, "
                            + "international \(s.international) and high-risk \(s.highRisk) in the last minute")
                    }
                    if e.blocked.isEmpty { print("  no source is blocked") }
                    for b in e.blocked {
                        let over = b.kind == "concurrent" ? "\(b.perMinute) calls in progress" : "\(b.perMinute) \(b.kind) calls a minute"
                        print("  \(b.source) blocked for new calls: over \(over), "
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
