internal import CFloodgate
import Foundation

/// A banned source (`struct fg_ban`).
public struct Ban: Sendable, Equatable {
    public var address: SourceAddress
    /// CLOCK_MONOTONIC nanoseconds; nil: never expires.
    public var expiresNS: UInt64?
    public let explicit: Bool
    public let scanner: Bool
    public let automatic: Bool
    public let bruteForce: Bool
    /// Set through an integration (the local API, `ban --integration`), which lifts only these.
    public let integration: Bool

    /// The `fg_ban` flags the four above are read from.
    let flags: UInt32

    init(address: SourceAddress, value: fg_ban) {
        self.address = address
        flags = value.flags
        expiresNS = value.expires_ns == 0 ? nil : value.expires_ns
        explicit = value.flags & UInt32(FG_BAN_EXPLICIT) != 0
        scanner = value.flags & UInt32(FG_BAN_SCANNER) != 0
        automatic = value.flags & UInt32(FG_BAN_AUTO) != 0
        bruteForce = value.flags & UInt32(FG_BAN_BRUTE_FORCE) != 0
        integration = value.flags & UInt32(FG_BAN_INTEGRATION) != 0
    }

    /// Seconds left, nil for never; 0 once expired.
    public func remainingSeconds(now: UInt64 = monotonicNanoseconds()) -> Double? {
        expiresNS.map { $0 > now ? Double($0 - now) / 1e9 : 0 }
    }

    public var origin: String { Ban.origin(flags: flags) }

    /// What issued a ban with these `fg_ban` flags: integration, explicit, scanner, auto, brute-force (or other).
    static func origin(flags: UInt32) -> String {
        flags & UInt32(FG_BAN_INTEGRATION) != 0 ? "integration" : flags & UInt32(FG_BAN_EXPLICIT) != 0 ? "explicit"
            : flags & UInt32(FG_BAN_SCANNER) != 0 ? "scanner" : flags & UInt32(FG_BAN_AUTO) != 0 ? "auto"
            : flags & UInt32(FG_BAN_BRUTE_FORCE) != 0 ? "brute-force" : "other"
    }

    /// Every origin, in order.
    public static let origins = ["integration", "explicit", "scanner", "auto", "brute-force"]
}
