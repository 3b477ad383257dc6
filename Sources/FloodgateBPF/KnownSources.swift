internal import CFloodgate
import Foundation

/// `fg_known`, mapped into memory: which addresses may have an entry in `fg_sources` or `fg_trusted`, so that XDP
/// refuses a random-source flood's new addresses under the new-source budget without a lookup that misses (the
/// layout and its rules are in BPF/floodgate.h). XDP sets an address's bit in the half it reads after it makes an
/// entry, and in both during a rebuild;
/// ``rebuild()`` clears the bits of entries since evicted. A bit must never be clear for an address that has an
/// entry: such a source would be taken for new, and refused while the budget is empty.
public final class KnownSources: @unchecked Sendable {
    private let base: UnsafeMutablePointer<UInt64>
    private let length: Int
    private let maps: FilterMaps
    /// The hash's seed, as XDP reads it: its low byte is the log of a half's bits. Written once, when the maps are
    /// made (``seed(_:)``), so it is read once here.
    private let hashSeed: UInt64
    /// 64-bit words in a half.
    private let words: Int

    /// Maps `maps`' `fg_known`, which ``seed(_:)`` has seeded.
    public init(_ maps: FilterMaps) throws {
        let entries = Int(try maps.maxEntries(FG_MAP_KNOWN))
        length = entries * MemoryLayout<UInt64>.size
        let address = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED, maps.fd(FG_MAP_KNOWN), 0)
        guard let address, address != MAP_FAILED else {
            throw FloodgateError("map \(FG_MAP_KNOWN) into memory", errno: errno)
        }
        base = address.bindMemory(to: UInt64.self, capacity: entries)
        hashSeed = cfloodgate_load64(base + Int(FG_KNOWN_SEED))
        let log = fg_known_log(hashSeed)
        let active = cfloodgate_load64(base + Int(FG_KNOWN_ACTIVE))
        guard KnownSources.logs.contains(log), fg_known_entries(log) == entries,
              [fg_known_half(hashSeed, 0), fg_known_half(hashSeed, 1)].contains(UInt32(truncatingIfNeeded: active))
        else {
            munmap(base, length)
            throw FloodgateError(
                "map \(FG_MAP_KNOWN) is not seeded for its \(entries) entries (its seed's log: \(log), half read from \(active))")
        }
        words = 1 << (Int(log) - 6)
        self.maps = maps
    }

    deinit { munmap(base, length) }

    /// The log of a half's bits for a source map of `sources` entries: the least power of two that gives it four
    /// bits a source, within `FG_KNOWN_BITS_LOG_MIN...FG_KNOWN_BITS_LOG_MAX` (BPF/floodgate.h says why).
    static func bitsLog(forSources sources: UInt32) -> UInt32 {
        logs.first { UInt64(1) << $0 >= 4 * UInt64(sources) } ?? logs.upperBound
    }

    /// The logs of a half's bits a map may have.
    private static let logs = UInt32(FG_KNOWN_BITS_LOG_MIN)...UInt32(FG_KNOWN_BITS_LOG_MAX)

    /// Makes half 0 the one XDP reads and gives new maps their hash seed (random, with the log of a half's bits,
    /// from the map's size, in its low byte), before any packet can set a bit under another seed.
    static func seed(_ maps: FilterMaps) throws {
        let entries = try maps.maxEntries(FG_MAP_KNOWN)
        guard let log = logs.first(where: { fg_known_entries($0) == entries })
        else { throw FloodgateError("map \(FG_MAP_KNOWN) has \(entries) entries: not two halves of a known size") }
        let known: BPFMap<UInt32, UInt64> = maps.map(FG_MAP_KNOWN)
        let seed = UInt64.random(in: .min ... .max) & ~0xff | UInt64(log)
        try known.update(UInt32(FG_KNOWN_ACTIVE), UInt64(fg_known_half(seed, 0)), what: "the half \(FG_MAP_KNOWN) reads")
        try known.update(UInt32(FG_KNOWN_SEED), seed, what: "seed \(FG_MAP_KNOWN)")
    }

    /// The half XDP reads (0 or 1; its word names one of them, which `init` checked and only ``rebuild()`` changes).
    public var activeHalf: Int {
        cfloodgate_load64(base + Int(FG_KNOWN_ACTIVE)) == UInt64(fg_known_half(hashSeed, 1)) ? 1 : 0
    }

    /// Bits in a half.
    public var bits: Int { words * 64 }

    private func half(_ index: Int) -> UnsafeMutablePointer<UInt64> {
        base + Int(fg_known_half(hashSeed, UInt32(index)))
    }

    /// Whether the half XDP reads has `address`'s bit (false: XDP takes it for an address without state).
    public func mayHave(_ address: SourceAddress) -> Bool { has(address, inHalf: activeHalf) }

    /// Whether half `index` (0 or 1) has `address`'s bit.
    func has(_ address: SourceAddress, inHalf index: Int) -> Bool {
        var raw = address.raw
        let bit = Int(fg_known_bit(&raw, hashSeed))
        return cfloodgate_load64(half(index) + bit >> 6) >> UInt64(bit & 63) & 1 == 1
    }

    /// How many bits of the half XDP reads are set, of how many.
    public func occupancy() -> (set: Int, of: Int) {
        let words = half(activeHalf)
        var set = 0
        for i in 0..<self.words { set += cfloodgate_load64(words + i).nonzeroBitCount }
        return (set, bits)
    }

    /// Which half XDP reads, and how many of its bits are set. Until the next ``rebuild()`` XDP only sets bits in
    /// that half, so the same mark later means no entry was made since whose bit was clear: the entries a rebuild
    /// must not miss. What a rebuild would still change then: the count of entries whose bit was already set (a
    /// tracked source's entry for another class, most often), and the stale bits of entries such entries evicted.
    public struct Mark: Equatable, Sendable {
        public let half: Int
        public let set: Int
    }

    /// The half XDP reads, as it is now.
    public var mark: Mark { Mark(half: activeHalf, set: occupancy().set) }

    /// The agent's minute: a ``rebuild()``, unless the mark is still the one the last rebuild left (`last`, with
    /// when it was made) and that rebuild is under `maxAge` nanoseconds before `now`. Returns the entries the walk
    /// read and the mark it left, or nil if it was skipped. A skip clears no bit, so it can never make a source
    /// with state look new.
    public func rebuild(unlessUnchangedSince last: (mark: Mark, at: UInt64)?, now: UInt64,
                        maxAge: UInt64 = 600_000_000_000) throws -> (sources: Int, mark: Mark)? {
        if let last, now >= last.at, now - last.at < maxAge, mark == last.mark { return nil }
        let sources = try rebuild()
        return (sources, mark)
    }

    /// Rebuilds the half XDP does not read from the maps' entries and makes it the one XDP reads: zeroes it, then
    /// sets the bit of every address in `fg_sources` and `fg_trusted`. XDP sets an entry's bit in the half it
    /// reads, and in both while the word `FG_KNOWN_REBUILDING` is set, which this sets first and clears last, so
    /// an entry made during the walk keeps its bit (made before its word was zeroed, it is in the walk; after, its
    /// bit lands on the zeroed word), and one made just before the word was set is in the walk (lib/known.h says
    /// why). If the walk fails the word stays set, and XDP writes both halves until a rebuild ends. Returns how
    /// many `fg_sources` entries the walk read, for the agent's occupancy gauge. One rebuild at a time per filter
    /// (the agent holds the pin root's lock): a second one would zero the half the first has just made the one
    /// XDP reads.
    @discardableResult
    public func rebuild() throws -> Int {
        let target = 1 - activeHalf
        let words = half(target)
        cfloodgate_store64(base + Int(FG_KNOWN_REBUILDING), 1)
        cfloodgate_fence()
        for i in 0..<self.words { cfloodgate_store64(words + i, 0) }
        cfloodgate_fence()
        func mark(_ address: fg_addr) {
            var address = address
            let bit = Int(fg_known_bit(&address, hashSeed))
            cfloodgate_or64(words + bit >> 6, 1 << UInt64(bit & 63))
        }
        var sources = 0
        try maps.forEachSourceBatch { keys, _, count in
            sources += count
            for i in 0..<count { mark(keys[i].addr) }
        }
        try maps.trustedMap.batches { keys, _, count in
            for i in 0..<count { mark(keys[i]) }
        }
        cfloodgate_fence()
        cfloodgate_store64(base + Int(FG_KNOWN_ACTIVE), UInt64(fg_known_half(hashSeed, UInt32(target))))
        cfloodgate_fence()
        cfloodgate_store64(base + Int(FG_KNOWN_REBUILDING), 0)
        return sources
    }
}
