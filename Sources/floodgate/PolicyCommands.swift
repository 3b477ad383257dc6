import ArgumentParser
import FloodgateCore
import Foundation

/// Options for commands that change or read the running filters' policy.
struct FilterSelection: ParsableArguments {
    @Option(name: .shortAndLong, help: "Only this interface (repeatable); default: every attached one.")
    var interface: [String] = []
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
    @OptionGroup var selection: FilterSelection

    func run() throws {
        try addToList(Kind.list, input, selection)
    }
}

/// Adds the CIDRs of `input` to `list` on the selected filters, all or none: if one filter refuses, what the others
/// added is removed again.
func addToList(_ list: PolicyList, _ input: CIDRInput, _ selection: FilterSelection,
               options: AllowOptions? = nil) throws {
    let root = try selection.common.root()
    let cidrs = try input.parsed()
    var added: [String: Int] = [:]
    let filters = try root.changePolicy(selection.interface) { filter, policy in
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
    @OptionGroup var selection: FilterSelection

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
    @OptionGroup var selection: FilterSelection

    func run() throws {
        let root = try selection.common.root()
        let cidrs = try input.parsed()
        let filters = try root.changePolicy(selection.interface) { _, policy in
            let current = Kind.list == .allow ? policy.allow : policy.deny
            let missing = Set(cidrs).subtracting(current)
            guard missing.isEmpty else {
                throw FloodgateError("not on the \(Kind.list.rawValue) list: \(missing.sorted().map(\.description).joined(separator: ", "))")
            }
            if Kind.list == .allow {
                policy.allow.subtract(cidrs)
                for cidr in cidrs { policy.allowOptions[cidr] = nil }
            } else {
                policy.deny.subtract(cidrs)
            }
        }
        for f in filters { print("\(f.interfaceName): \(Kind.list.rawValue) list -\(Set(cidrs).count).") }
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

    struct BanCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ban", abstract: "Ban a source; an explicit ban beats the allow list.")
        @Argument(help: "The address to ban.") var address: String
        @Option(name: .customLong("for"), help: "How long: 600 (seconds), 90s, 10m, 1h30m, 1.5h, 2d.") var duration: String?
        @Flag(help: "Until unbanned.") var forever = false
        @OptionGroup var selection: FilterSelection

        func validate() throws {
            guard SourceAddress(address) != nil else { throw ValidationError("'\(address)' is not an IPv4 or IPv6 address.") }
            guard (duration != nil) != forever else { throw ValidationError("Give exactly one of --for DURATION or --forever.") }
            if let duration {
                do { _ = try parseDuration(duration) } catch { throw ValidationError("\(error).") }
            }
        }

        func run() throws {
            let root = try selection.common.root()
            let source = SourceAddress(address)!
            let seconds = try duration.map(parseDuration)
            let filters = try root.change(selection.interface) { _, maps in
                let previous = try maps.bans().first { $0.address == source }
                try maps.ban(source, seconds: seconds)
                return { if previous == nil { _ = try? maps.unban(source) } }
            }
            for f in filters { print("\(f.interfaceName): banned \(source) \(duration.map { "for \($0)" } ?? "until unbanned").") }
        }
    }

    struct Unban: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Lift a ban.")
        @Argument(help: "The banned address.") var address: String
        @OptionGroup var selection: FilterSelection

        func validate() throws {
            guard SourceAddress(address) != nil else { throw ValidationError("'\(address)' is not an IPv4 or IPv6 address.") }
        }

        func run() throws {
            let root = try selection.common.root()
            let source = SourceAddress(address)!
            var lifted = false
            let filters = try root.change(selection.interface) { _, maps in
                lifted = try maps.unban(source) || lifted
                return {}
            }
            guard lifted else { throw FloodgateError("\(source) is not banned on \(filters.map(\.interfaceName).joined(separator: ", "))") }
            for f in filters { print("\(f.interfaceName): lifted the ban on \(source).") }
        }
    }

    struct Bans: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List bans with their time left.")
        @Flag(help: "Print JSON.") var json = false
        @OptionGroup var selection: FilterSelection

        struct Row: Codable {
            var interface: String
            var address: String
            var origin: String
            var secondsLeft: Double?
            var expired: Bool
            enum CodingKeys: String, CodingKey { case interface, address, origin, expired, secondsLeft = "seconds_left" }
        }

        func run() throws {
            let root = try selection.common.root()
            var rows: [Row] = []
            for f in try root.selectFilters(selection.interface) {
                for ban in try root.maps(of: f.interfaceName).bans() {
                    let left = ban.remainingSeconds()
                    rows.append(Row(interface: f.interfaceName, address: ban.address.description, origin: ban.origin,
                                    secondsLeft: left, expired: left == 0))
                }
            }
            if json { return try printJSON(rows) }
            if rows.isEmpty { return print("No bans.") }
            printTable(["INTERFACE", "SOURCE", "ORIGIN", "TIME LEFT"], rows.map {
                [$0.interface, $0.address, $0.origin,
                 $0.secondsLeft.map { $0 == 0 ? "expired" : String(format: "%.0fs", $0) } ?? "forever"]
            })
        }
    }

    struct Trusted: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List verified sources with their pinned TTL and time left.",
            discussion: """
                A source is verified when the SIP server accepted a REGISTER whose credentials answered the nonce \
                it had sent that source (seen on the inside interface). Its packets must arrive at its pinned TTL \
                (within the tolerance): others claiming its address are dropped as spoofed. A new TTL replaces the \
                pin after 3 accepted REGISTERs in a row at it.
                """)
        @Flag(help: "Print JSON.") var json = false
        @OptionGroup var selection: FilterSelection

        struct Row: Codable {
            var interface: String
            var address: String
            var ttl: UInt8
            var secondsLeft: Double
            var candidateTTL: UInt8?
            var confirmations: UInt8
            enum CodingKeys: String, CodingKey {
                case interface, address, ttl, confirmations
                case secondsLeft = "seconds_left"
                case candidateTTL = "candidate_ttl"
            }
        }

        func run() throws {
            let root = try selection.common.root()
            let now = monotonicNanoseconds()
            var rows: [Row] = []
            for f in try root.selectFilters(selection.interface) {
                for t in try root.maps(of: f.interfaceName).trustedSources() where t.untilNS > now {
                    rows.append(Row(interface: f.interfaceName, address: t.address.description, ttl: t.ttl,
                                    secondsLeft: Double(t.untilNS - now) / 1e9, candidateTTL: t.candidateTTL,
                                    confirmations: t.confirmations))
                }
            }
            rows.sort { ($0.interface, $0.address) < ($1.interface, $1.address) }
            if json { return try printJSON(rows) }
            if rows.isEmpty { return print("No verified sources.") }
            printTable(["INTERFACE", "SOURCE", "TTL", "TIME LEFT", "NEW TTL SEEN"], rows.map { row in
                [row.interface, row.address, "\(row.ttl)", String(format: "%.0fs", row.secondsLeft),
                 row.candidateTTL.map { "\($0) (\(row.confirmations) of \(TrustedSource.confirmationsToMove))" } ?? "-"]
            })
        }
    }

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
            @OptionGroup var selection: FilterSelection

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
                let filters = try root.changePolicy(selection.interface) { _, policy in
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
            @OptionGroup var selection: FilterSelection

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
                let filters = try root.changePolicy(selection.interface) { _, policy in
                    if let budget { policy.budget = budget }
                    if let fresh { policy.newSources = fresh }
                }
                for f in filters { print("\(f.interfaceName): budgets updated.") }
            }
        }
    }

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
            @OptionGroup var selection: FilterSelection
            func validate() throws { _ = try input.signatures() }
            func run() throws {
                let root = try selection.common.root()
                let signatures = try input.signatures()
                let filters = try root.changePolicy(selection.interface) { _, policy in
                    policy.signatures.formUnion(signatures)
                }
                for f in filters { print("\(f.interfaceName): \(signatures.count) signatures added.") }
            }
        }

        struct Del: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Remove signatures.")
            @OptionGroup var input: Prefixes
            @OptionGroup var selection: FilterSelection
            func validate() throws { _ = try input.signatures() }
            func run() throws {
                let root = try selection.common.root()
                let signatures = try input.signatures()
                let filters = try root.changePolicy(selection.interface) { _, policy in
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
            @OptionGroup var selection: FilterSelection

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
                let filters = try root.changePolicy(selection.interface) { _, policy in
                    policy.settings.scannerBanSeconds = seconds
                }
                for f in filters { print("\(f.interfaceName): scanner ban time is now \(seconds)s.") }
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
