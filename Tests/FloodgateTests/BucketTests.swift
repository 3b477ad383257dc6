import CFloodgate
import FloodgateCore
import FloodgateLab
import Foundation
import Testing

/// The token buckets: burst, drop, refill, and what does and does not share tokens. Those that count tokens run
/// on the test clock, which moves only when told, so a pause of the test thread is not time the buckets refill in.
@Suite struct BucketTests {
    @Test func aBucketAdmitsItsBurstThenDropsThenAdmitsAfterRefill() throws {
        // On the test clock: the test thread's pauses are not the bucket's time.
        let program = try loadProgram(limits: [.options: .rate(10, burst: 5)], testClock: true)
        let packet = Packet.udp4(dport: 5060)
        let first = try (0..<8).map { _ in try program.verdict(packet) }
        #expect(first == Array(repeating: XDP_PASS_ACTION, count: 5) + Array(repeating: XDP_DROP_ACTION, count: 3))
        // 10/s refills one token per 100 ms: two whole tokens in 250 ms.
        try program.setTestClock(nanoseconds: 1_000_250_000_000)
        let after = try (0..<8).map { _ in try program.verdict(packet) }
        let admitted = after.prefix { $0 == XDP_PASS_ACTION }.count
        #expect(admitted == 2, "admitted \(admitted) after 250 ms at 10/s")
        #expect(after.dropFirst(admitted).allSatisfy { $0 == XDP_DROP_ACTION })

        let counters = try program.maps.counters().packets
        #expect(counters[.options, .passed] == UInt64(5 + admitted))
        #expect(counters[.options, .droppedRate] == UInt64(16 - 5 - admitted))
        let sources = try program.maps.sources()
        #expect(sources.count == 1)
        #expect(sources.first?.address.description == "198.18.1.1")
        #expect(sources.first?.packets == 16)
        #expect(sources.first?.drops == UInt64(16 - 5 - admitted))
    }

    @Test func twoClassesDoNotShareTokens() throws {
        let program = try loadProgram(limits: [.options: .rate(1, burst: 2), .rtp: .rate(1, burst: 3)], testClock: true)
        let sip = Packet.udp4(dport: 5060)
        let rtp = Packet.udp4(dport: 12000)
        #expect(try (0..<3).map { _ in try program.verdict(sip) } == [XDP_PASS_ACTION, XDP_PASS_ACTION, XDP_DROP_ACTION])
        #expect(try (0..<4).map { _ in try program.verdict(rtp) }
            == [XDP_PASS_ACTION, XDP_PASS_ACTION, XDP_PASS_ACTION, XDP_DROP_ACTION])
        #expect(try program.maps.sources().count == 2)
    }

    @Test func twoSourcesDoNotShareTokens() throws {
        let program = try loadProgram(limits: [.options: .rate(1, burst: 2)], testClock: true)
        let a = Packet.udp4(src: "198.18.1.1", dport: 5060)
        let b = Packet.udp4(src: "198.18.1.2", dport: 5060)
        let c = Packet.udp6(src: "2001:db8::1", dport: 5060)
        for packet in [a, b, c] {
            #expect(try (0..<3).map { _ in try program.verdict(packet) }
                == [XDP_PASS_ACTION, XDP_PASS_ACTION, XDP_DROP_ACTION])
        }
        let addresses = Set(try program.maps.sources().map(\.address.description))
        #expect(addresses == ["198.18.1.1", "198.18.1.2", "2001:db8::1"])
    }

    @Test func blockedClassesDropAndUnlimitedClassesAreNotTracked() throws {
        let program = try loadProgram(limits: [.options: .block, .rtp: .unlimited])
        #expect(try program.verdict(Packet.udp4(dport: 5060)) == XDP_DROP_ACTION)
        #expect(try program.verdict(Packet.udp4(dport: 5060)) == XDP_DROP_ACTION)
        for _ in 0..<100 { #expect(try program.verdict(Packet.udp4(dport: 12000)) == XDP_PASS_ACTION) }
        let sources = try program.maps.sources()
        #expect(sources.count == 1)
        #expect(sources.first?.trafficClass == .options)
        #expect(sources.first?.drops == 2)
        #expect(try program.maps.counters().packets[.options, .droppedBlocked] == 2)
    }

    @Test func aLimitChangeAppliesToTheNextPacket() throws {
        let program = try loadProgram(limits: [.options: .rate(1, burst: 1)], testClock: true)
        let packet = Packet.udp4(dport: 5060)
        #expect(try program.verdict(packet) == XDP_PASS_ACTION)
        #expect(try program.verdict(packet) == XDP_DROP_ACTION)
        try program.maps.setLimit(.unlimited, for: .options)
        #expect(try program.verdict(packet) == XDP_PASS_ACTION)
        try program.maps.setLimit(.block, for: .options)
        #expect(try program.verdict(packet) == XDP_DROP_ACTION)
        try program.maps.setLimit(.rate(1000, burst: 1000), for: .options)
        #expect(try program.maps.limit(for: .options) == .rate(1000, burst: 1000))
        // The bucket was empty under the old limit and stays so; the new rate refills it within 1 ms (20 ms on,
        // past the jiffy to which the drop caches the slot, 10 ms at HZ=100).
        #expect(try program.verdict(packet) == XDP_DROP_ACTION)
        try program.setTestClock(nanoseconds: 1_000_020_000_000)
        #expect(try program.verdict(packet) == XDP_PASS_ACTION)
    }

    @Test func aCachedDropEndsAsSoonAsTheLimitChanges() throws {
        // Burst 10 at 1/s banks far more than a jiffy of tokens, so drops go through the per-CPU drop cache.
        let program = try loadProgram(limits: [.options: .rate(1, burst: 10)], testClock: true)
        let packet = Packet.udp4(dport: 5060)
        for _ in 0..<10 { #expect(try program.verdict(packet) == XDP_PASS_ACTION) }
        for _ in 0..<5 { #expect(try program.verdict(packet) == XDP_DROP_ACTION) }
        try program.maps.setLimit(.unlimited, for: .options)
        #expect(try program.verdict(packet) == XDP_PASS_ACTION)
        try program.maps.setLimit(.rate(1, burst: 10), for: .options)
        #expect(try program.verdict(packet) == XDP_DROP_ACTION)
        try program.maps.setLimit(.rate(1, burst: 20), for: .options)
        // A larger burst: the bucket, not a stale cache slot, decides, and it has 10 more tokens.
        for _ in 0..<10 { #expect(try program.verdict(packet) == XDP_PASS_ACTION) }
        #expect(try program.verdict(packet) == XDP_DROP_ACTION)
    }

    /// A bucket that holds FG_COARSE_JIFFIES jiffies of tokens or more is judged at the coarse clock's time, any
    /// other at the precise clock's. The test clock's coarse time is set behind its precise time, by less than a
    /// jiffy as the kernel's is, with a token due between the two: which clock a bucket read shows in its verdict.
    @Test func aWideBucketIsJudgedAtTheCoarseClockANarrowOneAtThePreciseClock() throws {
        let t0: UInt64 = 1_000_000_000_000
        let jiffy = try coarseClockResolution()
        let due = t0 + 10_000_000  // the next token, 10 ms after a burst taken at t0
        let packet = Packet.udp4(dport: 5060)

        // 100/s, burst 100: a tolerance of 990 ms (16 jiffies are 160 ms at HZ 100).
        let wide = try loadProgram(limits: [.options: .rate(100, burst: 100)], policy: perSourceOnly, testClock: true)
        for _ in 0..<100 { #expect(try wide.verdict(packet) == XDP_PASS_ACTION) }
        #expect(try wide.verdict(packet) == XDP_DROP_ACTION)
        // Precise time at the jiffy the drop cache held the source to (the first at or after the token's), coarse
        // time just before the token's, less than a jiffy behind: refused.
        let held = (due + jiffy - 1) / jiffy * jiffy
        try wide.setTestClock(nanoseconds: held, coarseNanoseconds: due - 1_000)
        #expect(try wide.verdict(packet) == XDP_DROP_ACTION)
        // A jiffy on, the coarse clock half a jiffy behind, past the token's time: the token is there.
        try wide.setTestClock(nanoseconds: held + jiffy, coarseNanoseconds: held + jiffy / 2)
        #expect(try wide.verdict(packet) == XDP_PASS_ACTION)
        #expect(try wide.verdict(packet) == XDP_DROP_ACTION)

        // 100/s, burst 1: no tolerance. Admitted at t0, its next packet is due at t0 + 10 ms, and the precise clock
        // says so whatever the coarse one reads.
        let narrow = try loadProgram(limits: [.options: .rate(100, burst: 1)], policy: perSourceOnly, testClock: true)
        #expect(try narrow.verdict(packet) == XDP_PASS_ACTION)
        #expect(try narrow.verdict(packet) == XDP_DROP_ACTION)
        try narrow.setTestClock(nanoseconds: due, coarseNanoseconds: due - jiffy + 1_000)
        #expect(try narrow.verdict(packet) == XDP_PASS_ACTION)
        #expect(try narrow.verdict(packet) == XDP_DROP_ACTION)
        // The coarse clock is never set ahead of the precise one.
        #expect(throws: FloodgateError.self) { try narrow.setTestClock(nanoseconds: t0, coarseNanoseconds: t0 + 1) }
    }

    /// What the coarse clock gives a source, whoever sends its packets: at most one jiffy's worth of its rate more
    /// than its burst in any window. At 1000/s, burst 1000 (a tolerance of 999 ms), a source that empties its bucket
    /// just before a tick (coarse time still t0, precise 0.1 ms short of the next jiffy) gets one jiffy's worth
    /// (4 packets at HZ 250) more just after it, 0.1 ms later, where the exact clock would give none; and no more.
    @Test func aCoarseBucketGivesAtMostOneJiffyOfItsRateMoreThanItsBurst() throws {
        let jiffy = try coarseClockResolution()
        let t0: UInt64 = 1_000_000_000_000 / jiffy * jiffy  // on a tick, at any HZ (300's jiffy does not divide 10^12)
        let program = try loadProgram(limits: [.options: .rate(1000, burst: 1000)], policy: perSourceOnly, testClock: true)
        let packet = Packet.udp4(dport: 5060)
        try program.setTestClock(nanoseconds: t0 + jiffy - 100_000, coarseNanoseconds: t0)
        let before = try (0..<1100).map { _ in try program.verdict(packet) }.filter { $0 == XDP_PASS_ACTION }.count
        #expect(before == 1000, "admitted \(before) of a burst of 1000")
        // The tick: the coarse clock jumps a jiffy.
        try program.setTestClock(nanoseconds: t0 + jiffy, coarseNanoseconds: t0 + jiffy)
        let after = try (0..<100).map { _ in try program.verdict(packet) }.filter { $0 == XDP_PASS_ACTION }.count
        #expect(after == Int(jiffy / 1_000_000), "admitted \(after) more 0.1 ms later, with a jiffy of \(jiffy) ns")
        #expect(try program.maps.counters().packets[.options, .passed] == UInt64(1000 + after))
    }

    /// A decision whose coarse time was read before a tick, judged after another CPU's decision from after it,
    /// finds the bucket up to a jiffy further ahead than its tolerance and an interval. That is no limit change,
    /// and the bucket must not be clamped back (which would give the jiffy's tokens again): its clamp waits for
    /// 1/16 of tau + T more. Here the stale decision is a packet whose coarse time is set a jiffy back.
    @Test func aDecisionFromBeforeATickDoesNotClampAwayTheTokensTakenAfterIt() throws {
        let jiffy = try coarseClockResolution()
        let t1: UInt64 = 1_000_000_000_000 / jiffy * jiffy
        // 1000/s, burst 1000: a tolerance of 999 ms, judged at the coarse clock at any HZ up to 1000.
        let program = try loadProgram(limits: [.options: .rate(1000, burst: 1000)], policy: perSourceOnly, testClock: true)
        let packet = Packet.udp4(dport: 5060)
        try program.setTestClock(nanoseconds: t1)
        let burst = try (0..<1000).map { _ in try program.verdict(packet) }.filter { $0 == XDP_PASS_ACTION }.count
        #expect(burst == 1000)
        // The stale decision: the bucket is 1000 ms + a jiffy ahead of its time, and refuses.
        try program.setTestClock(nanoseconds: t1 + jiffy, coarseNanoseconds: t1 - jiffy)
        #expect(try program.verdict(packet) == XDP_DROP_ACTION)
        // Back at the tick's coarse time: nothing was given back. (The precise time, which only the drop cache's
        // jiffies follow here, a second on: past the jiffy the cache held the source to.)
        try program.setTestClock(nanoseconds: t1 + 1_000_000_000, coarseNanoseconds: t1)
        let after = try (0..<50).map { _ in try program.verdict(packet) }.filter { $0 == XDP_PASS_ACTION }.count
        #expect(after == 0, "admitted \(after) after a decision from before the tick")
    }

    @Test func perSourceCountsIncludeDropsStillInTheCache() throws {
        let program = try loadProgram(limits: [.options: .rate(1, burst: 10)], testClock: true)
        let packet = Packet.udp4(dport: 5060)
        // 10 admitted, then 1000 drops: three flushes of 256 and 232 still pending in the cache.
        for _ in 0..<1010 { _ = try program.verdict(packet) }
        let source = try #require(try program.maps.sources().first)
        #expect(source.packets == 1010)
        #expect(source.drops == 1000)
        let counters = try program.maps.counters().packets
        #expect(counters[.options, .passed] == 10)
        #expect(counters[.options, .droppedRate] == 1000)
    }

    @Test func raisingTheLimitOfAThrottledSourceLetsItInWithinOneNewInterval() throws {
        // On the test clock: at 1000/s a pause of a few milliseconds among the verdicts would be tokens.
        let program = try loadProgram(limits: [.options: .rate(1, burst: 100)], testClock: true)
        let packet = Packet.udp4(dport: 5060)
        for _ in 0..<100 { #expect(try program.verdict(packet) == XDP_PASS_ACTION) }
        #expect(try program.verdict(packet) == XDP_DROP_ACTION)  // 100 s of debt at 1/s
        try program.maps.setLimit(.rate(1000, burst: 10), for: .options)
        #expect(try program.verdict(packet) == XDP_DROP_ACTION)  // empty under the new limit too
        try program.setTestClock(nanoseconds: 1_000_050_000_000)  // 50 ms at 1000/s: the burst of 10 is back
        let admitted = try (0..<20).map { _ in try program.verdict(packet) }.filter { $0 == XDP_PASS_ACTION }.count
        #expect(admitted == 10, "admitted \(admitted)")
    }

    @Test func aFloodOfNewSourcesEvictsTheOldestInsteadOfFailing() throws {
        let program = try loadProgram(limits: [.options: .rate(1, burst: 1)], maxSources: 256)
        for i in 0..<2000 {
            let packet = Packet.udp4(src: "198.18.\(i / 250).\(i % 250 + 1)", dport: 5060)
            #expect(try program.verdict(packet) == XDP_PASS_ACTION)
        }
        let counters = try program.maps.counters().packets
        #expect(counters[.options, .passed] == 2000)
        #expect(counters[.options, .passedUntracked] == 0)
        #expect(try program.maps.sources().count <= 256)
    }

    /// Both CPUs hammer one bucket at once; the admitted count must stay within what the bucket allows over the
    /// elapsed time. Plain `++` or per-CPU buckets would admit up to twice that.
    @Test func bothCPUsSharingOneBucketDoNotOverAdmit() throws {
        let rate: UInt32 = 2000
        let burst: UInt32 = 100
        // Auto-ban off: this source is to stay on its bucket however far over it goes.
        var settings = Settings.defaults
        settings.autoBan.enabled = false
        let program = try loadProgram(limits: [.options: .rate(rate, burst: burst)], settings: settings,
                                      policy: perSourceOnly)
        let packet = Packet.udp4(dport: 5060)
        let cpus = max(2, ProcessInfo.processInfo.activeProcessorCount)
        let start = monotonicNanoseconds()
        DispatchQueue.concurrentPerform(iterations: cpus) { _ in
            for _ in 0..<40 { _ = try? program.testRun(packet, repeat: 50_000) }
        }
        let elapsed = Double(monotonicNanoseconds() - start) / 1e9
        let counters = try program.maps.counters().packets
        let admitted = counters[.options, .passed]
        let total = admitted + counters[.options, .droppedRate]
        let allowed = Double(burst) + Double(rate) * elapsed
        #expect(total == UInt64(cpus * 40 * 50_000))
        // The slack of FG_CAS_RETRIES fallbacks is one packet per fallback on an idle bucket; allow a handful.
        #expect(Double(admitted) <= allowed + 4, "admitted \(admitted), bucket allows \(allowed) in \(elapsed) s")
        #expect(admitted >= UInt64(burst))
        let source = try #require(try program.maps.sources().first)
        #expect(source.packets == total)
        #expect(source.drops == counters[.options, .droppedRate])
    }
}
