internal import CFloodgate
import Foundation
import Logging

extension Array where Element == AttachedFilter {
    /// One filter per program: uplinks that share a filter (``PinRoot/attachSharing(_:with:mode:)``) share its
    /// maps, so a change, a count or a list of bans is made once, under the first one's name.
    func onePerProgram() -> [AttachedFilter] {
        var seen = Set<UInt32>()
        return filter { seen.insert($0.programID).inserted }
    }
}

/// How the XDP program is attached.
public enum AttachMode: String, Sendable, CaseIterable, CustomStringConvertible {
    case native, generic, auto
    public var description: String { rawValue }
}

/// An attached filter, found through its pins.
public struct AttachedFilter: Sendable {
    public var interfaceName: String
    public var directory: String
    public var programID: UInt32
    /// The interface index the link is bound to (0 when the interface is gone).
    public var linkIfindex: UInt32
    /// "native", "generic", "detached: interface gone", or nil when the interface is not in this network namespace.
    public var mode: String?
}

public enum AttachOutcome: Sendable {
    case attached(AttachedFilter)
    case alreadyAttached(AttachedFilter)
}

/// The directory under which each attached interface keeps its pinned link and maps:
/// `<root>/<interface>/link`, `<root>/<interface>/fg_settings`, … Pinned objects outlive this process on purpose:
/// that is what keeps the filter running after `floodgate attach` exits.
public struct PinRoot: Sendable {
    public static let defaultPath = "/sys/fs/bpf/floodgate"
    static let bpffsMagic: Int = 0xCAFE_4A11

    public let path: String
    public let logger: Logger

    public init(_ path: String = PinRoot.defaultPath, logger: Logger = Logger(label: "floodgate")) {
        self.path = path.count > 1 && path.hasSuffix("/") ? String(path.dropLast()) : path
        self.logger = logger
    }

    public func directory(for interfaceName: String) -> String { "\(path)/\(interfaceName)" }

    // MARK: Attach

    /// Loads the program, lets `configure` write its maps, attaches it to `interface` in `mode` with a bpf_link
    /// (`bpf_link_create`), and pins the link and maps. If pinning fails, the link is closed (which detaches)
    /// and the pins made so far are removed: nothing is left half attached.
    public func attach(
        _ interface: Interface, mode: AttachMode, maxSources: UInt32 = UInt32(FilterCapacity.defaultSources),
        maxAutoBans: UInt32 = UInt32(FilterCapacity.defaultAutoBans), configure: (FilterMaps) throws -> Void
    ) throws -> AttachOutcome {
        try ensureBPFFS()
        let lock = try Lock(path: path)
        defer { lock.release() }

        let dir = directory(for: interface.name)
        if let existing = try? inspect(interfaceName: interface.name) {
            if existing.linkIfindex == UInt32(interface.index) {
                // Only a filter of this build's layouts is one to keep: another is refused, with how to replace it.
                _ = try FilterMaps.openPinned(in: dir)
                return .alreadyAttached(existing)
            }
            logger.notice("removing stale pins of a filter whose interface is gone", metadata: ["dir": "\(dir)"])
            try removePins(in: dir)
        } else if FileManager.default.fileExists(atPath: dir) {
            try removePins(in: dir)
        }

        try refuseForeignProgram(on: interface)

        let program = try FloodgateProgram(maxSources: maxSources, maxAutoBans: maxAutoBans, logger: logger,
                                           configure: configure)
        let (linkFD, usedMode) = try link(program, to: interface, mode: mode)
        defer { close(linkFD) }

        return try pin(interface, link: linkFD, mode: usedMode) { name in
            (name == FG_PIN_INSIDE_PROG ? program.insideProgramFD : program.maps.fd(name), false)
        }
    }

    /// Attaches the filter already on `first` to `interface` too (another uplink): the same program and maps, so
    /// that bans, lists, buckets and counters are one for both; a link of its own, pinned with the maps again
    /// under `interface`'s folder (every command that names `interface` finds the shared filter there). A filter
    /// of its own already on `interface` is refused: detach it first.
    public func attachSharing(_ interface: Interface, with first: String, mode: AttachMode) throws -> AttachOutcome {
        try ensureBPFFS()
        let lock = try Lock(path: path)
        defer { lock.release() }
        let shared = try inspect(interfaceName: first)
        let dir = directory(for: interface.name)
        if let existing = try? inspect(interfaceName: interface.name), existing.linkIfindex == UInt32(interface.index) {
            guard existing.programID == shared.programID else {
                throw FloodgateError(
                    "\(interface.name) has a Floodgate filter of its own (program \(existing.programID)), not \(first)'s",
                    hint: "Detach it (floodgate detach \(interface.name)) so that it can share \(first)'s")
            }
            return .alreadyAttached(existing)
        }
        if FileManager.default.fileExists(atPath: dir) { try removePins(in: dir) }
        try refuseForeignProgram(on: interface)
        let program = try check("open the program of \(first)'s filter (id \(shared.programID))",
                                bpf_prog_get_fd_by_id(shared.programID))
        defer { close(program) }
        let (linkFD, usedMode) = try link(programFD: program, to: interface, mode: mode)
        defer { close(linkFD) }
        let firstDir = directory(for: first)
        return try pin(interface, link: linkFD, mode: usedMode) { name in
            (try check("open \(firstDir)/\(name)", bpf_obj_get("\(firstDir)/\(name)")), true)
        }
    }

    /// Refuses an interface that has an XDP program Floodgate did not attach.
    private func refuseForeignProgram(on interface: Interface) throws {
        var queriedProgram: UInt32 = 0
        var queriedMode: UInt8 = 0
        if cfloodgate_xdp_query(interface.index, &queriedProgram, &queriedMode) == 0, queriedProgram != 0 {
            throw FloodgateError(
                "\(interface.name) already has an XDP program (id \(queriedProgram)) that Floodgate did not attach",
                hint: "Remove it first (ip link set dev \(interface.name) xdp off) or pick another interface")
        }
    }

    /// Pins, under `interface`'s folder, every map and the inside program (`object` gives each one's descriptor,
    /// and whether to close it once pinned), then the XDP link; if one fails, the pins made so far are removed.
    private func pin(_ interface: Interface, link linkFD: Int32, mode usedMode: String,
                     _ object: (String) throws -> (fd: Int32, close: Bool)) throws -> AttachOutcome {
        let dir = directory(for: interface.name)
        do {
            try check("create pin directory \(dir)", mkdir(dir, 0o700) == 0 ? 0 : -errno)
            for name in FilterMaps.names + [FG_PIN_INSIDE_PROG] {
                let (fd, owned) = try object(name)
                defer { if owned { close(fd) } }
                try check("pin \(name) at \(dir)/\(name)", bpf_obj_pin(fd, "\(dir)/\(name)"))
            }
            try check("pin XDP link at \(dir)/\(FG_PIN_LINK)", bpf_obj_pin(linkFD, "\(dir)/\(FG_PIN_LINK)"))
        } catch {
            try? removePins(in: dir)
            throw error
        }
        var filter = try inspect(interfaceName: interface.name)
        filter.mode = filter.mode ?? usedMode
        return .attached(filter)
    }

    /// Attaches the filter's inside program (BPF/lib/trust.h) to `inside`, the interface facing the SIP server,
    /// and pins its link next to the filter's. Nothing happens if it is already there; a link to another
    /// interface is replaced.
    public func attachInside(externalName: String, inside: Interface, mode: AttachMode) throws {
        try locked {
            let dir = directory(for: externalName)
            guard FileManager.default.fileExists(atPath: "\(dir)/\(FG_PIN_LINK)") else { throw notAttached(externalName) }
            let pinned = "\(dir)/\(FG_PIN_INSIDE_LINK)"
            if FileManager.default.fileExists(atPath: pinned) {
                let fd = bpf_obj_get(pinned)
                if fd >= 0 {
                    defer { close(fd) }
                    var info = bpf_link_info()
                    var size = UInt32(MemoryLayout<bpf_link_info>.size)
                    if bpf_obj_get_info_by_fd(fd, &info, &size) == 0, info.xdp.ifindex == UInt32(inside.index) { return }
                }
                unlink(pinned)
            }
            let programPath = "\(dir)/\(FG_PIN_INSIDE_PROG)"
            let program = try check(
                "open the pinned inside program \(programPath)",
                hint: "A filter attached by an older floodgate has none: detach and attach it again", bpf_obj_get(programPath))
            defer { close(program) }
            var queried: UInt32 = 0
            var queriedMode: UInt8 = 0
            if cfloodgate_xdp_query(inside.index, &queried, &queriedMode) == 0, queried != 0 {
                // Attached already, through another uplink's folder of the same filter (the uplinks reordered).
                var info = bpf_prog_info()
                var size = UInt32(MemoryLayout<bpf_prog_info>.size)
                if bpf_obj_get_info_by_fd(program, &info, &size) == 0, info.id == queried { return }
                throw FloodgateError("\(inside.name) already has an XDP program (id \(queried)) that Floodgate did not attach")
            }
            let (fd, _) = try link(programFD: program, to: inside, mode: mode)
            defer { close(fd) }
            try check("pin the inside link at \(pinned)", bpf_obj_pin(fd, pinned))
        }
    }

    private func link(_ program: FloodgateProgram, to interface: Interface, mode: AttachMode) throws
        -> (fd: Int32, mode: String)
    {
        try link(programFD: program.programFD, to: interface, mode: mode)
    }

    private func link(programFD: Int32, to interface: Interface, mode: AttachMode) throws -> (fd: Int32, mode: String) {
        func create(_ flags: UInt32, _ label: String) -> Int32 {
            cfloodgate_xdp_link(programFD, interface.index, flags)
        }
        switch mode {
        case .native:
            let fd = create(UInt32(XDP_FLAGS_DRV_MODE), "native")
            try check(
                "attach XDP to \(interface.name) in native mode",
                hint: fd == -EOPNOTSUPP || fd == -EINVAL
                    ? "The driver may lack native XDP; try --mode generic or --mode auto" : nil, fd)
            return (fd, "native")
        case .generic:
            let fd = create(UInt32(XDP_FLAGS_SKB_MODE), "generic")
            try check("attach XDP to \(interface.name) in generic mode", fd)
            return (fd, "generic")
        case .auto:
            let native = create(UInt32(XDP_FLAGS_DRV_MODE), "native")
            if native >= 0 { return (native, "native") }
            logger.warning(
                "native XDP failed, falling back to generic mode (slower: packets are filtered after the driver)",
                metadata: ["interface": "\(interface.name)",
                           "error": "\(FloodgateError("native attach", libbpfResult: native))"])
            let fd = create(UInt32(XDP_FLAGS_SKB_MODE), "generic")
            try check("attach XDP to \(interface.name) in generic mode", fd)
            return (fd, "generic")
        }
    }

    // MARK: Detach and inspect

    /// Detaches the filter of `interfaceName` (`bpf_link_detach`) and removes its pins.
    public func detach(interfaceName: String) throws {
        guard PinRoot.isInterfaceName(interfaceName) else { throw FloodgateError("'\(interfaceName)' is not an interface name") }
        let dir = directory(for: interfaceName)
        guard isDirectory(dir) else { throw notAttached(interfaceName) }
        let lock = try Lock(path: path)
        defer { lock.release() }
        let linkPath = "\(dir)/\(FG_PIN_LINK)"
        if FileManager.default.fileExists(atPath: linkPath) {
            let fd = try check("open pinned link \(linkPath)", bpf_obj_get(linkPath))
            defer { close(fd) }
            let result = bpf_link_detach(fd)
            // ENOLINK: the interface already went away and took the attachment with it.
            if result < 0 && result != -ENOLINK { try check("detach XDP link of \(interfaceName)", result) }
        }
        try removePins(in: dir)
    }

    /// The filter pinned for `interfaceName`, from its link (`bpf_obj_get_info_by_fd`) and `bpf_xdp_query`.
    public func inspect(interfaceName: String) throws -> AttachedFilter {
        let dir = directory(for: interfaceName)
        let linkPath = "\(dir)/\(FG_PIN_LINK)"
        guard FileManager.default.fileExists(atPath: linkPath) else { throw notAttached(interfaceName) }
        let fd = try check("open pinned link \(linkPath)", bpf_obj_get(linkPath))
        defer { close(fd) }
        var info = bpf_link_info()
        var length = UInt32(MemoryLayout<bpf_link_info>.size)
        try check("read link info \(linkPath)", bpf_obj_get_info_by_fd(fd, &info, &length))
        let ifindex = info.xdp.ifindex
        var mode: String?
        if let local = try? Interface(interfaceName), UInt32(local.index) == ifindex {
            var programID: UInt32 = 0
            var attachMode: UInt8 = 0
            if cfloodgate_xdp_query(local.index, &programID, &attachMode) == 0, programID == info.prog_id {
                switch Int32(attachMode) {
                case Int32(XDP_ATTACHED_DRV): mode = "native"
                case Int32(XDP_ATTACHED_SKB): mode = "generic"
                case Int32(XDP_ATTACHED_HW): mode = "offload"
                default: mode = nil
                }
            }
        }
        // The kernel detaches a link whose interface was deleted; its pins stay until detach or the next attach.
        if ifindex == 0 { mode = "detached: interface gone" }
        return AttachedFilter(
            interfaceName: interfaceName, directory: dir, programID: info.prog_id, linkIfindex: ifindex, mode: mode)
    }

    /// Every filter pinned under this root.
    public func attachedFilters() throws -> [AttachedFilter] {
        guard isDirectory(path) else { return [] }
        let names = try FileManager.default.contentsOfDirectory(atPath: path).sorted()
        return names.compactMap { try? inspect(interfaceName: $0) }
    }

    /// The maps of the filter on `interfaceName`.
    public func maps(of interfaceName: String) throws -> FilterMaps {
        let dir = directory(for: interfaceName)
        guard FileManager.default.fileExists(atPath: "\(dir)/\(FG_PIN_LINK)") else { throw notAttached(interfaceName) }
        return try FilterMaps.openPinned(in: dir)
    }

    /// Whether `name` can be a Linux interface name (1 to 15 bytes, no '/' or ':', no whitespace or control
    /// characters, not "." or ".."; the kernel's dev_valid_name): what may be joined to the pin root's path.
    public static func isInterfaceName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        return !bytes.isEmpty && bytes.count <= 15 && name != "." && name != ".."
            && bytes.allSatisfy { $0 > 0x20 && $0 != 0x7F && $0 != UInt8(ascii: "/") && $0 != UInt8(ascii: ":") }
    }

    /// The filters named, or all of them when `names` is empty; an error if that is none.
    public func selectFilters(_ names: [String]) throws -> [AttachedFilter] {
        if let bad = names.first(where: { !PinRoot.isInterfaceName($0) }) {
            throw FloodgateError("'\(bad)' is not an interface name")
        }
        return try selectEach(names).onePerProgram()
    }

    /// ``selectFilters(_:)`` before uplinks that share a filter are taken as one.
    private func selectEach(_ names: [String]) throws -> [AttachedFilter] {
        if names.isEmpty {
            let all = try attachedFilters()
            guard !all.isEmpty else {
                throw FloodgateError(
                    "no Floodgate filter is attached (nothing pinned under \(path))",
                    hint: "Attach one first: floodgate attach IFACE")
            }
            return all
        }
        return try names.map { try inspect(interfaceName: $0) }
    }

    /// Applies `change` to the maps of each selected filter (all when `names` is empty), holding the pin root's
    /// lock. `change` returns what undoes it; if it fails on one filter, it is undone on those already changed,
    /// so the filters end up all changed or none.
    @discardableResult
    public func change(_ names: [String], _ change: (AttachedFilter, FilterMaps) throws -> () -> Void) throws
        -> [AttachedFilter]
    {
        // Selected first: with nothing attached (no pin root either) that is the error to give.
        let filters = try selectFilters(names)
        let lock = try Lock(path: path)
        defer { lock.release() }
        let maps = try filters.map { try self.maps(of: $0.interfaceName) }
        var undo: [() -> Void] = []
        do {
            for (filter, m) in zip(filters, maps) { undo.append(try change(filter, m)) }
        } catch {
            for step in undo.reversed() { step() }
            throw error
        }
        return filters
    }

    /// Runs `body` holding the pin root's lock (the one attach, detach and every change take).
    public func locked<T>(_ body: () throws -> T) throws -> T {
        let lock = try Lock(path: path)
        defer { lock.release() }
        return try body()
    }

    /// Runs `body` holding the pin root's lock if nobody else holds it now; nil (and `body` not run) if someone
    /// does: for housekeeping that can wait for the next round (a CLI suspended while it holds the lock must not
    /// stop the agent).
    public func lockedIfFree<T>(_ body: () throws -> T) throws -> T? {
        let lock: Lock
        do { lock = try Lock(path: path, wait: false) } catch let error as FloodgateError where error.errno == EWOULDBLOCK {
            return nil
        }
        defer { lock.release() }
        return try body()
    }

    func notAttached(_ interfaceName: String) -> FloodgateError {
        FloodgateError(
            "\(interfaceName) has no Floodgate filter attached (nothing pinned at \(directory(for: interfaceName)))",
            hint: "Attach one with: floodgate attach \(interfaceName)")
    }

    private func removePins(in dir: String) throws {
        // Only an interface's folder right under the root: never the root or anything above it.
        guard (dir as NSString).deletingLastPathComponent == path,
              PinRoot.isInterfaceName((dir as NSString).lastPathComponent), isDirectory(dir)
        else { return }
        for name in try FileManager.default.contentsOfDirectory(atPath: dir) {
            try check("remove pin \(dir)/\(name)", unlink("\(dir)/\(name)") == 0 ? 0 : -errno)
        }
        try check("remove pin directory \(dir)", rmdir(dir) == 0 ? 0 : -errno)
    }

    private func isDirectory(_ p: String) -> Bool {
        var isDir: ObjCBool = false
        return FileManager.default.fileExists(atPath: p, isDirectory: &isDir) && isDir.boolValue
    }

    // MARK: bpffs

    /// Makes sure the pin root is on a bpffs, mounting one if needed: on /sys/fs/bpf when the root is below it,
    /// otherwise on the root itself.
    public func ensureBPFFS() throws {
        if !isOnBPFFS(path) {
            let mountPoint = path == "/sys/fs/bpf" || path.hasPrefix("/sys/fs/bpf/") ? "/sys/fs/bpf" : path
            if !isOnBPFFS(mountPoint) {
                try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
                try check(
                    "mount bpffs on \(mountPoint)",
                    hint: "Mount it by hand: mount -t bpf bpf \(mountPoint)",
                    mount("bpf", mountPoint, "bpf", 0, "mode=0700") == 0 ? 0 : -errno)
                logger.info("mounted bpffs", metadata: ["path": "\(mountPoint)"])
            }
        }
        if !isDirectory(path) {
            try check("create pin root \(path)", mkdir(path, 0o700) == 0 ? 0 : -errno)
        }
    }

    private func isOnBPFFS(_ p: String) -> Bool {
        var fs = statfs()
        guard statfs(p, &fs) == 0 else { return false }
        return Int(fs.f_type) == PinRoot.bpffsMagic
    }

    /// An exclusive flock on the pin root, so two CLI invocations do not attach or detach at once.
    struct Lock {
        let fd: Int32
        /// Takes the lock, waiting for it unless `wait` is false (then EWOULDBLOCK is thrown when it is held).
        init(path: String, wait: Bool = true) throws {
            fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            try check("open \(path) to lock it", fd >= 0 ? 0 : -errno)
            guard flock(fd, wait ? LOCK_EX : LOCK_EX | LOCK_NB) == 0 else {
                let code = errno
                close(fd)
                throw FloodgateError("lock \(path)", errno: code)
            }
        }
        func release() { close(fd) }
    }
}
