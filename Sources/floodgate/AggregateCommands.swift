import ArgumentParser
import FloodgateCore
import Foundation

// `floodgate prefix` and `budget`: the aggregate buckets and the interface-wide budgets.

extension Floodgate {
    struct Prefix: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The per-prefix aggregate bucket over all SIP classes.",
            subcommands: [Set.self])

        struct Set: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Change the prefix lengths or their limit.",
                discussion: """
                    Two levels: the prefix (/24 and /64 by default, 200/s burst 400) and, with --wide, the wider \
                    network around it (/16 and /48, 2000/s burst 4000). A SIP packet must find room in both.
                    """)
            @Flag(help: "Change the wide level rather than the prefix.") var wide = false
            @Option(help: "IPv4 prefix length (8-32).") var v4: Int?
            @Option(help: "IPv6 prefix length (16-128).") var v6: Int?
            @Option(help: "Packets per second per prefix.") var rate: Int?
            @Option(help: "Burst per prefix (default: the rate).") var burst: Int?
            @Flag(help: "No prefix limit.") var unlimited = false
            @OptionGroup var selection: PolicySelection

            func validate() throws {
                guard v4 != nil || v6 != nil || rate != nil || unlimited else {
                    throw ValidationError("Give --v4, --v6, --rate or --unlimited.")
                }
                if let v4, !(8...32).contains(v4) { throw ValidationError("--v4 must be 8 to 32 (got \(v4)).") }
                if let v6, !(16...128).contains(v6) { throw ValidationError("--v6 must be 16 to 128 (got \(v6)).") }
                _ = try newLimit()
            }

            func newLimit() throws -> FloodgateCore.Limit? {
                try limitArgument(rate: rate, burst: burst, unlimited: unlimited)
            }

            func run() throws {
                let root = try selection.common.root()
                let limit = try newLimit()
                let level: GlobalLimit = wide ? .widePrefix : .prefix
                let filters = try root.changePolicy(selection.interface, force: selection.force) { _, policy in
                    if let v4 { if wide { policy.settings.wideV4 = UInt8(v4) } else { policy.settings.prefixV4 = UInt8(v4) } }
                    if let v6 { if wide { policy.settings.wideV6 = UInt8(v6) } else { policy.settings.prefixV6 = UInt8(v6) } }
                    if let limit { if level == .widePrefix { policy.widePrefix = limit } else { policy.prefix = limit } }
                }
                for f in filters { print("\(f.interfaceName): prefix buckets updated.") }
            }
        }
    }

    struct Budget: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The interface-wide SIP budget, shed by class priority, and the new-source budget.",
            subcommands: [Set.self])

        struct Set: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Change the budgets.",
                discussion: """
                    When SIP packets exceed --pps, classes are shed lowest priority first: options, register, \
                    sip-other, sip-syn and keepalive, invite, other-request, in-dialog/response/sip-stream, verified sources, allow-listed ones. \
                    The burst sets how deep each priority may reach.
                    """)
            @Option(help: "Admitted SIP packets per second on the interface.") var pps: Int?
            @Option(help: "Burst of the budget (default: pps).") var burst: Int?
            @Flag(help: "No SIP budget.") var unlimited = false
            @Option(help: "New sources admitted to tracking per second (random-source floods).") var newSources: Int?
            @OptionGroup var selection: PolicySelection

            func validate() throws {
                guard pps != nil || unlimited || newSources != nil else {
                    throw ValidationError("Give --pps, --unlimited or --new-sources.")
                }
                _ = try budget()
                if let newSources { _ = try limitArgument(rate: newSources, burst: nil, unlimited: false) }
            }

            func budget() throws -> FloodgateCore.Limit? { try limitArgument(rate: pps, burst: burst, unlimited: unlimited) }

            func run() throws {
                let root = try selection.common.root()
                let budget = try budget()
                let fresh = try newSources.flatMap { try limitArgument(rate: $0, burst: nil, unlimited: false) }
                let filters = try root.changePolicy(selection.interface, force: selection.force) { _, policy in
                    if let budget { policy.budget = budget }
                    if let fresh { policy.newSources = fresh }
                }
                for f in filters { print("\(f.interfaceName): budgets updated.") }
            }
        }
    }
}

/// A limit from --rate/--burst/--unlimited, or nil when none is given.
func limitArgument(rate: Int?, burst: Int?, unlimited: Bool) throws -> FloodgateCore.Limit? {
    if unlimited {
        guard rate == nil, burst == nil else { throw ValidationError("--unlimited goes without --rate and --burst.") }
        return .unlimited
    }
    guard let rate else {
        if burst != nil { throw ValidationError("--burst goes with a rate.") }
        return nil
    }
    do { return try .validated(rate: rate, burst: burst) } catch { throw ValidationError("\(error).") }
}
