import ArgumentParser
import FloodgateCore
import Foundation

extension Floodgate {
    struct Demo: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the filter at work in a lab of network namespaces, then remove the lab.",
            discussion: """
                Builds two namespaces joined by a veth pair on 198.18.0.0/24 (nothing can leave them), attaches \
                Floodgate with its default limits to the router side, and has a phone send SIP requests at a \
                normal pace while an attacker floods. Everything is removed at the end, or on Ctrl-C.
                """)

        @Option(help: "Datagrams the attacker sends.") var flood = 50_000
        @Option(help: "SIP requests the phone sends, 5 per second.") var requests = 10
        @Flag(name: .shortAndLong, help: "Log libbpf's and Floodgate's debug messages.") var verbose = false

        func validate() throws {
            guard (1...10_000_000).contains(flood) else { throw ValidationError("--flood must be 1 to 10000000.") }
            guard (1...600).contains(requests) else { throw ValidationError("--requests must be 1 to 600.") }
        }

        func run() throws {
            LogSetup.bootstrapOnce(verbose: verbose)
            guard geteuid() == 0 else {
                throw FloodgateError("the demo builds network namespaces and loads BPF: run it as root")
            }
            let attacker = "198.18.0.66"
            let trunk = "198.18.0.10"
            let scanner = "198.18.0.99"
            print("Floodgate demo: a lab of network namespaces on 198.18.0.0/24 (nothing leaves this machine)")
            let lab = try NetworkLab(prefix: "fgd", extraOutsideAddresses: [attacker, trunk, scanner])
            DemoCleanup.install(lab)
            defer { lab.tearDown() }
            print("  outside namespace \(lab.outsideNS): phone \(lab.outsideAddress), trunk peer \(trunk), "
                + "attacker \(attacker), scanner \(scanner)")
            print("  router namespace  \(lab.routerNS): \(lab.routerInterface) \(lab.routerAddress), SIP server on :5060")

            let root = PinRoot(lab.pinRoot)
            var policy = Policy()
            policy.allow = [try CIDR("\(trunk)/32")]
            let outcome = try NetworkLab.inNamespace(lab.routerNS) {
                try root.attach(try Interface(lab.routerInterface), mode: .auto, policy: policy, maxSources: 10_000)
            }
            guard case .attached(let filter, _) = outcome else { throw FloodgateError("the lab was not new") }
            let register = Limit.defaults[.register] ?? .unlimited
            print("\n1. Attached Floodgate to \(lab.routerInterface): program \(filter.programID), "
                + "\(filter.mode ?? "?") mode; REGISTER limit per source: \(register); \(trunk) on the allow list")

            let server = try lab.udpSocket(in: lab.routerNS, bindTo: lab.routerAddress, port: 5060)
            let phone = try lab.udpSocket(in: lab.outsideNS, bindTo: lab.outsideAddress)
            let flooder = try lab.udpSocket(in: lab.outsideNS, bindTo: attacker)
            let peer = try lab.udpSocket(in: lab.outsideNS, bindTo: trunk)
            let scan = try lab.udpSocket(in: lab.outsideNS, bindTo: scanner)
            print("2. The phone sends \(requests) REGISTERs at 5/s and the trunk 100 INVITEs at 50/s; meanwhile the "
                + "attacker sends \(flood) REGISTERs as fast as it can and a scanner probes with OPTIONS")

            let group = DispatchGroup()
            let floodResult = SendCount()
            DispatchQueue.global().async(group: group) {
                Thread.sleep(forTimeInterval: 0.25)
                let payload = Array("REGISTER sip:198.18.0.2 SIP/2.0\r\nUser-Agent: flood\r\n\r\n".utf8)
                for _ in 0..<flood where (try? flooder.send(payload, to: lab.routerAddress, port: 5060)) != nil {
                    floodResult.count += 1
                }
            }
            DispatchQueue.global().async(group: group) {
                for i in 0..<100 {
                    _ = try? peer.send(Array("INVITE sip:\(i)@198.18.0.2 SIP/2.0\r\nCSeq: 1 INVITE\r\n\r\n".utf8),
                                       to: lab.routerAddress, port: 5060)
                    Thread.sleep(forTimeInterval: 0.02)
                }
            }
            DispatchQueue.global().async(group: group) {
                let probe = Array(("OPTIONS sip:100@198.18.0.2 SIP/2.0\r\nFrom: \"sipvicious\"<sip:100@1.1.1.1>;tag=1\r\n"
                    + "User-Agent: friendly-scanner\r\n\r\n").utf8)
                for _ in 0..<20 {
                    _ = try? scan.send(probe, to: lab.routerAddress, port: 5060)
                    Thread.sleep(forTimeInterval: 0.05)
                }
            }
            for i in 0..<requests {
                try phone.send(Array("REGISTER sip:198.18.0.2 SIP/2.0\r\nCSeq: \(i + 1) REGISTER\r\n\r\n".utf8),
                               to: lab.routerAddress, port: 5060)
                Thread.sleep(forTimeInterval: 0.2)
            }
            group.wait()
            let received = server.drain()
            print("   The SIP server received: phone \(received[lab.outsideAddress] ?? 0) of \(requests), "
                + "trunk \(received[trunk] ?? 0) of 100, attacker \(received[attacker] ?? 0) of \(floodResult.count), "
                + "scanner \(received[scanner] ?? 0) of 20")

            let maps = try root.maps(of: lab.routerInterface)
            print("\n3. floodgate stats")
            printStats(try StatsReport.read(filter, maps: maps))
            print("\n4. floodgate top")
            printTop(TopTalker.rank(try maps.sources(), count: 5))
            print("\n5. floodgate bans")
            for ban in try maps.bans() {
                print("   \(ban.address): \(ban.origin), \(ban.remainingSeconds().map { String(format: "%.0fs left", $0) } ?? "forever")")
            }

            try root.detach(interfaceName: lab.routerInterface)
            print("\n6. Detached Floodgate and removed the lab.")
        }
    }
}

private final class SendCount: @unchecked Sendable { var count = 0 }

/// Removes the lab when the demo is interrupted.
private enum DemoCleanup {
    nonisolated(unsafe) static var sources: [DispatchSourceSignal] = []

    static func install(_ lab: NetworkLab) {
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler {
                lab.tearDown()
                FileHandle.standardError.write(Data("\nInterrupted: the lab was removed.\n".utf8))
                exit(130)
            }
            source.resume()
            sources.append(source)
        }
    }
}
