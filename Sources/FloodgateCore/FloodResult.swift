import Foundation

/// One flood against one filter, in a lab of its own.
public struct FloodResult: Codable, Sendable {
    public var scenario: String
    public var filter: String
    public var sent: UInt64
    public var seconds: Double
    public var processed: UInt64
    public var dropped: UInt64
    public var mpps: Double

    /// Builds a lab, attaches `filter` (floodgate, trivial or none) to the router end, floods it with `scenario`
    /// for at most `packets` frames and `seconds`, and reads what the router end's XDP program saw (ethtool -S).
    public static func run(scenario: FloodScenario, filter: String, packets: UInt64, seconds: Double, progress: Bool)
        throws -> FloodResult
    {
        let lab = try NetworkLab(prefix: "fgf")
        defer { lab.tearDown() }
        var trivialLink: Int32 = -1
        let trivial = try TrivialDropProgram()
        defer { if trivialLink >= 0 { close(trivialLink) } }
        switch filter {
        case "floodgate":
            _ = try NetworkLab.inNamespace(lab.routerNS) {
                try PinRoot(lab.pinRoot).attach(try Interface(lab.routerInterface), mode: .native)
            }
        case "trivial":
            trivialLink = try trivial.attach(lab.routerInterface, namespace: lab.routerNS)
        default:
            break
        }
        let before = try vethXDPCounters(lab.routerInterface, namespace: lab.routerNS)
        let generator = try FloodGenerator()
        let (sent, elapsed) = try generator.run(
            scenario, interface: lab.outsideInterface, namespace: lab.outsideNS, count: packets, seconds: seconds
        ) { sent, elapsed in
            if progress {
                FileHandle.standardError.write(Data(String(format: "\r%@: %llu frames sent, %.1f s", scenario.name, sent, elapsed).utf8))
            }
        }
        if progress { FileHandle.standardError.write(Data("\n".utf8)) }
        let after = try vethXDPCounters(lab.routerInterface, namespace: lab.routerNS)
        let processed = after.packets - before.packets
        return FloodResult(scenario: scenario.name, filter: filter, sent: sent, seconds: elapsed, processed: processed,
                        dropped: after.drops - before.drops, mpps: Double(processed) / elapsed / 1e6)
    }
}
