import Foundation

/// Explicit bans as the CLI and the agent's local API make them: one place for what a ban, an unban and a list
/// of bans do to the filters under a pin root.

/// What a ban did on one filter.
public struct BanOutcome: Codable, Sendable, Equatable {
    public var interface: String
    public var banned: Bool
    /// Why the source was left alone (an integration's ban): the allow-list entry that holds it, "verified",
    /// "banned by the operator", or "already banned for longer".
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
    /// until lifted); all of them or none (a failure on one puts the others back as they were).
    ///
    /// An `integration`'s ban (the local API, fail2ban: a word a forger can provoke with a source's address)
    /// leaves alone a source the filter's allow list holds or that it verified (unless `spareTrusted` is false,
    /// which only root may ask), never touches the operator's own ban, never shortens a longer one, and is marked
    /// as the integration's, which lifts only its own.
    public func banSource(_ source: SourceAddress, seconds: UInt64?, interfaces: [String] = [],
                          integration: Bool, spareTrusted: Bool = true) throws -> [BanOutcome] {
        var outcomes: [BanOutcome] = []
        try change(interfaces) { filter, maps in
            let name = filter.interfaceName
            guard integration else {
                let undo = try maps.ban(source, seconds: seconds)
                outcomes.append(BanOutcome(interface: name, banned: true, spared: nil))
                return undo
            }
            if spareTrusted, let why = try maps.protection(of: source) {
                outcomes.append(BanOutcome(interface: name, banned: false, spared: why))
                return {}
            }
            let (result, undo) = try maps.integrationBan(source, seconds: seconds)
            switch result {
            case .banned: outcomes.append(BanOutcome(interface: name, banned: true, spared: nil))
            case .alreadyLonger: outcomes.append(BanOutcome(interface: name, banned: true, spared: "already banned for longer"))
            case .operatorBan: outcomes.append(BanOutcome(interface: name, banned: true, spared: "banned by the operator"))
            }
            return undo
        }
        return outcomes
    }

    /// Lifts the bans on `source` on the filters named (all when empty): every ban, or with `integration` only
    /// an integration's. The filters looked at, and those it was lifted on.
    public func unbanSource(_ source: SourceAddress, interfaces: [String] = [], integration: Bool) throws
        -> (filters: [String], lifted: [String])
    {
        var lifted: [String] = []
        let filters = try change(interfaces) { filter, maps in
            if try integration ? maps.liftIntegrationBan(source) : maps.unban(source) { lifted.append(filter.interfaceName) }
            return {}
        }
        return (filters.map(\.interfaceName), lifted)
    }

    /// Lifts the quarantine of verified `source`'s credentials (``FilterMaps/liftQuarantine(of:now:)``) on the
    /// filters named (all when empty): the filters looked at, and where it was lifted on each. Only the operator
    /// (root, through the maps) does this: the agent's API offers it to no integration.
    public func liftQuarantine(of source: SourceAddress, interfaces: [String] = []) throws
        -> (filters: [String], lifted: [(interface: String, where: FilterMaps.LiftedQuarantine)])
    {
        var lifted: [(interface: String, where: FilterMaps.LiftedQuarantine)] = []
        let filters = try change(interfaces) { filter, maps in
            let done = try maps.liftQuarantine(of: source)
            if done.any { lifted.append((filter.interfaceName, done)) }
            return {}
        }
        return (filters.map(\.interfaceName), lifted)
    }

    /// The bans of the filters named (all when empty), by interface and address.
    public func banRows(interfaces: [String] = [], now: UInt64 = monotonicNanoseconds()) throws -> [BanRow] {
        var rows: [BanRow] = []
        for f in try selectFilters(interfaces) {
            let maps = try maps(of: f.interfaceName)
            for ban in try maps.bans() {
                let left = ban.remainingSeconds(now: now)
                rows.append(BanRow(interface: f.interfaceName, address: ban.address.description, origin: ban.origin,
                                   secondsLeft: left, expired: left == 0))
            }
            // Learned from other routers over BGP: networks, lifted by their routes, not by unban.
            for ban in try maps.peerBans() {
                let left = ban.expiresNS.map { $0 > now ? Double($0 - now) / 1e9 : 0 }
                let network = ban.network
                let text = network.length == (network.isIPv4 ? 32 : 128) ? network.address.description : network.description
                rows.append(BanRow(interface: f.interfaceName, address: text, origin: "peer", secondsLeft: left, expired: left == 0))
            }
        }
        return rows.sorted { ($0.interface, $0.address) < ($1.interface, $1.address) }
    }
}
