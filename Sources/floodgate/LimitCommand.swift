import ArgumentParser
import FloodgateCore
import Foundation

extension Floodgate {
    struct LimitCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "limit",
            abstract: "Show or change the per-source limits of each traffic class.",
            subcommands: [Set.self, List.self])

        struct Set: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Change one class's per-source limit on the running filters.",
                discussion: "Applied with one map update per filter: the class is never unlimited or blocked in between.")

            @Argument(help: "The class: \(TrafficClass.all.map(\.name).joined(separator: ", ")).")
            var trafficClass: String
            @Option(help: "Packets per second per source.") var rate: Int?
            @Option(help: "Packets a source may send at once (default: the rate).") var burst: Int?
            @Flag(help: "Stop limiting the class.") var unlimited = false
            @Flag(help: "Drop every packet of the class.") var block = false
            @Option(help: "Whose limit: unverified (strangers) or verified (sources the SIP server accepted).")
            var tier: Tier = .unverified
            @Option(name: .shortAndLong, help: "Only this interface (repeatable); default: every attached one.")
            var interface: [String] = []
            @Flag(help: "With an agent running, change it anyway: its config owns the policy, and its next reload puts the config's back.")
            var force = false
            @OptionGroup var common: CommonOptions

            func validate() throws { _ = try parsed() }

            func parsed() throws -> (TrafficClass, FloodgateCore.Limit) {
                guard let c = TrafficClass(name: trafficClass) else {
                    throw ValidationError(
                        "Unknown class '\(trafficClass)'; the classes are \(TrafficClass.all.map(\.name).joined(separator: ", ")).")
                }
                let modes = [rate != nil, unlimited, block].filter { $0 }.count
                guard modes == 1 else {
                    throw ValidationError("Give exactly one of --rate, --unlimited or --block.")
                }
                if unlimited || block {
                    guard burst == nil else { throw ValidationError("--burst goes with --rate only.") }
                    return (c, unlimited ? .unlimited : .block)
                }
                do {
                    return (c, try .validated(rate: rate!, burst: burst))
                } catch let error as FloodgateError {
                    throw ValidationError(error.description + ".")
                }
            }

            func run() throws {
                let root = try common.root()
                let (c, limit) = try parsed()
                let filters = try root.changePolicy(interface, force: force) { _, policy in
                    if tier == .verified { policy.verifiedLimits[c] = limit } else { policy.limits[c] = limit }
                }
                let whose = tier == .verified ? "verified sources' " : ""
                for filter in filters { print("\(filter.interfaceName): \(whose)\(c.name) limit is now \(limit).") }
            }
        }

        struct List: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Show each class's per-source limit.")
            @Option(name: .shortAndLong, help: "Only this interface (repeatable); default: every attached one.")
            var interface: [String] = []
            @Flag(help: "Print JSON.") var json = false
            @OptionGroup var common: CommonOptions

            struct Row: Codable {
                var trafficClass: String
                var limit: String
                var rate: UInt32?
                var burst: UInt32?
                enum CodingKeys: String, CodingKey { case trafficClass = "class", limit, rate, burst }
            }
            struct Entry: Codable {
                var interface: String
                var limits: [Row]
                var overAdmission: String
                enum CodingKeys: String, CodingKey { case interface, limits, overAdmission = "over_admission" }
            }

            func run() throws {
                let root = try common.root()
                let entries = try root.selectFilters(interface).map { filter in
                    let maps = try root.maps(of: filter.interfaceName)
                    let limits = try maps.limits()
                    let verified = try maps.limits(tier: .verified)
                    func row(_ name: String, _ l: FloodgateCore.Limit) -> Row {
                        var row = Row(trafficClass: name, limit: l.description)
                        if case .rate(let r, let b) = l { (row.rate, row.burst) = (r, b) }
                        return row
                    }
                    let settings = try maps.settings()
                    return Entry(
                        interface: filter.interfaceName,
                        limits: limits.keys.sorted().map { row($0.name, limits[$0]!) }
                            + verified.keys.sorted().map { row("verified \($0.name)", verified[$0]!) }
                            + [row("prefix /\(settings.prefixV4) /\(settings.prefixV6)", try maps.limit(.prefix)),
                               row("budget (SIP)", try maps.limit(.budget)),
                               row("new-sources", try maps.limit(.newSources)),
                               row("wide-prefix", try maps.limit(.widePrefix))],
                        overAdmission: overAdmissionStatement)
                }
                if json { return try printJSON(entries) }
                for entry in entries {
                    print("\(entry.interface): per-source limits by class, of strangers and of verified sources, then the aggregate ones")
                    printTable(
                        ["CLASS", "RATE/S", "BURST", "LIMIT"],
                        entry.limits.map { [$0.trafficClass, $0.rate.map { "\($0)" } ?? "-",
                                            $0.burst.map { "\($0)" } ?? "-", $0.limit] })
                    print()
                }
                print(overAdmissionStatement)
            }
        }
    }
}
