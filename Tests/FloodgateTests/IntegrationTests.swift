import CFloodgate
import CLabLayouts
import FloodgateCore
import FloodgateLab
import Foundation
import Testing

/// The floodgate CLI attached in native mode to a veth in a namespace, with real UDP from another namespace.
@Suite struct IntegrationTests {
    struct StatsJSON: Decodable {
        struct Class: Decodable {
            var `class`: String
            var packets: [String: UInt64]
            var packets_per_second: [String: Double]?
        }
        var interface: String
        var mode: String?
        var classes: [Class]
    }

    struct TopJSON: Decodable {
        struct Source: Decodable {
            var address: String
            var packets: UInt64
            var drops: UInt64
        }
        var interface: String
        var sources: [Source]
    }

    struct StatusJSON: Decodable {
        var interface: String
        var mode: String?
        var program_id: UInt32
        var tracked_buckets: Int
        var max_sources: UInt32
    }

    @Test func theReceiverSeesExactlyTheAdmittedPacketsAndStatsAgree() throws {
        try withLab { lab in
            let attach = try lab.floodgate(["attach", lab.routerInterface, "--mode", "native", "--max-sources", "50000"])
            #expect(attach.status == 0, "\(attach.err)")
            #expect(attach.out.contains("native mode"))
            let program = try #require(try lab.routerXDPProgram(), "no XDP program on \(lab.routerInterface) after attach")

            let again = try lab.floodgate(["attach", lab.routerInterface])
            #expect(again.status == 0)
            #expect(again.out.contains("already attached"))
            #expect(try lab.routerXDPProgram() == program, "a second attach must change nothing")

            #expect(try lab.floodgate(["limit", "set", "options", "--rate", "1", "--burst", "50"]).status == 0)

            let receiver = try lab.udpSocket(in: lab.routerNS, bindTo: lab.routerAddress, port: 5060)
            let sender = try lab.udpSocket(in: lab.outsideNS)

            let sent = 300
            let start = monotonicNanoseconds()
            for i in 0..<sent { try sender.send(Array("OPTIONS \(i)".utf8), to: lab.routerAddress, port: 5060) }
            let received = receiver.drain(expecting: 50).values.reduce(0, +)
            // Until the drain ended (the last datagram and a quiet period after it): the filter judged each datagram
            // before it arrived, however late the receive ran, so no admission happened after this.
            let elapsed = Double(monotonicNanoseconds() - start) / 1e9
            // Burst 50, then 1/s: a fast sender gets 50 plus one per second it took.
            #expect(received >= 50 && received <= 50 + Int(elapsed.rounded(.up)) + 1,
                    "received \(received) of \(sent) in \(elapsed) s")

            let statsRun = try lab.floodgate(["stats", "--json", "--interval", "0"])
            #expect(statsRun.status == 0, "\(statsRun.err)")
            let stats = try JSONDecoder().decode([StatsJSON].self, from: Data(statsRun.out.utf8))
            let sip = try #require(stats.first?.classes.first { $0.class == "options" })
            #expect(stats.first?.interface == lab.routerInterface)
            #expect(stats.first?.mode == "native")
            #expect(sip.packets["passed"] == UInt64(received))
            #expect(sip.packets["dropped-rate"] == UInt64(sent - received))
            #expect(sip.packets_per_second == nil, "--interval 0: totals only")

            // Rates over an interval (two reads, nothing written: readers can't disturb each other); with --watch,
            // a read each interval, --count times.
            let second = try JSONDecoder().decode([StatsJSON].self, from: Data(try lab.floodgate(["stats", "--json", "--interval", "0.3"]).out.utf8))
            #expect(second.first?.classes.first { $0.class == "options" }?.packets_per_second?["passed"] == 0)
            let watched = try lab.floodgate(["stats", "--json", "--watch", "--interval", "0.2", "--count", "3"])
            #expect(watched.status == 0 && watched.out.components(separatedBy: "\"interval_seconds\"").count == 4, "\(watched.out.prefix(300))")
            let topWatched = try lab.floodgate(["top", "--json", "--watch", "--interval", "0.2", "--count", "2"])
            #expect(topWatched.status == 0 && topWatched.out.components(separatedBy: lab.outsideAddress).count == 3,
                    "\(topWatched.out.prefix(300)) \(topWatched.err)")

            let topRun = try lab.floodgate(["top", "-n", "5", "--json"])
            let top = try JSONDecoder().decode([TopJSON].self, from: Data(topRun.out.utf8))
            let talker = try #require(top.first?.sources.first)
            #expect(talker.address == lab.outsideAddress)
            #expect(talker.packets == UInt64(sent))
            #expect(talker.drops == UInt64(sent - received))

            let status = try JSONDecoder().decode([StatusJSON].self, from: Data(try lab.floodgate(["status", "--json"]).out.utf8))
            #expect(status.count == 1)
            #expect(status.first?.mode == "native")
            #expect(status.first.map { "\($0.program_id)" } == program)
            #expect(status.first?.tracked_buckets == 1)
            #expect(status.first?.max_sources == 50000)

            let human = try lab.floodgate(["stats"])
            #expect(human.out.contains("options"))
            #expect(human.out.contains("DROPPED-RATE"))

            let detach = try lab.floodgate(["detach", lab.routerInterface])
            #expect(detach.status == 0, "\(detach.err)")
            #expect(try lab.routerXDPProgram() == nil, "detach must leave no XDP program")
            #expect(!FileManager.default.fileExists(atPath: "\(lab.pinRoot)/\(lab.routerInterface)"))

            for i in 0..<20 { try sender.send(Array("after \(i)".utf8), to: lab.routerAddress, port: 5060) }
            #expect(receiver.drain(expecting: 20).values.reduce(0, +) == 20, "with the filter gone every packet arrives")
        }
    }

    @Test func limitChangesApplyToTheRunningFilter() throws {
        try withLab { lab in
            #expect(try lab.floodgate(["attach", lab.routerInterface, "--mode", "native", "--max-sources", "1000"]).status == 0)
            #expect(try lab.floodgate(["limit", "set", "options", "--block"]).status == 0)
            let receiver = try lab.udpSocket(in: lab.routerNS, bindTo: lab.routerAddress, port: 5060)
            let sender = try lab.udpSocket(in: lab.outsideNS)
            let options = Array("OPTIONS sip:x SIP/2.0\r\n\r\n".utf8)
            for _ in 0..<10 { try sender.send(options, to: lab.routerAddress, port: 5060) }
            #expect(receiver.drain(quiet: 0.2).isEmpty)
            #expect(try lab.floodgate(["limit", "set", "options", "--unlimited"]).status == 0)
            for _ in 0..<10 { try sender.send(options, to: lab.routerAddress, port: 5060) }
            #expect(receiver.drain(expecting: 10, quiet: 0.2)[lab.outsideAddress] == 10)

            let list = try lab.floodgate(["limit", "list"])
            #expect(list.out.contains("unlimited"))
            #expect(list.out.contains("compare-and-swap"), "limit list states the worst-case over-admission")
            #expect(try lab.floodgate(["detach", lab.routerInterface]).status == 0)
        }
    }

    @Test func autoModeFallsBackToGenericWithAWarningWhereNativeXDPIsMissing() throws {
        try withLab { lab in
            // A bridge has no native XDP support.
            try NetworkLab.run(["ip", "-n", lab.routerNS, "link", "add", "fgbridge0", "type", "bridge"])
            try NetworkLab.run(["ip", "-n", lab.routerNS, "link", "set", "fgbridge0", "up"])
            let native = try lab.floodgate(["attach", "fgbridge0", "--mode", "native", "--max-sources", "100"])
            #expect(native.status != 0)
            #expect(native.err.contains("attach XDP to fgbridge0 in native mode"), "\(native.err)")
            #expect(!FileManager.default.fileExists(atPath: "\(lab.pinRoot)/fgbridge0"), "a failed attach leaves no pins")

            let auto = try lab.floodgate(["attach", "fgbridge0", "--mode", "auto", "--max-sources", "100"])
            #expect(auto.status == 0, "\(auto.err)")
            #expect(auto.err.contains("falling back to generic mode"))
            #expect(auto.out.contains("generic mode"))
            let status = try JSONDecoder().decode([StatusJSON].self, from: Data(try lab.floodgate(["status", "--json"]).out.utf8))
            #expect(status.first { $0.interface == "fgbridge0" }?.mode == "generic")
            #expect(try lab.floodgate(["detach", "fgbridge0"]).status == 0)
        }
    }

    /// The live-frames generator against the filter in a lab of its own: every frame the generator sent reached
    /// the filter, and all but the source's burst were dropped.
    @Test func aGeneratedSingleSourceFloodIsDropped() throws {
        try requireRoot()
        let result = try run([floodgateBinary, "flood", "--scenario", "single-source", "--packets", "300000", "--json"])
        #expect(result.status == 0, "\(result.err)")
        let flood = try JSONDecoder().decode(FloodJSON.self, from: Data(result.out.utf8))
        #expect(flood.sent == 300_000)
        // The veth ring may overflow while its NAPI poll waits for the CPU (the whole suite runs at once): some
        // frames, never most of them, are lost before the filter (1.5% in one CI run on 2 vCPUs, over the 1% this
        // allowed before; 10% now).
        #expect(flood.processed <= flood.sent && flood.processed >= flood.sent - flood.sent / 10, "\(flood)")
        // The INVITE limit lets the burst of 16 and 8/s through; everything else is dropped.
        #expect(flood.dropped + 16 + 8 * 10 >= flood.processed && flood.dropped < flood.processed, "\(flood)")
    }

    /// The receive on a CPU of its own (threaded NAPI, its kernel thread pinned): the flood still reaches the
    /// filter and is dropped. Frames may be lost before it when the ring overflows, so only a share is asserted.
    @Test func aFloodWithTheReceiveOnItsOwnCPUIsDropped() throws {
        try requireRoot()
        let result = try run([floodgateBinary, "flood", "--scenario", "single-source", "--packets", "300000",
                              "--dedicated-cpu", "--json"])
        #expect(result.status == 0, "\(result.err)")
        let flood = try JSONDecoder().decode(FloodJSON.self, from: Data(result.out.utf8))
        #expect(flood.sent == 300_000)
        #expect(flood.processed >= flood.sent / 10 && flood.processed <= flood.sent, "\(flood)")
        #expect(flood.dropped + 16 + 8 * 10 >= flood.processed, "\(flood)")
    }

    /// A paced flood never sends faster than its rate (the bench measures a receiver below the rate at which its
    /// ring overflows): at 0.2 Mpps for a second, at most 0.2 million frames and a little (the deadline's
    /// signal, every 5 ms, and a catch-up burst of 20 µs); not far below it either, unless the machine is loaded.
    @Test func aPacedFloodKeepsToItsRate() throws {
        try requireRoot()
        let result = try run([floodgateBinary, "flood", "--scenario", "random-v4-/24", "--packets", "10000000",
                              "--seconds", "1", "--mpps", "0.2", "--dedicated-cpu", "--json"])
        #expect(result.status == 0, "\(result.err)")
        let flood = try JSONDecoder().decode(FloodJSON.self, from: Data(result.out.utf8))
        #expect(Double(flood.sent) <= 0.2e6 * flood.seconds + 2_000, "\(flood)")
        #expect(flood.sent >= 20_000, "\(flood)")
        #expect(flood.processed >= flood.sent / 2 && flood.processed <= flood.sent, "\(flood)")
        let bad = try run([floodgateBinary, "flood", "--mpps", "0"])
        #expect(bad.status != 0 && bad.err.contains("--mpps must be 0.001 to 100"), "\(bad.err)")
    }

    struct FloodJSON: Decodable {
        struct Legitimate: Decodable {
            var source: String
            var kind: String
            var attempted: Int
            var succeeded: Int
            var retransmissions: Int
        }
        var sent: UInt64
        var seconds: Double
        var processed: UInt64
        var dropped: UInt64
        var legitimate: [Legitimate]?
        var verifiedBeforeFlood: [String]?
        var verified: [String]?
        /// How the frames went out (``GeneratorKind``), and the kernel's refusal of live frames if any.
        var generator: String
        var liveFramesRefused: String?
    }

    /// The cost benchmark's floors drop a packet whose key holds its slot, and pass the packet that fills it: the
    /// first of a source, or (by class) of a source's other port or method. A key that shares the slot but differs
    /// (an IPv6 source with two words swapped: the hash folds by XOR) is compared whole, passes and takes the slot.
    /// The class floor keys no TCP segment and no datagram of fewer than four bytes. The bench requires the last
    /// verdict of every measured run to be a drop.
    @Test func theCostFloorsDropWhatHoldsTheirSlot() throws {
        try requireRoot()
        let options = Packet.request("OPTIONS", src: "198.18.1.1")
        let register = Packet.request("REGISTER", src: "198.18.1.1")
        let otherPort = Packet.sipRaw(Array("OPTIONS sip:100@198.18.0.2 SIP/2.0\r\n\r\n".utf8), dport: 5061)
        let other = Packet.request("OPTIONS", src: "198.18.1.2")
        let twin = PolicyOrderTests.request("OPTIONS", from: "2001:db8::1:0:2")
        let swapped = PolicyOrderTests.request("OPTIONS", from: "2001:db8::2:0:1")
        let tcp = Packet.ethernet(
            Packet.EtherType.ipv4, Packet.ipv4(src: "198.18.1.1", proto: Packet.Proto.tcp, Packet.tcp(dport: 5060)))
        let short = Packet.sipRaw(Array("AB".utf8))
        let byClass = try FloorProgram(.sourceAndClass), bySource = try FloorProgram(.source)
        let runs: [(FloorProgram, [UInt8], UInt32, String)] = [
            (byClass, options, XDP_PASS_ACTION, "the first fills the slot"),
            (byClass, options, XDP_DROP_ACTION, "the second holds it"),
            (byClass, register, XDP_PASS_ACTION, "another method: another key"),
            (byClass, register, XDP_DROP_ACTION, "which then holds its own"),
            (byClass, otherPort, XDP_PASS_ACTION, "another port: another key"),
            (byClass, other, XDP_PASS_ACTION, "another source: another key"),
            (byClass, twin, XDP_PASS_ACTION, "IPv6: the first fills the slot"),
            (byClass, twin, XDP_DROP_ACTION, "IPv6: the second holds it"),
            (byClass, swapped, XDP_PASS_ACTION, "the same slot, another key: compared whole"),
            (byClass, twin, XDP_PASS_ACTION, "the swapped key took the slot"),
            (byClass, tcp, XDP_PASS_ACTION, "TCP: no key"),
            (byClass, tcp, XDP_PASS_ACTION, "TCP: still no key"),
            (byClass, short, XDP_PASS_ACTION, "two bytes: no key"),
            (byClass, short, XDP_PASS_ACTION, "two bytes: still no key"),
            (bySource, options, XDP_PASS_ACTION, "the first fills the slot"),
            (bySource, register, XDP_DROP_ACTION, "by source, the method does not count"),
            (bySource, tcp, XDP_DROP_ACTION, "nor the protocol"),
            (bySource, other, XDP_PASS_ACTION, "another source: another key"),
            (bySource, twin, XDP_PASS_ACTION, "IPv6: the first fills the slot"),
            (bySource, twin, XDP_DROP_ACTION, "IPv6: the second holds it"),
            (bySource, swapped, XDP_PASS_ACTION, "the same slot, another key: compared whole"),
            (bySource, twin, XDP_PASS_ACTION, "the swapped key took the slot"),
            (bySource, Array(repeating: 0, count: 60), XDP_PASS_ACTION, "not IP: no key"),
        ]
        // On one CPU: the slots are per CPU.
        let verdicts = try onOneCPU {
            try runs.map { try FloodgateProgram.testRun(programFD: $0.0.programFD, packet: $0.1).action }
        }
        for (run, verdict) in zip(runs, verdicts) {
            #expect(verdict == run.2, "\(run.3)")
        }
    }

    /// The new-source floor the cost section measures beside a new source: a source its map does not have passes
    /// and is inserted, so its next packet drops; another source, IPv4 or IPv6, is new again. A frame with no source
    /// address is refused, so the bench (which requires XDP_PASS of every measured run) can't price a frame the floor
    /// did not look up.
    @Test func theNewSourceFloorLooksUpAndInsertsEachNewSource() throws {
        try requireRoot()
        let options = Packet.request("OPTIONS", src: "198.18.1.1")
        let register = Packet.request("REGISTER", src: "198.18.1.1")
        let other = Packet.request("OPTIONS", src: "198.18.1.2")
        let v6 = PolicyOrderTests.request("OPTIONS", from: "2001:db8::1:0:2")
        let floor = try FloorProgram(newSourcesIn: 1_000_000)
        let runs: [([UInt8], UInt32, String)] = [
            (options, XDP_PASS_ACTION, "a new source passes"),
            (options, XDP_DROP_ACTION, "its second packet finds its entry"),
            (register, XDP_DROP_ACTION, "by source: the method does not count"),
            (other, XDP_PASS_ACTION, "another source is new"),
            (v6, XDP_PASS_ACTION, "an IPv6 source is new"),
            (v6, XDP_DROP_ACTION, "and then known"),
            (Array(repeating: 0, count: 60), XDP_ABORTED_ACTION, "not IP: no source to look up"),
        ]
        for run in runs {
            #expect(try FloodgateProgram.testRun(programFD: floor.programFD, packet: run.0).action == run.1, "\(run.2)")
        }
    }

    /// `scenario`'s frame from another source of its attack's range (its lowest bit flipped, if the range has
    /// more than one), and from the first source outside it (the lowest bit the range fixes flipped).
    static func insideAndOutside(_ scenario: FloodScenario) -> (inside: [UInt8], outside: [UInt8]) {
        let v6 = scenario.isIPv6
        let lastByte = (v6 ? 14 + 8 : 14 + 12) + (v6 ? 15 : 3)
        var inside = scenario.frame, outside = scenario.frame
        inside[lastByte] ^= scenario.randomBits > 0 ? 0x01 : 0x00
        let bit = Int(scenario.randomBits)
        outside[lastByte - bit / 8] ^= UInt8(1 << (bit % 8))
        return (inside, outside)
    }

    /// The floods' floor holds the scenario's attack network on every CPU and drops exactly its UDP datagrams to port
    /// 5060, counting each (packets and bytes, summed over CPUs): a source just inside the network is dropped, the
    /// first one outside it, a legitimate phone, another port, TCP, an IPv4 fragment and a frame that is not IP pass
    /// uncounted. From the CLI it runs a flood whose every frame it drops. (A scenario that is not SIP over UDP it
    /// refuses: CLITests.)
    @Test func theFloodsFloorDropsTheHeldNetworksSIPOverUDPAndCountsIt() throws {
        try requireRoot()
        for name in ["single-source", "random-v4-/16", "random-v6-/64"] {
            let scenario = try FloodScenario.named(name)
            let floor = try FloorProgram(holding: scenario)
            let v6 = scenario.isIPv6
            let offset = v6 ? 14 + 8 : 14 + 12
            let (inside, outside) = Self.insideAndOutside(scenario)
            var otherPort = scenario.frame
            otherPort[offset + (v6 ? 32 : 8) + 3] ^= 0x01  // the UDP destination port's low byte: 5061
            let source = v6 ? "2001:db8:66::1" : scenario.frame[offset..<offset + 4].map(String.init).joined(separator: ".")
            let tcp = v6
                ? Packet.ethernet(Packet.EtherType.ipv6, Packet.ipv6(src: source, dst: "2001:db8::2",
                                                                     proto: Packet.Proto.tcp, Packet.tcp(dport: 5060)))
                : Packet.ethernet(Packet.EtherType.ipv4, Packet.ipv4(src: source, proto: Packet.Proto.tcp,
                                                                     Packet.tcp(dport: 5060)))
            var runs: [([UInt8], UInt32, String)] = [
                (scenario.frame, XDP_DROP_ACTION, "the attack's frame"),
                (inside, XDP_DROP_ACTION, "another source of the network"),
                (outside, XDP_PASS_ACTION, "the first source outside it"),
                (Packet.request("INVITE", src: "198.18.0.1"), XDP_PASS_ACTION, "a legitimate phone"),
                (otherPort, XDP_PASS_ACTION, "another port"),
                (tcp, XDP_PASS_ACTION, "TCP to 5060"),
                (Array(repeating: 0, count: 60), XDP_PASS_ACTION, "not IP"),
            ]
            if !v6 {
                for (at, more, what) in [(0 as UInt16, true, "a first fragment"), (100, false, "a last fragment")] {
                    let fragment = Packet.ethernet(Packet.EtherType.ipv4, Packet.ipv4(
                        src: source, proto: Packet.Proto.udp, Packet.udp(dport: 5060), fragmentOffset: at,
                        moreFragments: more))
                    runs.append((fragment, XDP_PASS_ACTION, "an IPv4 fragment: \(what)"))
                }
                // An IPv6 source whose last 32 bits are the held IPv4 source: only the mapped prefix tells them apart.
                let word = scenario.frame[offset..<offset + 4].map { String(format: "%02x", $0) }
                let twin = "2001:db8::\(word[0])\(word[1]):\(word[2])\(word[3])"
                runs.append((Packet.udp6(src: twin, dport: 5060), XDP_PASS_ACTION, "IPv6 \(twin), an IPv4 hold"))
            }
            for run in runs {
                #expect(try FloodgateProgram.testRun(programFD: floor.programFD, packet: run.0).action == run.1,
                        "\(name): \(run.2)")
            }
            let dropped = runs.filter { $0.1 == XDP_DROP_ACTION }
            let counted = try floor.heldDrops()
            #expect(counted.packets == UInt64(dropped.count), "\(name): \(counted)")
            #expect(counted.bytes == UInt64(dropped.reduce(0) { $0 + $1.0.count }), "\(name): \(counted)")
            // The hold ends with its jiffy and with a change of policy; held again, the attack is dropped again.
            for (until, policy, what) in [(0 as UInt64, 1 as UInt32, "a hold past its end"),
                                          (.max, 2, "a hold made under another policy")] {
                try floor.hold(scenario, until: until, policyGeneration: policy)
                #expect(try FloodgateProgram.testRun(programFD: floor.programFD, packet: scenario.frame).action
                        == XDP_PASS_ACTION, "\(name): \(what)")
            }
            try floor.hold(scenario)
            #expect(try FloodgateProgram.testRun(programFD: floor.programFD, packet: scenario.frame).action
                    == XDP_DROP_ACTION, "\(name): held again")
            #expect(try floor.heldDrops().packets == 1, "\(name): counted from 0 again")
        }
        let flood = try run([floodgateBinary, "flood", "--scenario", "random-v4-/24", "--filter", "floor", "--packets",
                             "1000000", "--seconds", "1", "--json"])
        #expect(flood.status == 0, "\(flood.err)")
        let f = try JSONDecoder().decode(FloodJSON.self, from: Data(flood.out.utf8))
        #expect(f.processed > 0 && f.dropped == f.processed, "\(f)")
    }

    /// The benchmark's oracle drops the attack's frames and nothing else: exactly the scenario's sources (test
    /// runs), and beside a flood sipp's calls and registrations all complete. Beside the trivial XDP_DROP program none does, and sipp's
    /// retransmissions are counted.
    @Test func theOracleDropsExactlyTheAttackAndSippsCountsAreRead() throws {
        try requireRoot()
        try requireTool("/usr/bin/sipp", package: "sip-tester")
        for name in ["single-source", "random-v4-/24", "random-v4-/16", "random-v6-/64"] {
            let scenario = try FloodScenario.named(name)
            let program = try OracleProgram(for: scenario)
            #expect(try program.verdict(scenario.frame) == XDP_DROP_ACTION, "\(name)")
            // Every source in the attack's range is dropped; the bit just above it, or a legitimate source, passes.
            let (inside, outside) = Self.insideAndOutside(scenario)
            #expect(try program.verdict(inside) == XDP_DROP_ACTION, "\(name) inside")
            #expect(try program.verdict(outside) == XDP_PASS_ACTION, "\(name) outside")
            #expect(try program.verdict(Packet.request("INVITE", src: "198.18.0.1")) == XDP_PASS_ACTION)
        }
        let oracle = try run([floodgateBinary, "flood", "--scenario", "random-v4-/24", "--filter", "oracle", "--packets",
                              "3000000", "--seconds", "1", "--calls", "2", "--json"])
        #expect(oracle.status == 0, "\(oracle.err)")
        let o = try JSONDecoder().decode(FloodJSON.self, from: Data(oracle.out.utf8))
        // Frames the veth ring lost (the machine is shared with the other tests) never reach it.
        #expect(o.dropped <= o.sent && o.dropped >= o.sent * 9 / 10, "\(o)")
        // Phone, trunk and subscriber calls and registrations, and the subscriber's registration before the flood.
        #expect(o.legitimate?.count == 7)
        for r in o.legitimate ?? [] {
            #expect(r.succeeded == r.attempted, "\(r)")
        }
        #expect(o.verified == nil && o.verifiedBeforeFlood == nil, "only Floodgate's verifications are read")
        let trivial = try run([floodgateBinary, "flood", "--scenario", "single-source", "--filter", "trivial",
                               "--packets", "1000000", "--seconds", "1", "--calls", "1", "--json"])
        #expect(trivial.status == 0, "\(trivial.err)")
        let t = try JSONDecoder().decode(FloodJSON.self, from: Data(trivial.out.utf8))
        for r in t.legitimate ?? [] {
            #expect(r.succeeded == 0 && r.retransmissions > 0, "\(r)")
        }
    }

    /// The lab's subscriber: it registers with credentials at the challenging registrar behind the router, and
    /// Floodgate's inside program reads the server's 200 and verifies it before the flood starts; its calls and
    /// registrations beside the worst-case flood (a new IPv6 source each packet, far past the new-source budget)
    /// all complete. Only the subscriber is verified: the phone registers too, without credentials, at the
    /// registrar on the router. (What a forger can do against verification is TrustTests' and AgentTests'.)
    @Test func aSubscriberVerifiedBeforeAFloodIsVerifiedAloneAndItsCallsComplete() throws {
        try requireRoot()
        try requireTool("/usr/bin/sipp", package: "sip-tester")
        // The flood reached the filter and was dropped, all of it but what the new-source budget admits (each frame a
        // new source): its burst and its rate over the flood, and a second's more for the counters' reads. That is a
        // few percent of a flood of live frames, and from a seventh to two thirds of two seconds of one through a packet
        // socket (live frames refused), whose debug build sent 290,000 frames a second on one VM and 63,000 on a
        // slower one. Less the calls' own packets, a few hundred.
        guard case .rate(let rate, let burst) = Limit.defaultNewSources else {
            Issue.record("the default new-source budget is a rate")
            return
        }
        func admitted(_ flood: FloodJSON) -> UInt64 {
            UInt64(burst) + UInt64(Double(rate) * (flood.seconds + 1)) + 1_000
        }
        // The flood must outrun the budget by 50,000 frames, every one of which must be dropped, or the drops would
        // prove little: two seconds, and where a slow machine's two did not, eight (any flood over 32,000 frames a
        // second does then).
        var ran: FloodJSON?
        for seconds in ["2", "8"] {
            let result = try run([floodgateBinary, "flood", "--scenario", "worst-case", "--filter", "floodgate",
                                  "--packets", "3000000", "--seconds", seconds, "--calls", "2", "--json"])
            #expect(result.status == 0, "\(result.err)")
            ran = try JSONDecoder().decode(FloodJSON.self, from: Data(result.out.utf8))
            if let f = ran, f.processed >= admitted(f) + 50_000 { break }
        }
        let flood = try #require(ran)
        #expect(flood.verifiedBeforeFlood == [LegitimateLoad.subscriberAddress], "\(flood)")
        #expect(flood.verified == [LegitimateLoad.subscriberAddress], "\(flood)")
        let subscriber = (flood.legitimate ?? []).filter { $0.source == "subscriber" }
        #expect(subscriber.map(\.kind).sorted() == ["calls", LegitimateLoad.registrationBeforeFlood, "registrations"])
        for r in subscriber {
            #expect(r.succeeded == r.attempted && r.attempted > 0, "\(r)")
        }
        #expect(flood.processed >= admitted(flood) + 50_000, "\(flood)")
        #expect(flood.dropped <= flood.processed && flood.processed - flood.dropped <= admitted(flood), "\(flood)")
    }

    @Test func aFilterWhoseInterfaceWasDeletedShowsAsDetachedAndCanBeCleanedUp() throws {
        try withLab { lab in
            #expect(try lab.floodgate(["attach", lab.routerInterface, "--max-sources", "100"]).status == 0)
            try NetworkLab.run(["ip", "-n", lab.routerNS, "link", "del", lab.routerInterface])
            let status = try JSONDecoder().decode([StatusJSON].self, from: Data(try lab.floodgate(["status", "--json"]).out.utf8))
            #expect(status.first?.mode == "detached: interface gone")
            let detach = try lab.floodgate(["detach", lab.routerInterface])
            #expect(detach.status == 0, "\(detach.err)")
            #expect(!FileManager.default.fileExists(atPath: "\(lab.pinRoot)/\(lab.routerInterface)"))
        }
    }
}
