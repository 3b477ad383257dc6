internal import CFloodgate
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The one error type of Floodgate: what was being done, the errno the kernel or libbpf gave (if any), and what to
/// do about it. Prints as one line: "attach XDP to fg0: Device or resource busy (EBUSY). Detach it first …".
public struct FloodgateError: Error, CustomStringConvertible, Sendable {
    public var operation: String
    public var errno: Int32?
    public var hint: String?

    public init(_ operation: String, errno: Int32? = nil, hint: String? = nil) {
        self.operation = operation
        self.errno = errno
        self.hint = hint
    }

    /// From a libbpf return value: libbpf 1.x returns `-errno`.
    public init(_ operation: String, libbpfResult: Int32, hint: String? = nil) {
        self.init(operation, errno: libbpfResult < 0 ? -libbpfResult : libbpfResult, hint: hint)
    }

    public var description: String {
        var text = operation
        if let errno, errno >= 4000, errno < 4100 {
            // libbpf's own codes (LIBBPF_ERRNO__*: not an ELF, not a BPF object, ...), which strerror does not know.
            var message = [CChar](repeating: 0, count: 128)
            _ = libbpf_strerror(Int32(errno), &message, message.count)
            text += ": \(String(cString: message)) (libbpf error \(errno))"
        } else if let errno {
            text += ": \(String(cString: strerror(errno))) (\(FloodgateError.errnoName(errno)))"
        }
        if let hint { text += ". \(hint)" }
        return text
    }

    /// The symbolic name of the errno values BPF calls return.
    public static func errnoName(_ code: Int32) -> String {
        switch code {
        case EPERM: return "EPERM"
        case ENOENT: return "ENOENT"
        case ESRCH: return "ESRCH"
        case EINTR: return "EINTR"
        case EIO: return "EIO"
        case E2BIG: return "E2BIG"
        case EBADF: return "EBADF"
        case EAGAIN: return "EAGAIN"
        case ENOMEM: return "ENOMEM"
        case EACCES: return "EACCES"
        case EFAULT: return "EFAULT"
        case EBUSY: return "EBUSY"
        case EEXIST: return "EEXIST"
        case ENODEV: return "ENODEV"
        case ENOTDIR: return "ENOTDIR"
        case EINVAL: return "EINVAL"
        case ENOSPC: return "ENOSPC"
        case ERANGE: return "ERANGE"
        case ENOSYS: return "ENOSYS"
        case ELOOP: return "ELOOP"
        case EOPNOTSUPP: return "EOPNOTSUPP"
        case 524: return "ENOTSUPP"
        default: return "errno \(code)"
        }
    }
}

/// Runs a libbpf call that returns 0 or `-errno`, throwing a ``FloodgateError`` naming `operation` on failure.
@discardableResult
public func check(_ operation: @autoclosure () -> String, hint: String? = nil, _ result: Int32) throws -> Int32 {
    if result < 0 { throw FloodgateError(operation(), libbpfResult: result, hint: hint) }
    return result
}
