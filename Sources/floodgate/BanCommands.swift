import ArgumentParser
import FloodgateCore
import Foundation

// `floodgate ban`, `unban`, `bans` and `trusted`: the filter's state about sources.

extension Floodgate {
    struct BanCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ban", abstract: "Ban a source; an explicit ban beats the allow list.")
        @Argument(help: "The address to ban.") var address: String
        @Option(name: .customLong("for"), help: "How long: 600 (seconds), 90s, 10m, 1h30m, 1.5h, 2d.") var duration: String?
        @Flag(help: "Until unbanned.") var forever = false
        @Flag(help: ArgumentHelp(
            "An integration's ban (fail2ban): spare allow-listed and verified sources, leave the operator's bans and longer ones alone (exit 0, saying so); unban --integration lifts it.",
            discussion: "For bans driven by log lines: such a line about a UDP source may have been provoked with its address forged. Bans through the agent's API are always an integration's."))
        var integration = false
        /// The name an earlier fail2ban action used: the same as --integration.
        @Flag(name: .customLong("spare-trusted"), help: .hidden) var spareTrusted = false
        @OptionGroup var selection: FilterSelection
        @OptionGroup var api: APIOption

        func validate() throws {
            guard SourceAddress(address) != nil else { throw ValidationError("'\(address)' is not an IPv4 or IPv6 address.") }
            guard (duration != nil) != forever else { throw ValidationError("Give exactly one of --for DURATION or --forever.") }
            if let duration {
                do { _ = try parseDuration(duration) } catch { throw ValidationError("\(error).") }
            }
        }

        func run() throws {
            let source = SourceAddress(address)!
            let seconds = try duration.map(parseDuration)
            let integration = integration || spareTrusted
            let outcomes: [BanOutcome]
            if let socket = api.socket() {
                // An integration's ban; a root client without --integration asks not to spare trusted sources.
                outcomes = try api.call(.ban(source, seconds: seconds, spareTrusted: integration || geteuid() != 0,
                                             interfaces: selection.interface), socket: socket).outcomes ?? []
            } else {
                outcomes = try selection.common.root().banSource(source, seconds: seconds, interfaces: selection.interface,
                                                                 integration: integration)
            }
            for o in outcomes {
                if let why = o.spared {
                    print(o.banned ? "\(o.interface): \(source) is \(why); left as it is."
                                   : "\(o.interface): not banned \(source): it is \(why).")
                } else {
                    print("\(o.interface): banned \(source) \(duration.map { "for \($0)" } ?? "until unbanned").")
                }
            }
        }
    }

    struct Unban: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Lift a ban.")
        @Argument(help: "The banned address.") var address: String
        @Flag(help: "An address that is not banned is not an error (exit 0, saying so): for scripts and fail2ban.")
        var ifExists = false
        @Flag(help: "Lift only an integration's ban (ban --integration, the agent's API), not the operator's or the filter's own.")
        var integration = false
        @OptionGroup var selection: FilterSelection
        @OptionGroup var api: APIOption

        func validate() throws {
            guard SourceAddress(address) != nil else { throw ValidationError("'\(address)' is not an IPv4 or IPv6 address.") }
        }

        func run() throws {
            let source = SourceAddress(address)!
            let result: (filters: [String], lifted: [String])
            if let socket = api.socket() {
                let answer = try api.call(.unban(source, interfaces: selection.interface), socket: socket)
                result = (answer.filters ?? [], answer.lifted ?? [])
            } else {
                result = try selection.common.root().unbanSource(source, interfaces: selection.interface,
                                                                 integration: integration)
            }
            guard !result.lifted.isEmpty else {
                let on = result.filters.joined(separator: ", ")
                let message = integration || api.socket() != nil
                    ? "\(source) has no integration's ban on \(on)" : "\(source) is not banned on \(on)"
                if ifExists { return print(message + ": nothing to lift.") }
                throw FloodgateError(message, hint: "--if-exists makes this a note, not an error")
            }
            for name in result.lifted { print("\(name): lifted the ban on \(source).") }
        }
    }

    struct Unquarantine: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Lift the quarantine of a verified source's credentials (see floodgate trusted).",
            discussion: """
                Lifts it at the source's pin and from elsewhere, and starts its counts of unproven failures \
                afresh; its proven failures stay counted. A forger who put it there can put it back with as many \
                made-up credentials again. Root only, through the maps: the agent's API does not offer it.
                """)
        @Argument(help: "The verified address.") var address: String
        @Flag(help: "An address that is not quarantined is not an error (exit 0, saying so): for scripts.")
        var ifExists = false
        @OptionGroup var selection: FilterSelection

        func validate() throws {
            guard SourceAddress(address) != nil else { throw ValidationError("'\(address)' is not an IPv4 or IPv6 address.") }
        }

        func run() throws {
            let source = SourceAddress(address)!
            let result = try selection.common.root().liftQuarantine(of: source, interfaces: selection.interface)
            guard !result.lifted.isEmpty else {
                let message = "\(source) is not quarantined on \(result.filters.joined(separator: ", "))"
                if ifExists { return print(message + ": nothing to lift.") }
                throw FloodgateError(message, hint: "floodgate trusted lists quarantines; --if-exists makes this a note, not an error")
            }
            for (name, lifted) in result.lifted {
                let places = [lifted.atPin ? "at its pin" : nil, lifted.elsewhere ? "from elsewhere" : nil].compactMap { $0 }
                print("\(name): lifted the quarantine of \(source)'s credentials \(places.joined(separator: " and ")).")
            }
        }
    }

    struct Bans: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List bans with their time left.")
        @Flag(help: "Print JSON.") var json = false
        @OptionGroup var selection: FilterSelection
        @OptionGroup var api: APIOption

        func run() throws {
            let rows = try api.socket().map { try api.call(.bans(interfaces: selection.interface), socket: $0).bans ?? [] }
                ?? selection.common.root().banRows(interfaces: selection.interface)
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
            abstract: "List verified sources with their pinned TTL, time left and any quarantine of their credentials.",
            discussion: """
                A source is verified when the SIP server accepted a REGISTER whose credentials answered the nonce \
                it had sent that source (seen on the inside interface). Its packets must arrive at its pinned TTL \
                (within the tolerance): others claiming its address are dropped as spoofed. A new TTL replaces the \
                pin after 3 accepted REGISTERs in a row at it. A source whose credentials failed as often as a ban \
                takes while answering no challenge sent to it (made-up credentials, perhaps forged in its name) is \
                quarantined rather than banned: until then, only credentials answering a challenge sent to it pass, \
                at its pin ("at pin") or from other hop distances ("elsewhere"), counted apart. A quarantine in which \
                its credentials also failed as often answering challenges to other methods than REGISTER (which a \
                proxy may relay from a phone behind it) is "strict": only credentials answering a challenge to a \
                REGISTER pass there. floodgate unquarantine lifts it.
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
            var quarantineSecondsLeft: Double?
            var awayQuarantineSecondsLeft: Double?
            var strictAtPin: Bool
            var strictElsewhere: Bool
            enum CodingKeys: String, CodingKey {
                case interface, address, ttl, confirmations
                case secondsLeft = "seconds_left"
                case candidateTTL = "candidate_ttl"
                case quarantineSecondsLeft = "quarantine_seconds_left"
                case awayQuarantineSecondsLeft = "away_quarantine_seconds_left"
                case strictAtPin = "strict_at_pin"
                case strictElsewhere = "strict_elsewhere"
            }
        }

        /// The QUARANTINE column: where the source's credentials are quarantined, and for how long.
        func quarantine(_ row: Row) -> String {
            func strict(_ on: Bool) -> String { on ? " strict" : "" }
            let parts = [row.quarantineSecondsLeft.map { String(format: "at pin %.0fs", $0) + strict(row.strictAtPin) },
                         row.awayQuarantineSecondsLeft.map { String(format: "elsewhere %.0fs", $0) + strict(row.strictElsewhere) }]
                .compactMap { $0 }
            return parts.isEmpty ? "-" : parts.joined(separator: ", ")
        }

        func run() throws {
            let root = try selection.common.root()
            let now = monotonicNanoseconds()
            var rows: [Row] = []
            for f in try root.selectFilters(selection.interface) {
                for t in try root.maps(of: f.interfaceName).trustedSources() where t.untilNS > now {
                    func left(_ until: UInt32?) -> Double? {
                        until.map { Double($0) - Double(now) / 1e9 }.flatMap { $0 > 0 ? $0 : nil }
                    }
                    let atPin = left(t.quarantineUntilSeconds), elsewhere = left(t.awayQuarantineUntilSeconds)
                    rows.append(Row(interface: f.interfaceName, address: t.address.description, ttl: t.ttl,
                                    secondsLeft: Double(t.untilNS - now) / 1e9, candidateTTL: t.candidateTTL,
                                    confirmations: t.confirmations, quarantineSecondsLeft: atPin,
                                    awayQuarantineSecondsLeft: elsewhere,
                                    strictAtPin: atPin != nil && t.strictAtPin,
                                    strictElsewhere: elsewhere != nil && t.strictElsewhere))
                }
            }
            rows.sort { ($0.interface, $0.address) < ($1.interface, $1.address) }
            if json { return try printJSON(rows) }
            if rows.isEmpty { return print("No verified sources.") }
            printTable(["INTERFACE", "SOURCE", "TTL", "TIME LEFT", "NEW TTL SEEN", "QUARANTINE"], rows.map { row in
                [row.interface, row.address, "\(row.ttl)", String(format: "%.0fs", row.secondsLeft),
                 row.candidateTTL.map { "\($0) (\(row.confirmations) of \(TrustedSource.confirmationsToMove))" } ?? "-",
                 quarantine(row)]
            })
        }
    }
}

/// `--api-socket`: ban, unban and bans through the agent's local API instead of the maps; what a user without root
/// (a member of the socket's group) does, by default when the agent serves the API at its default path.
struct APIOption: ParsableArguments {
    @Option(name: .customLong("api-socket"),
            help: "Go through the agent's local API at this socket (default when not root: \(LocalAPI.defaultSocket), if it exists).")
    var path: String?

    func validate() throws {
        if let path, !path.hasPrefix("/") { throw ValidationError("--api-socket must be an absolute path.") }
    }

    /// The socket to use, or nil for the maps.
    func socket() -> String? {
        if let path { return path }
        return geteuid() != 0 && FileManager.default.fileExists(atPath: LocalAPI.defaultSocket) ? LocalAPI.defaultSocket : nil
    }

    /// Sends `request`; an error answer is thrown.
    func call(_ request: LocalAPI.Request, socket: String) throws -> LocalAPI.Response {
        let answer = try LocalAPI.call(request, socket: socket)
        guard answer.ok else { throw FloodgateError("the agent refused: \(answer.error ?? "no reason given")") }
        return answer
    }
}
