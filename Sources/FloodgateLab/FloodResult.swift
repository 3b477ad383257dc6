import CLabLayouts
import FloodgateCore
import Foundation

/// One flood against one filter, in a lab of its own.
public struct FloodResult: Codable, Sendable {
    public var scenario: String
    public var filter: FilterUnderTest
    public var sent: UInt64
    public var seconds: Double
    public var processed: UInt64
    public var dropped: UInt64
    public var mpps: Double
    /// How the generator sent its frames.
    public var generator: GeneratorKind
    /// When live frames were refused: the kernel's refusal (the frames went through a packet socket).
    public var liveFramesRefused: String?
    /// With a legitimate load: what sipp achieved beside the flood, per source and kind.
    public var legitimate: [LegitimateResult]?
    /// Against Floodgate beside a legitimate load: the addresses it had verified (its `fg_trusted` entries, from
    /// the server's answers that its inside program read) before the flood started, and by its end.
    public var verifiedBeforeFlood: [String]?
    public var verified: [String]?
    /// With the receive on a CPU of its own: the CPU time its NAPI thread took during the flood
    /// (`/proc/PID/schedstat`), the filter's and the kernel's receive path's.
    public var receiveCPUSeconds: Double?

    /// The receiving CPU's time per packet the filter saw, in nanoseconds: with a NIC, what one receive queue's core
    /// spends on each packet (its Mpps per core is 1000 over it). Only with the receive on a CPU of its own.
    public var receiveNSPerPacket: Double? {
        receiveCPUSeconds.flatMap { processed > 0 ? $0 * 1e9 / Double(processed) : nil }
    }

    /// Builds a lab, attaches `filter` (``FilterUnderTest``) to the router end, floods it with `scenario` for at
    /// most `packets` frames and `seconds`, and reads what the router end's XDP program saw (ethtool -S).
    ///
    /// With a `legitimate` load, sipp registers and places calls beside the flood (see ``LegitimateLoad``).
    ///
    /// By default everything in the lab runs on CPU 0: the generator, sipp, and so the router end's receive, in
    /// softirq right after each batch is sent. The filter and the generator share that CPU, and every frame sent
    /// reaches the filter. (Left to itself, the receive starts on whichever CPU first wakes it — a sipp packet
    /// sent from the other CPU, say — and under a flood stays there for the whole run: which of the two a run
    /// measures was chance, and results came out bimodal.) With `dedicatedReceiver` (and two CPUs or more) the
    /// generator runs on CPU 0 and
    /// the receive (threaded NAPI) on the last CPU (``NetworkLab/dedicateReceiverCPU(_:)``). The generator then
    /// outruns the receive: frames the veth ring has no room for are freed into the generator's page pool on CPU 0
    /// while the receive returns its drops to the same pool from the other CPU, and both take that pool's ring lock
    /// (perf, single-source: 20% of CPU 0 spinning in `bq_xmit_all → page_pool_put_unrefed_netmem`; on the
    /// receiving CPU 17% in Floodgate's program, about 37% returning pages). The slower the filter, the more
    /// overflow and the more lock: the placement magnifies a filter's cost, which a NIC (dropping overflow in
    /// hardware) would not.
    ///
    /// `generator` nil: live frames, or a packet socket where the kernel refuses them (``GeneratorKind``).
    public static func run(
        scenario: FloodScenario, filter: FilterUnderTest, packets: UInt64, seconds: Double, progress: Bool,
        legitimate: LegitimateLoad? = nil, dedicatedReceiver: Bool = false, policy: FilterPolicy? = nil,
        generator: GeneratorKind? = nil
    ) throws -> FloodResult
    {
        if let refusal = filter.refusal(of: scenario) { throw FloodgateError(refusal) }
        // IPv6 on in the router namespace: otherwise its stack discards IPv6 floods on arrival, before nftables.
        // The server namespace behind the router holds the subscriber's registrar; every run has it, with or
        // without the calls, so that every pass measures Floodgate set up alike (its inside program, learned trust).
        let lab = try NetworkLab(prefix: "fgf", extraOutsideAddresses: [LegitimateLoad.trunkAddress,
                                                                        LegitimateLoad.subscriberAddress],
                                 extraRouterAddresses: [LegitimateLoad.registrarAddress], server: true,
                                 routerIPv6: "2001:db8::2")
        defer { lab.tearDown() }
        var link: Int32 = -1
        let trivial = try TrivialDropProgram()
        let pass = try TrivialDropProgram(action: 2)
        var oracle: OracleProgram?
        var floor: FloorProgram?
        defer { if link >= 0 { close(link) } }
        let inRouter = ["nsenter", "--net=/run/netns/\(lab.routerNS)"]
        switch filter {
        case .floodgate:
            // With the subscriber's registrar behind the router, the inside program reads its answers too.
            _ = try lab.attachFloodgate(policy: policy ?? FilterPolicy())
        case .trivial:
            link = try trivial.attach(lab.routerInterface, namespace: lab.routerNS)
        case .touch:
            link = try TrivialDropProgram(touching: true).attach(lab.routerInterface, namespace: lab.routerNS)
        case .oracle:
            oracle = try OracleProgram(for: scenario)
            link = try oracle!.attach(lab.routerInterface, namespace: lab.routerNS)
        case .floor:
            floor = try FloorProgram(holding: scenario)
            link = try floor!.attach(lab.routerInterface, namespace: lab.routerNS)
        case .xdpFilter:
            let source = scenario.frame[26..<30].map(String.init).joined(separator: ".")
            try NetworkLab.run(inRouter + ["xdp-filter", "load", "--mode", "native", lab.routerInterface])
            try NetworkLab.run(inRouter + ["xdp-filter", "ip", "--mode", "src", source])
        case .nftables:
            link = try pass.attach(lab.routerInterface, namespace: lab.routerNS)
            let rules = """
                table inet floodgate_bench {
                    chain pre {
                        type filter hook prerouting priority -300; policy accept;
                        ip saddr \(LegitimateLoad.trunkAddress) accept
                        udp dport { 5060, 5061 } meter sip4 { ip saddr limit rate over 8/second } counter drop
                        udp dport { 5060, 5061 } meter sip6 { ip6 saddr limit rate over 8/second } counter drop
                        tcp dport { 5060, 5061 } meter syn4 { ip saddr limit rate over 8/second } counter drop
                        udp dport 10000-20000 meter rtp4 { ip saddr limit rate over 5000/second } counter drop
                    }
                }
                """
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("fgnft-\(lab.id).nft")
            try rules.write(to: file, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(at: file) }
            try NetworkLab.run(inRouter + ["nft", "-f", file.path])
        case .none:
            break
        }
        defer {
            if filter == .xdpFilter {
                _ = try? NetworkLab.run(inRouter + ["xdp-filter", "unload", lab.routerInterface])
                rmdir("/sys/fs/bpf/xdp")  // libxdp's directory, if it left it empty
            }
        }
        let generatorCPU = 0
        var sippCPU: Int? = 0
        var receiveThreads: [Int32] = []
        if dedicatedReceiver {
            let cpus = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
            guard cpus > 1 else { throw FloodgateError("a CPU of its own for the receive needs two CPUs; this machine has one") }
            guard filter != .none else {
                throw FloodgateError("a CPU of its own for the receive needs an XDP program on the router end",
                                     hint: "veth has NAPI only with one attached; pick a filter other than none")
            }
            receiveThreads = try lab.dedicateReceiverCPU(cpus - 1)
            sippCPU = nil
        }
        // Real SIP beside the flood; whom Floodgate verified once the subscriber's first registration is over.
        func verifiedSources() throws -> [String] {
            let (root, external) = (lab.pinRoot, lab.routerInterface)
            return try NetworkLab.inNamespace(lab.routerNS) {
                try PinRoot(root).maps(of: external).trustedSources().map(\.address.description).sorted()
            }
        }
        var verifiedBefore: [String]?
        let sipp = try legitimate.flatMap {
            $0.isEmpty ? nil : try SippTraffic(lab: lab, load: $0, seconds: seconds, cpu: sippCPU) {
                if filter == .floodgate { verifiedBefore = try verifiedSources() }
            }
        }
        let before = try vethXDPCounters(lab.routerInterface, namespace: lab.routerNS)
        let receiveBefore = receiveThreads.compactMap(cpuNanoseconds).reduce(0, +)
        let name = scenario.name
        let flood = try lab.flood(scenario, count: packets, seconds: seconds, cpu: generatorCPU,
                                  generator: generator) { elapsed in
            if progress {
                FileHandle.standardError.write(Data(String(format: "\r%@: flooding, %.1f s", name, elapsed).utf8))
            }
        }
        if progress { FileHandle.standardError.write(Data("\n".utf8)) }
        let after = try vethXDPCounters(lab.routerInterface, namespace: lab.routerNS)
        let receiveCPU = receiveThreads.isEmpty ? nil
            : Double(receiveThreads.compactMap(cpuNanoseconds).reduce(0, +) - receiveBefore) / 1e9
        let legitimateResults = sipp?.finish()
        let processed = after.packets - before.packets
        var dropped = after.drops - before.drops
        if filter == .nftables {
            // XDP passed everything; the drops are the rule set's.
            dropped = try nftablesDrops(inRouter)
        }
        let verified = verifiedBefore == nil ? nil : try verifiedSources()
        return FloodResult(scenario: scenario.name, filter: filter, sent: flood.sent, seconds: flood.seconds,
                           processed: processed, dropped: dropped, mpps: Double(processed) / flood.seconds / 1e6,
                           generator: flood.generator, liveFramesRefused: flood.liveFramesRefused,
                           legitimate: legitimateResults,
                           verifiedBeforeFlood: verifiedBefore, verified: verified, receiveCPUSeconds: receiveCPU)
    }

    /// The share of the frames sent that the receiving XDP program never saw (the veth ring had no room). Through a
    /// packet socket the ring's overflow holds the sender back instead, and this stays near 0.
    public var lost: Double { sent > 0 ? Double(sent - min(sent, processed)) / Double(sent) : 0 }

    /// The packets the meter rules dropped: the sum of their `counter packets N`.
    static func nftablesDrops(_ prefix: [String]) throws -> UInt64 {
        let out = try NetworkLab.run(prefix + ["nft", "list", "table", "inet", "floodgate_bench"])
        var total: UInt64 = 0
        for line in out.split(separator: "\n") where line.contains("counter packets") {
            let words = line.split(separator: " ")
            if let i = words.firstIndex(of: "packets"), i + 1 < words.count, let n = UInt64(words[i + 1]) { total += n }
        }
        return total
    }
}

/// The CPU time thread or process `pid` has had, in nanoseconds (`/proc/PID/schedstat`, its first field).
public func cpuNanoseconds(_ pid: Int32) -> UInt64? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/schedstat", encoding: .utf8) else { return nil }
    return text.split(separator: " ").first.flatMap { UInt64($0) }
}
