import CFloodgate
import Testing

/// The shared header is the only definition of these layouts; these checks catch a Swift import that would read
/// them differently from the BPF program (cilium's alignchecker does the same for Go).
@Suite struct LayoutTests {
    @Test func structSizesMatchTheStaticAssertsOfTheHeader() {
        #expect(MemoryLayout<fg_settings>.size == 96)
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
