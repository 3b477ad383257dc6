import CFloodgate
@testable import FloodgateBPF
import FloodgateCore
import FloodgateLab
import Foundation
import Testing

/// What someone who forges a source address, or reframes the bytes, can make the filter do (BPF/lib/tiers.h): the
/// hostile side of evidence tiers, hop-count pinning and framing, through BPF_PROG_TEST_RUN with the inside
/// program playing the SIP server's answers.
@Suite struct SpoofingTests {
    let phone = "198.18.7.7"

    /// A filter with a phone that registered with credentials at TTL 57 and was verified.
    func verifiedPhone(policy: FilterPolicy = FilterPolicy()) throws -> FloodgateProgram {
        let p = try TrustTests.program(policy: policy)
        #expect(try TrustTests.register(p, phone, ttl: 57) == .passed)
        #expect(try TrustTests.trusted(p)[phone]?.ttl == 57)
        return p
    }

    /// One OPTIONS with a scanner's User-Agent, forged from a verified phone's address (at its TTL, the forger's
    /// best case), is dropped but bans nobody; the phone goes on registering and calling.
    @Test func aForgedScannerPacketDoesNotBanAVerifiedPhone() throws {
        let p = try verifiedPhone()
        let forged = Packet.request("OPTIONS", src: phone, extra: ["User-Agent: friendly-scanner"], ttl: 57)
        #expect(try p.judge(forged).2 == .droppedScanner)
        #expect(p.maps.ban(of: SourceAddress(phone)!) == nil)
        #expect(try p.judge(Packet.request("INVITE", src: phone, ttl: 57)).2 == .passed)
        #expect(try TrustTests.register(p, phone, ttl: 57, call: "reg-2") == .passed)
        // The same packet from a stranger bans it, as before.
        let stranger = "198.18.7.8"
        #expect(try p.judge(Packet.request("OPTIONS", src: stranger, extra: ["User-Agent: friendly-scanner"])).2
            == .droppedScanner)
        #expect(p.maps.ban(of: SourceAddress(stranger)!)?.scanner == true)
    }

    /// What a forger of a verified phone's address makes the filter report to the agent, which logs and counts it.
    /// A scanner's packet at the phone's own hop distance: `spared` (a scanner's), dropped-scanner, no ban. From
    /// another hop distance, a scanner-signed REGISTER or a plain OPTIONS: `spoofed`, with the TTL it came at, as
    /// it is counted (dropped-spoofed), never `spared` or a ban. A forged REGISTER that passes (the prefix admits
    /// it, to be challenged) reports nothing. A burst of forgeries at one instant makes at most one event of each
    /// kind on each CPU; a second later, one more. The test clock stands still, so no second passes unbidden.
    @Test func whatAForgerOfAVerifiedPhoneMakesTheFilterReport() throws {
        var policy = FilterPolicy()
        policy.prefix = .unlimited
        policy.widePrefix = .unlimited
        var settings = Settings.defaults
        settings.trustSeconds = 60
        let p = try loadProgram(settings: settings, policy: policy, testClock: true)
        #expect(try TrustTests.register(p, phone, ttl: 57) == .passed)
        let events = try EventReader(p.maps)
        _ = events.drain()
        let cpus = ProcessInfo.processInfo.activeProcessorCount
        let address = SourceAddress(phone)!
        let scannerOptions = Packet.request("OPTIONS", src: phone, extra: ["User-Agent: friendly-scanner"], ttl: 57)

        let atItsTTL = try (0..<20).map { _ in try p.judge(scannerOptions).2 }
        #expect(atItsTTL.allSatisfy { $0 == .droppedScanner }, "\(atItsTTL)")
        var seen = events.drain()
        #expect(seen.allSatisfy { $0.kind == .spared && $0.address == address && $0.sparedScanner }, "\(seen)")
        #expect((1...cpus).contains(seen.count), "one spared event a second on each CPU at most: \(seen.count)")
        try p.setTestClock(nanoseconds: 1_001_000_000_000)
        #expect(try p.judge(scannerOptions).2 == .droppedScanner)
        seen = events.drain()
        #expect(seen.count == 1 && seen.first?.kind == .spared, "a second later, one more: \(seen)")

        let scannerRegister = Packet.request("REGISTER", src: phone, extra: ["User-Agent: friendly-scanner"],
                                             callID: "forged-scan", ttl: 120)
        let fromAfar = try (0..<20).map { _ in try p.judge(scannerRegister).2 }
        #expect(fromAfar.allSatisfy { $0 == .droppedSpoofed }, "\(fromAfar)")
        seen = events.drain()
        #expect(seen.allSatisfy { $0.kind == .spoofed && $0.address == address && $0.offence == 120 }, "\(seen)")
        #expect((1...cpus).contains(seen.count), "one spoofed event a second on each CPU at most: \(seen.count)")
        #expect(try p.maps.counters().packets[.register, .droppedSpoofed] == 20)

        try p.setTestClock(nanoseconds: 1_002_000_000_000)
        #expect(try p.judge(Packet.request("REGISTER", src: phone, callID: "forged-plain", ttl: 120)).2 == .passed)
        seen = events.drain()
        #expect(seen.isEmpty, "a forged REGISTER the prefix admits, to be challenged, reports nothing: \(seen)")
        #expect(try p.judge(Packet.request("OPTIONS", src: phone, ttl: 99)).2 == .droppedSpoofed)
        seen = events.drain()
        #expect(seen.count == 1 && seen.first?.kind == .spoofed && seen.first?.offence == 99, "\(seen)")

        #expect(p.maps.ban(of: address) == nil)
        #expect(try TrustTests.trusted(p)[phone]?.ttl == 57)
        #expect(try p.judge(Packet.request("INVITE", src: phone, ttl: 57)).2 == .passed)
    }

    /// 600 forged REGISTERs in a burst claiming the verified phone. At another TTL they are charged to the
    /// phone's prefix like a stranger's (its burst reaches the server, to be challenged) and the rest are
    /// dropped-spoofed; none touches the phone's bucket: it registers right after, its whole burst intact. At its
    /// own TTL they drain its bucket (nothing tells them apart), but the auto-ban, which would have fired at 50
    /// drops, spares it.
    @Test func aForgedBurstNeitherBansAVerifiedPhoneNorDrainsItsBucket() throws {
        // A prefix bucket of burst 100 that refills at 1/s: however slow the machine, the bound below holds.
        var policy = FilterPolicy()
        policy.prefix = .rate(1, burst: 100)
        let p = try verifiedPhone(policy: policy)
        var reasons: [Reason: Int] = [:]
        let start = ContinuousClock.now
        for i in 0..<600 {
            let r = try p.judge(Packet.request("REGISTER", src: phone, callID: "f\(i)", ttl: 120)).2!
            reasons[r, default: 0] += 1
        }
        let refill = Int((ContinuousClock.now - start).components.seconds) + 1
        #expect((reasons[.passed] ?? 0) <= 100 + refill, "no more than the prefix's burst and rate: \(reasons)")
        #expect((reasons[.passed] ?? 0) + (reasons[.droppedSpoofed] ?? 0) == 600, "\(reasons)")
        let own = try (0..<16).map { _ in try p.judge(Packet.request("REGISTER", src: phone, ttl: 57)).2 }
        #expect(own.allSatisfy { $0 == .passed }, "the phone's burst of 16 is untouched: \(own)")
        #expect(p.maps.ban(of: SourceAddress(phone)!) == nil)

        // At its own TTL they are the phone's: no more pass than the verified tier's REGISTER bucket holds and
        // refills (burst 60, 30/s) however long the 600 take on a loaded machine; the rest are its rate's drops.
        let sameStart = ContinuousClock.now
        let same = try (0..<600).map { _ in try p.judge(Packet.request("REGISTER", src: phone, ttl: 57)).2 }
        let sameRefill = 60 + 30 * (Int((ContinuousClock.now - sameStart).components.seconds) + 1)
        let samePassed = same.filter { $0 == .passed }.count
        #expect(samePassed <= sameRefill, "\(samePassed) passed; the bucket holds and refills \(sameRefill)")
        #expect(samePassed + same.filter { $0 == .droppedRate }.count == 600, "\(same)")
        #expect(p.maps.ban(of: SourceAddress(phone)!) == nil, "auto-ban spares a verified source")
        #expect(try p.maps.counters().packets[.register, .droppedSpoofed] >= 500 - UInt64(refill))
    }

    /// Forged credentialed REGISTERs for a verified phone from another hop distance, answered 401 by the server,
    /// are not the phone's failures: their credentials answer no challenge sent to it (the forger never saw one).
    /// No ban however many; as many as a ban takes (3 here) quarantine its credentials from other hop distances
    /// only, and then the forger's are dropped as spoofed. At its pin the phone's credentials are not touched.
    @Test func forgedCredentialedRegistersAnswered401DoNotBanAVerifiedPhone() throws {
        var policy = FilterPolicy()
        policy.prefix = .unlimited
        policy.widePrefix = .unlimited
        let p = try verifiedPhone(policy: policy)
        let madeUp = "Authorization: Digest username=\"100\", realm=\"198.18.2.2\", nonce=\"never-sent\", response=\"0\""
        for i in 0..<10 {
            let reason = try p.judge(Packet.request("REGISTER", src: phone, extra: [madeUp],
                                                    callID: "forged-\(i)", cseq: "1 REGISTER", ttl: 120)).2
            // Let through at its prefix's rate (here unlimited), so that a real route change can be confirmed,
            // until the quarantine.
            #expect(reason == (i < 3 ? .passed : .droppedSpoofed), "\(i)")
            try TrustTests.inside(p, TrustTests.response("401 Unauthorized", to: phone, callID: "forged-\(i)"))
        }
        #expect(p.maps.ban(of: SourceAddress(phone)!) == nil)
        let trust = try TrustTests.trusted(p)[phone]
        #expect(trust?.ttl == 57 && trust?.awayQuarantineUntilSeconds != nil && trust?.quarantineUntilSeconds == nil)
        #expect(try p.judge(Packet.request("REGISTER", src: phone, extra: [madeUp], callID: "at-pin", cseq: "1 REGISTER",
                                           ttl: 57)).2 == .passed, "at the pin: not quarantined")
    }

    /// The pin moves only after FG_REPIN_CONFIRMATIONS credentialed REGISTERs in a row at one new TTL, each
    /// accepted by the server; a forger, who never sees the challenge, cannot get one accepted.
    @Test func aPinnedTTLMovesOnlyOnConfirmedTransactions() throws {
        var policy = FilterPolicy()
        policy.prefix = .unlimited
        policy.widePrefix = .unlimited
        let p = try verifiedPhone(policy: policy)
        // A route change: the phone is now 3 hops further. Its plain packets are taken as forged...
        #expect(try p.judge(Packet.request("OPTIONS", src: phone, ttl: 54)).2 == .droppedSpoofed)
        // ...its credentialed REGISTERs get through, and two accepted are not yet enough.
        for n in 2...3 {
            #expect(try TrustTests.register(p, phone, ttl: 54, call: "moved", n: n) == .passed)
            #expect(try TrustTests.trusted(p)[phone]?.ttl == 57)
        }
        #expect(try TrustTests.trusted(p)[phone]?.confirmations == 2)
        #expect(try TrustTests.register(p, phone, ttl: 54, call: "moved", n: 4) == .passed)
        #expect(try TrustTests.trusted(p)[phone]?.ttl == 54)
        #expect(try p.judge(Packet.request("OPTIONS", src: phone, ttl: 54)).2 == .passed)
        #expect(try p.judge(Packet.request("OPTIONS", src: phone, ttl: 57)).2 == .droppedSpoofed)
        // Rejected attempts confirm nothing (two: they answer the phone's own challenge, so they are its failures,
        // and a third would ban it).
        for n in 5...6 {
            #expect(try TrustTests.register(p, phone, ttl: 30, call: "moved", n: n, answer: "401 Unauthorized") == .passed)
        }
        #expect(try TrustTests.trusted(p)[phone]?.ttl == 54)
    }

    /// A host allow entry's first SIP packet pins its TTL: a forger elsewhere is dropped-spoofed, and its traffic
    /// never reaches the allow list's privileges. Non-SIP packets do not pin; re-adding the entry clears the pin.
    /// A wider entry without a range is not pinned (its hosts need not share one hop distance or initial TTL):
    /// only its bucket bounds a forger there, which is why wide entries should carry `--ttl`.
    @Test func aHostAllowEntryIsPinnedAtItsFirstTTL() throws {
        let p = try loadProgram()
        let trunk = "198.18.50.1"
        let entry = try CIDR(trunk)
        try p.maps.addCIDRs([entry, try CIDR("198.18.49.0/24")], to: .allow)
        let early = Packet.ethernet(Packet.EtherType.ipv4, Packet.ipv4(src: trunk, proto: Packet.Proto.udp,
                                                                        Packet.udp(dport: 12000), ttl: 30))
        #expect(try p.judge(early).2 == .passedAllow, "not pinned yet, and RTP does not pin")
        #expect(try p.maps.allowPins().isEmpty)
        #expect(try p.judge(Packet.request("INVITE", src: trunk, ttl: 61)).2 == .passedAllow)
        #expect(try p.judge(Packet.request("INVITE", src: trunk, ttl: 63)).2 == .passedAllow)  // within ±2
        #expect(try p.judge(Packet.request("OPTIONS", src: trunk, ttl: 64)).2 == .droppedSpoofed)
        // An INVITE from there is charged like a stranger's (so that a moved peer can still be challenged): it
        // passes at the prefix's unverified rate, never as allow-listed.
        #expect(try p.judge(Packet.request("INVITE", src: trunk, ttl: 64)).2 == .passed)
        let rtp = Packet.ethernet(Packet.EtherType.ipv4, Packet.ipv4(src: trunk, proto: Packet.Proto.udp,
                                                                      Packet.udp(dport: 12000), ttl: 200))
        #expect(try p.judge(rtp).2 == .droppedSpoofed)
        #expect(try p.judge(Packet.request("INVITE", src: trunk, ttl: 59)).2 == .passedAllow)
        #expect(try p.maps.allowPins() == [entry: 61])
        // The wide entry: hosts at 64 and 128 alike.
        #expect(try p.judge(Packet.request("OPTIONS", src: "198.18.49.7", ttl: 64)).2 == .passedAllow)
        #expect(try p.judge(Packet.request("OPTIONS", src: "198.18.49.8", ttl: 128)).2 == .passedAllow)
        // The operator re-adds the entry (after a route change, say): the next SIP packet pins it anew.
        try p.maps.removeCIDRs([entry], from: .allow)
        try p.maps.addCIDRs([entry], to: .allow)
        #expect(try p.judge(Packet.request("OPTIONS", src: trunk, ttl: 40)).2 == .passedAllow)
        #expect(try p.maps.allowPins() == [entry: 40])
    }

    /// An allow entry with a fixed TTL range: nothing outside it passes as the peer, from its first packet on.
    @Test func anAllowEntryWithAFixedTTLRange() throws {
        let p = try loadProgram()
        let entry = try CIDR("198.18.53.1")
        try p.maps.addCIDRs([entry], to: .allow, options: [entry: AllowOptions(ttl: 60...62)])
        #expect(try p.judge(Packet.request("OPTIONS", src: "198.18.53.1", ttl: 64)).2 == .droppedSpoofed)
        #expect(try p.judge(Packet.request("INVITE", src: "198.18.53.1", ttl: 61)).2 == .passedAllow)
        #expect(try p.judge(Packet.request("INVITE", src: "198.18.53.1", ttl: 60)).2 == .passedAllow)
        #expect(try p.judge(Packet.request("OPTIONS", src: "198.18.53.1", ttl: 63)).2 == .droppedSpoofed)
        #expect(throws: FloodgateError.self) {
            try p.maps.setAllowOptions(AllowOptions(limit: .block), for: entry)
        }
    }

    /// A flood of non-first fragments no longer starves the real ones: those of a first fragment the policy
    /// admitted pass (up to FG_FRAGMENT_BUDGET of them), the rest share a bucket per source prefix rather than
    /// one for the whole interface.
    @Test func aFragmentFloodDoesNotStopARealTwoFragmentInvite() throws {
        // On a standing clock: the fragment bucket (1/s) must not refill under a slow run, or the count of what
        // follows an admitted first fragment would be off by what it refilled.
        let p = try loadProgram(limits: Limit.defaults.merging([.fragment: .rate(1, burst: 100)]) { $1 }, testClock: true)
        // The INVITE's first fragment: UDP header and the start of the message, more to come.
        let text = Array(("INVITE sip:100@198.18.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 198.18.60.5:5060;branch=z9hG4bK-9\r\n"
            + "Call-ID: big@198.18.60.5\r\nCSeq: 1 INVITE\r\nContent-Length: 1600\r\n\r\n").utf8)
        let body = [UInt8](repeating: UInt8(ascii: "v"), count: 1600)
        let udp = Packet.udp(sport: 5060, dport: 5060, text + body)
        let first = Packet.ethernet(Packet.EtherType.ipv4, Packet.ipv4(
            src: "198.18.60.5", proto: Packet.Proto.udp, Array(udp.prefix(1480)), moreFragments: true, id: 777))
        let second = Packet.ethernet(Packet.EtherType.ipv4, Packet.ipv4(
            src: "198.18.60.5", proto: Packet.Proto.udp, Array(udp.dropFirst(1480)), fragmentOffset: 185, id: 777))
        // A flood of non-first fragments from the phone's own /24 (random sources and IDs) drains its bucket.
        var flood: [Reason: Int] = [:]
        let start = ContinuousClock.now
        for i in 0..<2000 {
            let frame = Packet.ethernet(Packet.EtherType.ipv4, Packet.ipv4(
                src: "198.18.60.\(10 + i % 200)", proto: Packet.Proto.udp, [UInt8](repeating: 0, count: 64),
                fragmentOffset: UInt16(1 + i % 100), id: UInt16(truncatingIfNeeded: i * 7919)))
            flood[try p.judge(frame).2!, default: 0] += 1
        }
        let refill = Int((ContinuousClock.now - start).components.seconds) + 1
        #expect((flood[.passed] ?? 0) <= 100 + refill && (flood[.droppedRate] ?? 0) + (flood[.passed] ?? 0) == 2000,
                "\(flood)")
        #expect(try p.judge(first) == (XDP_PASS_ACTION, .invite, .passed))
        #expect(try p.judge(second) == (XDP_PASS_ACTION, .fragment, .passed))
        // Another prefix has its own bucket.
        let elsewhere = Packet.ethernet(Packet.EtherType.ipv4, Packet.ipv4(
            src: "198.18.61.5", proto: Packet.Proto.udp, [UInt8](repeating: 0, count: 64), fragmentOffset: 5, id: 1))
        #expect(try p.judge(elsewhere).2 == .passed)
        // The same over IPv6.
        let first6 = Packet.ethernet(Packet.EtherType.ipv6, Packet.ipv6(
            src: "2001:db8:60::5", proto: Packet.Proto.udp, Array(udp.prefix(1232)),
            extensions: [(Packet.Proto.fragment, Packet.fragmentBody(offset: 0, more: true, id: 0x10203))]))
        let second6 = Packet.ethernet(Packet.EtherType.ipv6, Packet.ipv6(
            src: "2001:db8:60::5", proto: Packet.Proto.udp, Array(udp.dropFirst(1232)),
            extensions: [(Packet.Proto.fragment, Packet.fragmentBody(offset: 154, more: false, id: 0x10203))]))
        for i in 0..<200 {
            let frame = Packet.ethernet(Packet.EtherType.ipv6, Packet.ipv6(
                src: "2001:db8:60::\(100 + i)", proto: Packet.Proto.udp, [UInt8](repeating: 0, count: 64),
                extensions: [(Packet.Proto.fragment, Packet.fragmentBody(offset: 9, more: false, id: UInt32(i)))]))
            _ = try p.judge(frame)
        }
        #expect(try p.judge(first6).2 == .passed)
        #expect(try p.judge(second6) == (XDP_PASS_ACTION, .fragment, .passed))
        // An admitted first fragment does not open a door: at most its budget of fragments follows.
        var after: [Reason: Int] = [:]
        for _ in 0..<100 { after[try p.judge(second).2!, default: 0] += 1 }
        #expect(after[.passed] == Int(FG_FRAGMENT_BUDGET) - 1, "\(after)")
    }

    /// A later-fragment flood that drains its prefix's fragment bucket is held in the drop cache (fg_cache_fragments):
    /// its frames end before the policy, and the bucket's entry gets them from the cache's count. The hold must give
    /// every address in the prefix what the policy would: a real datagram's later fragment whose first fragment the
    /// policy admitted passes, within its budget; an allow-listed address's fragments pass (a prefix that holds one is
    /// never held); a source verified in the prefix while the hold lasts ends it, and the prefix is not held again.
    /// A denied source's fragments in a held prefix are dropped all the same, counted as dropped by rate; a change of
    /// policy ends the hold until the next drop. The hold is per CPU: the test keeps to one.
    @Test func aHeldFragmentFloodKeepsThePolicysVerdicts() throws {
        var policy = FilterPolicy()
        policy.allow = [try CIDR("198.18.66.7/32")]
        policy.deny = [try CIDR("198.18.64.77/32")]
        let p = try TrustTests.program(policy: policy, testClock: true)
        try p.maps.setLimit(.rate(1, burst: 20), for: .fragment)
        let payload = [UInt8](repeating: 0, count: 64)
        func later(_ src: String, id: UInt16) -> [UInt8] {
            src.contains(":")
                ? Packet.ethernet(Packet.EtherType.ipv6, Packet.ipv6(src: src, proto: Packet.Proto.udp, payload,
                    extensions: [(Packet.Proto.fragment, Packet.fragmentBody(offset: 9, more: false, id: UInt32(id)))]))
                : Packet.ethernet(Packet.EtherType.ipv4, Packet.ipv4(
                    src: src, proto: Packet.Proto.udp, payload, fragmentOffset: 9, id: id))
        }
        /// The packets the fragment bucket of `prefix` has counted in its entry: by itself, or with what the drop
        /// cache holds for it (`sources()`, as `top` reads it).
        func bucketPackets(_ prefix: String, withCache: Bool = false) throws -> UInt64 {
            try (withCache ? p.maps.sources() : p.maps.trackedSources())
                .first { $0.address == SourceAddress(prefix)! && $0.trafficClass == .fragment }?.packets ?? 0
        }
        /// `n` later fragments from the network `net` (its last part from 100 on), each dropped by rate.
        func flood(_ net: String, _ n: Int) throws {
            for i in 0..<n { #expect(try p.judge(later("\(net)\(100 + i % 100)", id: UInt16(i))).2 == .droppedRate) }
        }
        try onOneCPU {
            // The flood drains each prefix's bucket (20 pass), then is held: the entry counts no more of it.
            for (net, prefix) in [("198.18.64.", "198.18.64.0"), ("2001:db8:64::", "2001:db8:64::")] {
                for i in 0..<20 { #expect(try p.judge(later("\(net)\(100 + i)", id: UInt16(i))).2 == .passed) }
                try flood(net, 1)
                let counted = try bucketPackets(prefix)
                try flood(net, 30)
                #expect(try bucketPackets(prefix) == counted, "\(prefix) held: the cache drops the flood")
                #expect(try bucketPackets(prefix, withCache: true) == counted + 30, "the cache's count reaches it")
            }
            #expect(try p.judge(later("198.18.64.77", id: 1)) == (XDP_DROP_ACTION, .fragment, .droppedRate))
            // A real datagram from the prefix: its first fragment (an INVITE) is admitted, its later ones follow
            // it through the hold, up to the budget; then they are dropped like the flood's.
            let invite = Packet.udp(sport: 5060, dport: 5060, Array(("INVITE sip:100@198.18.0.2 SIP/2.0\r\n"
                + "Call-ID: f@x\r\nCSeq: 1 INVITE\r\nContent-Length: 1600\r\n\r\n").utf8) + [UInt8](repeating: 118, count: 1600))
            let first = Packet.ethernet(Packet.EtherType.ipv4, Packet.ipv4(
                src: "198.18.64.5", proto: Packet.Proto.udp, Array(invite.prefix(1480)), moreFragments: true, id: 777))
            let second = Packet.ethernet(Packet.EtherType.ipv4, Packet.ipv4(
                src: "198.18.64.5", proto: Packet.Proto.udp, Array(invite.dropFirst(1480)), fragmentOffset: 185, id: 777))
            #expect(try p.judge(first) == (XDP_PASS_ACTION, .invite, .passed))
            var after: [Reason: Int] = [:]
            for _ in 0..<60 { after[try p.judge(second).2!, default: 0] += 1 }
            let budget = Int(FG_FRAGMENT_BUDGET)
            #expect(after[.passed] == budget && after[.droppedRate] == 60 - budget, "\(after)")
            // A prefix that holds an allow-listed address is drained but never held: its flood reaches the bucket
            // frame by frame, and the allow-listed address's fragments pass.
            for i in 0..<20 { _ = try p.judge(later("198.18.66.\(100 + i)", id: UInt16(i))) }
            try flood("198.18.66.", 1)
            let allowedBefore = try bucketPackets("198.18.66.0")
            try flood("198.18.66.", 10)
            #expect(try bucketPackets("198.18.66.0") == allowedBefore + 10, "not held")
            let allowed = try p.judge(later("198.18.66.7", id: 1))
            #expect(allowed == (XDP_PASS_ACTION, .fragment, .passedAllow), "\(allowed)")
            // A change of policy: the next fragment takes the policy, whose drop holds the prefix again.
            try p.maps.setLimit(.rate(1, burst: 20), for: .fragment)
            let changedBefore = try bucketPackets("2001:db8:64::")
            try flood("2001:db8:64::", 10)
            #expect(try bucketPackets("2001:db8:64::") == changedBefore + 1, "stale, then held again")
            // A phone in the held prefix is verified: the hold ends at once, and is not made again while the
            // prefix holds a verified address.
            #expect(try TrustTests.register(p, "198.18.64.9") == .passed)
            #expect(try TrustTests.trusted(p)["198.18.64.9"] != nil)
            let verifiedBefore = try bucketPackets("198.18.64.0")
            try flood("198.18.64.", 10)
            #expect(try bucketPackets("198.18.64.0") == verifiedBefore + 10, "the hold ended with the verification")
        }
    }

    /// Neighbour discovery passes by the policy, but not with a fragment header (RFC 6980: hosts drop it): such a
    /// packet from a denied source is denied, and its ID opens no way for fragments.
    @Test func fragmentedNeighbourDiscoveryIsNotExempt() throws {
        var policy = FilterPolicy()
        policy.deny = [try CIDR("2001:db8:62::/64")]
        let p = try loadProgram(limits: Limit.defaults.merging([.fragment: .rate(1, burst: 1)]) { $1 }, policy: policy,
                                testClock: true)
        func solicitation(from src: String, fragment: (offset: UInt16, more: Bool)?) -> [UInt8] {
            Packet.ethernet(Packet.EtherType.ipv6, Packet.ipv6(
                src: src, proto: Packet.Proto.icmpv6, Packet.icmp(type: 135),
                extensions: fragment.map { [(Packet.Proto.fragment, Packet.fragmentBody(offset: $0.offset, more: $0.more, id: 5))] } ?? [],
                hopLimit: 255))
        }
        #expect(try p.judge(solicitation(from: "2001:db8:62::1", fragment: nil)) == (XDP_PASS_ACTION, .icmp, .passed))
        #expect(try p.judge(solicitation(from: "2001:db8:62::1", fragment: (0, false))) == (XDP_DROP_ACTION, .icmp, .droppedDeny))
        // From a source not denied: judged as ICMP; its first fragment, passed, lets its followers pass.
        #expect(try p.judge(solicitation(from: "2001:db8:63::1", fragment: (0, true))) == (XDP_PASS_ACTION, .icmp, .passed))
        let follower = Packet.ethernet(Packet.EtherType.ipv6, Packet.ipv6(
            src: "2001:db8:63::1", proto: Packet.Proto.icmpv6, [UInt8](repeating: 0, count: 16),
            extensions: [(Packet.Proto.fragment, Packet.fragmentBody(offset: 8, more: false, id: 5))], hopLimit: 255))
        #expect(try p.judge(follower) == (XDP_PASS_ACTION, .fragment, .passed))
        #expect(try p.judge(follower) == (XDP_PASS_ACTION, .fragment, .passed))  // by the note, not the bucket
    }

    /// An IPv6 packet whose chain holds a first fragment header and then a non-first one is a non-first fragment:
    /// it must not pass for a first fragment that lets the next 44 with its ID through.
    @Test func aChainOfFragmentHeadersDoesNotPassForAFirstFragment() throws {
        let p = try loadProgram(limits: Limit.defaults.merging([.fragment: .rate(1, burst: 1)]) { $1 }, testClock: true)
        func fragment(_ headers: [(offset: UInt16, more: Bool)]) -> [UInt8] {
            Packet.ethernet(Packet.EtherType.ipv6, Packet.ipv6(
                src: "2001:db8:61::5", proto: Packet.Proto.udp, [UInt8](repeating: 0x70, count: 64),
                extensions: headers.map { (Packet.Proto.fragment, Packet.fragmentBody(offset: $0.offset, more: $0.more, id: 99)) }))
        }
        // Its prefix's fragment bucket takes it (the one token), and nothing follows on its account.
        #expect(try p.judge(fragment([(0, true), (30, true)])) == (XDP_PASS_ACTION, .fragment, .passed))
        #expect(try p.judge(fragment([(60, false)])) == (XDP_DROP_ACTION, .fragment, .droppedRate))
    }

    /// A first fragment whose header block does not end in it could hide its CSeq in a later fragment, where
    /// the server reads it after reassembly: malformed, like a header block longer than the walk.
    @Test func aCSeqHiddenInALaterFragmentIsMalformed() throws {
        let p = try loadProgram(policy: perSourceOnly)
        let head = "OPTIONS sip:100@198.18.0.2 SIP/2.0\r\nCall-ID: h@x\r\nX-Pad: " + String(repeating: "p", count: 1500)
        let udp = Packet.udp(sport: 5060, dport: 5060, Array((head + "\r\nCSeq: 1 REGISTER\r\n\r\n").utf8))
        let first = Packet.ethernet(Packet.EtherType.ipv4, Packet.ipv4(
            src: "198.18.62.5", proto: Packet.Proto.udp, Array(udp.prefix(1480)), moreFragments: true, id: 9))
        #expect(try p.judge(first).2 == .droppedOversize)
        // A datagram cut short is not: the kernel drops it for its UDP length, and no server ever reads it.
        var lying = Packet.sipRaw(Array("OPTIONS sip:x SIP/2.0\r\nCall-ID: l@x\r\n".utf8), src: "198.18.62.6")
        lying[14 + 20 + 4] = 0x05  // UDP length 1,300
        lying[14 + 20 + 5] = 0x14
        #expect(try p.judge(lying).2 == .passed)
    }

    /// A request whose CSeq names REGISTER but whose start line is OPTIONS is dropped as malformed (RFC 3261
    /// 8.1.1.5), and a 200 naming "1 REGISTER" that answers no credentialed REGISTER of the source earns nothing:
    /// the forged-CSeq trick that used to buy 24 h of trust.
    @Test func aForgedCSeqBuysNoTrust() throws {
        let p = try TrustTests.program()
        let attacker = "198.18.7.20"
        #expect(try p.judge(Packet.request("OPTIONS", src: attacker, cseq: "1 REGISTER")).2 == .droppedMalformed)
        #expect(try p.judge(Packet.request("INVITE", src: attacker, cseq: "1 REGISTER")).2 == .droppedMalformed)
        #expect(try p.judge(Packet.request("REGISTER", src: attacker, cseq: "1 INVITE")).2 == .droppedMalformed)
        try TrustTests.inside(p, TrustTests.response("200 OK", to: attacker, cseq: "1 REGISTER"))
        // A credentialed REGISTER with that Call-ID, but the 200 names another CSeq number.
        #expect(try p.judge(Packet.request("REGISTER", src: attacker, extra: [TrustTests.credentials])).2 == .passed)
        try TrustTests.inside(p, TrustTests.response("200 OK", to: attacker, cseq: "2 REGISTER"))
        try TrustTests.inside(p, TrustTests.response("200 OK", to: attacker, cseq: "1 OPTIONS"))
        #expect(try TrustTests.trusted(p).isEmpty)
    }

    /// Leading CR/LF/SP/HT before the request line, a folded User-Agent and one at byte 1,000: classified and
    /// caught, as a server that skips them (Kamailio does) would read them.
    @Test(arguments: [
        ("\r\n", ["User-Agent: friendly-scanner"]),
        ("\r\n\r\n", ["User-Agent: friendly-scanner"]),
        (" ", ["User-Agent: friendly-scanner"]),
        ("\t\r\n", ["User-Agent: friendly-scanner"]),
        ("", ["User-Agent:\r\n friendly-scanner"]),
        ("", ["User-Agent:   \r\n\tsipvicious"]),
        ("", ["X-Padding: " + String(repeating: "a", count: 900), "User-Agent: friendly-scanner"]),
        ("\r\n", ["X-Padding: " + String(repeating: "b", count: 1400), "user-agent: sipcli/1.0"]),
    ])
    func reframedScannersAreCaught(lead: String, headers: [String]) throws {
        let p = try loadProgram(policy: perSourceOnly)
        let lines = ["OPTIONS sip:100@198.18.0.2 SIP/2.0", "Via: SIP/2.0/UDP 198.18.1.1:5060;branch=z9hG4bK-1",
                     "From: <sip:x@198.18.1.1>;tag=1", "To: <sip:100@198.18.0.2>", "Call-ID: 7@x", "CSeq: 1 OPTIONS"]
            + headers
        let payload = Array((lead + lines.joined(separator: "\r\n") + "\r\n\r\n").utf8)
        let (_, c, r) = try p.judge(Packet.sipRaw(payload))
        #expect(c == .options)
        #expect(r == .droppedScanner)
    }

    /// What RFC 3261 does not call a request but a lenient server may take for one (Kamailio matches methods in
    /// any case and skips any number of CRLFs): walked all the same, so its scanner signature is caught and a CSeq
    /// naming REGISTER or INVITE is malformed. A first fragment too short to walk, or whose header block goes on
    /// past it, is malformed too: its later fragments would pass unwalked.
    @Test func whatALenientServerTakesForARequestIsWalked() throws {
        let p = try loadProgram(policy: perSourceOnly)
        let lower = Packet.sipRaw(Array("options sip:x SIP/2.0\r\nUser-Agent: friendly-scanner\r\n\r\n".utf8), src: "198.18.63.1")
        #expect(try p.judge(lower) == (XDP_DROP_ACTION, .sipOther, .droppedScanner))
        let crlfs = Packet.sipRaw(Array("\r\n\r\n\r\n\r\n\r\nOPTIONS sip:x SIP/2.0\r\nUser-Agent: sipvicious\r\n\r\n".utf8),
                                  src: "198.18.63.2")
        #expect(try p.judge(crlfs) == (XDP_DROP_ACTION, .sipOther, .droppedScanner))
        let forged = Packet.sipRaw(Array("register sip:x SIP/2.0\r\nCall-ID: l@x\r\nCSeq: 1 REGISTER\r\n\r\n".utf8),
                                   src: "198.18.63.3")
        #expect(try p.judge(forged).2 == .droppedMalformed)
        #expect(try p.judge(Packet.sipRaw(Array("garbage\r\n\r\n".utf8), src: "198.18.63.4")).2 == .passed)
        for payload in [[UInt8](), Array("REGISTER".utf8)] {
            let first = Packet.ethernet(Packet.EtherType.ipv4, Packet.ipv4(
                src: "198.18.63.5", proto: Packet.Proto.udp, Packet.udp(dport: 5060, payload), moreFragments: true, id: 3))
            #expect(try p.judge(first).2 == .droppedOversize, "\(payload.count) bytes")
        }
    }

    /// The leading bytes are skipped only up to four: a fifth makes it not a request (sip-other), and a datagram
    /// of only CRLFs is an RFC 5626 keep-alive with its own class.
    @Test func framingLimitsAndKeepAlives() throws {
        let p = try loadProgram(policy: perSourceOnly)
        #expect(try p.judge(Packet.sipRaw(Array("\r\n\r\n INVITE sip:x SIP/2.0\r\n\r\n".utf8))).1 == .sipOther)
        #expect(try p.judge(Packet.sipRaw(Array("\r\n\r\nINVITE sip:x SIP/2.0\r\n\r\n".utf8))).1 == .invite)
        #expect(try p.judge(Packet.sipRaw(Array("\r\n\r\n".utf8))).1 == .keepalive)
        #expect(try p.judge(Packet.sipRaw(Array("\r\n".utf8))).1 == .keepalive)
        #expect(try p.judge(Packet.sipRaw(Array("\r\n\r\nx".utf8))).1 == .sipOther)
        // A header block that does not end within the 2,048 bytes scanned could hide its CSeq: malformed.
        let long = ["X-Padding: " + String(repeating: "c", count: 2100)]
        #expect(try p.judge(Packet.request("OPTIONS", extra: long)).2 == .droppedOversize)
        // A long body after a short header block is fine.
        let body = Array(("INVITE sip:x SIP/2.0\r\nCall-ID: b\r\nCSeq: 1 INVITE\r\n\r\n"
            + String(repeating: "v=0\r\n", count: 500)).utf8)
        #expect(try p.judge(Packet.sipRaw(body, src: "198.18.1.2")).2 == .passed)
    }

    /// A scanner that offends again after its ban expired is banned again at once, with no agent to sweep the
    /// expired entry (the XDP insert used BPF_NOEXIST, so it was not).
    @Test func aReturningScannerIsBannedAgainAfterItsBanExpired() throws {
        let p = try loadProgram(policy: perSourceOnly)
        let scanner = SourceAddress("198.18.7.30")!
        let probe = Packet.request("OPTIONS", src: "198.18.7.30", extra: ["User-Agent: friendly-scanner"])
        #expect(try p.judge(probe).2 == .droppedScanner)
        // Its ban runs out (written as expired a second ago, as time would leave it).
        var key = scanner.raw
        var expired = fg_ban()
        expired.expires_ns = monotonicNanoseconds() - 1_000_000_000
        expired.flags = UInt32(FG_BAN_SCANNER)
        #expect(bpf_map_update_elem(p.maps.fd(FG_MAP_AUTO_BANS), &key, &expired, UInt64(BPF_ANY)) == 0)
        #expect(try p.judge(Packet.request("OPTIONS", src: "198.18.7.30")).2 == .passed)
        #expect(try p.judge(probe).2 == .droppedScanner)
        let ban = try #require(p.maps.ban(of: scanner))
        #expect((ban.remainingSeconds() ?? 0) > 500, "banned again for its 10 minutes")
        #expect(try p.judge(Packet.request("OPTIONS", src: "198.18.7.30")).2 == .droppedBan)
    }

    /// The agent's housekeeping walk removes exactly the bans that ran out (here: by a `now` two seconds ahead)
    /// and counts the rest by origin, as the separate sweep and count do.
    @Test func theHousekeepingWalkSweepsWhatRanOutAndCountsTheRest() throws {
        let p = try loadProgram(policy: perSourceOnly, maxSources: 1024)
        try p.maps.ban(SourceAddress("198.18.80.1")!, seconds: 1)
        try p.maps.ban(SourceAddress("198.18.80.2")!, seconds: nil)
        #expect(try p.judge(Packet.request("OPTIONS", src: "198.18.80.3", extra: ["User-Agent: sipvicious"])).2
                    == .droppedScanner)
        let later = monotonicNanoseconds() + 2_000_000_000
        // One address at a time (the agent, for the bans XDP reported): only what ran out goes.
        #expect(try p.maps.removeExpiredBans(of: SourceAddress("198.18.80.2")!, now: later) == 0)
        #expect(try p.maps.removeExpiredBans(of: SourceAddress("198.18.80.3")!) == 0)
        let (removed, active) = try p.maps.sweepAndCountBans(now: later)
        #expect(removed == 1)
        #expect(active == ["integration": 0, "explicit": 1, "scanner": 1, "auto": 0, "brute-force": 0])
        #expect(p.maps.ban(of: SourceAddress("198.18.80.1")!) == nil)
        #expect(p.maps.ban(of: SourceAddress("198.18.80.2")!) != nil)
        #expect(try p.maps.activeBanCounts(now: later) == active)
    }

    /// 300,000 forged scanner sources fill the filter's own ban map (262,144): a real scanner after them is still
    /// banned (the least recently used forged ban makes room), and an operator's explicit ban still goes in (its
    /// map is never written by XDP).
    @Test func aFloodOfForgedScannersCannotFillTheBanMaps() throws {
        let p = try loadProgram(policy: perSourceOnly, maxSources: 1024)
        let flood = 300_000
        var banned = 0
        for i in 0..<flood {
            let src = "2001:db8:\(String(i >> 16, radix: 16)):\(String(i & 0xFFFF, radix: 16))::1"
            let frame = Packet.ethernet(Packet.EtherType.ipv6, Packet.ipv6(src: src, proto: Packet.Proto.udp, Packet.udp(
                dport: 5060, Array("OPTIONS sip:x SIP/2.0\r\nUser-Agent: friendly-scanner\r\n\r\n".utf8))))
            if try p.verdict(frame) == XDP_DROP_ACTION { banned += 1 }
        }
        #expect(banned == flood)
        let bans = try p.maps.bans()
        // What the agent counts without reading them all in: the same.
        #expect(try p.maps.activeBanCounts() == ["integration": 0, "explicit": 0, "scanner": bans.filter(\.scanner).count, "auto": 0,
                                                   "brute-force": 0])
        // And the agent's housekeeping walk (sweep and count in one), with nothing expired yet.
        let housekeeping = try p.maps.sweepAndCountBans()
        let counted = try p.maps.activeBanCounts()
        #expect(housekeeping.removed == 0)
        #expect(housekeeping.active == counted)
        // Full, as an LRU is: within its per-CPU free lists of the capacity.
        #expect(bans.count > Int(FG_DEFAULT_MAX_AUTO_BANS) * 99 / 100 && bans.count <= Int(FG_DEFAULT_MAX_AUTO_BANS),
                "the LRU is full: \(bans.count)")
        // A real scanner now.
        let scanner = "198.18.70.1"
        #expect(try p.judge(Packet.request("OPTIONS", src: scanner, extra: ["User-Agent: sipvicious"])).2 == .droppedScanner)
        #expect(p.maps.ban(of: SourceAddress(scanner)!)?.scanner == true)
        #expect(try p.judge(Packet.request("OPTIONS", src: scanner)).2 == .droppedBan)
        // An explicit ban, on an allow-listed trunk even.
        let trunk = "198.18.70.2"
        try p.maps.addCIDRs([try CIDR(trunk)], to: .allow)
        try p.maps.ban(SourceAddress(trunk)!, seconds: 600)
        #expect(try p.judge(Packet.request("INVITE", src: trunk)).2 == .droppedBan)
        #expect(p.maps.ban(of: SourceAddress(trunk)!)?.explicit == true)
    }

    /// A banned scanner that keeps sending keeps its ban while 400,000 forged scanner sources churn the filter's
    /// ban LRU (262,144): the LRU evicts the bans nobody looks up again, the forged ones, first.
    @Test func aBannedScannerThatKeepsSendingOutlastsASprayOfForgedOnes() throws {
        let p = try loadProgram(policy: perSourceOnly, maxSources: 1024)
        let scanner = "198.18.71.1"
        try onOneCPU {
            #expect(try p.judge(Packet.request("OPTIONS", src: scanner, extra: ["User-Agent: sipvicious"])).2
                == .droppedScanner)
            let again = Packet.request("OPTIONS", src: scanner)
            for i in 0..<400_000 {
                let src = "2001:db8:\(String(i >> 16, radix: 16)):\(String(i & 0xFFFF, radix: 16))::1"
                let frame = Packet.ethernet(Packet.EtherType.ipv6, Packet.ipv6(src: src, proto: Packet.Proto.udp, Packet.udp(
                    dport: 5060, Array("OPTIONS sip:x SIP/2.0\r\nUser-Agent: friendly-scanner\r\n\r\n".utf8))))
                _ = try p.verdict(frame)
                // The real scanner goes on sending: a few hundred packets every 10,000 forged ones.
                if i % 10_000 == 0 { _ = try p.testRun(again, repeat: 300) }
            }
        }
        #expect(p.maps.ban(of: SourceAddress(scanner)!)?.scanner == true, "the scanner's ban survived the spray")
    }

    /// Both CPUs deciding at once, each with its own drop cache and its flushes into the shared source entries: one
    /// floods the verified phone's REGISTER bucket from its own hop distance, the other sends scanner-signed
    /// OPTIONS in its name. Hundreds of thousands of drops, far past the auto-ban threshold on either CPU, and the
    /// phone is never banned.
    @Test func twoCPUsForgingForAVerifiedPhoneNeverBanIt() throws {
        let p = try verifiedPhone()
        let burst = Packet.request("REGISTER", src: phone, ttl: 57)
        let scan = Packet.request("OPTIONS", src: phone, extra: ["User-Agent: friendly-scanner"], ttl: 57)
        DispatchQueue.concurrentPerform(iterations: 2) { worker in
            for _ in 0..<20 { _ = try? p.testRun(worker == 0 ? burst : scan, repeat: 10_000) }
        }
        let counters = try p.maps.counters().packets
        #expect(counters[.register, .droppedRate] > 150_000, "\(counters[.register, .droppedRate])")
        // The OPTIONS: the verified burst of 60 reaches the walk (scanner-signed: dropped, no ban), the rest the rate.
        #expect(counters[.options, .droppedScanner] >= 60)
        #expect(counters[.options, .droppedScanner] + counters[.options, .droppedRate] == 200_000)
        #expect(p.maps.ban(of: SourceAddress(phone)!) == nil)
        #expect(try p.judge(Packet.request("INVITE", src: phone, ttl: 57)).2 == .passed)
    }

    /// The settings writer never switches off the bans XDP issues: two threads, one rewriting the settings as
    /// the agent's reloads and sweeps do, one issuing scanner bans through test runs; afterwards every banned
    /// source is dropped as banned.
    @Test func settingsWritesNeverHideBansIssuedMeanwhile() throws {
        let p = try loadProgram(policy: perSourceOnly)
        let maps = p.maps
        let stop = ManagedAtomicFlag()
        let writer = Thread {
            var settings = Settings.defaults
            var i = 0
            while !stop.isSet && i < 200_000 {
                settings.scannerBanSeconds = 600 + UInt32(i % 2)
                try? maps.setSettings(settings)
                _ = try? maps.sweepExpiredBans()
                i += 1
            }
        }
        writer.start()
        defer { stop.set() }
        let sources = (0..<400).map { "198.18.\(100 + $0 / 200).\($0 % 200 + 1)" }
        for source in sources {
            #expect(try p.judge(Packet.request("OPTIONS", src: source, extra: ["User-Agent: sipvicious"])).2
                == .droppedScanner)
        }
        stop.set()
        while !writer.isFinished { usleep(1000) }
        for source in sources {
            #expect(try p.judge(Packet.request("OPTIONS", src: source)).2 == .droppedBan, "\(source)")
        }
    }
}

/// A flag one thread sets and another reads.
final class ManagedAtomicFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
}
