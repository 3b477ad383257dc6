import CFloodgate
@testable import FloodgateBPF
import FloodgateCore
import FloodgateLab
import Foundation
import Testing

/// Bans and denials held by source alone (the drop cache's source-keyed slots, BPF/lib/drop_cache.h): once the policy
/// has found one for a plain UDP frame, the source's UDP frames are dropped before their class is read, and counted
/// in the counters' "unparsed" row. A ban does not depend on the class, the ports or the payload, so no framing of the
/// bytes gets such a source through; and the slot is keyed by the whole address, so no other address's frames are
/// dropped by it.
@Suite struct UnparsedDropTests {
    static let drop = UInt32(XDP_DROP.rawValue), pass = UInt32(XDP_PASS.rawValue)

    /// Judges `packet`, and checks that it was counted exactly once.
    static func judge(_ program: FloodgateProgram, _ packet: [UInt8]) throws -> (UInt32, TrafficClass?, Reason?) {
        let before = try program.maps.counters().packets
        let result = try program.judge(packet)
        let after = try program.maps.counters().packets
        #expect(after.flat.reduce(0, +) - before.flat.reduce(0, +) == 1, "one frame, one count")
        return result
    }

    /// Judges an OPTIONS from `address`, as ``judge(_:_:)`` does.
    static func judgeOptions(_ program: FloodgateProgram, from address: SourceAddress) throws
        -> (UInt32, TrafficClass?, Reason?)
    {
        try judge(program, PolicyOrderTests.request("OPTIONS", from: address.description))
    }

    /// The first lab IPv4 address that `wanted` takes: a neighbour found by its drop-cache slot.
    static func labIPv4(where wanted: (SourceAddress) -> Bool) throws -> SourceAddress {
        let found = (0..<NetworkLab.labIPv4Count).lazy.compactMap { SourceAddress(NetworkLab.labIPv4($0)) }
            .first(where: wanted)
        return try #require(found)
    }

    /// A program whose policy denies `address` and the neighbour ``labIPv4(where:)`` finds with `wanted`, and that
    /// neighbour.
    static func denying(_ address: SourceAddress, andNeighbour wanted: (SourceAddress) -> Bool) throws
        -> (FloodgateProgram, SourceAddress)
    {
        let neighbour = try labIPv4(where: wanted)
        var policy = perSourceOnly
        policy.deny = [try CIDR(address.description), try CIDR(neighbour.description)]
        return (try loadProgram(policy: policy), neighbour)
    }

    /// Every frame a banned source sends is dropped, however its bytes are framed; the UDP ones (a leading CRLF, a
    /// keep-alive, RTP, a fragment, a datagram too short for its own UDP header) before they are read. Frames the
    /// source-keyed slot does not look at (TCP, ICMP, IPv4 options, a VLAN tag, IPv6 extension headers) are dropped by
    /// the policy and then by their (source, class) slot, as before. The ban lifted, the next frame passes.
    @Test func aBannedSourceIsDroppedBeforeItsClassIsReadHoweverItsBytesAreFramed() throws {
        try onOneCPU {
            let program = try loadProgram(policy: perSourceOnly)
            for banned in ["198.18.90.1", "2001:db8:90::1"] {
                let address = try #require(SourceAddress(banned))
                let v4 = address.isIPv4
                func udp(dport: UInt16, _ payload: [UInt8]) -> [UInt8] {
                    v4 ? Packet.ethernet(Packet.EtherType.ipv4, Packet.ipv4(src: banned, proto: Packet.Proto.udp,
                                                                            Packet.udp(dport: dport, payload)))
                        : Packet.ethernet(Packet.EtherType.ipv6, Packet.ipv6(src: banned, proto: Packet.Proto.udp,
                                                                             Packet.udp(dport: dport, payload)))
                }
                let register = PolicyOrderTests.request("REGISTER", from: banned)
                try program.maps.ban(address, seconds: nil)
                // The first plain frame is judged by the policy, which fills the source's slot.
                let first = try Self.judge(program, register)
                #expect(first.0 == Self.drop && first.1 == .register && first.2 == .droppedBan, "\(banned): \(first)")
                let unparsed: [(String, [UInt8])] = [
                    ("a REGISTER", register),
                    ("an INVITE", PolicyOrderTests.request("INVITE", from: banned)),
                    ("an INVITE after a leading CRLF", udp(dport: 5060, Array("\r\n\r\nINVITE sip:100@x SIP/2.0\r\n\r\n".utf8))),
                    ("a keep-alive", udp(dport: 5060, [13, 10, 13, 10])),
                    ("RTP", udp(dport: 12000, [UInt8](repeating: 0x80, count: 172))),
                    ("a datagram to another port", udp(dport: 53, [1, 2, 3])),
                    ("a datagram cut inside its UDP header",
                     Array(udp(dport: 5060, []).prefix(Packet.ethernetHeaderLength + (v4 ? 20 : 40) + 3))),
                ] + (v4 ? [("a non-first fragment", Packet.ethernet(Packet.EtherType.ipv4, Packet.ipv4(
                    src: banned, proto: Packet.Proto.udp, [UInt8](repeating: 7, count: 64), fragmentOffset: 100)))] : [])
                for (what, frame) in unparsed {
                    let r = try Self.judge(program, frame)
                    #expect(r.0 == Self.drop && r.1 == .unparsed && r.2 == .droppedBan, "\(banned): \(what): \(r)")
                }
                let sip = Array("OPTIONS sip:100@x SIP/2.0\r\nCall-ID: 1\r\n\r\n".utf8)
                let classSlot: [(String, [UInt8], TrafficClass)] = [
                    ("a TCP SYN", v4 ? Packet.ethernet(Packet.EtherType.ipv4, Packet.ipv4(src: banned, proto: Packet.Proto.tcp, Packet.tcp(dport: 5060)))
                        : Packet.ethernet(Packet.EtherType.ipv6, Packet.ipv6(src: banned, proto: Packet.Proto.tcp, Packet.tcp(dport: 5060))), .sipSyn),
                    ("an echo request", v4 ? Packet.ethernet(Packet.EtherType.ipv4, Packet.ipv4(src: banned, proto: Packet.Proto.icmp, Packet.icmp()))
                        : Packet.ethernet(Packet.EtherType.ipv6, Packet.ipv6(src: banned, proto: Packet.Proto.icmpv6, Packet.icmp(type: 128))), .icmp),
                    ("a VLAN-tagged OPTIONS", Packet.ethernet(v4 ? Packet.EtherType.ipv4 : Packet.EtherType.ipv6, vlans: [0x8100],
                        v4 ? Packet.ipv4(src: banned, proto: Packet.Proto.udp, Packet.udp(dport: 5060, sip))
                            : Packet.ipv6(src: banned, proto: Packet.Proto.udp, Packet.udp(dport: 5060, sip))), .options),
                    v4 ? ("an OPTIONS with IP options", Packet.ethernet(Packet.EtherType.ipv4, Packet.ipv4(
                        src: banned, proto: Packet.Proto.udp, Packet.udp(dport: 5060, sip), options: [1, 1, 1, 1])), .options)
                        : ("an OPTIONS behind a destination-options header", Packet.ethernet(Packet.EtherType.ipv6, Packet.ipv6(
                            src: banned, proto: Packet.Proto.udp, Packet.udp(dport: 5060, sip),
                            extensions: [(Packet.Proto.destOpts, Packet.optionsBody())])), .options),
                ]
                for (what, frame, c) in classSlot {
                    for round in 0..<2 {
                        let r = try Self.judge(program, frame)
                        #expect(r.0 == Self.drop && r.1 == c && r.2 == .droppedBan, "\(banned): \(what), round \(round): \(r)")
                    }
                    // The policy filled the (source, class) slot, which dropped the second.
                    let (slot, tag) = FilterMaps.dropSlot(address, c)
                    #expect(try program.maps.dropTags()[0][slot] == tag, "\(banned): \(what)")
                }
                // An IPv4-mapped IPv6 source is bogus, never the IPv4 address's: malformed, not banned.
                if v4 {
                    let mapped = Packet.ethernet(Packet.EtherType.ipv6, Packet.ipv6(
                        src: "::ffff:\(banned)", proto: Packet.Proto.udp, Packet.udp(dport: 5060, sip)))
                    let r = try Self.judge(program, mapped)
                    #expect(r.1 == .other && r.2 == .droppedMalformed, "\(r)")
                }
                #expect(try program.maps.unban(address))
                let lifted = try Self.judge(program, register)
                #expect(lifted.0 == Self.pass && lifted.1 == .register && lifted.2 == .passed, "\(banned): \(lifted)")
            }
        }
    }

    /// A banned source's drops before parsing still reach its entry in `fg_sources`, and `top`: its source-keyed slot
    /// (or the CPU's state, while it is the held source) counts them pending and adds them to one of the source's
    /// entries, every FG_DROP_CACHE_FLUSH drops and when the slot is reused; `sources()` adds what is still pending.
    /// The entry is the filling frame's class's if the source has one, else (for FG_SOURCE_SEARCH_PENDING drops or
    /// more) the first other class it has one for, which the slot then keeps. So a first frame after the ban to a class
    /// without an entry (UDP to port 53: unlimited, never tracked) does not hide the drops, a refill while drops are
    /// pending keeps them where they were, and a fresh fill by a tracked class that is not the first sends them to that
    /// class. A banned source without an entry gets none, however many frames it sends: a forger cannot fill the map
    /// this way. And a banned address that takes the slot does not take the first source's drops with it.
    @Test func aBannedSourcesDropsBeforeParsingStillReachItsEntry() throws {
        try onOneCPU {
            let program = try loadProgram(policy: perSourceOnly)
            let phone = "198.18.91.1", stranger = "198.18.91.2"
            let phoneAddress = try #require(SourceAddress(phone))
            let strangerAddress = try #require(SourceAddress(stranger))
            #expect(FilterMaps.sourceDropSlot(strangerAddress).slot != FilterMaps.sourceDropSlot(phoneAddress).slot)
            func entry(_ address: SourceAddress, _ c: TrafficClass, pending: Bool = true) throws -> SourceEntry? {
                try (pending ? program.maps.sources() : program.maps.trackedSources())
                    .first { $0.address == address && $0.trafficClass == c }
            }
            let register = PolicyOrderTests.request("REGISTER", from: phone)
            let invite = PolicyOrderTests.request("INVITE", from: phone)
            let options = PolicyOrderTests.request("OPTIONS", from: phone)
            let dns = Packet.ethernet(Packet.EtherType.ipv4, Packet.ipv4(
                src: phone, proto: Packet.Proto.udp, Packet.udp(dport: 53, [UInt8](repeating: 0x41, count: 32))))
            // Tracked in REGISTER and OPTIONS; it never sent an INVITE.
            #expect(try Self.judge(program, register).2 == .passed)
            #expect(try Self.judge(program, options).2 == .passed)
            let before = try #require(try entry(phoneAddress, .register))
            let optionsBefore = try #require(try entry(phoneAddress, .options))
            #expect(try entry(phoneAddress, .invite) == nil)
            try program.maps.ban(phoneAddress, seconds: nil)
            // The first frame after the ban fills the slot: a plain datagram of a class that has no entry.
            let first = try Self.judge(program, dns)
            #expect(first.1 == .other && first.2 == .droppedBan, "\(first)")
            // Then REGISTERs and INVITEs alike, before their class is read: all to the first class the phone has an
            // entry for (REGISTER), none to OPTIONS.
            let flush = Int(FG_DROP_CACHE_FLUSH), sent = flush + 44
            for i in 0..<sent {
                let r = try Self.judge(program, i % 2 == 0 ? register : invite)
                #expect(r.0 == Self.drop && r.1 == .unparsed && r.2 == .droppedBan, "frame \(i): \(r)")
                if i == 19 {
                    // Before any flush, `top` puts the 20 pending where the flush will: REGISTER, not port 53's class.
                    #expect(try entry(phoneAddress, .register)?.drops == before.drops + 20)
                    #expect(try entry(phoneAddress, .other) == nil)
                }
            }
            let after = try #require(try entry(phoneAddress, .register))
            #expect(after.drops - before.drops == UInt64(sent), "every drop, pending or added")
            #expect(after.packets - before.packets == UInt64(sent))
            #expect(try entry(phoneAddress, .options)?.drops == optionsBefore.drops)
            // In the map itself, FG_DROP_CACHE_FLUSH of them were added; the rest are pending (on the CPU).
            let stored = try #require(try entry(phoneAddress, .register, pending: false))
            #expect(stored.drops - before.drops == UInt64(flush), "\(stored.drops) \(before.drops)")
            #expect(try entry(phoneAddress, .invite) == nil, "no entry made for the INVITEs")

            // A change of policy makes the slot stale; an OPTIONS refills it while 44 drops are pending. They
            // stay with REGISTER, and so do the drops after it.
            try program.maps.setLimit(try program.maps.limit(for: .other), for: .other)
            let refill = try Self.judge(program, options)
            #expect(refill.1 == .options && refill.2 == .droppedBan, "\(refill)")
            for _ in 0..<10 {
                #expect(try Self.judge(program, register).1 == .unparsed)
            }
            #expect(try entry(phoneAddress, .register)?.drops == after.drops + 10)
            #expect(try entry(phoneAddress, .options)?.drops == optionsBefore.drops)

            // A stranger banned before it ever had an entry: none is made, however many frames it sends.
            let entries = try program.maps.trackedSources().count
            try program.maps.ban(strangerAddress, seconds: nil)
            let strangers = PolicyOrderTests.request("OPTIONS", from: stranger)
            for _ in 0...flush {
                #expect(try Self.judge(program, strangers).2 == .droppedBan)
            }
            #expect(try program.maps.trackedSources().count == entries)
            #expect(try program.maps.sources().first { $0.address == strangerAddress } == nil)

            // Another banned source whose slot is the phone's takes it: the phone's pending drops are added to the
            // phone's REGISTER entry before the slot changes hands.
            let slot = FilterMaps.sourceDropSlot(phoneAddress).slot
            let neighbour = try Self.labIPv4 { FilterMaps.sourceDropSlot($0).slot == slot && $0 != phoneAddress }
            try program.maps.ban(neighbour, seconds: nil)
            let takeOver = PolicyOrderTests.request("OPTIONS", from: neighbour.description)
            #expect(try Self.judge(program, takeOver).2 == .droppedBan)
            let handedOver = try #require(try entry(phoneAddress, .register, pending: false))
            #expect(handedOver.drops - before.drops == UInt64(sent + 10), "all added when the slot changed hands")
            #expect(try entry(neighbour, .options) == nil)
            // The phone's OPTIONS takes the slot back, a fill with nothing pending: the drops after it go to its
            // OPTIONS entry, which it has, not to its first class.
            #expect(try Self.judge(program, options).2 == .droppedBan)
            for _ in 0..<10 {
                #expect(try Self.judge(program, register).1 == .unparsed)
            }
            #expect(try entry(phoneAddress, .options)?.drops == optionsBefore.drops + 10)
            #expect(try entry(phoneAddress, .register)?.drops == after.drops + 10)
            // The ban lifted, the phone's next REGISTER passes, and its drops stay counted.
            #expect(try program.maps.unban(phoneAddress))
            #expect(try Self.judge(program, register).2 == .passed)
            let lifted = try #require(try entry(phoneAddress, .register))
            #expect(lifted.drops == after.drops + 10 && lifted.packets == after.packets + 11, "\(lifted) \(after)")
        }
    }

    /// What a forger can do with a source-keyed slot. The slot's index and tag fold the address by XOR, so a forger
    /// can pick an address with a denied source's slot and tag (an IPv6 address with two words swapped): its frames
    /// are compared by their whole address, go on to the policy and pass, and the denied source stays dropped. A
    /// neighbour whose denial takes the slot sends the first source back to the policy, which drops it again. And a
    /// denied IPv6 address still resolves: neighbour discovery never reaches the slot. Then the denial is lifted.
    @Test func aForgerCannotTurnASourceKeyedSlotAgainstAnotherAddress() throws {
        try onOneCPU {
            let denied = try #require(SourceAddress("2001:db8::1:0:2"))
            let twin = try #require(SourceAddress("2001:db8::2:0:1"))
            let (slot, tag) = FilterMaps.sourceDropSlot(denied)
            #expect(FilterMaps.sourceDropSlot(twin) == (slot, tag))
            let (program, neighbour) = try Self.denying(denied) {
                FilterMaps.sourceDropSlot($0).slot == slot && FilterMaps.sourceDropSlot($0).tag != tag
            }
            func judge(_ address: SourceAddress) throws -> (UInt32, TrafficClass?, Reason?) {
                try Self.judgeOptions(program, from: address)
            }
            var r = try judge(denied)
            #expect(r.1 == .options && r.2 == .droppedDeny, "the policy first: \(r)")
            #expect(try program.maps.dropTags()[0][slot] == tag, "the program's tag is the one the test computed")
            r = try judge(denied)
            #expect(r.0 == Self.drop && r.1 == .unparsed && r.2 == .droppedDeny, "then the slot: \(r)")
            r = try judge(twin)
            #expect(r.0 == Self.pass && r.1 == .options && r.2 == .passed, "\(twin) has \(denied)'s slot and tag: \(r)")
            #expect(try judge(denied).1 == .unparsed)
            // The neighbour's denial takes the slot, and its tag; the first source goes back to the policy once.
            #expect(try judge(neighbour).2 == .droppedDeny)
            #expect(try program.maps.dropTags()[0][slot] == FilterMaps.sourceDropSlot(neighbour).tag)
            #expect(try judge(neighbour).1 == .unparsed)
            r = try judge(denied)
            #expect(r.1 == .options && r.2 == .droppedDeny, "\(r)")
            #expect(try judge(denied).1 == .unparsed)
            #expect(try judge(twin).2 == .passed)
            // Neighbour solicitation from the denied address (hop limit 255) is never limited.
            let solicitation = Packet.ethernet(Packet.EtherType.ipv6, Packet.ipv6(
                src: denied.description, dst: "ff02::1:ff00:1", proto: Packet.Proto.icmpv6, Packet.icmp(type: 135),
                hopLimit: 255))
            r = try Self.judge(program, solicitation)
            #expect(r.0 == Self.pass && r.2 == .passed, "\(r)")
            // Lifted: its next frame passes at once.
            try program.maps.removeCIDRs([try CIDR(denied.description)], from: .deny)
            r = try judge(denied)
            #expect(r.0 == Self.pass && r.1 == .options && r.2 == .passed, "\(r)")
        }
    }

    /// The source a source-keyed slot last dropped on a CPU is held in that CPU's state, so its next frames are
    /// dropped by a compare of their source, without the key, hash, tag and slot compare (lib/drop_cache.h,
    /// fg_held_source). The copy says no more than its slot: the IPv4-mapped IPv6 form of the held IPv4 source is
    /// malformed, never the source's; and a denial that takes the slot ends the copy at once, so the first source's
    /// next frame goes to the policy (counted in its class's row) rather than being counted in a slot that now holds
    /// another key.
    @Test func aHeldSourceSaysNoMoreThanItsSlotAndEndsWhenAnotherTakesIt() throws {
        try onOneCPU {
            let first = try #require(SourceAddress("198.18.40.1"))
            let (slot, _) = FilterMaps.sourceDropSlot(first)
            let (program, neighbour) = try Self.denying(first) {
                $0 != first && FilterMaps.sourceDropSlot($0).slot == slot
            }
            func judge(_ address: SourceAddress) throws -> (UInt32, TrafficClass?, Reason?) {
                try Self.judgeOptions(program, from: address)
            }
            var r = try judge(first)
            #expect(r.1 == .options && r.2 == .droppedDeny, "the policy first: \(r)")
            for round in 0..<3 {
                r = try judge(first)
                #expect(r.0 == Self.drop && r.1 == .unparsed && r.2 == .droppedDeny, "round \(round): \(r)")
            }
            let mapped = Packet.ethernet(Packet.EtherType.ipv6, Packet.ipv6(
                src: "::ffff:\(first)", proto: Packet.Proto.udp, Packet.udp(dport: 5060, Array("OPTIONS sip:x SIP/2.0\r\n\r\n".utf8))))
            r = try Self.judge(program, mapped)
            #expect(r.1 == .other && r.2 == .droppedMalformed, "the mapped form: \(r)")
            // The neighbour's denial takes the slot: the first source's next frame is the policy's again.
            r = try judge(neighbour)
            #expect(r.1 == .options && r.2 == .droppedDeny, "the neighbour: \(r)")
            r = try judge(first)
            #expect(r.0 == Self.drop && r.1 == .options && r.2 == .droppedDeny, "after the neighbour took the slot: \(r)")
            r = try judge(first)
            #expect(r.1 == .unparsed && r.2 == .droppedDeny, "the slot its own again: \(r)")
        }
    }

    /// The held source's copy ends with its own ban and at a change of policy even while another source's slot keeps
    /// the source-keyed check open, and it matches its whole address: an IPv6 address that shares its last word, and
    /// the IPv4 address that word is, are judged on their own. (The check's gate is the latest slot's jiffy and the last fill's generation, so a copy that
    /// outlived its slot's would otherwise still drop.)
    @Test func aHeldSourceEndsWithItsBanAndAtAPolicyChangeWhileAnotherSlotKeepsTheCheckOpen() throws {
        try onOneCPU {
            let program = try loadProgram(policy: perSourceOnly, testClock: true)
            // The held source's last word is 198.18.41.7: that IPv4 address, and an IPv6 one sharing the word, are
            // judged on their own.
            let held = try #require(SourceAddress("2001:db8:41::c612:2907")), other = try #require(SourceAddress("198.18.41.2"))
            let lastWord = try #require(SourceAddress("2001:db8:42::c612:2907"))
            let inIPv4 = try #require(SourceAddress("198.18.41.7"))
            #expect(FilterMaps.sourceDropSlot(held).slot != FilterMaps.sourceDropSlot(other).slot)
            func judge(_ address: SourceAddress) throws -> (UInt32, TrafficClass?, Reason?) {
                try Self.judgeOptions(program, from: address)
            }
            try program.maps.ban(held, seconds: 2)
            try program.maps.ban(other, seconds: 600)
            let expires = try #require(program.maps.ban(of: held)?.expiresNS)
            try program.setTestClock(nanoseconds: expires - 100_000_000)
            for address in [other, held] {
                var r = try judge(address)
                #expect(r.1 == .options && r.2 == .droppedBan, "\(address), the policy: \(r)")
                for round in 0..<2 {
                    r = try judge(address)
                    #expect(r.1 == .unparsed && r.2 == .droppedBan, "\(address), round \(round): \(r)")
                }
            }
            var r = try judge(lastWord)
            #expect(r.0 == Self.pass && r.1 == .options && r.2 == .passed, "its last word: \(r)")
            r = try judge(inIPv4)
            #expect(r.0 == Self.pass && r.1 == .options && r.2 == .passed, "its last word as IPv4: \(r)")
            // The held source's ban ends; the other's slot keeps the check open. (Nothing of the other's is sent until
            // the held source's frame: a hit of the other's slot would make it the held one.)
            try program.setTestClock(nanoseconds: expires + 100_000_000)
            r = try judge(held)
            #expect(r.0 == Self.pass && r.1 == .options && r.2 == .passed, "after its ban: \(r)")
            // Banned again and held again; then unbanned (a change of policy), and the other's next frame, which the
            // policy drops, opens the check again under the new generation.
            try program.maps.ban(held, seconds: 600)
            #expect(try judge(held).2 == .droppedBan)
            #expect(try judge(held).1 == .unparsed)
            #expect(try judge(held).1 == .unparsed)
            #expect(try program.maps.unban(held))
            r = try judge(other)
            #expect(r.1 == .options && r.2 == .droppedBan, "the other, after the change: \(r)")
            r = try judge(held)
            #expect(r.0 == Self.pass && r.1 == .options && r.2 == .passed, "unbanned: \(r)")
        }
    }

    /// The held source counts its drops in the CPU's state, not in its slot (lib/drop_cache.h), and they reach its
    /// own entry whoever is held next and whatever key takes its slot. Two banned phones whose frames alternate (each
    /// hold moves the other's drops to the other's slot, and takes its own slot's) keep every drop, pending or added,
    /// and FG_DROP_CACHE_FLUSH of them reach the map at once; held alone again, the first phone's next flush comes
    /// FG_DROP_CACHE_FLUSH drops later, its slot's pending ones counted. Then a third banned source, tracked in
    /// OPTIONS, sends frames with IPv4 options (judged by class, not by source), whose (source, OPTIONS) slot is the
    /// first phone's: its fill adds the phone's drops held on the CPU to the phone's entry, and the third source's
    /// entry gets its own drops and not one of the phone's. On the second CPU where there is one: `top` must find each
    /// CPU's held drops beside that CPU's slots.
    @Test func aHeldSourcesDropsReachItsOwnEntryWhoeverIsHeldNextAndWhateverTakesItsSlot() throws {
        try onCPU(sysconf(Int32(_SC_NPROCESSORS_ONLN)) > 1 ? 1 : 0) {
            let program = try loadProgram(policy: perSourceOnly)
            let a = try #require(SourceAddress("198.18.44.1")), b = try #require(SourceAddress("198.18.44.2"))
            let slot = FilterMaps.sourceDropSlot(a).slot
            #expect(FilterMaps.sourceDropSlot(b).slot != slot)
            let taker = try Self.labIPv4 {
                $0 != a && $0 != b && FilterMaps.dropSlot($0, .options).slot == slot
            }
            func register(_ address: SourceAddress) -> [UInt8] {
                PolicyOrderTests.request("REGISTER", from: address.description)
            }
            func drops(_ address: SourceAddress, _ c: TrafficClass, pending: Bool = true) throws -> UInt64 {
                try #require(
                    try (pending ? program.maps.sources() : program.maps.trackedSources())
                        .first { $0.address == address && $0.trafficClass == c }
                ).drops
            }
            // Tracked, then banned.
            for phone in [a, b] {
                #expect(try Self.judge(program, register(phone)).2 == .passed)
            }
            let optioned = Packet.ethernet(Packet.EtherType.ipv4, Packet.ipv4(
                src: taker.description, proto: Packet.Proto.udp,
                Packet.udp(dport: 5060, Array("OPTIONS sip:x SIP/2.0\r\n\r\n".utf8)), options: [1, 1, 1, 1]))
            var r = try Self.judge(program, optioned)
            #expect(r.1 == .options && r.2 == .passed, "the third source, tracked: \(r)")
            let before = (a: try drops(a, .register), b: try drops(b, .register), taker: try drops(taker, .options))
            for address in [a, b, taker] {
                try program.maps.ban(address, seconds: nil)
            }
            // Alternating: the first frame of each is the policy's (a ban's drop there is counted in the class's
            // counters, not in the entry); the rest are dropped before the parse and counted pending.
            let flush = Int(FG_DROP_CACHE_FLUSH), each = flush + 30
            for i in 0..<2 * each {
                r = try Self.judge(program, register(i % 2 == 0 ? a : b))
                #expect(r.0 == Self.drop && r.2 == .droppedBan, "frame \(i): \(r)")
                #expect(i < 2 ? r.1 == .register : r.1 == .unparsed, "frame \(i): \(r)")
            }
            let counted = UInt64(each - 1)
            #expect(try drops(a, .register) - before.a == counted, "every drop of the first, pending or added")
            #expect(try drops(b, .register) - before.b == counted, "and of the second")
            #expect(try drops(a, .register, pending: false) - before.a == UInt64(flush), "one flush of the first")
            #expect(try drops(b, .register, pending: false) - before.b == UInt64(flush), "and of the second")
            // The first phone held again, taking its slot's pending drops with it: its second flush comes at
            // FG_DROP_CACHE_FLUSH drops counted pending, not later. Then the third source takes its slot while the
            // phone has drops on the CPU.
            for _ in 0..<flush {
                #expect(try Self.judge(program, register(a)).1 == .unparsed)
            }
            #expect(try drops(a, .register, pending: false) - before.a == UInt64(2 * flush), "the second flush")
            #expect(try drops(a, .register) - before.a == counted + UInt64(flush))
            r = try Self.judge(program, optioned)
            #expect(r.1 == .options && r.2 == .droppedBan, "the third source's fill: \(r)")
            let all = counted + UInt64(flush)
            #expect(try drops(a, .register, pending: false) - before.a == all, "all of the first's added")
            for i in 0..<5 {
                r = try Self.judge(program, optioned)
                #expect(r.0 == Self.drop && r.1 == .options && r.2 == .droppedBan, "its slot, frame \(i): \(r)")
            }
            #expect(try drops(taker, .options) - before.taker == 5, "the third source's own drops, none of the first's")
            #expect(try drops(a, .register) - before.a == all)
            // The first phone's next frame is the policy's (its slot is the third source's), then its own again.
            r = try Self.judge(program, register(a))
            #expect(r.1 == .register && r.2 == .droppedBan, "\(r)")
            #expect(try Self.judge(program, register(a)).1 == .unparsed)
            #expect(try drops(a, .register) - before.a == all + 1)
            #expect(try drops(taker, .options) - before.taker == 5)
        }
    }

    /// A source-keyed slot holds a ban no longer than the ban lasts (rounded down to a jiffy): on the test clock, an
    /// operator's 2-second ban still drops at 1.9 s, from the slot, and the source passes at 2.1 s. An integration's
    /// ban (fail2ban, the local API) is not held by source: it spares a source that is verified, which a banned
    /// source may become without a change of policy, so its frames keep reaching the policy's check by class.
    @Test func aSourceKeyedSlotEndsWithItsBanAndAnIntegrationsBanIsHeldByClass() throws {
        try onOneCPU {
            let program = try loadProgram(policy: perSourceOnly, testClock: true)
            let banned = try #require(SourceAddress("198.18.91.1"))
            try program.maps.ban(banned, seconds: 2)
            // The ban's expiry is stamped from the real clock; the test clock is set from it, so that a pause of
            // the test thread between the two cannot move the ban's end against the clock's.
            let now = try #require(program.maps.ban(of: banned)?.expiresNS) - 2_000_000_000
            try program.setTestClock(nanoseconds: now)
            let register = Packet.request("REGISTER", src: banned.description)
            #expect(try Self.judge(program, register).1 == .register)
            var r = try Self.judge(program, register)
            #expect(r.1 == .unparsed && r.2 == .droppedBan, "\(r)")
            try program.setTestClock(nanoseconds: now + 1_900_000_000)
            r = try Self.judge(program, register)
            #expect(r.1 == .unparsed && r.2 == .droppedBan, "\(r)")
            try program.setTestClock(nanoseconds: now + 2_100_000_000)
            r = try Self.judge(program, register)
            #expect(r.0 == Self.pass && r.1 == .register && r.2 == .passed, "\(r)")

            let reported = try #require(SourceAddress("198.18.91.2"))
            _ = try program.maps.integrationBan(reported, seconds: 60, now: now + 2_100_000_000)
            for round in 0..<3 {
                r = try Self.judge(program, Packet.request("REGISTER", src: reported.description))
                #expect(r.0 == Self.drop && r.1 == .register && r.2 == .droppedBan, "round \(round): \(r)")
            }
        }
    }
}
