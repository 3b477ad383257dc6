import ArgumentParser
import FloodgateAgent
import FloodgateCore
import Foundation
import Logging
import ServiceLifecycle

extension Floodgate {
    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the agent: attach the filter the config file describes and keep it in step.",
            discussion: """
                Attaches the filter to the config's external interface, or adopts the one already pinned there \
                (bans and counters are kept). Reloads the config on SIGHUP and when the file or a list file \
                changes; a file with problems is never applied. Logs the bans the XDP program issues and anomalies \
                of class rates, and serves Prometheus metrics. SIGTERM and SIGINT stop it; the filter stays \
                attached and keeps protecting unless --detach-on-exit.
                """)

        @Option(help: "The config file.") var config = AgentConfig.defaultPath
        @Option(help: "Log format: text or json (default: the config's).") var logFormat: String?
        @Flag(help: "Detach the filter and remove its pins when the agent stops.") var detachOnExit = false
        @Flag(name: .shortAndLong, help: "Log debug messages.") var verbose = false

        func validate() throws {
            if let logFormat, AgentConfig.LogFormat(rawValue: logFormat) == nil {
                throw ValidationError("--log-format takes text or json.")
            }
        }

        func run() async throws {
            let loaded: AgentConfig
            do {
                loaded = try AgentConfig.load(path: config)
            } catch {
                throw FloodgateError("the config has problems; nothing was attached:\n\(error)")
            }
            let format = logFormat.flatMap(AgentConfig.LogFormat.init) ?? loaded.logFormat
            LoggingSystem.bootstrap { label in AgentLogHandler(label: label, format: format) }
            AgentLogHandler.setLevel(verbose ? .debug : loaded.logLevel, fromCommandLine: verbose)
            LogSetup.markBootstrapped()
            let logger = Logger(label: "floodgate")
            for warning in loaded.warnings {
                logger.warning("list file line skipped", metadata: ["line": "\(warning)"])
            }
            guard geteuid() == 0 else {
                throw FloodgateError("floodgate run must run as root: it loads BPF programs and pins maps")
            }
            let agent = try Agent(configPath: config, config: loaded, logger: logger)
            var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
                .init(service: AgentService(agent: agent, detachOnExit: detachOnExit, logger: logger)),
            ]
            if let socket = loaded.apiSocket {
                services.append(.init(service: try APIServer(path: socket, group: loaded.apiGroup,
                                                             root: PinRoot(loaded.pinRoot, logger: logger),
                                                             metrics: agent.metrics, logger: logger)))
            }
            if let listen = loaded.metricsListen {
                services.append(.init(service: try MetricsServer(listen: listen, metrics: agent.metrics, logger: logger)))
            }
            let group = ServiceGroup(configuration: .init(
                services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            try await group.run()
        }
    }

    struct ConfigCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "config", abstract: "Check a config file, or print the example one.",
            subcommands: [Check.self, Example.self, HighRisk.self, Alerts.self, Dashboard.self, SystemdUnit.self,
                          Fail2banAction.self, FetchList.self, CheckList.self])

        struct Check: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Validate a config file: every problem with its file, line, field and why.")
            @Argument(help: "The config file.") var file = AgentConfig.defaultPath

            func run() throws {
                do {
                    let c = try AgentConfig.load(path: file)
                    let p = c.effectivePolicy
                    let autoBan = p.settings.autoBan.enabled
                        ? "after \(p.settings.autoBan.drops) drops in \(p.settings.autoBan.windowMilliseconds) ms" : "off"
                    let bruteForce = p.settings.bruteForce.map { "\($0.failures) failures in \($0.windowSeconds) s" } ?? "off"
                    let interfaces = "external \(c.externals.isEmpty ? "?" : c.externals.joined(separator: ", "))" + (c.inside.map { ", inside \($0)" } ?? "")
                    for warning in c.warnings { FileHandle.standardError.write(Data("warning: skipped \(warning)\n".utf8)) }
                    print("\(file): OK — \(interfaces), \(p.allow.count) allow and \(p.deny.count) deny networks, "
                        + "\(p.signatures.count) signatures, auto-ban \(autoBan), brute force \(bruteForce), "
                        + "metrics \(c.metricsListen ?? "off")")
                } catch let errors as ConfigErrors {
                    FileHandle.standardError.write(Data((errors.description + "\n").utf8))
                    throw ExitCode(1)
                }
            }
        }

        struct Example: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Print the example config, with comments.")
            func run() { print(ShippedFiles.exampleConfig, terminator: "") }
        }

        struct HighRisk: ParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "high-risk",
                abstract: "Print the shipped list of high-risk destinations (destination rules, with their sources).")
            func run() { print(ShippedFiles.highRiskDestinations, terminator: "") }
        }

        struct Alerts: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Print Prometheus alerting rules over the agent's metrics (promtool check rules accepts them).")
            func run() { print(ShippedFiles.alertRules, terminator: "") }
        }

        struct Dashboard: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Print a Grafana dashboard over the agent's metrics (JSON, to import).")
            func run() { print(ShippedFiles.grafanaDashboard, terminator: "") }
        }

        struct SystemdUnit: ParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "systemd-unit", abstract: "Print the systemd unit for the agent.")
            @Option(help: "The floodgate binary the unit runs (default: this one).") var binary: String?

            func validate() throws {
                if let binary, !binary.hasPrefix("/") { throw ValidationError("--binary must be an absolute path.") }
            }

            func run() {
                let path = binary ?? Bundle.main.executablePath.map { URL(fileURLWithPath: $0).resolvingSymlinksInPath().path }
                    ?? "/usr/bin/floodgate"
                print(ShippedFiles.systemdUnit(binary: path), terminator: "")
            }
        }

        struct FetchList: ParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "fetch-list",
                abstract: "Print the block-list fetcher (a shell script), or its systemd service or timer template.",
                discussion: """
                    The package installs them as /usr/libexec/floodgate/fetch-list, floodgate-fetch-list@.service and \
                    floodgate-fetch-list@.timer: put URL=https://… in /etc/floodgate/lists/NAME.env, name \
                    /var/lib/floodgate/lists/NAME.txt in a deny: [{file: …}] entry, and enable \
                    floodgate-fetch-list@NAME.timer.
                    """)
            enum Unit: String, ExpressibleByArgument, CaseIterable { case service, timer }
            @Option(help: "Print this unit instead of the script: service or timer.") var unit: Unit?

            func run() {
                switch unit {
                case nil: print(ShippedFiles.fetchListScript, terminator: "")
                case .service: print(ShippedFiles.fetchListService, terminator: "")
                case .timer: print(ShippedFiles.fetchListTimer, terminator: "")
                }
            }
        }

        struct CheckList: ParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "check-list",
                abstract: "Read a list file of networks as the agent reads one: how many, and the lines it would skip.",
                discussion: """
                    One CIDR or address per line, '#' and ';' start comments, a bad line is skipped with a warning \
                    (on standard error). Exit status 1 when the file holds no network or more than the list holds.
                    """)
            @Argument(help: "The list file.") var file: String
            @Flag(help: "Print only the number of networks.") var count = false

            func run() throws {
                let text: String
                do { text = try String(contentsOfFile: file, encoding: .utf8) } catch {
                    throw FloodgateError("cannot read \(file) as UTF-8 text: \(error.localizedDescription)")
                }
                var (cidrs, skipped) = CIDR.parseListSkipping(text, name: file)
                if let wide = cidrs.first(where: \.tooWideForAListFile) {
                    skipped.append("\(file): \(wide) is wider than a list file may hold (IPv4 under /8, IPv6 under /16)")
                    cidrs.removeAll(where: \.tooWideForAListFile)
                }
                let networks = Set(cidrs).count
                for line in skipped.prefix(5) { FileHandle.standardError.write(Data("warning: skipped \(line)\n".utf8)) }
                if skipped.count > 5 {
                    FileHandle.standardError.write(Data("warning: and \(skipped.count - 5) more bad lines\n".utf8))
                }
                guard networks > 0 else { throw FloodgateError("\(file) holds no network") }
                guard networks <= FilterCapacity.listEntries else {
                    throw FloodgateError("\(file) holds \(networks) networks; a list holds at most \(FilterCapacity.listEntries)")
                }
                print(count ? "\(networks)" : "\(file): \(networks) networks, \(skipped.count) lines skipped")
            }
        }

        struct Fail2banAction: ParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "fail2ban-action",
                abstract: "Print a fail2ban action that bans in the filter (for /etc/fail2ban/action.d/floodgate.conf).")
            func run() { print(ShippedFiles.fail2banAction, terminator: "") }
        }
    }
}
