import CFloodgate
@testable import FloodgateBPF
import FloodgateCore
import FloodgateLab
import Foundation
import Testing

/// `fg_known` (BPF/floodgate.h, lib/known.h): the bit per address that lets XDP refuse a random-source flood's new
/// addresses under the new-source budget without a lookup that misses. Its one danger is a clear bit for an
/// address that has state: that source would be taken for new and refused while a forger keeps the budget empty.
@Suite struct KnownSourcesTests {
    /// A forger keeps the new-source budget empty with fresh addresses. Every source that has state still gets its
    /// own bucket's verdict, never dropped-new-source: the tracked strangers and a verified phone; only addresses
    /// without state are refused, and the map knows them for new.
    @Test func whileForgersKeepTheBudgetEmptySourcesWithStateAreNeverTakenForNew() throws {
        var policy = FilterPolicy()
        policy.newSources = .rate(1, burst: 40)
        // The test clock stands still: the budget does not refill meanwhile, however slow the machine.
        var settings = Settings.defaults
        settings.trustSeconds = 60
        let p = try loadProgram(settings: settings, policy: policy, testClock: true)
        let phone = "198.18.7.1", address = SourceAddress(phone)!
        let sources: BPFMap<fg_source_key, fg_source_state> = p.maps.map(FG_MAP_SOURCES)
        func forgetPhoneEntries() throws {
            for k in try sources.keys() where SourceAddress(k.addr) == address { try sources.delete(k) }
        }
        // The phone registers; before the server's answer its source entry goes (evicted, say) and the bits are
        // rebuilt: only its verification can set its bit now.
        try TrustTests.challenge(p, phone)
        #expect(try p.judge(Packet.request("REGISTER", src: phone, extra: [TrustTests.credentials], callID: "reg-1",
                                           cseq: "1 REGISTER", ttl: 60)).2 == .passed)
        try forgetPhoneEntries()
        let known = try KnownSources(p.maps)
        try known.rebuild()
        #expect(!known.mayHave(address))
        try TrustTests.inside(p, TrustTests.response("200 OK", to: phone, cseq: "1 REGISTER", callID: "reg-1"))
        #expect(try TrustTests.trusted(p)[phone] != nil)
        #expect(known.mayHave(address))
        // A rebuild keeps it for its verified entry alone.
        try forgetPhoneEntries()
        try known.rebuild()
        #expect(known.mayHave(address))
        let strangers = (1...30).map { "198.18.8.\($0)" }
        for s in strangers { #expect(try p.judge(Packet.request("OPTIONS", src: s)).2 == .passed) }
        // Fresh addresses, one per /24 so no prefix bucket drains: what is left of the budget's burst goes, then
        // each is refused.
        var refused = 0
        for i in 0..<200 where try p.judge(Packet.request("OPTIONS", src: "198.19.\(i).\(i % 250 + 1)")).2 == .droppedNewSource {
            refused += 1
        }
        #expect(refused >= 190 && refused < 200, "\(refused) of 200 refused")
        for s in strangers { #expect(try p.judge(Packet.request("OPTIONS", src: s)).2 == .passed, "\(s)") }
        #expect(try p.judge(Packet.request("REGISTER", src: phone, ttl: 60)).2 == .passed)
        for s in strangers + [phone] { #expect(known.mayHave(SourceAddress(s)!), "\(s)") }
        // Addresses never seen: their bits are clear but for the odd collision (about 60 bits set of 4 Mi).
        let unseen = (0..<1000).filter { !known.mayHave(SourceAddress("2001:db8:77::\(String($0, radix: 16))")!) }
        #expect(unseen.count >= 995)
    }

    /// The bits of sources the LRU evicted stay set until the agent rebuilds the half XDP does not read; then only
    /// the sources still tracked have theirs, and XDP reads the rebuilt half.
    @Test func aRebuildClearsEvictedSourcesAndKeepsTrackedOnes() throws {
        var policy = FilterPolicy()
        (policy.newSources, policy.prefix, policy.widePrefix) = (.unlimited, .unlimited, .unlimited)
        let p = try loadProgram(policy: policy, maxSources: 128)
        let addresses = (0..<1000).map { "198.19.\($0 / 250).\($0 % 250 + 1)" }
        for a in addresses { _ = try p.verdict(Packet.request("OPTIONS", src: a)) }
        let known = try KnownSources(p.maps)
        #expect(addresses.allSatisfy { known.mayHave(SourceAddress($0)!) })
        let before = known.activeHalf
        let walked = try known.rebuild()
        #expect(known.activeHalf == 1 - before)
        let tracked = Set(try p.maps.sources().map(\.address))
        #expect(walked == tracked.count && !tracked.isEmpty && tracked.count < 300)
        for t in tracked { #expect(known.mayHave(t), "\(t)") }
        let cleared = addresses.filter { !known.mayHave(SourceAddress($0)!) }.count
        #expect(cleared >= 1000 - tracked.count - 5)
        #expect(known.occupancy().set <= tracked.count)
        // A tracked source is still tracked after the rebuild, under an empty budget too.
        var strict = policy
        strict.newSources = .block
        _ = try strict.apply(to: p.maps)
        if let t = tracked.first {
            #expect(try p.judge(Packet.request("OPTIONS", src: t.description)).2 != .droppedNewSource)
        }
    }

    /// A source whose bit is set but which has no state (an entry the LRU evicted, whose bit stays until the next
    /// rebuild) is looked up, found missing, and refused by an empty budget like any new one, before its prefixes
    /// are read or charged: a forger who once got addresses admitted cannot come back from them to drain a real
    /// caller's prefix. This is the path on which the new-source step reuses the budget's first look
    /// (FG_UNKNOWN_REFUSED_MAYBE); were it taken for room, the budget's admit would still refuse, but only after
    /// the prefixes were charged. A tracked source still gets its bucket.
    @Test func anEvictedSourceWhoseBitStaysIsRefusedBeforeItsPrefixIsCharged() throws {
        var policy = FilterPolicy()
        policy.newSources = .unlimited
        (policy.prefix, policy.widePrefix) = (.rate(10000, burst: 10000), .rate(10000, burst: 10000))
        let p = try loadProgram(policy: policy, maxSources: 128, testClock: true)
        let prefixes: BPFMap<fg_source_key, fg_source_state> = p.maps.map(FG_MAP_PREFIXES)
        func charged() throws -> UInt64 { try prefixes.entries().reduce(0) { $0 + $1.value.packets } }
        let addresses = (0..<1000).map { "198.19.\($0 / 250).\($0 % 250 + 1)" }
        for a in addresses { #expect(try p.judge(Packet.request("OPTIONS", src: a)).2 == .passed) }
        let known = try KnownSources(p.maps)
        let tracked = Set(try p.maps.sources().map(\.address))
        let evicted = addresses.compactMap { SourceAddress($0) }.filter { !tracked.contains($0) && known.mayHave($0) }
        #expect(evicted.count >= 600, "\(evicted.count) evicted sources with their bits set")
        var strict = policy
        strict.newSources = .block
        _ = try strict.apply(to: p.maps)
        let before = try charged()
        #expect(before >= 1000)
        for e in evicted.prefix(100) {
            #expect(try p.judge(Packet.request("OPTIONS", src: e.description)).2 == .droppedNewSource, "\(e)")
        }
        #expect(try charged() == before)
        #expect(try p.maps.sources().allSatisfy { tracked.contains($0.address) })
        if let t = tracked.first {
            #expect(try p.judge(Packet.request("OPTIONS", src: t.description)).2 == .passed)
            #expect(try charged() == before + 2)  // its /24 and its /16
        }
    }

    /// The agent skips its walk of the source map while the filter's mark (the half XDP reads and its bits set) is
    /// the one its last rebuild left, for up to ten minutes. The mark must move whenever XDP makes an entry whose
    /// bit was clear, the one entry a rebuild must not miss; packets of tracked sources leave it alone, as does a
    /// new entry of an address whose bit is set (a class of its own, here), which a rebuild would only count.
    @Test func theMarkMovesWhenAnEntryIsMadeWhoseBitWasClear() throws {
        var policy = FilterPolicy()
        (policy.newSources, policy.prefix, policy.widePrefix) = (.unlimited, .unlimited, .unlimited)
        let p = try loadProgram(policy: policy, maxSources: 10_000)
        let tracked = (0..<50).map { "198.19.0.\($0 + 1)" }
        for a in tracked { #expect(try p.verdict(Packet.request("OPTIONS", src: a)) == XDP_PASS_ACTION) }
        let known = try KnownSources(p.maps)
        #expect(try known.rebuild() == tracked.count)
        let mark = known.mark
        #expect(mark.half == known.activeHalf && (1...tracked.count).contains(mark.set))
        for a in tracked { #expect(try p.verdict(Packet.request("OPTIONS", src: a)) == XDP_PASS_ACTION) }
        #expect(try p.verdict(Packet.request("REGISTER", src: tracked[0])) == XDP_PASS_ACTION)
        #expect(known.mark == mark)
        // Addresses never seen whose bits are clear: each one's entry sets its bit, and the mark moves with it.
        let fresh = (0..<1000).map { "198.19.\($0 / 250 + 1).\($0 % 250 + 1)" }.filter { !known.mayHave(SourceAddress($0)!) }
        #expect(fresh.count >= 995)
        for (i, a) in fresh.prefix(3).enumerated() {
            #expect(try p.verdict(Packet.request("OPTIONS", src: a)) == XDP_PASS_ACTION)
            #expect(known.mayHave(SourceAddress(a)!))
            #expect(known.mark == KnownSources.Mark(half: mark.half, set: mark.set + i + 1))
        }
        // The agent's minute: the mark moved, so it walks; then it skips while the mark stands and its last walk is
        // under ten minutes old, and walks again at ten minutes, or as soon as an entry sets a clear bit.
        let minute: UInt64 = 60_000_000_000
        let walk = try #require(try known.rebuild(unlessUnchangedSince: (mark, 0), now: minute))
        #expect(walk.sources == tracked.count + 3 + 1 && walk.mark == known.mark && walk.mark.half == 1 - mark.half)
        #expect(try known.rebuild(unlessUnchangedSince: (walk.mark, minute), now: 10 * minute) == nil)
        #expect(known.mark == walk.mark)
        #expect(try known.rebuild(unlessUnchangedSince: (walk.mark, minute), now: 11 * minute) != nil)
        let last = known.mark
        #expect(try known.rebuild(unlessUnchangedSince: (last, 11 * minute), now: 12 * minute) == nil)
        let next = try #require(fresh.dropFirst(3).first { !known.mayHave(SourceAddress($0)!) })
        #expect(try p.verdict(Packet.request("OPTIONS", src: next)) == XDP_PASS_ACTION)
        #expect(try known.rebuild(unlessUnchangedSince: (last, 11 * minute), now: 12 * minute)?.sources
                == tracked.count + 4 + 1)
    }

    /// Sources made while the agent rebuilds: XDP sets their bits in both halves after it makes the entry, while
    /// the rebuild's word is set, so one made before its word was zeroed is in the walk, and one made after keeps
    /// its bit; one made just before the rebuild set its word is in the walk (lib/known.h says why). Checked after
    /// each of 20 rebuilds while another thread makes sources all along: every source whose packet had been judged
    /// by the time the rebuild returned has its bit in the half XDP reads.
    @Test func sourcesMadeDuringARebuildKeepTheirBits() throws {
        var policy = FilterPolicy()
        (policy.newSources, policy.prefix, policy.widePrefix) = (.unlimited, .unlimited, .unlimited)
        let p = try loadProgram(policy: policy, maxSources: 100_000)
        let addresses = (0..<60_000).map { SourceAddress("198.19.\($0 / 250).\($0 % 250 + 1)")! }
        let frames = addresses.map { Packet.request("OPTIONS", src: $0.description) }
        final class Progress: @unchecked Sendable {
            let lock = NSLock()
            var done = 0, stop = false
            var failure: Error?
            let ended = DispatchSemaphore(value: 0)
        }
        let progress = Progress()
        let inserter = Thread {
            defer { progress.ended.signal() }
            for (i, frame) in frames.enumerated() {
                if progress.lock.withLock({ progress.stop }) { return }
                do { _ = try p.testRun(frame) } catch {
                    progress.lock.withLock { progress.failure = error }
                    return
                }
                progress.lock.withLock { progress.done = i + 1 }
            }
        }
        inserter.start()
        defer {
            progress.lock.withLock { progress.stop = true }
            progress.ended.wait()
        }
        let known = try KnownSources(p.maps)
        var rebuilds = 0, overlapped = 0, missing: [SourceAddress] = []
        let deadline = ContinuousClock.now + .seconds(120)
        while rebuilds < 20 && missing.isEmpty && ContinuousClock.now < deadline {
            let before = progress.lock.withLock { progress.done }
            try known.rebuild()
            rebuilds += 1
            let (done, failure) = progress.lock.withLock { (progress.done, progress.failure) }
            if let failure { throw failure }
            if done > before && done < addresses.count { overlapped += 1 }
            missing += addresses[..<done].filter { !known.mayHave($0) }
        }
        #expect(missing.count == 0, "sources that lost their bits, the first: \(missing.first.map(\.description) ?? "")")
        #expect(rebuilds == 20)
        // Or the run proved nothing: sources must have been made while rebuilds ran.
        #expect(overlapped >= 1, "no rebuild ran while sources were made")
    }

    /// Outside a rebuild XDP sets a new entry's bit in the half it reads alone (one atomic write to memory a new
    /// source, not two); while `FG_KNOWN_REBUILDING` is set, from a rebuild's start to its end, in both halves. A
    /// rebuild clears the word when it ends, and every entry's bit is in the half XDP then reads.
    @Test func theOtherHalfIsWrittenOnlyWhileARebuildRuns() throws {
        var policy = FilterPolicy()
        (policy.newSources, policy.prefix, policy.widePrefix) = (.unlimited, .unlimited, .unlimited)
        let p = try loadProgram(policy: policy, maxSources: 10_000)
        let known = try KnownSources(p.maps)
        /// Whether each half has `address`'s bit.
        func halves(_ address: String) -> [Bool] { (0..<2).map { known.has(SourceAddress(address)!, inHalf: $0) } }
        func rebuildingWord() throws -> UInt64 {
            var value: UInt64 = 0
            try KnownSourcesTests.withWords(p.maps) { words, _ in value = words[Int(FG_KNOWN_REBUILDING)] }
            return value
        }
        func setRebuilding(_ value: UInt64) throws {
            try KnownSourcesTests.withWords(p.maps) { words, _ in words[Int(FG_KNOWN_REBUILDING)] = value }
        }
        let active = known.activeHalf
        #expect(try rebuildingWord() == 0)
        let outside = (1...20).map { "198.19.1.\($0)" }, during = (1...20).map { "198.19.2.\($0)" }
        for a in outside { #expect(try p.verdict(Packet.request("OPTIONS", src: a)) == XDP_PASS_ACTION) }
        // Nothing else writes the other half of a new map, so not one of its bits is set.
        for a in outside { #expect(halves(a) == (active == 0 ? [true, false] : [false, true]), "\(a)") }
        try setRebuilding(1)
        for a in during { #expect(try p.verdict(Packet.request("OPTIONS", src: a)) == XDP_PASS_ACTION) }
        for a in during { #expect(halves(a) == [true, true], "\(a)") }
        try setRebuilding(0)
        try known.rebuild()
        #expect(try rebuildingWord() == 0)
        #expect(known.activeHalf == 1 - active)
        for a in outside + during { #expect(known.mayHave(SourceAddress(a)!), "\(a)") }
    }

    /// The filter grows with the source map: the least power of two that gives it four bits a source, from 2^22
    /// (the default million's) to 2^28. XDP and the agent must agree on its size, which the seed carries: a half
    /// read at the wrong offset or with bits of the wrong width would take tracked sources for new. A map of 1.1
    /// million sources gets halves of 2^23 bits. After the agent's rebuild XDP reads the second half, at an offset
    /// that depends on the size, and under a budget that admits no one new a tracked source is still judged by its
    /// own bucket. Two controls show that this is the filter's doing: clearing the half XDP no longer reads changes
    /// nothing; clearing the one it reads makes the tracked sources new, and refused.
    @Test func aBiggerSourceMapGetsABiggerFilterThatXDPAndTheAgentBothRead() throws {
        for (sources, log): (UInt32, UInt32) in [
            (1, 22), (1_000_000, 22), (1_048_576, 22), (1_048_577, 23), (16_777_216, 26), (67_108_864, 28),
            (67_108_865, 28), (100_000_000, 28),
        ] {
            #expect(KnownSources.bitsLog(forSources: sources) == log, "\(sources)")
        }
        var policy = FilterPolicy()
        (policy.newSources, policy.prefix, policy.widePrefix) = (.unlimited, .unlimited, .unlimited)
        let p = try loadProgram(policy: policy, maxSources: 1_100_000)
        let known = try KnownSources(p.maps)
        #expect(known.bits == 1 << 23)
        try KnownSourcesTests.withWords(p.maps) { words, _ in #expect(words[Int(FG_KNOWN_ACTIVE)] == FG_KNOWN_HEADER) }
        let addresses = (0..<400).map { "198.19.\($0 / 200).\($0 % 200 + 1)" }
        for a in addresses { _ = try p.verdict(Packet.request("OPTIONS", src: a)) }
        #expect(addresses.allSatisfy { known.mayHave(SourceAddress($0)!) })
        #expect(known.occupancy().set <= addresses.count)
        try known.rebuild()
        #expect(known.activeHalf == 1)
        var strict = policy
        strict.newSources = .block
        _ = try strict.apply(to: p.maps)
        try KnownSourcesTests.clearHalf(p.maps, 0)
        for a in addresses { #expect(try p.judge(Packet.request("OPTIONS", src: a)).2 == .passed, "\(a)") }
        try KnownSourcesTests.clearHalf(p.maps, 1)
        let takenForNew = try addresses.filter { try p.judge(Packet.request("OPTIONS", src: $0)).2 == .droppedNewSource }
        #expect(takenForNew.count == addresses.count)
        // Addresses never seen: clear but for the odd collision (about 400 bits set of 8 Mi).
        try known.rebuild()
        let unseen = (0..<1000).filter { !known.mayHave(SourceAddress("2001:db8:77::\(String($0, radix: 16))")!) }
        #expect(unseen.count >= 995)
    }

    /// `fg_known`'s words, mapped, and how many there are.
    static func withWords(_ maps: FilterMaps, _ body: (UnsafeMutablePointer<UInt64>, Int) throws -> Void) throws {
        let entries = Int(try maps.maxEntries(FG_MAP_KNOWN))
        let length = entries * MemoryLayout<UInt64>.size
        let address = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED, maps.fd(FG_MAP_KNOWN), 0)
        guard let address, address != MAP_FAILED else { throw FloodgateError("map \(FG_MAP_KNOWN)", errno: errno) }
        defer { munmap(address, length) }
        try body(address.bindMemory(to: UInt64.self, capacity: entries), entries)
    }

    /// Clears every bit of half `half` (0 or 1).
    static func clearHalf(_ maps: FilterMaps, _ half: UInt32) throws {
        try withWords(maps) { words, entries in
            let seed = words[Int(FG_KNOWN_SEED)]
            let first = Int(fg_known_half(seed, half)), count = (entries - Int(FG_KNOWN_HEADER)) / 2
            for i in first..<first + count { words[i] = 0 }
        }
    }
}
