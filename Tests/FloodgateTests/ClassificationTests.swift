import CFloodgate
import FloodgateCore
import FloodgateLab
import Foundation
import Testing

/// Verdicts and counters of the real XDP program on crafted packets (BPF_PROG_TEST_RUN).
@Suite struct ClassificationTests {
    /// Runs `packet` once on a fresh program and returns the action and the class/reason it was counted under.
    func classify(_ packet: [UInt8], settings: Settings = .defaults, limits: [TrafficClass: Limit] = Limit.defaults)
        throws -> (action: UInt32, counted: [(TrafficClass, Reason)])
    {
        let program = try loadProgram(limits: limits, settings: settings)
        let action = try program.verdict(packet)
        let counters = try program.maps.counters()
        var counted: [(TrafficClass, Reason)] = []
        for c in TrafficClass.counted {
            for r in Reason.all where counters.packets[c, r] > 0 {
                #expect(counters.packets[c, r] == 1)
                #expect(counters.bytes[c, r] == UInt64(packet.count))
                counted.append((c, r))
            }
        }
        return (action, counted)
    }

    func expectCounted(
        _ packet: [UInt8], as c: TrafficClass, _ r: Reason, action: UInt32, settings: Settings = .defaults,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let result = try classify(packet, settings: settings)
        #expect(result.action == action, sourceLocation: sourceLocation)
        #expect(result.counted.count == 1, sourceLocation: sourceLocation)
        #expect(result.counted.first?.0 == c, "class", sourceLocation: sourceLocation)
        #expect(result.counted.first?.1 == r, "reason", sourceLocation: sourceLocation)
    }

    @Test func ipv4UDPToASIPPortIsSIP() throws {
        try expectCounted(Packet.udp4(dport: 5060), as: .options, .passed, action: XDP_PASS_ACTION)
        try expectCounted(Packet.udp4(dport: 5061), as: .options, .passed, action: XDP_PASS_ACTION)
    }

    @Test func tcpToASIPPortIsASynOrAStream() throws {
        let syn = Packet.ethernet(Packet.EtherType.ipv4, Packet.ipv4(proto: Packet.Proto.tcp, Packet.tcp(dport: 5061)))
        try expectCounted(syn, as: .sipSyn, .passed, action: XDP_PASS_ACTION)
        let synAck = Packet.ethernet(Packet.EtherType.ipv4, Packet.ipv4(proto: Packet.Proto.tcp, Packet.tcp(dport: 5060, flags: 0x12)))
        try expectCounted(synAck, as: .sipStream, .passed, action: XDP_PASS_ACTION)
        let ack = Packet.ethernet(Packet.EtherType.ipv6, Packet.ipv6(proto: Packet.Proto.tcp, Packet.tcp(dport: 5061, flags: 0x10)))
        try expectCounted(ack, as: .sipStream, .passed, action: XDP_PASS_ACTION)
    }

    @Test func ipv6UDPToASIPPortIsSIP() throws {
        try expectCounted(Packet.udp6(dport: 5060), as: .options, .passed, action: XDP_PASS_ACTION)
    }

    @Test func rtpRangeIsInclusiveAndUDPOnly() throws {
        try expectCounted(Packet.udp4(dport: 10000), as: .rtp, .passed, action: XDP_PASS_ACTION)
        try expectCounted(Packet.udp4(dport: 20000), as: .rtp, .passed, action: XDP_PASS_ACTION)
        try expectCounted(Packet.udp4(dport: 9999), as: .other, .passed, action: XDP_PASS_ACTION)
        try expectCounted(Packet.udp4(dport: 20001), as: .other, .passed, action: XDP_PASS_ACTION)
        let tcp = Packet.ethernet(Packet.EtherType.ipv4, Packet.ipv4(proto: Packet.Proto.tcp, Packet.tcp(dport: 15000)))
        try expectCounted(tcp, as: .other, .passed, action: XDP_PASS_ACTION)
    }

    @Test func configuredPortsReplaceTheDefaults() throws {
        let settings = Settings(sipPorts: [5080], rtpPorts: 30000...30010, malformed: .drop)
        try expectCounted(Packet.udp4(dport: 5080), as: .options, .passed, action: XDP_PASS_ACTION, settings: settings)
        try expectCounted(Packet.udp4(dport: 5060), as: .other, .passed, action: XDP_PASS_ACTION, settings: settings)
        try expectCounted(Packet.udp4(dport: 30005), as: .rtp, .passed, action: XDP_PASS_ACTION, settings: settings)
        let noRTP = Settings(sipPorts: [5060], rtpPorts: nil, malformed: .drop)
        try expectCounted(Packet.udp4(dport: 15000), as: .other, .passed, action: XDP_PASS_ACTION, settings: noRTP)
    }

    @Test func icmpAndICMPv6AreICMP() throws {
        let ping = Packet.ethernet(Packet.EtherType.ipv4, Packet.ipv4(proto: Packet.Proto.icmp, Packet.icmp()))
        try expectCounted(ping, as: .icmp, .passed, action: XDP_PASS_ACTION)
        let ping6 = Packet.ethernet(Packet.EtherType.ipv6, Packet.ipv6(proto: Packet.Proto.icmpv6, Packet.icmp(type: 128)))
        try expectCounted(ping6, as: .icmp, .passed, action: XDP_PASS_ACTION)
    }

    @Test func neighbourDiscoveryPassesEvenWhenICMPIsBlocked() throws {
        var limits = Limit.defaults
        limits[.icmp] = .block
        let solicitation = Packet.ethernet(
            Packet.EtherType.ipv6, Packet.ipv6(proto: Packet.Proto.icmpv6, Packet.icmp(type: 135), hopLimit: 255))
        let result = try classify(solicitation, limits: limits)
        #expect(result.action == XDP_PASS_ACTION)
        // Duplicate address detection sends its solicitation from the unspecified address.
        let dad = Packet.ethernet(Packet.EtherType.ipv6, Packet.ipv6(
            src: "::", dst: "ff02::1:ff00:1", proto: Packet.Proto.icmpv6, Packet.icmp(type: 135), hopLimit: 255))
        #expect(try classify(dad, limits: limits).action == XDP_PASS_ACTION)
        let echo = Packet.ethernet(Packet.EtherType.ipv6, Packet.ipv6(proto: Packet.Proto.icmpv6, Packet.icmp(type: 128)))
        let blocked = try classify(echo, limits: limits)
        #expect(blocked.action == XDP_DROP_ACTION)
        #expect(blocked.counted.first?.1 == .droppedBlocked)
    }

    /// Only real neighbour discovery is exempt: IPv6, hop limit 255 (RFC 4861 has receivers drop anything else).
    /// An IPv4 packet of protocol 58 whose first byte looks like an ND type, or forwarded ND, is plain ICMP, so a
    /// denied or banned source cannot walk past the policy with it.
    @Test func lookalikeNeighbourDiscoveryIsNotExempt() throws {
        let program = try loadProgram()
        try program.maps.addCIDRs([try CIDR("198.18.9.0/24"), try CIDR("2001:db8:9::/48")], to: .deny)
        for type: UInt8 in 133...137 {
            let v4 = Packet.ethernet(Packet.EtherType.ipv4,
                                     Packet.ipv4(src: "198.18.9.9", proto: Packet.Proto.icmpv6, Packet.icmp(type: type)))
            #expect(try program.judge(v4).2 == .droppedDeny, "IPv4 protocol 58, type \(type)")
            let forwarded = Packet.ethernet(Packet.EtherType.ipv6, Packet.ipv6(
                src: "2001:db8:9::9", proto: Packet.Proto.icmpv6, Packet.icmp(type: type), hopLimit: 254))
            #expect(try program.judge(forwarded).2 == .droppedDeny, "IPv6 hop limit 254, type \(type)")
            let real = Packet.ethernet(Packet.EtherType.ipv6, Packet.ipv6(
                src: "2001:db8:9::9", proto: Packet.Proto.icmpv6, Packet.icmp(type: type), hopLimit: 255))
            #expect(try program.verdict(real) == XDP_PASS_ACTION, "real ND, type \(type)")
        }
    }

    /// Sources no outside packet can have are malformed: IPv4 0/8, 127/8, multicast, limited broadcast; IPv6
    /// unspecified, loopback, multicast and IPv4-mapped (which would share an IPv4 source's buckets, bans, trust
    /// and allow entry).
    @Test(arguments: ["0.1.2.3", "127.0.0.1", "224.0.0.1", "239.1.1.1", "255.255.255.255"])
    func bogusIPv4SourcesAreMalformed(source: String) throws {
        let frame = Packet.request("INVITE", src: source)
        let result = try classify(frame)
        #expect(result.action == XDP_DROP_ACTION)
        #expect(result.counted.map(\.1) == [.droppedMalformed])
    }

    @Test(arguments: ["::", "::1", "ff02::1", "::ffff:198.18.50.1"])
    func bogusIPv6SourcesAreMalformed(source: String) throws {
        let frame = Packet.ethernet(Packet.EtherType.ipv6, Packet.ipv6(
            src: source, proto: Packet.Proto.udp, Packet.udp(dport: 5060, Array("INVITE sip:x SIP/2.0\r\n\r\n".utf8))))
        let result = try classify(frame)
        #expect(result.action == XDP_DROP_ACTION)
        #expect(result.counted.map(\.1) == [.droppedMalformed])
    }

    /// The hostile case behind the IPv4-mapped rule: an IPv6 packet from ::ffff:a.b.c.d must not pass as the
    /// allow-listed IPv4 trunk a.b.c.d.
    @Test func anIPv4MappedSourceDoesNotRideAnIPv4AllowEntry() throws {
        let program = try loadProgram()
        try program.maps.addCIDRs([try CIDR("198.18.50.1")], to: .allow)
        let mapped = Packet.ethernet(Packet.EtherType.ipv6, Packet.ipv6(
            src: "::ffff:198.18.50.1", proto: Packet.Proto.udp, Packet.udp(dport: 5060, Array("INVITE sip:x SIP/2.0\r\n\r\n".utf8))))
        #expect(try program.judge(mapped).2 == .droppedMalformed)
        #expect(try program.judge(Packet.request("INVITE", src: "198.18.50.1")).2 == .passedAllow)
    }

    @Test func nonIPFramesPassAsOther() throws {
        let arp = Packet.ethernet(Packet.EtherType.arp, [UInt8](repeating: 0, count: 28))
        try expectCounted(arp, as: .other, .passed, action: XDP_PASS_ACTION)
    }

    @Test func vlanAndQinQAreLookedThrough() throws {
        try expectCounted(Packet.udp4(dport: 5060, vlans: [Packet.EtherType.vlan]), as: .options, .passed,
                          action: XDP_PASS_ACTION)
        try expectCounted(Packet.udp4(dport: 5060, vlans: [Packet.EtherType.qinq, Packet.EtherType.vlan]), as: .options,
                          .passed, action: XDP_PASS_ACTION)
        // A third tag is beyond the parser: the frame is treated as non-IP, and passes as other.
        let three = Packet.udp4(dport: 5060, vlans: [Packet.EtherType.qinq, Packet.EtherType.vlan, Packet.EtherType.vlan])
        try expectCounted(three, as: .other, .passed, action: XDP_PASS_ACTION)
    }

    @Test func ipv4OptionsAreSkippedByIHL() throws {
        let options: [UInt8] = [0x94, 0x04, 0, 0] + [1, 1, 1, 0]  // router alert, NOPs, end
        let frame = Packet.ethernet(
            Packet.EtherType.ipv4, Packet.ipv4(proto: Packet.Proto.udp, Packet.udp(dport: 5060), options: options))
        try expectCounted(frame, as: .options, .passed, action: XDP_PASS_ACTION)
        let maxOptions = Packet.ethernet(
            Packet.EtherType.ipv4,
            Packet.ipv4(proto: Packet.Proto.udp, Packet.udp(dport: 5060), options: [UInt8](repeating: 1, count: 40)))
        try expectCounted(maxOptions, as: .options, .passed, action: XDP_PASS_ACTION)
    }

    @Test func invalidIPv4HeadersAreMalformed() throws {
        var shortIHL = Packet.udp4(dport: 5060)
        shortIHL[14] = 0x44  // IHL 4: shorter than the fixed header
        try expectCounted(shortIHL, as: .other, .droppedMalformed, action: XDP_DROP_ACTION)
        var wrongVersion = Packet.udp4(dport: 5060)
        wrongVersion[14] = 0x65
        try expectCounted(wrongVersion, as: .other, .droppedMalformed, action: XDP_DROP_ACTION)
        var tcp = Packet.ethernet(Packet.EtherType.ipv4, Packet.ipv4(proto: Packet.Proto.tcp, Packet.tcp(dport: 5060)))
        tcp[14 + 20 + 12] = 0x40  // TCP data offset 4
        try expectCounted(tcp, as: .other, .droppedMalformed, action: XDP_DROP_ACTION)
    }

    @Test func ipv6ExtensionHeadersAreWalked() throws {
        let chain: [(type: UInt8, body: [UInt8])] = [
            (Packet.Proto.hopByHop, Packet.optionsBody()),
            (Packet.Proto.destOpts, Packet.optionsBody(units: 3)),
            (Packet.Proto.routing, Packet.optionsBody(units: 2)),
            (Packet.Proto.fragment, Packet.fragmentBody(offset: 0, more: true)),
        ]
        let options = Packet.udp(dport: 5060, Array("OPTIONS sip:x SIP/2.0\r\n\r\n".utf8))
        try expectCounted(Packet.ethernet(Packet.EtherType.ipv6, Packet.ipv6(proto: Packet.Proto.udp, options, extensions: chain)),
                          as: .options, .passed, action: XDP_PASS_ACTION)
    }

    @Test func anIPv6ChainLongerThanTheWalkIsMalformed() throws {
        let atLimit = (0..<Int(FG_IPV6_MAX_EXT) - 1).map { _ in (type: Packet.Proto.destOpts, body: Packet.optionsBody()) }
        try expectCounted(Packet.udp6(dport: 5060, extensions: atLimit), as: .options, .passed, action: XDP_PASS_ACTION)
        let beyond = atLimit + [(type: Packet.Proto.destOpts, body: Packet.optionsBody())]
        try expectCounted(Packet.udp6(dport: 5060, extensions: beyond), as: .other, .droppedMalformed,
                          action: XDP_DROP_ACTION)
    }

    /// A chain may claim more than the frame holds: an extension header whose length puts the upper layer past
    /// the frame's end. The walk (`fg_ipv6_ext`, out of line to cut the verifier's count) hands back where the
    /// upper layer would start, and it is judged there: a UDP header that is not in the frame is malformed, behind
    /// an options header or an authentication header alike; ESP, of which nothing is read, is other traffic, as it
    /// is in a whole frame.
    @Test func anIPv6ChainThatEndsPastTheFrameIsJudgedWhereItEnds() throws {
        // Length bytes of 255: 2,048 bytes of destination options, 1,028 of authentication header; the frame
        // holds 8 of either.
        let longOptions = [UInt8(255)] + [UInt8](repeating: 0, count: 6)
        for ext in [(type: Packet.Proto.destOpts, body: longOptions), (type: Packet.Proto.ah, body: longOptions)] {
            let udp = Packet.ethernet(Packet.EtherType.ipv6, Packet.ipv6(
                proto: Packet.Proto.udp, Packet.udp(dport: 5060), extensions: [ext]))
            try expectCounted(udp, as: .other, .droppedMalformed, action: XDP_DROP_ACTION)
            let esp = Packet.ethernet(Packet.EtherType.ipv6, Packet.ipv6(
                proto: Packet.Proto.esp, [UInt8](repeating: 9, count: 16), extensions: [ext]))
            try expectCounted(esp, as: .other, .passed, action: XDP_PASS_ACTION)
        }
        // The same header at its true length: the upper layer is where it says, and read.
        let whole = [(type: Packet.Proto.destOpts, body: Packet.optionsBody(units: 256))]
        try expectCounted(Packet.udp6(dport: 5060, extensions: whole), as: .options, .passed, action: XDP_PASS_ACTION)
    }

    /// A lone fragment header is read where the IPv6 header is (`fg_walk_ipv6`), sparing a fragment the walk's
    /// call; a chain that starts with one and goes on takes the walk from its start. Each way must judge as the
    /// walk does: behind a first fragment's header and more headers, the request is still found and judged; a
    /// later fragment's header ends the parse whatever it says follows, and so does one after a first fragment's
    /// (a sender cannot make a later fragment pass for a first one by putting a first one's header before it); a
    /// frame that ends inside the fragment header, or inside the header after a first fragment's, is malformed.
    @Test func aLoneFragmentHeaderAndTheChainsThatStartWithOne() throws {
        let request = Packet.udp(dport: 5060, Array("OPTIONS sip:x SIP/2.0\r\n\r\n".utf8))
        let first = (type: Packet.Proto.fragment, body: Packet.fragmentBody(offset: 0, more: true))
        let later = (type: Packet.Proto.fragment, body: Packet.fragmentBody(offset: 185, more: false))
        let options = (type: Packet.Proto.destOpts, body: Packet.optionsBody())
        func frame(_ chain: [(type: UInt8, body: [UInt8])]) -> [UInt8] {
            Packet.ethernet(Packet.EtherType.ipv6, Packet.ipv6(proto: Packet.Proto.udp, request, extensions: chain))
        }
        try expectCounted(frame([first]), as: .options, .passed, action: XDP_PASS_ACTION)
        try expectCounted(frame([first, options]), as: .options, .passed, action: XDP_PASS_ACTION)
        try expectCounted(frame([first, options, options]), as: .options, .passed, action: XDP_PASS_ACTION)
        try expectCounted(frame([later]), as: .fragment, .passed, action: XDP_PASS_ACTION)
        try expectCounted(frame([later, options]), as: .fragment, .passed, action: XDP_PASS_ACTION)
        try expectCounted(frame([first, later]), as: .fragment, .passed, action: XDP_PASS_ACTION)
        try expectCounted(frame([first, options, later]), as: .fragment, .passed, action: XDP_PASS_ACTION)
        // The frame ends four bytes into the fragment header, or into the options header after a first one's.
        let chainStart = 14 + 40  // Ethernet, IPv6
        try expectCounted(Array(frame([first]).prefix(chainStart + 4)), as: .other, .droppedMalformed,
                          action: XDP_DROP_ACTION)
        try expectCounted(Array(frame([first, options]).prefix(chainStart + 8 + 1)), as: .other, .droppedMalformed,
                          action: XDP_DROP_ACTION)
    }

    @Test func ipv6NoNextHeaderAndESPAreOther() throws {
        let none = Packet.ethernet(Packet.EtherType.ipv6, Packet.ipv6(proto: Packet.Proto.noNext, []))
        try expectCounted(none, as: .other, .passed, action: XDP_PASS_ACTION)
        let esp = Packet.ethernet(Packet.EtherType.ipv6, Packet.ipv6(proto: Packet.Proto.esp, [UInt8](repeating: 9, count: 16)))
        try expectCounted(esp, as: .other, .passed, action: XDP_PASS_ACTION)
    }

    @Test func nonFirstFragmentsAreFragments() throws {
        // A non-first fragment has no UDP header; its payload bytes here look like port 5060 on purpose.
        let v4 = Packet.ethernet(
            Packet.EtherType.ipv4,
            Packet.ipv4(proto: Packet.Proto.udp, Packet.udp(dport: 5060), fragmentOffset: 185, moreFragments: false))
        try expectCounted(v4, as: .fragment, .passed, action: XDP_PASS_ACTION)
        let v6 = Packet.udp6(dport: 5060, extensions: [(Packet.Proto.fragment, Packet.fragmentBody(offset: 185, more: true))])
        try expectCounted(v6, as: .fragment, .passed, action: XDP_PASS_ACTION)
    }

    /// A first fragment is classified by its layer-4 header. A SIP request's header block must end in it: one
    /// that goes on in a later fragment could hide its CSeq there, where the server reads it after reassembly.
    @Test func firstFragmentsAreClassifiedByTheirLayer4Header() throws {
        let whole = Packet.udp(dport: 5060, Array("OPTIONS sip:x SIP/2.0\r\nCall-ID: f@x\r\n\r\nbody".utf8))
        let cut = Packet.udp(dport: 5060, Array("OPTIONS sip:x SIP/2.0\r\nCall-ID: f@x\r\n".utf8))
        for (payload, reason) in [(whole, Reason.passed), (cut, .droppedOversize)] {
            let v4 = Packet.ethernet(
                Packet.EtherType.ipv4,
                Packet.ipv4(proto: Packet.Proto.udp, payload, fragmentOffset: 0, moreFragments: true))
            try expectCounted(v4, as: .options, reason, action: reason.isDrop ? XDP_DROP_ACTION : XDP_PASS_ACTION)
            let v6 = Packet.ethernet(Packet.EtherType.ipv6, Packet.ipv6(
                proto: Packet.Proto.udp, payload, extensions: [(Packet.Proto.fragment, Packet.fragmentBody(offset: 0, more: true))]))
            try expectCounted(v6, as: .options, reason, action: reason.isDrop ? XDP_DROP_ACTION : XDP_PASS_ACTION)
        }
    }

    /// The plain frames (Ethernet, IPv4 without options or IPv6 without extension headers, UDP) take a short
    /// parse of their own (`fg_parse_plain_udp4` and `6`) when their payload has 24 bytes or more and starts with
    /// a letter; behind a VLAN tag the same packet takes the general walk. Both must count it alike: class,
    /// reason and action. The payloads include what the short parse hands back (shorter than 24 bytes, exactly
    /// 23, keep-alives, blanks first) and what depends on where it says the payload is and how long (a scanner's
    /// User-Agent, a CSeq that contradicts the method); the sources include bogus ones of both families; the
    /// frames come exact, with padding after the IP packet, and with a UDP length past the frame's end; and an
    /// IPv6 hop-by-hop header takes a frame off the short parse.
    @Test func thePlainFramesShortParseAgreesWithTheGeneralWalk() throws {
        let payloads: [String] = [
            "OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP x\r\n\r\n", "INVITE sip:1@x SIP/2.0\r\nCSeq: 1 INVITE\r\n\r\n",
            "REGISTER sip:x SIP/2.0\r\nCSeq: 1 REGISTER\r\n\r\n",
            "REGISTER sip:x SIP/2.0\r\nUser-Agent: friendly-scanner\r\nCSeq: 1 REGISTER\r\n\r\n",
            "INVITE sip:1@x SIP/2.0\r\nCSeq: 1 REGISTER\r\n\r\n", "OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP x\r\n",
            "OPTIONS sip:x SIP/2.0\r\n", "OPTIONS sip:xy SIP/2.0\r\n", "\r\n\r\n", "\r\n", "",
            "\r\nOPTIONS sip:x SIP/2.0\r\n\r\n", "SIP/2.0 200 OK\r\nCSeq: 1 OPTIONS\r\n\r\n", "ACK sip:x SIP/2.0",
            "options sip:x SIP/2.0\r\n\r\n", "REGISTERX sip:x SIP/2.0\r\n\r\n",
        ]
        #expect(payloads.contains { $0.utf8.count == 23 } && payloads.contains { $0.utf8.count == 24 })
        let sources4 = ["198.18.1.1", "127.0.0.1", "0.1.2.3", "224.0.0.1", "255.255.255.255"]
        let sources6 = ["2001:db8::1", "fe80::1", "::1", "::", "ff02::1", "::ffff:198.18.1.1"]
        let ordinary: Set<String> = ["198.18.1.1", "2001:db8::1", "fe80::1"]
        enum Framing: CaseIterable { case exact, padded, udpLengthPastTheEnd }
        var frames: [(name: String, plain: [UInt8], tagged: [UInt8])] = []
        var shortParse = (v4: 0, v6: 0)
        for text in payloads {
            let payload = Array(text.utf8)
            for port: UInt16 in [5060, 15000, 9] {
                for framing in Framing.allCases {
                    var udp = Packet.udp(dport: port, payload)
                    if framing == .udpLengthPastTheEnd {
                        udp.replaceSubrange(4..<6, with: Packet.be16(UInt16(8 + payload.count + 10)))
                    }
                    let padding: [UInt8] = framing == .padded ? [0, 0, 0, 0, 0, 0] : []
                    // What the short parse takes: 24 bytes or more of payload, a letter first.
                    let short = payload.count >= 24 && ![0x0D, 0x0A, 0x20, 0x09].contains(payload[0])
                    for src in sources4 {
                        let ip = Packet.ipv4(src: src, proto: Packet.Proto.udp, udp)
                        frames.append((
                            "\(src) :\(port) \(framing) \(text.debugDescription)",
                            Packet.ethernet(Packet.EtherType.ipv4, ip) + padding,
                            Packet.ethernet(Packet.EtherType.ipv4, vlans: [Packet.EtherType.vlan], ip) + padding))
                        if short && ordinary.contains(src) { shortParse.v4 += 1 }
                    }
                    for src in sources6 {
                        for hop in [false, true] {
                            let ip = Packet.ipv6(
                                src: src, proto: Packet.Proto.udp, udp,
                                extensions: hop ? [(Packet.Proto.hopByHop, Packet.optionsBody())] : [])
                            frames.append((
                                "\(src)\(hop ? " hop-by-hop" : "") :\(port) \(framing) \(text.debugDescription)",
                                Packet.ethernet(Packet.EtherType.ipv6, ip) + padding,
                                Packet.ethernet(Packet.EtherType.ipv6, vlans: [Packet.EtherType.vlan], ip) + padding))
                            if short && ordinary.contains(src) && !hop { shortParse.v6 += 1 }
                        }
                    }
                }
            }
        }
        // Enough of the frames meet the short parse's terms, in both families, for the comparison to be about it.
        #expect(shortParse.v4 >= 50 && shortParse.v6 >= 100, "\(shortParse)")
        let limits: [TrafficClass: Limit] = Dictionary(uniqueKeysWithValues: TrafficClass.all.map { ($0, .unlimited) })
        // No scanner bans: every frame is judged on its own content, not on an earlier one's ban of its source.
        var settings = Settings.defaults
        settings.scannerBanSeconds = 0
        let plain = try loadProgram(limits: limits, settings: settings)
        let tagged = try loadProgram(limits: limits, settings: settings)
        var reasons: Set<String> = []
        for (name, plainFrame, taggedFrame) in frames {
            let before = (try plain.maps.counters().packets, try tagged.maps.counters().packets)
            let actions = (try plain.verdict(plainFrame), try tagged.verdict(taggedFrame))
            let after = (try plain.maps.counters().packets, try tagged.maps.counters().packets)
            var counted: [[String]] = [[], []]
            for c in TrafficClass.counted {
                for r in Reason.all {
                    if after.0[c, r] > before.0[c, r] { counted[0].append("\(c) \(r)") }
                    if after.1[c, r] > before.1[c, r] { counted[1].append("\(c) \(r)") }
                }
            }
            #expect(actions.0 == actions.1, "\(name)")
            #expect(counted[0] == counted[1] && counted[0].count == 1, "\(name): \(counted[0]) against \(counted[1])")
            reasons.formUnion(counted[0])
        }
        #expect(!reasons.contains { $0.hasSuffix("dropped-ban") }, "\(reasons.sorted())")
        // The content was judged, not only classified: a scanner dropped, a contradiction malformed, requests passed.
        for expected in ["register dropped-scanner", "invite dropped-malformed", "options passed", "invite passed"] {
            #expect(reasons.contains(expected), "\(expected) in \(reasons.sorted())")
        }
    }

    /// Every prefix of a valid frame: until the last header byte the parser needs, the frame is malformed (dropped,
    /// or passed with --on-malformed pass); from then on it is classified. Nothing else may happen.
    @Test(arguments: [
        ("IPv4/UDP", Packet.udp4(dport: 5060), 14 + 20 + 8),
        ("802.1ad+802.1Q IPv4/UDP", Packet.udp4(dport: 5060, vlans: [Packet.EtherType.qinq, Packet.EtherType.vlan]),
         14 + 8 + 20 + 8),
        ("IPv4 options/TCP", Packet.ethernet(Packet.EtherType.ipv4, Packet.ipv4(
            proto: Packet.Proto.tcp, Packet.tcp(dport: 5061), options: [1, 1, 1, 0])), 14 + 24 + 20),
        ("IPv6 ext/UDP", Packet.udp6(dport: 5060, extensions: [(Packet.Proto.hopByHop, Packet.optionsBody(units: 2))]),
         14 + 40 + 16 + 8),
        ("IPv6/UDP", Packet.udp6(dport: 5060), 14 + 40 + 8),
        // Long enough a payload for the short parse to take the whole frame, and the general walk its prefixes.
        ("IPv4/UDP, 38-byte OPTIONS", Packet.ethernet(Packet.EtherType.ipv4, Packet.ipv4(
            proto: Packet.Proto.udp, Packet.udp(dport: 5060, Array("OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP x\r\n".utf8)))),
         14 + 20 + 8),
        ("IPv6/UDP, 38-byte OPTIONS", Packet.ethernet(Packet.EtherType.ipv6, Packet.ipv6(
            proto: Packet.Proto.udp, Packet.udp(dport: 5060, Array("OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP x\r\n".utf8)))),
         14 + 40 + 8),
        ("IPv4/ICMP", Packet.ethernet(Packet.EtherType.ipv4, Packet.ipv4(proto: Packet.Proto.icmp, Packet.icmp())),
         14 + 20 + 8),
    ])
    func truncationAtEveryLength(name: String, frame: [UInt8], headerEnd: Int) throws {
        let dropping = try loadProgram(limits: [.options: .unlimited, .icmp: .unlimited, .other: .unlimited])
        let passing = try loadProgram(
            limits: [.options: .unlimited, .icmp: .unlimited, .other: .unlimited],
            settings: Settings(sipPorts: [5060, 5061], rtpPorts: 10000...20000, malformed: .pass))
        var malformed: UInt64 = 0
        for length in Packet.ethernetHeaderLength...frame.count {
            let prefix = Array(frame.prefix(length))
            let expected = length < headerEnd ? XDP_DROP_ACTION : XDP_PASS_ACTION
            #expect(try dropping.verdict(prefix) == expected, "\(name) cut at \(length) bytes")
            #expect(try passing.verdict(prefix) == XDP_PASS_ACTION, "\(name) cut at \(length) bytes, malformed pass")
            if length < headerEnd { malformed += 1 }
        }
        let dropped = try dropping.maps.counters().packets
        let passed = try passing.maps.counters().packets
        let droppedMalformed = TrafficClass.counted.reduce(0) { $0 + dropped[$1, .droppedMalformed] }
        let passedMalformed = TrafficClass.counted.reduce(0) { $0 + passed[$1, .passedMalformed] }
        #expect(droppedMalformed == malformed)
        #expect(passedMalformed == malformed)
    }

    @Test func framesShorterThanAnEthernetHeaderAreRefusedByTheKernel() throws {
        // BPF_PROG_TEST_RUN itself refuses them (EINVAL), so no such frame reaches XDP this way; on a real NIC
        // they never reach XDP either. The parser's own bound check is covered by the truncation tests.
        let program = try loadProgram()
        #expect(throws: FloodgateError.self) { try program.verdict(Array(Packet.udp4(dport: 5060).prefix(13))) }
    }
}
