import ArgumentParser
import FloodgateCore
import Foundation

// `floodgate scanners`: signatures and the scanner ban time.

extension Floodgate {
    struct Scanners: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Scanner signatures: prefixes of User-Agent (or, with --from, From) header values.",
            subcommands: [Add.self, Del.self, List.self, BanTime.self])

        struct Prefixes: ParsableArguments {
            @Argument(help: "Prefixes, matched case-insensitively at the start of the header value.")
            var prefixes: [String]
            @Flag(help: "Match the From header instead of User-Agent.") var from = false

            func signatures() throws -> [Signature] {
                guard !prefixes.isEmpty else { throw ValidationError("Give at least one prefix.") }
                do { return try prefixes.map { try Signature(from ? .from : .userAgent, $0) } } catch {
                    throw ValidationError("\(error).")
                }
            }
        }

        struct Add: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Add signatures.")
            @OptionGroup var input: Prefixes
            @OptionGroup var selection: PolicySelection
            func validate() throws { _ = try input.signatures() }
            func run() throws {
                let root = try selection.common.root()
                let signatures = try input.signatures()
                let filters = try root.changePolicy(selection.interface, force: selection.force) { _, policy in
                    policy.signatures.formUnion(signatures)
                }
                for f in filters { print("\(f.interfaceName): \(signatures.count) signatures added.") }
            }
        }

        struct Del: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Remove signatures.")
            @OptionGroup var input: Prefixes
            @OptionGroup var selection: PolicySelection
            func validate() throws { _ = try input.signatures() }
            func run() throws {
                let root = try selection.common.root()
                let signatures = try input.signatures()
                let filters = try root.changePolicy(selection.interface, force: selection.force) { _, policy in
                    let missing = Swift.Set(signatures).subtracting(policy.signatures)
                    guard missing.isEmpty else {
                        throw FloodgateError("no such scanner signature: \(missing.sorted().map(\.description).joined(separator: ", "))")
                    }
                    policy.signatures.subtract(signatures)
                }
                for f in filters { print("\(f.interfaceName): \(signatures.count) signatures removed.") }
            }
        }

        struct List: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Show the signatures and the scanner ban time.")
            @Flag(help: "Print JSON.") var json = false
            @OptionGroup var selection: FilterSelection

            struct Entry: Codable {
                var interface: String
                var userAgents: [String]
                var from: [String]
                var banSeconds: UInt32
                enum CodingKeys: String, CodingKey { case interface, from, userAgents = "user_agents", banSeconds = "ban_seconds" }
            }

            func run() throws {
                let root = try selection.common.root()
                let entries = try root.selectFilters(selection.interface).map { f in
                    let maps = try root.maps(of: f.interfaceName)
                    let all = try maps.signatures()
                    return Entry(interface: f.interfaceName, userAgents: all.filter { $0.header == .userAgent }.map(\.prefix),
                                 from: all.filter { $0.header == .from }.map(\.prefix),
                                 banSeconds: try maps.settings().scannerBanSeconds)
                }
                if json { return try printJSON(entries) }
                for e in entries {
                    print("\(e.interface): scanners are banned for \(e.banSeconds == 0 ? "no time (off)" : "\(e.banSeconds)s")")
                    print("  User-Agent: \(e.userAgents.joined(separator: ", "))")
                    print("  From: \(e.from.joined(separator: ", "))")
                }
            }
        }

        struct BanTime: ParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "ban-time", abstract: "How long the filter bans a source that sent a signature (off: never).")
            @Argument(help: "A duration (90s, 10m, 1h30m, 2d) or off.") var duration: String
            @OptionGroup var selection: PolicySelection

            func seconds() throws -> UInt32 {
                if duration == "off" { return 0 }
                do {
                    let s = try parseDuration(duration)
                    guard s <= UInt64(UInt32.max) else { throw FloodgateError("'\(duration)' is too long") }
                    return UInt32(s)
                } catch { throw ValidationError("\(error).") }
            }
            func validate() throws { _ = try seconds() }
            func run() throws {
                let root = try selection.common.root()
                let seconds = try seconds()
                let filters = try root.changePolicy(selection.interface, force: selection.force) { _, policy in
                    policy.settings.scannerBanSeconds = seconds
                }
                for f in filters { print("\(f.interfaceName): scanner ban time is now \(seconds)s.") }
            }
        }
    }
}
