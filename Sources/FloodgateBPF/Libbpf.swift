internal import CFloodgate
import Foundation
import Logging

/// Routes libbpf's own messages (verifier log included) into swift-log instead of stderr.
enum LibbpfLogging {
    nonisolated(unsafe) static var logger = Logger(label: "floodgate.libbpf")
    /// The last warnings libbpf printed, so a failed load can carry the verifier's reason.
    nonisolated(unsafe) static var recentWarnings: [String] = []

    static let install: Void = {
        libbpf_set_print { level, format, args in
            guard let format else { return 0 }
            var buffer = [CChar](repeating: 0, count: 4096)
            let written = cfloodgate_vformat(&buffer, buffer.count, format, args!)
            guard written > 0 else { return 0 }
            let line = String(cString: buffer).trimmingCharacters(in: .newlines)
            switch level {
            case LIBBPF_WARN:
                LibbpfLogging.recentWarnings.append(line)
                if LibbpfLogging.recentWarnings.count > 40 { LibbpfLogging.recentWarnings.removeFirst() }
                LibbpfLogging.logger.warning("\(line)")
            case LIBBPF_INFO: LibbpfLogging.logger.info("\(line)")
            default: LibbpfLogging.logger.trace("\(line)")
            }
            return written
        }
    }()
}

