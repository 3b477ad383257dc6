// floodgate-bench: what the XDP program costs per packet, beside a trivial XDP_DROP program measured in the same
// run, and how exactly its buckets hold their rate when both CPUs hammer one bucket. Needs root.
//
//   swift run -c release floodgate-bench [--repeat N] [--runs K] [--seconds S] [--json FILE]
import CFloodgate
import CFloodgateLab
import FloodgateCore
import FloodgateLab
import Foundation

struct Options {
    var repeatCount: UInt32 = 2_000_000
    var runs = 9
    var seconds = 2.0
    var newSources = 200_000
    var jsonPath: String?
    var floodSources = 10_000_000
    var floodSeconds = 2.0
    var floodRuns = 3
    var floodCalls = 10
    var legitimateRuns = 1
    var sections: Set<String> = ["cost", "accuracy", "random", "floods", "reaction", "agent"]
    var reportDirectory: String?
    var cpus = max(1, Int(libbpf_num_possible_cpus()))
    /// Burst of the measured buckets, in milliseconds of their rate.
    var burstMS = 10

    init(_ arguments: [String]) {
        var i = 1
        func value() -> String {
            i += 1
            guard i < arguments.count else { fail("\(arguments[i - 1]) needs a value") }
            return arguments[i]
        }
        while i < arguments.count {
            switch arguments[i] {
            case "--repeat": repeatCount = UInt32(value()) ?? { fail("--repeat takes a number") }()
            case "--runs": runs = Int(value()) ?? { fail("--runs takes a number") }()
            case "--seconds": seconds = Double(value()) ?? { fail("--seconds takes a number") }()
            case "--new-sources": newSources = Int(value()) ?? { fail("--new-sources takes a number") }()
            case "--json": jsonPath = value()
            case "--flood-sources": floodSources = Int(value()) ?? { fail("--flood-sources takes a number") }()
            case "--flood-seconds": floodSeconds = Double(value()) ?? { fail("--flood-seconds takes a number") }()
            case "--flood-runs": floodRuns = Int(value()) ?? { fail("--flood-runs takes a number") }()
            case "--flood-calls": floodCalls = Int(value()) ?? { fail("--flood-calls takes a number") }()
            case "--legitimate-runs": legitimateRuns = Int(value()) ?? { fail("--legitimate-runs takes a number") }()
            case "--report": reportDirectory = value()
            case "--only": sections = Set(value().split(separator: ",").map(String.init))
            case "--cpus": cpus = Int(value()) ?? { fail("--cpus takes a number") }()
            case "--burst-ms": burstMS = Int(value()) ?? { fail("--burst-ms takes a number") }()
            case "-h", "--help":
                print(
                    "usage: floodgate-bench [--repeat N] [--runs K] [--seconds S] [--new-sources N] [--flood-sources N]"
                        + " [--flood-seconds S] [--flood-runs K] [--flood-calls N] [--legitimate-runs K] [--cpus N] [--burst-ms N] [--only cost,accuracy,random,floods,reaction,agent] [--report DIR]"
                        + " [--json FILE]")
                exit(0)
            default: fail("unknown argument \(arguments[i])")
            }
            i += 1
        }
        if runs < 1 || repeatCount < 1 || seconds <= 0 || newSources < 1 { fail("numbers must be positive") }
    }
}

func checkResult(_ what: String, _ result: Int32) throws -> Int32 {
    if result < 0 { throw FloodgateError(what, libbpfResult: result) }
    return result
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("floodgate-bench: \(message)\n".utf8))
    exit(2)
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.count % 2 == 1
        ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

/// The per-source bucket alone: no prefix or new-source limits in the way of what is measured.
let unlimitedAggregates: Policy = {
    var policy = Policy()
    policy.prefix = .unlimited
    policy.widePrefix = .unlimited
    policy.newSources = .unlimited
    return policy
}()

/// A REGISTER as a phone sends it, about 500 bytes, its User-Agent near the end.
let register = Array(
    """
    REGISTER sip:198.18.0.2 SIP/2.0\r
    Via: SIP/2.0/UDP 198.18.1.1:5060;rport;branch=z9hG4bKPj5c7b2d0e8f1a4b3c9d6e\r
    Max-Forwards: 70\r
    From: <sip:1001@198.18.0.2>;tag=8f1a4b3c9d6e5c7b2d0e\r
    To: <sip:1001@198.18.0.2>\r
    Call-ID: 3c9d6e5c7b2d0e8f1a4b@198.18.1.1\r
    CSeq: 4711 REGISTER\r
    Contact: <sip:1001@198.18.1.1:5060;ob>;expires=300\r
    Allow: PRACK, INVITE, ACK, BYE, CANCEL, UPDATE, INFO, SUBSCRIBE, NOTIFY, REFER, MESSAGE, OPTIONS\r
    Supported: outbound, path, gruu\r
    Expires: 300\r
    User-Agent: Grandstream GXP2170 1.0.11.3\r
    Content-Length: 0\r
    \r

    """.utf8)

func frame(src: String, dport: UInt16, payload: [UInt8] = Array("OPTIONS sip:bench@198.18.0.2 SIP/2.0\r\n".utf8))
    -> [UInt8]
{
    func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xFF)] }
    let udp = be16(40000) + be16(dport) + be16(UInt16(8 + payload.count)) + [0, 0] + payload
    var ip: [UInt8] = [0x45, 0] + be16(UInt16(20 + udp.count)) + [0, 1, 0, 0, 64, 17, 0, 0]
    var a = in_addr()
    inet_pton(AF_INET, src, &a)
    ip += withUnsafeBytes(of: a) { Array($0) } + [198, 18, 0, 2]
    return [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00] + ip + udp
}

// MARK: Per-packet cost

struct CostRow: Encodable {
    var scenario: String
    var method: String
    var trivialNS: Double
    var floodgateNS: Double
    var ratio: Double { floodgateNS / trivialNS }
    enum CodingKeys: String, CodingKey {
        case scenario, method
        case trivialNS = "trivial_ns"
        case floodgateNS = "floodgate_ns"
        case ratio
    }
    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(scenario, forKey: .scenario)
        try c.encode(method, forKey: .method)
        try c.encode(trivialNS, forKey: .trivialNS)
        try c.encode(floodgateNS, forKey: .floodgateNS)
        try c.encode(ratio, forKey: .ratio)
    }
}

/// Median ns/packet of `program` and of the trivial program, runs interleaved so drift hits both alike.
func compareRepeated(
    _ options: Options, trivial: TrivialDropProgram, program: FloodgateProgram, packet: [UInt8],
    expect action: UInt32
) throws -> (Double, Double) {
    var trivialRuns: [Double] = []
    var floodgateRuns: [Double] = []
    for _ in 0..<options.runs {
        trivialRuns.append(
            Double(
                try FloodgateProgram.testRun(
                    programFD: trivial.programFD, packet: packet, repeat: options.repeatCount
                ).durationNS))
        let run = try program.testRun(packet, repeat: options.repeatCount)
        guard run.action == action else { throw FloodgateError("unexpected XDP action \(run.action)") }
        floodgateRuns.append(Double(run.durationNS))
    }
    return (median(trivialRuns), median(floodgateRuns))
}

/// The default settings without auto-ban: the bucket measurements keep their source on its bucket throughout
/// (with auto-ban it would be banned after its first 500 drops, and dropped as banned from then on).
let bucketOnly: Settings = {
    var s = Settings.defaults
    s.autoBan.enabled = false
    return s
}()

func perPacketCost(_ options: Options, trivial: TrivialDropProgram) throws -> [CostRow] {
    var rows: [CostRow] = []
    let method = "repeat \(options.repeatCount), median of \(options.runs)"
    let sip = frame(src: "198.18.1.1", dport: 5060)

    let passing = try FloodgateProgram(
        limits: [.options: .rate(FG_MAX_RATE, burst: FG_MAX_BURST)], policy: unlimitedAggregates)
    let other = frame(src: "198.18.1.1", dport: 9)
    let (t0, f0) = try compareRepeated(
        options, trivial: trivial, program: passing, packet: other, expect: UInt32(XDP_PASS.rawValue))
    rows.append(
        CostRow(
            scenario: "passed: unlimited class (parse and count only)", method: method, trivialNS: t0, floodgateNS: f0))

    let (t1, f1) = try compareRepeated(
        options, trivial: trivial, program: passing, packet: sip, expect: UInt32(XDP_PASS.rawValue))
    rows.append(
        CostRow(
            scenario: "passed: SIP OPTIONS under its limit (LRU, clock, CAS)", method: method, trivialNS: t1,
            floodgateNS: f1))

    let phone = frame(src: "198.18.1.1", dport: 5060, payload: register)
    let registering = try FloodgateProgram(
        limits: [.register: .rate(FG_MAX_RATE, burst: FG_MAX_BURST)], policy: unlimitedAggregates)
    let (t5, f5) = try compareRepeated(
        options, trivial: trivial, program: registering, packet: phone, expect: UInt32(XDP_PASS.rawValue))
    rows.append(
        CostRow(
            scenario: "passed: \(register.count)-byte REGISTER, signature scan", method: method, trivialNS: t5,
            floodgateNS: f5))

    // The flood case: a source over the default OPTIONS limit (8/s, burst 16), dropped from the per-CPU drop cache.
    let dropping = try FloodgateProgram(settings: bucketOnly)
    for _ in 0..<300 { _ = try dropping.testRun(sip) }
    let (t2, f2) = try compareRepeated(
        options, trivial: trivial, program: dropping, packet: sip, expect: UInt32(XDP_DROP.rawValue))
    rows.append(
        CostRow(
            scenario: "rate-dropped: over the default OPTIONS limit", method: method, trivialNS: t2, floodgateNS: f2))

    // A burst of 1 holds less than a jiffy of tokens, so the drop cache stays out: every drop reads the LRU and clock.
    let strict = try FloodgateProgram(settings: bucketOnly, limits: [.options: .rate(1, burst: 1)])
    _ = try strict.testRun(sip)
    let (t3, f3) = try compareRepeated(
        options, trivial: trivial, program: strict, packet: sip, expect: UInt32(XDP_DROP.rawValue))
    rows.append(
        CostRow(
            scenario: "rate-dropped: over a 1/s burst-1 limit (no cache)", method: method, trivialNS: t3,
            floodgateNS: f3))

    // A new source each packet: BPF_PROG_TEST_RUN repeats one packet, so each distinct packet is run once and the
    // kernel's per-run duration averaged; the trivial program is measured the same way.
    let fresh = try FloodgateProgram(policy: unlimitedAggregates)
    let packets = (0..<options.newSources).map { i in
        frame(src: "198.\(18 + (i >> 16) % 2).\((i >> 8) & 0xFF).\(i & 0xFF)", dport: 5060)
    }
    var trivialSum = 0.0
    var freshSum = 0.0
    for packet in packets {
        trivialSum += Double(try FloodgateProgram.testRun(programFD: trivial.programFD, packet: packet).durationNS)
        freshSum += Double(try fresh.testRun(packet).durationNS)
    }
    rows.append(
        CostRow(
            scenario: "new source each packet (LRU insert)", method: "repeat 1 × \(options.newSources) packets, mean",
            trivialNS: trivialSum / Double(packets.count), floodgateNS: freshSum / Double(packets.count)))
    return rows
}

// MARK: Rate accuracy

struct AccuracyRow: Codable {
    var overloadTarget: Double
    var cpus: Int
    var configuredRate: Double
    var offeredRate: Double
    var admittedRate: Double
    var errorPercent: Double
    var cpusThatRan: Int
    enum CodingKeys: String, CodingKey {
        case cpus
        case overloadTarget = "overload_target"
        case configuredRate = "configured_pps"
        case offeredRate = "offered_pps"
        case admittedRate = "admitted_pps"
        case errorPercent = "error_percent"
        case cpusThatRan = "cpus_that_ran"
    }
}

/// Keeps `program` attached (native XDP) to a veth in a namespace of its own while the rate is measured.
///
/// BPF_PROG_TEST_RUN with repeat > 1 adds the program to the kernel's XDP dispatcher before its loop and removes it
/// after, which costs about 20 ms of wall time per call here; a bucket idles through those gaps and cannot bank more
/// than its burst, so the measured rate would fall short for reasons outside the filter. Attached, the program stays
/// in the dispatcher and test runs follow each other without gaps. No traffic goes through the veth.
final class DispatcherAnchor {
    let namespace = "fgb-\(String(UInt32.random(in: 0..<UInt32.max), radix: 36))"
    private(set) var linkFD: Int32 = -1

    init(_ program: FloodgateProgram) throws {
        do {
            try NetworkLab.run(["ip", "netns", "add", namespace])
            try NetworkLab.run(["ip", "-n", namespace, "link", "add", "fgb0", "type", "veth", "peer", "name", "fgb1"])
            try NetworkLab.run(["ip", "-n", namespace, "link", "set", "fgb0", "up"])
            try NetworkLab.run(["ip", "-n", namespace, "link", "set", "fgb1", "up"])
            linkFD = try NetworkLab.inNamespace(namespace) {
                try checkResult(
                    "attach the measured program to a veth",
                    cfloodgate_xdp_link(program.programFD, Int32(if_nametoindex("fgb0")), UInt32(XDP_FLAGS_DRV_MODE)))
            }
        } catch {
            release()
            throw error
        }
    }

    private var released = false

    func release() {
        guard !released else { return }
        released = true
        if linkFD >= 0 { close(linkFD) }
        _ = try? NetworkLab.run(["ip", "netns", "del", namespace])
    }

    deinit { release() }
}

/// Every CPU runs `packet` through `program` for `seconds`, each thread pinned to its own CPU.
func hammer(_ program: FloodgateProgram, _ packet: [UInt8], cpus: Int, seconds: Double) -> (elapsed: Double, ran: Int) {
    final class Ran: @unchecked Sendable {
        let lock = NSLock()
        var cpus = Set<Int32>()
    }
    let ran = Ran()
    let start = monotonicNanoseconds()
    let deadline = start + UInt64(seconds * 1e9)
    DispatchQueue.concurrentPerform(iterations: cpus) { cpu in
        _ = cfloodgate_pin_to_cpu(Int32(cpu))
        while monotonicNanoseconds() < deadline { _ = try? program.testRun(packet, repeat: 20_000) }
        ran.lock.lock()
        ran.cpus.insert(cfloodgate_current_cpu())
        ran.lock.unlock()
    }
    return (Double(monotonicNanoseconds() - start) / 1e9, ran.cpus.count)
}

func rateAccuracy(_ options: Options) throws -> [AccuracyRow] {
    let cpus = options.cpus
    let packet = frame(src: "198.18.9.9", dport: 5060)
    // How fast can all CPUs offer packets to one over-limit bucket?
    let probe = try FloodgateProgram(
        settings: bucketOnly, limits: [.options: .rate(1, burst: 100)], policy: unlimitedAggregates)
    let probeAnchor = try DispatcherAnchor(probe)
    let (probeTime, _) = hammer(probe, packet, cpus: cpus, seconds: 0.5)
    probeAnchor.release()
    let offered = Double(try probe.maps.counters().packets.total(.options)) / probeTime

    return try [10.0, 100.0].map { overload in
        // Admissions cost more than drops, so the offered load depends on the rate: a few short trials move the
        // rate towards the one the measured load overloads `overload` times.
        var rate = max(1, UInt32(offered / overload))
        for _ in 0..<4 {
            let trial = try FloodgateProgram(
                settings: bucketOnly, limits: [.options: .rate(rate, burst: max(1, rate / 100))],
                policy: unlimitedAggregates)
            let anchor = try DispatcherAnchor(trial)
            let (time, _) = hammer(trial, packet, cpus: cpus, seconds: 0.4)
            anchor.release()
            let measured = Double(try trial.maps.counters().packets.total(.options)) / time
            // Step halfway in logarithmic terms: the offered load falls as the rate rises, so a full step overshoots.
            rate = max(1, UInt32((Double(rate) * measured / overload).squareRoot()))
        }
        let burst = max(1, rate / 1000 * UInt32(options.burstMS))
        let program = try FloodgateProgram(
            settings: bucketOnly, limits: [.options: .rate(rate, burst: burst)], policy: unlimitedAggregates)
        let anchor = try DispatcherAnchor(program)
        defer { anchor.release() }
        let (elapsed, ran) = hammer(program, packet, cpus: cpus, seconds: options.seconds)
        let counters = try program.maps.counters().packets
        let admitted = Double(counters[.options, .passed]) - Double(burst)
        let admittedRate = admitted / elapsed
        return AccuracyRow(
            overloadTarget: overload, cpus: cpus, configuredRate: Double(rate),
            offeredRate: Double(counters.total(.options)) / elapsed, admittedRate: admittedRate,
            errorPercent: (admittedRate / Double(rate) - 1) * 100, cpusThatRan: ran)
    }
}

// MARK: Random-source flood

struct SurvivalRow: Encodable {
    var policy: String
    var floodPackets: Int
    var floodAdmitted: Int
    var trackedAfter: Int
    var legitSent: Int
    var legitPassed: Int
    var legitStillTracked: Int
    var legitSources: Int
    var newcomersPassed: Int
    var newcomers: Int
    /// Kernel memory of all the filter's maps (memlock in /proc/self/fdinfo), and this process's RSS, after the flood.
    var mapBytes: UInt64
    var rssBytes: UInt64
    enum CodingKeys: String, CodingKey {
        case policy
        case mapBytes = "map_bytes", rssBytes = "rss_bytes"
        case floodPackets = "flood_packets"
        case floodAdmitted = "flood_admitted"
        case trackedAfter = "tracked_after"
        case legitSent = "legit_sent"
        case legitPassed = "legit_passed"
        case legitStillTracked = "legit_still_tracked"
        case legitSources = "legit_sources"
        case newcomersPassed = "newcomers_passed"
        case newcomers = "newcomers"
    }
}

/// 1,000 phones (IPv4, one per /24 of 198.18.0.0/15 … as far as it goes) keep registering, five times over the
/// flood, while `floodSources` REGISTERs arrive from random IPv6 sources of 2001:db8::/32, one packet each; 100
/// new phones show up halfway. The packets only go through BPF_PROG_TEST_RUN. What survives, with the default
/// policy (prefix buckets and the new-source budget gating entry to the source map) and without?
func randomSourceFlood(_ options: Options) throws -> [SurvivalRow] {
    let phones = (0..<1000).map { i in "198.18.\(i / 4).\(i % 4 * 60 + 1)" }
    let newcomers = (0..<100).map { i in "198.19.\(i).1" }
    var template = frame(src: "198.18.0.1", dport: 5060, payload: Array("REGISTER sip:198.18.0.2 SIP/2.0\r\n\r\n".utf8))
    // Rewrite it as IPv6: Ethernet, then a 40-byte IPv6 header in place of the 20-byte IPv4 one.
    let udp = Array(template[34...])
    template =
        Array(template[0..<12]) + [0x86, 0xDD, 0x60, 0, 0, 0, UInt8(udp.count >> 8), UInt8(udp.count & 0xFF), 17, 64]
        + [0x20, 0x01, 0x0D, 0xB8] + [UInt8](repeating: 0, count: 12) + [0x20, 0x01, 0x0D, 0xB8]
        + [UInt8](repeating: 0, count: 11)
        + [2] + udp
    var rng = SystemRandomNumberGenerator()
    let rounds = 5
    let perRound = max(1, options.floodSources / rounds)
    return try [("default policy", Policy()), ("no prefix or new-source limits", unlimitedAggregates)].map {
        name, policy in
        let program = try FloodgateProgram(policy: policy)
        var legitSent = 0
        var legitPassed = 0
        var newcomersPassed = 0
        var floodAdmitted = 0
        var packet = template
        for round in 0...rounds {
            for phone in phones {
                legitSent += 1
                if try program.testRun(frame(src: phone, dport: 5060, payload: register)).action
                    == UInt32(XDP_PASS.rawValue)
                {
                    legitPassed += 1
                }
            }
            if round == rounds / 2 {
                for phone in newcomers
                where try program.testRun(frame(src: phone, dport: 5060, payload: register)).action
                    == UInt32(XDP_PASS.rawValue)
                {
                    newcomersPassed += 1
                }
            }
            if round == rounds { break }
            for _ in 0..<perRound {
                let r = rng.next()
                packet.withUnsafeMutableBytes { raw in raw.storeBytes(of: r, toByteOffset: 26, as: UInt64.self) }
                if try program.testRun(packet).action == UInt32(XDP_PASS.rawValue) { floodAdmitted += 1 }
            }
        }
        let tracked = try program.maps.sources()
        let phoneSet = Set(phones)
        return SurvivalRow(
            policy: name, floodPackets: perRound * rounds, floodAdmitted: floodAdmitted, trackedAfter: tracked.count,
            legitSent: legitSent, legitPassed: legitPassed,
            legitStillTracked: Set(tracked.map(\.address.description)).intersection(phoneSet).count,
            legitSources: phones.count, newcomersPassed: newcomersPassed, newcomers: newcomers.count,
            mapBytes: FilterMaps.names.reduce(0) { $0 + memlock(fd: program.maps.fd($1)) }, rssBytes: residentBytes())
    }
}

/// The kernel memory charged to a BPF map (`memlock:` in /proc/self/fdinfo/FD).
func memlock(fd: Int32) -> UInt64 {
    guard let text = try? String(contentsOfFile: "/proc/self/fdinfo/\(fd)", encoding: .utf8) else { return 0 }
    for line in text.split(separator: "\n") where line.hasPrefix("memlock:") {
        return UInt64(line.dropFirst("memlock:".count).trimmingCharacters(in: .whitespaces)) ?? 0
    }
    return 0
}

/// This process's resident set (VmRSS in /proc/self/status).
func residentBytes() -> UInt64 {
    guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        let kb = line.split(separator: " ").dropFirst().first.flatMap { UInt64($0) } ?? 0
        return kb * 1024
    }
    return 0
}

// MARK: Generated floods

struct FloodRow: Encodable {
    var scenario: String
    /// Median Mpps per filter; a filter that cannot express the scenario is absent.
    var mpps: [String: Double]
    var floodgateDroppedShare: Double
    /// sipp's registrations and calls beside the flood (phone and allow-listed trunk) in the second pass, summed
    /// over its runs, per filter.
    var legitimate: [String: LegitimateTotals]
    enum CodingKeys: String, CodingKey {
        case scenario, mpps, legitimate
        case floodgateDroppedShare = "floodgate_dropped_share"
    }
    func ratio(_ a: String, _ b: String) -> Double? {
        guard let x = mpps[a], let y = mpps[b], y > 0 else { return nil }
        return x / y
    }
}

struct LegitimateTotals: Encodable {
    var attempted = 0
    var succeeded = 0
    var retransmissions = 0
    var cell: String { "\(succeeded)/\(attempted) (\(retransmissions) rtx)" }
}

let benchedFilters = ["trivial", "touch", "oracle", "floodgate", "xdp-filter", "nftables"]
/// The filters beside which sipp's calls are counted (the trivial and touch programs drop them all).
let legitimateFilters = ["oracle", "floodgate", "xdp-filter", "nftables"]

/// Each scenario through the live-frames generator into a veth whose peer runs each filter (Floodgate with its
/// default policy), in two passes. Speed: nothing but the flood, every filter in turn, `floodRuns` times; medians
/// of the Mpps the receiving XDP program saw. Legitimate traffic: the same floods with sipp's registrations and
/// calls beside them, `legitimateRuns` times, beside the filters that let them through. Apart because, on the
/// flood's CPU, the calls (sipp, and the router's stack for what passes) cost every filter that passes them a few
/// percent of its Mpps that the trivial program, which drops them, does not pay.
func generatedFloods(_ options: Options) throws -> [FloodRow] {
    try FloodScenario.names.map { name in
        let scenario = try FloodScenario.named(name)
        var runs: [String: [Double]] = [:]
        var dropped: [Double] = []
        var legitimate: [String: LegitimateTotals] = [:]
        func expressible(_ filter: String) -> Bool { filter != "xdp-filter" || scenario.mode == FG_FLOOD_FIXED }
        for _ in 0..<options.floodRuns {
            for filter in benchedFilters where expressible(filter) {
                let r = try FloodResult.run(
                    scenario: scenario, filter: filter, packets: 1_000_000_000, seconds: options.floodSeconds,
                    progress: false)
                runs[filter, default: []].append(r.mpps)
                if filter == "floodgate" { dropped.append(Double(r.dropped) / Double(max(r.processed, 1))) }
            }
        }
        for _ in 0..<options.legitimateRuns {
            for filter in legitimateFilters where expressible(filter) {
                let r = try FloodResult.run(
                    scenario: scenario, filter: filter, packets: 1_000_000_000, seconds: options.floodSeconds,
                    progress: false, legitimate: .standard(calls: options.floodCalls))
                for l in r.legitimate ?? [] {
                    legitimate[filter, default: LegitimateTotals()].attempted += l.attempted
                    legitimate[filter, default: LegitimateTotals()].succeeded += l.succeeded
                    legitimate[filter, default: LegitimateTotals()].retransmissions += l.retransmissions
                }
            }
        }
        return FloodRow(
            scenario: name, mpps: runs.mapValues(median), floodgateDroppedShare: median(dropped), legitimate: legitimate)
    }
}

/// The floods as a grouped bar chart: Mpps per filter per scenario.
func floodChart(_ rows: [FloodRow]) -> String {
    let colors = ["trivial": "#9aa5b1", "touch": "#c5ccd3", "oracle": "#2ca02c", "floodgate": "#1f77b4", "xdp-filter": "#ff7f0e",
                  "nftables": "#d62728"]
    let top = max(1, (rows.flatMap { $0.mpps.values }.max() ?? 1).rounded(.up))
    let groupWidth = 140.0, barWidth = 20.0, left = 50.0, height = 260.0, base = 300.0
    let width = left + Double(rows.count) * groupWidth + 20
    var svg = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="380" font-family="sans-serif" font-size="11">
        <text x="\(left)" y="20" font-size="14">Mpps processed per filter (live-frames flood over veth, median)</text>

        """
    for tick in stride(from: 0.0, through: top, by: 1.0) {
        let y = base - tick / top * height
        svg += "<line x1=\"\(left)\" x2=\"\(width - 10)\" y1=\"\(y)\" y2=\"\(y)\" stroke=\"#e4e7eb\"/>"
        svg += "<text x=\"\(left - 6)\" y=\"\(y + 4)\" text-anchor=\"end\">\(Int(tick))</text>\n"
    }
    for (i, row) in rows.enumerated() {
        let x0 = left + Double(i) * groupWidth + 6
        for (j, filter) in benchedFilters.enumerated() {
            guard let v = row.mpps[filter] else { continue }
            let h = v / top * height
            svg += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%@\"><title>%@ %@: %.2f Mpps</title></rect>\n",
                          x0 + Double(j) * barWidth, base - h, barWidth - 2, h, colors[filter]!, row.scenario, filter, v)
        }
        svg += "<text x=\"\(x0 + Double(benchedFilters.count) / 2 * barWidth)\" y=\"\(base + 14)\" text-anchor=\"middle\">\(row.scenario)</text>\n"
    }
    for (j, filter) in benchedFilters.enumerated() {
        let x = left + Double(j) * 110
        svg += "<rect x=\"\(x)\" y=\"340\" width=\"12\" height=\"12\" fill=\"\(colors[filter]!)\"/>"
        svg += "<text x=\"\(x + 16)\" y=\"350\">\(filter)</text>\n"
    }
    return svg + "</svg>\n"
}

/// The floods as a Markdown table.
func floodMarkdown(_ rows: [FloodRow], _ options: Options) -> String {
    var md = "| scenario | " + benchedFilters.map { "\($0) Mpps" }.joined(separator: " | ")
        + " | floodgate / trivial | floodgate / xdp-filter | floodgate / nftables | legitimate ok: oracle"
        + " | floodgate | xdp-filter | nftables |\n"
    md += "|---|" + String(repeating: "---:|", count: benchedFilters.count + 7) + "\n"
    for row in rows {
        let cells = benchedFilters.map { f in row.mpps[f].map { String(format: "%.2f", $0) } ?? "n/a" }
        let ratios = ["trivial", "xdp-filter", "nftables"].map { f in
            row.ratio("floodgate", f).map { String(format: "%.2f×", $0) } ?? "n/a"
        }
        let legitimate = legitimateFilters.map { row.legitimate[$0]?.cell ?? "n/a" }
        md += "| \(row.scenario) | " + (cells + ratios + legitimate).joined(separator: " | ") + " |\n"
    }
    return md
}

// MARK: Reaction

struct ReactionRow: Encodable {
    var scenario: String
    /// Microseconds from the first flood packet the filter counted to the first one it dropped, median over runs.
    var dropMicros: Double
    /// Microseconds from the first flood packet to the source on the ban list; nil: no run saw a ban.
    var banMicros: Double?
    /// How often the counters were read (the resolution of both times), median.
    var pollMicros: Double
    /// The source's packets that passed in the run (its burst, and what its rate allowed), median.
    var passed: Double
    enum CodingKeys: String, CodingKey {
        case scenario, passed
        case dropMicros = "drop_us"
        case banMicros = "ban_us"
        case pollMicros = "poll_us"
    }
}

/// The flood starts against an attached filter (default policy) while this process reads the class's counters
/// and the ban list as fast as it can: the first read that shows a packet of the flood starts the clock.
func reaction(_ options: Options) throws -> [ReactionRow] {
    let cases: [(String, TrafficClass)] = [("single-source", .invite), ("register-scanner", .register),
                                           ("options-scan", .options)]
    return try cases.map { name, trafficClass in
        var drops: [Double] = [], bans: [Double] = [], polls: [Double] = [], passed: [Double] = []
        for _ in 0..<options.floodRuns {
            let lab = try NetworkLab(prefix: "fgx")
            defer { lab.tearDown() }
            let root = PinRoot(lab.pinRoot)
            _ = try NetworkLab.inNamespace(lab.routerNS) {
                try root.attach(try Interface(lab.routerInterface), mode: .native)
            }
            let maps = try root.maps(of: lab.routerInterface)
            var scenario = try FloodScenario.named(name)
            scenario.frame.replaceSubrange(0..<6, with: try lab.routerMAC())
            let attacker = SourceAddress(scenario.frame[26..<30].map(String.init).joined(separator: "."))!
            let generator = try FloodGenerator()
            let done = DispatchSemaphore(value: 0)
            let ns = lab.outsideNS, interface = lab.outsideInterface, flood = scenario
            // The generator (and with it the receive, in softirq after each batch) on CPU 0, the reader on the
            // last CPU: sharing a CPU, the reader would see the flood only when the scheduler let it, and time
            // from there.
            let cpus = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
            Thread {
                _ = try? generator.run(flood, interface: interface, namespace: ns, count: 2_000_000, seconds: 1,
                                       chunk: 100_000, cpu: 0)
                done.signal()
            }.start()
            let reading = ReactionReads()
            let readerDone = DispatchSemaphore(value: 0)
            Thread {
                defer { readerDone.signal() }
                if cpus > 1 { _ = cfloodgate_pin_to_cpu(Int32(cpus - 1)) }
                do { try reading.watch(maps, attacker: attacker, trafficClass: trafficClass) } catch { reading.error = error }
            }.start()
            readerDone.wait()
            done.wait()
            if let error = reading.error { throw error }
            let (first, dropped, banned, reads, elapsed, last) = (reading.first, reading.dropped, reading.banned,
                                                                 reading.reads, reading.elapsed, reading.last)
            guard let first else { throw FloodgateError("the \(name) flood never reached the filter") }
            // A verdict is counted after it is taken: a ban can show in the read that first shows the packets.
            func since(_ t: UInt64) -> Double { Double(t > first ? t - first : 0) / 1000 }
            drops.append(since(dropped ?? first))
            if let banned { bans.append(since(banned)) }
            polls.append(Double(elapsed) / Double(max(reads, 1)) / 1000)
            passed.append(Double(last.isEmpty ? 0 : last[Int(Reason.passed.index)]))
        }
        return ReactionRow(scenario: name, dropMicros: median(drops), banMicros: bans.isEmpty ? nil : median(bans),
                           pollMicros: median(polls), passed: median(passed))
    }
}

/// What the reaction section's reader saw: when the flood's packets, its first drop and its source's ban first
/// showed, reading the class counters and the ban list as fast as it can (on a CPU of its own).
final class ReactionReads: @unchecked Sendable {
    var first: UInt64?, dropped: UInt64?, banned: UInt64?
    var reads = 0
    var elapsed: UInt64 = 0
    var last: [UInt64] = []
    var error: Error?

    func watch(_ maps: FilterMaps, attacker: SourceAddress, trafficClass: TrafficClass) throws {
        let start = monotonicNanoseconds()
        defer { elapsed = monotonicNanoseconds() - start }
        while monotonicNanoseconds() - start < 3_000_000_000 {
            let ban = maps.ban(of: attacker)
            let counts = try maps.packets(of: trafficClass)
            let now = monotonicNanoseconds()
            reads += 1
            last = counts
            let total = counts.reduce(0, +)
            let passedNow = counts[Int(Reason.passed.index)]
            if first == nil && total > 0 { first = now }
            if dropped == nil && total > passedNow { dropped = now }
            if banned == nil && ban != nil { banned = now }
            if dropped != nil && (banned != nil || now - (first ?? now) > 1_500_000_000) { break }
        }
    }
}

// MARK: The agent's memory

struct AgentMemoryRow: Encodable {
    var trackedSources: Int
    var mapBytes: UInt64
    var agentRSSBytes: UInt64
    enum CodingKeys: String, CodingKey {
        case trackedSources = "tracked_sources", mapBytes = "map_bytes", agentRSSBytes = "agent_rss_bytes"
    }
}

/// `floodgate run` on a lab interface with a 1M-entry source map, filled with a million distinct sources through
/// test runs of the attached program (prefix and new-source limits off, so every source gets an entry); then,
/// after the agent has polled and counted them, its resident set (VmRSS) and the maps' kernel memory.
func agentMemory(_ options: Options) throws -> AgentMemoryRow {
    let binary = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        .deletingLastPathComponent().appendingPathComponent("floodgate").path
    guard FileManager.default.isExecutableFile(atPath: binary) else {
        throw FloodgateError("no floodgate binary beside the benchmark at \(binary)",
                             hint: "build it too: swift build -c release --product floodgate")
    }
    let lab = try NetworkLab(prefix: "fgm")
    defer { lab.tearDown() }
    let config = FileManager.default.temporaryDirectory.appendingPathComponent("fgm-\(lab.id).yaml")
    try """
        interfaces: {external: \(lab.routerInterface), mode: native}
        pin_root: \(lab.pinRoot)
        max_sources: 1000000
        prefix: {limit: unlimited, wide_limit: unlimited}
        budget: {new_sources: unlimited}
        metrics: {listen: "127.0.0.1:19499"}
        poll: 250ms
        """.write(to: config, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(at: config) }
    let agent = Process()
    agent.executableURL = URL(fileURLWithPath: "/usr/bin/nsenter")
    agent.arguments = ["--net=/run/netns/\(lab.routerNS)", binary, "run", "--config", config.path]
    agent.standardOutput = FileHandle.nullDevice
    agent.standardError = FileHandle.nullDevice
    try agent.run()
    defer {
        kill(agent.processIdentifier, SIGKILL)
        agent.waitUntilExit()
    }
    let root = PinRoot(lab.pinRoot)
    var maps: FilterMaps?
    for _ in 0..<100 where maps == nil {
        Thread.sleep(forTimeInterval: 0.1)
        maps = try? root.maps(of: lab.routerInterface)
    }
    guard let maps, let filter = try? root.inspect(interfaceName: lab.routerInterface) else {
        throw FloodgateError("the agent did not attach within 10 s")
    }
    let programFD = bpf_prog_get_fd_by_id(filter.programID)
    guard programFD >= 0 else { throw FloodgateError("open the attached program", libbpfResult: programFD) }
    defer { close(programFD) }
    var packet = Packet.ethernet(Packet.EtherType.ipv6, Packet.ipv6(
        src: "2001:db8:77::1", dst: "2001:db8::2", proto: Packet.Proto.udp,
        Packet.udp(sport: 5060, dport: 5060, Array("REGISTER sip:x SIP/2.0\r\n\r\n".utf8))))
    for i in 0..<1_000_000 {  // the low 32 bits of the source address (bytes 14 + 8 + 12 ..< +16)
        packet[34] = UInt8(i >> 24 & 0xFF)
        packet[35] = UInt8(i >> 16 & 0xFF)
        packet[36] = UInt8(i >> 8 & 0xFF)
        packet[37] = UInt8(i & 0xFF)
        _ = try FloodgateProgram.testRun(programFD: programFD, packet: packet)
    }
    Thread.sleep(forTimeInterval: 6)  // the agent counts the source map every 5 s
    let status = (try? String(contentsOfFile: "/proc/\(agent.processIdentifier)/status", encoding: .utf8)) ?? ""
    let rssKB = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") }
        .flatMap { $0.split(separator: " ").dropFirst().first.flatMap { UInt64($0) } } ?? 0
    return AgentMemoryRow(
        trackedSources: try maps.trackedSourceCount(),
        mapBytes: FilterMaps.names.reduce(0) { $0 + memlock(fd: maps.fd($1)) }, agentRSSBytes: rssKB * 1024)
}

// MARK: Main

guard geteuid() == 0 else { fail("run as root: the benchmark loads BPF programs") }
let options = Options(CommandLine.arguments)
do {
    let trivial = try TrivialDropProgram()
    var costs: [CostRow] = []
    var accuracy: [AccuracyRow] = []
    var survival: [SurvivalRow] = []
    var floods: [FloodRow] = []
    var reactions: [ReactionRow] = []
    var agentRows: [AgentMemoryRow] = []
    func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
    func lpad(_ s: String, _ n: Int) -> String { s.count >= n ? s : String(repeating: " ", count: n - s.count) + s }
    if options.sections.contains("cost") {
        print("Floodgate per-packet cost beside a trivial XDP_DROP program (BPF_PROG_TEST_RUN, same run)")
        costs = try perPacketCost(options, trivial: trivial)
        print(pad("scenario", 52) + lpad("trivial ns", 11) + lpad("floodgate ns", 14) + lpad("ratio", 8) + "  method")
        for row in costs {
            print(
                pad(row.scenario, 52) + lpad(String(format: "%.1f", row.trivialNS), 11)
                    + lpad(String(format: "%.1f", row.floodgateNS), 14) + lpad(String(format: "%.2f×", row.ratio), 8)
                    + "  " + row.method)
        }
        let flood = costs.first { $0.scenario.hasPrefix("rate-dropped: over the default") }?.ratio ?? 0
        print(
            String(
                format: "target: rate-limited (dropped) path ≤ 2.00× trivial — measured %.2f× — %@", flood,
                flood <= 2 ? "met" : "NOT met"))

    }
    if options.sections.contains("accuracy") {
        print("\nRate accuracy: every CPU on one source's bucket at once (GCRA, compare-and-swap)")
        accuracy = try rateAccuracy(options)
        print(
            lpad("overload", 8) + lpad("CPUs", 6) + lpad("configured/s", 14) + lpad("offered/s", 14)
                + lpad("admitted/s", 14) + lpad("error", 9))
        for row in accuracy {
            print(
                lpad(String(format: "%.0f×", row.offeredRate / row.configuredRate), 8) + lpad("\(row.cpusThatRan)", 6)
                    + lpad(String(format: "%.0f", row.configuredRate), 14)
                    + lpad(String(format: "%.0f", row.offeredRate), 14)
                    + lpad(String(format: "%.0f", row.admittedRate), 14)
                    + lpad(String(format: "%+.2f%%", row.errorPercent), 9))
        }
        let worstError = accuracy.map { abs($0.errorPercent) }.max() ?? 0
        print(
            String(
                format: "target: admitted within ±5%% of configured at 100× overload — worst %.2f%% — %@", worstError,
                worstError <= 5 ? "met" : "NOT met"))

    }
    if options.sections.contains("random") {
        print(
            "\nRandom-source flood: \(options.floodSources) REGISTERs from random IPv6 sources, one packet each, while 1000"
                + " phones register 6 times and 100 new phones appear halfway (BPF_PROG_TEST_RUN, 1M-entry source map)")
        survival = try randomSourceFlood(options)
        print(
            pad("policy", 32) + lpad("flood admitted", 16) + lpad("map entries", 13) + lpad("phones passed", 15)
                + lpad("phones tracked", 16) + lpad("newcomers passed", 18) + lpad("map MiB", 9) + lpad("RSS MiB", 9))
        for row in survival {
            print(
                pad(row.policy, 32) + lpad("\(row.floodAdmitted)", 16) + lpad("\(row.trackedAfter)", 13)
                    + lpad("\(row.legitPassed)/\(row.legitSent)", 15)
                    + lpad("\(row.legitStillTracked)/\(row.legitSources)", 16)
                    + lpad("\(row.newcomersPassed)/\(row.newcomers)", 18)
                    + lpad(String(format: "%.0f", Double(row.mapBytes) / 1048576), 9)
                    + lpad(String(format: "%.0f", Double(row.rssBytes) / 1048576), 9))
        }
    }
    if options.sections.contains("floods") {
        print(
            "\nGenerated floods: live-frames XDP_TX out of a veth in a namespace into its peer, where the filter runs"
                + String(
                    format: " (%.0f s a run, median of %d, Mpps the receiving XDP program saw; legitimate calls in"
                        + " a second pass of %d run(s) beside the same floods)", options.floodSeconds,
                    options.floodRuns, options.legitimateRuns))
        floods = try generatedFloods(options)
        print(
            pad("scenario", 18) + benchedFilters.map { lpad($0, 12) }.joined() + lpad("vs trivial", 12)
                + lpad("vs xdp-filter", 15) + lpad("vs nftables", 13) + lpad("dropped", 9)
                + "  legitimate ok (retransmissions): oracle / floodgate / xdp-filter / nftables")
        for row in floods {
            let calls = legitimateFilters.map { f in
                row.legitimate[f]?.cell ?? "n/a"
            }.joined(separator: " / ")
            let cells = benchedFilters.map { f in lpad(row.mpps[f].map { String(format: "%.2f", $0) } ?? "n/a", 12) }
            let ratios = [("trivial", 12), ("xdp-filter", 15), ("nftables", 13)].map { f, w in
                lpad(row.ratio("floodgate", f).map { String(format: "%.2f×", $0) } ?? "n/a", w)
            }
            print(pad(row.scenario, 18) + cells.joined() + ratios.joined()
                + lpad(String(format: "%.1f%%", row.floodgateDroppedShare * 100), 9) + "  " + calls)
        }
        let main = floods.filter { ["single-source", "random-v4-/24", "random-v4-/16", "random-v6-/64"].contains($0.scenario) }
        let worstCeiling = main.compactMap { $0.ratio("floodgate", "trivial") }.min() ?? 0
        let worstXDPFilter = floods.compactMap { $0.ratio("floodgate", "xdp-filter") }.min() ?? 0
        let worstNFT = floods.compactMap { $0.ratio("floodgate", "nftables") }.min() ?? 0
        print(String(format: "targets: ≥ 0.90× trivial on single- and random-source floods — worst %.2f× — %@", worstCeiling,
                     worstCeiling >= 0.9 ? "met" : "NOT met"))
        print(String(format: "         ahead of xdp-filter — worst %.2f× — %@; ≥ 3× nftables — worst %.2f× — %@",
                     worstXDPFilter, worstXDPFilter > 1 ? "met" : "NOT met", worstNFT, worstNFT >= 3 ? "met" : "NOT met"))
        func total(_ filter: String) -> LegitimateTotals {
            floods.compactMap { $0.legitimate[filter] }.reduce(into: LegitimateTotals()) {
                $0.attempted += $1.attempted
                $0.succeeded += $1.succeeded
                $0.retransmissions += $1.retransmissions
            }
        }
        let fg = total("floodgate"), oracle = total("oracle")
        let share = Double(fg.succeeded) / Double(max(fg.attempted, 1)) * 100
        print(String(format: "         legitimate registrations and calls with Floodgate: %d of %d (%.3f%%) — zero failed: %@;"
                     + " retransmissions %d vs %d with the oracle — %@", fg.succeeded, fg.attempted, share,
                     fg.succeeded == fg.attempted ? "met" : "NOT met", fg.retransmissions, oracle.retransmissions,
                     fg.retransmissions <= oracle.retransmissions ? "met" : "NOT met"))
        if let dir = options.reportDirectory {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try floodChart(floods).write(toFile: "\(dir)/floods.svg", atomically: true, encoding: .utf8)
            try ("# Floodgate flood benchmark\n\n" + floodMarkdown(floods, options)
                + "\nMpps the receiving XDP program saw, median of \(options.floodRuns) runs of \(options.floodSeconds) s."
                + " Chart: floods.svg\n").write(toFile: "\(dir)/floods.md", atomically: true, encoding: .utf8)
            print("wrote \(dir)/floods.md and \(dir)/floods.svg")
        }
    }

    if options.sections.contains("reaction") {
        print("\nReaction: from the first flood packet the filter counted to its first drop and to the source's ban"
            + " (default policy; median of \(options.floodRuns); resolution: one read of the counters and the ban list)")
        reactions = try reaction(options)
        print(pad("scenario", 18) + lpad("dropped after", 15) + lpad("banned after", 15) + lpad("read every", 12)
            + lpad("passed", 8))
        for row in reactions {
            print(pad(row.scenario, 18) + lpad(String(format: "%.0f µs", row.dropMicros), 15)
                + lpad(row.banMicros.map { String(format: "%.0f µs", $0) } ?? "no ban", 15)
                + lpad(String(format: "%.1f µs", row.pollMicros), 12) + lpad(String(format: "%.0f", row.passed), 8))
        }
    }

    if options.sections.contains("agent") {
        print("\nThe agent (floodgate run) with a million tracked sources")
        let row = try agentMemory(options)
        agentRows = [row]
        print(String(format: "tracked sources %d; maps %.0f MiB of kernel memory; agent RSS %.1f MiB", row.trackedSources,
                     Double(row.mapBytes) / 1048576, Double(row.agentRSSBytes) / 1048576))
    }

    if let path = options.jsonPath {
        struct Report: Encodable {
            var perPacket: [CostRow]
            var rateAccuracy: [AccuracyRow]
            var randomSourceFlood: [SurvivalRow]
            var generatedFloods: [FloodRow]
            var reaction: [ReactionRow]
            var agent: [AgentMemoryRow]
            enum CodingKeys: String, CodingKey {
                case reaction, agent
                case perPacket = "per_packet"
                case rateAccuracy = "rate_accuracy"
                case randomSourceFlood = "random_source_flood"
                case generatedFloods = "generated_floods"
            }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(
            Report(perPacket: costs, rateAccuracy: accuracy, randomSourceFlood: survival, generatedFloods: floods,
                   reaction: reactions, agent: agentRows)
        )
        .write(to: URL(fileURLWithPath: path))
        print("\nwrote \(path)")
    }
} catch {
    fail("\(error)")
}
