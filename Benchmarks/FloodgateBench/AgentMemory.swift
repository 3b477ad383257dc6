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
    /// The agent's CPU time (user and system) over `idleSeconds` of polling with the maps full, as a share of one CPU:
    /// after its walk of the filled source map, so with no walk of it in the window (nothing added since).
    var idleCPUShare: Double
    var idleSeconds: Double
    /// One walk of the filled source map with the known-source filter's rebuild, as the agent makes it each minute in
    /// which a source was added: its CPU time (made by the benchmark, under the pin root's lock) and the entries read.
    var walkCPUSeconds: Double
    var walkedSources: Int
    enum CodingKeys: String, CodingKey {
        case trackedSources = "tracked_sources", bans, mapBytes = "map_bytes", agentRSSBytes = "agent_rss_bytes"
        case idleCPUShare = "idle_cpu_share", idleSeconds = "idle_seconds"
        case walkCPUSeconds = "walk_cpu_seconds", walkedSources = "walked_sources"
    }
}

/// The calling thread's CPU time (user and system), in seconds.
func threadCPUSeconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
}

/// Sets the low 32 bits of an IPv6 frame's source address (bytes 14 + 8 + 12 ..< +16) to `i`.
func setSourceLow32(_ frame: inout [UInt8], _ i: Int) {
    for k in 0..<4 { frame[34 + k] = UInt8(i >> (24 - 8 * k) & 0xFF) }
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
/// after the agent has polled and counted them, its resident set (VmRSS) and the maps' kernel memory, its CPU over
/// two minutes of polling with nothing added, and what one walk of the source map costs.
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
    for i in 0..<1_000_000 {
        setSourceLow32(&packet, i)
        _ = try FloodgateProgram.testRun(programFD: programFD, packet: packet)
    }
    // The filter's own ban map filled the way a scanner sweep fills it: a scanner's REGISTER from each of 262,144
    // sources (its capacity), each banned by XDP at its first packet.
    var scanner = Packet.ethernet(Packet.EtherType.ipv6, Packet.ipv6(
        src: "2001:db8:66::1", dst: "2001:db8::2", proto: Packet.Proto.udp,
        Packet.udp(sport: 5060, dport: 5060, Array("REGISTER sip:x SIP/2.0\r\nUser-Agent: friendly-scanner\r\n\r\n".utf8))))
    let banCapacity = FilterCapacity.defaultAutoBans
    for i in 0..<banCapacity {
        setSourceLow32(&scanner, i)
        _ = try FloodgateProgram.testRun(programFD: programFD, packet: scanner)
    }
    // The agent walks the source map (and rebuilds the known-source filter) each minute in which a source was added,
    // and the fill was such a minute: idle is after that walk, which makes the other half of the filter the one XDP
    // reads. Wait for it (its schedule is a minute from its start), then for the rest of that round.
    let known = try KnownSources(maps)
    let filledHalf = known.activeHalf
    // One source more, whose bit is clear: should the agent have walked just before the fill's last packets, the
    // mark its walk left has moved all the same, and the walk this waits for comes.
    guard let last = (1_000_000..<1_000_100).first(where: {
        !known.mayHave(SourceAddress("2001:db8:77::\(String($0 >> 16, radix: 16)):\(String($0 & 0xFFFF, radix: 16))")!)
    }) else { throw FloodgateError("no address of 100 has its known-source bit clear") }
    setSourceLow32(&packet, last)
    _ = try FloodgateProgram.testRun(programFD: programFD, packet: packet)
    let waitUntil = monotonicNanoseconds() + 90_000_000_000
    while known.activeHalf == filledHalf {
        guard monotonicNanoseconds() < waitUntil else {
            throw FloodgateError("the agent did not walk the filled source map within 90 s")
        }
        Thread.sleep(forTimeInterval: 0.2)
    }
    Thread.sleep(forTimeInterval: 2)
    // Its CPU with nothing to do but poll full maps (every 250 ms, the config above).
    // Two minutes of its housekeeping: the source map looked at (and its walk skipped) twice, the ban maps walked
    // two to twelve times (every 10 to 60 s, by what a walk costs).
    let idleSeconds = 120.0
    let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))
    guard let before = cpuTicks(agent.processIdentifier) else { throw FloodgateError("read the agent's CPU time") }
    let start = monotonicNanoseconds()
    Thread.sleep(forTimeInterval: idleSeconds)
    guard let after = cpuTicks(agent.processIdentifier) else { throw FloodgateError("read the agent's CPU time") }
    let elapsed = Double(monotonicNanoseconds() - start) / 1e9
    guard known.activeHalf != filledHalf else {
        throw FloodgateError("the agent walked the source map again while idle: nothing was added, so it should not")
    }
    // What the walk it skipped costs: the same rebuild, under the pin root's lock as the agent takes it (retried
    // while the agent holds it for a round of its own).
    var walk: (cpu: Double, sources: Int)?
    for _ in 0..<50 where walk == nil {
        walk = try root.lockedIfFree {
            let cpu = threadCPUSeconds()
            let sources = try known.rebuild()
            return (threadCPUSeconds() - cpu, sources)
        }
        if walk == nil { Thread.sleep(forTimeInterval: 0.1) }
    }
    guard let walk else { throw FloodgateError("the pin root's lock stayed taken for 5 s") }
    let status = (try? String(contentsOfFile: "/proc/\(agent.processIdentifier)/status", encoding: .utf8)) ?? ""
    let rssKB = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") }
        .flatMap { $0.split(separator: " ").dropFirst().first.flatMap { UInt64($0) } } ?? 0
    return AgentMemoryRow(
        trackedSources: try maps.trackedSourceCount(), bans: try maps.activeBanCounts().values.reduce(0, +),
        mapBytes: FilterMaps.names.reduce(0) { $0 + memlock(fd: maps.fd($1)) }, agentRSSBytes: rssKB * 1024,
        idleCPUShare: Double(after - before) / ticksPerSecond / elapsed, idleSeconds: elapsed,
        walkCPUSeconds: walk.cpu, walkedSources: walk.sources)
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
    print(String(format: "one walk of the %d sources with the known-source filter's rebuild, which the agent makes each"
                 + " minute in which a source was added (and skips otherwise): %.0f ms of CPU; idle plus one a minute:"
                 + " %.2f%% of one CPU", row.walkedSources, row.walkCPUSeconds * 1000,
                 (row.idleCPUShare + row.walkCPUSeconds / 60) * 100))
    return [row]
}
