internal import CFloodgate
import Foundation

/// `fg_known`, mapped into memory: which addresses may have an entry in `fg_sources` or `fg_trusted`, so that XDP
/// refuses a random-source flood's new addresses under the new-source budget without a lookup that misses (the
/// layout and its rules are in BPF/floodgate.h). XDP sets an address's bit in both halves after it makes an entry;
/// ``rebuild()`` clears the bits of entries since evicted. A bit must never be clear for an address that has an
/// entry: such a source would be taken for new, and refused while the budget is empty.
public final class KnownSources: @unchecked Sendable {
    private let base: UnsafeMutablePointer<UInt64>
    private let length: Int
    private let maps: FilterMaps

    /// Maps `maps`' `fg_known`.
    public init(_ maps: FilterMaps) throws {
        length = Int(FG_KNOWN_ENTRIES) * MemoryLayout<UInt64>.size
        let address = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED, maps.fd(FG_MAP_KNOWN), 0)
        guard let address, address != MAP_FAILED else {
            throw FloodgateError("map \(FG_MAP_KNOWN) into memory", errno: errno)
        }
        base = address.bindMemory(to: UInt64.self, capacity: Int(FG_KNOWN_ENTRIES))
        self.maps = maps
    }

    deinit { munmap(base, length) }

    /// Gives new maps their hash seed (random, never 0), before any packet can set a bit under another one.
    static func seed(_ maps: FilterMaps) throws {
        let known: BPFMap<UInt32, UInt64> = maps.map(FG_MAP_KNOWN)
        var seed: UInt64 = 0
        while seed == 0 { seed = UInt64.random(in: .min ... .max) }
        try known.update(UInt32(FG_KNOWN_SEED), seed, what: "seed \(FG_MAP_KNOWN)")
    }

    private var seed: UInt64 { cfloodgate_load64(base + Int(FG_KNOWN_SEED)) }

    /// The half XDP reads (0 or 1).
    public var activeHalf: Int { Int(cfloodgate_load64(base + Int(FG_KNOWN_ACTIVE)) & 1) }

    private func half(_ index: Int) -> UnsafeMutablePointer<UInt64> {
        base + Int(FG_KNOWN_HEADER) + index * Int(FG_KNOWN_WORDS)
    }

    /// Whether the half XDP reads has `address`'s bit (false: XDP takes it for an address without state).
    public func mayHave(_ address: SourceAddress) -> Bool {
        var raw = address.raw
        let bit = Int(fg_known_bit(&raw, seed))
        return cfloodgate_load64(half(activeHalf) + bit >> 6) >> UInt64(bit & 63) & 1 == 1
    }

    /// How many bits of the half XDP reads are set, of how many.
    public func occupancy() -> (set: Int, of: Int) {
        let words = half(activeHalf)
        var set = 0
        for i in 0..<Int(FG_KNOWN_WORDS) { set += cfloodgate_load64(words + i).nonzeroBitCount }
        return (set, Int(FG_KNOWN_WORDS) * 64)
    }

    /// Rebuilds the half XDP does not read from the maps' entries and makes it the one XDP reads: zeroes it, then
    /// sets the bit of every address in `fg_sources` and `fg_trusted`. XDP sets bits in both halves all along, so
    /// an entry made during the walk keeps its bit (made before its word was zeroed, it is in the walk; after, its
    /// bit lands on the zeroed word). Returns how many `fg_sources` entries the walk read, for the agent's
    /// occupancy gauge. One rebuild at a time per filter (the agent holds the pin root's lock): a second one
    /// would zero the half the first has just made the one XDP reads.
    @discardableResult
    public func rebuild() throws -> Int {
        let target = 1 - activeHalf
        let words = half(target)
        for i in 0..<Int(FG_KNOWN_WORDS) { cfloodgate_store64(words + i, 0) }
        cfloodgate_fence()
        let seed = self.seed
        func mark(_ address: fg_addr) {
            var address = address
            let bit = Int(fg_known_bit(&address, seed))
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
        cfloodgate_store64(base + Int(FG_KNOWN_ACTIVE), UInt64(target))
        return sources
    }
}
