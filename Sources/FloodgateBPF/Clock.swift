internal import CFloodgate
import Foundation

/// CLOCK_MONOTONIC in nanoseconds: the clock bpf_ktime_get_ns reads.
public func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// What the buckets can admit beyond their configuration, stated for operators (`floodgate limit list`).
public let overAdmissionStatement = """
    Buckets are shared by all CPUs (one GCRA state per source and class, committed with compare-and-swap): no \
    update is lost and no CPU admits on a token another CPU took. Worst case: 0 extra packets while a source is \
    over its limit; at most 1 packet above the burst per bucket each time \(FG_CAS_RETRIES) successive \
    compare-and-swaps lose to other CPUs (then an exact atomic add is used).
    """
