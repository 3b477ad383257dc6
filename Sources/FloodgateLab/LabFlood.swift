import FloodgateCore
import Foundation

/// The filters a lab flood can run against, on the router end.
///
/// - floodgate: the default policy, with the trunk peer (``LegitimateLoad/trunkAddress``) on the allow list, and, as
///   the agent runs it with an inside interface, the inside program reading the server's answers, with learned trust
///   and brute-force detection (``NetworkLab/attachFloodgate(policy:)``).
/// - trivial: `XDP_DROP` for everything (the speed ceiling).
/// - touch: reads two bytes of each frame (the first, and the 43rd: where a SIP method starts), then `XDP_DROP`:
///   what any filter pays to look at a packet at all.
/// - oracle: drops exactly the scenario's attack sources (the ceiling for legitimate traffic).
/// - floor: the oracle's knowledge of the attack with the least a filter keeping state adds to its drop: its policy
///   and per-CPU state looked up, the clock read, the hold's end and generation compared, the frame checked to be a
///   UDP datagram to port 5060, the source compared masked, packets and bytes counted (``FloorProgram/init(holding:)``);
///   only for scenarios of UDP datagrams to port 5060.
/// - xdp-filter (xdp-tools): denies the scenario's source address; not for random-source scenarios.
/// - nftables: an `XDP_PASS` program (so the veth counts frames) and a `meter` rule set dropping each source over 8
///   packets/s to the SIP ports in prerouting — the per-source limit most operators run today — after accepting
///   the trunk peer.
/// - none: nothing attached.
public enum FilterUnderTest: String, CaseIterable, Codable, Sendable, CustomStringConvertible {
    case floodgate, trivial, touch, oracle, floor
    case xdpFilter = "xdp-filter"
    case nftables, none

    public var description: String { rawValue }

    /// Whether it can run `scenario` (``refusal(of:)``).
    public func runs(_ scenario: FloodScenario) -> Bool { refusal(of: scenario) == nil }

    /// Why it cannot run `scenario`, or nil: xdp-filter denies single addresses only, and the floor holds SIP over
    /// UDP to port 5060.
    public func refusal(of scenario: FloodScenario) -> String? {
        switch self {
        case .xdpFilter where scenario.randomSources:
            return "xdp-filter denies single addresses; \(scenario.name) has random sources"
        case .floor where !scenario.isSIPOverUDP:
            return "the floor holds SIP over UDP to port 5060; \(scenario.name) is not"
        default:
            return nil
        }
    }
}

/// A flood running on a thread of its own (``NetworkLab/startFlood(_:count:seconds:cpu:generator:)``).
public final class RunningFlood: @unchecked Sendable {
    // A group, not a semaphore: waiting on it does not use up its end, so every wait sees it.
    private let running = DispatchGroup()
    private var outcome: Result<FloodSent, Error> = .success(FloodSent(sent: 0, seconds: 0, generator: .liveFrames))

    fileprivate init(_ body: @escaping @Sendable () throws -> FloodSent) {
        running.enter()
        // A thread of its own: blocking work on Dispatch's shared pool can wait for a free thread.
        Thread { [self] in
            outcome = Result { try body() }
            running.leave()
        }.start()
    }

    /// Whether the flood ended within `timeout` seconds.
    public func finished(within timeout: Double) -> Bool { running.wait(timeout: .now() + timeout) == .success }

    /// Waits for the flood to end; what it sent, for how long, and how.
    @discardableResult
    public func wait() throws -> FloodSent {
        running.wait()
        return try outcome.get()
    }
}

extension NetworkLab {
    /// Floods the router end with `scenario` from the outside end (at most `count` frames and `seconds`), its frames
    /// addressed to the router's own MAC (so what goes on into the stack is not dropped as for another host).
    /// Returns what was sent, for how long, and how (`generator` nil: live frames if the kernel allows them).
    public func flood(
        _ scenario: FloodScenario, count: UInt64, seconds: Double, cpu: Int? = nil, generator: GeneratorKind? = nil,
        progress: (@Sendable (Double) -> Void)? = nil
    ) throws -> FloodSent {
        try FloodGenerator().run(try addressed(scenario), interface: outsideInterface, namespace: outsideNS, count: count,
                                 seconds: seconds, cpu: cpu, generator: generator, progress: progress)
    }

    /// The same flood on a thread of its own, for a caller that watches the filter meanwhile.
    public func startFlood(
        _ scenario: FloodScenario, count: UInt64, seconds: Double, cpu: Int? = nil, generator kind: GeneratorKind? = nil
    ) throws -> RunningFlood {
        let generator = try FloodGenerator(), flood = try addressed(scenario)
        let interface = outsideInterface, ns = outsideNS
        return RunningFlood {
            try generator.run(flood, interface: interface, namespace: ns, count: count, seconds: seconds, cpu: cpu,
                              generator: kind)
        }
    }

    /// Attaches Floodgate to the router end in native mode with the lab's policy: `policy` (the defaults unless
    /// given), and the trunk peer (``LegitimateLoad/trunkAddress``) on the allow list. Pinned under the lab's pin root.
    /// In a lab with a server namespace, as the agent runs with an inside interface: the inside program on the
    /// router's inside end reads the server's answers (``serverAddress`` listed as a SIP server), with learned
    /// trust (a day) and brute-force detection on, unless `policy` sets them.
    public func attachFloodgate(policy base: FilterPolicy = FilterPolicy()) throws -> AttachOutcome {
        var policy = base
        policy.allow.insert(try CIDR("\(LegitimateLoad.trunkAddress)/32"))
        if routerInsideInterface != nil {
            policy.servers.insert(try CIDR("\(serverAddress)/32"))
            if policy.settings.trustSeconds == 0 { policy.settings.trustSeconds = 86400 }
            if policy.settings.bruteForce == nil { policy.settings.bruteForce = BruteForce() }
        }
        let (interface, inside) = (routerInterface, routerInsideInterface)
        return try NetworkLab.inNamespace(routerNS) { [pinRoot] in
            let outcome = try PinRoot(pinRoot).attach(try Interface(interface), mode: .native, policy: policy)
            if let inside {
                try PinRoot(pinRoot).attachInside(externalName: interface, inside: try Interface(inside), mode: .native)
            }
            return outcome
        }
    }

    /// `scenario` with its frames addressed to the router end's MAC.
    public func addressed(_ scenario: FloodScenario) throws -> FloodScenario {
        var scenario = scenario
        scenario.frame.replaceSubrange(0..<6, with: try routerMAC())
        return scenario
    }
}
