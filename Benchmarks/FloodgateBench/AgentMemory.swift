// floodgate-bench: the agent's memory with a million tracked sources.
import CFloodgate
import CLabLayouts
import FloodgateCore
import FloodgateLab
import Foundation

// MARK: The agent's memory

struct AgentMemoryRow: Encodable {
    var trackedSources: Int
    var bans: Int
    var mapBytes: UInt64
    var agentRSSBytes: UInt64
    /// The agent's CPU time (user and system) over `idleSeconds` of polling with the maps full, as a share of one CPU.
    var idleCPUShare: Double
    var idleSeconds: Double
    enum CodingKeys: String, CodingKey {
        case trackedSources = "tracked_sources", bans, mapBytes = "map_bytes", agentRSSBytes = "agent_rss_bytes"
        case idleCPUShare = "idle_cpu_share", idleSeconds = "idle_seconds"
    }
}

/// utime + stime of process `pid`, in clock ticks (`/proc/PID/stat`, fields 14 and 15).
func cpuTicks(_ pid: Int32) -> UInt64? {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return nil }
    // After the command's closing parenthesis: state is field 3, utime 14, stime 15.
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    guard fields.count > 12, let user = UInt64(fields[11]), let system = UInt64(fields[12]) else { return nil }
    return user + system
}

/// `floodgate run` on a lab interface with a 1M-entry source map, filled with a million distinct sources through
/// test runs of the attached program (prefix and new-source limits off, so every source gets an entry); then,
/// after the agent has polled and counted them, its resident set (VmRSS) and the maps' kernel memory.
func agentMemory(_ options: Options) throws -> AgentMemoryRow {
    let binary = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        .deletingLastPathComponent().appendingPathComponent("floodgate").path
    guard FileManager.default.isExecutableFile(atPath: binary) else {
        throw FloodgateError("no floodgate binary beside the benchmark at \(binary)",
                             hint: "build it too: swift build -c release --product floodgate")
    }
    let lab = try NetworkLab(prefix: "fgm")
    defer { lab.tearDown() }
    let config = FileManager.default.temporaryDirectory.appendingPathComponent("fgm-\(lab.id).yaml")
    try """
        interfaces: {external: \(lab.routerInterface), mode: native}
        pin_root: \(lab.pinRoot)
        max_sources: 1000000
        prefix: {limit: unlimited, wide_limit: unlimited}
        budget: {new_sources: unlimited}
        metrics: {listen: "127.0.0.1:19499"}
        api: {socket: off}
        poll: 250ms
        """.write(to: config, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(at: config) }
    let agent = Process()
    agent.executableURL = URL(fileURLWithPath: "/usr/bin/nsenter")
    agent.arguments = ["--net=/run/netns/\(lab.routerNS)", binary, "run", "--config", config.path]
    agent.standardOutput = FileHandle.nullDevice
    agent.standardError = FileHandle.nullDevice
    try agent.run()
    defer {
        kill(agent.processIdentifier, SIGKILL)
        agent.waitUntilExit()
    }
    let root = PinRoot(lab.pinRoot)
    var maps: FilterMaps?
    for _ in 0..<100 where maps == nil {
        Thread.sleep(forTimeInterval: 0.1)
        maps = try? root.maps(of: lab.routerInterface)
    }
    guard let maps, let filter = try? root.inspect(interfaceName: lab.routerInterface) else {
        throw FloodgateError("the agent did not attach within 10 s")
    }
    let programFD = bpf_prog_get_fd_by_id(filter.programID)
    guard programFD >= 0 else { throw FloodgateError("open the attached program", libbpfResult: programFD) }
    defer { close(programFD) }
    var packet = Packet.ethernet(Packet.EtherType.ipv6, Packet.ipv6(
        src: "2001:db8:77::1", dst: "2001:db8::2", proto: Packet.Proto.udp,
        Packet.udp(sport: 5060, dport: 5060, Array("REGISTER sip:x SIP/2.0\r\n\r\n".utf8))))
    for i in 0..<1_000_000 {  // the low 32 bits of the source address (bytes 14 + 8 + 12 ..< +16)
        packet[34] = UInt8(i >> 24 & 0xFF)
        packet[35] = UInt8(i >> 16 & 0xFF)
        packet[36] = UInt8(i >> 8 & 0xFF)
        packet[37] = UInt8(i & 0xFF)
        _ = try FloodgateProgram.testRun(programFD: programFD, packet: packet)
    }
    // The filter's own ban map filled the way a scanner sweep fills it: a scanner's REGISTER from each of 262,144
    // sources (its capacity), each banned by XDP at its first packet.
    var scanner = Packet.ethernet(Packet.EtherType.ipv6, Packet.ipv6(
        src: "2001:db8:66::1", dst: "2001:db8::2", proto: Packet.Proto.udp,
        Packet.udp(sport: 5060, dport: 5060, Array("REGISTER sip:x SIP/2.0\r\nUser-Agent: friendly-scanner\r\n\r\n".utf8))))
    let banCapacity = FilterCapacity.defaultAutoBans
    for i in 0..<banCapacity {
        scanner[34] = UInt8(i >> 24 & 0xFF)
        scanner[35] = UInt8(i >> 16 & 0xFF)
        scanner[36] = UInt8(i >> 8 & 0xFF)
        scanner[37] = UInt8(i & 0xFF)
        _ = try FloodgateProgram.testRun(programFD: programFD, packet: scanner)
    }
    Thread.sleep(forTimeInterval: 6)  // the agent counts the source map every 5 s
    // Its CPU with nothing to do but poll full maps (every 250 ms, the config above).
    let idleSeconds = 60.0  // one whole cycle of its housekeeping (sources every 60 s, bans every 10 s)
    let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))
    guard let before = cpuTicks(agent.processIdentifier) else { throw FloodgateError("read the agent's CPU time") }
    let start = monotonicNanoseconds()
    Thread.sleep(forTimeInterval: idleSeconds)
    guard let after = cpuTicks(agent.processIdentifier) else { throw FloodgateError("read the agent's CPU time") }
    let elapsed = Double(monotonicNanoseconds() - start) / 1e9
    let status = (try? String(contentsOfFile: "/proc/\(agent.processIdentifier)/status", encoding: .utf8)) ?? ""
    let rssKB = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") }
        .flatMap { $0.split(separator: " ").dropFirst().first.flatMap { UInt64($0) } } ?? 0
    return AgentMemoryRow(
        trackedSources: try maps.trackedSourceCount(), bans: try maps.activeBanCounts().values.reduce(0, +),
        mapBytes: FilterMaps.names.reduce(0) { $0 + memlock(fd: maps.fd($1)) }, agentRSSBytes: rssKB * 1024,
        idleCPUShare: Double(after - before) / ticksPerSecond / elapsed, idleSeconds: elapsed)
}

/// Runs the section and prints its figures.
func runAgentMemory(_ options: Options) throws -> [AgentMemoryRow] {
    print("\nThe agent (floodgate run) with a million tracked sources and a full ban map")
    let row = try agentMemory(options)
    print(String(format: "tracked sources %d; active bans %d; maps %.0f MiB of kernel memory; agent RSS %.1f MiB",
                 row.trackedSources, row.bans, Double(row.mapBytes) / 1048576, Double(row.agentRSSBytes) / 1048576))
    print(String(format: "agent CPU polling every 250 ms with nothing else to do: %.2f%% of one CPU over %.0f s"
                 + " (utime + stime) — target ≤ 2%% — %@", row.idleCPUShare * 100, row.idleSeconds,
                 row.idleCPUShare <= 0.02 ? "met" : "NOT met"))
    return [row]
}
