internal import CFloodgate
import Foundation

/// The kernel calls the namespace lab makes besides loading objects (FloodgateLab uses these, never libbpf or the
/// C shims itself).
public enum KernelCalls {
    /// Loads an XDP program from raw instructions (`struct bpf_insn`, 8 bytes each, little-endian) with
    /// `bpf_prog_load`; returns its descriptor, which the caller closes.
    public static func loadXDP(instructions: [UInt64], name: String) throws -> Int32 {
        let fd = instructions.withUnsafeBytes { raw in
            bpf_prog_load(BPF_PROG_TYPE_XDP, name, "GPL", raw.baseAddress!.assumingMemoryBound(to: bpf_insn.self),
                          instructions.count, nil)
        }
        if fd < 0 { throw FloodgateError("load the XDP program \(name)", libbpfResult: fd) }
        return fd
    }

    /// Attaches the XDP program `programFD` in native mode to the interface `ifindex` of this thread's network
    /// namespace with a bpf_link; closing the returned descriptor detaches it.
    public static func attachXDPNative(programFD: Int32, ifindex: Int32, what: String) throws -> Int32 {
        try check("attach \(what)", cfloodgate_xdp_link(programFD, ifindex, UInt32(XDP_FLAGS_DRV_MODE)))
    }

    /// Runs `programFD` on `frame` `count` times in live-frames mode (BPF_PROG_TEST_RUN with
    /// BPF_F_TEST_XDP_LIVE_FRAMES) on interface `ifindex`, `batch` frames at a time: its XDP_TX frames leave
    /// through that interface. Returns false if ``interrupt(thread:)`` cut the run short (the kernel checks
    /// between batches), true once all `count` ran.
    public static func testRunLive(programFD: Int32, frame: [UInt8], ifindex: UInt32, count: UInt32,
                                   batch: UInt32 = 64, what: String) throws -> Bool {
        let result = frame.withUnsafeBytes {
            cfloodgate_test_run_live(programFD, $0.baseAddress, UInt32($0.count), ifindex, count, batch)
        }
        if result == -EINTR { return false }
        try check(what, result)
        return true
    }

    /// Opens an AF_PACKET raw socket on interface `ifindex` of the calling thread's network namespace whose frames
    /// skip the qdisc (PACKET_QDISC_BYPASS) and which receives nothing; the caller closes it. The lab's generator
    /// where the kernel refuses live frames.
    public static func openPacketSocket(ifindex: UInt32, what: String) throws -> Int32 {
        // Protocol 0: no frame is delivered to it.
        let fd = socket(AF_PACKET, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw FloodgateError(what, errno: errno) }
        var one: Int32 = 1
        var address = sockaddr_ll()
        address.sll_family = UInt16(AF_PACKET)
        address.sll_ifindex = Int32(bitPattern: ifindex)
        var failed = setsockopt(fd, Int32(SOL_PACKET), PACKET_QDISC_BYPASS, &one, socklen_t(MemoryLayout<Int32>.size))
        if failed == 0 {
            failed = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_ll>.size))
                }
            }
        }
        if failed != 0 {
            let error = FloodgateError(what, errno: errno)
            close(fd)
            throw error
        }
        return fd
    }

    /// The most frames ``sendFrames(socket:base:size:stride:count:what:)`` sends in one call.
    public static let sendBatch = Int(CFLOODGATE_SEND_BATCH)

    /// Sends `count` frames (at most ``sendBatch``) of `size` bytes, the i-th at `base + i * stride` (stride 0: one
    /// frame `count` times), through `socket` in one `sendmmsg(2)`. Returns how many it took: 0 when the device had
    /// no room for the first (ENOBUFS) or a signal came first (EINTR).
    public static func sendFrames(socket: Int32, base: UnsafeRawPointer, size: Int, stride: Int, count: Int,
                                  what: @autoclosure () -> String) throws -> Int {
        let result = cfloodgate_send_frames(socket, base, UInt32(size), UInt32(stride), UInt32(count))
        if result == -ENOBUFS || result == -EINTR { return 0 }
        return Int(try check(what(), result))
    }

    /// Installs, once per process, the signal ``interrupt(thread:)`` sends: SIGUSR2 with a handler that does
    /// nothing, so it ends a system call the thread is in (EINTR) and nothing else.
    public static func installInterruptSignal() throws {
        try interruptSignal.get()
    }

    private static let interruptSignal: Result<Void, any Error> = Result {
        _ = try check("install the SIGUSR2 handler", cfloodgate_install_interrupt_signal())
    }

    /// Runs `body` with the interrupt signal unblocked on the calling thread (threads of a pool may block it),
    /// then puts the thread's mask back.
    public static func interruptible<T>(_ body: () throws -> T) throws -> T {
        let blocked = try check("unblock SIGUSR2", cfloodgate_block_interrupt_signal(0))
        defer { if blocked == 1 { _ = cfloodgate_block_interrupt_signal(1) } }
        return try body()
    }

    /// Interrupts what `thread` (a `pthread_t`) is doing in the kernel (``installInterruptSignal()`` first).
    public static func interrupt(thread: UInt) {
        _ = cfloodgate_interrupt_thread(thread)
    }

    /// Pins the calling thread to `cpu` (sched_setaffinity).
    public static func pinCurrentThread(toCPU cpu: Int, what: String) throws {
        try check(what, cfloodgate_pin_to_cpu(Int32(cpu)))
    }

    /// Moves the calling thread into the network namespace open at `fd` (setns).
    public static func enterNetworkNamespace(fd: Int32) -> Bool { setns(fd, CFLOODGATE_CLONE_NEWNET) == 0 }

    /// A pipe whose ends close on exec (pipe2 with O_CLOEXEC).
    public static func pipeClosingOnExec() throws -> (read: Int32, write: Int32) {
        var ends: [Int32] = [-1, -1]
        try check("create a pipe", cfloodgate_pipe_cloexec(&ends))
        return (ends[0], ends[1])
    }
}

extension BPFObject {
    /// Writes `value` into slot 0 of the array map `name` (a program's configuration).
    public func configure<T: BitwiseCopyable>(map name: String, with value: T) throws {
        let map = BPFMap<UInt32, T>(descriptor: FileDescriptor(try mapFD(name), owned: false), name: name)
        try map.update(0, value)
    }

    /// Writes `value` into slot 0 of the per-CPU array map `name`, on every possible CPU.
    public func configureEveryCPU<T: BitwiseCopyable>(map name: String, with value: T) throws {
        let fd = try mapFD(name)
        let stride = (MemoryLayout<T>.size + 7) & ~7
        var buffer = [UInt8](repeating: 0, count: stride * (try possibleCPUs()))
        buffer.withUnsafeMutableBytes { raw in
            for cpu in 0..<(raw.count / stride) { raw.storeBytes(of: value, toByteOffset: cpu * stride, as: T.self) }
        }
        var key: UInt32 = 0
        try check("write \(name)[0] on every CPU", bpf_map_update_elem(fd, &key, &buffer, UInt64(BPF_ANY)))
    }

    /// Slot 0 of the per-CPU array map `name`: every possible CPU's value, by CPU.
    public func everyCPU<T: BitwiseCopyable>(map name: String, as: T.Type) throws -> [T] {
        try readEveryCPU(try mapFD(name), key: 0, as: T.self, what: name)
    }
}
