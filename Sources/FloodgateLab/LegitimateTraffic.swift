import FloodgateCore
import Foundation

/// Legitimate SIP to run beside a flood: registrations and calls from an ordinary phone (the lab's
/// 198.18.0.1, under every per-source limit, which sends no credentials and first appears with the flood), from a
/// subscriber (198.18.0.20, which registers with digest credentials at the server behind the router once before
/// the flood, as a phone on an account does, and again with each registration beside it) and from a trunk peer
/// (198.18.0.10, which the filters allow-list).
public struct LegitimateLoad: Codable, Sendable, Equatable {
    public var phoneCalls: Int
    public var phoneRegistrations: Int
    public var trunkCalls: Int
    public var trunkRegistrations: Int
    /// The subscriber's; any of them needs the lab's server namespace (``NetworkLab/serverNS``), where its
    /// registrar challenges.
    public var subscriberCalls: Int
    public var subscriberRegistrations: Int

    public init(phoneCalls: Int, phoneRegistrations: Int, trunkCalls: Int, trunkRegistrations: Int,
                subscriberCalls: Int = 0, subscriberRegistrations: Int = 0)
    {
        self.phoneCalls = phoneCalls
        self.phoneRegistrations = phoneRegistrations
        self.trunkCalls = trunkCalls
        self.trunkRegistrations = trunkRegistrations
        self.subscriberCalls = subscriberCalls
        self.subscriberRegistrations = subscriberRegistrations
    }

    /// `calls` calls and as many registrations from the phone and from the subscriber; twenty times as many of
    /// each from the trunk.
    public static func standard(calls: Int) -> LegitimateLoad {
        LegitimateLoad(phoneCalls: calls, phoneRegistrations: calls, trunkCalls: 20 * calls,
                       trunkRegistrations: 20 * calls, subscriberCalls: calls, subscriberRegistrations: calls)
    }

    public var isEmpty: Bool {
        phoneCalls + phoneRegistrations + trunkCalls + trunkRegistrations + subscriberCalls + subscriberRegistrations == 0
    }

    /// Whether it has any of the subscriber's traffic (and so needs the lab's server namespace).
    public var hasSubscriber: Bool { subscriberCalls + subscriberRegistrations > 0 }

    public static let trunkAddress = "198.18.0.10"
    /// The subscriber's address, its account (user and password) on the lab's registrar behind the router
    /// (``NetworkLab/serverAddress``), and the kind of its one registration before the flood in the results.
    public static let subscriberAddress = "198.18.0.20"
    public static let subscriberUser = "200"
    public static let subscriberPassword = "lab-subscriber-pw"
    public static let registrationBeforeFlood = "registration before the flood"
    /// The registrar's address on the router side; the call server answers on the router's own address.
    public static let registrarAddress = "198.18.0.3"
}

/// What one kind of legitimate traffic achieved: sipp's own count of successful calls (a registration is a
/// "call" of one REGISTER and its 200) and of the requests it had to retransmit.
public struct LegitimateResult: Codable, Sendable, Equatable {
    public var source: String  // phone, trunk
    public var kind: String  // calls, registrations
    public var attempted: Int
    public var succeeded: Int
    public var retransmissions: Int

    public init(source: String, kind: String, attempted: Int, succeeded: Int, retransmissions: Int) {
        self.source = source
        self.kind = kind
        self.attempted = attempted
        self.succeeded = succeeded
        self.retransmissions = retransmissions
    }
}

/// sipp (Debian's sip-tester) processes for a ``LegitimateLoad``: UASs in the router namespace (sipp's built-in
/// call answerer on the router's address, and a registrar scenario on ``LegitimateLoad/registrarAddress``), UACs
/// in the outside namespace, paced so that each finishes placing within `seconds`.
public final class SippTraffic: @unchecked Sendable {
    private struct Client {
        var source: String
        var kind: String
        var attempted: Int
        var process: Process
        var output: OutputCollector
    }

    private var servers: [Process] = []
    private var clients: [Client] = []
    /// What finished before the flood: the subscriber's first registration.
    private var earlier: [LegitimateResult] = []
    private let directory: URL

    /// Starts the servers in the router namespace and the clients in the outside one; with `cpu`, every sipp
    /// runs on that CPU only (taskset). `beforeClients` runs after the subscriber's registration before the flood
    /// and before any client starts.
    public init(lab: NetworkLab, load: LegitimateLoad, seconds: Double, cpu: Int? = nil,
                beforeClients: (() throws -> Void)? = nil) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("fgsipp-\(lab.id)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        do {
            try start(lab: lab, load: load, seconds: seconds, cpu: cpu, beforeClients: beforeClients)
        } catch {
            stop()
            throw error
        }
    }

    deinit { stop() }

    private func start(lab: NetworkLab, load: LegitimateLoad, seconds: Double, cpu: Int?,
                       beforeClients: (() throws -> Void)?) throws {
        let registrarUAS = directory.appendingPathComponent("registrar.xml")
        let registerUAC = directory.appendingPathComponent("register.xml")
        let challengingUAS = directory.appendingPathComponent("challenging-registrar.xml")
        let authUAC = directory.appendingPathComponent("register-auth.xml")
        try SippTraffic.registrarScenario.write(to: registrarUAS, atomically: true, encoding: .utf8)
        try SippTraffic.registerScenario.write(to: registerUAC, atomically: true, encoding: .utf8)
        try SippTraffic.challengingRegistrarScenario.write(to: challengingUAS, atomically: true, encoding: .utf8)
        try SippTraffic.registerWithAuthScenario.write(to: authUAC, atomically: true, encoding: .utf8)
        let pin = cpu.map { ["taskset", "-c", String($0)] } ?? []
        let inRouter = ["ip", "netns", "exec", lab.routerNS] + pin
        let inOutside = ["ip", "netns", "exec", lab.outsideNS] + pin
        servers.append(try SippTraffic.launch(
            inRouter + ["sipp", "-sn", "uas", "-i", lab.routerAddress, "-p", "5060", "-nostdin"], output: nil))
        servers.append(try SippTraffic.launch(
            inRouter + ["sipp", "-sf", registrarUAS.path, "-i", LegitimateLoad.registrarAddress, "-p", "5060",
                        "-nostdin"], output: nil))
        for address in [lab.routerAddress, LegitimateLoad.registrarAddress] {
            try NetworkLab.waitForUDPSocket(namespace: lab.routerNS, address: address, port: 5060)
        }
        let account = ["-s", LegitimateLoad.subscriberUser, "-au", LegitimateLoad.subscriberUser, "-ap",
                       LegitimateLoad.subscriberPassword]
        if load.hasSubscriber {
            guard let serverNS = lab.serverNS else {
                throw FloodgateError("the subscriber's traffic needs a lab with a server namespace, where its registrar is")
            }
            servers.append(try SippTraffic.launch(
                ["ip", "netns", "exec", serverNS] + pin + ["sipp", "-sf", challengingUAS.path, "-i", lab.serverAddress,
                                                           "-p", "5060", "-nostdin"], output: nil))
            try NetworkLab.waitForUDPSocket(namespace: serverNS, address: lab.serverAddress, port: 5060)
            // Its account's first registration, before the flood: the filter verifies it from the server's 200.
            let collector = OutputCollector()
            let first = try SippTraffic.launch(
                inOutside + ["timeout", "20", "sipp", "-sf", authUAC.path, "\(lab.serverAddress):5060", "-i",
                             LegitimateLoad.subscriberAddress, "-p", "5073", "-m", "1", "-nostdin", "-timeout", "8s",
                             "-timeout_error", "-recv_timeout", "6000", "-nd"] + account, output: collector)
            first.waitUntilExit()
            let counts = SippTraffic.parse(collector.text())
            earlier.append(LegitimateResult(source: "subscriber", kind: LegitimateLoad.registrationBeforeFlood,
                                            attempted: 1, succeeded: min(counts.succeeded, 1),
                                            retransmissions: counts.retransmissions))
        }
        try beforeClients?()
        // sipp gives up on what is unfinished 8 s after the flood; `timeout` is the backstop.
        let limit = ["-timeout", "\(Int(seconds) + 8)s", "-timeout_error", "-recv_timeout", "\((Int(seconds) + 7) * 1000)", "-nd"]
        let plan: [(String, String, String, Int, [String], String, String)] = [
            ("phone", "calls", lab.outsideAddress, load.phoneCalls, ["-sn", "uac"], lab.routerAddress, "5070"),
            ("phone", "registrations", lab.outsideAddress, load.phoneRegistrations, ["-sf", registerUAC.path],
             LegitimateLoad.registrarAddress, "5071"),
            ("trunk", "calls", LegitimateLoad.trunkAddress, load.trunkCalls, ["-sn", "uac"], lab.routerAddress, "5070"),
            ("trunk", "registrations", LegitimateLoad.trunkAddress, load.trunkRegistrations, ["-sf", registerUAC.path],
             LegitimateLoad.registrarAddress, "5071"),
            ("subscriber", "calls", LegitimateLoad.subscriberAddress, load.subscriberCalls, ["-sn", "uac"],
             lab.routerAddress, "5072"),
            ("subscriber", "registrations", LegitimateLoad.subscriberAddress, load.subscriberRegistrations,
             ["-sf", authUAC.path] + account, lab.serverAddress, "5073"),
        ]
        for (source, kind, address, count, scenario, target, port) in plan where count > 0 {
            let rate = max(1, Int((Double(count) / max(seconds, 0.5)).rounded(.up)))
            let collector = OutputCollector()
            let process = try SippTraffic.launch(
                inOutside + ["timeout", "\(Int(seconds) + 15)", "sipp"] + scenario + [
                    "\(target):5060", "-i", address, "-p", port, "-m", "\(count)", "-r", "\(rate)", "-nostdin",
                ] + limit, output: collector)
            clients.append(Client(source: source, kind: kind, attempted: count, process: process, output: collector))
        }
    }

    /// Waits for the clients to finish (or give up), stops the servers, and reports what sipp counted.
    public func finish() -> [LegitimateResult] {
        let results = earlier + clients.map { client in
            client.process.waitUntilExit()
            let counts = SippTraffic.parse(client.output.text())
            return LegitimateResult(source: client.source, kind: client.kind, attempted: client.attempted,
                                    succeeded: min(counts.succeeded, client.attempted),
                                    retransmissions: counts.retransmissions)
        }
        stop()
        return results
    }

    private func stop() {
        // sipp's UAS does not stop on SIGTERM.
        for p in servers + clients.map(\.process) where p.isRunning { kill(p.processIdentifier, SIGKILL) }
        for p in servers { p.waitUntilExit() }
        servers = []
        try? FileManager.default.removeItem(at: directory)
    }

    static func launch(_ command: [String], output: OutputCollector?) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = command
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        if let output {
            process.standardOutput = output.pipe
        } else {
            process.standardOutput = FileHandle.nullDevice
        }
        try process.run()
        output?.startReading()
        return process
    }

    /// sipp's final screens: the cumulative "Successful call" count, and the sum of the Retrans column over the
    /// messages this side sent (`NAME ---------->  count retrans timeout`), from the last message table.
    public static func parse(_ text: String) -> (succeeded: Int, retransmissions: Int) {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        let succeeded = lines.last { $0.contains("Successful call") }
            .flatMap { $0.split(separator: "|").last }
            .flatMap { Int($0.trimmingCharacters(in: .whitespaces)) } ?? 0
        var retransmissions = 0
        if let header = lines.lastIndex(where: { $0.contains("Messages") && $0.contains("Retrans") }) {
            for line in lines[(header + 1)...] {
                if line.trimmingCharacters(in: .whitespaces).isEmpty || line.hasPrefix("---") { break }
                guard let arrow = line.range(of: "---------->") else { continue }
                let numbers = line[arrow.upperBound...].split(separator: " ").compactMap { Int($0) }
                if numbers.count >= 2 { retransmissions += numbers[1] }
            }
        }
        return (succeeded, retransmissions)
    }

    /// A REGISTER for a sipp scenario, resent every 500 ms until answered (`retrans` fixes the interval;
    /// sipp's own doubling applies only to INVITE). `extra`: more header lines, e.g. sipp's `[authentication]`.
    static func registerStep(cseq: Int, user: String, extra: [String] = []) -> String {
        let headers = ["REGISTER sip:[remote_ip] SIP/2.0",
                       "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]",
                       "From: <sip:\(user)@[remote_ip]>;tag=[pid]r[call_number]", "To: <sip:\(user)@[remote_ip]>",
                       "Call-ID: [call_id]", "CSeq: \(cseq) REGISTER", "Contact: <sip:\(user)@[local_ip]:[local_port]>"]
            + extra + ["Max-Forwards: 70", "Expires: 3600", "User-Agent: floodgate-bench", "Content-Length: 0"]
        return "  <send retrans=\"500\">\n    <![CDATA[\n" + headers.map { "      \($0)\n" }.joined()
            + "\n    ]]>\n  </send>\n"
    }

    static func scenario(_ name: String, _ steps: [String]) -> String {
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"\(name)\">\n" + steps.joined()
            + "</scenario>\n"
    }

    /// One REGISTER and its 200.
    static let registerScenario = scenario("Floodgate benchmark: register", [
        registerStep(cseq: 1, user: "phone[call_number]"), "  <recv response=\"200\" rtd=\"true\"/>\n",
    ])

    /// REGISTER, its 401 challenge, the REGISTER again with digest credentials (sipp's `-au`/`-ap`), then 200; a
    /// wrong password gets another 401 and fails the "call". The user is sipp's `-s`.
    public static let registerWithAuthScenario = scenario("register with digest authentication", [
        registerStep(cseq: 1, user: "[service]"), "  <recv response=\"401\" auth=\"true\"/>\n",
        registerStep(cseq: 2, user: "[service]", extra: ["[authentication]"]), "  <recv response=\"200\"/>\n",
    ])

    /// A call presenting `caller` (a number, as its From user part), as sipp's built-in UAC places it: INVITE,
    /// 200, ACK, BYE.
    public static func callScenario(caller: String) -> String {
        """
        <?xml version="1.0" encoding="ISO-8859-1" ?>
        <scenario name="Floodgate: a call from \(caller)">
          <send retrans="500">
            <![CDATA[
              INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
              Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
              From: "Caller" <sip:\(caller)@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
              To: <sip:[service]@[remote_ip]:[remote_port]>
              Call-ID: [call_id]
              CSeq: 1 INVITE
              Contact: sip:caller@[local_ip]:[local_port]
              Max-Forwards: 70
              Content-Length: 0

            ]]>
          </send>
          <recv response="100" optional="true"/>
          <recv response="180" optional="true"/>
          <recv response="200" rtd="true"/>
          <send>
            <![CDATA[
              ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
              Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
              From: "Caller" <sip:\(caller)@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
              To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
              Call-ID: [call_id]
              CSeq: 1 ACK
              Max-Forwards: 70
              Content-Length: 0

            ]]>
          </send>
          <send retrans="500">
            <![CDATA[
              BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
              Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
              From: "Caller" <sip:\(caller)@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
              To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
              Call-ID: [call_id]
              CSeq: 2 BYE
              Max-Forwards: 70
              Content-Length: 0

            ]]>
          </send>
          <recv response="200" crlf="true"/>
        </scenario>

        """
    }

    /// A registrar's answer to the REGISTER it just received, for a sipp UAS scenario: `status`, the request's
    /// Via, From, To (with a tag of the call's own), Call-ID and CSeq, then `headers`.
    static func registrarAnswer(_ status: String, tag: String, _ headers: [String]) -> String {
        let lines = ["SIP/2.0 \(status)", "[last_Via:]", "[last_From:]", "[last_To:];tag=[pid]\(tag)[call_number]",
                     "[last_Call-ID:]", "[last_CSeq:]"] + headers + ["Content-Length: 0"]
        return "  <send>\n    <![CDATA[\n" + lines.map { "      \($0)\n" }.joined() + "\n    ]]>\n  </send>\n"
    }

    static let receiveRegister = "  <recv request=\"REGISTER\"/>\n"
    static let registered = ["Contact: <sip:[local_ip]:[local_port]>", "Expires: 3600"]

    /// The subscriber's registrar, behind the router: challenges each REGISTER with a 401 (a nonce of the call's
    /// own) and accepts the REGISTER that comes back with credentials, whatever they are (it checks no password:
    /// the filter goes by the server's answer, and this stands in for a server that accepted them).
    static let challengingRegistrarScenario = scenario("Floodgate benchmark: a registrar that challenges", [
        receiveRegister,
        registrarAnswer("401 Unauthorized", tag: "c", [
            "WWW-Authenticate: Digest realm=\"lab.test\", nonce=\"n[pid]x[call_number]\", algorithm=MD5",
        ]),
        receiveRegister, registrarAnswer("200 OK", tag: "c", registered),
    ])

    /// Answers each REGISTER with a 200; keeps the transaction a while to answer retransmissions too.
    static let registrarScenario = scenario("Floodgate benchmark: registrar", [
        receiveRegister, registrarAnswer("200 OK", tag: "ok", registered),
    ])
}

/// Reads a child's standard output on another thread, so that it can never fill the pipe and stall.
final class OutputCollector: @unchecked Sendable {
    let pipe = Pipe()
    private var data = Data()
    private let done = DispatchSemaphore(value: 0)

    /// On a thread of its own: a blocking read on Dispatch's shared pool would hold one of its few threads.
    func startReading() {
        Thread {
            self.data = self.pipe.fileHandleForReading.readDataToEndOfFile()
            self.done.signal()
        }.start()
    }

    /// Everything written, once the writer has closed its end (exited).
    func text() -> String {
        done.wait()
        return String(decoding: data, as: UTF8.self)
    }
}

/// A sipp UAS (its built-in scenario: it answers every INVITE) in a network namespace, as the SIP server the
/// destination and fraud checks' calls reach; stopped by its own pid (`ip netns exec` execs sipp).
public final class SippUAS: @unchecked Sendable {
    private let process = Process()

    public init(namespace: String, address: String, port: Int = 5060) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["ip", "netns", "exec", namespace, "sipp", "-sn", "uas", "-i", address, "-p", "\(port)",
                             "-nostdin"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        do {
            try NetworkLab.waitForUDPSocket(namespace: namespace, address: address, port: port)
        } catch {
            stop()
            throw error
        }
    }

    public func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    deinit { stop() }

    /// `count` calls to `number` at `rate` a second (2 by default) with sipp's built-in UAC (or `scenario`, a UAC
    /// scenario file), from `source` in `namespace`, to the UAS at `server`:5060, each hung up after
    /// `holdMilliseconds` (each gives up 4 s after its last answer); how many connected.
    public static func calls(to number: String, server: String, from source: String, port: Int, count: Int,
                             namespace: String, rate: Int = 2, holdMilliseconds: Int = 0,
                             scenario: String? = nil) throws -> Int {
        let result = try NetworkLab.capture([
            "ip", "netns", "exec", namespace, "timeout", "60", "sipp"] + (scenario.map { ["-sf", $0] } ?? ["-sn", "uac"]) + [
            "-s", number, "\(server):5060",
            "-i", source, "-p", "\(port)", "-m", "\(count)", "-r", "\(rate)", "-nostdin", "-timeout", "30s",
            "-recv_timeout", "4000", "-nd", "-d", "\(holdMilliseconds)",
        ])
        return SippTraffic.parse(result.out).succeeded
    }
}
