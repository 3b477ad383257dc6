import ArgumentParser
import FloodgateAgent
import FloodgateCore
import FloodgateLab
import Foundation

extension Floodgate {
    struct Demo: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the filter at work in a lab of network namespaces, then remove the lab.",
            discussion: """
                Builds three namespaces on 198.18.0.0/15 (nothing can leave them): outside, a phone, a subscriber, \
                a trunk peer and an attacker; the router, with Floodgate and its default limits (the trunk on the \
                allow list) in front of SIP servers (sipp); behind it, a registrar that challenges, where the \
                subscriber registers with credentials before each flood (Floodgate verifies it from the answer). \
                While the phone, the subscriber and the trunk register and place calls, it launches the floods one \
                after another at full speed, shows live counters, and what the calls achieved. Then toll fraud: the phone, taken over, dials premium and satellite \
                numbers, and a burst to one national range, against destination rules, and presents a caller \
                number that isn't its own. Everything is removed at the end, or on Ctrl-C.
                """)

        @Option(help: "Seconds each flood lasts.") var seconds = 3.0
        @Option(help: "The floods, comma-separated, in order.")
        var scenarios = ["single-source", "register-scanner", "options-scan", "invite", "random-v4-/16", "syn-5061",
                         "rtp", "random-v6-/64"].joined(separator: ",")
        @Flag(name: .shortAndLong, help: "Log libbpf's and Floodgate's debug messages.") var verbose = false

        func validate() throws {
            guard seconds >= 1, seconds <= 60 else { throw ValidationError("--seconds must be 1 to 60.") }
            for name in scenarios.split(separator: ",") {
                do { _ = try FloodScenario.named(String(name)) } catch { throw ValidationError("\(error).") }
            }
        }

        func run() throws {
            LogSetup.bootstrapOnce(verbose: verbose)
            guard geteuid() == 0 else {
                throw FloodgateError("the demo builds network namespaces and loads BPF: run it as root")
            }
            guard FileManager.default.isExecutableFile(atPath: "/usr/bin/sipp") else {
                throw FloodgateError("the demo's phone and trunk are sipp, which is missing",
                                     hint: "apt-get install sip-tester (bash .ci/run demo installs it)")
            }
            let trunk = LegitimateLoad.trunkAddress
            print("Floodgate demo: a lab of network namespaces on 198.18.0.0/15 (nothing leaves this machine)")
            let subscriber = LegitimateLoad.subscriberAddress
            let lab = try NetworkLab(prefix: "fgd", extraOutsideAddresses: [trunk, subscriber],
                                     extraRouterAddresses: [LegitimateLoad.registrarAddress], server: true)
            DemoCleanup.install(lab)
            defer { lab.tearDown() }
            print("  outside \(lab.outsideNS): phone \(lab.outsideAddress), subscriber \(subscriber), trunk peer "
                + "\(trunk), the floods")
            print("  router  \(lab.routerNS): \(lab.routerInterface) — call server \(lab.routerAddress):5060, "
                + "registrar \(LegitimateLoad.registrarAddress):5060 (sipp)")
            print("  server  \(lab.serverNS ?? "?"): the subscriber's registrar \(lab.serverAddress):5060 (sipp; it "
                + "challenges), behind \(lab.routerInsideInterface ?? "?")")

            let root = PinRoot(lab.pinRoot)
            let outcome = try lab.attachFloodgate()
            guard case .attached(let filter) = outcome else { throw FloodgateError("the lab was not new") }
            let invite = Limit.defaults[.invite] ?? .unlimited
            print("\nAttached Floodgate to \(lab.routerInterface) (program \(filter.programID), \(filter.mode ?? "?") "
                + "mode): default policy — INVITE per source \(invite), per /24 \(Limit.defaultPrefix), scanner "
                + "signatures on; \(trunk) allow-listed; the inside program on \(lab.routerInsideInterface ?? "?") "
                + "reads the registrar's answers")
            let maps = try root.maps(of: lab.routerInterface)
            let live = isatty(STDOUT_FILENO) == 1
            let phase = LegitimateLoad(phoneCalls: Int(2 * seconds), phoneRegistrations: Int(2 * seconds),
                                       trunkCalls: Int(20 * seconds), trunkRegistrations: Int(10 * seconds),
                                       subscriberCalls: Int(2 * seconds), subscriberRegistrations: Int(2 * seconds))
            var totals = (attempted: 0, succeeded: 0)
            let names = scenarios.split(separator: ",").map(String.init)

            for (i, name) in names.enumerated() {
                // Each flood from an attacker of its own: a source banned in one flood stays banned in the next.
                let scenario = try FloodScenario.named(name, attacker: "198.18.1.\(66 + i)",
                                                       randomAttacker: "198.19.\(1 + i).66")
                print("\n[\(i + 1)/\(names.count)] \(name): \(scenario.summary), full speed for \(formatSeconds(seconds)), "
                    + "while the phone and the subscriber each place \(phase.phoneCalls) calls and "
                    + "\(phase.phoneRegistrations) registrations and the trunk \(phase.trunkCalls) and "
                    + "\(phase.trunkRegistrations)")
                // The flood, its receive and sipp on CPU 0 (as in the benchmark); the counters are read from CPU 1.
                let sipp = try SippTraffic(lab: lab, load: phase, seconds: seconds, cpu: 0)
                let flood = try lab.startFlood(scenario, count: 1_000_000_000, seconds: seconds, cpu: 0)
                defer { _ = try? flood.wait() }  // never leave it sending into a lab being torn down
                var previous = try maps.counters()
                var previousTime = monotonicNanoseconds()
                let start = previousTime
                while !flood.finished(within: 0.5) {
                    let now = monotonicNanoseconds()
                    let counters = try maps.counters()
                    let line = liveLine(counters, previous, seconds: Double(now - previousTime) / 1e9,
                                        at: Double(now - start) / 1e9, bans: (try? maps.bans().count) ?? 0)
                    if live {
                        print("\r\u{1B}[2K" + line, terminator: "")
                        fflush(stdout)
                    } else {
                        print(line)
                    }
                    previous = counters
                    previousTime = now
                }
                if live { print("") }
                // A generator that failed says why; one the kernel refused live frames, how it sent instead.
                if let refused = try flood.wait().liveFramesRefused {
                    print("  (live frames refused: \(refused); the flood went through a packet socket, far slower)")
                }
                if let top = TopTalker.rank(try maps.sources(), count: 1).first, top.drops > 0 {
                    print("  top talker so far: \(top.address), \(top.packets) packets, \(top.drops) dropped "
                        + "(\(top.classes.joined(separator: ",")))")
                }
                let results = sipp.finish()
                let attempted = results.reduce(0) { $0 + $1.attempted }
                let succeeded = results.reduce(0) { $0 + $1.succeeded }
                totals.attempted += attempted
                totals.succeeded += succeeded
                print("  legitimate: " + results.map { r in
                    "\(r.source) \(r.kind) \(r.succeeded)/\(r.attempted)"
                        + (r.retransmissions > 0 ? " (\(r.retransmissions) retransmitted)" : "")
                }.joined(separator: ", "))
            }

            print("\nAfter \(names.count) floods: \(totals.succeeded) of \(totals.attempted) legitimate registrations and "
                + "calls completed.")
            let verified = try maps.trustedSources().map(\.address.description).sorted()
            print("Verified by Floodgate from the registrar's answers: "
                + (verified.isEmpty ? "none" : verified.joined(separator: ", "))
                + (verified == [subscriber] ? " (the subscriber alone: the phone sends no credentials)" : ""))
            try fraudScene(lab, root: root, maps: maps)
            print("\nfloodgate stats")
            printStats(try StatsReport.read(filter, maps: maps))
            print("\nfloodgate top")
            printTop(TopTalker.rank(try maps.sources(), count: 5))
            print("\nfloodgate bans")
            let bans = try maps.bans()
            printTable(["SOURCE", "ORIGIN", "EXPIRES"], bans.map { ban in
                [ban.address.description, ban.origin,
                 ban.remainingSeconds().map { String(format: "in %.0f s", $0) } ?? "never"]
            })
            try root.detach(interfaceName: lab.routerInterface)
            print("\nDetached Floodgate and removed the lab.")
        }

        /// Toll fraud: destination rules put in force on the running filter (a UK number plan, the shipped high-risk
        /// list, and at most 3 calls a minute to London per source); then the phone, as if taken over, dials a
        /// satellite number and a premium one, 5 calls to London and 2 elsewhere in the country, to a sipp UAS on the
        /// router that answers every INVITE.
        private func fraudScene(_ lab: NetworkLab, root: PinRoot, maps: FilterMaps) throws {
            let highRisk = try DestinationRule.parseList(ShippedFiles.highRiskDestinations, name: "high-risk.txt")
            _ = try root.changePolicy([lab.routerInterface]) { _, policy in
                policy.settings.numbers = NumberPlan(countryCode: "44", international: ["00"], national: "0", bare: .e164)
                policy.destinations = Swift.Set(highRisk + [try DestinationRule("+4420", .limit(perSource: 3, total: nil))])
            }
            print("\nToll fraud: floodgate dest add (\(highRisk.count) high-risk ranges blocked: satellite, international "
                + "premium and shared cost, UK 09/087/070; +4420 limited to 3 calls a minute per source)")
            let server = try SippUAS(namespace: lab.routerNS, address: lab.routerAddress)
            defer { server.stop() }
            let before = try maps.counters()
            for (i, (number, calls, what)) in [("008816123456", 2, "a satellite phone (+881)"),
                                             ("09061234567", 2, "a UK premium-rate number (09)"),
                                             ("02079460000", 5, "London (+4420), 2 a second"),
                                             ("01611234567", 2, "Manchester (+44161)")].enumerated() {
                let connected = try SippUAS.calls(to: number, server: lab.routerAddress, from: lab.outsideAddress,
                                                  port: 5090 + i, count: calls, namespace: lab.outsideNS)
                print("  the phone dials \(number), \(what): \(connected) of \(calls) calls connected")
            }
            let after = try maps.counters()
            let blocked = after.packets[.invite, .droppedDestination] - before.packets[.invite, .droppedDestination]
            let limited = after.packets[.invite, .droppedDestinationLimit] - before.packets[.invite, .droppedDestinationLimit]
            print("  INVITEs dropped: \(blocked) dropped-destination, \(limited) dropped-destination-limit "
                + "(retransmissions included; a retransmitted call is charged once)")

            // Caller ID: the phone's network may present only its own numbers (+44 161 496 0…).
            _ = try root.changePolicy([lab.routerInterface]) { _, policy in
                policy.callerID = CallerIDPolicy(mode: .enforce, entries: [
                    try .init(sources: [try CIDR(lab.outsideAddress)], numbers: ["+44 161 496 0"]),
                ])
            }
            print("\nCaller ID (config caller_id:, put in force on the running filter): \(lab.outsideAddress) may present "
                + "only +44 161 496 0…, enforced")
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("floodgate-demo-\(getpid())")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: dir) }
            for (i, (caller, what)) in [("01614960123", "its own number"), ("+12125550100", "a New York number, spoofed")]
                .enumerated() {
                let file = dir.appendingPathComponent("caller-\(i).xml")
                try SippTraffic.callScenario(caller: caller).write(to: file, atomically: true, encoding: .utf8)
                let connected = try SippUAS.calls(to: "01611234567", server: lab.routerAddress, from: lab.outsideAddress,
                                                  port: 5095 + i, count: 1, namespace: lab.outsideNS, scenario: file.path)
                print("  the phone calls presenting \(caller), \(what): \(connected) of 1 connected")
            }
            print("  INVITEs refused for their caller number: \(try maps.callerIDMismatches().refused)")
        }

        /// One line of live counters: what arrived, what was dropped (and the class most dropped), what passed per
        /// class, and the bans.
        private func liveLine(_ now: Counters, _ before: Counters, seconds: Double, at: Double, bans: Int) -> String {
            var total: UInt64 = 0, dropped: UInt64 = 0
            var passed: [String] = []
            var mostDropped: (name: String, count: UInt64) = ("", 0)
            for c in TrafficClass.counted {
                var classPassed: UInt64 = 0, classDropped: UInt64 = 0
                for r in Reason.all {
                    let n = now.packets[c, r] &- before.packets[c, r]
                    if r.isDrop { classDropped += n } else { classPassed += n }
                }
                total += classPassed + classDropped
                dropped += classDropped
                if classDropped > mostDropped.count { mostDropped = (c.name, classDropped) }
                if classPassed > 0 { passed.append("\(c.name) \(Int((Double(classPassed) / seconds).rounded()))") }
            }
            let share = total > 0 ? Double(dropped) / Double(total) * 100 : 0
            let what = mostDropped.count > 0 ? String(format: " (%@ %.2fM/s)", mostDropped.name,
                                                      Double(mostDropped.count) / seconds / 1e6) : ""
            return String(format: "  %4.1f s  in %5.2f Mpps  dropped %6.2f%%", at, Double(total) / seconds / 1e6, share)
                + what + "  passed/s: " + (passed.isEmpty ? "none" : passed.joined(separator: ", ")) + "  bans: \(bans)"
        }
    }
}

private func formatSeconds(_ s: Double) -> String { s == s.rounded() ? "\(Int(s)) s" : String(format: "%.1f s", s) }

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
