// floodgate-bench: a random-source flood against the source map, beside phones that keep registering.
import CFloodgate
import CLabLayouts
import FloodgateCore
import FloodgateLab
import Foundation

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
    return try [("default policy", FilterPolicy()), ("no prefix or new-source limits", unlimitedAggregates)].map {
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

/// Runs the section and prints its table.
func runRandomSources(_ options: Options) throws -> [SurvivalRow] {
    print(
        "\nRandom-source flood: \(options.floodSources) REGISTERs from random IPv6 sources, one packet each, while 1000"
            + " phones register 6 times and 100 new phones appear halfway (BPF_PROG_TEST_RUN, 1M-entry source map)")
    let survival = try randomSourceFlood(options)
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
    return survival
}
