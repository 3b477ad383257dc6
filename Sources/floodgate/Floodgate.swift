import ArgumentParser
import FloodgateCore
import Foundation
import Logging

@main
struct Floodgate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "floodgate",
        abstract: "XDP load shedding and DoS protection for SIP edges.",
        version: floodgateVersion,
        subcommands: [
            Attach.self, Detach.self, Status.self, LimitCommand.self, Stats.self, Top.self, Allow.self, Deny.self,
            BanCommand.self, Unban.self, Bans.self, Trusted.self, Unquarantine.self, Prefix.self, Budget.self, Scanners.self, Dest.self, Calls.self, Run.self, ConfigCommand.self, BGPCommand.self, Demo.self, Flood.self,
        ]
    )
}

/// Options every subcommand that touches filters takes.
struct CommonOptions: ParsableArguments {
    @Option(help: "Directory on a bpffs under which filters are pinned, one folder per interface.")
    var pinRoot: String = PinRoot.defaultPath

    @Flag(name: .shortAndLong, help: "Log libbpf's and Floodgate's debug messages.")
    var verbose = false

    func validate() throws {
        guard pinRoot.hasPrefix("/") else { throw ValidationError("--pin-root must be an absolute path.") }
    }

    /// The pin root, after making sure we run as root and logging is set up.
    func root() throws -> PinRoot {
        LogSetup.bootstrapOnce(verbose: verbose)
        guard geteuid() == 0 else {
            throw FloodgateError(
                "floodgate must run as root: it loads BPF programs and reads pinned BPF maps",
                hint: "Run it with sudo; ban, unban and bans also work without root, for the members of the agent's API group, through its socket (--api-socket)")
        }
        return PinRoot(pinRoot, logger: Logger(label: "floodgate"))
    }
}

enum LogSetup {
    nonisolated(unsafe) private static var done = false
    /// The agent bootstraps logging itself.
    static func markBootstrapped() { done = true }
    static func bootstrapOnce(verbose: Bool) {
        guard !done else { return }
        done = true
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = verbose ? .debug : .warning
            return handler
        }
    }
}

func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

/// Prints rows as aligned columns: text left, numbers right.
func printTable(_ header: [String], _ rows: [[String]]) {
    let widths = header.indices.map { i in ([header[i]] + rows.map { $0[i] }).map(\.count).max() ?? 0 }
    func line(_ cells: [String]) -> String {
        cells.enumerated().map { i, cell in
            let pad = String(repeating: " ", count: widths[i] - cell.count)
            return i == 0 || Double(cell) == nil && cell != "-" ? cell + pad : pad + cell
        }.joined(separator: "  ").trimmingCharacters(in: .whitespaces)
    }
    print(line(header))
    for row in rows { print(line(row)) }
}
