import CFloodgate
import FloodgateCore
import FloodgateLab
import Foundation
import Testing

/// These tests load real BPF programs: without root they must fail, loudly, not pass.
func requireRoot() throws {
    try #require(geteuid() == 0, "Floodgate's tests load BPF programs and build network namespaces: run them as root")
}

/// A tool from a Debian package the tests need; missing, the test fails and says what to install.
func requireTool(_ path: String, package: String) throws {
    try #require(FileManager.default.isExecutableFile(atPath: path),
                 "\(path) is missing: install the Debian package \(package) (.ci/run does)")
}

/// A freshly loaded (never attached) filter with the given limits, for BPF_PROG_TEST_RUN.
/// Loads the filter for a test. With `testClock`, its clock stands still (at an arbitrary time) until the test
/// moves it: no bucket refills behind the test's back, however loaded the machine.
/// `settings` and `limits` replace the policy's.
func loadProgram(
    limits: [TrafficClass: Limit] = Limit.defaults, settings: Settings = .defaults, policy: FilterPolicy = FilterPolicy(),
    maxSources: UInt32 = 4096, testClock: Bool = false
) throws -> FloodgateProgram {
    try requireRoot()
    var policy = policy
    policy.settings = settings
    policy.limits = limits
    let program = try FloodgateProgram(maxSources: maxSources, policy: policy, testClock: testClock)
    if testClock { try program.setTestClock(nanoseconds: 1_000_000_000_000) }
    return program
}

/// The coarse clock's resolution, a jiffy (CLOCK_MONOTONIC_COARSE), in nanoseconds: what the filter is told as
/// settings.jiffy_ns.
func coarseClockResolution() throws -> UInt64 {
    var resolution = timespec()
    guard clock_getres(CLOCK_MONOTONIC_COARSE, &resolution) == 0, resolution.tv_sec == 0, resolution.tv_nsec > 0 else {
        throw FloodgateError("no resolution for CLOCK_MONOTONIC_COARSE")
    }
    return UInt64(resolution.tv_nsec)
}

/// A policy with no aggregate limits, so that only the per-source buckets decide.
let perSourceOnly = FilterPolicy.perSourceOnly

let XDP_ABORTED_ACTION: UInt32 = 0
let XDP_DROP_ACTION: UInt32 = 1
let XDP_PASS_ACTION: UInt32 = 2

extension FloodgateProgram {
    /// The XDP action for one packet.
    func verdict(_ packet: [UInt8]) throws -> UInt32 { try testRun(packet).action }
}

/// Runs a command, returning its exit status and output.
@discardableResult
func run(_ command: [String]) throws -> (status: Int32, out: String, err: String) {
    try NetworkLab.capture(command)
}

/// The floodgate executable built beside the test bundle.
var floodgateBinary: String {
    let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    var dir = exe.deletingLastPathComponent()
    while dir.path != "/" {
        let candidate = dir.appendingPathComponent("floodgate").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    return "floodgate"
}

func uniqueID() -> String { String(UInt32.random(in: 0..<UInt32.max), radix: 36) }

/// Runs `body` with the calling thread pinned to CPU 0, for tests of per-CPU state (the drop cache): test runs
/// happen on the CPU of the calling thread, which could otherwise move between calls. The thread's affinity is
/// put back afterwards. `body` is synchronous, so it stays on this thread, in the test's own context: its
/// expectations are reported as the test's.
func onOneCPU<T>(_ body: () throws -> T) throws -> T { try onCPU(0, body) }

/// `body` with the test thread pinned to `cpu` (BPF_PROG_TEST_RUN runs the program on the caller's CPU).
func onCPU<T>(_ cpu: Int32, _ body: () throws -> T) throws -> T {
    var saved = [UInt8](repeating: 0, count: Int(CFLOODGATE_AFFINITY_BYTES))
    guard cfloodgate_get_affinity(&saved) == 0 else { throw FloodgateError("read the test thread's CPU affinity") }
    guard cfloodgate_pin_to_cpu(cpu) == 0 else { throw FloodgateError("pin the test thread to CPU \(cpu)") }
    defer { _ = cfloodgate_set_affinity(saved) }
    return try body()
}

extension Packet {
    static let ethernetHeaderLength = 14
}

extension FloodgateProgram {
    /// Runs one packet and returns its action with the class and reason it was counted under.
    func judge(_ packet: [UInt8]) throws -> (UInt32, TrafficClass?, Reason?) {
        let before = try maps.counters().packets
        let action = try verdict(packet)
        let after = try maps.counters().packets
        for c in TrafficClass.counted {
            for r in Reason.all where after[c, r] != before[c, r] { return (action, c, r) }
        }
        return (action, nil, nil)
    }
}
