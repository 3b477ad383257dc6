import CFloodgate
import Foundation
import Logging

/// The XDP program and its maps, loaded into the kernel from the object embedded at build time
/// (`bpf_object__open_mem`, `bpf_map__set_max_entries`, `bpf_object__load`). Owns the object: closing it (deinit)
/// releases the program and maps unless they were attached through a pinned link or pinned themselves.
public final class FloodgateProgram: @unchecked Sendable {
    public let programFD: Int32
    /// `floodgate_inside`, for the interface facing the SIP server (BPF/lib/trust.h); it shares the maps.
    public let insideProgramFD: Int32
    public let maps: FilterMaps
    private let object: OpaquePointer
    private let image: UnsafeMutableRawBufferPointer
    /// The map holding the test clock's time, if the program was loaded with one.
    private let testClockFD: Int32?

    /// The compiled filter, as `swift build` embedded it.
    public static var objectBytes: [UInt8] { decode(EmbeddedBPFObject.filter) }

    static func decode(_ object: (size: Int, base64: String)) -> [UInt8] {
        guard let data = Data(base64Encoded: object.base64), data.count == object.size else {
            fatalError("an embedded BPF object is corrupt; rebuild floodgate")
        }
        return [UInt8](data)
    }

    /// Loads the program with a per-source map of `maxSources` entries; maps start with `settings` and `limits`
    /// so the program never runs unconfigured. With `testClock`, the program reads the time that
    /// ``setTestClock(nanoseconds:)`` sets instead of the kernel's clocks (BPF/lib/clock.h): for tests that compare
    /// it with a model over time; never for a filter in service.
    public init(
        maxSources: UInt32 = UInt32(FG_DEFAULT_MAX_SOURCES),
        settings: Settings = .defaults,
        limits: [TrafficClass: Limit] = Limit.defaults,
        policy: Policy = Policy(),
        testClock: Bool = false,
        logger: Logger = Logger(label: "floodgate")
    ) throws {
        _ = LibbpfLogging.install
        guard maxSources >= 1 else { throw FloodgateError("the per-source map needs at least 1 entry") }
        try settings.validate()

        let bytes = FloodgateProgram.objectBytes
        // libbpf reads the ELF in place until load, so the bytes live as long as the object.
        let image = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 16)
        image.copyBytes(from: bytes)
        self.image = image
        var options = bpf_object_open_opts()
        options.sz = MemoryLayout<bpf_object_open_opts>.size
        guard let object = "floodgate".withCString({ name -> OpaquePointer? in
            options.object_name = name
            return bpf_object__open_mem(image.baseAddress, image.count, &options)
        }) else {
            let code = errno
            image.deallocate()
            throw FloodgateError("open the embedded BPF object", errno: code)
        }
        self.object = object

        do {
            guard let sources = bpf_object__find_map_by_name(object, FG_MAP_SOURCES),
                  let prefixes = bpf_object__find_map_by_name(object, FG_MAP_PREFIXES)
            else {
                throw FloodgateError("the BPF object lacks the maps \(FG_MAP_SOURCES) and \(FG_MAP_PREFIXES)")
            }
            try check("size \(FG_MAP_SOURCES) to \(maxSources) entries", bpf_map__set_max_entries(sources, maxSources))
            guard policy.maxAutoBans >= 1, let autoBans = bpf_object__find_map_by_name(object, FG_MAP_AUTO_BANS) else {
                throw FloodgateError("the filter's own ban map needs at least 1 entry")
            }
            try check("size \(FG_MAP_AUTO_BANS) to \(policy.maxAutoBans) entries",
                      bpf_map__set_max_entries(autoBans, policy.maxAutoBans))
            let prefixEntries = max(1024, maxSources / 4)
            try check("size \(FG_MAP_PREFIXES) to \(prefixEntries) entries",
                      bpf_map__set_max_entries(prefixes, prefixEntries))
            guard let clockSwitch = bpf_object__find_map_by_name(object, FG_TEST_CLOCK_SWITCH) else {
                throw FloodgateError("the BPF object has no map \(FG_TEST_CLOCK_SWITCH)")
            }
            var on: UInt32 = testClock ? 1 : 0
            try check("set the test clock's switch", bpf_map__set_initial_value(clockSwitch, &on, 4))
            LibbpfLogging.recentWarnings.removeAll()
            let loaded = bpf_object__load(object)
            if loaded < 0 {
                let detail = LibbpfLogging.recentWarnings.suffix(8).joined(separator: " | ")
                throw FloodgateError(
                    "load the XDP program into the kernel", libbpfResult: loaded,
                    hint: loaded == -EPERM
                        ? "Run as root (CAP_BPF and CAP_NET_ADMIN are needed)"
                        : (detail.isEmpty ? nil : "libbpf said: \(detail)"))
            }
            guard let program = bpf_object__find_program_by_name(object, FG_PROG_NAME) else {
                throw FloodgateError("the BPF object has no program \(FG_PROG_NAME)")
            }
            programFD = bpf_program__fd(program)
            guard let inside = bpf_object__find_program_by_name(object, FG_INSIDE_PROG_NAME) else {
                throw FloodgateError("the BPF object has no program \(FG_INSIDE_PROG_NAME)")
            }
            insideProgramFD = bpf_program__fd(inside)
            if testClock {
                guard let time = bpf_object__find_map_by_name(object, FG_TEST_CLOCK_TIME) else {
                    throw FloodgateError("the BPF object has no map \(FG_TEST_CLOCK_TIME)")
                }
                testClockFD = bpf_map__fd(time)
            } else {
                testClockFD = nil
            }
            var descriptors: [String: Int32] = [:]
            for name in FilterMaps.names {
                guard let map = bpf_object__find_map_by_name(object, name) else {
                    throw FloodgateError("the BPF object has no map \(name)")
                }
                descriptors[name] = bpf_map__fd(map)
            }
            maps = try FilterMaps(descriptors: descriptors, owned: false)
            try maps.setSettings(settings)
            for c in TrafficClass.all {
                try maps.setLimit(limits[c] ?? Limit.defaults[c] ?? .unlimited, for: c)
                try maps.setLimit(policy.verifiedLimits[c] ?? Limit.verifiedDefaults[c] ?? .unlimited, for: c,
                                  tier: .verified)
            }
            try maps.setLimit(policy.prefix, .prefix)
            try maps.setLimit(policy.budget, .budget)
            try maps.setLimit(policy.newSources, .newSources)
            try maps.setLimit(policy.widePrefix, .widePrefix)
            try maps.addSignatures(policy.signatures)
            try maps.addCIDRs(policy.deny, to: .deny)
            try maps.addCIDRs(policy.allow, to: .allow, options: policy.allowOptions)
            if !policy.servers.isEmpty { try maps.setServers(policy.servers) }
        } catch {
            bpf_object__close(object)
            image.deallocate()
            throw error
        }
        logger.debug("loaded XDP program", metadata: ["prog_fd": "\(programFD)", "max_sources": "\(maxSources)"])
    }

    deinit {
        bpf_object__close(object)
        image.deallocate()
    }

    /// Sets the test clock (CLOCK_MONOTONIC nanoseconds) that both programs read from now on; only for a program
    /// loaded with `testClock`.
    public func setTestClock(nanoseconds: UInt64) throws {
        guard let fd = testClockFD else { throw FloodgateError("this program was not loaded with a test clock") }
        var key: UInt32 = 0
        var value = nanoseconds
        try check("set the test clock", bpf_map_update_elem(fd, &key, &value, UInt64(BPF_ANY)))
    }

    /// The result of one `BPF_PROG_TEST_RUN`.
    public struct TestRun: Sendable {
        /// The XDP action (`XDP_DROP`, `XDP_PASS`, …).
        public var action: UInt32
        /// Mean nanoseconds per run, as the kernel measured it.
        public var durationNS: UInt32
    }

    /// Runs the program on `packet` without attaching it (`bpf_prog_test_run_opts`), `repeat` times.
    public func testRun(_ packet: [UInt8], repeat count: UInt32 = 1) throws -> TestRun {
        try FloodgateProgram.testRun(programFD: programFD, packet: packet, repeat: count)
    }

    /// Runs any XDP program on `packet` (`bpf_prog_test_run_opts`).
    public static func testRun(programFD: Int32, packet: [UInt8], repeat count: UInt32 = 1) throws -> TestRun {
        var action: UInt32 = 0
        var duration: UInt32 = 0
        var out = [UInt8](repeating: 0, count: max(packet.count, 64) + 256)
        var outSize = UInt32(out.count)
        let result = packet.withUnsafeBytes { data in
            cfloodgate_test_run(programFD, data.baseAddress, UInt32(data.count), &out, &outSize, count, &action,
                                &duration)
        }
        try check("test-run XDP program on a \(packet.count)-byte packet", result)
        return TestRun(action: action, durationNS: duration)
    }
}
