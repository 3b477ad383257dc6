import CFloodgate
import FloodgateCore
import FloodgateLab
import Foundation
import Testing

/// The one policy value: its diff and validation on their own, and its round trip, apply and undo through a
/// loaded filter's maps.
@Suite struct FilterPolicyTests {
    static func changed() throws -> FilterPolicy {
        var p = FilterPolicy()
        p.limits[.invite] = .rate(2, burst: 3)
        p.verifiedLimits[.register] = .unlimited
        p.budget = .rate(900, burst: 90)
        p.allow = [try CIDR("198.18.9.0/24"), try CIDR("198.18.10.1")]
        p.allowOptions[try CIDR("198.18.9.0/24")] = AllowOptions(limit: .rate(50, burst: 60), ttl: 60...64)
        p.deny = [try CIDR("2001:db8:9::/48")]
        p.servers = [try CIDR("198.18.0.2")]
        p.signatures.insert(try Signature(.userAgent, "evil-dialer"))
        p.signatures.remove(try Signature(.userAgent, "sipsak"))
        p.settings.scannerBanSeconds = 60
        return p
    }

    @Test func theDiffNamesEveryChangeWithoutTheKernel() throws {
        let old = FilterPolicy(), new = try FilterPolicyTests.changed()
        #expect(new.diff(from: old) == [
            "settings", "invite 8/s burst 16 → 2/s burst 3", "verified register 30/s burst 60 → unlimited",
            "budget unlimited → 900/s burst 90", "allow +2 −0", "deny +1 −0", "SIP servers 0 → 1", "signatures +1 −1",
        ])
        #expect(old.diff(from: new).count == 8)
        #expect(new.diff(from: new).isEmpty)
        // An entry kept whose options change is named.
        var options = new
        options.allowOptions[try CIDR("198.18.9.0/24")] = nil
        #expect(options.diff(from: new) == ["allow 198.18.9.0/24 \(AllowOptions())"])
    }

    @Test func validationRefusesWhatTheMapsCannotHold() throws {
        var p = FilterPolicy()
        p.settings.sipPorts = []
        #expect(throws: FloodgateError.self) { try p.validate() }
        p = FilterPolicy()
        p.servers = Set((0..<(FilterCapacity.servers + 1)).map { try! CIDR("198.18.\($0 / 256).\($0 % 256)") })
        #expect(throws: FloodgateError.self) { try p.validate() }
        p = FilterPolicy()
        p.allow = [try CIDR("198.18.9.0/24")]
        p.allowOptions[try CIDR("198.18.9.0/24")] = AllowOptions(limit: .rate(0, burst: 1))
        #expect(throws: FloodgateError.self) { try p.validate() }
        p = FilterPolicy()
        p.verifiedLimits[.invite] = .rate(10, burst: 0)
        #expect(throws: FloodgateError.self) { try p.validate() }
        #expect(throws: Never.self) { try FilterPolicy().validate() }
    }

    @Test func applyChangesTheMapsAndUndoPutsThemBack() throws {
        let original = try FilterPolicyTests.changed()
        let program = try loadProgram(limits: original.limits, settings: original.settings, policy: original)
        // What was loaded is what is read back.
        #expect(try FilterPolicy(reading: program.maps) == original)
        var next = original
        next.limits[.options] = .block
        next.allow.remove(try CIDR("198.18.10.1"))
        next.allow.insert(try CIDR("198.18.11.0/24"))
        next.allowOptions[try CIDR("198.18.9.0/24")] = AllowOptions(limit: .unlimited)
        next.deny = []
        next.signatures = [try Signature(.from, "\"sipvicious\"")]
        next.prefix = .rate(1, burst: 1)
        next.settings.prefixV4 = 22
        let applied = try next.apply(to: program.maps)
        #expect(try FilterPolicy(reading: program.maps) == next)
        #expect(applied.changes == next.diff(from: original))
        // The filter acts on it: options now blocked.
        #expect(try program.judge(Packet.request("OPTIONS", src: "198.18.30.1")).2 == .droppedBlocked)
        applied.undo()
        #expect(try FilterPolicy(reading: program.maps) == original)
        #expect(try program.judge(Packet.request("OPTIONS", src: "198.18.30.2")).2 == .passed)
        // Applying what is there changes nothing.
        #expect(try original.apply(to: program.maps).changes.isEmpty)
    }

    /// What is written reads back the same, so applying it again changes nothing: a SIP port removed does not stay
    /// behind in its slot, a disabled auto-ban's drop count and options at their defaults are not differences.
    @Test func aPolicyReadsBackAsItWasWrittenAndSettles() throws {
        let program = try loadProgram()
        var policy = FilterPolicy()
        policy.settings.sipPorts = [5060, 5061, 5070]
        policy.allow = [try CIDR("198.18.12.0/24")]
        policy.allowOptions[try CIDR("198.18.12.0/24")] = AllowOptions()  // the defaults, spelt out
        policy.allowOptions[try CIDR("198.18.13.0/24")] = AllowOptions(limit: .unlimited)  // not on the list
        _ = try policy.apply(to: program.maps)
        policy.settings.sipPorts = [5060]
        policy.settings.autoBan.enabled = false
        policy.settings.autoBan.drops = 100
        #expect(try policy.apply(to: program.maps).changes == ["settings"])
        #expect(try FilterPolicy(reading: program.maps).settings.sipPorts == [5060])
        #expect(try FilterPolicy(reading: program.maps) == policy)
        #expect(try policy.apply(to: program.maps).changes.isEmpty)
        // The filter reads port 5061 as SIP no more.
        #expect(try program.judge(Packet.sipRaw(Array("OPTIONS sip:x SIP/2.0\r\n\r\n".utf8), dport: 5061)).1 == .other)
    }

    /// An apply the kernel refuses halfway (the signatures map frozen, so its update fails with EPERM after the
    /// settings, a limit and both lists were written) is undone: the filter is left as it was, and acts so.
    @Test func anApplyThatFailsHalfwayIsUndone() throws {
        let program = try loadProgram()
        let before = try FilterPolicy(reading: program.maps)
        #expect(bpf_map_freeze(program.maps.fd(FG_MAP_SIGNATURES)) == 0)
        var next = before
        next.settings.prefixV4 = 22
        next.limits[.options] = .block
        next.allow.insert(try CIDR("198.18.11.0/24"))
        next.deny.insert(try CIDR("198.18.12.0/24"))
        next.signatures.insert(try Signature(.userAgent, "evil-scanner"))
        #expect(throws: FloodgateError.self) { _ = try next.apply(to: program.maps) }
        #expect(try FilterPolicy(reading: program.maps) == before)
        #expect(try program.judge(Packet.request("OPTIONS", src: "198.18.30.1")).2 == .passed)
        #expect(try program.judge(Packet.request("OPTIONS", src: "198.18.12.1")).2 == .passed)
    }

    @Test func anInvalidPolicyWritesNothing() throws {
        let program = try loadProgram()
        let before = try FilterPolicy(reading: program.maps)
        var bad = before
        bad.limits[.invite] = .rate(1, burst: 1)
        bad.settings.prefixV4 = 7
        #expect(throws: FloodgateError.self) { _ = try bad.apply(to: program.maps) }
        #expect(try FilterPolicy(reading: program.maps) == before)
    }
}
