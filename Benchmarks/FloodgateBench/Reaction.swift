// floodgate-bench: how soon a flood is dropped and its source banned.
import CFloodgate
import CLabLayouts
import FloodgateCore
import FloodgateLab
import Foundation

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
            let scenario = try FloodScenario.named(name)
            let attacker = SourceAddress(scenario.frame[26..<30].map(String.init).joined(separator: "."))!
            // The generator (and with it the receive, in softirq after each batch) on CPU 0, the reader on the
            // last CPU: sharing a CPU, the reader would see the flood only when the scheduler let it, and time
            // from there.
            let cpus = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
            let flood = try lab.startFlood(scenario, count: 2_000_000, seconds: 1, cpu: 0)
            let reading = ReactionReads()
            let readerDone = DispatchSemaphore(value: 0)
            Thread {
                defer { readerDone.signal() }
                if cpus > 1 { _ = cfloodgate_pin_to_cpu(Int32(cpus - 1)) }
                do { try reading.watch(maps, attacker: attacker, trafficClass: trafficClass) } catch { reading.error = error }
            }.start()
            readerDone.wait()
            // A generator that failed says why; a packet socket's flood (live frames refused) is ten times slower.
            if let refused = try flood.wait().liveFramesRefused {
                print("  \(name): live frames refused (\(refused)); the flood went through a packet socket")
            }
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

/// Runs the section and prints its table.
func runReaction(_ options: Options) throws -> [ReactionRow] {
    print("\nReaction: from the first flood packet the filter counted to its first drop and to the source's ban"
        + " (default policy; median of \(options.floodRuns); resolution: one read of the counters and the ban list)")
    let reactions = try reaction(options)
    print(pad("scenario", 18) + lpad("dropped after", 15) + lpad("banned after", 15) + lpad("read every", 12)
        + lpad("passed", 8))
    for row in reactions {
        print(pad(row.scenario, 18) + lpad(String(format: "%.0f µs", row.dropMicros), 15)
            + lpad(row.banMicros.map { String(format: "%.0f µs", $0) } ?? "no ban", 15)
            + lpad(String(format: "%.1f µs", row.pollMicros), 12) + lpad(String(format: "%.0f", row.passed), 8))
    }
    return reactions
}
