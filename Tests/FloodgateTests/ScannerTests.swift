import CFloodgate
import FloodgateCore
import FloodgateLab
import Foundation
import Testing

@Suite struct ScannerTests {
    func judge(_ packet: [UInt8], settings: Settings = .defaults) throws -> (UInt32, TrafficClass?, Reason?) {
        try loadProgram(settings: settings, policy: perSourceOnly).judge(packet)
    }

    /// A header line shorter than the header name its first letter suggests ("p" for Proxy-Authorization), near
    /// the end of the message, is an ordinary line: the walk goes on to the blank line after it. It used to end
    /// the walk there, and a first fragment whose header block "did not end" was dropped as oversize (found by
    /// the differential test's mutated frames: this one, with IP options and more fragments to come).
    @Test func aShortLineNearTheEndIsALineNotAnEnd() throws {
        let hex = "02000000000202000000000108004700002c123420003411ee52c612c87ac61200020101010101010101f1bb13c500100000"
            + "860a700a0d0a0d0a"
        let frame = stride(from: 0, to: hex.count, by: 2).map { i -> UInt8 in
            let start = hex.index(hex.startIndex, offsetBy: i)
            return UInt8(hex[start..<hex.index(start, offsetBy: 2)], radix: 16)!
        }
        #expect(try judge(frame).2 == .passed)
        // Unfragmented and readable: the same walk, ending at the blank line.
        #expect(try judge(Packet.request("OPTIONS", extra: ["p"])).2 == .passed)
    }

    @Test func userAgentSignaturesMatchAnyCase() throws {
        for ua in ["User-Agent: friendly-scanner", "user-agent: Friendly-Scanner", "USER-AGENT :sipvicious",
                   "User-Agent:\tVaxSIPUserAgent/3.1", "User-Agent: sipcli/v1.8"] {
            let (action, c, r) = try judge(Packet.request("REGISTER", extra: [ua]))
            #expect(action == XDP_DROP_ACTION, "\(ua)")
            #expect(c == .register && r == .droppedScanner, "\(ua)")
        }
        for ua in ["User-Agent: Linphone/5.0", "User-Agent: friendly", "X-User-Agent: friendly-scanner",
                   "User-Agents: friendly-scanner"] {
            #expect(try judge(Packet.request("REGISTER", extra: [ua])).2 == .passed, "\(ua)")
        }
    }

    @Test func theSipviciousFromFingerprintMatchesInFullAndCompactForm() throws {
        let full = Packet.sip(["OPTIONS sip:100@198.18.0.2 SIP/2.0", "From: \"sipvicious\"<sip:100@1.1.1.1>;tag=1"])
        #expect(try judge(full).2 == .droppedScanner)
        let compact = Packet.sip(["OPTIONS sip:100@198.18.0.2 SIP/2.0", "f: \"sipvicious\"<sip:100@1.1.1.1>;tag=1"])
        #expect(try judge(compact).2 == .droppedScanner)
        let other = Packet.sip(["OPTIONS sip:100@198.18.0.2 SIP/2.0", "f: \"alice\"<sip:100@1.1.1.1>;tag=1"])
        #expect(try judge(other).2 == .passed)
    }

    /// The User-Agent line placed so it ends exactly at byte 2,048 of the message (the last byte scanned), then
    /// later; and one at byte 900, inside the window.
    @Test func theScanCoversTheFirst2048BytesExactly() throws {
        let ua = "User-Agent: friendly-scanner\r\n"
        let window = Int(FG_SIP_SCAN_BYTES)
        func message(endingAt end: Int) -> [UInt8] {
            var head = "OPTIONS sip:100@198.18.0.2 SIP/2.0\r\nX-Pad: "
            let fill = end - head.utf8.count - 2 - ua.utf8.count
            head += String(repeating: "a", count: fill) + "\r\n"
            return Array((head + ua + "\r\n").utf8)
        }
        let inside = message(endingAt: window)
        #expect(Array(inside[(window - ua.utf8.count)..<window]) == Array(ua.utf8))
        #expect(try judge(Packet.sipRaw(inside)).2 == .droppedScanner)
        // A value ends at its CR: one byte later the CR is still the window's last byte, two bytes later it is
        // past the window, and the value counts as cut off; but then the header block does not end within the
        // window either, and such a request is dropped as oversize (its CSeq could hide past the scan).
        #expect(try judge(Packet.sipRaw(message(endingAt: window + 1))).2 == .droppedScanner)
        #expect(try judge(Packet.sipRaw(message(endingAt: window + 2))).2 == .droppedOversize)
        #expect(try judge(Packet.sipRaw(message(endingAt: 900))).2 == .droppedScanner)
        #expect(try judge(Packet.sipRaw(message(endingAt: 3000))).2 == .droppedOversize)
    }

    /// The message is copied for the walk by direct loads where the frame holds it whole: 32 bytes a turn, then
    /// words, then the word that ends at its last byte (BPF/lib/scanner.h, fg_copy_message). At each length from 68
    /// to 340 bytes, then every seventh to 2,048, three pairs of messages of that length are judged in turn, each
    /// pair differing in one byte of a User-Agent value: near its start, near its end, and the message's last byte
    /// (a value cut by the end of the message against one that ends at a CR there). A byte the copy missed would
    /// still hold the other message's and turn a scanner into a phone or a phone into a scanner. As the length grows
    /// the differing bytes fall in every part of the copy. All on one CPU, whose buffer the copies share. Then a
    /// frame whose Ethernet trailer, past the IP packet, would finish a cut-off signature: the message ends where
    /// the IP packet does, and the trailer is not walked.
    @Test func theMessageIsCopiedWholeAtEveryLength() throws {
        var settings = Settings.defaults
        settings.scannerBanSeconds = 0
        let unlimited = Dictionary(uniqueKeysWithValues: TrafficClass.all.map { ($0, Limit.unlimited) })
        let program = try loadProgram(limits: unlimited, settings: settings, policy: perSourceOnly)
        let start = "OPTIONS sip:1@x SIP/2.0\r\nX-Pad: "
        /// A message of `length` bytes that ends with `tail`, padded between.
        func message(_ length: Int, _ tail: String) -> [UInt8] {
            let fill = length - start.utf8.count - tail.utf8.count - 2
            return Array((start + String(repeating: "a", count: fill) + "\r\n" + tail).utf8)
        }
        let pairs = [
            ("User-Agent: xriendly-scanner\r\n\r\n", "User-Agent: friendly-scanner\r\n\r\n"),
            ("User-Agent: friendly-scannex\r\n\r\n", "User-Agent: friendly-scanner\r\n\r\n"),
            ("User-Agent: friendly-scannerx", "User-Agent: friendly-scanner\r"),
        ]
        let lengths = Array(68...340) + Array(stride(from: 341, through: Int(FG_SIP_SCAN_BYTES), by: 7))
            + [Int(FG_SIP_SCAN_BYTES)]
        var wrong: [String] = []
        try onOneCPU {
            for length in lengths {
                for (phone, scanner) in pairs {
                    let good = message(length, phone), bad = message(length, scanner)
                    precondition(good.count == length && bad.count == length)
                    for (bytes, want) in [(good, Reason.passed), (bad, .droppedScanner), (good, .passed)] {
                        let got = try program.judge(Packet.sipRaw(bytes)).2
                        if got != want {
                            let end = String(decoding: bytes.suffix(24), as: UTF8.self).debugDescription
                            wrong.append("\(length) bytes, ending \(end): \(got?.name ?? "-")")
                        }
                    }
                }
            }
        }
        #expect(wrong.isEmpty, "\(wrong.count) judged wrongly: \(wrong.prefix(5))")
        // The IP packet ends inside the value; the frame's trailer holds the rest of the signature and the blank line.
        let cut = Array("OPTIONS sip:100@198.18.0.2 SIP/2.0\r\nUser-Agent: friendly-scanne".utf8)
        let trailed = Packet.sipRaw(cut) + Array("r\r\n\r\n".utf8)
        let whole = message(80, "User-Agent: friendly-scanner\r\n\r\n")
        #expect(try program.judge(Packet.sipRaw(whole)).2 == .droppedScanner)
        #expect(try program.judge(trailed).2 == .passed)
    }

    @Test func responsesAndTheRequestLineAreNotScanned() throws {
        #expect(try judge(Packet.sip(["SIP/2.0 200 OK", "User-Agent: friendly-scanner"])).2 == .passed)
        #expect(try judge(Packet.sipRaw(Array("OPTIONS sip:User-Agent:friendly-scanner SIP/2.0\r\n\r\n".utf8))).2 == .passed)
    }

    @Test func aScannerIsBannedSoItsNextPacketsDropAsBanned() throws {
        let program = try loadProgram(policy: perSourceOnly)
        let scan = Packet.request("OPTIONS", src: "198.18.3.3", extra: ["User-Agent: friendly-scanner"])
        #expect(try program.judge(scan).2 == .droppedScanner)
        #expect(try program.judge(Packet.request("INVITE", src: "198.18.3.3")).2 == .droppedBan)
        let bans = try program.maps.bans()
        #expect(bans.count == 1)
        #expect(bans.first?.address.description == "198.18.3.3")
        #expect(bans.first?.origin == "scanner")
        let left = try #require(bans.first?.remainingSeconds())
        #expect(left > 590 && left <= 600)
        // With the ban time off, scanners are dropped but not banned.
        let noBan = try loadProgram(settings: Settings(sipPorts: [5060], rtpPorts: nil, malformed: .drop, scannerBanSeconds: 0),
                                    policy: perSourceOnly)
        #expect(try noBan.judge(scan).2 == .droppedScanner)
        #expect(try noBan.judge(Packet.request("INVITE", src: "198.18.3.3")).2 == .passed)
    }

    @Test func signaturesCanBeAddedAndRemovedLive() throws {
        let program = try loadProgram(settings: Settings(sipPorts: [5060], rtpPorts: nil, malformed: .drop, scannerBanSeconds: 0),
                                      policy: perSourceOnly)
        let packet = Packet.request("INVITE", extra: ["User-Agent: EvilDialer 2.0"])
        #expect(try program.judge(packet).2 == .passed)
        try program.maps.addSignatures([try Signature(.userAgent, "evildialer")])
        #expect(try program.judge(packet).2 == .droppedScanner)
        try program.maps.removeSignatures([try Signature(.userAgent, "evildialer")])
        #expect(try program.judge(packet).2 == .passed)
    }
}
