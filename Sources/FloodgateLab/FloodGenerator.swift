import CLabLayouts
import FloodgateCore
import Foundation

/// A flood to generate: a frame, and how its source changes from packet to packet.
public struct FloodScenario: Sendable {
    public var name: String
    public var frame: [UInt8]
    public var mode: fg_flood_mode
    public var randomBits: UInt32

    /// The scenarios of `floodgate flood` and the benchmark. Sources are lab addresses: a fixed attacker in
    /// 198.18.1.0/24, random IPv4 sources within 198.19.0.0/16 (at most 16 random bits), IPv6 within the
    /// documentation prefix 2001:db8::/32 — never the lab's own 198.18.0.0/24, where its phones are.
    public static func named(
        _ name: String, target: String = "198.18.0.2", attacker: String = "198.18.1.66",
        randomAttacker: String = "198.19.1.66"
    ) throws -> FloodScenario {
        func udp4(_ dport: UInt16, _ payload: [UInt8], from source: String = attacker) -> [UInt8] {
            Packet.ethernet(Packet.EtherType.ipv4, Packet.ipv4(src: source, dst: target, proto: Packet.Proto.udp,
                                                               Packet.udp(sport: 5060, dport: dport, payload)))
        }
        let register = Array("""
            REGISTER sip:\(target) SIP/2.0\r
            Via: SIP/2.0/UDP \(attacker):5060;branch=z9hG4bK-flood\r
            From: <sip:100@\(target)>;tag=1\r
            To: <sip:100@\(target)>\r
            Call-ID: flood@\(attacker)\r
            CSeq: 1 REGISTER\r
            User-Agent: friendly-scanner\r
            Content-Length: 0\r
            \r

            """.utf8)
        let invite = Array("INVITE sip:100@\(target) SIP/2.0\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n".utf8)
        let options = Array("OPTIONS sip:100@\(target) SIP/2.0\r\nFrom: \"sipvicious\"<sip:100@1.1.1.1>;tag=1\r\n\r\n".utf8)
        switch name {
        case "single-source":
            return FloodScenario(name: name, frame: udp4(5060, invite), mode: FG_FLOOD_FIXED, randomBits: 0)
        case "register-scanner":
            return FloodScenario(name: name, frame: udp4(5060, register), mode: FG_FLOOD_FIXED, randomBits: 0)
        case "invite":
            return FloodScenario(name: name, frame: udp4(5060, invite, from: randomAttacker), mode: FG_FLOOD_RANDOM_V4,
                                 randomBits: 8)
        case "options-scan":
            return FloodScenario(name: name, frame: udp4(5060, options), mode: FG_FLOOD_FIXED, randomBits: 0)
        case "syn-5061":
            let syn = Packet.ethernet(Packet.EtherType.ipv4, Packet.ipv4(
                src: randomAttacker, dst: target, proto: Packet.Proto.tcp, Packet.tcp(sport: 40000, dport: 5061)))
            return FloodScenario(name: name, frame: syn, mode: FG_FLOOD_RANDOM_V4, randomBits: 16)
        case "worst-case":
            // What costs the filter most per packet under the default policy: every packet a new source (96 random
            // bits: hardly two in a million share a /64, so no prefix drains and no cached drop ends it) and a
            // 1,400-byte REGISTER with no scanner's mark, whose whole header block the walk reads when the
            // new-source budget admits one.
            let frame = Packet.ethernet(Packet.EtherType.ipv6, Packet.ipv6(
                src: "2001:db8:66::1", dst: "2001:db8::2", proto: Packet.Proto.udp,
                Packet.udp(sport: 5060, dport: 5060, paddedRegister(to: 1400))))
            return FloodScenario(name: name, frame: frame, mode: FG_FLOOD_RANDOM_V6, randomBits: 96)
        case "rtp":
            return FloodScenario(name: name, frame: udp4(16000, [UInt8](repeating: 0x80, count: 172)), mode: FG_FLOOD_FIXED,
                                 randomBits: 0)
        default:
            // random-v4-/N (N from 16 to 31) and random-v6-/N (N from 64 to 127).
            let parts = name.split(separator: "/")
            if parts.count == 2, let n = UInt32(parts[1]) {
                if parts[0] == "random-v4-", (16...31).contains(n) {
                    return FloodScenario(name: name, frame: udp4(5060, invite, from: randomAttacker), mode: FG_FLOOD_RANDOM_V4,
                                         randomBits: 32 - n)
                }
                if parts[0] == "random-v6-", (64...127).contains(n) {
                    let frame = Packet.ethernet(Packet.EtherType.ipv6, Packet.ipv6(
                        src: "2001:db8:66::1", dst: "2001:db8::2", proto: Packet.Proto.udp,
                        Packet.udp(sport: 5060, dport: 5060, invite)))
                    return FloodScenario(name: name, frame: frame, mode: FG_FLOOD_RANDOM_V6, randomBits: 128 - n)
                }
            }
            throw FloodgateError(
                "unknown flood scenario '\(name)'",
                hint: "Scenarios: \(FloodScenario.names.joined(separator: ", ")), random-v4-/N (16-31), random-v6-/N (64-127)")
        }
    }

    /// A REGISTER as a softphone sends it, its Contact padded with parameters to `size` bytes: nothing in it is
    /// a scanner's mark.
    static func paddedRegister(to size: Int) -> [UInt8] {
        let head = """
            REGISTER sip:2001:db8::2 SIP/2.0\r
            Via: SIP/2.0/UDP [2001:db8:66::1]:5060;branch=z9hG4bK-74bf9;rport\r
            Max-Forwards: 70\r
            From: <sip:2001@example.test>;tag=as4f2a\r
            To: <sip:2001@example.test>\r
            Call-ID: 5d0a3bc6f1e2@2001:db8:66::1\r
            CSeq: 2 REGISTER\r
            User-Agent: Linphone/5.2.0\r
            Expires: 3600\r
            Contact: <sip:2001@[2001:db8:66::1]:5060;transport=udp>;+sip.instance="<urn:uuid:
            """
        let tail = ">\"\r\nContent-Length: 0\r\n\r\n"
        let pad = max(0, size - head.utf8.count - tail.utf8.count)
        return Array((head + String(repeating: "0", count: pad) + tail).utf8)
    }

    /// Whether each frame comes from another source.
    public var randomSources: Bool { mode != FG_FLOOD_FIXED }
    /// Whether its sources are IPv6.
    public var isIPv6: Bool { mode == FG_FLOOD_RANDOM_V6 }
    /// Whether its frames are UDP datagrams to port 5060 (untagged, IPv4 without options or IPv6 without extension
    /// headers, as the scenarios make them).
    public var isSIPOverUDP: Bool {
        guard frame.count > 14 else { return false }
        let etherType = UInt16(frame[12]) << 8 | UInt16(frame[13])
        let protocolAt: Int, portAt: Int
        switch etherType {
        case 0x0800: (protocolAt, portAt) = (14 + 9, 14 + 20 + 2)
        case 0x86DD: (protocolAt, portAt) = (14 + 6, 14 + 40 + 2)
        default: return false
        }
        guard frame.count >= portAt + 2 else { return false }
        let port = UInt16(frame[portAt]) << 8 | UInt16(frame[portAt + 1])
        return frame[protocolAt] == 17 && port == 5060
    }

    /// What the scenario is, in a few words, for the demo and reports.
    public var summary: String {
        switch name {
        case "single-source": return "INVITEs from one source"
        case "register-scanner": return "REGISTERs with a friendly-scanner User-Agent, one source"
        case "invite": return "INVITEs from random sources in one /24"
        case "options-scan": return "a sipvicious OPTIONS scan, one source"
        case "syn-5061": return "TCP SYNs to 5061 (SIP over TLS) from random sources in a /16"
        case "rtp": return "RTP-sized UDP to port 16000 from one source"
        case "worst-case": return "1,400-byte REGISTERs without a scanner's mark, each from a new IPv6 source in a /32"
        default:
            let isV6 = mode == FG_FLOOD_RANDOM_V6
            return "INVITEs from random \(isV6 ? "IPv6" : "IPv4") sources in a /\((isV6 ? 128 : 32) - Int(randomBits))"
        }
    }

    public static let names = ["single-source", "register-scanner", "invite", "options-scan", "syn-5061", "rtp",
                               "random-v4-/24", "random-v4-/16", "random-v6-/64", "worst-case"]

    /// The attack's sources as the oracle matches them: the frame's source with its random low bits masked.
    public var attackSources: fg_oracle_config {
        var c = fg_oracle_config()
        let isV6 = mode == FG_FLOOD_RANDOM_V6
        let offset = isV6 ? 14 + 8 : 14 + 12
        let length = isV6 ? 16 : 4
        let fixedBits = length * 8 - Int(randomBits)
        var net = [UInt8](repeating: 0, count: 16)
        var mask = [UInt8](repeating: 0, count: 16)
        for i in 0..<length {
            let bits = max(0, min(8, fixedBits - 8 * i))
            mask[i] = bits == 0 ? 0 : UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
            net[i] = frame[offset + i] & mask[i]
        }
        func word(_ b: [UInt8], _ i: Int) -> UInt32 {  // the bytes as they lie in memory (network order)
            UInt32(b[4 * i]) | UInt32(b[4 * i + 1]) << 8 | UInt32(b[4 * i + 2]) << 16 | UInt32(b[4 * i + 3]) << 24
        }
        if isV6 {
            c.v6_net = (word(net, 0), word(net, 1), word(net, 2), word(net, 3))
            c.v6_mask = (word(mask, 0), word(mask, 1), word(mask, 2), word(mask, 3))
        } else {
            c.v4_net = word(net, 0)
            c.v4_mask = word(mask, 0)
        }
        return c
    }

    /// Frames per second at most (nil: as fast as the generator goes): a paced flood offers a receiver a rate it
    /// can be measured against without overrunning its ring (``FloodResult/highestLosslessRate``).
    public var offeredPPS: Double?

    var config: fg_flood_config {
        var c = fg_flood_config()
        c.mode = mode.rawValue
        let isV6 = mode == FG_FLOOD_RANDOM_V6
        c.src_offset = UInt32(isV6 ? 14 + 8 : 14 + 12)
        c.csum_offset = 14 + 10
        c.random_bits = randomBits
        c.interval_ns = offeredPPS.map { UInt64(max(1, (1e9 / $0).rounded())) } ?? 0
        c.next_ns = 0
        return c
    }
}

/// A lab program and its one configuration map, loaded from its embedded object.
final class LoadedObject: @unchecked Sendable {
    let object: BPFObject
    private let map: String
    let programFD: Int32

    init(_ embedded: (size: Int, base64: String), what: String, program: String, map: String) throws {
        object = try BPFObject(embedded, what: what)
        programFD = try object.programFD(program)
        self.map = map
    }

    func configure<T: BitwiseCopyable>(_ value: T, what: String) throws {
        try object.configure(map: map, with: value)
    }
}

/// The flood generator: an XDP program run with BPF_PROG_TEST_RUN in live-frames mode on a veth end, which
/// rewrites each frame's source and transmits it (XDP_TX) to the peer. Loads `BPF/lab/flood.bpf.c` as embedded.
/// Where the kernel refuses live frames, the frames go through a packet socket instead (``GeneratorKind``).
public final class FloodGenerator: @unchecked Sendable {
    private let loaded: LoadedObject
    /// The program for a fixed frame, which only transmits it.
    private let fixedFD: Int32

    public init() throws {
        loaded = try LoadedObject(EmbeddedBPFObject.flood, what: "flood generator", program: FG_FLOOD_PROG_NAME,
                                  map: FG_MAP_FLOOD_CONFIG)
        fixedFD = try loaded.object.programFD(FG_FLOOD_FIXED_PROG_NAME)
    }

    /// Frames per live-frames batch: the most the kernel takes (TEST_XDP_MAX_BATCH).
    public static let batch: UInt32 = 256

    /// The errors with which a kernel refuses the live-frames test run as such (a security module's policy, a test
    /// run it does not have): with no generator asked for, the flood then goes through a packet socket. Any other
    /// error, and any error of what comes before or after that call, is the flood's own and is thrown.
    static let refusals: Set<Int32> = [EPERM, EACCES, EOPNOTSUPP, 524 /* ENOTSUPP, the kernel's own */]

    /// The live-frames test run's own refusal, told apart from the errors around it.
    private struct LiveFramesRefusal: Error {
        let error: FloodgateError
    }

    /// Sends `count` frames of `scenario` (live frames: at most 2^32 - 1) out of `interface` (of the namespace `ns`)
    /// until all are sent or `seconds` have passed; `progress` is called about four times a second with the seconds
    /// so far. With `cpu`, the sending thread is pinned to that CPU. Returns the frames sent, the seconds taken, and
    /// how.
    ///
    /// `generator` nil: live frames, or a packet socket if the kernel refuses them (said in the result).
    ///
    /// Live frames go in one test run, not in chunks: each BPF_PROG_TEST_RUN in live-frames mode sets up a page
    /// pool and, at its end, waits about 25 ms (an RCU grace period) to tear it down, with the CPU idle — on this
    /// VM, 1,000,000-frame chunks lost 13% of the flood's time to that. The run ends at `seconds` by a signal
    /// that interrupts it (the kernel checks between batches of 256 frames). What they sent is what the interface
    /// transmitted, from its counters; through a packet socket, what the socket took.
    public func run(
        _ scenario: FloodScenario, interface: String, namespace ns: String, count: UInt64, seconds: Double,
        cpu: Int? = nil, generator: GeneratorKind? = nil, progress: (@Sendable (Double) -> Void)? = nil
    ) throws -> FloodSent {
        try KernelCalls.installInterruptSignal()
        var refused: String?
        if generator != .packetSocket {
            do {
                let (sent, elapsed) = try sendLiveFrames(scenario, interface: interface, namespace: ns, count: count,
                                                         seconds: seconds, cpu: cpu, progress: progress)
                return FloodSent(sent: sent, seconds: elapsed, generator: .liveFrames)
            } catch let refusal as LiveFramesRefusal {
                guard generator == nil else { throw refusal.error }
                refused = "\(refusal.error)"
            }
        }
        do {
            let (sent, elapsed) = try inFloodThread(interface: interface, namespace: ns, seconds: seconds, cpu: cpu,
                                                    progress: progress) { ifindex, deadline in
                try FloodGenerator.sendThroughPacketSocket(scenario, ifindex: ifindex, interface: interface,
                                                           count: count, deadline: deadline)
            }
            return FloodSent(sent: sent, seconds: elapsed, generator: .packetSocket, liveFramesRefused: refused)
        } catch {
            guard let refused else { throw error }
            throw FloodgateError("live frames refused (\(refused)), and then \(error)")
        }
    }

    private func sendLiveFrames(
        _ scenario: FloodScenario, interface: String, namespace ns: String, count: UInt64, seconds: Double,
        cpu: Int?, progress: (@Sendable (Double) -> Void)?
    ) throws -> (sent: UInt64, seconds: Double) {
        try loaded.configure(scenario.config, what: "flood generator")
        // A fixed frame needs no rewriting: its program does no lookup per frame (unless it is paced).
        let fd = scenario.randomSources || scenario.offeredPPS != nil ? loaded.programFD : fixedFD
        let frame = scenario.frame
        let before = try vethTransmitted(interface, namespace: ns)
        let elapsed = try inFloodThread(interface: interface, namespace: ns, seconds: seconds, cpu: cpu,
                                        progress: progress) { ifindex, _ in
            let n = UInt32(min(count, UInt64(UInt32.max)))
            // Cut short by the deadline, or all sent; either way the interface's counters say how many went.
            do {
                _ = try KernelCalls.testRunLive(programFD: fd, frame: frame, ifindex: ifindex, count: n,
                                                batch: FloodGenerator.batch, what: "generate \(n) frames on \(interface)")
            } catch let error as FloodgateError where error.errno.map(FloodGenerator.refusals.contains) == true {
                throw LiveFramesRefusal(error: error)
            }
        }.seconds
        return (try vethTransmitted(interface, namespace: ns) - before, elapsed)
    }

    /// Runs `send` in `ns` with the interface's index, the thread pinned to `cpu` (if given) and open to the
    /// signal with which `seconds` end it; what it returned and the seconds it took.
    private func inFloodThread<T>(
        interface: String, namespace ns: String, seconds: Double, cpu: Int?,
        progress: (@Sendable (Double) -> Void)?, _ send: @escaping (UInt32, Deadline) throws -> T
    ) throws -> (T, seconds: Double) {
        try NetworkLab.inNamespace(ns) {
            if let cpu { try KernelCalls.pinCurrentThread(toCPU: cpu, what: "pin the flood generator to CPU \(cpu)") }
            let ifindex = if_nametoindex(interface)
            guard ifindex != 0 else { throw FloodgateError("no interface \(interface) in \(ns)") }
            return try KernelCalls.interruptible {
                let deadline = Deadline(seconds: seconds, thread: UInt(pthread_self()), progress: progress)
                defer { deadline.finish() }
                let result = try send(ifindex, deadline)
                return (result, deadline.elapsed)
            }
        }
    }
}

/// Ends a flood at its time: a thread that wakes every 50 ms, reports progress, and once `seconds` have passed
/// marks it expired and interrupts the generating thread's system call (the test run, or a send), again every 5 ms
/// until ``finish()`` (a signal that lands between two system calls is lost; the next one is not).
final class Deadline: @unchecked Sendable {
    private let lock = NSLock()
    private var done = false
    private var expired = false
    private let start = monotonicNanoseconds()
    private let finished = DispatchGroup()

    init(seconds: Double, thread: UInt, progress: (@Sendable (Double) -> Void)?) {
        finished.enter()
        Thread { [self] in
            defer { finished.leave() }
            var lastProgress = 0.0
            while true {
                let now = elapsed
                lock.lock()
                if now >= seconds { expired = true }
                let stop = done, interrupt = expired
                lock.unlock()
                if stop { return }
                if interrupt {
                    KernelCalls.interrupt(thread: thread)
                    usleep(5_000)
                    continue
                }
                if now - lastProgress >= 0.25 {
                    progress?(now)
                    lastProgress = now
                }
                usleep(UInt32(min(50_000, max(1_000, (seconds - now) * 1e6))))
            }
        }.start()
    }

    var elapsed: Double { Double(monotonicNanoseconds() - start) / 1e9 }

    /// Whether its time has passed (a sender that makes many system calls checks it between them).
    var isExpired: Bool {
        lock.lock()
        defer { lock.unlock() }
        return expired
    }

    /// Stops the thread and waits for it, so no signal reaches the generating thread after this returns.
    func finish() {
        lock.lock()
        done = true
        lock.unlock()
        finished.wait()
    }
}

/// The frames a veth end has transmitted from XDP (`ethtool -S`: its `xdp_xmit`, and `xdp_xmit_errors`, the
/// frames it took but its peer's ring had no room for).
public func vethTransmitted(_ interface: String, namespace ns: String) throws -> UInt64 {
    let out = try NetworkLab.run(["ip", "netns", "exec", ns, "ethtool", "-S", interface])
    var sent: UInt64 = 0
    for line in out.split(separator: "\n") {
        let parts = line.split(separator: ":").map { $0.trimmingCharacters(in: .whitespaces) }
        guard parts.count == 2, let value = UInt64(parts[1]) else { continue }
        if parts[0].hasSuffix("_xdp_xmit") || parts[0].hasSuffix("_xdp_xmit_errors") { sent += value }
    }
    return sent
}

/// The XDP receive counters of a veth end (`ethtool -S`): frames its XDP program saw, and dropped.
public func vethXDPCounters(_ interface: String, namespace ns: String) throws -> (packets: UInt64, drops: UInt64) {
    let out = try NetworkLab.run(["ip", "netns", "exec", ns, "ethtool", "-S", interface])
    var packets: UInt64 = 0
    var drops: UInt64 = 0
    for line in out.split(separator: "\n") {
        let parts = line.split(separator: ":").map { $0.trimmingCharacters(in: .whitespaces) }
        guard parts.count == 2, let value = UInt64(parts[1]) else { continue }
        if parts[0].hasSuffix("_xdp_packets") { packets += value }
        if parts[0].hasSuffix("_xdp_drops") { drops += value }
    }
    return (packets, drops)
}

/// The speed ceiling: an XDP program of two instructions, `r0 = XDP_DROP; exit` (`bpf_prog_load`); with
/// `action: 2` it passes everything instead (XDP_PASS), for peers that filter in the stack.
public final class TrivialDropProgram: @unchecked Sendable {
    public let programFD: Int32

    public init(action: UInt32 = 1, touching: Bool = false) throws {
        // struct bpf_insn, little-endian: opcode, dst/src registers, offset, immediate.
        func insn(_ op: UInt64, dst: UInt64 = 0, src: UInt64 = 0, off: Int16 = 0, imm: Int32 = 0) -> UInt64 {
            op | (dst | src << 4) << 8 | UInt64(UInt16(bitPattern: off)) << 16 | UInt64(UInt32(bitPattern: imm)) << 32
        }
        var instructions: [UInt64] = []
        if touching {
            // Reads the first byte of the frame and the byte 42 on (a SIP request's method, over UDP/IPv4) before
            // the verdict: what every filter pays to look at a packet at all.
            instructions += [
                insn(0x61, dst: 2, src: 1, off: 0),  // r2 = ctx->data
                insn(0x61, dst: 3, src: 1, off: 4),  // r3 = ctx->data_end
                insn(0xBF, dst: 4, src: 2),  // r4 = r2
                insn(0x07, dst: 4, imm: 43),  // r4 += 43
                insn(0x2D, dst: 4, src: 3, off: 2),  // if r4 > r3 goto +2
                insn(0x71, dst: 5, src: 2, off: 0),  // r5 = *(u8 *)(r2 + 0)
                insn(0x71, dst: 5, src: 2, off: 42),  // r5 = *(u8 *)(r2 + 42)
            ]
        }
        instructions += [
            insn(0xB7, imm: Int32(action)),  // BPF_ALU64 | BPF_MOV | BPF_K: r0 = action
            insn(0x95),  // BPF_JMP | BPF_EXIT
        ]
        programFD = try KernelCalls.loadXDP(instructions: instructions, name: touching ? "touch_drop" : "trivial_drop")
    }

    deinit { close(programFD) }

    /// Attaches it in native mode to `interface` of namespace `ns`; closing the returned descriptor detaches it.
    public func attach(_ interface: String, namespace ns: String) throws -> Int32 {
        try attachNative(programFD, to: interface, namespace: ns, what: "the trivial program")
    }
}

/// The benchmark's oracle (`BPF/lab/oracle.bpf.c`): drops exactly the attack sources of a scenario and passes all
/// else — the best a filter could do for legitimate traffic beside that flood.
public final class OracleProgram: @unchecked Sendable {
    private let loaded: LoadedObject

    /// An oracle for `scenario`: its source address with the randomised low bits masked off.
    public init(for scenario: FloodScenario) throws {
        loaded = try LoadedObject(EmbeddedBPFObject.oracle, what: "oracle program", program: FG_ORACLE_PROG_NAME,
                                  map: FG_MAP_ORACLE_CONFIG)
        try loaded.configure(scenario.attackSources, what: "oracle program")
    }

    /// Its verdict on one frame (`BPF_PROG_TEST_RUN`).
    public func verdict(_ frame: [UInt8]) throws -> UInt32 {
        try FloodgateProgram.testRun(programFD: loaded.programFD, packet: frame).action
    }

    /// Its program, for `BPF_PROG_TEST_RUN` (the cost benchmark's oracle row).
    public var programFD: Int32 { loaded.programFD }

    /// Attaches it in native mode to `interface` of namespace `ns`; closing the returned descriptor detaches it.
    public func attach(_ interface: String, namespace ns: String) throws -> Int32 {
        try attachNative(loaded.programFD, to: interface, namespace: ns, what: "the oracle program")
    }
}

/// The cost benchmark's floors (`BPF/lab/floor.bpf.c`): a minimal cached drop — the packet's key read, one per-CPU
/// slot looked up and its whole key compared, its packets and bytes counted — and nothing a real filter needs
/// beside it. A packet's first run on a CPU fills its slot and passes; the runs after it drop. A new source's
/// floor (``init(newSourcesIn:)``). And the floods' floor (``init(holding:)``), attached like the oracle.
public final class FloorProgram: @unchecked Sendable {
    /// What the slot is keyed by.
    public enum Key: Sendable {
        /// The source address alone (a ban's or a denial's drop).
        case source
        /// The source, the UDP destination port and the payload's first four bytes (a class's drop: a SIP method is
        /// named there).
        case sourceAndClass
    }

    private let object: BPFObject
    public let programFD: Int32

    public init(_ key: Key) throws {
        object = try BPFObject(EmbeddedBPFObject.floor, what: "floor program")
        programFD = try object.programFD(key == .source ? FG_FLOOR_SOURCE_PROG_NAME : FG_FLOOR_CLASS_PROG_NAME)
    }

    /// The new-source floor: a lookup that misses and an insert, in an LRU hash of the filter's source map's shape
    /// and of `entries` entries (the filter's), empty at first. A new source passes; one the map has drops.
    public init(newSourcesIn entries: UInt32) throws {
        object = try BPFObject(EmbeddedBPFObject.floor, what: "floor program") { object in
            try BPFObject.resize(object, map: FG_FLOOR_NEW_SOURCE_MAP, to: entries)
        }
        programFD = try object.programFD(FG_FLOOR_NEW_SOURCE_PROG_NAME)
    }

    /// The floods' floor for `scenario` (`floodgate_floor_held`): the oracle's knowledge of the attack, the network
    /// of its sources, held on every CPU under the floor's policy for as long as the flood lasts; each UDP datagram
    /// to port 5060 from it is dropped after the checks and the count a filter keeping state must make (lab.h).
    public init(holding scenario: FloodScenario) throws {
        object = try BPFObject(EmbeddedBPFObject.floor, what: "floor program")
        programFD = try object.programFD(FG_FLOOR_HELD_PROG_NAME)
        try hold(scenario)
    }

    /// Holds `scenario`'s network on every CPU, made under policy generation `generation` and ending at jiffy
    /// `until`, with the policy at `policyGeneration` (by default a hold that lasts, under the policy it was made
    /// under); every CPU's count starts again at 0. It drops only while `until` is ahead of the clock and the two
    /// generations are equal: a test's way to end the hold.
    public func hold(_ scenario: FloodScenario, until: UInt64 = .max, generation: UInt32 = 1,
                     policyGeneration: UInt32 = 1) throws {
        let attack = scenario.attackSources
        var held = fg_floor_held()
        held.until_jiffies = until
        held.generation = generation
        if scenario.isIPv6 {
            held.network = (attack.v6_net.0, attack.v6_net.1, attack.v6_net.2, attack.v6_net.3)
            held.mask = (attack.v6_mask.0, attack.v6_mask.1, attack.v6_mask.2, attack.v6_mask.3)
        } else {
            held.network = (0, 0, UInt32(0xFFFF).bigEndian, attack.v4_net)
            held.mask = (.max, .max, .max, attack.v4_mask)
        }
        try object.configure(map: FG_FLOOR_POLICY_MAP, with: fg_floor_policy(
            generation: policyGeneration, sip_port: UInt16(5060).bigEndian, reserved: 0))
        try object.configureEveryCPU(map: FG_FLOOR_HELD_MAP, with: held)
    }

    /// What the floods' floor dropped (``init(holding:)``), summed over CPUs: packets and bytes.
    public func heldDrops() throws -> (packets: UInt64, bytes: UInt64) {
        try object.everyCPU(map: FG_FLOOR_HELD_MAP, as: fg_floor_held.self).reduce((0, 0)) {
            ($0.0 + $1.packets, $0.1 + $1.bytes)
        }
    }

    /// Attaches it in native mode to `interface` of namespace `ns`; closing the returned descriptor detaches it.
    public func attach(_ interface: String, namespace ns: String) throws -> Int32 {
        try attachNative(programFD, to: interface, namespace: ns, what: "the floor program")
    }
}

/// Attaches the XDP program `fd` in native mode to `interface` of namespace `ns` (a lab program: the trivial one, the
/// oracle, the floor); closing the returned descriptor detaches it.
func attachNative(_ fd: Int32, to interface: String, namespace ns: String, what: String) throws -> Int32 {
    try NetworkLab.inNamespace(ns) {
        try KernelCalls.attachXDPNative(programFD: fd, ifindex: Int32(if_nametoindex(interface)),
                                        what: "\(what) to \(interface)")
    }
}
