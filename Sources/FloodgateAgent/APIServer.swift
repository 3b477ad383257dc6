#if canImport(Glibc)
import Glibc
#endif
import FloodgateCore
import Foundation
import Logging
import ServiceLifecycle

/// Serves ``LocalAPI`` on a unix socket: root and the members of its group (mode 0660) may ban, unban, list bans
/// and read counters without root. A thread accepts, a thread serves each connection (at most
/// ``LocalAPI/maxConnections``, ``LocalAPI/maxConnectionsPerUser`` of one user; one idle for
/// ``LocalAPI/idleSeconds`` is closed, and one that stops reading its answers after 10 s). Each ban and unban is
/// logged with the client's uid and pid (SO_PEERCRED) and counted.
public final class APIServer: Service, @unchecked Sendable {
    private let path: String
    private let group: String
    private let root: PinRoot
    private let metrics: AgentMetrics
    private let logger: Logger
    private let lock = NSLock()
    private var active = 0
    private var stopping = false
    private var perUser: [UInt32: Int] = [:]
    private let listener: Int32

    /// Binds the socket now (so that a socket already served by another agent, or a path that is not a socket, is
    /// an error at start), and sets its owner and mode.
    public init(path: String, group: String, root: PinRoot, metrics: AgentMetrics, logger: Logger) throws {
        self.path = path
        self.group = group
        self.root = root
        self.metrics = metrics
        self.logger = logger
        listener = try APIServer.bind(path: path, group: group, logger: logger)
    }

    static func bind(path: String, group: String, logger: Logger) throws -> Int32 {
        let directory = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o755])
        // Only root may be able to swap what is at the path (a symlink put there between bind and chown).
        var dir = stat()
        guard lstat(directory, &dir) == 0, dir.st_mode & S_IFMT == S_IFDIR, dir.st_uid == 0,
              dir.st_mode & (S_IWGRP | S_IWOTH) == 0
        else {
            throw FloodgateError("api.socket: \(directory) must be a directory owned by root and writable by root only")
        }
        var st = stat()
        if lstat(path, &st) == 0 {
            guard st.st_mode & S_IFMT == S_IFSOCK else {
                throw FloodgateError("api.socket: \(path) exists and is not a socket; not touching it")
            }
            if (try? LocalAPI.call(.ping, socket: path)) != nil {
                throw FloodgateError("api.socket: another agent serves the local API at \(path)")
            }
            unlink(path)  // left by an agent that died
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw FloodgateError("api.socket: cannot make a socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            close(fd)
            throw FloodgateError("api.socket: the path is too long (at most 107 bytes): \(path)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in for (i, b) in bytes.enumerated() { raw[i] = b } }
        let previous = umask(0o177)  // 0600 from the start; the group's bit is added below, once owned by it
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        umask(previous)
        guard bound == 0, listen(fd, 16) == 0 else {
            let why = String(cString: strerror(errno))
            close(fd)
            throw FloodgateError("api.socket: cannot listen on \(path): \(why)")
        }
        if let entry = getgrnam(group) {
            // lchown: never follow a link; the mode only once the group is the right one.
            if lchown(path, 0, entry.pointee.gr_gid) == 0 {
                chmod(path, 0o660)
            } else {
                logger.warning("the local API's socket could not be given to its group (the unit needs CAP_CHOWN): it is for root only",
                               metadata: ["group": "\(group)", "socket": "\(path)", "error": "\(String(cString: strerror(errno)))"])
            }
        } else {
            logger.warning("api.group names no group: the local API is for root only",
                           metadata: ["group": "\(group)", "socket": "\(path)"])
        }
        return fd
    }

    public func run() async throws {
        logger.notice("serving the local API", metadata: ["socket": "\(path)", "group": "\(group)"])
        let listener = self.listener
        let failure = await withGracefulShutdownHandler {
            await withCheckedContinuation { (done: CheckedContinuation<Int32?, Never>) in
                let thread = Thread { [self] in done.resume(returning: acceptLoop()) }
                thread.name = "floodgate-api"
                thread.start()
            }
        } onGracefulShutdown: { [self] in
            // Wake the accept(): shut the socket down, and connect to it in case that did not.
            lock.withLock { stopping = true }
            shutdown(listener, Int32(SHUT_RDWR))
            _ = try? LocalAPI.call(.ping, socket: path)
        }
        close(listener)
        unlink(path)
        if let failure {
            // Ends the agent (the service group stops with an error): systemd restarts it.
            throw FloodgateError("the local API stopped accepting connections: \(String(cString: strerror(failure)))")
        }
    }

    /// Accepts until stopped (nil) or an unexpected error (its errno).
    private func acceptLoop() -> Int32? {
        while true {
            let client = accept(listener, nil, nil)
            if client >= 0 { _ = fcntl(client, F_SETFD, FD_CLOEXEC) }
            if lock.withLock({ stopping }) {
                if client >= 0 { close(client) }
                return nil
            }
            if client < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                if errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM {
                    usleep(100_000)
                    continue
                }
                return errno
            }
            // A client that stops reading its answers holds its thread 10 s at most.
            var sendTimeout = timeval(tv_sec: 10, tv_usec: 0)
            setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &sendTimeout, socklen_t(MemoryLayout<timeval>.size))
            let uid = APIServer.peer(client).uid
            let refusal = lock.withLock { () -> String? in
                guard active < LocalAPI.maxConnections else { return "too many connections to the local API" }
                guard perUser[uid, default: 0] < LocalAPI.maxConnectionsPerUser else {
                    return "too many connections to the local API from this user"
                }
                active += 1
                perUser[uid, default: 0] += 1
                return nil
            }
            if let refusal {
                reply(client, LocalAPI.Response(ok: false, error: refusal))
                close(client)
                continue
            }
            let thread = Thread { [self] in
                serve(client)
                close(client)
                lock.withLock {
                    active -= 1
                    perUser[uid, default: 1] -= 1
                }
            }
            thread.start()
        }
    }

    /// The client's credentials (SO_PEERCRED); uid UInt32.max when unknown.
    private static func peer(_ fd: Int32) -> (uid: UInt32, pid: Int32) {
        var credentials = PeerCredentials()
        var length = socklen_t(MemoryLayout<PeerCredentials>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) == 0 else { return (UInt32.max, 0) }
        return (credentials.uid, credentials.pid)
    }

    private func serve(_ fd: Int32) {
        let (uid, pid) = APIServer.peer(fd)
        var idle = timeval(tv_sec: LocalAPI.idleSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &idle, socklen_t(MemoryLayout<timeval>.size))
        var pending: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 8192)
        while true {
            while let newline = pending.firstIndex(of: 0x0A) {
                let line = Array(pending[..<newline])
                pending.removeSubrange(...newline)
                guard line.count <= LocalAPI.maxLineBytes else {
                    return tooLong(fd)
                }
                if line.allSatisfy({ $0 == 0x20 || $0 == 0x0D || $0 == 0x09 }) { continue }
                guard reply(fd, answer(line, uid: uid, pid: pid)) else { return }
            }
            guard pending.count <= LocalAPI.maxLineBytes else { return tooLong(fd) }
            let n = recv(fd, &buffer, buffer.count, 0)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return }
            pending += buffer[0..<n]
        }
    }

    private func tooLong(_ fd: Int32) {
        metrics.apiRequest(op: "invalid", ok: false)
        reply(fd, LocalAPI.Response(ok: false, error: "a request line is longer than \(LocalAPI.maxLineBytes) bytes"))
    }

    private func answer(_ line: [UInt8], uid: UInt32, pid: Int32) -> LocalAPI.Response {
        let request: LocalAPI.Request
        do { request = try LocalAPI.Request.parse(line, peerIsRoot: uid == 0) } catch {
            metrics.apiRequest(op: "invalid", ok: false)
            return LocalAPI.Response(ok: false, error: "\(error)")
        }
        let response = LocalAPI.perform(request, root: root)
        metrics.apiRequest(op: request.op, ok: response.ok)
        let who: Logger.Metadata = ["uid": .stringConvertible(uid), "pid": .stringConvertible(pid)]
        switch request {
        case .ban(let source, let seconds, _, _) where response.ok:
            for o in response.outcomes ?? [] {
                if let why = o.spared {
                    logger.warning("not banned through the local API: the source is \(why)", metadata: who.merging([
                        "source": "\(source)", "interface": "\(o.interface)"], uniquingKeysWith: { $1 }))
                } else {
                    logger.notice("banned through the local API", metadata: who.merging([
                        "source": "\(source)", "interface": "\(o.interface)",
                        "seconds": seconds.map { .stringConvertible($0) } ?? "forever"], uniquingKeysWith: { $1 }))
                }
            }
        case .unban(let source, _) where response.ok:
            for name in response.lifted ?? [] {
                logger.notice("ban lifted through the local API", metadata: who.merging([
                    "source": "\(source)", "interface": "\(name)"], uniquingKeysWith: { $1 }))
            }
        case .ban, .unban:
            logger.warning("local API request failed", metadata: who.merging([
                "op": "\(request.op)", "error": "\(response.error ?? "?")"], uniquingKeysWith: { $1 }))
        default: break
        }
        return response
    }

    /// Writes one answer line; whether it all went.
    @discardableResult
    private func reply(_ fd: Int32, _ response: LocalAPI.Response) -> Bool {
        let line = response.line()
        var sent = 0
        while sent < line.count {
            let n = line[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return false }
            sent += n
        }
        return true
    }
}

/// `struct ucred` (socket(7), SO_PEERCRED), which Glibc's module hides behind _GNU_SOURCE.
private struct PeerCredentials {
    var pid: Int32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0
}
