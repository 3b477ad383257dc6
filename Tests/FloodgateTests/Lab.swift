import CFloodgate
import FloodgateCore
import Foundation
import Testing

/// Two network namespaces joined by a veth pair: a sender (198.18.0.1) and a router (198.18.0.2) with Floodgate.
/// No default route anywhere, so nothing sent here can leave the lab. Names are unique per lab; `withLab` removes
/// the namespaces (and with them the veth pair) and the pin root even when the body throws.
final class Lab {
    let id = uniqueID()
    var senderNS: String { "fgt-s-\(id)" }
    var routerNS: String { "fgt-r-\(id)" }
    var senderIf: String { "fgs\(id)" }
    var routerIf: String { "fgr\(id)" }
    var pinRoot: String { "/sys/fs/bpf/fgtest-\(id)" }
    let senderAddress = "198.18.0.1"
    let routerAddress = "198.18.0.2"

    fileprivate init() {}

    fileprivate func setUp() throws {
        try requireRoot()
        let steps: [[String]] = [
            ["ip", "netns", "add", senderNS],
            ["ip", "netns", "add", routerNS],
            ["ip", "link", "add", senderIf, "netns", senderNS, "type", "veth", "peer", "name", routerIf, "netns",
             routerNS],
            ["ip", "netns", "exec", senderNS, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"],
            ["ip", "netns", "exec", routerNS, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"],
            ["ip", "-n", senderNS, "addr", "add", "\(senderAddress)/30", "dev", senderIf],
            ["ip", "-n", routerNS, "addr", "add", "\(routerAddress)/30", "dev", routerIf],
            ["ip", "-n", senderNS, "link", "set", "lo", "up"],
            ["ip", "-n", routerNS, "link", "set", "lo", "up"],
            ["ip", "-n", senderNS, "link", "set", senderIf, "up"],
            ["ip", "-n", routerNS, "link", "set", routerIf, "up"],
        ]
        for step in steps { try run(step, check: true) }
        // Static neighbours: no ARP exchange can hold back or add to the packets a test counts.
        let routerMAC = try mac(of: routerIf, in: routerNS)
        let senderMAC = try mac(of: senderIf, in: senderNS)
        try run(["ip", "-n", senderNS, "neigh", "replace", routerAddress, "lladdr", routerMAC, "dev", senderIf,
                 "nud", "permanent"], check: true)
        try run(["ip", "-n", routerNS, "neigh", "replace", senderAddress, "lladdr", senderMAC, "dev", routerIf,
                 "nud", "permanent"], check: true)
    }

    fileprivate func tearDown() {
        _ = try? run(["ip", "netns", "del", senderNS])
        _ = try? run(["ip", "netns", "del", routerNS])
        // Removing the pins releases whatever link and maps are left.
        _ = try? run(["rm", "-rf", pinRoot])
    }

    private func mac(of interface: String, in ns: String) throws -> String {
        let out = try run(["ip", "-n", ns, "-o", "link", "show", interface], check: true).out
        let words = out.split(separator: " ")
        guard let i = words.firstIndex(of: "link/ether"), i + 1 < words.count else {
            throw FloodgateError("no MAC address for \(interface) in: \(out)")
        }
        return String(words[i + 1])
    }

    /// Runs the floodgate CLI in the router namespace (nsenter keeps the mount namespace, so bpffs pins stay
    /// visible), with this lab's pin root.
    @discardableResult
    func floodgate(_ arguments: [String]) throws -> (status: Int32, out: String, err: String) {
        try run(["nsenter", "--net=/run/netns/\(routerNS)", floodgateBinary] + arguments + ["--pin-root", pinRoot])
    }

    /// The XDP program id on the router's interface, or nil.
    func routerXDPProgram() throws -> String? {
        let out = try run(["ip", "-n", routerNS, "-d", "link", "show", routerIf], check: true).out
        guard let range = out.range(of: "prog/xdp id ") else { return nil }
        return String(out[range.upperBound...].prefix { $0.isNumber })
    }

    /// A UDP socket created inside `ns` (a socket stays in the namespace it was made in, whichever thread uses it).
    func udpSocket(in ns: String) throws -> Int32 {
        final class Outcome: @unchecked Sendable {
            var fd: Int32 = -1
            var failure: Int32 = 0
        }
        let outcome = Outcome()
        let done = DispatchSemaphore(value: 0)
        // setns changes only this new thread's namespace; it ends right after.
        let thread = Thread {
            defer { done.signal() }
            let nsFD = open("/run/netns/\(ns)", O_RDONLY | O_CLOEXEC)
            guard nsFD >= 0 else { outcome.failure = errno; return }
            defer { close(nsFD) }
            guard setns(nsFD, CFLOODGATE_CLONE_NEWNET) == 0 else { outcome.failure = errno; return }
            outcome.fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            if outcome.fd < 0 { outcome.failure = errno }
        }
        thread.start()
        done.wait()
        if outcome.fd < 0 { throw FloodgateError("open a UDP socket in \(ns)", errno: outcome.failure) }
        return outcome.fd
    }
}

/// Runs `body` in a fresh lab and always tears it down.
func withLab(_ body: (Lab) throws -> Void) throws {
    let lab = Lab()
    defer { lab.tearDown() }
    try lab.setUp()
    try body(lab)
}

func sockaddrIn(_ address: String, port: UInt16) -> sockaddr_in {
    var sa = sockaddr_in()
    sa.sin_family = sa_family_t(AF_INET)
    sa.sin_port = port.bigEndian
    inet_pton(AF_INET, address, &sa.sin_addr)
    return sa
}

func bind(_ fd: Int32, _ address: String, port: UInt16) throws {
    var sa = sockaddrIn(address, port: port)
    let rc = withUnsafePointer(to: &sa) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    if rc != 0 { throw FloodgateError("bind \(address):\(port)", errno: errno) }
    var size: Int32 = 4 << 20
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
}

func send(_ fd: Int32, to address: String, port: UInt16, _ payload: [UInt8]) throws {
    var sa = sockaddrIn(address, port: port)
    let sent = withUnsafePointer(to: &sa) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            sendto(fd, payload, payload.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    if sent != payload.count { throw FloodgateError("send to \(address):\(port)", errno: errno) }
}

/// Counts the datagrams waiting on `fd`, waiting until none has arrived for `quiet` seconds.
func drain(_ fd: Int32, quiet: Double = 0.3) -> Int {
    var count = 0
    var buffer = [UInt8](repeating: 0, count: 2048)
    var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    while poll(&pfd, 1, Int32(quiet * 1000)) > 0 {
        while recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT)) > 0 { count += 1 }
    }
    return count
}
