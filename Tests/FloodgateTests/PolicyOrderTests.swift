import CFloodgate
@testable import FloodgateBPF
import FloodgateCore
import FloodgateLab
import Foundation
import Testing

@Suite struct PolicyOrderTests {
    let trunk = "198.18.50.1"

    @Test func denyBeatsAllow() throws {
        let program = try loadProgram(policy: perSourceOnly)
        try program.maps.addCIDRs([try CIDR("198.18.50.0/24")], to: .allow)
        try program.maps.addCIDRs([try CIDR("198.18.50.1")], to: .deny)
        #expect(try program.judge(Packet.request("INVITE", src: trunk)).2 == .droppedDeny)
        #expect(try program.judge(Packet.request("INVITE", src: "198.18.50.2")).2 == .passedAllow)
        try program.maps.removeCIDRs([try CIDR("198.18.50.1")], from: .deny)
        #expect(try program.judge(Packet.request("INVITE", src: trunk)).2 == .passedAllow)
    }

    @Test func anExplicitBanBeatsAllowAndAScannerBanDoesNot() throws {
        let program = try loadProgram(policy: perSourceOnly)
        try program.maps.addCIDRs([try CIDR("198.18.50.0/24")], to: .allow)
        // An allow-listed source's scanner-signed packet is dropped, but the filter does not ban it: its address
        // may be forged.
        #expect(try program.judge(Packet.request("OPTIONS", src: trunk, extra: ["User-Agent: sipsak 0.9"])).2 == .droppedScanner)
        #expect(program.maps.ban(of: SourceAddress(trunk)!) == nil)
        #expect(try program.judge(Packet.request("INVITE", src: trunk)).2 == .passedAllow)
        try program.maps.ban(SourceAddress(trunk)!, seconds: 60)
        #expect(try program.judge(Packet.request("INVITE", src: trunk)).2 == .droppedBan)
        try program.maps.unban(SourceAddress(trunk)!)
        #expect(try program.judge(Packet.request("INVITE", src: trunk)).2 == .passedAllow)
        // A source banned as a scanner before it was allow-listed gets in once it is.
        let other = "198.18.60.1"
        #expect(try program.judge(Packet.request("OPTIONS", src: other, extra: ["User-Agent: sipsak"])).2 == .droppedScanner)
        #expect(try program.judge(Packet.request("INVITE", src: other)).2 == .droppedBan)
        try program.maps.addCIDRs([try CIDR("198.18.60.0/24")], to: .allow)
        #expect(try program.judge(Packet.request("INVITE", src: other)).2 == .passedAllow)
    }

    @Test func anExpiredBanPasses() throws {
        // On the test clock, set from the ban's expiry (stamped from the real clock).
        let program = try loadProgram(policy: perSourceOnly, testClock: true)
        let address = try #require(SourceAddress("198.18.70.1"))
        try program.maps.ban(address, seconds: 1)
        let expires = try #require(program.maps.ban(of: address)?.expiresNS)
        try program.setTestClock(nanoseconds: expires - 100_000_000)
        #expect(try program.judge(Packet.request("INVITE", src: "198.18.70.1")).2 == .droppedBan)
        try program.setTestClock(nanoseconds: expires + 100_000_000)
        #expect(try program.judge(Packet.request("INVITE", src: "198.18.70.1")).2 == .passed)
    }

    @Test func allowBypassesPerSourceAndPrefixLimits() throws {
        var policy = FilterPolicy()
        policy.prefix = .rate(1, burst: 2)
        let program = try loadProgram(limits: [.invite: .rate(1, burst: 1)], policy: policy, testClock: true)
        try program.maps.addCIDRs([try CIDR("198.18.50.0/24")], to: .allow)
        for _ in 0..<100 { #expect(try program.judge(Packet.request("INVITE", src: trunk)).2 == .passedAllow) }
        let stranger = try (0..<3).map { _ in try program.judge(Packet.request("INVITE", src: "198.18.51.1")).2 }
        #expect(stranger == [.passed, .droppedRate, .droppedRate])
        #expect(try program.maps.counters().packets[.invite, .passedAllow] == 100)
    }

    @Test func aPrefixBucketBoundsARandomSourceFloodFromOneSubnet() throws {
        var policy = FilterPolicy()
        policy.prefix = .rate(1, burst: 50)
        let program = try loadProgram(policy: policy)
        var generator = SystemRandomNumberGenerator()
        var admitted = 0
        let start = ContinuousClock.now
        for _ in 0..<1000 {
            let src = "198.18.77.\(UInt8.random(in: 1...254, using: &generator))"
            if try program.judge(Packet.request("REGISTER", src: src)).2 == .passed { admitted += 1 }
        }
        // 50 of burst, plus at most one per second of test.
        let refill = Int((ContinuousClock.now - start).components.seconds) + 1
        #expect(admitted >= 50 && admitted <= 50 + refill, "admitted \(admitted) in \(refill) s")
        let counters = try program.maps.counters().packets
        #expect(counters[.register, .droppedPrefix] == UInt64(1000 - admitted))
        // Refused sources were not admitted to the per-source map.
        #expect(try program.maps.sources().count <= admitted)
        // Another subnet is not affected.
        #expect(try program.judge(Packet.request("REGISTER", src: "198.18.78.1")).2 == .passed)
    }

    /// A drained prefix is held in the drop cache for 25 ms at a time (FG_PREFIX_HOLD_NS), but the tokens that
    /// come due meanwhile are not lost: over a second of flood the prefix admits its burst and its rate, no more
    /// and no less.
    ///
    /// No less, while the flood goes on. On a loaded machine the test thread can be kept off its CPU for longer
    /// than the bucket takes to fill (tau and one interval, 500 ms), inside a run or between two, and what comes
    /// due in such a pause beyond what the bucket holds is lost to its cap, as for any flood that paused. Every
    /// pause lies between a run's start and the next run's end, so the lower bound gives up the rate's worth of
    /// each such span beyond 400 ms (less than tau less the hold, a jiffy and what a hold leaves in the bucket),
    /// and counts only from the first run's end to the last run's start. On an idle machine the spans are
    /// milliseconds and nothing is given up. The upper bound gives nothing: from the first run's start to the last
    /// run's end.
    @Test func aHeldPrefixStillAdmitsItsRate() throws {
        let rate = 100.0, burst = 50.0, pauseFree = 0.4
        // Measured on one CPU: the drop cache is per CPU.
        let (admitted, dropped, starts, ends) = try onOneCPU { () -> (Double, UInt64, [UInt64], [UInt64]) in
            var policy = FilterPolicy()
            policy.prefix = .rate(UInt32(rate), burst: UInt32(burst))
            var limits = Limit.defaults
            limits[.register] = .unlimited  // only the prefix decides
            let program = try loadProgram(limits: limits, policy: policy)
            let frame = Packet.request("REGISTER", src: "198.18.77.9")
            var starts: [UInt64] = [], ends: [UInt64] = [], pauses = 0.0
            // A second of flood without pauses, or ten of wall time, whichever comes first.
            while starts.isEmpty
                || (seconds(starts[0], ends.last!) - pauses < 1 && seconds(starts[0], ends.last!) < 10) {
                starts.append(monotonicNanoseconds())
                _ = try program.testRun(frame, repeat: 5_000)
                ends.append(monotonicNanoseconds())
                if starts.count > 1 { pauses += pause(from: starts[starts.count - 2], to: ends.last!, pauseFree) }
            }
            let counters = try program.maps.counters().packets
            return (Double(counters[.register, .passed] + counters[.register, .passedUntracked]),
                    counters[.register, .droppedPrefix], starts, ends)
        }
        let pauses = zip(starts, ends.dropFirst()).reduce(0) { $0 + pause(from: $1.0, to: $1.1, pauseFree) }
        let most = burst + rate * seconds(starts[0], ends.last!)
        let least = (burst + rate * (seconds(ends[0], starts.last!) - pauses)) * 0.95
        let span = seconds(starts[0], ends.last!)
        #expect(admitted >= least && admitted <= most + 2,
                "admitted \(admitted) in \(span) s with \(pauses) s of pauses: at least \(least), at most \(most)")
        #expect(dropped > 10_000, "the flood was dropped as a prefix: \(dropped)")
    }

    /// Sources spread over 100 /24s of one /16: each /24 has room, the /16 does not; another /16 is unaffected.
    @Test func theWidePrefixBoundsAFloodSpreadOverManyPrefixes() throws {
        var policy = FilterPolicy()
        policy.widePrefix = .rate(1, burst: 50)
        let program = try loadProgram(policy: policy)
        var admitted = 0
        let start = ContinuousClock.now
        for i in 0..<2000 {
            let src = "198.19.\(i % 100).\(1 + i / 100)"
            if try program.judge(Packet.request("REGISTER", src: src)).2 == .passed { admitted += 1 }
        }
        let refill = Int((ContinuousClock.now - start).components.seconds) + 1
        #expect(admitted >= 50 && admitted <= 50 + refill, "the /16's burst of 50, and its 1/s: \(admitted)")
        #expect(try program.maps.counters().packets[.register, .droppedPrefix] == UInt64(2000 - admitted))
        #expect(try program.judge(Packet.request("REGISTER", src: "198.18.77.1")).2 == .passed)
        // With /24 wide aggregates, the same flood fills 100 of them of 50 each.
        var settings = try program.maps.settings()
        settings.wideV4 = 24
        try program.maps.setSettings(settings)
        var more = 0
        for i in 0..<1000 {
            if try program.judge(Packet.request("REGISTER", src: "198.19.\(100 + i % 100).\(1 + i / 100)")).2 == .passed {
                more += 1
            }
        }
        #expect(more == 1000, "10 packets in each of 100 /24s: all within their own 50: \(more)")
    }

    /// A drained wider network is held in the drop cache as one slot of its own, so a flood spread over its /24s ends
    /// before the policy wherever in the network it comes from: a denied source in a /24 the flood never touched is
    /// dropped there (counted as dropped-prefix, not dropped-deny). A network that holds an allow-listed host is not
    /// held whole (the host's /24 is untouched by the flood and must reach the allow list): its drained /24s are held
    /// one by one instead, and its untouched /24s reach the policy. Another network is not touched at all.
    @Test func aDrainedWideNetworkIsHeldAsOneSlotUnlessItHoldsAnAllowListedSource() throws {
        try onOneCPU {
            var policy = FilterPolicy()
            policy.widePrefix = .rate(1, burst: 50)
            policy.allow = [try CIDR("198.19.200.7"), try CIDR("2001:db8:79:200::7")]
            policy.deny = Set(try ["198.18.150.9", "198.19.150.9", "198.19.5.9", "198.20.150.9", "2001:db8:77:999::9",
                                   "2001:db8:78:999::9", "2001:db8:79:999::9", "2001:db8:79:5::9"].map { try CIDR($0) })
            let program = try loadProgram(policy: policy, testClock: true)
            for net in [18, 19] {
                let reasons = try (0..<1000).map { i in
                    try program.judge(Packet.request("REGISTER", src: "198.\(net).\(i % 100).\(10 + i / 100)")).2
                }
                #expect(reasons.prefix(50).allSatisfy { $0 == .passed }
                    && reasons.dropFirst(50).allSatisfy { $0 == .droppedPrefix }, "198.\(net)/16: \(reasons)")
            }
            func judge(_ src: String) throws -> Reason? { try program.judge(Packet.request("REGISTER", src: src)).2 }
            // 198.18/16 holds no allow-listed source: held whole.
            #expect(try judge("198.18.150.9") == .droppedPrefix)
            #expect(try judge("198.18.151.1") == .droppedPrefix)
            // The network's slot is asked only for SIP classes: another UDP port's datagrams go to their own policy.
            #expect(try program.judge(Packet.udp4(src: "198.18.150.9", dport: 10000)).2 == .droppedDeny)
            #expect(try program.judge(Packet.udp4(src: "198.18.151.1", dport: 10000)).2 == .passed)
            // 198.19/16 holds one: its host passes, its untouched /24s reach the deny list, its drained /24s are held.
            #expect(try judge("198.19.200.7") == .passedAllow)
            #expect(try judge("198.19.150.9") == .droppedDeny)
            #expect(try judge("198.19.151.1") == .droppedPrefix)
            #expect(try judge("198.19.5.9") == .droppedPrefix)
            #expect(try judge("198.20.150.9") == .droppedDeny)
            #expect(try judge("198.20.151.1") == .passed)
            // The same in IPv6: 2001:db8:77::/48 from 100 of its /64s.
            let reasons = try (0..<1000).map { i in
                try program.judge(Packet.udp6(src: "2001:db8:77:\(i % 100)::\(10 + i / 100)", dport: 5060)).2
            }
            #expect(reasons.prefix(50).allSatisfy { $0 == .passed }
                && reasons.dropFirst(50).allSatisfy { $0 == .droppedPrefix }, "2001:db8:77::/48: \(reasons)")
            #expect(try program.judge(Packet.udp6(src: "2001:db8:77:999::9", dport: 5060)).2 == .droppedPrefix)
            #expect(try program.judge(Packet.udp6(src: "2001:db8:78:999::9", dport: 5060)).2 == .droppedDeny)
            // 2001:db8:79::/48 holds an allow-listed host: as 198.19/16.
            let held = try (0..<1000).map { i in
                try program.judge(Packet.udp6(src: "2001:db8:79:\(i % 100)::\(10 + i / 100)", dport: 5060)).2
            }
            #expect(held.dropFirst(50).allSatisfy { $0 == .droppedPrefix }, "2001:db8:79::/48: \(held)")
            #expect(try program.judge(Packet.udp6(src: "2001:db8:79:200::7", dport: 5060)).2 == .passedAllow)
            #expect(try program.judge(Packet.udp6(src: "2001:db8:79:999::9", dport: 5060)).2 == .droppedDeny)
            #expect(try program.judge(Packet.udp6(src: "2001:db8:79:5::9", dport: 5060)).2 == .droppedPrefix)
            // A change of policy makes the slot stale at once: the deny list is reached again.
            try program.maps.setLimit(.rate(1, burst: 50), .prefix)
            #expect(try judge("198.18.150.9") == .droppedDeny)
        }
    }

    /// A held aggregate drops every SIP datagram of its sources however it is framed, each counted once as
    /// `dropped-prefix` in its own class's row: plain frames, a leading CRLF, a keep-alive, a short datagram, IPv4
    /// options, a VLAN tag. A source outside it passes while it is held on the same CPU; a datagram to another port,
    /// however much it reads like SIP, is not the aggregate's to drop; and a sampled drop names its source, not the
    /// network. The plain frames among them are dropped by the check before the parse (lib/drop_cache.h,
    /// fg_held_unparsed), the others by the one after it: both must give exactly these verdicts.
    @Test func aHeldAggregateDropsItsSourcesSIPHoweverFramedInEachClasssRow() throws {
        try onOneCPU {
            var policy = FilterPolicy()
            policy.widePrefix = .rate(1, burst: 50)
            let program = try loadProgram(policy: policy, testClock: true)
            let events = try EventReader(program.maps)
            for (network, fresh) in [("198.18", "198.18.160.1"), ("2001:db8:77", "2001:db8:77:160::1")] {
                let v4 = !fresh.contains(":")
                try PolicyOrderTests.drain(program, network)
                func udp(dport: UInt16 = 5060, options: [UInt8] = [], vlans: [UInt16] = [], _ text: String) -> [UInt8] {
                    let datagram = Packet.udp(dport: dport, Array(text.utf8))
                    return v4 ? Packet.ethernet(Packet.EtherType.ipv4, vlans: vlans, Packet.ipv4(
                            src: fresh, proto: Packet.Proto.udp, datagram, options: options))
                        : Packet.ethernet(Packet.EtherType.ipv6, vlans: vlans, Packet.ipv6(
                            src: fresh, dst: "2001:db8::2", proto: Packet.Proto.udp, datagram))
                }
                let invite = "INVITE sip:100@x SIP/2.0\r\nCall-ID: 1@x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
                let frames: [(String, [UInt8], TrafficClass)] = [
                    ("an INVITE", PolicyOrderTests.request("INVITE", from: fresh), .invite),
                    ("an OPTIONS", PolicyOrderTests.request("OPTIONS", from: fresh), .options),
                    ("a response", udp("SIP/2.0 200 OK\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"), .response),
                    ("an INVITE after a leading CRLF", udp("\r\n" + invite), .invite),
                    ("a keep-alive", udp("\r\n\r\n"), .keepalive),
                    ("a datagram shorter than 24 bytes", udp("INVITE sip:1@x SIP/2.0"), .invite),
                    ("an INVITE behind a VLAN tag", udp(vlans: [Packet.EtherType.vlan], invite), .invite),
                ] + (v4 ? [("an INVITE with IPv4 options", udp(options: [1, 1, 1, 1], invite), .invite)] : [])
                for (what, frame, row) in frames {
                    let r = try UnparsedDropTests.judge(program, frame)
                    #expect(r.0 == UnparsedDropTests.drop && r.1 == row && r.2 == .droppedPrefix, "\(fresh): \(what): \(r)")
                }
                // A source outside the held networks, while they are held on this CPU.
                let outside = v4 ? "198.20.160.1" : "2001:db8:78:160::1"
                let passed = try UnparsedDropTests.judge(program, PolicyOrderTests.request("INVITE", from: outside))
                #expect(passed.0 == UnparsedDropTests.pass && passed.2 == .passed, "\(outside): \(passed)")
                // Another port: the aggregates limit SIP classes only.
                let other = try UnparsedDropTests.judge(program, udp(dport: 53, invite))
                #expect(other.0 == UnparsedDropTests.pass && other.1 == .other && other.2 == .passed, "\(fresh): \(other)")
                // One drop in FG_DROP_SAMPLE_EVERY of a class and reason on a CPU is reported with its source.
                _ = events.drain()
                let sampled = Int(FG_DROP_SAMPLE_EVERY)
                _ = try program.testRun(udp(invite), repeat: UInt32(sampled))
                let samples = events.drain().filter { $0.kind == .dropSample && $0.reason == .droppedPrefix }
                #expect(samples.count == 1 && samples.first?.address == SourceAddress(fresh)
                        && samples.first?.trafficClass == .invite, "\(fresh): \(samples)")
            }
        }
    }

    /// The reframing tests' filter: the wider networks at 1/s (burst 50), malformed frames passed (so that a drop of
    /// one could not hide among the drops it would get anyway), on the test clock.
    static func reframingProgram() throws -> FloodgateProgram {
        var policy = FilterPolicy()
        policy.widePrefix = .rate(1, burst: 50)
        var settings = Settings.defaults
        settings.malformed = .pass
        return try loadProgram(settings: settings, policy: policy, testClock: true)
    }

    /// Drains the wider network `network` ("198.18" for 198.18.0.0/16, "2001:db8:77" for its /48) from 1,000 of its
    /// sources' REGISTERs over 100 of its /24s (/64s), and checks that it is then held.
    static func drain(_ program: FloodgateProgram, _ network: String) throws {
        let reasons = try (0..<1000).map { i in
            try program.judge(PolicyOrderTests.request("REGISTER", from: network.contains(":")
                ? "\(network):\(i % 100)::\(10 + i / 100)" : "\(network).\(i % 100).\(10 + i / 100)")).2
        }
        #expect(reasons.dropFirst(50).allSatisfy { $0 == .droppedPrefix }, "\(network): held")
    }

    /// The held aggregate is asked before the parse for the frames the parse reads in a few loads (untagged; IPv4
    /// without options and not a fragment, or IPv6 with UDP next; a source that is not bogus; 24 bytes of payload
    /// within the UDP length, the first not CR, LF, space or tab) to a SIP port (lib/drop_cache.h, fg_held_unparsed).
    /// A sender in the held network who reframes the bytes must get from it exactly the verdict the parse gives: bytes
    /// that only read like a UDP header to 5060 from a wrong offset (in a non-first IPv4 fragment, in IPv4 options
    /// before a datagram to port 53, in an IPv6 fragment header), a UDP length under its own header, one that cuts a
    /// REGISTER's method short of its space, an IPv4-mapped IPv6 source inside a held IPv4 network. Malformed frames
    /// pass here (the operator's choice), so that a drop of one could not hide among the drops it would get anyway. A
    /// change of policy ends the hold for these frames too: with the wider networks unlimited, the next plain INVITE
    /// from the network passes (each network's checked while it is the one held on the CPU).
    @Test func aHeldAggregatesCheckBeforeTheParseGivesTheParsesVerdictToReframedBytes() throws {
        try onOneCPU {
            let program = try PolicyOrderTests.reframingProgram()
            let invite = Array("INVITE sip:100@x SIP/2.0\r\nCall-ID: 1@x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n".utf8)
            let register = Array("REGISTER sip:x SIP/2.0\r\nCall-ID: 1@x\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n".utf8)
            // A UDP header to 5060 with `payload`'s length, then the payload: what a reframing would have read there.
            let fake = Packet.udp(dport: 5060, invite)
            for (index, (network, fresh)) in [("198.18", "198.18.160.1"), ("2001:db8:77", "2001:db8:77:160::1")].enumerated() {
                let v4 = !fresh.contains(":")
                try PolicyOrderTests.drain(program, network)
                func frame(src: String = fresh, _ proto: UInt8, _ l4: [UInt8], options: [UInt8] = [],
                           fragmentOffset: UInt16 = 0, extensions: [(type: UInt8, body: [UInt8])] = []) -> [UInt8] {
                    src.contains(":")
                        ? Packet.ethernet(Packet.EtherType.ipv6, Packet.ipv6(src: src, dst: "2001:db8::2", proto: proto, l4,
                                                                             extensions: extensions))
                        : Packet.ethernet(Packet.EtherType.ipv4, Packet.ipv4(src: src, proto: proto, l4, options: options,
                                                                             fragmentOffset: fragmentOffset))
                }
                // The UDP length field, set apart from the bytes that follow.
                func withLength(_ datagram: [UInt8], _ length: UInt16) -> [UInt8] {
                    Array(datagram[0..<4]) + Packet.be16(length) + Array(datagram[6...])
                }
                var frames: [(String, [UInt8], UInt32, TrafficClass, Reason)] = [
                    ("a plain INVITE", frame(Packet.Proto.udp, fake), UnparsedDropTests.drop, .invite, .droppedPrefix),
                    ("a UDP length of 20 bytes of payload before 60 more", frame(Packet.Proto.udp, withLength(fake, 28)),
                     UnparsedDropTests.drop, .invite, .droppedPrefix),
                    // The parse reads 8 bytes, "REGISTER" without its space: not a REGISTER.
                    ("a UDP length that ends a REGISTER before its space",
                     frame(Packet.Proto.udp, withLength(Packet.udp(dport: 5060, register), 16)),
                     UnparsedDropTests.drop, .sipOther, .droppedPrefix),
                    ("a UDP length under its own header", frame(Packet.Proto.udp, withLength(fake, 4)),
                     UnparsedDropTests.pass, .other, .passedMalformed),
                ]
                if v4 {
                    frames += [
                        ("a non-first fragment whose bytes read as a UDP header to 5060 and an INVITE",
                         frame(Packet.Proto.udp, fake, fragmentOffset: 8), UnparsedDropTests.pass, .fragment, .passed),
                        ("IPv4 options that read as a UDP header to 5060, before a datagram to port 53",
                         frame(Packet.Proto.udp, Packet.udp(dport: 53, invite), options: Array(fake[0..<8])),
                         UnparsedDropTests.pass, .other, .passed),
                        ("an IPv4-mapped IPv6 source in the held IPv4 network", frame(src: "::ffff:\(fresh)", Packet.Proto.udp, fake),
                         UnparsedDropTests.pass, .other, .passedMalformed),
                    ]
                } else {
                    // A fragment header whose eight bytes read as a UDP header to 5060 (offset 632, a reserved bit
                    // set; its identification the length), then the INVITE: a non-first fragment.
                    let header = [UInt8(0), 0x13, 0xC4] + Packet.be16(UInt16(8 + invite.count)) + [0, 0]
                    frames += [
                        ("an IPv6 fragment header that reads as a UDP header to 5060, before an INVITE",
                         frame(Packet.Proto.udp, invite, extensions: [(type: 44, body: header)]),
                         UnparsedDropTests.pass, .fragment, .passed),
                    ]
                }
                for (what, bytes, action, row, reason) in frames {
                    let r = try UnparsedDropTests.judge(program, bytes)
                    #expect(r.0 == action && r.1 == row && r.2 == reason, "\(fresh): \(what): \(r)")
                }
                // The policy changed while this network is the one held: its next plain INVITE passes. The limit put
                // back (another change) for the next network.
                try program.maps.setLimit(.unlimited, .widePrefix)
                let next = v4 ? "198.18.161.1" : "2001:db8:77:161::1"
                let r = try UnparsedDropTests.judge(program, PolicyOrderTests.request("INVITE", from: next))
                #expect(r.0 == UnparsedDropTests.pass && r.1 == .invite && r.2 == .passed, "\(next) after the change: \(r)")
                if index == 0 { try program.maps.setLimit(.rate(1, burst: 50), .widePrefix) }
            }
        }
    }

    /// Frames made at random (a seeded generator, so a failure repeats), sent from sources in two held networks and,
    /// byte for byte, from sources outside them: IPv4 and IPv6, VLAN tags, IP options, fragments, UDP, TCP and ICMP,
    /// SIP and other ports, UDP lengths true and false, payloads that are requests, responses, keep-alives, leading
    /// blanks, lower case or noise, cut short or not, IPv4-mapped sources, and IPv4 options or an IPv6 fragment
    /// header that read as a UDP header to 5060. The held source's frame must be counted in the row the outside one
    /// is, and dropped as `dropped-prefix` exactly when that row is a SIP class and the frame is not malformed:
    /// whichever of the checks before and after the parse decides it. Before each held frame a fresh source of its
    /// family's network sends a REGISTER, so that network is the one held on the CPU and the check before the parse
    /// sees the frame. Each frame has sources of its own, so no source's buckets carry over.
    @Test func aHeldNetworksFramesGetTheRowOfTheSameBytesFromOutsideAndADropForEachSIPOne() throws {
        try onOneCPU {
            let program = try PolicyOrderTests.reframingProgram()
            for network in ["198.18", "2001:db8:77"] { try PolicyOrderTests.drain(program, network) }
            var seed: UInt64 = 0x5eed_f10d
            func next(_ n: Int) -> Int {
                seed = seed &* 6364136223846793005 &+ 1442695040888963407
                return Int((seed >> 33) % UInt64(n))
            }
            let payloads: [[UInt8]] = [
                "INVITE sip:100@x SIP/2.0\r\nCall-ID: 1@x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
                "REGISTER sip:x SIP/2.0\r\nCall-ID: 2@x\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n",
                "OPTIONS sip:x SIP/2.0\r\nCall-ID: 3@x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
                "SIP/2.0 200 OK\r\nCall-ID: 4@x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
                "BYE sip:x SIP/2.0\r\nCall-ID: 5@x\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
                "\r\n\r\nINVITE sip:100@x SIP/2.0\r\nCall-ID: 6@x\r\nCSeq: 1 INVITE\r\n\r\n",
                "\r\n\r\n", "invite sip:100@x SIP/2.0\r\nCall-ID: 7@x\r\n\r\n",
            ].map { Array($0.utf8) } + [(0..<40).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }]
            let ports: [UInt16] = [5060, 5060, 5060, 5061, 53, 10_000]
            var sipDrops = 0, others = 0
            for k in 0..<400 {
                let v6 = next(2) == 1
                var payload = payloads[next(payloads.count)]
                if next(4) == 0 { payload = Array(payload.prefix(next(payload.count + 1))) }
                let port = ports[next(ports.count)]
                var l4: [UInt8]
                var proto: UInt8 = Packet.Proto.udp
                switch next(10) {
                case 0: proto = Packet.Proto.tcp; l4 = Packet.tcp(dport: port, flags: next(2) == 0 ? 0x02 : 0x18, payload)
                case 1: proto = v6 ? Packet.Proto.icmpv6 : Packet.Proto.icmp; l4 = Packet.icmp(type: v6 ? 128 : 8)
                default:
                    l4 = Packet.udp(dport: port, payload)
                    if next(4) == 0 { l4 = Array(l4[0..<4]) + Packet.be16(UInt16(next(96))) + Array(l4[6...]) }
                }
                let vlans: [UInt16] = next(8) == 0 ? [Packet.EtherType.vlan] : []
                // Eight bytes that read as a UDP header to 5060 for the rest of the frame, where a reframing would put
                // them: IPv4 options, or (offset 632, a reserved bit set) an IPv6 fragment header.
                let fake = [UInt8(0x9c), 0x40, 0x13, 0xC4] + Packet.be16(UInt16(truncatingIfNeeded: 8 + l4.count)) + [0, 0]
                let options: [UInt8] = next(6) == 0 ? (next(2) == 0 ? fake : Array(l4.prefix(8))) : []
                let fragment = next(6)
                let mapped = v6 && next(12) == 0
                func frame(_ src: String) -> [UInt8] {
                    if v6 {
                        var extensions: [(type: UInt8, body: [UInt8])] = []
                        if fragment == 0 { extensions = [(type: 44, body: Packet.fragmentBody(offset: UInt16(1 + next(4)), more: false))] }
                        if fragment == 1 { extensions = [(type: 44, body: Packet.fragmentBody(offset: 0, more: true))] }
                        if fragment == 2 { extensions = [(type: 44, body: Array(fake[1...]))] }
                        return Packet.ethernet(Packet.EtherType.ipv6, vlans: vlans,
                                               Packet.ipv6(src: src, dst: "2001:db8::2", proto: proto, l4, extensions: extensions))
                    }
                    return Packet.ethernet(Packet.EtherType.ipv4, vlans: vlans, Packet.ipv4(
                        src: src, proto: proto, l4, options: options, fragmentOffset: fragment == 0 ? UInt16(1 + next(4)) : 0,
                        moreFragments: fragment == 1))
                }
                let (a, b) = (k / 200, k % 200 + 1)
                let held = v6 ? (mapped ? "::ffff:198.18.\(170 + a).\(b)" : "2001:db8:77:\(170 + a):\(b)::1") : "198.18.\(170 + a).\(b)"
                let outside = v6 ? (mapped ? "::ffff:198.20.\(170 + a).\(b)" : "2001:db8:78:\(170 + a):\(b)::1") : "198.20.\(170 + a).\(b)"
                // The same choices for both frames: the generator is asked once per frame, above and in frame().
                let saved = seed
                let outsideFrame = frame(outside)
                seed = saved
                let heldFrame = frame(held)
                let o = try UnparsedDropTests.judge(program, outsideFrame)
                // A fresh source's plain REGISTER first: the network of the held frame's family is then the one held
                // on the CPU, and the check before the parse sees the frame.
                let prime = v6 ? "2001:db8:77:\(250 - a):\(b)::1" : "198.18.\(250 - a).\(b)"
                #expect(try program.judge(PolicyOrderTests.request("REGISTER", from: prime)).2 == .droppedPrefix, "\(prime)")
                let h = try UnparsedDropTests.judge(program, heldFrame)
                let sip = (o.1?.isSIP ?? false) && o.2 != .passedMalformed
                if sip {
                    sipDrops += 1
                    #expect(h.0 == UnparsedDropTests.drop && h.1 == o.1 && h.2 == .droppedPrefix, "frame \(k) from \(held): \(h), outside \(o)")
                } else {
                    others += 1
                    #expect(h.1 == o.1 && h.2 != .droppedPrefix, "frame \(k) from \(held): \(h), outside \(o)")
                }
            }
            // Both kinds were sent, many of each.
            #expect(sipDrops > 100 && others > 50, "\(sipDrops) SIP frames, \(others) others")
        }
    }

    /// A forger's IPv6 sources in ::/64 (not bogus: only ::, ::1 and ::ffff:0:0/96 are) drain that prefix, or its
    /// /48, which the drop cache then holds, and each CPU copies the hold into its state as a mask and a network
    /// (lib/drop_cache.h, fg_hold_aggregate). ::/64 and ::/48 hold the IPv4-mapped addresses, which the copy's
    /// compare cannot tell from IPv6 ones: no IPv4 source's SIP may be dropped for such a hold, while the forger's
    /// own sources still are.
    @Test func aDrainedIPv6NetworkAroundTheIPv4MappedAddressesHoldsNoIPv4Source() throws {
        try onOneCPU {
            for level in ["prefix ::/64", "network ::/48"] {
                var policy = FilterPolicy()
                if level.hasPrefix("prefix") {
                    policy.prefix = .rate(1, burst: 50)
                    policy.widePrefix = .unlimited
                } else {
                    policy.widePrefix = .rate(1, burst: 50)
                }
                let program = try loadProgram(policy: policy, testClock: true)
                let forged = { (i: Int) in level.hasPrefix("prefix") ? "::2:\(i + 2)" : "::\(i + 2):0:0:1" }
                let reasons = try (0..<200).map { i in
                    try program.judge(PolicyOrderTests.request("REGISTER", from: forged(i))).2
                }
                #expect(reasons.suffix(100).allSatisfy { $0 == .droppedPrefix }, "\(level): held")
                for source in ["198.18.5.5", "198.19.200.1", "198.18.0.77"] {
                    for method in ["INVITE", "REGISTER", "OPTIONS"] {
                        let r = try UnparsedDropTests.judge(program, PolicyOrderTests.request(method, from: source))
                        #expect(r.0 == UnparsedDropTests.pass && r.2 != .droppedPrefix, "\(level): \(source) \(method): \(r)")
                    }
                }
                let again = try UnparsedDropTests.judge(program, PolicyOrderTests.request("INVITE", from: forged(500)))
                #expect(again.0 == UnparsedDropTests.drop && again.2 == .droppedPrefix, "\(level): the forger: \(again)")
            }
        }
    }

    /// After a change of the wider networks' length (/16 to /20) the allow-listed host's new network is marked (that
    /// the mark comes before the switch, the agent's order, is not something a test can catch between two calls): a
    /// flood that drains the /20 gets its /24s held one by one, the host passes, and a denied source in an untouched
    /// /24 of it reaches the deny list. The /20 beside it, without such a host, is held whole.
    @Test func anAllowListedHostsNetworkStaysOutOfTheCacheAfterItsLengthChanges() throws {
        try onOneCPU {
            var policy = FilterPolicy()
            policy.widePrefix = .rate(1, burst: 50)
            policy.allow = [try CIDR("198.19.200.7")]
            policy.deny = Set(try ["198.19.201.9", "198.19.193.9", "198.19.185.9"].map { try CIDR($0) })
            let program = try loadProgram(policy: policy, testClock: true)
            var settings = try program.maps.settings()
            settings.wideV4 = 20
            try program.maps.setSettings(settings)
            func judge(_ src: String) throws -> Reason? { try program.judge(Packet.request("REGISTER", src: src)).2 }
            // 198.19.192.0/20 (the host's) from eight of its /24s, and 198.19.176.0/20 likewise.
            for base in [192, 176] {
                let reasons = try (0..<1000).map { i in try judge("198.19.\(base + i % 8).\(10 + i / 8)") }
                #expect(reasons.prefix(50).allSatisfy { $0 == .passed }
                    && reasons.dropFirst(50).allSatisfy { $0 == .droppedPrefix }, "198.19.\(base).0/20: \(reasons)")
            }
            #expect(try judge("198.19.200.7") == .passedAllow)
            #expect(try judge("198.19.201.9") == .droppedDeny)
            #expect(try judge("198.19.193.9") == .droppedPrefix)
            #expect(try judge("198.19.185.9") == .droppedPrefix)
        }
    }

    /// A held wider network is held only until its bucket's next token, not for the prefixes' minimum hold (25 ms):
    /// a token that comes due goes to the next packet from anywhere in the network (here a /24 the flood never
    /// used), not to the first packets of the flood after a longer hold.
    @Test func aHeldWideNetworkLetsItsNextTokenThrough() throws {
        try onOneCPU {
            var policy = FilterPolicy()
            policy.widePrefix = .rate(1000, burst: 50)
            let program = try loadProgram(policy: policy, testClock: true)
            let reasons = try (0..<200).map { i in
                try program.judge(Packet.request("REGISTER", src: "198.18.\(i % 100).\(10 + i / 100)")).2
            }
            #expect(reasons.prefix(50).allSatisfy { $0 == .passed }
                && reasons.dropFirst(50).allSatisfy { $0 == .droppedPrefix }, "\(reasons)")
            #expect(try program.judge(Packet.request("REGISTER", src: "198.18.200.1")).2 == .droppedPrefix)
            // 10 ms later (the test clock's): ten tokens have come due, and the slot's jiffy has passed.
            try program.setTestClock(nanoseconds: 1_000_000_000_000 + 10_000_000)
            #expect(try program.judge(Packet.request("REGISTER", src: "198.18.200.2")).2 == .passed)
        }
    }

    @Test func aDrainedPrefixDropsItsSourcesUntilItRefillsButNotAllowListedOnes() throws {
        var policy = FilterPolicy()
        policy.prefix = .rate(1, burst: 5)
        let program = try loadProgram(policy: policy, testClock: true)
        let reasons = try (1...20).map { i in try program.judge(Packet.request("REGISTER", src: "198.18.77.\(i)")).2 }
        #expect(reasons.prefix(5).allSatisfy { $0 == .passed } && reasons.dropFirst(5).allSatisfy { $0 == .droppedPrefix },
                "\(reasons)")
        // The prefix is now dropped from the cache, but the allow list still comes first.
        try program.maps.addCIDRs([try CIDR("198.18.77.200")], to: .allow)
        #expect(try program.judge(Packet.request("REGISTER", src: "198.18.77.200")).2 == .passedAllow)
        #expect(try program.judge(Packet.request("REGISTER", src: "198.18.77.201")).2 == .droppedPrefix)
        try program.maps.setLimit(.unlimited, .prefix)
        #expect(try program.judge(Packet.request("REGISTER", src: "198.18.77.202")).2 == .passed)
    }

    /// A drained prefix is dropped from the drop cache before the policy, deny list and all, unless it holds an
    /// allow-listed source (a /32 inside it, or a network as wide as it): then the policy runs in order.
    @Test func aDrainedPrefixIsDroppedBeforeThePolicyUnlessItHoldsAnAllowListedSource() throws {
        try onOneCPU {
            var policy = FilterPolicy()
            policy.prefix = .rate(1, burst: 5)
            policy.allow = [try CIDR("198.18.77.200"), try CIDR("198.18.80.0/23")]
            policy.deny = [try CIDR("198.18.77.66"), try CIDR("198.18.78.66"), try CIDR("198.18.81.66")]
            let program = try loadProgram(policy: policy, testClock: true)
            for net in [77, 78] {
                let reasons = try (1...20).map { i in
                    try program.judge(Packet.request("REGISTER", src: "198.18.\(net).\(i)")).2
                }
                #expect(reasons.prefix(5).allSatisfy { $0 == .passed }
                    && reasons.dropFirst(5).allSatisfy { $0 == .droppedPrefix }, "\(net): \(reasons)")
            }
            #expect(try program.judge(Packet.request("REGISTER", src: "198.18.78.66")).2 == .droppedPrefix)
            #expect(try program.judge(Packet.request("REGISTER", src: "198.18.77.66")).2 == .droppedDeny)
            #expect(try program.judge(Packet.request("REGISTER", src: "198.18.77.200")).2 == .passedAllow)
            #expect(try program.judge(Packet.request("REGISTER", src: "198.18.77.201")).2 == .droppedPrefix)
            // Inside an allow-listed /23 every source is allowed, and the deny list comes first.
            #expect(try program.judge(Packet.request("REGISTER", src: "198.18.81.66")).2 == .droppedDeny)
            #expect(try program.judge(Packet.request("REGISTER", src: "198.18.81.67")).2 == .passedAllow)
            // The markers follow the prefix length: with /16 aggregates, 198.18.0.0/16 holds allowed sources.
            var settings = try program.maps.settings()
            settings.prefixV4 = 16
            try program.maps.setSettings(settings)
            let reasons = try (1...20).map { i in try program.judge(Packet.request("REGISTER", src: "198.18.90.\(i)")).2 }
            #expect(reasons.dropFirst(5).allSatisfy { $0 == .droppedPrefix }, "\(reasons)")
            #expect(try program.judge(Packet.request("REGISTER", src: "198.18.78.66")).2 == .droppedDeny)
            #expect(try program.judge(Packet.request("REGISTER", src: "198.18.79.1")).2 == .droppedPrefix)
            // A /16 for both levels (once each), a /24 and a /16, two /22s and a /16.
            func keys(_ v4: UInt8) -> Int {
                FilterMaps.allowPrefixKeys(Array(policy.allow), prefixV4: v4, prefixV6: 64, wideV4: 16, wideV6: 48).count
            }
            #expect(keys(16) == 2 && keys(24) == 2 && keys(22) == 3)
            #expect(FilterMaps.allowPrefixKeys(Array(policy.allow), prefixV4: 24, prefixV6: 64, wideV4: 24, wideV6: 64)
                .count == 2, "the /32 at both levels; the /23, wider than a /24, is in fg_allow")
        }
    }

    /// The drop cache tells a source without a slot of its own by 16 bits of tag (in fg_cpu's value), without reading
    /// the slot. A forger can pick an address whose slot and tag are a dropped source's (the hash folds the address
    /// by XOR: here an IPv6 address with two of its words swapped), but its packets are still compared by their
    /// whole key: they go on to the policy and pass, and the dropped source stays dropped. A source whose slot
    /// another has taken since is judged by the policy.
    @Test func aSourceWithADroppedSourcesSlotAndTagIsJudgedOnItsOwn() throws {
        try onOneCPU {
            let denied = try #require(SourceAddress("2001:db8::1:0:2"))
            let twin = try #require(SourceAddress("2001:db8::2:0:1"))
            let (slot, tag) = FilterMaps.dropSlot(denied, .options)
            #expect(FilterMaps.dropSlot(twin, .options) == (slot, tag))
            // An address of 198.18.0.0/15 with the same slot and another tag.
            let neighbour = try #require(
                (0..<NetworkLab.labIPv4Count).lazy.compactMap { SourceAddress(NetworkLab.labIPv4($0)) }
                    .first { FilterMaps.dropSlot($0, .options).slot == slot && FilterMaps.dropSlot($0, .options).tag != tag })
            var policy = perSourceOnly
            policy.deny = [try CIDR(denied.description), try CIDR(neighbour.description)]
            let program = try loadProgram(policy: policy)
            func judge(_ address: SourceAddress) throws -> Reason? {
                // Packet.udp's default payload, an OPTIONS request line: class options, in both families.
                let packet = address.isIPv4 ? Packet.udp4(src: address.description, dport: 5060)
                    : Packet.udp6(src: address.description, dport: 5060)
                return try program.judge(packet).2
            }
            #expect(try judge(denied) == .droppedDeny)
            #expect(try program.maps.dropTags()[0][slot] == tag, "the program's tag is the one the test computed")
            #expect(try judge(denied) == .droppedDeny)
            #expect(try judge(twin) == .passed, "\(twin) has \(denied)'s slot and tag")
            #expect(try judge(denied) == .droppedDeny)
            // The neighbour's drop takes the slot, and its tag.
            #expect(try judge(neighbour) == .droppedDeny)
            #expect(try program.maps.dropTags()[0][slot] == FilterMaps.dropSlot(neighbour, .options).tag)
            #expect(try judge(denied) == .droppedDeny)
            #expect(try judge(twin) == .passed)
        }
    }

    /// The sets themselves, for every first byte of both families, IPv6's 0x00 too (where the IPv4-mapped space,
    /// `::/96` and NAT64's `64:ff9b::/96` lie) and IPv4's bogus ones, against `CIDR`'s own arithmetic: the IPv4 bit
    /// of b is set exactly when an entry overlaps `::ffff:b.0.0.0/104`; the IPv6 bit of b is set whenever an entry
    /// holds an address outside the mapped space that starts with b, and clear when no entry overlaps `b::/8`.
    @Test func theAllowListsFirstBytesAgreeWithTheNetworksTheyStandFor() throws {
        let shapes = ["::ffff:0.0.0.0/96", "::/0", "::/1", "::/96", "64:ff9b::/96", "::ffff:198.18.0.0/112",
                      "::fffe:0:0/95", "2001:db8::/32", "fe80::/10", "10.0.0.0/7", "0.0.0.0/0", "255.255.255.255",
                      "ff00::/8", "::1"]
        func bit(_ words: [UInt64], _ b: Int) -> Bool { words[b >> 6] >> UInt64(b & 63) & 1 == 1 }
        let mapped = try CIDR("::ffff:0.0.0.0/96")
        for shape in shapes {
            let entry = try CIDR(shape)
            let (v4, v6) = FilterMaps.allowFirstBytes([entry])
            for b in 0..<256 {
                let octet = try CIDR("::ffff:\(b).0.0.0/104")
                #expect(bit(v4, b) == entry.overlaps(octet), "\(shape): IPv4 first octet \(b)")
                let byte = try CIDR(String(format: "%02x00::/8", b))
                // An IPv6 address that starts with b, outside the mapped space, that the entry holds?
                let holdsIPv6 = entry.overlaps(byte) && !(entry.keyLength >= 96 && mapped.contains(entry.address))
                if holdsIPv6 { #expect(bit(v6, b), "\(shape): IPv6 first byte \(b)") }
                if !entry.overlaps(byte) { #expect(!bit(v6, b), "\(shape): IPv6 first byte \(b)") }
            }
        }
    }

    /// A token of the new-source budget goes to the first new source after it comes due, whoever sends it: a
    /// forger who keeps the budget empty in bursts must leave a real caller the tokens that come due between them.
    /// (A per-CPU hold of the budget's refusal until the jiffy of its next token, which spared a random-source
    /// flood its clock reads, was withdrawn for this: the tokens waited for the jiffy and went to the next burst,
    /// and a phone beside the worst-case flood retransmitted 12–17 times where it had 0–1.) Here the flood's last
    /// packet comes 9 ms after the budget ran out, the phone 0.5 ms after the next token is due.
    @Test func aTokenThatCameDueBetweenBurstsGoesToTheNextNewSource() throws {
        var policy = perSourceOnly
        policy.newSources = .rate(100, burst: 2)  // a token every 10 ms
        let program = try loadProgram(policy: policy, maxSources: 1000, testClock: true)
        let start: UInt64 = 1_000_000_100_000
        func judge(_ src: String, at ms: Double) throws -> Reason? {
            try program.setTestClock(nanoseconds: start + UInt64(ms * 1_000_000))
            return try program.judge(Packet.request("REGISTER", src: src)).2
        }
        #expect(try judge("198.18.80.1", at: 0) == .passed)
        #expect(try judge("198.18.80.2", at: 0) == .passed)
        for i in 0..<10 { #expect(try judge("198.18.80.\(10 + i)", at: Double(i)) == .droppedNewSource) }
        #expect(try judge("198.18.0.77", at: 10.5) == .passed, "the phone, after the token came due")
        #expect(try judge("198.18.80.30", at: 10.6) == .droppedNewSource)
    }

    /// A request of `method` from `src`, over IPv4 or IPv6.
    static func request(_ method: String, from src: String) -> [UInt8] {
        guard src.contains(":") else { return Packet.request(method, src: src) }
        let text = "\(method) sip:100@[2001:db8::2] SIP/2.0\r\nVia: SIP/2.0/UDP [\(src)]:5060;branch=z9hG4bK-1\r\n"
            + "Call-ID: 1@\(src)\r\nCSeq: 1 \(method)\r\nContent-Length: 0\r\n\r\n"
        return Packet.ethernet(Packet.EtherType.ipv6, Packet.ipv6(
            src: src, dst: "2001:db8::2", proto: Packet.Proto.udp, Packet.udp(sport: 5060, dport: 5060, Array(text.utf8))))
    }

    /// The first bytes the allow list's entries start with (in the settings) spare most sources the trie's lookup;
    /// they must never spare an allow-listed one, nor let in one the list does not hold. Entries of every shape
    /// (IPv4 /32, /24 and a /4 over sixteen first octets; IPv6 /128, /48 and a /6 over four first bytes), each
    /// judged at its first and last address and just outside both, beside neighbours that share a first byte and
    /// a source for every first byte but the bogus ones (and IPv6's 0x00: the test below covers it): allow-listed
    /// exactly where an entry holds the address. Then an IPv6 entry that holds all of IPv4 (::/1), and the list
    /// emptied again.
    @Test func theAllowListsFirstBytesNeverHideAnEntry() throws {
        let entries = try ["198.18.50.7", "203.0.113.0/24", "64.0.0.0/4", "2001:db8:5::9", "2001:db8:77::/48",
                           "2c00::/6"].map(CIDR.init)
        let program = try loadProgram(policy: perSourceOnly)
        try program.maps.addCIDRs(entries, to: .allow)
        var sources = [
            "198.18.50.6", "198.18.50.7", "198.18.50.8", "198.1.2.3",
            "203.0.112.255", "203.0.113.0", "203.0.113.255", "203.0.114.0", "203.255.0.1",
            "63.255.255.255", "64.0.0.0", "79.255.255.255", "80.0.0.0",
            "2001:db8:5::8", "2001:db8:5::9", "2001:db8:5::a", "2001:db8:99::1",
            "2001:db8:76:ffff:ffff:ffff:ffff:ffff", "2001:db8:77::", "2001:db8:77:ffff:ffff:ffff:ffff:ffff",
            "2001:db8:78::", "2bff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "2c00::", "2fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "3000::",
        ]
        sources += (1..<224).filter { $0 != 127 }.map { "\($0).77.1.2" }
        sources += (1..<255).map { "\(String($0, radix: 16))00::1" }
        var allowed = 0
        for src in sources {
            let address = try #require(SourceAddress(src))
            let expected: Reason = entries.contains { $0.contains(address) } ? .passedAllow : .passed
            if expected == .passedAllow { allowed += 1 }
            #expect(try program.judge(Self.request("INVITE", from: src)).2 == expected, "\(src)")
        }
        #expect(allowed == 30, "the sources above: 10 at the entries' edges, 16 first octets and 4 first bytes")

        // ::/1 holds ::ffff:0:0/96, so every IPv4 source, and IPv6 sources whose first bit is 0.
        let wide = try CIDR("::/1")
        try program.maps.removeCIDRs(entries, from: .allow)
        try program.maps.addCIDRs([wide], to: .allow)
        for (src, expected) in [("198.19.7.7", Reason.passedAllow), ("7e00::1", .passedAllow), ("8000::1", .passed),
                                ("c000::1", .passed)] {
            #expect(try program.judge(Self.request("INVITE", from: src)).2 == expected, "\(src)")
        }
        try program.maps.removeCIDRs([wide], from: .allow)
        #expect(try program.judge(Self.request("INVITE", from: "198.19.7.8")).2 == .passed)
    }

    @Test func newSourcesBeyondTheirBudgetAreShedBeforeTheyReachTheSourceMap() throws {
        var policy = perSourceOnly
        policy.newSources = .rate(1, burst: 100)
        let program = try loadProgram(policy: policy, maxSources: 1000)
        for i in 0..<10 { #expect(try program.judge(Packet.request("INVITE", src: "198.18.90.\(i + 1)")).2 == .passed) }
        var refused = 0
        for i in 0..<500 {
            let src = "198.18.\(100 + i / 250).\(i % 250 + 1)"
            if try program.judge(Packet.request("REGISTER", src: src)).2 == .droppedNewSource { refused += 1 }
        }
        #expect(refused >= 400 - 2 && refused <= 410)
        // The sources tracked first are still there, and still admitted from their own buckets.
        let tracked = Set(try program.maps.sources().map(\.address.description))
        for i in 0..<10 { #expect(tracked.contains("198.18.90.\(i + 1)")) }
        #expect(try program.judge(Packet.request("INVITE", src: "198.18.90.1")).2 == .passed)
    }

    /// A forger who sends each packet from a source in a new prefix (IPv6 /64s and /48s, or IPv4 /24s and /16s)
    /// while the new-source budget is spent makes no entries at all: the refused sources' prefix buckets are not
    /// made (they would have admitted the packet; the budget did not), so such a flood costs lookups, not LRU
    /// inserts that evict the prefixes of real callers. An admitted new source still gets both of its buckets.
    @Test func sourcesTheBudgetRefusesLeaveNoPrefixBuckets() throws {
        var policy = FilterPolicy()
        policy.newSources = .rate(1, burst: 2)
        let program = try loadProgram(policy: policy, maxSources: 1000, testClock: true)
        let prefixes: BPFMap<fg_source_key, fg_source_state> = program.maps.map(FG_MAP_PREFIXES)
        func prefixCount() throws -> Int { try prefixes.entries().count }
        func register(_ src: String) -> [UInt8] { Self.request("REGISTER", from: src) }
        #expect(try program.judge(register("198.18.90.1")).2 == .passed)
        #expect(try prefixCount() == 2)  // its /24 and its /16
        #expect(try program.judge(register("2001:db8:1:2::9")).2 == .passed)
        #expect(try prefixCount() == 4)  // its /64 and its /48
        var refused = 0
        for i in 0..<200 {
            let src = i % 2 == 0 ? "2001:db8:\(100 + i):\(i)::1" : "198.\(18 + i % 2).\(i).7"
            if try program.judge(register(src)).2 == .droppedNewSource { refused += 1 }
        }
        #expect(refused == 200)
        #expect(try prefixCount() == 4)
        // Nor is a prefix that has a bucket charged for a source the budget refuses: the budget is looked at
        // first. 500 forged new sources from the phone's /24 (its bucket: 200/s, burst 400) leave the phone's
        // prefix as it was. (When the refused sources charged it, the /24 drained and the phone was dropped.)
        for i in 0..<500 {
            #expect(try program.judge(Packet.request("REGISTER", src: "198.18.90.\(2 + i % 249)")).2 == .droppedNewSource)
        }
        #expect(try program.maps.counters().packets[.register, .droppedPrefix] == 0)
        for _ in 0..<5 { #expect(try program.judge(register("198.18.90.1")).2 == .passed) }
    }

    /// A budget of 1/s with a burst of 81 packets (a tolerance of 80 intervals) split over 8 priority levels: each
    /// level may reach 10 intervals deeper, so as the budget drains, options go first, then register, and so on;
    /// the allow-listed last of all. The test clock stands still, so the budget never refills meanwhile.
    @Test func theBudgetShedsLowestPriorityFirst() throws {
        var policy = perSourceOnly
        policy.budget = .rate(1, burst: 81)
        let unlimited = Dictionary(uniqueKeysWithValues: TrafficClass.all.map { ($0, Limit.unlimited) })
        let program = try loadProgram(limits: unlimited, policy: policy, testClock: true)
        try program.maps.addCIDRs([try CIDR("198.18.50.0/24")], to: .allow)
        func admitted(_ method: String, src: String = "198.18.1.1", _ n: Int = 30) throws -> Int {
            try (0..<n).filter { _ in try program.judge(Packet.request(method, src: src)).2 != .droppedShed }.count
        }
        // GCRA with tolerance 10 intervals admits 11 packets; each later level 10 more (20 for invite, whose
        // level sits two above register's; 20 for the allow-listed, two above in-dialog's, past the verified).
        let steps: [(String, String, Int)] = [
            ("OPTIONS", "198.18.1.1", 11), ("OPTIONS", "198.18.1.1", 0),
            ("REGISTER", "198.18.1.1", 10), ("OPTIONS", "198.18.1.1", 0),
            ("INVITE", "198.18.1.1", 20), ("REGISTER", "198.18.1.1", 0),
            ("SUBSCRIBE", "198.18.1.1", 10), ("BYE", "198.18.1.1", 10), ("INVITE", "198.18.1.1", 0),
            ("INVITE", trunk, 20), ("BYE", "198.18.1.1", 0), ("INVITE", trunk, 0),
        ]
        var seen: [Int] = []
        for (method, src, expected) in steps {
            let n = try admitted(method, src: src)
            seen.append(n)
            #expect(n == expected, "\(method) from \(src): admitted \(n), expected \(expected); so far \(seen)")
        }
    }
}

/// Seconds from one monotonic reading to a later one.
private func seconds(_ from: UInt64, _ to: UInt64) -> Double { Double(to - from) / 1e9 }

/// How much of the time from a run's start to the next run's end (which holds any pause between their packets)
/// goes beyond `free` seconds.
private func pause(from start: UInt64, to end: UInt64, _ free: Double) -> Double { max(0, seconds(start, end) - free) }
