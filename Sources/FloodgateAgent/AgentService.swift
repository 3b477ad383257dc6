import Foundation
import Logging
import ServiceLifecycle

/// Drives the ``Agent``: a poll every `config.pollMilliseconds`, a reload on SIGHUP or when the config file (or
/// a list file) changes, and on graceful shutdown either leaves the filter pinned (the default: it keeps
/// protecting) or detaches it.
public final class AgentService: Service, @unchecked Sendable {
    private let agent: Agent
    private let detachOnExit: Bool
    private let logger: Logger
    private let hangups = HangupCounter()

    public init(agent: Agent, detachOnExit: Bool, logger: Logger) {
        self.agent = agent
        self.detachOnExit = detachOnExit
        self.logger = logger
    }

    public func run() async throws {
        let source = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
        signal(SIGHUP, SIG_IGN)
        let hangups = self.hangups
        source.setEventHandler { hangups.increment() }
        source.resume()
        defer { source.cancel() }
        // From here SIGTERM and SIGINT stop the agent gracefully (the service group handles them before it runs
        // this); until now they end the process as they would any other.
        logger.notice("running", metadata: ["poll_ms": .stringConvertible(agent.config.pollMilliseconds)])
        // The filter is attached and the config applied: systemd may start what is ordered after us.
        SystemdNotify.send("READY=1\nSTATUS=filtering on \(agent.config.externals.joined(separator: ", "))")
        agent.start()
        var lastCheck = monotonicSeconds()
        while !Task.isShuttingDownGracefully {
            if hangups.take() > 0 {
                SystemdNotify.reloading()
                let applied = agent.reload(reason: "SIGHUP")
                SystemdNotify.send("READY=1\nSTATUS=\(applied ? "config reloaded" : "config rejected: the last good one stays")")
            } else if monotonicSeconds() - lastCheck >= 1 {
                // Taken after the files are read: two reads are then at least a second apart however long this
                // process is kept off its CPU between the clock and the read (a list is read once two reads agree).
                let changed = agent.filesChanged()
                lastCheck = monotonicSeconds()
                if changed { agent.reload(reason: "file changed") }
            }
            agent.poll()
            try? await Task.sleep(for: .milliseconds(agent.config.pollMilliseconds))
        }
        SystemdNotify.send("STOPPING=1")
        agent.release()
        if detachOnExit {
            try agent.detach()
        } else {
            logger.notice("stopping: the filter stays attached and pinned, and keeps its bans",
                          metadata: ["pin_root": "\(agent.config.pinRoot)"])
        }
    }
}

private final class HangupCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func increment() { lock.lock(); count += 1; lock.unlock() }
    func take() -> Int { lock.lock(); defer { count = 0; lock.unlock() }; return count }
}

private func monotonicSeconds() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
