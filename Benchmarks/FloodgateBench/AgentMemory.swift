// floodgate-bench: the agent's memory with a million tracked sources.
import CFloodgate
import CLabLayouts
import FloodgateCore
import FloodgateLab
import Foundation

// MARK: The agent's memory

struct AgentMemoryRow: Encodable {
    var trackedSources: Int
    var mapBytes: UInt64
    var agentRSSBytes: UInt64
    enum CodingKeys: String, CodingKey {
        case trackedSources = "tracked_sources", mapBytes = "map_bytes", agentRSSBytes = "agent_rss_bytes"
    }
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
    Thread.sleep(forTimeInterval: 6)  // the agent counts the source map every 5 s
    let status = (try? String(contentsOfFile: "/proc/\(agent.processIdentifier)/status", encoding: .utf8)) ?? ""
    let rssKB = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") }
        .flatMap { $0.split(separator: " ").dropFirst().first.flatMap { UInt64($0) } } ?? 0
    return AgentMemoryRow(
        trackedSources: try maps.trackedSourceCount(),
        mapBytes: FilterMaps.names.reduce(0) { $0 + memlock(fd: maps.fd($1)) }, agentRSSBytes: rssKB * 1024)
}

/// Runs the section and prints its figures.
func runAgentMemory(_ options: Options) throws -> [AgentMemoryRow] {
    print("\nThe agent (floodgate run) with a million tracked sources")
    let row = try agentMemory(options)
    print(String(format: "tracked sources %d; maps %.0f MiB of kernel memory; agent RSS %.1f MiB", row.trackedSources,
                 Double(row.mapBytes) / 1048576, Double(row.agentRSSBytes) / 1048576))
    return [row]
}
