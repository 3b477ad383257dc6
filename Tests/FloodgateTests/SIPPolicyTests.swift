import CFloodgate
import FloodgateCore
import FloodgateLab
import Foundation
import Testing

/// SIP classification and the policy order, through BPF_PROG_TEST_RUN.
@Suite struct SIPClassificationTests {
    /// Runs one packet on a fresh program and returns (action, class, reason) as counted.
    func verdict(_ packet: [UInt8], policy: FilterPolicy = perSourceOnly) throws -> (UInt32, TrafficClass?, Reason?) {
        let program = try loadProgram(policy: policy)
        return try program.judge(packet)
    }

    @Test(arguments: [
        ("INVITE", TrafficClass.invite), ("REGISTER", .register), ("OPTIONS", .options),
        ("SUBSCRIBE", .otherRequest), ("NOTIFY", .otherRequest), ("MESSAGE", .otherRequest), ("INFO", .otherRequest),
        ("UPDATE", .otherRequest), ("PRACK", .otherRequest), ("REFER", .otherRequest), ("PUBLISH", .otherRequest),
        ("ACK", .inDialog), ("BYE", .inDialog), ("CANCEL", .inDialog),
    ])
    func eachMethodHasItsClass(method: String, expected: TrafficClass) throws {
        let (action, c, r) = try verdict(Packet.request(method))
        #expect(action == XDP_PASS_ACTION)
        #expect(c == expected)
        #expect(r == .passed)
    }

    @Test func methodsAreCaseSensitiveAndNeedTheirSpace() throws {
        #expect(try verdict(Packet.request("invite")).1 == .sipOther)
        #expect(try verdict(Packet.sipRaw(Array("INVITEsip:x SIP/2.0\r\n\r\n".utf8))).1 == .sipOther)
        #expect(try verdict(Packet.sipRaw(Array("REGISTERS sip:x SIP/2.0\r\n\r\n".utf8))).1 == .sipOther)
    }

    @Test func responsesNeedAStatusLine() throws {
        #expect(try verdict(Packet.sip(["SIP/2.0 200 OK", "CSeq: 1 INVITE"])).1 == .response)
        #expect(try verdict(Packet.sip(["SIP/2.0 401 Unauthorized"])).1 == .response)
        #expect(try verdict(Packet.sip(["SIP/2.0 699 Whatever"])).1 == .response)
        #expect(try verdict(Packet.sip(["SIP/2.0 700 Nope"])).1 == .sipOther)
        #expect(try verdict(Packet.sip(["SIP/2.0 20 OK"])).1 == .sipOther)
        #expect(try verdict(Packet.sip(["SIP/3.0 200 OK"])).1 == .sipOther)
    }

    @Test func malformedSIPHasADefinedVerdict() throws {
        // No CRLF at all: the request line still names the method.
        #expect(try verdict(Packet.sipRaw(Array("INVITE sip:100@198.18.0.2 SIP/2.0".utf8))).1 == .invite)
        // Binary garbage and an empty datagram are "anything else to a SIP port".
        let garbage = (0..<200).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
        #expect(try verdict(Packet.sipRaw(garbage)).1 == .sipOther)
        #expect(try verdict(Packet.sipRaw([])).1 == .sipOther)
        #expect(try verdict(Packet.sipRaw([0x0d, 0x0a])).1 == .keepalive)
        // A UDP length under 8 is not UDP.
        var bad = Packet.request("INVITE")
        bad[14 + 20 + 4] = 0
        bad[14 + 20 + 5] = 7
        let (action, c, r) = try verdict(bad)
        #expect(action == XDP_DROP_ACTION && c == .other && r == .droppedMalformed)
    }

    @Test func sipOverTCPSynIsCountedPerSource() throws {
        let program = try loadProgram(limits: [.sipSyn: .rate(1, burst: 3)], policy: perSourceOnly)
        let syn = Packet.ethernet(Packet.EtherType.ipv4, Packet.ipv4(proto: Packet.Proto.tcp, Packet.tcp(dport: 5061)))
        let verdicts = try (0..<5).map { _ in try program.judge(syn) }
        #expect(verdicts.map(\.1) == Array(repeating: .sipSyn, count: 5))
        #expect(verdicts.map(\.2) == [.passed, .passed, .passed, .droppedRate, .droppedRate])
    }

    /// Non-first fragments carry no ports: they share a bucket per source prefix (/24), not one per source and not
    /// one for the whole interface.
    @Test func fragmentsShareABucketPerSourcePrefix() throws {
        let program = try loadProgram(limits: [.fragment: .rate(1, burst: 4)], policy: perSourceOnly)
        func fragment(_ src: String) -> [UInt8] {
            Packet.ethernet(Packet.EtherType.ipv4,
                            Packet.ipv4(src: src, proto: Packet.Proto.udp, Packet.udp(dport: 5060), fragmentOffset: 100))
        }
        let reasons = try (0..<6).map { i in try program.judge(fragment("198.18.5.\(i + 9)")).2 }
        #expect(reasons == [.passed, .passed, .passed, .passed, .droppedRate, .droppedRate])
        #expect(try program.judge(fragment("198.18.6.9")).2 == .passed)
    }
}

@Suite struct ScannerTests {
    func judge(_ packet: [UInt8], settings: Settings = .defaults) throws -> (UInt32, TrafficClass?, Reason?) {
        try loadProgram(settings: settings, policy: perSourceOnly).judge(packet)
    }

    @Test func userAgentSignaturesMatchAnyCase() throws {
        for ua in ["User-Agent: friendly-scanner", "user-agent: Friendly-Scanner", "USER-AGENT :sipvicious",
                   "User-Agent:\tVaxSIPUserAgent/3.1", "User-Agent: sipcli/v1.8"] {
            let (action, c, r) = try judge(Packet.request("REGISTER", extra: [ua]))
            #expect(action == XDP_DROP_ACTION, "\(ua)")
            #expect(c == .register && r == .droppedScanner, "\(ua)")
        }
        for ua in ["User-Agent: Linphone/5.0", "User-Agent: friendly", "X-User-Agent: friendly-scanner",
                   "User-Agents: friendly-scanner"] {
            #expect(try judge(Packet.request("REGISTER", extra: [ua])).2 == .passed, "\(ua)")
        }
    }

    @Test func theSipviciousFromFingerprintMatchesInFullAndCompactForm() throws {
        let full = Packet.sip(["OPTIONS sip:100@198.18.0.2 SIP/2.0", "From: \"sipvicious\"<sip:100@1.1.1.1>;tag=1"])
        #expect(try judge(full).2 == .droppedScanner)
        let compact = Packet.sip(["OPTIONS sip:100@198.18.0.2 SIP/2.0", "f: \"sipvicious\"<sip:100@1.1.1.1>;tag=1"])
        #expect(try judge(compact).2 == .droppedScanner)
        let other = Packet.sip(["OPTIONS sip:100@198.18.0.2 SIP/2.0", "f: \"alice\"<sip:100@1.1.1.1>;tag=1"])
        #expect(try judge(other).2 == .passed)
    }

    /// The User-Agent line placed so it ends exactly at byte 2,048 of the message (the last byte scanned), then
    /// later; and one at byte 900, inside the window.
    @Test func theScanCoversTheFirst2048BytesExactly() throws {
        let ua = "User-Agent: friendly-scanner\r\n"
        let window = Int(FG_SIP_SCAN_BYTES)
        func message(endingAt end: Int) -> [UInt8] {
            var head = "OPTIONS sip:100@198.18.0.2 SIP/2.0\r\nX-Pad: "
            let fill = end - head.utf8.count - 2 - ua.utf8.count
            head += String(repeating: "a", count: fill) + "\r\n"
            return Array((head + ua + "\r\n").utf8)
        }
        let inside = message(endingAt: window)
        #expect(Array(inside[(window - ua.utf8.count)..<window]) == Array(ua.utf8))
        #expect(try judge(Packet.sipRaw(inside)).2 == .droppedScanner)
        // A value ends at its CR: one byte later the CR is still the window's last byte, two bytes later it is
        // past the window, and the value counts as cut off; but then the header block does not end within the
        // window either, and such a request is dropped as oversize (its CSeq could hide past the scan).
        #expect(try judge(Packet.sipRaw(message(endingAt: window + 1))).2 == .droppedScanner)
        #expect(try judge(Packet.sipRaw(message(endingAt: window + 2))).2 == .droppedOversize)
        #expect(try judge(Packet.sipRaw(message(endingAt: 900))).2 == .droppedScanner)
        #expect(try judge(Packet.sipRaw(message(endingAt: 3000))).2 == .droppedOversize)
    }

    @Test func responsesAndTheRequestLineAreNotScanned() throws {
        #expect(try judge(Packet.sip(["SIP/2.0 200 OK", "User-Agent: friendly-scanner"])).2 == .passed)
        #expect(try judge(Packet.sipRaw(Array("OPTIONS sip:User-Agent:friendly-scanner SIP/2.0\r\n\r\n".utf8))).2 == .passed)
    }

    @Test func aScannerIsBannedSoItsNextPacketsDropAsBanned() throws {
        let program = try loadProgram(policy: perSourceOnly)
        let scan = Packet.request("OPTIONS", src: "198.18.3.3", extra: ["User-Agent: friendly-scanner"])
        #expect(try program.judge(scan).2 == .droppedScanner)
        #expect(try program.judge(Packet.request("INVITE", src: "198.18.3.3")).2 == .droppedBan)
        let bans = try program.maps.bans()
        #expect(bans.count == 1)
        #expect(bans.first?.address.description == "198.18.3.3")
        #expect(bans.first?.origin == "scanner")
        let left = try #require(bans.first?.remainingSeconds())
        #expect(left > 590 && left <= 600)
        // With the ban time off, scanners are dropped but not banned.
        let noBan = try loadProgram(settings: Settings(sipPorts: [5060], rtpPorts: nil, malformed: .drop, scannerBanSeconds: 0),
                                    policy: perSourceOnly)
        #expect(try noBan.judge(scan).2 == .droppedScanner)
        #expect(try noBan.judge(Packet.request("INVITE", src: "198.18.3.3")).2 == .passed)
    }

    @Test func signaturesCanBeAddedAndRemovedLive() throws {
        let program = try loadProgram(settings: Settings(sipPorts: [5060], rtpPorts: nil, malformed: .drop, scannerBanSeconds: 0),
                                      policy: perSourceOnly)
        let packet = Packet.request("INVITE", extra: ["User-Agent: EvilDialer 2.0"])
        #expect(try program.judge(packet).2 == .passed)
        try program.maps.addSignatures([try Signature(.userAgent, "evildialer")])
        #expect(try program.judge(packet).2 == .droppedScanner)
        try program.maps.removeSignatures([try Signature(.userAgent, "evildialer")])
        #expect(try program.judge(packet).2 == .passed)
    }
}

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
        let program = try loadProgram(policy: perSourceOnly)
        try program.maps.ban(SourceAddress("198.18.70.1")!, seconds: 1)
        #expect(try program.judge(Packet.request("INVITE", src: "198.18.70.1")).2 == .droppedBan)
        Thread.sleep(forTimeInterval: 1.1)
        #expect(try program.judge(Packet.request("INVITE", src: "198.18.70.1")).2 == .passed)
    }

    @Test func allowBypassesPerSourceAndPrefixLimits() throws {
        var policy = FilterPolicy()
        policy.prefix = .rate(1, burst: 2)
        let program = try loadProgram(limits: [.invite: .rate(1, burst: 1)], policy: policy)
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
    @Test func aHeldPrefixStillAdmitsItsRate() throws {
        // Measured on one CPU: the drop cache is per CPU.
        let (admitted, dropped, seconds) = try onOneCPU { () -> (Double, UInt64, Double) in
            var policy = FilterPolicy()
            // tau 490 ms: room for the 25 ms hold and a jiffy, and for the test thread to be descheduled for a
            // while on a loaded machine without the bucket filling up (which would lose tokens to the cap).
            policy.prefix = .rate(100, burst: 50)
            var limits = Limit.defaults
            limits[.register] = .unlimited  // only the prefix decides
            let program = try loadProgram(limits: limits, policy: policy)
            let frame = Packet.request("REGISTER", src: "198.18.77.9")
            let start = monotonicNanoseconds()
            while monotonicNanoseconds() - start < 1_000_000_000 {
                _ = try program.testRun(frame, repeat: 5_000)
            }
            let seconds = Double(monotonicNanoseconds() - start) / 1e9
            let counters = try program.maps.counters().packets
            return (Double(counters[.register, .passed] + counters[.register, .passedUntracked]),
                    counters[.register, .droppedPrefix], seconds)
        }
        let expected = 50 + 100 * seconds
        #expect(admitted >= expected * 0.95 && admitted <= expected + 2,
                "admitted \(admitted) in \(seconds) s, expected \(expected)")
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

    @Test func aDrainedPrefixDropsItsSourcesUntilItRefillsButNotAllowListedOnes() throws {
        var policy = FilterPolicy()
        policy.prefix = .rate(1, burst: 5)
        let program = try loadProgram(policy: policy)
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
            let program = try loadProgram(policy: policy)
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
            #expect(FilterMaps.allowPrefixKeys(Array(policy.allow), prefixV4: 16, prefixV6: 64).count == 1)
            #expect(FilterMaps.allowPrefixKeys(Array(policy.allow), prefixV4: 24, prefixV6: 64).count == 1)
            #expect(FilterMaps.allowPrefixKeys(Array(policy.allow), prefixV4: 22, prefixV6: 64).count == 2)
        }
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

extension FloodgateProgram {
    /// Runs one packet and returns its action with the class and reason it was counted under.
    func judge(_ packet: [UInt8]) throws -> (UInt32, TrafficClass?, Reason?) {
        let before = try maps.counters().packets
        let action = try verdict(packet)
        let after = try maps.counters().packets
        for c in TrafficClass.all {
            for r in Reason.all where after[c, r] != before[c, r] { return (action, c, r) }
        }
        return (action, nil, nil)
    }
}
