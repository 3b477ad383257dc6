internal import CFloodgate
import Foundation

/// A ban learned from another Floodgate router over BGP (`fg_peer_bans`): a network, and when it runs out.
public struct PeerBan: Sendable, Equatable {
    public let network: CIDR
    /// CLOCK_MONOTONIC nanoseconds; nil: until the route is withdrawn.
    public let expiresNS: UInt64?

    public init(network: CIDR, expiresNS: UInt64?) {
        self.network = network
        self.expiresNS = expiresNS
    }
}

extension FilterMaps {
    var peerBansMap: BPFMap<fg_cidr_key, fg_ban> { map(FG_MAP_PEER_BANS) }

    /// The bans learned from peers, expired or not.
    public func peerBans() throws -> [PeerBan] {
        try peerBansMap.entries().map { key, value in
            PeerBan(network: CIDR(key: key), expiresNS: value.expires_ns == 0 ? nil : value.expires_ns)
        }
    }

    /// Adds or renews the bans in `set` and removes those in `remove`, then lets XDP see the change (its drop cache
    /// goes stale, and it skips the lookup when none is left). The caller holds the pin root's lock. Stops at the
    /// first update the kernel refuses (the map full: `FG_MAX_PEER_BANS`), with what it did applied.
    public func changePeerBans(set: [PeerBan], remove: [CIDR]) throws {
        guard !set.isEmpty || !remove.isEmpty else { return }
        defer { try? updateSettings { $0.policy_generation &+= 1 } }
        for network in remove { _ = try peerBansMap.delete(network.key, what: "remove the peer ban on \(network)") }
        for ban in set {
            var value = fg_ban()
            value.expires_ns = ban.expiresNS ?? 0
            value.flags = UInt32(FG_BAN_EXPLICIT | FG_BAN_INTEGRATION)
            try peerBansMap.update(ban.network.key, value, what: "ban \(ban.network) as a peer learned it")
        }
    }
}
