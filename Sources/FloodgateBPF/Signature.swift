internal import CFloodgate
import Foundation

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

    var key: fg_signature_key {
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
