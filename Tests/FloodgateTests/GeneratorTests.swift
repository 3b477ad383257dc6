import CLabLayouts
import FloodgateCore
@testable import FloodgateLab
import Foundation
import Testing

/// The lab's flood generator where the kernel refuses live frames: the frames go through a packet socket, their
/// sources rewritten as the live-frames program rewrites them, paced as it paces them, and the report says so.
@Suite struct GeneratorTests {
    typealias FloodJSON = IntegrationTests.FloodJSON

    /// Every rewritten source keeps the scenario's fixed bits and every other byte of the frame, each of its random
    /// bits is seen both ways, the sources differ, and an IPv4 header's checksum is right again. A fixed scenario,
    /// and a bit count the live-frames program would not take, leave the frame as it was.
    @Test(arguments: ["random-v4-/24", "random-v4-/16", "random-v4-/20", "random-v4-/31", "random-v6-/64",
                      "random-v6-/100", "worst-case"])
    func aRewrittenSourceKeepsItsRangeAndItsChecksum(name: String) throws {
        let scenario = try FloodScenario.named(name)
        let config = scenario.config
        let v4 = config.mode == FG_FLOOD_RANDOM_V4.rawValue
        let offset = Int(config.src_offset), length = v4 ? 4 : 16, bits = Int(config.random_bits)
        let original = scenario.frame
        var random = SplitMix64(seed: 7)
        var sources = Set<[UInt8]>()
        var seen = [[Bool]](repeating: [false, false], count: bits)
        for _ in 0..<2_000 {
            var frame = original
            frame.withUnsafeMutableBytes { FrameBatch.randomizeSource($0, config, using: &random) }
            let source = Array(frame[offset..<(offset + length)])
            sources.insert(source)
            for bit in 0..<(length * 8) {
                let byte = offset + length - 1 - bit / 8, mask = UInt8(1 << (bit % 8))
                if bit < bits {
                    seen[bit][frame[byte] & mask == 0 ? 0 : 1] = true
                } else {
                    #expect(frame[byte] & mask == original[byte] & mask, "\(name): fixed bit \(bit)")
                }
            }
            // Every other byte as it was (the IPv4 header's checksum aside).
            let checksum = Int(config.csum_offset)
            var others = frame, originals = original
            if v4 { (others[checksum], others[checksum + 1]) = (originals[checksum], originals[checksum + 1]) }
            others.replaceSubrange(offset..<(offset + length), with: [])
            originals.replaceSubrange(offset..<(offset + length), with: [])
            #expect(others == originals, "\(name): a byte that is not the source's")
            if v4 {
                var sum: UInt32 = 0
                for i in stride(from: 14, to: 34, by: 2) { sum += UInt32(frame[i]) << 8 | UInt32(frame[i + 1]) }
                while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
                #expect(sum == 0xFFFF, "\(name): the IPv4 header checksum")
            }
        }
        #expect(seen.allSatisfy { $0 == [true, true] }, "\(name): every random bit both ways")
        // 2,000 draws of M values give M (1 - (1 - 1/M)^2000) distinct ones on average (all 256 of a /24, about 1,583
        // of a /20's 4,096, 1,999.97 of 2^64), within a percent or so: 95% of it, a test that fails only when the
        // draws are not uniform.
        let values = pow(2, Double(bits)), expected = values * -expm1(2_000 * log1p(-1 / values))
        #expect(Double(sources.count) >= (0.95 * expected).rounded(.up), "\(name): \(sources.count) sources")

        let single = try FloodScenario.named("single-source")
        var fixed = single.frame
        fixed.withUnsafeMutableBytes { FrameBatch.randomizeSource($0, single.config, using: &random) }
        let before = single.frame
        #expect(fixed == before)
        for wrong in [UInt32(0), v4 ? 33 : 97] {
            var bad = config
            bad.random_bits = wrong
            var frame = original
            frame.withUnsafeMutableBytes { FrameBatch.randomizeSource($0, bad, using: &random) }
            #expect(frame == original, "\(name): \(wrong) random bits")
        }
        var short = Array(original[0..<(offset + length - 1)])
        let cut = short
        short.withUnsafeMutableBytes { FrameBatch.randomizeSource($0, config, using: &random) }
        #expect(short == cut, "\(name): a frame cut inside its source")
    }

    /// The pace, on a clock the test moves: one frame an interval however often it is asked, and after a pause a
    /// catch-up burst no longer than the slack.
    @Test func aPacedScheduleSendsOneFrameAnIntervalAndCatchesUpOnlyBriefly() {
        let interval: UInt64 = 5_000  // 0.2 Mpps
        var pace = Pace(interval: interval)
        var sent = 0
        var now: UInt64 = 1_000_000
        let start = now
        while now < start + 1_000_000_000 {
            let n = pace.due(at: now, wanted: 256)
            pace.sent(n)
            sent += n
            now += 700
        }
        // A second at 0.2 Mpps: 200,000, and the first frame and the slack's at most.
        #expect(sent >= 199_000 && sent <= 200_000 + 1 + Int(FG_FLOOD_PACE_SLACK_NS) / Int(interval), "\(sent)")
        #expect(pace.due(at: now, wanted: 256) <= 1)
        // Behind by 15 µs, within the slack: the three frames it owes, and the one due now.
        var behind = Pace(interval: interval)
        now = 1_000_000
        #expect(behind.due(at: now, wanted: 256) == 1)
        behind.sent(1)
        #expect(behind.due(at: now + 4_999, wanted: 256) == 0 && behind.wait(at: now + 4_999) == 1)
        now += 5_000 + 15_000
        #expect(behind.due(at: now, wanted: 256) == 4)
        #expect(behind.due(at: now, wanted: 2) == 2, "never more than wanted")
        behind.sent(4)
        #expect(behind.due(at: now, wanted: 256) == 0, "the catch-up spent, nothing is due until the next interval")
        // Behind by 10 ms, past the slack: the schedule starts over from now, one frame.
        now += 10_000_000
        #expect(behind.due(at: now, wanted: 256) == 1)
    }

    /// A process the kernel refuses live frames (a seccomp filter fails its BPF_PROG_TEST_RUN with EPERM, as a
    /// security module's policy did on a CI machine): `floodgate flood` sends through a packet socket, says why,
    /// and the flood reaches the filter and is dropped. Asked for live frames, it fails with the kernel's error.
    @Test func aFloodRefusedLiveFramesGoesThroughAPacketSocket() throws {
        try requireRoot()
        let result = try refusingTestRuns([floodgateBinary, "flood", "--scenario", "single-source", "--packets", "200000",
                                           "--json"])
        #expect(result.status == 0, "\(result.err)")
        let flood = try JSONDecoder().decode(FloodJSON.self, from: Data(result.out.utf8))
        #expect(flood.generator == "packet-socket")
        #expect(flood.liveFramesRefused?.contains("Operation not permitted (EPERM)") == true, "\(flood)")
        #expect(result.err.contains("live frames refused"), "\(result.err)")
        #expect(flood.sent == 200_000, "\(flood)")
        #expect(flood.processed <= flood.sent && flood.processed >= flood.sent - flood.sent / 10, "\(flood)")
        #expect(flood.dropped + 16 + 8 * 10 >= flood.processed && flood.dropped < flood.processed, "\(flood)")

        let asked = try refusingTestRuns([floodgateBinary, "flood", "--scenario", "single-source", "--packets", "1000",
                                          "--generator", "live-frames", "--json"])
        #expect(asked.status != 0 && asked.err.contains("Operation not permitted (EPERM)"), "\(asked.err)")
        #expect(asked.out.isEmpty)
        let bad = try run([floodgateBinary, "flood", "--generator", "pktgen"])
        #expect(bad.status != 0 && bad.err.contains("--generator"), "\(bad.err)")
    }

    /// Through a packet socket, a paced random-source flood keeps to its rate, and every source stays in the
    /// scenario's /24: the oracle, which drops exactly those, drops every frame the filter saw.
    @Test func aPacedPacketSocketFloodKeepsToItsRateAndItsSources() throws {
        try requireRoot()
        let result = try run([floodgateBinary, "flood", "--scenario", "random-v4-/24", "--filter", "oracle",
                              "--generator", "packet-socket", "--packets", "10000000", "--seconds", "1",
                              "--mpps", "0.1", "--json"])
        #expect(result.status == 0, "\(result.err)")
        let flood = try JSONDecoder().decode(FloodJSON.self, from: Data(result.out.utf8))
        #expect(flood.generator == "packet-socket" && flood.liveFramesRefused == nil, "\(flood)")
        #expect(Double(flood.sent) <= 0.1e6 * flood.seconds + 1_000, "\(flood)")
        #expect(flood.sent >= 10_000, "\(flood)")
        #expect(flood.processed <= flood.sent && flood.processed >= flood.sent - flood.sent / 10, "\(flood)")
        #expect(flood.dropped == flood.processed, "\(flood)")
    }

    /// Runs `command` with every BPF_PROG_TEST_RUN of its process failing with EPERM: a seccomp filter (classic
    /// BPF on bpf(2)'s number and first argument) that a Python wrapper installs before it execs the command.
    func refusingTestRuns(_ command: [String]) throws -> (status: Int32, out: String, err: String) {
        let wrapper = """
            import ctypes, os, struct, sys
            AUDIT_ARCH_X86_64, NR_BPF, BPF_PROG_TEST_RUN, EPERM = 0xC000003E, 321, 10, 1
            RET, LD_W_ABS, JEQ_K, ALLOW, ERRNO = 0x06, 0x20, 0x15, 0x7FFF0000, 0x00050000
            def insn(code, jt, jf, k): return struct.pack("HBBI", code, jt, jf, k)
            # seccomp_data: nr at 0, arch at 4, args[0] (its low half) at 16.
            program = b"".join([
                insn(LD_W_ABS, 0, 0, 4), insn(JEQ_K, 1, 0, AUDIT_ARCH_X86_64), insn(RET, 0, 0, ALLOW),
                insn(LD_W_ABS, 0, 0, 0), insn(JEQ_K, 0, 3, NR_BPF),
                insn(LD_W_ABS, 0, 0, 16), insn(JEQ_K, 0, 1, BPF_PROG_TEST_RUN), insn(RET, 0, 0, ERRNO | EPERM),
                insn(RET, 0, 0, ALLOW)])
            filters = ctypes.create_string_buffer(program)
            fprog = ctypes.create_string_buffer(struct.pack("HxxxxxxQ", len(program) // 8, ctypes.addressof(filters)))
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
            PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
            if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) or libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER,
                                                                        ctypes.addressof(fprog), 0, 0):
                sys.exit("seccomp: " + os.strerror(ctypes.get_errno()))
            os.execv(sys.argv[1], sys.argv[1:])
            """
        #if arch(x86_64)
        return try run(["/usr/bin/python3", "-c", wrapper] + command)
        #else
        throw FloodgateError("the seccomp filter names x86-64's bpf(2) and architecture: \(wrapper.count)")
        #endif
    }
}
