internal import CFloodgate
import Foundation

/// A file descriptor that closes itself. An owned one (a pinned map opened with `bpf_obj_get`) is closed when the
/// last reference to it goes; a borrowed one (a map of a loaded ``BPFObject``, which closes it) never is.
final class FileDescriptor: @unchecked Sendable {
    let raw: Int32
    private let owned: Bool

    init(_ raw: Int32, owned: Bool) {
        self.raw = raw
        self.owned = owned
    }

    deinit {
        if owned && raw >= 0 { close(raw) }
    }
}

/// One BPF map, typed by the shared header's key and value structs (BPF/floodgate.h): every read and write is of
/// those, and errors name the map. Per-CPU maps are read with ``FilterMaps``' per-CPU helpers instead.
struct BPFMap<Key: BitwiseCopyable, Value: BitwiseCopyable> {
    let descriptor: FileDescriptor
    let name: String

    var fd: Int32 { descriptor.raw }

    /// The value at `key`, or nil if there is none.
    func lookup(_ key: Key) throws -> Value? {
        var key = key
        let value = UnsafeMutablePointer<Value>.allocate(capacity: 1)
        defer { value.deallocate() }
        let result = bpf_map_lookup_elem(fd, &key, value)
        if result == -ENOENT { return nil }
        try check("read \(name)[\(key)]", result)
        return value.pointee
    }

    /// The value at `key`, which must be there (an array's slot, say).
    func value(at key: Key) throws -> Value {
        guard let value = try lookup(key) else { throw FloodgateError("read \(name)[\(key)]", errno: ENOENT) }
        return value
    }

    /// Writes `value` at `key`: `BPF_ANY`, `BPF_NOEXIST` (only a new key) or `BPF_EXIST` (only an existing one).
    func update(_ key: Key, _ value: Value, flags: Int = BPF_ANY, what: String? = nil) throws {
        var key = key
        var value = value
        try check(what ?? "write \(name)[\(key)]", bpf_map_update_elem(fd, &key, &value, UInt64(flags)))
    }

    /// Removes `key`; false if it was not there.
    @discardableResult
    func delete(_ key: Key, what: String? = nil) throws -> Bool {
        var key = key
        let result = bpf_map_delete_elem(fd, &key)
        if result == -ENOENT { return false }
        try check(what ?? "remove \(name)[\(key)]", result)
        return true
    }

    /// Every key (`bpf_map_get_next_key`), of a hash or LPM map.
    func keys() throws -> [Key] {
        var keys: [Key] = []
        let current = UnsafeMutablePointer<Key>.allocate(capacity: 1)
        let next = UnsafeMutablePointer<Key>.allocate(capacity: 1)
        defer {
            current.deallocate()
            next.deallocate()
        }
        var first = true
        while true {
            let result = bpf_map_get_next_key(fd, first ? nil : UnsafeRawPointer(current), next)
            if result == -ENOENT { break }
            try check("list the keys of \(name)", result)
            keys.append(next.pointee)
            current.pointee = next.pointee
            first = false
        }
        return keys
    }

    /// Whether the map holds any entry.
    func isEmpty() throws -> Bool {
        let next = UnsafeMutablePointer<Key>.allocate(capacity: 1)
        defer { next.deallocate() }
        let result = bpf_map_get_next_key(fd, nil, next)
        if result == -ENOENT { return true }
        try check("read \(name)", result)
        return false
    }

    /// Every entry, read key by key (an entry removed meanwhile is left out): two system calls an entry. For
    /// a hash map, ``batches(of:_:)`` reads thousands a call.
    func entries() throws -> [(key: Key, value: Value)] {
        try keys().compactMap { key in try lookup(key).map { (key, $0) } }
    }

    /// Calls `body` with each batch of a hash map's entries (`bpf_map_lookup_batch`, `chunk` at a time): keys,
    /// values, and how many of them are set.
    func batches(of chunk: UInt32 = 8192, _ body: ([Key], [Value], Int) throws -> Void) throws {
        var keys = [Key](repeating: BPFMap.zeroed(Key.self), count: Int(chunk))
        var values = [Value](repeating: BPFMap.zeroed(Value.self), count: Int(chunk))
        var inBatch: UInt64 = 0
        var outBatch: UInt64 = 0
        var first = true
        while true {
            var count = chunk
            let result = first
                ? cfloodgate_lookup_batch(fd, nil, &outBatch, &keys, &values, &count)
                : cfloodgate_lookup_batch(fd, &inBatch, &outBatch, &keys, &values, &count)
            if result < 0 && result != -ENOENT { throw FloodgateError("read \(name)", libbpfResult: result) }
            try body(keys, values, Int(count))
            if result == -ENOENT { break }
            inBatch = outBatch
            first = false
        }
    }

    /// Every entry of a hash map, read in batches.
    func batchedEntries() throws -> [(key: Key, value: Value)] {
        var entries: [(key: Key, value: Value)] = []
        try batches { keys, values, count in
            for i in 0..<count { entries.append((keys[i], values[i])) }
        }
        return entries
    }

    /// A value of `T` with every byte zero (the header's structs are plain data).
    static func zeroed<T>(_: T.Type) -> T {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: MemoryLayout<T>.size, alignment: MemoryLayout<T>.alignment)
        defer { raw.deallocate() }
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: MemoryLayout<T>.size)
        return raw.load(as: T.self)
    }
}

/// Every possible CPU's value at `key` in the per-CPU map `fd` (values are 8-byte aligned, one per possible CPU),
/// each holding `count` consecutive `Value`s: the value is `valueSize` bytes (by default just those `Value`s), and
/// they start `offset` bytes into it. Returns them CPU after CPU.
func readEveryCPU<Value>(
    _ fd: Int32, key: UInt32, count: Int = 1, as: Value.Type, what: String, valueSize: Int? = nil, offset: Int = 0
) throws -> [Value] {
    let cpus = try possibleCPUs()
    let size = valueSize ?? (MemoryLayout<Value>.stride * (count - 1) + MemoryLayout<Value>.size)
    precondition(offset + MemoryLayout<Value>.stride * (count - 1) + MemoryLayout<Value>.size <= size)
    let stride = (size + 7) & ~7
    var buffer = [UInt8](repeating: 0, count: stride * cpus)
    var key = key
    try check("read \(what)[\(key)]", bpf_map_lookup_elem(fd, &key, &buffer))
    return buffer.withUnsafeBytes { raw in
        (0..<cpus).flatMap { cpu in
            (0..<count).map {
                raw.loadUnaligned(fromByteOffset: cpu * stride + offset + $0 * MemoryLayout<Value>.stride, as: Value.self)
            }
        }
    }
}

/// How many CPUs the kernel may have: a per-CPU map's value is that many values.
func possibleCPUs() throws -> Int {
    let cpus = Int(libbpf_num_possible_cpus())
    guard cpus > 0 else { throw FloodgateError("count possible CPUs", libbpfResult: Int32(cpus)) }
    return cpus
}
