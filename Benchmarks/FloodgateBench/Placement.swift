// floodgate-bench: how far where a load of the filter lands moves a cost row.
import CFloodgate
import FloodgateCore
import FloodgateLab
import Foundation

struct PlacementRow: Encodable {
    var scenario: String
    var trivialNS: Double
    /// Each load's median and lower quartile over the rounds.
    var loadsNS: [Double]
    var loadsLowQuartileNS: [Double]
    enum CodingKeys: String, CodingKey {
        case scenario
        case trivialNS = "trivial_ns"
        case loadsNS = "loads_ns"
        case loadsLowQuartileNS = "loads_low_quartile_ns"
    }
}

/// The same build loaded `--loads` times, every load measured in turn in each of `--runs` rounds (the trivial
/// program first), so that what slows the VM for a while falls on all loads alike: what is left between the
/// loads is where each landed. The cost section measures its loads one after another instead.
func runPlacement(_ options: Options, trivial: TrivialDropProgram) throws -> [PlacementRow] {
    print("Where a load lands: the same build loaded \(options.loads) times, the loads measured in turn"
        + " (BPF_PROG_TEST_RUN, repeat \(options.repeatCount), \(options.runs) rounds)")
    print(pad("scenario", 40) + lpad("trivial ns", 11) + "  loads' medians (range)      loads' lower quartiles (range)")
    let scenarios: [(String, [UInt8], TrafficClass)] = [
        ("a passed OPTIONS", frame(src: "198.18.1.1", dport: 5060), .options),
        ("the \(register.count)-byte REGISTER", frame(src: "198.18.1.1", dport: 5060, payload: register), .register),
        ("an INVITE, no destination rules", frame(src: "198.18.1.1", dport: 5060, payload: inviteToNumber), .invite),
    ]
    var rows: [PlacementRow] = []
    for (scenario, packet, trafficClass) in scenarios {
        let limits = policy(unlimitedAggregates, limits: [trafficClass: .rate(FG_MAX_RATE, burst: FG_MAX_BURST)])
        let programs = try (0..<options.loads).map { _ in try FloodgateProgram(policy: limits) }
        for program in programs {
            guard try program.testRun(packet).action == UInt32(XDP_PASS.rawValue) else {
                throw FloodgateError("\(scenario): the filter did not pass it")
            }
        }
        var trivialRuns: [Double] = []
        var runs = programs.map { _ in [Double]() }
        for _ in 0..<options.runs {
            trivialRuns.append(
                Double(try FloodgateProgram.testRun(programFD: trivial.programFD, packet: packet, repeat: options.repeatCount).durationNS))
            for (i, program) in programs.enumerated() {
                let run = try program.testRun(packet, repeat: options.repeatCount)
                guard run.action == UInt32(XDP_PASS.rawValue) else { throw FloodgateError("unexpected XDP action \(run.action)") }
                runs[i].append(Double(run.durationNS))
            }
        }
        let row = PlacementRow(
            scenario: scenario, trivialNS: median(trivialRuns), loadsNS: runs.map(median),
            loadsLowQuartileNS: runs.map(lowerQuartile))
        func spread(_ v: [Double]) -> String {
            pad(String(format: "%.0f (%.0f–%.0f)", median(v), v.min()!, v.max()!), 29)
        }
        print(pad(scenario, 40) + lpad(String(format: "%.1f", row.trivialNS), 11) + "  " + spread(row.loadsNS)
            + spread(row.loadsLowQuartileNS))
        rows.append(row)
    }
    return rows
}

struct MessageRow: Encodable {
    var file: String
    var bytes: Int
    /// The median of the loads' lower quartiles, and each load's difference from the first message's.
    var lowQuartileNS: Double
    var vsFirstLoadsNS: [Double]
    /// With `--baseline-object`: that build's median of its loads' lower quartiles, and load by load this build's
    /// lower quartile less the baseline's (load i of each measured side by side).
    var baselineLowQuartileNS: Double? = nil
    var vsBaselineLoadsNS: [Double]? = nil
    enum CodingKeys: String, CodingKey {
        case file, bytes
        case lowQuartileNS = "low_quartile_ns"
        case vsFirstLoadsNS = "vs_first_loads_ns"
        case baselineLowQuartileNS = "baseline_low_quartile_ns"
        case vsBaselineLoadsNS = "vs_baseline_loads_ns"
    }
}

/// What each SIP message in `directory` (one a file, sent over UDP to port 5060 from one source, every SIP
/// class's per-source limit at its most, brute-force detection and learned trust on) costs the filter, against
/// the first file's (by name): `--loads` loads, each running every message in turn in each of `--runs` rounds, so
/// that noise falls on all alike. A message the filter does not pass is refused. What a change of one header costs, line by line. With
/// `--baseline-object`, as many loads of that build, each beside this build's load of the same index (the two
/// taking turns at going first), and each message's difference between the builds.
func runMessages(_ options: Options, directory: String) throws -> [MessageRow] {
    let names = try FileManager.default.contentsOfDirectory(atPath: directory).sorted().filter { !$0.hasPrefix(".") }
    guard !names.isEmpty else { throw FloodgateError("no messages in \(directory)") }
    let packets = try names.map { name -> [UInt8] in
        guard let bytes = FileManager.default.contents(atPath: directory + "/" + name), !bytes.isEmpty,
            bytes.count <= 1400
        else { throw FloodgateError("\(name): a message of 1 to 1,400 bytes, please") }
        return frame(src: "198.18.1.1", dport: 5060, payload: [UInt8](bytes))
    }
    let sip = TrafficClass.all.filter(\.isSIP)
    // Brute-force detection and learned trust on, as the agent has them with an inside interface: a message with
    // credentials is noted for the inside program (BPF/lib/trust.h), and repeated, merged under its key.
    var settings = Settings.defaults
    settings.bruteForce = BruteForce(failures: 10, windowSeconds: 600, banSeconds: 600)
    settings.trustSeconds = 86_400
    let limits = policy(
        unlimitedAggregates, settings: settings,
        limits: Dictionary(uniqueKeysWithValues: sip.map { ($0, Limit.rate(FG_MAX_RATE, burst: FG_MAX_BURST)) }))
    let programs = try (0..<options.loads).map { _ in try FloodgateProgram(policy: limits) }
    let baselines = try options.baselineObject.map { object in
        try (0..<options.loads).map { _ in try FloodgateProgram(policy: limits, objectBytes: object) }
    }
    var runs = programs.map { _ in packets.map { _ in [Double]() } }
    var baselineRuns = runs
    func measure(_ program: FloodgateProgram, _ i: Int, _ what: String) throws -> Double {
        let run = try program.testRun(packets[i], repeat: options.repeatCount)
        guard run.action == UInt32(XDP_PASS.rawValue) else {
            throw FloodgateError("\(names[i]): \(what) did not pass it (XDP action \(run.action))")
        }
        return Double(run.durationNS)
    }
    for round in 0..<options.runs {
        for (l, program) in programs.enumerated() {
            for i in packets.indices {
                guard let baseline = baselines?[l] else {
                    runs[l][i].append(try measure(program, i, "the filter"))
                    continue
                }
                if (round + i) % 2 == 0 {
                    runs[l][i].append(try measure(program, i, "the filter"))
                    baselineRuns[l][i].append(try measure(baseline, i, "the baseline"))
                } else {
                    baselineRuns[l][i].append(try measure(baseline, i, "the baseline"))
                    runs[l][i].append(try measure(program, i, "the filter"))
                }
            }
        }
    }
    print("What each message costs (\(directory); BPF_PROG_TEST_RUN, repeat \(options.repeatCount), \(options.loads)"
        + " loads × \(options.runs) rounds, every message in turn; the median of the loads' lower quartiles, and"
        + " each load's difference from the first message's"
        + (baselines == nil ? "" : "; then the baseline's lower quartile, and this build's less the baseline's, load by load")
        + ")")
    var rows: [MessageRow] = []
    func loadByLoad(_ differences: [Double]) -> String {
        String(format: "  %+.0f ns", median(differences)) + " ("
            + differences.map { String(format: "%+.0f", $0) }.joined(separator: " ") + ")"
    }
    for (i, name) in names.enumerated() {
        let lows = runs.map { lowerQuartile($0[i]) }
        let differences = zip(lows, runs.map { lowerQuartile($0[0]) }).map { $0 - $1 }
        var row = MessageRow(file: name, bytes: packets[i].count - 42, lowQuartileNS: median(lows), vsFirstLoadsNS: differences)
        var line = pad(name, 32) + lpad("\(row.bytes) B", 8) + lpad(String(format: "%.0f ns", row.lowQuartileNS), 10)
            + loadByLoad(differences)
        if baselines != nil {
            let baselineLows = baselineRuns.map { lowerQuartile($0[i]) }
            let vsBaseline = zip(lows, baselineLows).map { $0 - $1 }
            row.baselineLowQuartileNS = median(baselineLows)
            row.vsBaselineLoadsNS = vsBaseline
            line += "  baseline" + lpad(String(format: "%.0f ns", median(baselineLows)), 9) + loadByLoad(vsBaseline)
        }
        print(line)
        rows.append(row)
    }
    return rows
}
