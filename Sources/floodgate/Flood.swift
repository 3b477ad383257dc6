import ArgumentParser
import FloodgateCore
import FloodgateLab
import Foundation

extension Floodgate {
    struct Flood: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Flood a filter in a namespace lab with generated traffic and report what it processed.",
            discussion: """
                Builds a lab (two namespaces joined by a veth pair, and a third behind the router, where the \
                subscriber's registrar runs with --calls; no default route), attaches the filter to the router \
                end (Floodgate with its inside program on the router's side facing the third), and runs the \
                flood generator (an XDP program in live-frames test runs, or a packet socket where the kernel \
                refuses those) on the other end. Bounded by --packets and --seconds; everything is removed at the \
                end. Scenarios: \
                \(FloodScenario.names.joined(separator: ", ")), random-v4-/N (16-31), random-v6-/N (64-127).
                """)

        @Option(help: "The flood.") var scenario = "single-source"
        @Option(help: "The filter on the router end: floodgate, trivial (XDP_DROP), touch (reads two bytes of the frame, then XDP_DROP), oracle (drops exactly the attack), floor (the oracle with the least a filter keeping state adds: lookups, clock, checks, a count; SIP over UDP only), xdp-filter, nftables or none.")
        var filter: FilterUnderTest = .floodgate
        @Option(help: "Frames to send at most.") var packets: UInt64 = 20_000_000
        @Option(help: "Seconds to send at most.") var seconds: Double = 5
        @Option(help: """
            Legitimate SIP beside the flood (sipp): an ordinary phone (198.18.0.1, no credentials, first seen with \
            the flood) places this many calls and as many registrations, and so does a subscriber (198.18.0.20), which \
            registers with credentials at a registrar behind the router once before the flood (Floodgate verifies \
            it from the answer); an allow-listed trunk peer (198.18.0.10) twenty times as many. Reports how many \
            completed by 8 s after the flood, the retransmissions they took, and what Floodgate verified. 0: none.
            """)
        var calls = 0
        @Flag(help: """
            Give the router end's receive a CPU of its own (threaded NAPI pinned to the last CPU, the generator on \
            CPU 0) instead of leaving it to the kernel (softirq, mostly on the generator's CPU).
            """)
        var dedicatedCPU = false
        @Option(help: """
            Pace the flood to at most this many million frames a second (live frames not yet due are dropped where \
            they are made; a packet socket waits for their time), to measure a receiver below the rate at which its \
            ring overflows. Default: as fast as it goes.
            """)
        var mpps: Double?
        @Option(help: """
            How the frames are sent: live-frames (XDP_TX from BPF_PROG_TEST_RUN: several Mpps from one CPU), \
            packet-socket (sendmmsg on an AF_PACKET socket: under 1 Mpps) or auto (live frames, or a packet socket \
            if the kernel refuses them; the report says which ran).
            """)
        var generator: GeneratorChoice = .auto
        @Flag(help: "Print JSON.") var json = false
        @Flag(name: .shortAndLong, help: "Log libbpf's and Floodgate's debug messages.") var verbose = false

        func validate() throws {
            guard packets >= 1, packets <= 1_000_000_000 else { throw ValidationError("--packets must be 1 to 1000000000.") }
            guard seconds > 0, seconds <= 600 else { throw ValidationError("--seconds must be above 0 and at most 600.") }
            guard (0...10_000).contains(calls) else { throw ValidationError("--calls must be 0 to 10000.") }
            if dedicatedCPU && filter == .none {
                throw ValidationError("--dedicated-cpu needs an XDP program on the router end: not with --filter none.")
            }
            if let mpps, !(mpps >= 0.001 && mpps <= 100) { throw ValidationError("--mpps must be 0.001 to 100.") }
            do { _ = try FloodScenario.named(scenario) } catch { throw ValidationError("\(error).") }
        }

        func run() throws {
            LogSetup.bootstrapOnce(verbose: verbose)
            guard geteuid() == 0 else { throw FloodgateError("floods need root: they build namespaces and load BPF") }
            var flood = try FloodScenario.named(scenario)
            flood.offeredPPS = mpps.map { $0 * 1e6 }
            let result = try FloodResult.run(scenario: flood, filter: filter, packets: packets, seconds: seconds,
                                             progress: !json, legitimate: .standard(calls: calls),
                                             dedicatedReceiver: dedicatedCPU, generator: generator.kind)
            if let refused = result.liveFramesRefused {
                FileHandle.standardError.write(Data(
                    "floodgate: live frames refused (\(refused)); the flood went through a packet socket\n".utf8))
            }
            if json { return try printJSON(result) }
            print(String(format: "%@ against %@: sent %llu frames (%@) in %.2f s; the filter saw %llu (%.2f Mpps, %.2f%%"
                         + " lost), dropped %llu", result.scenario, result.filter.rawValue, result.sent,
                         result.generator.rawValue, result.seconds, result.processed, result.mpps, result.lost * 100,
                         result.dropped))
            if let ns = result.receiveNSPerPacket {
                print(String(format: "the receiving CPU spent %.1f ns per packet (%.2f Mpps per core at that cost)", ns,
                             1000 / ns))
            }
            for r in result.legitimate ?? [] {
                print("sipp \(r.kind) from the \(r.source): \(r.succeeded) of \(r.attempted) completed, "
                    + "\(r.retransmissions) retransmissions")
            }
            func list(_ addresses: [String]) -> String { addresses.isEmpty ? "none" : addresses.joined(separator: ", ") }
            if let before = result.verifiedBeforeFlood, let after = result.verified {
                print("verified by Floodgate before the flood: \(list(before)); by its end: \(list(after))")
            }
        }
    }
}

extension FilterUnderTest: ExpressibleByArgument {}

/// `--generator`: a ``GeneratorKind``, or auto (nil: live frames where the kernel allows them).
enum GeneratorChoice: String, CaseIterable, ExpressibleByArgument {
    case auto
    case liveFrames = "live-frames"
    case packetSocket = "packet-socket"

    var kind: GeneratorKind? { GeneratorKind(rawValue: rawValue) }
}
