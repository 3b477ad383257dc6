import Foundation

/// Counters of one filter per class and reason, with rates since the previous read.
public struct StatsReport: Codable, Sendable {
    public struct ClassStats: Codable, Sendable {
        public var trafficClass: String
        public var packets: [String: UInt64]
        public var bytes: [String: UInt64]
        /// Packets/s by reason since the previous `stats` read; nil on the first read.
        public var packetsPerSecond: [String: Double]?

        enum CodingKeys: String, CodingKey {
            case trafficClass = "class", packets, bytes
            case packetsPerSecond = "packets_per_second"
        }
    }

    public var interface: String
    public var programID: UInt32
    public var mode: String?
    /// Seconds since the previous read, nil on the first.
    public var intervalSeconds: Double?
    public var classes: [ClassStats]

    enum CodingKeys: String, CodingKey {
        case interface, mode, classes
        case programID = "program_id"
        case intervalSeconds = "interval_seconds"
    }

    /// Reads the counters of `filter`, with packets/s since `previous` (an earlier ``sample(_:)`` of the same
    /// filter) when given. Writes nothing: any number of readers can read side by side.
    public static func read(_ filter: AttachedFilter, maps: FilterMaps, previous: Sample? = nil) throws -> StatsReport {
        report(filter, now: try sample(maps), previous: previous)
    }

    /// A read of the counters, for rates between two.
    public struct Sample: Sendable {
        public var counters: Counters
        public var ns: UInt64
    }

    /// A sample of `maps`' counters now.
    public static func sample(_ maps: FilterMaps) throws -> Sample {
        Sample(counters: try maps.counters(), ns: monotonicNanoseconds())
    }

    /// The report of `now`, with packets/s since `previous`.
    public static func report(_ filter: AttachedFilter, now: Sample, previous: Sample?) -> StatsReport {
        let interval = previous.map { Double(now.ns &- $0.ns) / 1e9 }
        var classes: [ClassStats] = []
        for c in TrafficClass.counted {
            var stats = ClassStats(trafficClass: c.name, packets: [:], bytes: [:], packetsPerSecond: nil)
            for r in Reason.all {
                stats.packets[r.name] = now.counters.packets[c, r]
                stats.bytes[r.name] = now.counters.bytes[c, r]
            }
            if let previous, let interval, interval > 0 {
                var rates: [String: Double] = [:]
                for r in Reason.all {
                    let (a, b) = (now.counters.packets[c, r], previous.counters.packets[c, r])
                    rates[r.name] = a >= b ? Double(a - b) / interval : 0
                }
                stats.packetsPerSecond = rates
            }
            classes.append(stats)
        }
        return StatsReport(
            interface: filter.interfaceName, programID: filter.programID, mode: filter.mode,
            intervalSeconds: interval, classes: classes)
    }
}

/// One source with its totals over every class it sent, for `floodgate top`.
public struct TopTalker: Codable, Sendable {
    public var address: String
    public var packets: UInt64
    public var drops: UInt64
    public var classes: [String]

    public enum Order: String, Sendable, CaseIterable { case drops, packets }

    /// The `count` sources with most drops (then packets), or most packets (then drops).
    public static func rank(_ entries: [SourceEntry], order: Order = .drops, count: Int) -> [TopTalker] {
        var bySource: [SourceAddress: TopTalker] = [:]
        for entry in entries {
            var talker = bySource[entry.address]
                ?? TopTalker(address: entry.address.description, packets: 0, drops: 0, classes: [])
            talker.packets += entry.packets
            talker.drops += entry.drops
            talker.classes.append(entry.trafficClass.name)
            bySource[entry.address] = talker
        }
        let sorted = bySource.values.map { talker -> TopTalker in
            var t = talker
            t.classes.sort()
            return t
        }.sorted { a, b in
            let ka = order == .drops ? (a.drops, a.packets) : (a.packets, a.drops)
            let kb = order == .drops ? (b.drops, b.packets) : (b.packets, b.drops)
            return ka != kb ? ka > kb : a.address < b.address
        }
        return Array(sorted.prefix(max(count, 0)))
    }
}
