import CLabLayouts
import FloodgateCore
import Foundation

/// How the lab's generator puts its frames on the veth.
public enum GeneratorKind: String, CaseIterable, Codable, Sendable, CustomStringConvertible {
    /// XDP_TX from BPF_PROG_TEST_RUN in live-frames mode (`BPF/lab/flood.bpf.c`): frames from the kernel's page pool,
    /// no socket buffer, several million a second from one CPU.
    case liveFrames = "live-frames"
    /// `sendmmsg(2)` on an AF_PACKET socket past the qdisc, the sources rewritten here: a socket buffer per frame,
    /// under a million a second from one CPU. What the generator falls back to where the kernel refuses live frames
    /// (``FloodGenerator/refusals``: a security module's policy, say).
    case packetSocket = "packet-socket"

    public var description: String { rawValue }
}

/// What a flood sent: its frames, its seconds, and how they went out.
public struct FloodSent: Sendable {
    public var sent: UInt64
    public var seconds: Double
    /// How its frames went out.
    public var generator: GeneratorKind
    /// When live frames were wanted but the kernel refused them: its refusal (the flood went through a packet
    /// socket instead).
    public var liveFramesRefused: String?
}

/// The frames one `sendmmsg(2)` sends: a fixed frame once (sent again and again), or ``KernelCalls/sendBatch`` copies
/// whose sources are rewritten before each send as the live-frames program rewrites them (`fg_flood_config`): the
/// low `random_bits` of the source random, and an IPv4 header's checksum made right again. As there, the UDP or
/// TCP checksum, which covers the source, is left as it was.
final class FrameBatch {
    let size: Int
    /// Bytes from one frame to the next: 0 for a fixed frame (one copy).
    let spacing: Int
    private let config: fg_flood_config
    private let buffer: UnsafeMutableRawBufferPointer
    private var random = SplitMix64(seed: UInt64.random(in: 0...UInt64.max))

    init(_ scenario: FloodScenario) {
        size = scenario.frame.count
        config = scenario.config
        spacing = scenario.randomSources ? (size + 63) & ~63 : 0
        buffer = .allocate(byteCount: max(size, spacing * KernelCalls.sendBatch), alignment: 64)
        for i in 0..<(spacing == 0 ? 1 : KernelCalls.sendBatch) {
            UnsafeMutableRawBufferPointer(rebasing: buffer[(i * spacing)..<(i * spacing + size)])
                .copyBytes(from: scenario.frame)
        }
    }

    deinit { buffer.deallocate() }

    var base: UnsafeRawPointer { UnsafeRawPointer(buffer.baseAddress!) }

    /// Gives the first `count` frames new sources (nothing for a fixed frame).
    func rewrite(_ count: Int) {
        guard spacing != 0 else { return }
        for i in 0..<count {
            let frame = UnsafeMutableRawBufferPointer(rebasing: buffer[(i * spacing)..<(i * spacing + size)])
            FrameBatch.randomizeSource(frame, config, using: &random)
        }
    }

    /// Sets the low `config.random_bits` of the source address at `config.src_offset` (4 bytes for
    /// `FG_FLOOD_RANDOM_V4`, 16 for `FG_FLOOD_RANDOM_V6`) to random values and, for IPv4, recomputes the header
    /// checksum at `config.csum_offset` (the header starting 10 bytes before it). A frame too short for either, a
    /// fixed mode or a bit count out of range is left as it is — as the live-frames program leaves it.
    static func randomizeSource(_ frame: UnsafeMutableRawBufferPointer, _ config: fg_flood_config,
                                using random: inout some RandomNumberGenerator)
    {
        let v4 = config.mode == FG_FLOOD_RANDOM_V4.rawValue
        guard v4 || config.mode == FG_FLOOD_RANDOM_V6.rawValue else { return }
        let length = v4 ? 4 : 16, bits = Int(config.random_bits), offset = Int(config.src_offset)
        guard bits >= 1, bits <= (v4 ? 32 : 96), offset + length <= frame.count else { return }
        let header = Int(config.csum_offset) - 10
        if v4 {
            guard header >= 0, header + 20 <= frame.count, header + Int(frame[header] & 0x0F) * 4 <= frame.count else {
                return
            }
        }
        var word = random.next(), left = 64, remaining = bits
        for i in stride(from: offset + length - 1, through: offset, by: -1) where remaining > 0 {
            if left < 8 { (word, left) = (random.next(), 64) }
            let take = min(8, remaining)
            let mask = UInt8(truncatingIfNeeded: (1 << take) - 1)
            frame[i] = (frame[i] & ~mask) | (UInt8(truncatingIfNeeded: word) & mask)
            word >>= 8
            left -= 8
            remaining -= take
        }
        if v4 {
            frame[header + 10] = 0
            frame[header + 11] = 0
            var sum: UInt32 = 0
            for i in stride(from: header, to: header + Int(frame[header] & 0x0F) * 4, by: 2) {
                sum += UInt32(frame[i]) << 8 | UInt32(frame[i + 1])
            }
            while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
            frame[header + 10] = UInt8(truncatingIfNeeded: ~sum >> 8)
            frame[header + 11] = UInt8(truncatingIfNeeded: ~sum)
        }
    }
}

/// A paced flood's schedule, as the live-frames program keeps it: a frame may go once its time has come, one every
/// `interval` nanoseconds; fallen behind by more than ``FG_FLOOD_PACE_SLACK_NS``, the schedule starts over from now
/// (so a catch-up burst is at most that long).
struct Pace {
    let interval: UInt64
    private var next: UInt64 = 0

    init(interval: UInt64) { self.interval = max(1, interval) }

    /// How many of at most `wanted` frames may go at `now` (0: none yet).
    mutating func due(at now: UInt64, wanted: Int) -> Int {
        guard now >= next else { return 0 }
        if now - next > UInt64(FG_FLOOD_PACE_SLACK_NS) { next = now }
        return Int(min(UInt64(wanted), (now - next) / interval + 1))
    }

    /// Nanoseconds from `now` until the next frame is due (0: it is).
    func wait(at now: UInt64) -> UInt64 { next > now ? next - now : 0 }

    /// Books `count` frames sent.
    mutating func sent(_ count: Int) { next += UInt64(count) * interval }
}

/// SplitMix64 (Steele, Lea and Flood, 2014): random enough for source addresses, and cheap per frame; seeded, so
/// the tests' random runs can be replayed.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension FloodGenerator {
    /// Sends `count` frames of `scenario` through an AF_PACKET socket on interface `ifindex`
    /// (``GeneratorKind/packetSocket``), until all went or `deadline` expired; returns the frames the socket took. A
    /// frame the veth's peer ring has no room for is refused (ENOBUFS) and sent again once there is: the overflow
    /// holds the sender back rather than being lost, as live frames' is. Its caller has entered the namespace,
    /// pinned the thread and unblocked the deadline's signal. Throws if the socket took no frame at all.
    static func sendThroughPacketSocket(
        _ scenario: FloodScenario, ifindex: UInt32, interface: String, count: UInt64, deadline: Deadline
    ) throws -> UInt64 {
        let socket = try KernelCalls.openPacketSocket(ifindex: ifindex, what: "open a packet socket on \(interface)")
        defer { close(socket) }
        let frames = FrameBatch(scenario)
        var pace = scenario.offeredPPS.map { _ in Pace(interval: scenario.config.interval_ns) }
        var sent: UInt64 = 0
        while sent < count, !deadline.isExpired {
            var n = Int(min(UInt64(KernelCalls.sendBatch), count - sent))
            if pace != nil {
                let now = monotonicNanoseconds()
                n = pace!.due(at: now, wanted: n)
                if n == 0 {
                    // Far from due, sleep most of the way (the CPU is sipp's and the receive's too). Near it, spin
                    // as the live-frames program does: a yield on a busy CPU gives the rest of a time slice away, a
                    // slice far past the slack, and a loaded machine's paced flood fell to a frame a slice.
                    let wait = pace!.wait(at: now)
                    if wait > 100_000 { usleep(UInt32(min(wait - 50_000, 50_000_000) / 1_000)) }
                    continue
                }
            }
            frames.rewrite(n)
            let took = try KernelCalls.sendFrames(socket: socket, base: frames.base, size: frames.size,
                                                  stride: frames.spacing, count: n,
                                                  what: "send frames through a packet socket on \(interface)")
            if took == 0 { sched_yield() }
            pace?.sent(took)
            sent += UInt64(took)
        }
        if sent == 0 && count > 0 {
            throw FloodgateError("the packet socket on \(interface) took no frame before the flood's deadline",
                                 hint: "the device had no room for any (ENOBUFS): are the veth and its peer up?")
        }
        return sent
    }
}
