internal import CFloodgate
import Foundation

/// A BPF object from an image `swift build` embedded: opened (`bpf_object__open_mem`), configured before load
/// (map sizes, read-only switches), loaded, and asked for its programs' and maps' descriptors. The one lifecycle
/// of every program Floodgate loads, the filter's and the lab's. Owns the object: closing it (deinit) releases
/// the programs and maps unless they were attached through a pinned link or pinned themselves.
public final class BPFObject: @unchecked Sendable {
    let object: OpaquePointer
    private let image: UnsafeMutableRawBufferPointer

    /// The image's bytes, checked against the size recorded beside them.
    public static func bytes(of embedded: (size: Int, base64: String)) -> [UInt8] {
        guard let data = Data(base64Encoded: embedded.base64), data.count == embedded.size else {
            fatalError("an embedded BPF object is corrupt; rebuild floodgate")
        }
        return [UInt8](data)
    }

    /// Opens and loads `embedded` (`what` names it in errors); `configure` sees the opened object before load.
    public convenience init(
        _ embedded: (size: Int, base64: String), name: String? = nil, what: String,
        configure: (OpaquePointer) throws -> Void = { _ in }
    ) throws {
        try self.init(bytes: BPFObject.bytes(of: embedded), name: name, what: what, configure: configure)
    }

    /// Opens and loads the object `bytes` (an ELF image), as ``init(_:name:what:configure:)`` does.
    public init(
        bytes: [UInt8], name: String? = nil, what: String,
        configure: (OpaquePointer) throws -> Void = { _ in }
    ) throws {
        _ = LibbpfLogging.install
        // libbpf reads the ELF in place until load, so the bytes live as long as the object.
        let image = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 16)
        image.copyBytes(from: bytes)
        var options = bpf_object_open_opts()
        options.sz = MemoryLayout<bpf_object_open_opts>.size
        let opened = (name ?? "").withCString { cName -> OpaquePointer? in
            if name != nil { options.object_name = cName }
            return bpf_object__open_mem(image.baseAddress, image.count, &options)
        }
        guard let object = opened else {
            let code = errno
            image.deallocate()
            throw FloodgateError("open the \(what)", errno: code)
        }
        // Loaded before self owns the object: an initializer that throws once every stored property is set runs
        // deinit, which would close the object and free the image a second time.
        do {
            try configure(object)
            LibbpfLogging.recentWarnings.removeAll()
            let loaded = bpf_object__load(object)
            if loaded < 0 {
                let detail = LibbpfLogging.recentWarnings.suffix(8).joined(separator: " | ")
                throw FloodgateError(
                    "load the \(what) into the kernel", libbpfResult: loaded,
                    hint: loaded == -EPERM
                        ? "Run as root (CAP_BPF and CAP_NET_ADMIN are needed)"
                        : (detail.isEmpty ? nil : "libbpf said: \(detail)"))
            }
        } catch {
            bpf_object__close(object)
            image.deallocate()
            throw error
        }
        self.object = object
        self.image = image
    }

    deinit {
        bpf_object__close(object)
        image.deallocate()
    }

    /// The descriptor of the loaded program `name`.
    public func programFD(_ name: String) throws -> Int32 {
        guard let program = bpf_object__find_program_by_name(object, name) else {
            throw FloodgateError("the BPF object has no program \(name)")
        }
        return bpf_program__fd(program)
    }

    /// Sets the map `name` of `object`, opened and not yet loaded (in a `configure` of the initializers above), to
    /// `entries` entries.
    public static func resize(_ object: OpaquePointer, map name: String, to entries: UInt32) throws {
        guard let map = bpf_object__find_map_by_name(object, name) else {
            throw FloodgateError("the BPF object has no map \(name)")
        }
        try check("size \(name) to \(entries) entries", bpf_map__set_max_entries(map, entries))
    }

    /// The descriptor of the loaded map `name`.
    public func mapFD(_ name: String) throws -> Int32 {
        guard let map = bpf_object__find_map_by_name(object, name) else {
            throw FloodgateError("the BPF object has no map \(name)")
        }
        return bpf_map__fd(map)
    }
}
