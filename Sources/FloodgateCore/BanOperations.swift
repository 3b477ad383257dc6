import Foundation

/// Explicit bans as the CLI and the agent's local API make them: one place for what a ban, an unban and a list
/// of bans do to the filters under a pin root.

/// What a ban did on one filter.
public struct BanOutcome: Codable, Sendable, Equatable {
    public var interface: String
    public var banned: Bool
    /// Why the source was left alone (`spareTrusted`): the allow-list entry that holds it, or "verified".
    public var spared: String?

    public init(interface: String, banned: Bool, spared: String?) {
        self.interface = interface
        self.banned = banned
        self.spared = spared
    }
}

/// One ban, as `floodgate bans --json` and the API's `bans` list it.
public struct BanRow: Codable, Sendable, Equatable {
    public var interface: String
    public var address: String
    public var origin: String
    /// Seconds left; nil: until lifted; 0: expired, not yet swept.
    public var secondsLeft: Double?
    public var expired: Bool

    enum CodingKeys: String, CodingKey { case interface, address, origin, expired, secondsLeft = "seconds_left" }
}

extension PinRoot {
    /// Bans `source` on the filters named (every attached one when `interfaces` is empty) for `seconds` (nil:
    /// until lifted); all of them or none (a failure on one undoes the others). With `spareTrusted`, a filter
    /// whose allow list holds the source, or that verified it, leaves it alone: for bans on a word a forger can
    /// provoke (a log line, an integration).
    public func banSource(_ source: SourceAddress, seconds: UInt64?, interfaces: [String] = [],
                          spareTrusted: Bool) throws -> [BanOutcome] {
        var outcomes: [BanOutcome] = []
        try change(interfaces) { filter, maps in
            if spareTrusted, let why = try maps.protection(of: source) {
                outcomes.append(BanOutcome(interface: filter.interfaceName, banned: false, spared: why))
                return {}
            }
            let new = maps.ban(of: source)?.explicit != true
            try maps.ban(source, seconds: seconds)
            outcomes.append(BanOutcome(interface: filter.interfaceName, banned: true, spared: nil))
            return { if new { _ = try? maps.unban(source) } }
        }
        return outcomes
    }

    /// Lifts every ban on `source` on the filters named (all when empty): the interfaces it was banned on.
    public func unbanSource(_ source: SourceAddress, interfaces: [String] = []) throws
        -> (filters: [String], lifted: [String])
    {
        var lifted: [String] = []
        let filters = try change(interfaces) { filter, maps in
            if try maps.unban(source) { lifted.append(filter.interfaceName) }
            return {}
        }
        return (filters.map(\.interfaceName), lifted)
    }

    /// The bans of the filters named (all when empty), by interface and address.
    public func banRows(interfaces: [String] = [], now: UInt64 = monotonicNanoseconds()) throws -> [BanRow] {
        var rows: [BanRow] = []
        for f in try selectFilters(interfaces) {
            for ban in try maps(of: f.interfaceName).bans() {
                let left = ban.remainingSeconds(now: now)
                rows.append(BanRow(interface: f.interfaceName, address: ban.address.description, origin: ban.origin,
                                   secondsLeft: left, expired: left == 0))
            }
        }
        return rows.sorted { ($0.interface, $0.address) < ($1.interface, $1.address) }
    }
}
