import ArgumentParser
import FloodgateCore
import Foundation

extension Floodgate {
    struct Attach: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Load the filter, apply the limits and attach it to an interface.",
            discussion: """
                The program, its link and maps are pinned under the pin root, so the filter keeps running after \
                this command exits. Attaching an interface that already has the filter changes nothing.
                """)

        @Argument(help: "The interface to protect.") var interface: String
        @Option(help: "native, generic, or auto (native, falling back to generic with a warning).")
        var mode: AttachMode = .auto
        @Option(help: "SIP ports, comma-separated (at most \(FilterCapacity.sipPorts)).") var sipPorts = "5060,5061"
        @Option(help: "RTP UDP port range FIRST-LAST, or 'none'.") var rtpPorts = "10000-20000"
        @Option(help: "Verdict for truncated or invalid headers: drop or pass.") var onMalformed: MalformedAction = .drop
        @Option(help: "Capacity of the per-source bucket map (the least recently seen are evicted).")
        var maxSources: Int = FilterCapacity.defaultSources
        @Option(help: "Capacity of the filter's own ban map (scanners, auto-bans; the least recently used go first).")
        var maxBans: Int = FilterCapacity.defaultAutoBans
        @OptionGroup var common: CommonOptions

        func validate() throws {
            guard maxSources >= 1, maxSources <= 100_000_000 else {
                throw ValidationError("--max-sources must be between 1 and 100000000 (got \(maxSources)).")
            }
            guard maxBans >= 1, maxBans <= 10_000_000 else {
                throw ValidationError("--max-bans must be between 1 and 10000000 (got \(maxBans)).")
            }
            _ = try settings()
        }

        func settings() throws -> Settings {
            let ports = try sipPorts.split(separator: ",", omittingEmptySubsequences: false).map { part in
                guard let port = UInt16(part.trimmingCharacters(in: .whitespaces)), port != 0 else {
                    throw ValidationError("--sip-ports takes ports 1-65535 separated by commas (got '\(sipPorts)').")
                }
                return port
            }
            guard ports.count <= FilterCapacity.sipPorts else {
                throw ValidationError("--sip-ports takes at most \(FilterCapacity.sipPorts) ports (got \(ports.count)).")
            }
            var rtp: ClosedRange<UInt16>?
            if rtpPorts != "none" {
                let parts = rtpPorts.split(separator: "-", omittingEmptySubsequences: false)
                guard parts.count == 2, let low = UInt16(parts[0]), let high = UInt16(parts[1]), low >= 1,
                      low <= high
                else {
                    throw ValidationError("--rtp-ports takes FIRST-LAST with 1 <= FIRST <= LAST <= 65535, or none.")
                }
                rtp = low...high
            }
            return Settings(sipPorts: ports, rtpPorts: rtp, malformed: onMalformed)
        }

        func run() throws {
            let root = try common.root()
            let iface = try Interface(interface)
            switch try root.attach(iface, mode: mode, policy: FilterPolicy(settings: try settings()),
                                   maxSources: UInt32(maxSources), maxAutoBans: UInt32(maxBans)) {
            case .alreadyAttached(let filter):
                print("\(iface.name): Floodgate is already attached (program \(filter.programID), "
                    + "\(filter.mode ?? "unknown") mode); nothing changed.")
            case .attached(let filter):
                print("\(iface.name): attached Floodgate (program \(filter.programID), "
                    + "\(filter.mode ?? "unknown") mode), pinned at \(filter.directory).")
            }
        }
    }

    struct Detach: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Detach the filter and remove its pins.")
        @Argument(help: "The interface to stop protecting.") var interface: String
        @Flag(help: "Detach even though an agent runs the filter (it then fails at its next read of the maps).")
        var force = false
        @OptionGroup var common: CommonOptions

        func run() throws {
            let root = try common.root()
            if !force, let agent = try? root.maps(of: interface).runningAgent() {
                throw FloodgateError(
                    "the agent (pid \(agent.pid), \(agent.config)) runs the filter on \(interface)",
                    hint: "Stop it first (systemctl stop floodgate), or run it with --detach-on-exit; --force detaches anyway")
            }
            try root.detach(interfaceName: interface)
            print("\(interface): detached Floodgate and removed \(root.directory(for: interface)).")
        }
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List attached filters.")
        @Flag(help: "Print JSON.") var json = false
        @OptionGroup var common: CommonOptions

        struct Row: Codable {
            var interface: String
            var mode: String?
            var programID: UInt32
            var trackedBuckets: Int
            var maxSources: UInt32
            var pinDirectory: String
            enum CodingKeys: String, CodingKey {
                case interface, mode
                case programID = "program_id"
                case trackedBuckets = "tracked_buckets"
                case maxSources = "max_sources"
                case pinDirectory = "pin_directory"
            }
        }

        func run() throws {
            let root = try common.root()
            let rows = try root.attachedFilters().map { filter -> Row in
                let maps = try root.maps(of: filter.interfaceName)
                return Row(
                    interface: filter.interfaceName, mode: filter.mode, programID: filter.programID,
                    trackedBuckets: try maps.sources().count, maxSources: try maps.maxSources(),
                    pinDirectory: filter.directory)
            }
            if json { return try printJSON(rows) }
            if rows.isEmpty {
                print("No Floodgate filter is attached (nothing pinned under \(root.path)).")
                return
            }
            printTable(
                ["INTERFACE", "MODE", "PROGRAM", "BUCKETS", "CAPACITY", "PINNED AT"],
                rows.map {
                    [$0.interface, $0.mode ?? "(other netns)", "\($0.programID)", "\($0.trackedBuckets)",
                     "\($0.maxSources)", $0.pinDirectory]
                })
        }
    }

    struct Stats: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Packet counters per class and verdict, and packets/s over an interval.",
            discussion: """
                Reads the counters, waits --interval seconds and reads them again for the rates. It writes nothing, \
                so any number of readers (another stats, the agent, the API's stats) can read side by side.
                """)
        @Option(name: .shortAndLong, help: "Only this interface (repeatable); default: every attached one.")
        var interface: [String] = []
        @Flag(help: "Print JSON.") var json = false
        @OptionGroup var watch: WatchOptions
        @OptionGroup var common: CommonOptions

        func validate() throws { try watch.check() }

        func run() throws {
            let root = try common.root()
            let filters = try root.selectFilters(interface)
            let maps = try filters.map { try root.maps(of: $0.interfaceName) }
            // With an interval, each read is rated against the one before it (the first, against one taken an
            // interval earlier).
            var previous = watch.interval > 0 ? try maps.map(StatsReport.sample) : nil
            try watch.loop { _ in
                if previous != nil { watch.pause() }
                let now = try maps.map(StatsReport.sample)
                let reports = filters.indices.map { StatsReport.report(filters[$0], now: now[$0], previous: previous?[$0]) }
                if previous != nil { previous = now }
                if json { return try printJSON(reports) }
                for (n, report) in reports.enumerated() {
                    if n > 0 { print() }
                    printStats(report)
                }
            }
        }
    }

    struct Top: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The sources with the most drops or packets.")
        @Option(name: .customShort("n"), help: "How many sources.") var count = 20
        @Option(help: "Rank by drops or packets.") var by: TopTalker.Order = .drops
        @Option(name: .shortAndLong, help: "Only this interface (repeatable); default: every attached one.")
        var interface: [String] = []
        @Flag(help: "Print JSON.") var json = false
        @OptionGroup var watch: WatchOptions
        @OptionGroup var common: CommonOptions

        func validate() throws {
            guard count >= 1 else { throw ValidationError("-n must be at least 1 (got \(count)).") }
            try watch.check()
        }

        struct Entry: Codable {
            var interface: String
            var sources: [TopTalker]
        }

        func run() throws {
            let root = try common.root()
            let filters = try root.selectFilters(interface)
            try watch.loop { first in
                if !first { watch.pause() }
                let entries = try filters.map { filter in
                    Entry(interface: filter.interfaceName,
                          sources: TopTalker.rank(try root.maps(of: filter.interfaceName).sources(), order: by,
                                                  count: count))
                }
                if json { return try printJSON(entries) }
                for (n, entry) in entries.enumerated() {
                    if n > 0 { print() }
                    print("\(entry.interface): top \(entry.sources.count) sources by \(by.rawValue)")
                    printTop(entry.sources)
                }
            }
        }
    }
}

/// `--watch`, `--interval`, `--count`: refresh in place, like top(1).
struct WatchOptions: ParsableArguments {
    @Flag(help: "Refresh in place every --interval seconds until interrupted (or --count times).") var watch = false
    @Option(help: "Seconds between reads: the rates' interval, and the refresh of --watch (0: no rates).")
    var interval: Double = 1
    @Option(help: "With --watch: stop after this many refreshes.") var count: Int?

    func check() throws {
        guard interval.isFinite, interval >= 0, interval <= 3600 else {
            throw ValidationError("--interval takes seconds from 0 to 3600 (got \(interval)).")
        }
        if watch && interval < 0.1 { throw ValidationError("--watch needs an --interval of at least 0.1 s.") }
        if let count, count < 1 { throw ValidationError("--count must be at least 1 (got \(count)).") }
        if count != nil && !watch { throw ValidationError("--count goes with --watch.") }
    }

    func pause() { Thread.sleep(forTimeInterval: interval) }

    /// Runs `body` once, or with --watch again every interval, each time from the top of a cleared terminal
    /// (when standard output is one); `body` is told whether it is the first time.
    func loop(_ body: (Bool) throws -> Void) throws {
        let terminal = isatty(STDOUT_FILENO) != 0
        var n = 0
        repeat {
            if watch && terminal { print("\u{1B}[H\u{1B}[2J", terminator: "") }
            try body(n == 0)
            n += 1
            if watch { fflush(stdout) }
        } while watch && (count.map { n < $0 } ?? true)
    }
}

extension AttachMode: ExpressibleByArgument {}
extension MalformedAction: ExpressibleByArgument {}
extension TopTalker.Order: ExpressibleByArgument {}
extension Tier: ExpressibleByArgument {}

func printStats(_ report: StatsReport) {
    let over = report.intervalSeconds.map { String(format: "packets/s over %.1f s", $0) } ?? "no rates (--interval 0)"
    print("\(report.interface) (program \(report.programID), \(report.mode ?? "other netns")) — \(over)")
    // Every class is a row (operators read call volume from them); only reasons seen anywhere are columns.
    let reasons = Reason.all.map(\.name).filter { r in
        r == "passed" || r == "dropped-rate" || report.classes.contains { ($0.packets[r] ?? 0) > 0 }
    }
    printTable(
        ["CLASS"] + reasons.map { $0.uppercased() } + ["PASS/S", "DROP/S"],
        report.classes.map { c in
            let pass = c.packetsPerSecond.map { r in Reason.all.filter { !$0.isDrop }.reduce(0) { $0 + (r[$1.name] ?? 0) } }
            let drop = c.packetsPerSecond.map { r in Reason.all.filter(\.isDrop).reduce(0) { $0 + (r[$1.name] ?? 0) } }
            return [c.trafficClass] + reasons.map { "\(c.packets[$0] ?? 0)" }
                + [pass.map { String(format: "%.1f", $0) } ?? "-", drop.map { String(format: "%.1f", $0) } ?? "-"]
        })
}

func printTop(_ sources: [TopTalker]) {
    printTable(
        ["SOURCE", "PACKETS", "DROPS", "CLASSES"],
        sources.map { [$0.address, "\($0.packets)", "\($0.drops)", $0.classes.joined(separator: ",")] })
}
