import CFloodgate
import Foundation

/// An IPv4 or IPv6 network, as the deny and allow lists take it (`struct fg_cidr_key`).
public struct CIDR: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The network address, host bits zero.
    public let address: SourceAddress
    /// The prefix length over the 128-bit key (IPv4 networks are ::ffff:0:0/96 plus their length).
    public let keyLength: Int

    /// The prefix length in the address family's terms: 0–32 for IPv4, 0–128 for IPv6.
    public var length: Int { isIPv4 ? keyLength - 96 : keyLength }
    public var isIPv4: Bool { address.isIPv4 && keyLength >= 96 }

    /// Parses "198.18.0.0/24", "2001:db8::/32", or a bare address (a /32 or /128). Host bits must be zero, so that
    /// a typo such as 198.18.0.1/24 is caught rather than silently widened.
    public init(_ text: String) throws {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let parts = trimmed.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = SourceAddress(String(parts[0])), !parts[0].isEmpty else {
            throw FloodgateError("'\(text)' is not an IPv4 or IPv6 address or CIDR")
        }
        let maximum = address.isIPv4 && !parts[0].contains(":") ? 32 : 128
        var length = maximum
        if parts.count == 2 {
            guard let n = Int(parts[1]), (0...maximum).contains(n), !parts[1].hasPrefix("+") else {
                throw FloodgateError("'\(text)' has a bad prefix length (0 to \(maximum) for this address)")
            }
            length = n
        }
        let keyLength = maximum == 32 ? 96 + length : length
        let network = CIDR.masked(address, keyLength)
        guard network == address else {
            throw FloodgateError("'\(text)' has host bits set; the network is \(network)/\(length)")
        }
        self.address = network
        self.keyLength = keyLength
    }

    init(key: fg_cidr_key) {
        address = SourceAddress(key.addr)
        keyLength = Int(key.prefixlen)
    }

    public var key: fg_cidr_key {
        var key = fg_cidr_key()
        key.prefixlen = UInt32(keyLength)
        key.addr = address.raw
        return key
    }

    /// Does this network hold `source`?
    public func contains(_ source: SourceAddress) -> Bool {
        CIDR.masked(source, keyLength) == address
    }

    public var description: String { "\(address)/\(length)" }

    public static func < (a: CIDR, b: CIDR) -> Bool {
        a.address.bytes != b.address.bytes
            ? a.address.bytes.lexicographicallyPrecedes(b.address.bytes) : a.keyLength < b.keyLength
    }

    static func masked(_ address: SourceAddress, _ bits: Int) -> SourceAddress {
        var bytes = address.bytes
        for i in 0..<16 {
            let keep = max(0, min(8, bits - 8 * i))
            bytes[i] &= keep == 0 ? 0 : UInt8(truncatingIfNeeded: 0xFF << (8 - keep))
        }
        return SourceAddress(bytes: bytes)
    }

    /// Parses a list file: one CIDR per line, `#` starts a comment, blank lines are skipped. Every bad line is
    /// reported with its number; nothing is returned unless all lines are good.
    public static func parseList(_ text: String, name: String) throws -> [CIDR] {
        var cidrs: [CIDR] = []
        var errors: [String] = []
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let content = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let trimmed = content.trimmingCharacters(in: .whitespaces.union(CharacterSet(charactersIn: "\r")))
            if trimmed.isEmpty { continue }
            do { cidrs.append(try CIDR(trimmed)) } catch { errors.append("\(name):\(n + 1): \(error)") }
        }
        if !errors.isEmpty {
            let shown = errors.prefix(5).joined(separator: "; ")
            throw FloodgateError(errors.count > 5 ? "\(shown); and \(errors.count - 5) more bad lines" : shown)
        }
        return cidrs
    }
}

/// A scanner signature: the start of a User-Agent or From header value (`struct fg_signature_key`).
public struct Signature: Hashable, Sendable, Comparable, CustomStringConvertible {
    public enum Header: String, Sendable, CaseIterable {
        case userAgent = "user-agent", from
        var kind: UInt8 { self == .userAgent ? UInt8(FG_SIGNATURE_USER_AGENT) : UInt8(FG_SIGNATURE_FROM) }
    }

    public let header: Header
    /// Lower-cased; matched case-insensitively against the start of the header's value.
    public let prefix: String

    public init(_ header: Header, _ prefix: String) throws {
        let lowered = prefix.lowercased()
        let bytes = Array(lowered.utf8)
        guard !bytes.isEmpty, bytes.count < Int(FG_SIGNATURE_BYTES) else {
            throw FloodgateError("a signature must be 1 to \(FG_SIGNATURE_BYTES - 1) bytes (got \(bytes.count))")
        }
        guard !bytes.contains(where: { $0 == 0x0D || $0 == 0x0A || $0 == 0 }) else {
            throw FloodgateError("a signature cannot hold CR, LF or NUL")
        }
        self.header = header
        self.prefix = lowered
    }

    init?(key: fg_signature_key) {
        let data = withUnsafeBytes(of: key.data) { Array($0) }
        let n = Int(key.prefixlen / 8) - 1
        guard n >= 1, n < data.count else { return nil }
        guard let header = Header.allCases.first(where: { $0.kind == data[0] }) else { return nil }
        self.header = header
        prefix = String(decoding: data[1...n], as: UTF8.self)
    }

    public var key: fg_signature_key {
        var key = fg_signature_key()
        let bytes = [header.kind] + Array(prefix.utf8)
        key.prefixlen = UInt32(8 * bytes.count)
        withUnsafeMutableBytes(of: &key.data) { $0.copyBytes(from: bytes) }
        return key
    }

    public var description: String { "\(header.rawValue): \(prefix)" }

    public static func < (a: Signature, b: Signature) -> Bool { (a.header.rawValue, a.prefix) < (b.header.rawValue, b.prefix) }

    /// User-Agents of SIP scanners and attack tools from public lists (fail2ban's and Kamailio's scanner
    /// filters, and the tools' own sources), and the From display name sipvicious sends.
    public static let defaults: [Signature] = [
        "friendly-scanner", "sipcli", "sipvicious", "sundayddr", "iwar", "sipsak", "vaxsipuseragent", "simplesip",
        "portsip", "pplsip", "sipptk", "sip-scan", "smap", "siparmyknife", "sipscan",
    ].map { try! Signature(.userAgent, $0) } + [try! Signature(.from, "\"sipvicious\"")]
}

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

/// Parses "90s", "10m", "1h", "2d" into seconds.
public func parseDuration(_ text: String) throws -> UInt64 {
    let units: [Character: UInt64] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
    guard let unit = text.last, let scale = units[unit], let n = UInt64(text.dropLast()), n > 0,
          n <= 3650 * 86400 / scale
    else {
        throw FloodgateError("'\(text)' is not a duration: give a positive number and a unit, e.g. 90s, 10m, 1h, 2d")
    }
    return n * scale
}
