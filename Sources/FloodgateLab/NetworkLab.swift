
import FloodgateCore
import Foundation

/// Network namespaces joined by veth pairs, for tests, the demo and benchmarks: an `outside` namespace (senders)
/// and a `router` namespace where Floodgate is attached, on 198.18.0.0/30 (the benchmarking range). No default
/// route is set anywhere, so nothing sent in the lab can leave it. Names are unique per lab; ``tearDown()`` deletes
/// the namespaces (and with them the veth pair) and the lab's pin root.
public final class NetworkLab: @unchecked Sendable {
    public let id: String
    public let outsideNS: String
    public let routerNS: String
    public let outsideInterface: String
    public let routerInterface: String
    public let pinRoot: String
    public let outsideAddress = "198.18.0.1"
    public let routerAddress = "198.18.0.2"
    /// Extra addresses on the outside end, for more senders.
    public private(set) var extraOutsideAddresses: [String] = []
    /// Extra addresses on the router end, for more servers.
    public private(set) var extraRouterAddresses: [String] = []
    /// With `server: true`, a third namespace behind the router, as a SIP server's LAN: the router forwards
    /// between 198.18.0.0/24 (outside) and 198.18.2.0/24 (server side, router 198.18.2.1, server 198.18.2.2).
    public let serverNS: String?
    public let routerInsideInterface: String?
    /// The server's end of that link.
    public var serverInterface: String? {
        routerInsideInterface.map { "\($0.prefix($0.count - id.count - 1))s\(id)" }
    }
    public let serverAddress = "198.18.2.2"
    /// The router end's IPv6 address, if the lab was made with IPv6 on the router side.
    public let routerIPv6: String?
    private var torn = false

    /// Creates the namespaces and the veth pair. `prefix` (at most 4 characters) starts every name. IPv6 is off
    /// in every namespace, unless `routerIPv6` names an address for the router end (then IPv6 is on there, so
    /// the router's stack and its nftables see IPv6 packets rather than discarding them on arrival).
    public init(
        prefix: String = "fgl", extraOutsideAddresses: [String] = [], extraRouterAddresses: [String] = [],
        server: Bool = false, routerIPv6: String? = nil
    ) throws {
        self.routerIPv6 = routerIPv6
        precondition(prefix.count <= 4)
        NetworkLab.removeOrphans()
        id = String(UInt32.random(in: 0..<UInt32.max), radix: 36)
        // The namespaces carry the creating process's id, so a lab whose process died can be told apart.
        outsideNS = "\(prefix)-o-\(getpid())-\(id)"
        routerNS = "\(prefix)-r-\(getpid())-\(id)"
        outsideInterface = "\(prefix)o\(id)"
        routerInterface = "\(prefix)r\(id)"
        pinRoot = "/sys/fs/bpf/\(prefix)-\(id)"
        serverNS = server ? "\(prefix)-s-\(getpid())-\(id)" : nil
        routerInsideInterface = server ? "\(prefix)i\(id)" : nil
        do {
            try setUp(extraOutsideAddresses, router: extraRouterAddresses)
        } catch {
            tearDown()
            throw error
        }
    }

    private func setUp(_ extra: [String], router extraRouter: [String]) throws {
        let o = outsideNS, r = routerNS
        var steps: [[String]] = [
            ["ip", "netns", "add", o],
            ["ip", "netns", "add", r],
            ["ip", "link", "add", outsideInterface, "netns", o, "type", "veth", "peer", "name", routerInterface,
             "netns", r],
            // IPv6 off: no router solicitations or MLD reports mixed into what a test counts.
            ["ip", "netns", "exec", o, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"],
            ["ip", "netns", "exec", r, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=\(routerIPv6 == nil ? 1 : 0)"],
            ["ip", "-n", o, "addr", "add", "\(outsideAddress)/24", "dev", outsideInterface],
            ["ip", "-n", r, "addr", "add", "\(routerAddress)/24", "dev", routerInterface],
        ]
        if let v6 = routerIPv6 {
            steps.append(["ip", "-n", r, "-6", "addr", "add", "\(v6)/64", "dev", routerInterface, "nodad"])
        }
        for address in extra { steps.append(["ip", "-n", o, "addr", "add", "\(address)/24", "dev", outsideInterface]) }
        for address in extraRouter { steps.append(["ip", "-n", r, "addr", "add", "\(address)/24", "dev", routerInterface]) }
        steps += [
            ["ip", "-n", o, "link", "set", "lo", "up"],
            ["ip", "-n", r, "link", "set", "lo", "up"],
            ["ip", "-n", o, "link", "set", outsideInterface, "up"],
            ["ip", "-n", r, "link", "set", routerInterface, "up"],
        ]
        for step in steps { try NetworkLab.run(step) }
        extraOutsideAddresses = extra
        extraRouterAddresses = extraRouter
        // Static neighbours: no ARP exchange holds back or adds to the packets being counted.
        let routerMAC = try mac(of: routerInterface, in: r)
        let outsideMAC = try mac(of: outsideInterface, in: o)
        for address in [routerAddress] + extraRouter {
            try NetworkLab.run(["ip", "-n", o, "neigh", "replace", address, "lladdr", routerMAC, "dev",
                                outsideInterface, "nud", "permanent"])
        }
        for address in [outsideAddress] + extra {
            try NetworkLab.run(["ip", "-n", r, "neigh", "replace", address, "lladdr", outsideMAC, "dev",
                                routerInterface, "nud", "permanent"])
        }
        if let s = serverNS, let inside = routerInsideInterface {
            let serverIf = serverInterface!
            for step in [
                ["ip", "netns", "add", s],
                ["ip", "link", "add", inside, "netns", r, "type", "veth", "peer", "name", serverIf, "netns", s],
                ["ip", "netns", "exec", s, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"],
                ["ip", "netns", "exec", r, "sysctl", "-qw", "net.ipv4.ip_forward=1"],
                ["ip", "-n", r, "addr", "add", "198.18.2.1/24", "dev", inside],
                ["ip", "-n", s, "addr", "add", "\(serverAddress)/24", "dev", serverIf],
                ["ip", "-n", s, "link", "set", "lo", "up"],
                ["ip", "-n", r, "link", "set", inside, "up"],
                ["ip", "-n", s, "link", "set", serverIf, "up"],
                // Routes between the lab's own subnets only: no default route anywhere.
                ["ip", "-n", o, "route", "add", "198.18.2.0/24", "via", routerAddress],
                ["ip", "-n", s, "route", "add", "198.18.0.0/24", "via", "198.18.2.1"],
            ] { try NetworkLab.run(step) }
        }
    }

    /// Removes the labs of processes that are gone (a crashed test run cannot tear down its own): their
    /// namespaces, with anything still running in them, and their pin roots.
    static func removeOrphans() {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/run/netns") else { return }
        for name in names {
            let parts = name.split(separator: "-")
            guard parts.count == 4, parts[0].hasPrefix("fg"), parts[1] == "o" || parts[1] == "r" || parts[1] == "s",
                  let pid = Int32(parts[2]), kill(pid, 0) != 0, errno == ESRCH
            else { continue }
            if let pids = try? run(["ip", "netns", "pids", name]) {
                for p in pids.split(separator: "\n").compactMap({ Int32($0) }) { kill(p, SIGKILL) }
            }
            _ = try? run(["ip", "netns", "del", name])
            _ = try? run(["rm", "-rf", "/sys/fs/bpf/\(parts[0])-\(parts[3])"])
        }
    }

    /// Deletes the namespaces and the pin root; safe to call twice.
    public func tearDown() {
        guard !torn else { return }
        torn = true
        for ns in [outsideNS, routerNS] + (serverNS.map { [$0] } ?? []) {
            // Whatever still runs in the lab (sipp, say) goes with it.
            if let pids = try? NetworkLab.run(["ip", "netns", "pids", ns]) {
                for p in pids.split(separator: "\n").compactMap({ Int32($0) }) { kill(p, SIGKILL) }
            }
            _ = try? NetworkLab.run(["ip", "netns", "del", ns])
        }
        // Removing the pins releases whatever link and maps are left.
        _ = try? NetworkLab.run(["rm", "-rf", pinRoot])
    }

    deinit { tearDown() }

    /// Gives the router end's receive a CPU of its own: threaded NAPI on `routerInterface` (its poll runs in a
    /// kernel thread, `napi/<interface>-<id>`, instead of in softirq on whichever CPU woke it) and that thread
    /// pinned to `cpu`. Without it, the receive of frames the generator sends often runs in softirq on the
    /// generator's own CPU, and a flood measures the sender and the filter sharing one CPU — in some runs, not
    /// in others. Needs an XDP program on the interface (veth has NAPI only then). Returns the pinned thread ids.
    @discardableResult
    public func dedicateReceiverCPU(_ cpu: Int) throws -> [Int32] {
        try NetworkLab.run(["ip", "netns", "exec", routerNS, "sh", "-c",
                            "echo 1 > /sys/class/net/\(routerInterface)/threaded"])
        // The thread's name is cut to 15 characters (TASK_COMM_LEN).
        let name = String("napi/\(routerInterface)-".prefix(15))
        var threads: [Int32] = []
        let deadline = monotonicNanoseconds() + 2_000_000_000
        while threads.isEmpty && monotonicNanoseconds() < deadline {
            for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
                guard let pid = Int32(entry),
                      let comm = try? String(contentsOfFile: "/proc/\(entry)/comm", encoding: .utf8),
                      comm.hasPrefix(name)
                else { continue }
                threads.append(pid)
            }
            if threads.isEmpty { usleep(10_000) }
        }
        guard !threads.isEmpty else {
            throw FloodgateError("no NAPI thread for \(routerInterface) after setting it threaded",
                                 hint: "veth has NAPI only with an XDP program attached")
        }
        for pid in threads { try NetworkLab.run(["taskset", "-pc", String(cpu), String(pid)]) }
        return threads
    }

    /// The MAC address of the router's interface, as bytes.
    public func routerMAC() throws -> [UInt8] {
        try mac(of: routerInterface, in: routerNS).split(separator: ":").map { UInt8($0, radix: 16) ?? 0 }
    }

    private func mac(of interface: String, in ns: String) throws -> String {
        let out = try NetworkLab.run(["ip", "-n", ns, "-o", "link", "show", interface])
        let words = out.split(separator: " ")
        guard let i = words.firstIndex(of: "link/ether"), i + 1 < words.count else {
            throw FloodgateError("no MAC address for \(interface) in: \(out)")
        }
        return String(words[i + 1])
    }

    /// Runs `body` on a new thread that has joined network namespace `ns` (setns changes only that thread).
    /// Sockets, interface lookups and XDP attachments made there belong to `ns`.
    public static func inNamespace<T>(_ ns: String, _ body: @escaping () throws -> T) throws -> T {
        let outcome = ThreadOutcome<T>()
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            defer { done.signal() }
            outcome.result = Result {
                let fd = open("/run/netns/\(ns)", O_RDONLY | O_CLOEXEC)
                guard fd >= 0 else { throw FloodgateError("open network namespace \(ns)", errno: errno) }
                defer { close(fd) }
                guard KernelCalls.enterNetworkNamespace(fd: fd) else {
                    throw FloodgateError("enter network namespace \(ns)", errno: errno)
                }
                return try body()
            }
        }
        thread.start()
        done.wait()
        return try outcome.result!.get()
    }

    /// A UDP socket made in `ns`, bound to `address`:`port` (port 0: any).
    public func udpSocket(in ns: String, bindTo address: String? = nil, port: UInt16 = 0) throws -> UDPSocket {
        try NetworkLab.inNamespace(ns) { try UDPSocket(bindTo: address, port: port) }
    }

    /// Runs a command; throws with its standard error if it fails.
    @discardableResult
    public static func run(_ command: [String]) throws -> String {
        let result = try capture(command)
        guard result.status == 0 else {
            throw FloodgateError(
                "\(command.joined(separator: " ")) exited \(result.status): "
                    + result.err.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        return result.out
    }

    /// How many IPv4 addresses the lab's 198.18.0.0/15 holds.
    public static let labIPv4Count = 1 << 17

    /// The `i`th address of 198.18.0.0/15 (`i` < ``labIPv4Count``): a spoofed source, or one to search for a hash.
    public static func labIPv4(_ i: Int) -> String {
        precondition(i >= 0 && i < labIPv4Count, "198.18.0.0/15 has \(labIPv4Count) addresses")
        return "198.\(18 + (i >> 16)).\((i >> 8) & 0xFF).\(i & 0xFF)"
    }

    /// Waits until a UDP socket in `namespace` is bound to `address`:`port` (a server just started), asking `ss`
    /// every 50 ms; throws if none is by `seconds`. A fixed sleep instead is too short on a loaded machine.
    public static func waitForUDPSocket(namespace: String, address: String, port: Int, seconds: Double = 10) throws {
        let deadline = monotonicNanoseconds() + UInt64(seconds * 1e9)
        while true {
            let listed = try capture(["ip", "netns", "exec", namespace, "ss", "-Hlun", "src", "\(address):\(port)"])
            if listed.status == 0 && !listed.out.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { return }
            guard monotonicNanoseconds() < deadline else {
                throw FloodgateError("nothing bound to \(address):\(port) in \(namespace) after \(seconds) s")
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    /// Runs a command and returns its exit status, standard output and standard error.
    ///
    /// With posix_spawn and waitpid rather than Foundation's Process: under many concurrent children (the tests)
    /// Process.waitUntilExit was seen to miss a child's exit and wait forever. The pipes are close-on-exec, so
    /// a child spawned meanwhile by another thread cannot hold them open.
    public static func capture(_ command: [String]) throws -> (status: Int32, out: String, err: String) {
        let out = try KernelCalls.pipeClosingOnExec()
        let err: (read: Int32, write: Int32)
        do {
            err = try KernelCalls.pipeClosingOnExec()
        } catch {
            close(out.read)
            close(out.write)
            throw error
        }
        let outPipe = [out.read, out.write], errPipe = [err.read, err.write]
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        let argv: [UnsafeMutablePointer<CChar>?] = (["/usr/bin/env"] + command).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, "/usr/bin/env", &actions, nil, argv, environ)
        close(outPipe[1])
        close(errPipe[1])
        guard spawned == 0 else {
            close(outPipe[0])
            close(errPipe[0])
            throw FloodgateError("start \(command.first ?? "?")", errno: spawned)
        }
        // Both pipes are read to their end at once, so that neither can fill up and stall the command.
        final class Buffer: @unchecked Sendable { var data = Data() }
        let errBuffer = Buffer()
        let errDone = DispatchSemaphore(value: 0)
        let errFD = errPipe[0]
        Thread {
            errBuffer.data = readToEnd(errFD)
            errDone.signal()
        }.start()
        let outData = readToEnd(outPipe[0])
        errDone.wait()
        close(outPipe[0])
        close(errFD)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        // WIFEXITED / WEXITSTATUS, or 128 + the signal, as a shell reports it.
        let code = status & 0x7F == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
        return (code, String(decoding: outData, as: UTF8.self), String(decoding: errBuffer.data, as: UTF8.self))
    }

    private static func readToEnd(_ fd: Int32) -> Data {
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n > 0 {
                data.append(contentsOf: buffer[0..<n])
            } else if n == 0 || errno != EINTR {
                break
            }
        }
        return data
    }
}

private final class ThreadOutcome<T>: @unchecked Sendable {
    var result: Result<T, Error>?
}

/// A blocking IPv4 UDP socket; closed on deinit.
public final class UDPSocket: @unchecked Sendable {
    public let fd: Int32

    public init(bindTo address: String? = nil, port: UInt16 = 0) throws {
        fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw FloodgateError("open a UDP socket", errno: errno) }
        var size: Int32 = 8 << 20
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        if address != nil || port != 0 {
            var sa = UDPSocket.address(address ?? "0.0.0.0", port)
            let rc = withUnsafePointer(to: &sa) {
                $0.withMemoryRebound(to: Glibc.sockaddr.self, capacity: 1) {
                    Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            if rc != 0 {
                let code = errno
                close(fd)
                throw FloodgateError("bind UDP \(address ?? "*"):\(port)", errno: code)
            }
        }
    }

    deinit { close(fd) }

    static func address(_ address: String, _ port: UInt16) -> sockaddr_in {
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = port.bigEndian
        inet_pton(AF_INET, address, &sa.sin_addr)
        return sa
    }

    public func send(_ payload: [UInt8], to address: String, port: UInt16) throws {
        var sa = UDPSocket.address(address, port)
        let sent = withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: Glibc.sockaddr.self, capacity: 1) {
                sendto(fd, payload, payload.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        if sent != payload.count { throw FloodgateError("send UDP to \(address):\(port)", errno: errno) }
    }

    /// Receives until a datagram from `source` arrives (true) or `seconds` pass (false); what else arrives meanwhile
    /// is read and dropped.
    public func receives(from source: String, within seconds: Double) -> Bool {
        gather(within: seconds) { ($0[source] ?? 0) > 0 }.enough
    }

    /// Receives until `count` datagrams have arrived in all or `seconds` pass, then until nothing has arrived for
    /// `quiet` seconds; returns the datagrams' count per source address. For a test that knows how many should
    /// come: on a loaded machine the receive's softirq may run later than any fixed quiet period.
    public func drain(expecting count: Int, within seconds: Double = 10, quiet: Double = 0.3) -> [String: Int] {
        var counts = gather(within: seconds) { $0.values.reduce(0, +) >= count }.counts
        counts.merge(drain(quiet: quiet), uniquingKeysWith: +)
        return counts
    }

    /// Receives until what has arrived (the datagrams' count per source address) is `enough`, or `seconds` pass.
    private func gather(within seconds: Double, until enough: ([String: Int]) -> Bool)
        -> (counts: [String: Int], enough: Bool)
    {
        let deadline = monotonicNanoseconds() + UInt64(seconds * 1e9)
        var counts: [String: Int] = [:]
        while !enough(counts) {
            let now = monotonicNanoseconds()
            guard now < deadline else { return (counts, false) }
            counts.merge(drain(quiet: min(0.05, Double(deadline - now) / 1e9)), uniquingKeysWith: +)
        }
        return (counts, true)
    }

    /// Receives until nothing has arrived for `quiet` seconds; returns the datagrams' count per source address.
    public func drain(quiet: Double = 0.3) -> [String: Int] {
        var counts: [String: Int] = [:]
        var buffer = [UInt8](repeating: 0, count: 2048)
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        while poll(&pfd, 1, Int32(quiet * 1000)) > 0 {
            while true {
                var from = sockaddr_in()
                var length = socklen_t(MemoryLayout<sockaddr_in>.size)
                let n = withUnsafeMutablePointer(to: &from) {
                    $0.withMemoryRebound(to: Glibc.sockaddr.self, capacity: 1) {
                        recvfrom(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT), $0, &length)
                    }
                }
                if n < 0 { break }
                var text = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
                inet_ntop(AF_INET, &from.sin_addr, &text, socklen_t(text.count))
                counts[String(cString: text), default: 0] += 1
            }
        }
        return counts
    }
}
