internal import CFloodgate
import Foundation
import Logging

/// The XDP programs and their maps, loaded into the kernel from the object embedded at build time (``BPFObject``:
/// `bpf_object__open_mem`, `bpf_map__set_max_entries`, `bpf_object__load`). Closing it (deinit) releases the
/// programs and maps unless they were attached through a pinned link or pinned themselves.
public final class FloodgateProgram: @unchecked Sendable {
    public let programFD: Int32
    /// `floodgate_inside`, for the interface facing the SIP server (BPF/lib/trust.h); it shares the maps.
    public let insideProgramFD: Int32
    public let maps: FilterMaps
    private let object: BPFObject
    /// The map holding the test clock's time, if the program was loaded with one.
    private let testClockFD: Int32?

    /// The compiled filter, as `swift build` embedded it.
    public static var objectBytes: [UInt8] { BPFObject.bytes(of: EmbeddedBPFObject.filter) }

    /// Loads the program with a per-source map of `maxSources` entries and room for `maxAutoBans` of its own bans
    /// (an LRU); `configure` writes the maps (FloodgateCore's `FilterPolicy` does) before anything can attach the
    /// program. With `testClock`, the program reads the time that ``setTestClock(nanoseconds:)`` sets instead of
    /// the kernel's clocks (BPF/lib/clock.h): for tests that compare it with a model over time; never for a filter
    /// in service. `objectBytes`, if given, is loaded instead of the embedded object: another build's filter, for a
    /// benchmark that compares two builds in one run (its maps must have this build's layout).
    public init(
        maxSources: UInt32 = UInt32(FilterCapacity.defaultSources),
        maxAutoBans: UInt32 = UInt32(FilterCapacity.defaultAutoBans),
        testClock: Bool = false,
        objectBytes: [UInt8]? = nil,
        logger: Logger = Logger(label: "floodgate"),
        configure: (FilterMaps) throws -> Void
    ) throws {
        guard maxSources >= 1 else { throw FloodgateError("the per-source map needs at least 1 entry") }
        guard maxAutoBans >= 1 else { throw FloodgateError("the filter's own ban map needs at least 1 entry") }

        let bytes = objectBytes ?? BPFObject.bytes(of: EmbeddedBPFObject.filter)
        object = try BPFObject(bytes: bytes, name: "floodgate", what: "XDP program") { object in
            func resize(_ name: String, to entries: UInt32) throws {
                try BPFObject.resize(object, map: name, to: entries)
            }
            // Another build's object is written through this build's layouts: each map must be as this build
            // declares it, or nothing is loaded.
            if objectBytes != nil {
                for (name, layout) in try MapLayout.embedded() {
                    guard let map = bpf_object__find_map_by_name(object, name) else {
                        throw FloodgateError("the other BPF object has no map \(name)")
                    }
                    let found = MapLayout(
                        type: bpf_map__type(map).rawValue, keySize: bpf_map__key_size(map),
                        valueSize: bpf_map__value_size(map))
                    guard found == layout else {
                        throw FloodgateError("the other BPF object's map \(name) is \(found); this build's is \(layout)")
                    }
                }
            }
            try resize(FG_MAP_SOURCES, to: maxSources)
            try resize(FG_MAP_AUTO_BANS, to: maxAutoBans)
            try resize(FG_MAP_PREFIXES, to: max(1024, maxSources / 4))
            try resize(FG_MAP_KNOWN, to: fg_known_entries(KnownSources.bitsLog(forSources: maxSources)))
            guard let clockSwitch = bpf_object__find_map_by_name(object, FG_TEST_CLOCK_SWITCH) else {
                throw FloodgateError("the BPF object has no map \(FG_TEST_CLOCK_SWITCH)")
            }
            var on: UInt32 = testClock ? 1 : 0
            try check("set the test clock's switch", bpf_map__set_initial_value(clockSwitch, &on, 4))
        }
        programFD = try object.programFD(FG_PROG_NAME)
        insideProgramFD = try object.programFD(FG_INSIDE_PROG_NAME)
        testClockFD = testClock ? try object.mapFD(FG_TEST_CLOCK_TIME) : nil
        var descriptors: [String: Int32] = [:]
        for name in FilterMaps.names { descriptors[name] = try object.mapFD(name) }
        maps = try FilterMaps(borrowing: descriptors, from: object)
        try KnownSources.seed(maps)
        try configure(maps)
        logger.debug("loaded XDP program", metadata: ["prog_fd": "\(programFD)", "max_sources": "\(maxSources)"])
    }

    /// Sets the test clock (CLOCK_MONOTONIC nanoseconds) that both programs read from now on; only for a program
    /// loaded with `testClock`. The coarse clock reads `coarseNanoseconds` (at most `nanoseconds`: the kernel's lags
    /// the precise one by less than a jiffy), by default the same time.
    public func setTestClock(nanoseconds: UInt64, coarseNanoseconds: UInt64? = nil) throws {
        guard let fd = testClockFD else { throw FloodgateError("this program was not loaded with a test clock") }
        let coarse = coarseNanoseconds ?? nanoseconds
        guard coarse <= nanoseconds else {
            throw FloodgateError("the coarse clock (\(coarse) ns) cannot be ahead of the precise one (\(nanoseconds) ns)")
        }
        let clock = BPFMap<UInt32, fg_test_time>(descriptor: FileDescriptor(fd, owned: false), name: FG_TEST_CLOCK_TIME)
        try clock.update(0, fg_test_time(now_ns: nanoseconds, coarse_ns: coarse), what: "set the test clock")
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
