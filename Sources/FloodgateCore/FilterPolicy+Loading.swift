@_exported import FloodgateBPF
import Foundation
import Logging

// FloodgateCore re-exports FloodgateBPF: the agent, the CLI and the lab see the filter's Swift types through it,
// and never a C one (FloodgateBPF imports CFloodgate internally).

extension FloodgateProgram {
    /// Loads the program with `policy` in its maps (``FilterPolicy/apply(to:)``).
    public convenience init(
        maxSources: UInt32 = UInt32(FilterCapacity.defaultSources),
        maxAutoBans: UInt32 = UInt32(FilterCapacity.defaultAutoBans),
        policy: FilterPolicy = FilterPolicy(),
        testClock: Bool = false,
        objectBytes: [UInt8]? = nil,
        logger: Logger = Logger(label: "floodgate")
    ) throws {
        try policy.validate()
        try self.init(
            maxSources: maxSources, maxAutoBans: maxAutoBans, testClock: testClock, objectBytes: objectBytes,
            logger: logger
        ) { maps in
            _ = try policy.apply(to: maps)
        }
    }
}

extension PinRoot {
    /// Loads the filter with `policy`, attaches it to `interface` in `mode` and pins it
    /// (``attach(_:mode:maxSources:maxAutoBans:configure:)``).
    public func attach(
        _ interface: Interface, mode: AttachMode, policy: FilterPolicy = FilterPolicy(),
        maxSources: UInt32 = UInt32(FilterCapacity.defaultSources),
        maxAutoBans: UInt32 = UInt32(FilterCapacity.defaultAutoBans)
    ) throws -> AttachOutcome {
        try policy.validate()
        return try attach(interface, mode: mode, maxSources: maxSources, maxAutoBans: maxAutoBans) { maps in
            _ = try policy.apply(to: maps)
        }
    }

    /// Changes the policy of the filters on `names` (every attached one if empty), all or none: each filter's
    /// policy is read, edited by `edit` and applied (``FilterPolicy/apply(to:)``); if one fails, the ones
    /// before it are put back. Holds the pin root's lock.
    ///
    /// With an agent running on a filter, its config file owns the policy and its next reload would put back
    /// what this changes: the change is refused, saying so, unless `force` (then a warning says how long it lasts).
    public func changePolicy(_ names: [String], force: Bool = false,
                             _ edit: (AttachedFilter, inout FilterPolicy) throws -> Void) throws -> [AttachedFilter]
    {
        try change(names) { filter, maps in
            if let agent = try maps.runningAgent() {
                let owner = "the agent (pid \(agent.pid)) keeps the filter on \(filter.interfaceName) in step with \(agent.config)"
                guard force else {
                    throw FloodgateError(
                        "\(owner): a change made here would be undone at its next reload",
                        hint: "Edit \(agent.config) and reload the agent (systemctl reload floodgate, or kill -HUP \(agent.pid)); "
                            + "--force changes it anyway, until that reload")
                }
                logger.warning("\(owner): this change lasts until its next reload; edit the config to keep it")
            }
            var policy = try FilterPolicy(reading: maps)
            try edit(filter, &policy)
            return try policy.apply(to: maps).undo
        }
    }
}
