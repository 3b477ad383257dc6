import CFloodgate
import Foundation

/// A traffic class of the XDP program (`enum fg_class` in BPF/floodgate.h); its name comes from the same header.
public struct TrafficClass: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let index: UInt32

    public init?(index: UInt32) {
        guard index < FG_CLASS_MAX.rawValue else { return nil }
        self.index = index
    }

    public init?(name: String) {
        guard let found = TrafficClass.all.first(where: { $0.name == name.lowercased() }) else { return nil }
        self = found
    }

    private init(_ c: fg_class) { index = c.rawValue }

    public static let sip = TrafficClass(FG_CLASS_SIP)
    public static let rtp = TrafficClass(FG_CLASS_RTP)
    public static let icmp = TrafficClass(FG_CLASS_ICMP)
    public static let fragment = TrafficClass(FG_CLASS_FRAGMENT)
    public static let other = TrafficClass(FG_CLASS_OTHER)

    public static var all: [TrafficClass] { (0..<FG_CLASS_MAX.rawValue).map { TrafficClass(fg_class($0)) } }

    public var name: String { String(cString: fg_class_name(index)) }
    public var description: String { name }
    public static func < (a: TrafficClass, b: TrafficClass) -> Bool { a.index < b.index }
}

/// Why a packet got its verdict (`enum fg_reason`).
public struct Reason: Hashable, Sendable, CustomStringConvertible {
    public let index: UInt32

    init(_ r: fg_reason) { index = r.rawValue }

    public static let passed = Reason(FG_REASON_PASSED)
    public static let droppedRate = Reason(FG_REASON_DROPPED_RATE)
    public static let droppedMalformed = Reason(FG_REASON_DROPPED_MALFORMED)
    public static let passedMalformed = Reason(FG_REASON_PASSED_MALFORMED)
    public static let droppedBlocked = Reason(FG_REASON_DROPPED_BLOCKED)
    public static let passedUntracked = Reason(FG_REASON_PASSED_UNTRACKED)

    public static var all: [Reason] { (0..<FG_REASON_MAX.rawValue).map { Reason(fg_reason($0)) } }

    public var name: String { String(cString: fg_reason_name(index)) }
    public var description: String { name }
    public var isDrop: Bool { name.hasPrefix("dropped") }
}

/// A per-source, per-class limit (`struct fg_limit`), as an operator states it.
public enum Limit: Equatable, Sendable, CustomStringConvertible {
    /// No bucket: every packet of the class passes and its sources are not tracked.
    case unlimited
    /// Every packet of the class is dropped.
    case block
    /// A token bucket: `rate` packets/s refill, up to `burst` packets at once.
    case rate(UInt32, burst: UInt32)

    /// Validates a rate and burst the way the CLI and config take them.
    public static func validated(rate: Int, burst: Int?) throws -> Limit {
        guard rate >= 1 else {
            throw FloodgateError(
                "rate must be at least 1 packet/s (got \(rate))",
                hint: "Use --block to drop the class or --unlimited to stop limiting it")
        }
        guard rate <= Int(FG_MAX_RATE) else {
            throw FloodgateError("rate \(rate) is above the maximum of \(FG_MAX_RATE) packets/s")
        }
        let burst = burst ?? rate
        guard burst >= 1 else { throw FloodgateError("burst must be at least 1 packet (got \(burst))") }
        guard burst <= Int(FG_MAX_BURST) else {
            throw FloodgateError("burst \(burst) is above the maximum of \(FG_MAX_BURST) packets")
        }
        return .rate(UInt32(rate), burst: UInt32(burst))
    }

    public init(_ raw: fg_limit) {
        switch raw.interval {
        case FG_INTERVAL_UNLIMITED: self = .unlimited
        case FG_INTERVAL_BLOCK: self = .block
        default: self = .rate(raw.rate, burst: raw.burst)
        }
    }

    /// The map value: interval and tolerance in ticks (1/16 ns) for the GCRA in BPF/lib/bucket.h.
    public var raw: fg_limit {
        var value = fg_limit()
        switch self {
        case .unlimited: value.interval = FG_INTERVAL_UNLIMITED
        case .block: value.interval = FG_INTERVAL_BLOCK
        case .rate(let rate, let burst):
            let interval = UInt64(FG_TICKS_PER_SEC) / UInt64(max(rate, 1))
            value.interval = interval
            value.tau = UInt64(max(burst, 1) - 1) * interval
            value.rate = rate
            value.burst = burst
        }
        return value
    }

    public var description: String {
        switch self {
        case .unlimited: return "unlimited"
        case .block: return "block"
        case .rate(let rate, let burst): return "\(rate)/s burst \(burst)"
        }
    }

    /// The limits a freshly attached filter starts with. SIP per source is generous enough for a busy trunk peer
    /// and low enough that one flooding source cannot take the server; RTP allows dozens of concurrent streams
    /// (50 packets/s each at 20 ms) per source.
    public static let defaults: [TrafficClass: Limit] = [
        .sip: .rate(100, burst: 200),
        .rtp: .rate(5000, burst: 10000),
        .icmp: .rate(20, burst: 40),
        .fragment: .rate(200, burst: 400),
        .other: .unlimited,
    ]
}

/// What to do with packets whose headers are truncated or invalid.
public enum MalformedAction: String, Sendable, CaseIterable {
    case drop, pass
}

/// Ports and per-packet choices of the XDP program (`struct fg_settings`).
public struct Settings: Equatable, Sendable {
    public var sipPorts: [UInt16]
    public var rtpPorts: ClosedRange<UInt16>?
    public var malformed: MalformedAction

    public static let defaults = Settings(sipPorts: [5060, 5061], rtpPorts: 10000...20000, malformed: .drop)

    public init(sipPorts: [UInt16], rtpPorts: ClosedRange<UInt16>?, malformed: MalformedAction) {
        self.sipPorts = sipPorts
        self.rtpPorts = rtpPorts
        self.malformed = malformed
    }

    public init(_ raw: fg_settings) {
        let ports = withUnsafeBytes(of: raw.sip_ports) { Array($0.bindMemory(to: UInt16.self)) }
        sipPorts = ports.map { UInt16(bigEndian: $0) }.filter { $0 != 0 }
        rtpPorts = raw.rtp_port_max == 0 ? nil : raw.rtp_port_min...raw.rtp_port_max
        malformed = raw.malformed_action == FG_ACTION_PASS.rawValue ? .pass : .drop
    }

    /// The length of a jiffy, which bpf_jiffies64 counts: the resolution of CLOCK_MONOTONIC_COARSE.
    static let jiffyNanoseconds: UInt32 = {
        var resolution = timespec()
        guard clock_getres(CLOCK_MONOTONIC_COARSE, &resolution) == 0, resolution.tv_sec == 0 else { return 0 }
        return UInt32(resolution.tv_nsec)
    }()

    public func validate() throws {
        guard !sipPorts.isEmpty, sipPorts.count <= Int(FG_MAX_SIP_PORTS) else {
            throw FloodgateError("give between 1 and \(FG_MAX_SIP_PORTS) SIP ports (got \(sipPorts.count))")
        }
        if sipPorts.contains(0) { throw FloodgateError("port 0 is not a valid SIP port") }
        if let rtpPorts, rtpPorts.lowerBound == 0 {
            throw FloodgateError("the RTP port range must start at 1 or above")
        }
    }

    public var raw: fg_settings {
        var value = fg_settings()
        withUnsafeMutableBytes(of: &value.sip_ports) { buffer in
            let slots = buffer.bindMemory(to: UInt16.self)
            for (i, port) in sipPorts.prefix(slots.count).enumerated() { slots[i] = port.bigEndian }
        }
        value.rtp_port_min = rtpPorts?.lowerBound ?? 0
        value.rtp_port_max = rtpPorts?.upperBound ?? 0
        value.malformed_action = malformed == .pass ? FG_ACTION_PASS.rawValue : FG_ACTION_DROP.rawValue
        value.jiffy_ns = Settings.jiffyNanoseconds
        return value
    }
}

/// A source address as the XDP program keys it: IPv6, or IPv4 mapped as ::ffff:a.b.c.d (`struct fg_addr`).
public struct SourceAddress: Hashable, Sendable, CustomStringConvertible {
    public var bytes: [UInt8]  // 16, network order

    public init(bytes: [UInt8]) {
        precondition(bytes.count == 16)
        self.bytes = bytes
    }

    public init(_ raw: fg_addr) {
        bytes = withUnsafeBytes(of: raw) { Array($0) }
    }

    /// Parses "198.18.0.1" or "2001:db8::1".
    public init?(_ text: String) {
        var v4 = in_addr()
        var v6 = in6_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            bytes = [UInt8](repeating: 0, count: 10) + [0xFF, 0xFF] + withUnsafeBytes(of: v4) { Array($0) }
        } else if inet_pton(AF_INET6, text, &v6) == 1 {
            bytes = withUnsafeBytes(of: v6) { Array($0) }
        } else {
            return nil
        }
    }

    public var isIPv4: Bool { bytes[0..<10].allSatisfy { $0 == 0 } && bytes[10] == 0xFF && bytes[11] == 0xFF }

    public var raw: fg_addr {
        var value = fg_addr()
        withUnsafeMutableBytes(of: &value) { $0.copyBytes(from: bytes) }
        return value
    }

    public var description: String {
        if isIPv4 { return bytes[12...].map(String.init).joined(separator: ".") }
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        var v6 = in6_addr()
        withUnsafeMutableBytes(of: &v6) { $0.copyBytes(from: bytes) }
        inet_ntop(AF_INET6, &v6, &buffer, socklen_t(buffer.count))
        return String(cString: buffer)
    }
}

/// A network interface of the current network namespace.
public struct Interface: Hashable, Sendable, CustomStringConvertible {
    public let name: String
    public let index: Int32

    /// Resolves `name` with if_nametoindex (works inside `nsenter --net`, unlike /sys/class/net).
    public init(_ name: String) throws {
        guard !name.isEmpty, name.utf8.count < Int(IF_NAMESIZE), !name.contains("/") else {
            throw FloodgateError("'\(name)' is not a valid interface name")
        }
        let index = if_nametoindex(name)
        guard index != 0 else {
            throw FloodgateError(
                "no interface named \(name) in this network namespace",
                hint: "List interfaces with: ip link show")
        }
        self.name = name
        self.index = Int32(index)
    }

    public var description: String { name }
}
