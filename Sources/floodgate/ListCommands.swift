import ArgumentParser
import FloodgateCore
import Foundation

// `floodgate allow` and `deny`: the lists, all filters or none.

/// Options for commands that change or read the running filters' policy.
struct FilterSelection: ParsableArguments {
    @Option(name: .shortAndLong, help: "Only this interface (repeatable); default: every attached one.")
    var interface: [String] = []
    @OptionGroup var common: CommonOptions
}

/// The filters a change of the policy applies to, and `--force`.
struct PolicySelection: ParsableArguments {
    @Option(name: .shortAndLong, help: "Only this interface (repeatable); default: every attached one.")
    var interface: [String] = []
    @Flag(help: "With an agent running, change it anyway: its config owns the policy, and its next reload puts the config's back.")
    var force = false
    @OptionGroup var common: CommonOptions
}

/// CIDRs from the command line and from files of one CIDR per line (`#` comments).
struct CIDRInput: ParsableArguments {
    @Argument(help: "CIDRs or addresses, IPv4 or IPv6.") var cidrs: [String] = []
    @Option(help: "A file of CIDRs, one per line, # starts a comment (repeatable).") var file: [String] = []

    func validate() throws { _ = try parsed() }

    func parsed() throws -> [CIDR] {
        guard !cidrs.isEmpty || !file.isEmpty else { throw ValidationError("Give at least one CIDR or --file.") }
        do {
            var result = try cidrs.map { try CIDR($0) }
            for path in file {
                guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                    throw FloodgateError("cannot read \(path)")
                }
                result += try CIDR.parseList(text, name: path)
            }
            return result
        } catch let error as FloodgateError {
            throw ValidationError(error.description + ".")
        }
    }
}

/// `floodgate allow …` and `floodgate deny …` share their subcommands.
protocol ListKind { static var list: PolicyList { get } }
enum AllowKind: ListKind { static let list = PolicyList.allow }
enum DenyKind: ListKind { static let list = PolicyList.deny }

struct ListAdd<Kind: ListKind>: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: "add", abstract: "Add CIDRs to the \(Kind.list.rawValue) list (all or none).")
    }
    @OptionGroup var input: CIDRInput
    @OptionGroup var selection: PolicySelection

    func run() throws {
        try addToList(Kind.list, input, selection)
    }
}

/// Adds the CIDRs of `input` to `list` on the selected filters, all or none: if one filter refuses, what the others
/// added is removed again.
func addToList(_ list: PolicyList, _ input: CIDRInput, _ selection: PolicySelection,
               options: AllowOptions? = nil) throws {
    let root = try selection.common.root()
    let cidrs = try input.parsed()
    var added: [String: Int] = [:]
    let filters = try root.changePolicy(selection.interface, force: selection.force) { filter, policy in
        // Entries already on the list keep their options.
        let new = Set(cidrs).subtracting(list == .allow ? policy.allow : policy.deny)
        added[filter.interfaceName] = new.count
        if list == .allow {
            policy.allow.formUnion(new)
            if let options { for cidr in new { policy.allowOptions[cidr] = options } }
        } else {
            policy.deny.formUnion(new)
        }
    }
    let described = options.map { ", \($0)" } ?? ""
    for f in filters {
        print("\(f.interfaceName): \(list.rawValue) list +\(added[f.interfaceName] ?? 0) (\(cidrs.count) given)\(described).")
    }
}

/// `floodgate allow add`: the entries' own bucket and TTL range besides.
struct AllowAdd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add",
        abstract: "Add CIDRs to the allow list (all or none).",
        discussion: """
            Each entry has a bucket of its own over all SIP classes of its addresses (default 2000/s burst 4000), \
            so a forger who takes an allow-listed address is not unlimited. --ttl fixes the TTLs its packets may \
            arrive with; without it, a host entry (/32, /128) is pinned at its first SIP packet's TTL and a wider \
            entry is not pinned (give wide entries a range). Entries already on the list keep theirs.
            """)
    @OptionGroup var input: CIDRInput
    @Option(help: "The entry's own limit over all SIP classes, packets/s (default 2000).") var limit: Int?
    @Option(help: "Its burst (default: twice the limit).") var burst: Int?
    @Flag(help: "No bucket of its own (only the SIP budget limits it).") var unlimited = false
    @Option(help: "The TTLs (IPv6: hop limits) its packets may arrive with: MIN-MAX or one value.") var ttl: String?
    @OptionGroup var selection: PolicySelection

    func validate() throws { _ = try options() }

    func options() throws -> AllowOptions {
        var o = AllowOptions()
        if unlimited {
            guard limit == nil, burst == nil else { throw ValidationError("--unlimited goes without --limit and --burst.") }
            o.limit = .unlimited
        } else if let limit {
            do { o.limit = try .validated(rate: limit, burst: burst ?? 2 * limit) } catch let error as FloodgateError {
                throw ValidationError(error.description + ".")
            }
        } else if burst != nil {
            throw ValidationError("--burst goes with --limit.")
        }
        if let ttl {
            do { o.ttl = try AllowOptions.parseTTL(ttl) } catch let error as FloodgateError {
                throw ValidationError(error.description + ".")
            }
        }
        return o
    }

    func run() throws {
        try addToList(.allow, input, selection, options: try options())
    }
}

struct ListDel<Kind: ListKind>: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: "del", abstract: "Remove CIDRs from the \(Kind.list.rawValue) list (all or none).")
    }
    @OptionGroup var input: CIDRInput
    @Flag(help: "CIDRs not on the list are not an error (the others are removed, and those named): for scripts.")
    var ifExists = false
    @OptionGroup var selection: PolicySelection

    func run() throws {
        let root = try selection.common.root()
        let cidrs = try input.parsed()
        var absent: [String: Set<CIDR>] = [:]
        let filters = try root.changePolicy(selection.interface, force: selection.force) { filter, policy in
            let current = Kind.list == .allow ? policy.allow : policy.deny
            let missing = Set(cidrs).subtracting(current)
            absent[filter.interfaceName] = missing
            guard missing.isEmpty || ifExists else {
                throw FloodgateError("not on the \(Kind.list.rawValue) list: \(missing.sorted().map(\.description).joined(separator: ", "))",
                                     hint: "--if-exists removes the others and names these")
            }
            if Kind.list == .allow {
                policy.allow.subtract(cidrs)
                for cidr in cidrs { policy.allowOptions[cidr] = nil }
            } else {
                policy.deny.subtract(cidrs)
            }
        }
        for f in filters {
            let missing = absent[f.interfaceName] ?? []
            print("\(f.interfaceName): \(Kind.list.rawValue) list -\(Set(cidrs).subtracting(missing).count).")
            if !missing.isEmpty {
                print("\(f.interfaceName): not on the \(Kind.list.rawValue) list, nothing to remove: "
                    + missing.sorted().map(\.description).joined(separator: ", "))
            }
        }
    }
}

struct ListShow<Kind: ListKind>: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: "list", abstract: "Show the \(Kind.list.rawValue) list.")
    }
    @Flag(help: "Print JSON.") var json = false
    @OptionGroup var selection: FilterSelection

    struct Entry: Codable {
        var interface: String
        var cidrs: [String]
        /// Allow entries: each one's bucket and TTL range, in the order of `cidrs`.
        var options: [Options]?
    }
    struct Options: Codable {
        var limit: String
        var ttl: String?
        var pinnedTTL: UInt8?
        enum CodingKeys: String, CodingKey { case limit, ttl, pinnedTTL = "pinned_ttl" }
    }

    func run() throws {
        let root = try selection.common.root()
        let entries = try root.selectFilters(selection.interface).map { f in
            let maps = try root.maps(of: f.interfaceName)
            if Kind.list == .allow {
                let allow = try maps.allowEntries()
                let pins = try maps.allowPins()
                return Entry(interface: f.interfaceName, cidrs: allow.map(\.cidr.description), options: allow.map {
                    Options(limit: $0.options.limit.description,
                            ttl: $0.options.ttl.map { "\($0.lowerBound)-\($0.upperBound)" },
                            pinnedTTL: pins[$0.cidr])
                })
            }
            return Entry(interface: f.interfaceName, cidrs: try maps.cidrs(in: Kind.list).map(\.description))
        }
        if json { return try printJSON(entries) }
        for e in entries {
            print("\(e.interface): \(e.cidrs.count) on the \(Kind.list.rawValue) list")
            for (i, c) in e.cidrs.enumerated() {
                if let o = e.options?[i] {
                    print("  \(c)  limit \(o.limit), TTL \(o.ttl ?? o.pinnedTTL.map { "pinned at \($0)" } ?? "pinned at its first SIP packet (a host entry) or not pinned")")
                } else {
                    print("  \(c)")
                }
            }
        }
    }
}

extension Floodgate {
    struct Allow: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Trusted peers (trunks, carrier SBCs): a bucket per entry, no per-source or prefix limits, shed last.",
            subcommands: [AllowAdd.self, ListDel<AllowKind>.self, ListShow<AllowKind>.self])
    }

    struct Deny: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Sources whose every packet is dropped.",
            subcommands: [ListAdd<DenyKind>.self, ListDel<DenyKind>.self, ListShow<DenyKind>.self])
    }
}
