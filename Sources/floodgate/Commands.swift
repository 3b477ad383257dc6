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
        @OptionGroup var common: CommonOptions

        func run() throws {
            let root = try common.root()
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
            abstract: "Packet counters per class and verdict, and packets/s since the last read.")
        @Option(name: .shortAndLong, help: "Only this interface (repeatable); default: every attached one.")
        var interface: [String] = []
        @Flag(help: "Print JSON.") var json = false
        @OptionGroup var common: CommonOptions

        func run() throws {
            let root = try common.root()
            let reports = try root.selectFilters(interface).map { filter in
                try StatsReport.read(filter, maps: try root.maps(of: filter.interfaceName))
            }
            if json { return try printJSON(reports) }
            for (n, report) in reports.enumerated() {
                if n > 0 { print() }
                printStats(report)
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
        @OptionGroup var common: CommonOptions

        func validate() throws {
            guard count >= 1 else { throw ValidationError("-n must be at least 1 (got \(count)).") }
        }

        struct Entry: Codable {
            var interface: String
            var sources: [TopTalker]
        }

        func run() throws {
            let root = try common.root()
            let entries = try root.selectFilters(interface).map { filter in
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

extension AttachMode: ExpressibleByArgument {}
extension MalformedAction: ExpressibleByArgument {}
extension TopTalker.Order: ExpressibleByArgument {}
extension Tier: ExpressibleByArgument {}

func printStats(_ report: StatsReport) {
    let since = report.intervalSeconds.map { String(format: "%.1f s", $0) } ?? "first read"
    print("\(report.interface) (program \(report.programID), \(report.mode ?? "other netns"))"
        + " — rates since last read: \(since)")
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
