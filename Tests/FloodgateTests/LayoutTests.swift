import CFloodgate
import CFloodgateLab
import Foundation
import Testing

/// The shared header is the only definition of these layouts; these checks catch a Swift import that would read
/// them differently from the BPF program (cilium's alignchecker does the same for Go).
@Suite struct LayoutTests {
    @Test func structSizesMatchTheStaticAssertsOfTheHeader() {
        #expect(MemoryLayout<fg_settings>.size == 112)
        #expect(MemoryLayout<fg_trust>.size == 16)
        #expect(MemoryLayout<fg_pin>.size == 4)
        #expect(MemoryLayout<fg_txn_key>.size == 24)
        #expect(MemoryLayout<fg_txn>.size == 16)
        #expect(MemoryLayout<fg_challenge_key>.size == 24)
        #expect(MemoryLayout<fg_allow_entry>.size == 40)
        #expect(MemoryLayout<fg_auth_state>.size == 16)
        #expect(MemoryLayout<fg_offence>.size == 16)
        #expect(MemoryLayout<fg_event>.size == 40)
        #expect(MemoryLayout<fg_oracle_config>.size == 40)
        #expect(MemoryLayout<fg_flood_config>.size == 16)
        #expect(MemoryLayout<fg_limit>.size == 24)
        #expect(MemoryLayout<fg_addr>.size == 16)
        #expect(MemoryLayout<fg_source_key>.size == 20)
        #expect(MemoryLayout<fg_source_state>.size == 32)
        #expect(MemoryLayout<fg_drop_slot>.size == 64)
        #expect(MemoryLayout<fg_global_bucket>.size == 64)
        #expect(MemoryLayout<fg_cpu_state>.size == 64 + Int(FG_CLASS_MAX.rawValue) * MemoryLayout<fg_class_counters>.size)
        #expect(MemoryLayout<fg_cpu_state>.offset(of: \.counters) == 64)
        #expect(MemoryLayout<fg_cidr_key>.size == 20)
        #expect(MemoryLayout<fg_ban>.size == 16)
        #expect(MemoryLayout<fg_signature_key>.size == 36)
        #expect(MemoryLayout<fg_scratch>.size == Int(FG_SIP_SCAN_BYTES) + 36)
        #expect(MemoryLayout<fg_class_counters>.size == 16 * Int(FG_REASON_SLOTS))
        #expect(MemoryLayout<fg_stats_mark>.size == 8 + 8 * Int(FG_CLASS_MAX.rawValue * FG_REASON_MAX.rawValue))
    }

    @Test func fieldOffsets() {
        #expect(MemoryLayout<fg_settings>.offset(of: \.rtp_port_min) == 8)
        #expect(MemoryLayout<fg_settings>.offset(of: \.malformed_action) == 12)
        #expect(MemoryLayout<fg_settings>.offset(of: \.jiffy_ns) == 16)
        #expect(MemoryLayout<fg_drop_slot>.offset(of: \.until_jiffies) == 24)
        #expect(MemoryLayout<fg_drop_slot>.offset(of: \.pending) == 32)
        #expect(MemoryLayout<fg_drop_slot>.offset(of: \.reason) == 40)
        #expect(MemoryLayout<fg_settings>.offset(of: \.prefix_v4) == 20)
        #expect(MemoryLayout<fg_settings>.offset(of: \.policy_generation) == 24)
        #expect(MemoryLayout<fg_settings>.offset(of: \.scanner_ban_seconds) == 40)
        #expect(MemoryLayout<fg_settings>.offset(of: \.bans_present) == 44)
        #expect(MemoryLayout<fg_settings>.offset(of: \.autoban_drops) == 48)
        #expect(MemoryLayout<fg_settings>.offset(of: \.autoban_seconds) == 56)
        #expect(MemoryLayout<fg_settings>.offset(of: \.offence_forget_s) == 76)
        #expect(MemoryLayout<fg_settings>.offset(of: \.trust_seconds) == 92)
        #expect(MemoryLayout<fg_settings>.offset(of: \.ttl_tolerance) == 96)
        #expect(MemoryLayout<fg_settings>.offset(of: \.layout_version) == 100)
        #expect(MemoryLayout<fg_settings>.offset(of: \.server_entries) == 104)
        #expect(MemoryLayout<fg_trust>.offset(of: \.pin) == 8)
        #expect(MemoryLayout<fg_pin>.offset(of: \.candidate_count) == 3)
        #expect(MemoryLayout<fg_allow_entry>.offset(of: \.pin) == 12)
        #expect(MemoryLayout<fg_txn_key>.offset(of: \.callid) == 16)
        #expect(MemoryLayout<fg_txn_key>.offset(of: \.cseq) == 20)
        #expect(MemoryLayout<fg_txn>.offset(of: \.traffic_class) == 2)
        #expect(MemoryLayout<fg_txn>.offset(of: \.nonce) == 8)
        #expect(MemoryLayout<fg_allow_entry>.offset(of: \.host) == 2)
        #expect(MemoryLayout<fg_cpu_state>.offset(of: \.spared_event_ns) == 8)
        #expect(MemoryLayout<fg_cpu_state>.offset(of: \.spoofed_event_ns) == 16)
        #expect(MemoryLayout<fg_allow_entry>.offset(of: \.rate) == 4)
        #expect(MemoryLayout<fg_allow_entry>.offset(of: \.interval) == 16)
        #expect(MemoryLayout<fg_allow_entry>.offset(of: \.tat) == 32)
        #expect(MemoryLayout<fg_source_state>.offset(of: \.window_start_ms) == 24)
        #expect(MemoryLayout<fg_event>.offset(of: \.addr) == 8)
        #expect(MemoryLayout<fg_event>.offset(of: \.expires_ns) == 24)
        #expect(MemoryLayout<fg_oracle_config>.offset(of: \.v6_net) == 8)
        #expect(MemoryLayout<fg_cidr_key>.offset(of: \.addr) == 4)
        #expect(MemoryLayout<fg_signature_key>.offset(of: \.data) == 4)
        #expect(MemoryLayout<fg_limit>.offset(of: \.tau) == 8)
        #expect(MemoryLayout<fg_limit>.offset(of: \.rate) == 16)
        #expect(MemoryLayout<fg_source_key>.offset(of: \.traffic_class) == 16)
        #expect(MemoryLayout<fg_source_state>.offset(of: \.packets) == 8)
        #expect(MemoryLayout<fg_source_state>.offset(of: \.drops) == 16)
        #expect(MemoryLayout<fg_class_counters>.offset(of: \.bytes) == 8 * Int(FG_REASON_SLOTS))
    }
}

/// The BPF helpers are self-contained: each header under BPF/lib/ compiles on its own, so it includes what it uses
/// and the program may include them in any order.
@Suite struct BPFHeaderTests {
    @Test func everyHelperHeaderCompilesOnItsOwn() throws {
        let bpf = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("BPF")
        let headers = try FileManager.default.contentsOfDirectory(atPath: bpf.appendingPathComponent("lib").path)
            .filter { $0.hasSuffix(".h") }.sorted()
        #expect(headers.count >= 10, "\(headers)")
        #if arch(x86_64)
        let multiarch = "/usr/include/x86_64-linux-gnu"
        #else
        let multiarch = "/usr/include/aarch64-linux-gnu"
        #endif
        for header in headers {
            let result = try run(["sh", "-c", "printf '#include \"lib/\(header)\"\\n' | clang -target bpf -mcpu=v3 -O2 "
                + "-Wall -Werror -I \(multiarch) -I '\(bpf.path)' -fsyntax-only -x c -"])
            #expect(result.status == 0, "\(header) does not compile on its own: \(result.err)")
        }
    }
}
