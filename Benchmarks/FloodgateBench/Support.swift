// floodgate-bench: what every section shares.
import CFloodgate
import CLabLayouts
import FloodgateCore
import FloodgateLab
import Foundation

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.count % 2 == 1
        ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

/// The lower quartile: the sorted values' entry at index n/4 (the third of 9; for 3 or fewer, the least). On
/// this VM a cost run is slowed now and then for seconds at a time by something outside it (the trivial
/// program's own runs slow with it), so a program's runs spread upwards; the lower quartile of a load's runs is
/// steadier than their median, and the builds and floors are compared by it (see "Medians and lower
/// quartiles" in Benchmarks/README.md).
func lowerQuartile(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted[sorted.count / 4]
}

/// The per-source bucket alone: no prefix or new-source limits in the way of what is measured.
let unlimitedAggregates = FilterPolicy.perSourceOnly

/// `base` with `settings` and the per-source `limits` of unverified sources.
func policy(_ base: FilterPolicy = FilterPolicy(), settings: Settings = .defaults,
            limits: [TrafficClass: Limit] = Limit.defaults) -> FilterPolicy {
    var policy = base
    policy.settings = settings
    policy.limits = limits
    return policy
}

/// A REGISTER as a phone sends it, about 500 bytes, its User-Agent near the end.
let register = Array(
    """
    REGISTER sip:198.18.0.2 SIP/2.0\r
    Via: SIP/2.0/UDP 198.18.1.1:5060;rport;branch=z9hG4bKPj5c7b2d0e8f1a4b3c9d6e\r
    Max-Forwards: 70\r
    From: <sip:1001@198.18.0.2>;tag=8f1a4b3c9d6e5c7b2d0e\r
    To: <sip:1001@198.18.0.2>\r
    Call-ID: 3c9d6e5c7b2d0e8f1a4b@198.18.1.1\r
    CSeq: 4711 REGISTER\r
    Contact: <sip:1001@198.18.1.1:5060;ob>;expires=300\r
    Allow: PRACK, INVITE, ACK, BYE, CANCEL, UPDATE, INFO, SUBSCRIBE, NOTIFY, REFER, MESSAGE, OPTIONS\r
    Supported: outbound, path, gruu\r
    Expires: 300\r
    User-Agent: Grandstream GXP2170 1.0.11.3\r
    Content-Length: 0\r
    \r

    """.utf8)

func frame(src: String, dport: UInt16, payload: [UInt8] = Array("OPTIONS sip:bench@198.18.0.2 SIP/2.0\r\n".utf8))
    -> [UInt8]
{
    func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xFF)] }
    let udp = be16(40000) + be16(dport) + be16(UInt16(8 + payload.count)) + [0, 0] + payload
    var ip: [UInt8] = [0x45, 0] + be16(UInt16(20 + udp.count)) + [0, 1, 0, 0, 64, 17, 0, 0]
    var a = in_addr()
    inet_pton(AF_INET, src, &a)
    ip += withUnsafeBytes(of: a) { Array($0) } + [198, 18, 0, 2]
    return [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00] + ip + udp
}

/// The same OPTIONS as ``frame(src:dport:payload:)``, over IPv6 to the lab's router.
func frame6(src: String, dport: UInt16, payload: [UInt8] = Array("OPTIONS sip:bench@198.18.0.2 SIP/2.0\r\n".utf8))
    -> [UInt8]
{
    Packet.ethernet(Packet.EtherType.ipv6, Packet.ipv6(
        src: src, dst: "2001:db8::2", proto: Packet.Proto.udp, Packet.udp(sport: 40000, dport: dport, payload)))
}

func memlock(fd: Int32) -> UInt64 {
    guard let text = try? String(contentsOfFile: "/proc/self/fdinfo/\(fd)", encoding: .utf8) else { return 0 }
    for line in text.split(separator: "\n") where line.hasPrefix("memlock:") {
        return UInt64(line.dropFirst("memlock:".count).trimmingCharacters(in: .whitespaces)) ?? 0
    }
    return 0
}

/// This process's resident set (VmRSS in /proc/self/status).
func residentBytes() -> UInt64 {
    guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        let kb = line.split(separator: " ").dropFirst().first.flatMap { UInt64($0) } ?? 0
        return kb * 1024
    }
    return 0
}

/// Left- and right-aligned table cells.
func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
func lpad(_ s: String, _ n: Int) -> String { s.count >= n ? s : String(repeating: " ", count: n - s.count) + s }

/// An INVITE dialling a national number (+44 20…) the way a PBX sends it.
let inviteToNumber = Array((
    "INVITE sip:02079460000@198.18.0.2;user=phone SIP/2.0\r\nVia: SIP/2.0/UDP 198.18.1.1:5060;branch=z9hG4bK-b1\r\n"
    + "From: <sip:+442071234567@198.18.1.1>;tag=1\r\nTo: <sip:02079460000@198.18.0.2>\r\nCall-ID: bench@x\r\n"
    + "CSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").utf8)

/// 10,000 blocked destination prefixes (3 to 8 digits, first digit 5 to 9, so none is +44's or +1's) and +44
/// allowed: the table the speed target names. Seeded: the same table every run.
let tenThousandDestinations: [DestinationRule] = {
    var state: UInt64 = 0x5EED
    func next() -> UInt64 {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return state >> 33
    }
    var prefixes = Set<String>()
    while prefixes.count < 10_000 {
        let length = 3 + Int(next() % 6)
        prefixes.insert(String(5 + next() % 5) + String((1..<length).map { _ in Character(String(next() % 10)) }))
    }
    return prefixes.sorted().map { try! DestinationRule($0, .block) } + [try! DestinationRule("44", .allow)]
}()
