import FloodgateCore
import Foundation

/// Builds Ethernet frames byte by byte: for BPF_PROG_TEST_RUN, the flood generator and the tests.
public enum Packet {
    public static let srcMAC: [UInt8] = [0x02, 0, 0, 0, 0, 0x01]
    public static let dstMAC: [UInt8] = [0x02, 0, 0, 0, 0, 0x02]

    public enum EtherType {
        public static let ipv4: UInt16 = 0x0800
        public static let ipv6: UInt16 = 0x86DD
        public static let arp: UInt16 = 0x0806
        public static let vlan: UInt16 = 0x8100
        public static let qinq: UInt16 = 0x88A8
    }

    public enum Proto {
        public static let hopByHop: UInt8 = 0
        public static let icmp: UInt8 = 1
        public static let tcp: UInt8 = 6
        public static let udp: UInt8 = 17
        public static let routing: UInt8 = 43
        public static let fragment: UInt8 = 44
        public static let gre: UInt8 = 47
        public static let esp: UInt8 = 50
        public static let ah: UInt8 = 51
        public static let icmpv6: UInt8 = 58
        public static let noNext: UInt8 = 59
        public static let destOpts: UInt8 = 60
    }

    /// An Ethernet frame; `vlans` lists the TPIDs of the tags from the outside in.
    public static func ethernet(_ etherType: UInt16, vlans: [UInt16] = [], _ payload: [UInt8]) -> [UInt8] {
        var frame = dstMAC + srcMAC
        for (i, tpid) in vlans.enumerated() {
            frame += be16(tpid)
            frame += be16(UInt16(100 + i))  // TCI: VLAN id
        }
        return frame + be16(etherType) + payload
    }

    public static func ipv4(
        src: String = "198.18.1.1", dst: String = "198.18.0.2", proto: UInt8, _ payload: [UInt8],
        options: [UInt8] = [], fragmentOffset: UInt16 = 0, moreFragments: Bool = false, ttl: UInt8 = 64,
        id: UInt16 = 0x1234
    ) -> [UInt8] {
        precondition(options.count % 4 == 0 && options.count <= 40)
        let headerLength = 20 + options.count
        var header: [UInt8] = [UInt8(0x40 | (headerLength / 4)), 0]
        header += be16(UInt16(headerLength + payload.count))
        header += be16(id)
        header += be16((moreFragments ? 0x2000 : 0) | (fragmentOffset & 0x1FFF))
        header += [ttl, proto, 0, 0]
        header += addr4(src) + addr4(dst) + options
        let sum = checksum(header)
        header[10] = UInt8(sum >> 8)
        header[11] = UInt8(sum & 0xFF)
        return header + payload
    }

    /// An IPv6 packet; `extensions` are (type, body) pairs, chained in order before the upper-layer `proto`.
    public static func ipv6(
        src: String = "2001:db8::1", dst: String = "2001:db8::2", proto: UInt8, _ payload: [UInt8],
        extensions: [(type: UInt8, body: [UInt8])] = [], hopLimit: UInt8 = 64
    ) -> [UInt8] {
        var chain: [UInt8] = []
        let types = extensions.map(\.type) + [proto]
        for (i, ext) in extensions.enumerated() { chain += [types[i + 1]] + ext.body }
        var header: [UInt8] = [0x60, 0, 0, 0]
        header += be16(UInt16(chain.count + payload.count))
        header += [types[0], hopLimit]
        header += addr6(src) + addr6(dst)
        return header + chain + payload
    }

    /// The body of a hop-by-hop, destination-options or routing header (after the next-header byte): `units` of
    /// 8 bytes in all.
    public static func optionsBody(units: Int = 1) -> [UInt8] {
        [UInt8(units - 1)] + [UInt8](repeating: 0, count: units * 8 - 2)
    }

    /// The body of an IPv6 fragment header (after the next-header byte).
    public static func fragmentBody(offset: UInt16, more: Bool, id: UInt32 = 7) -> [UInt8] {
        [0] + be16((offset << 3) | (more ? 1 : 0)) + be16(UInt16(id >> 16)) + be16(UInt16(id & 0xFFFF))
    }

    public static func udp(sport: UInt16 = 40000, dport: UInt16, _ payload: [UInt8] = Array("OPTIONS sip:x SIP/2.0\r\n".utf8))
        -> [UInt8]
    {
        be16(sport) + be16(dport) + be16(UInt16(8 + payload.count)) + [0, 0] + payload
    }

    /// A TCP segment (no options): `flags` 0x02 SYN, 0x10 ACK, 0x12 SYN-ACK, 0x18 PSH-ACK.
    public static func tcp(
        sport: UInt16 = 40000, dport: UInt16, flags: UInt8 = 0x02, seq: UInt32 = 1, ack: UInt32 = 0,
        _ payload: [UInt8] = []
    ) -> [UInt8] {
        be16(sport) + be16(dport) + be32(seq) + be32(ack) + [0x50, flags] + be16(64240) + [0, 0, 0, 0] + payload
    }

    public static func be32(_ v: UInt32) -> [UInt8] { be16(UInt16(v >> 16)) + be16(UInt16(v & 0xFFFF)) }

    public static func icmp(type: UInt8 = 8, code: UInt8 = 0) -> [UInt8] { [type, code, 0, 0, 0, 1, 0, 1] }

    // MARK: Common frames

    public static func udp4(src: String = "198.18.1.1", dport: UInt16, vlans: [UInt16] = []) -> [UInt8] {
        ethernet(EtherType.ipv4, vlans: vlans, ipv4(src: src, proto: Proto.udp, udp(dport: dport)))
    }

    public static func udp6(src: String = "2001:db8::1", dport: UInt16, extensions: [(type: UInt8, body: [UInt8])] = [])
        -> [UInt8]
    {
        ethernet(EtherType.ipv6, ipv6(src: src, proto: Proto.udp, udp(dport: dport), extensions: extensions))
    }

    // MARK: Bytes

    public static func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xFF)] }

    public static func addr4(_ text: String) -> [UInt8] {
        var a = in_addr()
        precondition(inet_pton(AF_INET, text, &a) == 1, "bad IPv4 address \(text)")
        return withUnsafeBytes(of: a) { Array($0) }
    }

    public static func addr6(_ text: String) -> [UInt8] {
        var a = in6_addr()
        precondition(inet_pton(AF_INET6, text, &a) == 1, "bad IPv6 address \(text)")
        return withUnsafeBytes(of: a) { Array($0) }
    }

    public static func checksum(_ bytes: [UInt8]) -> UInt16 {
        var sum: UInt32 = 0
        var i = 0
        while i + 1 < bytes.count {
            sum += UInt32(bytes[i]) << 8 | UInt32(bytes[i + 1])
            i += 2
        }
        if i < bytes.count { sum += UInt32(bytes[i]) << 8 }
        while sum >> 16 != 0 { sum = (sum & 0xFFFF) + (sum >> 16) }
        return ~UInt16(sum)
    }
}

extension Packet {
    /// A SIP message over UDP/IPv4 to `dport`, its lines joined with CRLF and ended by an empty line.
    public static func sip(_ lines: [String], src: String = "198.18.1.1", dport: UInt16 = 5060, ttl: UInt8 = 64)
        -> [UInt8]
    {
        sipRaw(Array((lines.joined(separator: "\r\n") + "\r\n\r\n").utf8), src: src, dport: dport, ttl: ttl)
    }

    public static func sipRaw(_ payload: [UInt8], src: String = "198.18.1.1", dport: UInt16 = 5060, ttl: UInt8 = 64)
        -> [UInt8]
    {
        ethernet(EtherType.ipv4, ipv4(src: src, proto: Proto.udp, udp(dport: dport, payload), ttl: ttl))
    }

    /// A plausible request: request line, Via, From, To, Call-ID, CSeq, then `extra` headers.
    public static func request(
        _ method: String, src: String = "198.18.1.1", extra: [String] = [], callID: String? = nil, cseq: String? = nil,
        ttl: UInt8 = 64
    ) -> [UInt8] {
        sip([
            "\(method) sip:100@198.18.0.2 SIP/2.0",
            "Via: SIP/2.0/UDP \(src):5060;branch=z9hG4bK-1",
            "From: <sip:200@\(src)>;tag=1", "To: <sip:100@198.18.0.2>", "Call-ID: \(callID ?? "1@\(src)")",
            "CSeq: \(cseq ?? "1 \(method)")", "Max-Forwards: 70",
        ] + extra, src: src, ttl: ttl)
    }
}
