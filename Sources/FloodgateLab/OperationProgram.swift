import FloodgateCore
import Foundation

/// A program of a few instructions that does one of the filter's operations once, then returns `XDP_DROP`: the
/// price of that operation on this machine, measured beside the trivial program as the filter's paths are. It
/// prices what a path must do (a clock read, a lookup that finds its entry, one that does not), so a path's
/// figure can be read against the sum of its operations.
public final class OperationProgram: @unchecked Sendable {
    public let programFD: Int32

    /// What the program does before `XDP_DROP`.
    public enum Operation: Sendable {
        /// `bpf_ktime_get_ns`, the precise clock: what a bucket of little tolerance is judged at.
        case clockRead
        /// `bpf_ktime_get_coarse_ns`, the coarse clock: the packet's time, and the time of a bucket that holds 16
        /// jiffies of tokens or more (`FG_COARSE_JIFFIES`).
        case coarseClockRead
        /// `bpf_map_lookup_elem` on the map `mapFD` with `key` (its key size, a multiple of 4 bytes, at most 64).
        case lookup(mapFD: Int32, key: [UInt8])
        /// A call of a BPF function (a subprogram that returns at once) and its return: what a global or
        /// `__noinline` function of the filter costs each time it is called, besides its work.
        case functionCall
    }

    public init(_ operation: Operation, name: String) throws {
        // struct bpf_insn, little-endian: opcode, dst/src registers, offset, immediate.
        func insn(_ op: UInt64, dst: UInt64 = 0, src: UInt64 = 0, off: Int16 = 0, imm: Int32 = 0) -> UInt64 {
            op | (dst | src << 4) << 8 | UInt64(UInt16(bitPattern: off)) << 16 | UInt64(UInt32(bitPattern: imm)) << 32
        }
        var instructions: [UInt64] = []
        switch operation {
        case .clockRead:
            instructions.append(insn(0x85, imm: 5))  // call bpf_ktime_get_ns
        case .coarseClockRead:
            instructions.append(insn(0x85, imm: 160))  // call bpf_ktime_get_coarse_ns
        case .functionCall:
            // call pc+2 (BPF_PSEUDO_CALL): past the two instructions every program ends with (r0 = XDP_DROP;
            // exit) to the subprogram after them.
            instructions.append(insn(0x85, src: 1, imm: 2))
        case .lookup(let mapFD, let key):
            guard !key.isEmpty, key.count % 4 == 0, key.count <= 64 else {
                throw FloodgateError("an operation program's key must be 4 to 64 bytes, in whole words")
            }
            let base = -Int16(key.count)
            for word in 0..<key.count / 4 {
                // *(u32 *)(r10 + base + 4 * word) = the key's bytes, as they lie in memory
                let bytes = key[(word * 4)..<(word * 4 + 4)]
                let value = bytes.reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
                instructions.append(
                    insn(0x62, dst: 10, off: base + Int16(word * 4), imm: Int32(bitPattern: value)))
            }
            instructions += [
                insn(0x18, dst: 1, src: 1, imm: mapFD), 0,  // r1 = the map (BPF_PSEUDO_MAP_FD)
                insn(0xBF, dst: 2, src: 10),  // r2 = r10
                insn(0x07, dst: 2, imm: Int32(base)),  // r2 += base: the key
                insn(0x85, imm: 1),  // call bpf_map_lookup_elem
            ]
        }
        instructions += [
            insn(0xB7, imm: 1),  // r0 = XDP_DROP
            insn(0x95),  // exit
        ]
        if case .functionCall = operation {
            instructions += [insn(0xB7), insn(0x95)]  // the subprogram: r0 = 0; exit
        }
        programFD = try KernelCalls.loadXDP(instructions: instructions, name: name)
    }

    deinit { close(programFD) }
}
