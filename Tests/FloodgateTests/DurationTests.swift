import CFloodgate
import FloodgateAgent
import FloodgateCore
import Foundation
import Testing

/// Durations as systemd and Go write them, everywhere one is given (CLI and config).
@Suite struct DurationTests {
    @Test func systemdAndGoDurationsAreRead() throws {
        for (text, ms) in [("90s", 90_000), ("10m", 600_000), ("1h30m", 5_400_000), ("1.5h", 5_400_000),
                           ("2d 12h", 216_000_000), ("300ms", 300), ("1w", 604_800_000), ("600", 600_000),
                           ("1 hour 5 min", 3_900_000), ("1.5s", 1500), ("3600.0", 3_600_000), ("1.5", 1500)] as [(String, UInt64)] {
            #expect(try parseDurationMilliseconds(text) == ms, "\(text)")
        }
        #expect(try parseDuration("1h30m") == 5400 && parseDuration("1.5m") == 90 && parseDuration("600") == 600)
    }

    @Test func badDurationsAreRefusedWithTheReason() {
        for text in ["", "10x", "s", "1.s", ".5s", "1..5s", "-5s", "0s", "0", "1h30", "11000d", "10 parsecs", "1e3s", "1M", "2H", "1.", ".5", "0.0", "1.2.3"] {
            #expect(throws: FloodgateError.self, "\(text)") { _ = try parseDurationMilliseconds(text) }
        }
        // Where whole seconds are needed, a fraction of one is refused.
        #expect(throws: FloodgateError.self) { _ = try parseDuration("1.5s") }
        #expect(throws: FloodgateError.self) { _ = try parseDuration("300ms") }
    }
}
