import CFloodgate
import CLabLayouts
import FloodgateBPF
import Foundation
import Testing

/// The shared header is the only definition of these layouts; these checks catch a Swift import that would read
/// them differently from the BPF program (cilium's alignchecker does the same for Go).
@Suite struct LayoutTests {
    @Test func structSizesMatchTheStaticAssertsOfTheHeader() {
        #expect(MemoryLayout<fg_settings>.size == 264)
        #expect(MemoryLayout<fg_settings>.offset(of: \fg_settings.allow_v4_first) == 200)
        #expect(MemoryLayout<fg_settings>.offset(of: \fg_settings.allow_v6_first) == 232)
        #expect(MemoryLayout<fg_caller_key>.size == 20)
        #expect(MemoryLayout<fg_caller>.size == 24)
        #expect(MemoryLayout<fg_active_call_key>.size == 32)
        #expect(MemoryLayout<fg_caller_range_key>.size == 16)
        #expect(MemoryLayout<fg_dial_prefix>.size == 8)
        #expect(MemoryLayout<fg_destination_key>.size == 16)
        #expect(MemoryLayout<fg_destination_rule>.size == 48)
        #expect(MemoryLayout<fg_destination_source_key>.size == 20)
        #expect(MemoryLayout<fg_call_key>.size == 20)
        #expect(MemoryLayout<fg_call>.size == 32)
        #expect(MemoryLayout<fg_fraud_block>.size == 16)
        #expect(MemoryLayout<fg_trust>.size == 24)
        #expect(MemoryLayout<fg_pin>.size == 4)
        #expect(MemoryLayout<fg_txn_key>.size == 32)
        #expect(MemoryLayout<fg_txn>.size == 16)
        #expect(MemoryLayout<fg_challenge_key>.size == 24)
        #expect(MemoryLayout<fg_allow_entry>.size == 40)
        #expect(MemoryLayout<fg_auth_state>.size == 24)
        #expect(MemoryLayout<fg_offence>.size == 16)
        #expect(MemoryLayout<fg_event>.size == 40)
        #expect(MemoryLayout<fg_oracle_config>.size == 40)
        #expect(MemoryLayout<fg_flood_config>.size == 32)
        #expect(MemoryLayout<fg_limit>.size == 24)
        #expect(MemoryLayout<fg_addr>.size == 16)
        #expect(MemoryLayout<fg_source_key>.size == 20)
        #expect(MemoryLayout<fg_source_state>.size == 32)
        #expect(MemoryLayout<fg_drop_slot>.size == 64)
        #expect(MemoryLayout<fg_global_bucket>.size == 64)
        #expect(MemoryLayout<fg_cpu_state>.size == 128 + Int(FG_COUNTER_ROWS) * MemoryLayout<fg_class_counters>.size)
        #expect(MemoryLayout<fg_cpu_state>.offset(of: \.counters) == 128)
        // fg_cpu's value: the state, then the drop cache's tags (a UInt16 a slot), which BPF declares alone.
        #expect(Int(FG_CPU_TAGS_OFFSET) == MemoryLayout<fg_cpu_state>.size)
        #expect(Int(FG_CPU_VALUE_SIZE) == Int(FG_CPU_TAGS_OFFSET) + 2 * Int(FG_DROP_CACHE_SLOTS))
        #expect(MemoryLayout<fg_cidr_key>.size == 20)
        #expect(MemoryLayout<fg_ban>.size == 16)
        #expect(MemoryLayout<fg_signature_key>.size == 36)
        #expect(MemoryLayout<fg_scratch>.size == Int(FG_SIP_SCAN_BYTES) + 36)
        #expect(MemoryLayout<fg_class_counters>.size == 16 * Int(FG_REASON_SLOTS))
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
        #expect(MemoryLayout<fg_settings>.offset(of: \.international) == 112)
        #expect(MemoryLayout<fg_settings>.offset(of: \.national) == 128)
        #expect(MemoryLayout<fg_settings>.offset(of: \.country) == 136)
        #expect(MemoryLayout<fg_settings>.offset(of: \.bare_numbers) == 144)
        #expect(MemoryLayout<fg_settings>.offset(of: \.destination_bank) == 152)
        #expect(MemoryLayout<fg_settings>.offset(of: \.fraud_block_seconds) == 156)
        #expect(MemoryLayout<fg_destination_key>.offset(of: \.set) == 4)
        #expect(MemoryLayout<fg_destination_key>.offset(of: \.digits) == 5)
        #expect(MemoryLayout<fg_destination_rule>.offset(of: \.interval) == 8)
        #expect(MemoryLayout<fg_destination_rule>.offset(of: \.per_minute) == 40)
        #expect(MemoryLayout<fg_trust>.offset(of: \.pin) == 8)
        #expect(MemoryLayout<fg_trust>.offset(of: \.quarantine_until_s) == 12)
        #expect(MemoryLayout<fg_trust>.offset(of: \.away_until_s) == 16)
        #expect(MemoryLayout<fg_pin>.offset(of: \.candidate_count) == 3)
        #expect(MemoryLayout<fg_allow_entry>.offset(of: \.pin) == 12)
        #expect(MemoryLayout<fg_txn_key>.offset(of: \.callid) == 16)
        #expect(MemoryLayout<fg_txn_key>.offset(of: \.cseq) == 20)
        #expect(MemoryLayout<fg_txn_key>.offset(of: \.method) == 24)
        #expect(MemoryLayout<fg_txn>.offset(of: \.pending) == 3)
        #expect(MemoryLayout<fg_txn>.offset(of: \.traffic_class) == 2)
        #expect(MemoryLayout<fg_txn>.offset(of: \.nonce) == 8)
        #expect(MemoryLayout<fg_allow_entry>.offset(of: \.host) == 2)
        #expect(MemoryLayout<fg_cpu_state>.offset(of: \.spared_event_ns) == 8)
        #expect(MemoryLayout<fg_cpu_state>.offset(of: \.spoofed_event_ns) == 16)
        #expect(MemoryLayout<fg_cpu_state>.offset(of: \.source_until_jiffies) == 24)
        #expect(MemoryLayout<fg_cpu_state>.offset(of: \.wide_until_jiffies) == 40)
        // The held aggregate's jiffy beside the other gates on the first line, its network and mask on the second.
        #expect(MemoryLayout<fg_cpu_state>.offset(of: \.held_generation) == 36)
        #expect(MemoryLayout<fg_cpu_state>.offset(of: \.held_until_jiffies) == 48)
        #expect(MemoryLayout<fg_cpu_state>.offset(of: \.held_network) == 64)
        #expect(MemoryLayout<fg_cpu_state>.offset(of: \.held_mask) == 80)
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
        #expect(MemoryLayout<fg_reason_counters>.offset(of: \.bytes) == 8)
    }

    /// A program the kernel refuses (here a per-source map far too large to create) is a clear error, and the
    /// half-made object is released once: it used to be closed by the initializer and again by deinit (a crash,
    /// "double free or corruption").
    @Test func aProgramTheKernelRefusesIsAnErrorNotACrash() throws {
        try requireRoot()
        #expect(throws: FloodgateError.self) { try FloodgateProgram(maxSources: UInt32.max - 1, configure: { _ in }) }
        // And the next load works.
        _ = try FloodgateProgram(maxSources: 64, configure: { _ in })
    }
}
