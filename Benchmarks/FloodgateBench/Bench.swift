// floodgate-bench: what the XDP program costs per packet beside a trivial XDP_DROP program measured in the same
// run, how exactly its buckets hold their rate, how it survives random-source and generated floods beside calls,
// how soon it reacts, and what the agent costs; on request, how far where a load lands moves a cost row
// (placement) and what SIP messages cost against each other (messages). Needs root.
//
//   swift run -c release floodgate-bench [--only cost,accuracy,random,floods,destinations,reaction,agent] [--json FILE] …
//   swift run -c release floodgate-bench --only messages --messages Benchmarks/messages/register-lines
import ArgumentParser
import CFloodgate
import FloodgateCore
import FloodgateLab
import Foundation

/// What a run measures and how long; each section reads what concerns it.
struct Options {
    var repeatCount: UInt32
    var runs: Int
    /// Loads of the filter per cost scenario, each measured `runs` times.
    var loads: Int
    var seconds: Double
    var newSources: Int
    var jsonPath: String?
    var floodSources: Int
    var floodSeconds: Double
    var floodRuns: Int
    var floodCalls: Int
    var legitimateRuns: Int
    var dedicatedRuns: Int
    var dedicatedMpps: Double
    var sections: Set<String>
    var reportDirectory: String?
    var cpus: Int
    /// Burst of the measured buckets, in milliseconds of their rate.
    var burstMS: Int
    /// Another build's filter object (`--baseline-object`), measured beside this build's in the cost and messages
    /// sections.
    var baselineObject: [UInt8]?
}

@main
struct FloodgateBench: ParsableCommand {
    static let sections = ["cost", "accuracy", "random", "floods", "destinations", "reaction", "agent"]
    /// Sections run only when named.
    static let extraSections = ["placement", "messages"]
    static let configuration = CommandConfiguration(
        commandName: "floodgate-bench",
        abstract: "Floodgate's benchmarks, each against baselines measured in the same run (needs root).")

    @Option(name: .customLong("repeat"), help: "BPF_PROG_TEST_RUN repetitions per cost measurement.")
    var repeatCount: UInt32 = 2_000_000
    @Option(help: "Cost measurements per scenario and load (the median and the lower quartile are reported).")
    var runs = 9
    @Option(
        help: """
            Loads of the filter per cost scenario, each measured --runs times: the median of the loads' medians is \
            reported, with their range, and the median of their lower quartiles, by which builds are compared.
            """)
    var loads = 3
    @Option(help: "Seconds of each rate-accuracy run.") var seconds = 2.0
    @Option(help: "New sources in the new-source cost scenario (at most 131,072, the lab's /15).")
    var newSources = 131_072
    @Option(name: .customLong("json"), help: "Write every section's rows to this file as JSON.") var jsonPath: String?
    @Option(help: "Random sources in the random-source flood.") var floodSources = 10_000_000
    @Option(help: "Seconds of each generated flood.") var floodSeconds = 2.0
    @Option(help: "Runs of each generated flood per filter (the median is reported).") var floodRuns = 3
    @Option(help: "Registrations and calls per phone beside each generated flood.") var floodCalls = 10
    @Option(help: "Passes of the generated floods with legitimate calls beside them (the median is reported).")
    var legitimateRuns = 3
    @Option(
        help: "Passes of the generated floods with the receive on a CPU of its own, paced, the calls beside (the median is reported).")
    var dedicatedRuns = 3
    @Option(help: "The pace of those floods at most, in Mpps (lower for a scenario that some filter of the pass cannot take at 80% of its receiving CPU: a one-second probe of each finds it).")
    var dedicatedMpps = 3.0
    @Option(name: .customLong("report"), help: "Write the flood table (Markdown) and chart (SVG) into this directory.")
    var reportDirectory: String?
    @Option(
        help: """
            Sections to run, comma-separated: \(sections.joined(separator: ",")); and, run only when named, \
            placement (the same build loaded --loads times, measured in turn) and messages (--messages).
            """)
    var only = sections.joined(separator: ",")
    @Option(
        help: """
            A directory of SIP messages, one a file: the messages section measures what each costs against the \
            first (by name), every message in turn.
            """)
    var messages: String?
    @Option(help: "CPUs that hammer one bucket in the rate-accuracy section (default: all).") var cpus: Int?
    @Option(name: .customLong("burst-ms"), help: "Burst of the measured buckets, in milliseconds of their rate.")
    var burstMS = 10
    @Option(
        name: .customLong("baseline-object"),
        help: """
            Another build's compiled filter (floodgate.bpf.o, same map layouts): the cost and messages sections run \
            it beside this build's, interleaved, and print the difference.
            """)
    var baselineObject: String?

    var chosen: Set<String> { Set(only.split(separator: ",").map(String.init)) }

    func validate() throws {
        guard runs >= 1, loads >= 1, repeatCount >= 1, seconds > 0, newSources >= 1, floodSources >= 1, floodSeconds > 0,
              floodRuns >= 1, floodCalls >= 0, legitimateRuns >= 0, dedicatedRuns >= 0, dedicatedMpps > 0, dedicatedMpps <= 100, burstMS >= 1, (cpus ?? 1) >= 1
        else { throw ValidationError("numbers must be positive") }
        guard newSources <= spoofedSources else {
            throw ValidationError(
                "--new-sources is at most \(spoofedSources), the addresses of the lab's 198.18.0.0/15")
        }
        guard baselineObject == nil || chosen.contains("cost") || chosen.contains("messages") else {
            throw ValidationError("--baseline-object is measured in the cost and messages sections: add one to --only")
        }
        guard chosen.contains("messages") == (messages != nil) else {
            throw ValidationError("--messages DIR goes with --only messages, and the section needs it")
        }
        let unknown = chosen.subtracting(FloodgateBench.sections + FloodgateBench.extraSections)
        guard unknown.isEmpty else {
            throw ValidationError("unknown section(s) \(unknown.sorted().joined(separator: ", ")); "
                + "choose from \((FloodgateBench.sections + FloodgateBench.extraSections).joined(separator: ","))")
        }
    }

    func run() throws {
        guard geteuid() == 0 else { throw ValidationError("run as root: the benchmark loads BPF programs") }
        let options = Options(
            repeatCount: repeatCount, runs: runs, loads: loads, seconds: seconds, newSources: newSources, jsonPath: jsonPath,
            floodSources: floodSources, floodSeconds: floodSeconds, floodRuns: floodRuns, floodCalls: floodCalls,
            legitimateRuns: legitimateRuns, dedicatedRuns: dedicatedRuns, dedicatedMpps: dedicatedMpps, sections: chosen, reportDirectory: reportDirectory,
            cpus: cpus ?? max(1, Int(libbpf_num_possible_cpus())), burstMS: burstMS,
            baselineObject: try baselineObject.map { path in
                guard let data = FileManager.default.contents(atPath: path) else {
                    throw ValidationError("cannot read the baseline object \(path)")
                }
                return [UInt8](data)
            })
        let sections = options.sections
        let costs = sections.contains("cost") ? try runCost(options, trivial: try TrivialDropProgram()) : []
        let accuracy = sections.contains("accuracy") ? try runAccuracy(options) : []
        let survival = sections.contains("random") ? try runRandomSources(options) : []
        let floods = sections.contains("floods") ? try runFloods(options) : []
        if sections.contains("destinations") { try runDestinationFlood(options) }
        let reactions = sections.contains("reaction") ? try runReaction(options) : []
        let agentRows = sections.contains("agent") ? try runAgentMemory(options) : []
        let placement = sections.contains("placement") ? try runPlacement(options, trivial: try TrivialDropProgram()) : []
        let messageRows = try messages.map { try runMessages(options, directory: $0) } ?? []
        if let path = options.jsonPath {
            try writeJSONReport(to: path, costs: costs, accuracy: accuracy, survival: survival, floods: floods,
                                reactions: reactions, agentRows: agentRows, placement: placement, messages: messageRows)
        }
    }
}
