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
