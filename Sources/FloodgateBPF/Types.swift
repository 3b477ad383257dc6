internal import CFloodgate
import Foundation

/// A traffic class of the XDP program (`enum fg_class` in BPF/floodgate.h); its name comes from the same header.
/// ``unparsed`` is not a class but the counters' row after them (`FG_COUNTER_UNPARSED`): packets dropped from their
/// source alone, before their class was read. It has no limit; ``all`` lists the classes, ``counted`` adds it.
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

    /// A class, or the counters' ``unparsed`` row (an event's class may be either).
    public init?(counterRow index: UInt32) {
        guard index < UInt32(FG_COUNTER_ROWS) else { return nil }
        self.index = index
    }

    private init(_ c: fg_class) { index = c.rawValue }
    private init(row: UInt32) { index = row }

    public static let invite = TrafficClass(FG_CLASS_INVITE)
    public static let register = TrafficClass(FG_CLASS_REGISTER)
    public static let options = TrafficClass(FG_CLASS_OPTIONS)
    public static let otherRequest = TrafficClass(FG_CLASS_OTHER_REQUEST)
    public static let inDialog = TrafficClass(FG_CLASS_IN_DIALOG)
    public static let response = TrafficClass(FG_CLASS_RESPONSE)
    public static let sipOther = TrafficClass(FG_CLASS_SIP_OTHER)
    public static let sipSyn = TrafficClass(FG_CLASS_SIP_SYN)
    public static let sipStream = TrafficClass(FG_CLASS_SIP_STREAM)
    public static let keepalive = TrafficClass(FG_CLASS_KEEPALIVE)
    public static let fragment = TrafficClass(FG_CLASS_FRAGMENT)
    public static let rtp = TrafficClass(FG_CLASS_RTP)
    public static let icmp = TrafficClass(FG_CLASS_ICMP)
    public static let other = TrafficClass(FG_CLASS_OTHER)
    /// Dropped before the class was read: a ban or a denial held by source alone (BPF/lib/drop_cache.h).
    public static let unparsed = TrafficClass(row: UInt32(FG_COUNTER_UNPARSED))

    /// SIP classes: the prefix buckets and the budget apply to them.
    public var isSIP: Bool { index <= UInt32(FG_CLASS_SIP_LAST) }

    public static var all: [TrafficClass] { (0..<FG_CLASS_MAX.rawValue).map { TrafficClass(fg_class($0)) } }

    /// The counters' rows: every class, then ``unparsed``.
    public static var counted: [TrafficClass] { all + [.unparsed] }

    public var name: String { String(cString: fg_class_name(index)) }
    public var description: String { name }
    public static func < (a: TrafficClass, b: TrafficClass) -> Bool { a.index < b.index }
}

/// Which per-source limits apply to a source: a stranger's, or a verified source's (BPF/lib/tiers.h).
public enum Tier: String, Sendable, CaseIterable {
    case unverified, verified

    /// The index in `fg_limits` of a class's limit in this tier.
    func limitIndex(_ c: TrafficClass) -> UInt32 {
        precondition(c.index < FG_CLASS_MAX.rawValue, "\(c) is a counters' row, not a class with a limit")
        return self == .verified ? FG_LIMIT_VERIFIED.rawValue + c.index : c.index
    }
}

/// Why a packet got its verdict (`enum fg_reason`).
public struct Reason: Hashable, Sendable, CustomStringConvertible {
    public let index: UInt32

    init(_ r: fg_reason) { index = r.rawValue }

    public static let passed = Reason(FG_REASON_PASSED)
    public static let passedAllow = Reason(FG_REASON_PASSED_ALLOW)
    public static let droppedRate = Reason(FG_REASON_DROPPED_RATE)
    public static let droppedPrefix = Reason(FG_REASON_DROPPED_PREFIX)
    public static let droppedNewSource = Reason(FG_REASON_DROPPED_NEW_SOURCE)
    public static let droppedShed = Reason(FG_REASON_DROPPED_SHED)
    public static let droppedDeny = Reason(FG_REASON_DROPPED_DENY)
    public static let droppedBan = Reason(FG_REASON_DROPPED_BAN)
    public static let droppedScanner = Reason(FG_REASON_DROPPED_SCANNER)
    public static let droppedMalformed = Reason(FG_REASON_DROPPED_MALFORMED)
    public static let passedMalformed = Reason(FG_REASON_PASSED_MALFORMED)
    public static let droppedBlocked = Reason(FG_REASON_DROPPED_BLOCKED)
    public static let passedUntracked = Reason(FG_REASON_PASSED_UNTRACKED)
    public static let droppedSpoofed = Reason(FG_REASON_DROPPED_SPOOFED)
    public static let droppedAllowLimit = Reason(FG_REASON_DROPPED_ALLOW_LIMIT)
    public static let droppedOversize = Reason(FG_REASON_DROPPED_OVERSIZE)
    public static let droppedDestination = Reason(FG_REASON_DROPPED_DESTINATION)
    public static let droppedDestinationLimit = Reason(FG_REASON_DROPPED_DESTINATION_LIMIT)
    public static let droppedFraud = Reason(FG_REASON_DROPPED_FRAUD)
    public static let droppedConcurrent = Reason(FG_REASON_DROPPED_CONCURRENT)
    public static let droppedCallerID = Reason(FG_REASON_DROPPED_CALLER_ID)
    public static let droppedUnproven = Reason(FG_REASON_DROPPED_UNPROVEN)

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

    /// Throws if a rate or burst is out of what the map can hold (``validated(rate:burst:)``'s bounds).
    public func validate() throws {
        if case .rate(let rate, let burst) = self { _ = try Limit.validated(rate: Int(rate), burst: Int(burst)) }
    }

    init(_ raw: fg_limit) {
        switch raw.interval {
        case FG_INTERVAL_UNLIMITED: self = .unlimited
        case FG_INTERVAL_BLOCK: self = .block
        default: self = .rate(raw.rate, burst: raw.burst)
        }
    }

    /// The map value: interval and tolerance in ticks (1/16 ns) for the GCRA in BPF/lib/bucket.h.
    var raw: fg_limit {
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

    /// The per-source limits of verified sources (the SIP server accepted their credentials): higher than a
    /// stranger's for what a registered PBX or busy phone sends, the same where more would only help a forger at
    /// the same hop distance (sip-other, icmp).
    public static let verifiedDefaults: [TrafficClass: Limit] = [
        .invite: .rate(30, burst: 60),
        .register: .rate(30, burst: 60),
        .options: .rate(30, burst: 60),
        .otherRequest: .rate(64, burst: 128),
        .inDialog: .rate(128, burst: 256),
        .response: .rate(256, burst: 512),
        .sipOther: .rate(8, burst: 16),
        .sipSyn: .rate(30, burst: 60),
        .sipStream: .rate(2000, burst: 4000),
        .keepalive: .rate(10, burst: 20),
        .fragment: .rate(1000, burst: 2000),
        .rtp: .rate(20000, burst: 40000),
        .icmp: .rate(20, burst: 40),
        .other: .unlimited,
    ]

    /// The per-source limits a freshly attached filter starts with. SIP requests sit near what Kamailio's pike
    /// defaults imply (about 8 requests/s per source, bursts of 16); trunk peers that send more belong on the allow
    /// list. Responses and in-dialog requests follow calls already set up, so they get more room. RTP allows
    /// dozens of concurrent streams (50 packets/s each at 20 ms) per source. Fragments have one aggregate bucket.
    public static let defaults: [TrafficClass: Limit] = [
        .invite: .rate(8, burst: 16),
        .register: .rate(8, burst: 16),
        .options: .rate(8, burst: 16),
        .otherRequest: .rate(16, burst: 32),
        .inDialog: .rate(32, burst: 64),
        .response: .rate(64, burst: 128),
        .sipOther: .rate(8, burst: 16),
        .sipSyn: .rate(8, burst: 16),
        .sipStream: .rate(500, burst: 1000),
        .keepalive: .rate(2, burst: 10),
        .fragment: .rate(1000, burst: 2000),
        .rtp: .rate(5000, burst: 10000),
        .icmp: .rate(20, burst: 40),
        .other: .unlimited,
    ]

    /// Per-prefix aggregate over all SIP classes (a /24 or /64 by default).
    public static let defaultPrefix: Limit = .rate(200, burst: 400)
    /// Each allow-list entry's own bucket over all SIP classes of its addresses: generous for a trunk, but a
    /// forger who takes an allow-listed address is not unlimited.
    public static let defaultAllowEntry: Limit = .rate(2000, burst: 4000)
    /// The wider aggregate over all SIP classes (a /16 or /48 by default): what a flood of random sources from
    /// one network that size gets in, however many of its prefixes it uses.
    public static let defaultWidePrefix: Limit = .rate(2000, burst: 4000)
    /// The interface-wide SIP budget: off until the operator sets what the SIP server can take.
    public static let defaultBudget: Limit = .unlimited
    /// New (source, class) entries per second: what a random-source flood can push into the source map.
    public static let defaultNewSources: Limit = .rate(20000, burst: 20000)
}

/// What to do with packets whose headers are truncated or invalid.
public enum MalformedAction: String, Sendable, CaseIterable {
    case drop, pass
}

/// Ports and per-packet choices of the XDP program (`struct fg_settings`).
/// The list sizes and generation live in the same map value but are kept by ``FilterMaps``, not by this type.
public struct Settings: Equatable, Sendable {
    public var sipPorts: [UInt16]
    public var rtpPorts: ClosedRange<UInt16>?
    public var malformed: MalformedAction
    /// Prefix lengths of the aggregate buckets.
    public var prefixV4: UInt8
    public var prefixV6: UInt8
    /// Prefix lengths of the wider aggregate buckets (at most the prefix lengths above).
    public var wideV4: UInt8 = 16
    public var wideV6: UInt8 = 48
    /// How long the XDP program bans a source that sent a scanner signature; 0: it does not.
    public var scannerBanSeconds: UInt32
    /// When the XDP program bans a source that keeps exceeding its limit.
    public var autoBan = AutoBan()
    /// Failed authentications, seen on the inside interface, that ban a source; nil: not counted (the default:
    /// only a filter with an inside interface sees the answers).
    public var bruteForce: BruteForce?
    /// How long a source whose credentialed REGISTER or INVITE the SIP server accepted stays verified; 0: no
    /// learned trust.
    public var trustSeconds: UInt32 = 0
    /// How far (in hops) a verified or allow-listed address's TTL may stray from its pinned one before its packets
    /// are taken as forged (`dropped-spoofed`; BPF/lib/tiers.h).
    public var ttlTolerance: UInt8 = UInt8(FG_DEFAULT_TTL_TOLERANCE)
    /// The per-CPU drop cache (BPF/lib/drop_cache.h). Off, every packet takes the whole policy: only for comparing
    /// the program with a model of the policy that has no cache.
    public var dropCache = true
    /// How INVITEs' numbers are made E.164 for the destination rules.
    public var numbers = NumberPlan()

    public static let defaults = Settings(sipPorts: [5060, 5061], rtpPorts: 10000...20000, malformed: .drop)

    public init(
        sipPorts: [UInt16], rtpPorts: ClosedRange<UInt16>?, malformed: MalformedAction, prefixV4: UInt8 = 24,
        prefixV6: UInt8 = 64, scannerBanSeconds: UInt32 = 600
    ) {
        self.sipPorts = sipPorts
        self.rtpPorts = rtpPorts
        self.malformed = malformed
        self.prefixV4 = prefixV4
        self.prefixV6 = prefixV6
        self.scannerBanSeconds = scannerBanSeconds
    }

    init(_ raw: fg_settings) {
        let ports = withUnsafeBytes(of: raw.sip_ports) { Array($0.bindMemory(to: UInt16.self)) }
        sipPorts = ports.map { UInt16(bigEndian: $0) }.filter { $0 != 0 }
        rtpPorts = raw.rtp_port_max == 0 ? nil : raw.rtp_port_min...raw.rtp_port_max
        malformed = raw.malformed_action == FG_ACTION_PASS.rawValue ? .pass : .drop
        prefixV4 = raw.prefix_v4
        prefixV6 = raw.prefix_v6
        wideV4 = raw.wide_v4
        wideV6 = raw.wide_v6
        scannerBanSeconds = raw.scanner_ban_seconds
        autoBan = AutoBan(raw)
        bruteForce = raw.bruteforce_failures == 0 ? nil : BruteForce(
            failures: raw.bruteforce_failures, windowSeconds: raw.bruteforce_window_s, banSeconds: raw.bruteforce_ban_s)
        trustSeconds = raw.trust_seconds
        ttlTolerance = UInt8(clamping: raw.ttl_tolerance)
        dropCache = raw.jiffy_ns != 0
        numbers = NumberPlan(raw)
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
        guard (8...32).contains(prefixV4) else { throw FloodgateError("the IPv4 prefix length must be 8 to 32 (got \(prefixV4))") }
        guard (16...128).contains(prefixV6) else {
            throw FloodgateError("the IPv6 prefix length must be 16 to 128 (got \(prefixV6))")
        }
        guard (8...prefixV4).contains(wideV4) else {
            throw FloodgateError("the wide IPv4 prefix length must be 8 to the IPv4 prefix length, \(prefixV4) (got \(wideV4))")
        }
        guard (16...prefixV6).contains(wideV6) else {
            throw FloodgateError("the wide IPv6 prefix length must be 16 to the IPv6 prefix length, \(prefixV6) (got \(wideV6))")
        }
        try autoBan.validate()
        try numbers.validate()
        if let bruteForce {
            guard bruteForce.failures >= 1, bruteForce.windowSeconds >= 1, (1...30 * 86400).contains(bruteForce.banSeconds)
            else { throw FloodgateError("brute force: at least 1 failure in at least 1 s, banned 1 s to 30 d") }
        }
    }

    /// What the filter holds of these settings: what reading them back after a write gives (a disabled auto-ban
    /// keeps no drop count, a drop cache needs a jiffy's length). Compare these, not the settings as given.
    public var normalized: Settings { Settings(raw(over: fg_settings())) }

    /// These settings written over `base`, whose list sizes and generation are kept.
    func raw(over base: fg_settings) -> fg_settings {
        var value = base
        withUnsafeMutableBytes(of: &value.sip_ports) { buffer in
            let slots = buffer.bindMemory(to: UInt16.self)
            // Every slot: a port removed must not stay behind in a slot this list no longer reaches.
            for i in 0..<slots.count { slots[i] = i < sipPorts.count ? sipPorts[i].bigEndian : 0 }
        }
        value.rtp_port_min = rtpPorts?.lowerBound ?? 0
        value.rtp_port_max = rtpPorts?.upperBound ?? 0
        value.malformed_action = malformed == .pass ? FG_ACTION_PASS.rawValue : FG_ACTION_DROP.rawValue
        // Without the length of a jiffy the program fills no drop-cache slot.
        value.jiffy_ns = dropCache ? Settings.jiffyNanoseconds : 0
        value.prefix_v4 = prefixV4
        value.prefix_v6 = prefixV6
        value.wide_v4 = wideV4
        value.wide_v6 = wideV6
        value.scanner_ban_seconds = scannerBanSeconds
        autoBan.write(into: &value)
        value.bruteforce_failures = bruteForce?.failures ?? 0
        value.bruteforce_window_s = bruteForce?.windowSeconds ?? 0
        value.bruteforce_ban_s = bruteForce?.banSeconds ?? 0
        value.trust_seconds = trustSeconds
        value.ttl_tolerance = UInt32(ttlTolerance)
        numbers.write(into: &value)
        value.layout_version = UInt32(FG_LAYOUT_VERSION)
        return value
    }
}

/// Brute-force detection (BPF/lib/trust.h): `failures` failed authentications within `windowSeconds` ban the
/// source for `banSeconds`. The defaults are near fail2ban's SIP jails (10 in 10 minutes, banned 10 minutes).
public struct BruteForce: Equatable, Sendable {
    public var failures: UInt32 = 10
    public var windowSeconds: UInt32 = 600
    public var banSeconds: UInt32 = 600

    public init() {}

    public init(failures: UInt32, windowSeconds: UInt32, banSeconds: UInt32) {
        self.failures = failures
        self.windowSeconds = windowSeconds
        self.banSeconds = banSeconds
    }
}

/// Auto-ban (BPF/lib/autoban.h): a source whose own bucket drops `drops` of its packets within `windowMilliseconds`
/// is banned by the XDP program, for `durations[offence - 1]` seconds (the last repeats) plus up to `jitterPercent`
/// at random; an offender's count is forgotten after `forgetSeconds` without a ban.
public struct AutoBan: Equatable, Sendable {
    public var enabled = true
    public var drops: UInt32 = 500
    public var windowMilliseconds: UInt32 = 1000
    public var durations: [UInt32] = [60, 600, 3600, 86400]
    public var jitterPercent: UInt32 = 10
    public var forgetSeconds: UInt32 = 86400

    public init() {}

    init(_ raw: fg_settings) {
        enabled = raw.autoban_drops != 0
        if enabled { drops = raw.autoban_drops }
        windowMilliseconds = raw.autoban_window_ms
        durations = withUnsafeBytes(of: raw.autoban_seconds) { Array($0.bindMemory(to: UInt32.self)) }.filter { $0 != 0 }
        jitterPercent = raw.autoban_jitter_pct
        forgetSeconds = raw.offence_forget_s
    }

    func write(into value: inout fg_settings) {
        value.autoban_drops = enabled ? drops : 0
        value.autoban_window_ms = windowMilliseconds
        withUnsafeMutableBytes(of: &value.autoban_seconds) { buffer in
            let slots = buffer.bindMemory(to: UInt32.self)
            for i in 0..<slots.count { slots[i] = i < durations.count ? durations[i] : 0 }
        }
        value.autoban_jitter_pct = jitterPercent
        value.offence_forget_s = forgetSeconds
    }

    public func validate() throws {
        guard drops >= 1 else { throw FloodgateError("auto-ban needs at least 1 drop") }
        guard (100...3_600_000).contains(windowMilliseconds) else {
            throw FloodgateError("the auto-ban window must be 100 ms to 1 h (got \(windowMilliseconds) ms)")
        }
        guard (1...Int(FG_AUTOBAN_LEVELS)).contains(durations.count), durations.allSatisfy({ (1...30 * 86400).contains($0) })
        else { throw FloodgateError("give 1 to \(FG_AUTOBAN_LEVELS) auto-ban durations, each 1 s to 30 d") }
        guard jitterPercent <= 100 else { throw FloodgateError("auto-ban jitter is at most 100%") }
    }
}

/// A source address as the XDP program keys it: IPv6, or IPv4 mapped as ::ffff:a.b.c.d (`struct fg_addr`).
public struct SourceAddress: Hashable, Sendable, CustomStringConvertible {
    public var bytes: [UInt8]  // 16, network order

    public init(bytes: [UInt8]) {
        precondition(bytes.count == 16)
        self.bytes = bytes
    }

    init(_ raw: fg_addr) {
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

    var raw: fg_addr {
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
        guard PinRoot.isInterfaceName(name) else {
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

/// A verified source (`fg_trusted`): until when, and the TTL / hop limit its packets must arrive with.
public struct TrustedSource: Sendable, Equatable {
    public let address: SourceAddress
    /// CLOCK_MONOTONIC nanoseconds until which it is verified.
    public let untilNS: UInt64
    /// The pinned TTL.
    public let ttl: UInt8
    /// Another TTL that accepted transactions came with, and how many in a row (FG_REPIN_CONFIRMATIONS move
    /// the pin).
    public let candidateTTL: UInt8?
    public let confirmations: UInt8
    /// CLOCK_MONOTONIC seconds until which its credentials at its pin are quarantined (they failed answering no
    /// challenge sent to it: only credentials answering one pass; BPF/lib/trust.h), if they ever were.
    public let quarantineUntilSeconds: UInt32?
    /// The same for its credentials from other hop distances than its pin.
    public let awayQuarantineUntilSeconds: UInt32?
    /// Whether the quarantine at its pin, and the one from elsewhere, is strict: its credentials there also failed
    /// answering challenges to other methods than REGISTER (which a proxy may relay from a phone behind it), so
    /// only credentials answering a challenge to a REGISTER pass there.
    public let strictAtPin: Bool
    public let strictElsewhere: Bool
    /// Accepted transactions in a row at a new TTL that move the pin (FG_REPIN_CONFIRMATIONS).
    public static let confirmationsToMove = Int(FG_REPIN_CONFIRMATIONS)
}
