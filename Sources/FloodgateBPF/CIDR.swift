internal import CFloodgate
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

    /// The one-address network of `host` (a /32 or /128), without parsing.
    public init(host: SourceAddress) {
        address = host
        keyLength = 128
    }

    init(key: fg_cidr_key) {
        address = SourceAddress(key.addr)
        keyLength = Int(key.prefixlen)
    }

    var key: fg_cidr_key {
        var key = fg_cidr_key()
        key.prefixlen = UInt32(keyLength)
        key.addr = address.raw
        return key
    }

    /// Does this network hold `source`?
    /// Wider than a list fetched from elsewhere may block on its own word (an IPv4 prefix under /8, an IPv6 one
    /// under /16): a line such as 0.0.0.0/0 would deny every source, allow-listed trunks included.
    public var tooWideForAListFile: Bool { isIPv4 ? length < 8 : length < 16 }

    /// Whether the two share an address.
    public func overlaps(_ other: CIDR) -> Bool { contains(other.address) || other.contains(address) }

    public func contains(_ source: SourceAddress) -> Bool {
        CIDR.masked(source, keyLength) == address
    }

    public var description: String { "\(address)/\(length)" }

    public static func < (a: CIDR, b: CIDR) -> Bool {
        a.address.bytes != b.address.bytes
            ? a.address.bytes.lexicographicallyPrecedes(b.address.bytes) : a.keyLength < b.keyLength
    }

    /// `address` with all but its first `bits` bits (of the 128-bit key: IPv4 is ::ffff:0:0/96 plus its length) zero.
    public static func masked(_ address: SourceAddress, _ bits: Int) -> SourceAddress {
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
        let (cidrs, errors) = parseListSkipping(text, name: name)
        if !errors.isEmpty {
            let shown = errors.prefix(5).joined(separator: "; ")
            throw FloodgateError(errors.count > 5 ? "\(shown); and \(errors.count - 5) more bad lines" : shown)
        }
        return cidrs
    }

    /// The same, keeping the good lines: the CIDRs, and a message (file:line: why) for each bad line. `#` and `;`
    /// start a comment (Spamhaus DROP writes `1.10.16.0/20 ; SBL256894`).
    public static func parseListSkipping(_ text: String, name: String) -> (cidrs: [CIDR], skipped: [String]) {
        var cidrs: [CIDR] = []
        var errors: [String] = []
        // Lines end at LF or CRLF (Swift takes "\r\n" for one character, so a split on "\n" alone would not).
        for (n, line) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let content = line.prefix { $0 != "#" && $0 != ";" }
            let trimmed = content.trimmingCharacters(in: .whitespaces.union(CharacterSet(charactersIn: "\r")))
            if trimmed.isEmpty { continue }
            do { cidrs.append(try CIDR(trimmed)) } catch { errors.append("\(name):\(n + 1): \(error)") }
        }
        return (cidrs, errors)
    }
}
