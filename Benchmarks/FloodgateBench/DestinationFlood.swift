import FloodgateCore
import FloodgateLab
import Foundation

/// Issue 12's speed target: the INVITE flood (random sources in one /24, each INVITE dialling a number) against
/// Floodgate with the default policy, and against Floodgate with a 10,000-prefix destination table as well;
/// interleaved, `floodRuns` rounds, one CPU. The table must cost at most 3% of the Mpps.
func runDestinationFlood(_ options: Options) throws {
    let scenario = try FloodScenario.named("invite")
    var table = FilterPolicy()
    table.destinations = Set(tenThousandDestinations)
    table.settings.numbers = NumberPlan(countryCode: "44", international: ["00"], national: "0", bare: .e164)
    var without: [Double] = [], with: [Double] = []
    print("INVITE flood with and without 10,000 destination rules (Mpps the filter saw; \(options.floodRuns) rounds, interleaved)")
    for round in 1...max(options.floodRuns, 1) {
        for (name, policy) in [("without", FilterPolicy()), ("with", table)] {
            let r = try FloodResult.run(scenario: scenario, filter: .floodgate, packets: 1_000_000_000,
                                        seconds: options.floodSeconds, progress: false, policy: policy)
            if name == "with" { with.append(r.mpps) } else { without.append(r.mpps) }
            print("  round \(round), \(name) the table: \(String(format: "%.3f", r.mpps)) Mpps"
                + (r.generator == .packetSocket ? " (through a packet socket: live frames refused)" : ""))
        }
    }
    let (a, b) = (median(without), median(with))
    let spread = { (v: [Double]) in String(format: "%.2f–%.2f", v.min() ?? 0, v.max() ?? 0) }
    print(String(format: "medians: without %.3f Mpps (%@), with %.3f (%@): %.3f×, %+.1f ns a packet", a, spread(without),
                 b, spread(with), b / a, (1 / b - 1 / a) * 1000))
    print(String(format: "target: with the table ≥ 0.97× without — measured %.3f× — %@", b / a, b / a >= 0.97 ? "met" : "NOT met"))
}
