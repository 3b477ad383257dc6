import FloodgateAgent
import FloodgateCore
import Foundation
import Testing

/// The hours of scheduled destination rules, on the wall clock of the site's time zone.
@Suite struct HoursWindowTests {
    /// 2026-12-07 is a Monday.
    static func date(_ text: String, _ zone: String) -> Date {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: zone)
        f.dateFormat = "yyyy-MM-dd HH:mm:ss"
        return f.date(from: text)!
    }

    @Test func businessHoursWeekendsAndNights() throws {
        let office = try HoursWindow("Mon-Fri 08:00-19:00")
        let london = TimeZone(identifier: "Europe/London")!
        #expect(office.contains(HoursWindowTests.date("2026-12-07 08:00:00", "Europe/London"), in: london))
        #expect(office.contains(HoursWindowTests.date("2026-12-11 18:59:59", "Europe/London"), in: london))
        #expect(!office.contains(HoursWindowTests.date("2026-12-11 19:00:00", "Europe/London"), in: london))
        #expect(!office.contains(HoursWindowTests.date("2026-12-12 12:00:00", "Europe/London"), in: london), "Saturday")
        #expect(!office.contains(HoursWindowTests.date("2026-12-07 07:59:59", "Europe/London"), in: london))
        // The same instant is another wall-clock time in New York.
        let instant = HoursWindowTests.date("2026-12-07 10:00:00", "Europe/London")
        #expect(!office.contains(instant, in: TimeZone(identifier: "America/New_York")!), "05:00 in New York")

        // Past midnight: Friday 22:00 to Saturday 06:00 is Friday's night.
        let nights = try HoursWindow("Fri 22:00-06:00")
        #expect(nights.contains(HoursWindowTests.date("2026-12-11 23:30:00", "UTC"), in: .gmt))
        #expect(nights.contains(HoursWindowTests.date("2026-12-12 05:59:59", "UTC"), in: .gmt))
        #expect(!nights.contains(HoursWindowTests.date("2026-12-12 22:30:00", "UTC"), in: .gmt), "Saturday night")
        #expect(!nights.contains(HoursWindowTests.date("2026-12-11 05:00:00", "UTC"), in: .gmt), "Friday morning")

        let weekend = try HoursWindow("Sat,Sun 00:00-24:00")
        #expect(weekend.contains(HoursWindowTests.date("2026-12-13 23:59:59", "UTC"), in: .gmt))
        #expect(!weekend.contains(HoursWindowTests.date("2026-12-14 00:00:00", "UTC"), in: .gmt))
        let wrapped = try HoursWindow("Fri-Mon 12:00-13:00:30")
        #expect(wrapped.days == [5, 6, 7, 1])
        #expect(wrapped.contains(HoursWindowTests.date("2026-12-07 13:00:29", "UTC"), in: .gmt))
        #expect(try HoursWindow("daily 00:00-12:00").days.count == 7)

        for bad in ["Mon-Fri", "Mon-Fri 8:00-19:00", "Mon-Fri 08:00-08:00", "Mon-Fry 08:00-19:00", "Mon-Fri 08:00-25:00",
                    "Mon-Fri 24:00-01:00", "Mon-Fri 08:60-09:00", "08:00-19:00", "Mon,,Tue 08:00-19:00"] {
            #expect(throws: FloodgateError.self, "\(bad)") { try HoursWindow(bad) }
        }
    }

    /// Scheduled rules in the config: in force inside (or outside) their hours, replacing the rule always in force
    /// for their prefix and tier while they are.
    @Test func scheduledRulesReplaceTheirPrefixsRuleWhileInForce() throws {
        let text = """
            interfaces: {external: veth0}
            time_zone: Europe/London
            destinations:
              - "+44 allow"
              - "+1 limit 10/min"
              - {rule: "+ block", outside: "Mon-Fri 08:00-19:00"}
              - {rule: "+1 block", hours: ["Sat,Sun 00:00-24:00", "daily 22:00-06:00"]}
            """
        let c = try AgentConfig.parse(text, file: "f.yaml")
        #expect(c.timeZone.identifier == "Europe/London" && c.scheduledDestinations.count == 2)
        let day = c.effectivePolicy(at: HoursWindowTests.date("2026-12-07 10:00:00", "Europe/London")).destinations
        #expect(day == [try DestinationRule("44", .allow), try DestinationRule("1", .limit(perSource: 10, total: nil))])
        let night = c.effectivePolicy(at: HoursWindowTests.date("2026-12-07 23:00:00", "Europe/London")).destinations
        #expect(night == [try DestinationRule("44", .allow), try DestinationRule("+", .block), try DestinationRule("1", .block)])
        let evening = c.effectivePolicy(at: HoursWindowTests.date("2026-12-07 20:00:00", "Europe/London")).destinations
        #expect(evening == [try DestinationRule("44", .allow), try DestinationRule("+", .block),
                            try DestinationRule("1", .limit(perSource: 10, total: nil))])

        for (bad, message) in [
            ("time_zone: Mars/Olympus", "'Mars/Olympus' is not a time zone"),
            ("destinations:\n  - {rule: \"+44 block\"}", "a rule with a schedule needs hours: or outside:"),
            ("destinations:\n  - {rule: \"+44 block\", hours: \"Mon 08:00-09:00\", outside: \"Tue 08:00-09:00\"}", "give hours or outside, not both"),
            ("destinations:\n  - {rule: \"+44 block\", hours: \"Mon 8-9\"}", "hours must be DAYS HH:MM-HH:MM"),
            ("destinations:\n  - {rule: \"+44 block\", hours: \"Mon 08:00-09:00\"}\n  - {rule: \"+44 allow\", outside: \"Mon 08:00-09:00\"}",
             "two destination rules for +44"),
        ] {
            do {
                _ = try AgentConfig.parse("interfaces: {external: veth0}\n" + bad, file: "g.yaml")
                Issue.record("accepted: \(bad)")
            } catch let errors as ConfigErrors {
                #expect(errors.description.contains(message), "\(errors)")
            }
        }
    }
}
