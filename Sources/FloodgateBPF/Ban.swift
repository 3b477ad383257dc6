internal import CFloodgate
import Foundation

/// A banned source (`struct fg_ban`).
public struct Ban: Sendable, Equatable {
    public var address: SourceAddress
    /// CLOCK_MONOTONIC nanoseconds; nil: never expires.
    public var expiresNS: UInt64?
    public var explicit: Bool
    public var scanner: Bool
    public var automatic: Bool
    public var bruteForce: Bool

    init(address: SourceAddress, value: fg_ban) {
        self.address = address
        expiresNS = value.expires_ns == 0 ? nil : value.expires_ns
        explicit = value.flags & UInt32(FG_BAN_EXPLICIT) != 0
        scanner = value.flags & UInt32(FG_BAN_SCANNER) != 0
        automatic = value.flags & UInt32(FG_BAN_AUTO) != 0
        bruteForce = value.flags & UInt32(FG_BAN_BRUTE_FORCE) != 0
    }

    /// Seconds left, nil for never; 0 once expired.
    public func remainingSeconds(now: UInt64 = monotonicNanoseconds()) -> Double? {
        expiresNS.map { $0 > now ? Double($0 - now) / 1e9 : 0 }
    }

    public var origin: String {
        explicit ? "explicit" : scanner ? "scanner" : automatic ? "auto" : bruteForce ? "brute-force" : "other"
    }
}
