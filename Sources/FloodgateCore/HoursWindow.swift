import Foundation

/// A weekly window of wall-clock time in the site's time zone: days (`Mon-Fri`, `Sat,Sun`, `daily`) and a time
/// range (`08:00-19:00`; seconds may be given, `08:00:30`; `22:00-06:00` runs past midnight into the next day;
/// `00:00-24:00` is the whole day). Destination rules can be in force only inside (or only outside) one.
public struct HoursWindow: Equatable, Sendable, CustomStringConvertible {
    /// ISO weekdays: 1 Monday … 7 Sunday.
    public let days: Set<Int>
    /// Seconds since midnight; `end` may be 86,400; `start > end`: past midnight.
    public let start: Int
    public let end: Int
    public let description: String

    static let dayNames = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]

    public init(_ text: String) throws {
        let words = text.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        let bad = "hours must be DAYS HH:MM-HH:MM, e.g. 'Mon-Fri 08:00-19:00', 'Sat,Sun 10:00-14:00' or 'daily 22:00-06:00' (got '\(text)')"
        guard words.count == 2 else { throw FloodgateError(bad) }
        var days = Set<Int>()
        if words[0].lowercased() == "daily" {
            days = Set(1...7)
        } else {
            for part in words[0].lowercased().split(separator: ",", omittingEmptySubsequences: false) {
                let ends = part.split(separator: "-", omittingEmptySubsequences: false).map(String.init)
                guard (1...2).contains(ends.count),
                      let first = HoursWindow.dayNames.firstIndex(of: ends[0]),
                      let last = HoursWindow.dayNames.firstIndex(of: ends[ends.count - 1])
                else { throw FloodgateError(bad) }
                // Fri-Mon wraps over the weekend.
                var d = first
                while true {
                    days.insert(d + 1)
                    if d == last { break }
                    d = (d + 1) % 7
                }
            }
        }
        let times = words[1].split(separator: "-", omittingEmptySubsequences: false).map(String.init)
        guard times.count == 2, let start = HoursWindow.seconds(times[0]), let end = HoursWindow.seconds(times[1]),
              start < 86400, start != end
        else { throw FloodgateError(bad) }
        self.days = days
        self.start = start
        self.end = end
        description = text
    }

    /// "HH:MM" or "HH:MM:SS" as seconds since midnight (24:00 allowed).
    static func seconds(_ s: String) -> Int? {
        let parts = s.split(separator: ":", omittingEmptySubsequences: false)
        guard (2...3).contains(parts.count), parts.allSatisfy({ $0.count == 2 && $0.allSatisfy(\.isNumber) }),
              let h = Int(parts[0]), let m = Int(parts[1]), let sec = parts.count == 3 ? Int(parts[2]) : 0,
              m < 60, sec < 60, h < 24 || (h == 24 && m == 0 && sec == 0)
        else { return nil }
        return h * 3600 + m * 60 + sec
    }

    /// Is `date` inside the window, on the wall clock of `zone`?
    public func contains(_ date: Date, in zone: TimeZone) -> Bool {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        let c = calendar.dateComponents([.weekday, .hour, .minute, .second], from: date)
        // Foundation counts Sunday as 1; ISO counts Monday as 1.
        let day = ((c.weekday ?? 1) + 5) % 7 + 1
        let previous = day == 1 ? 7 : day - 1
        let t = (c.hour ?? 0) * 3600 + (c.minute ?? 0) * 60 + (c.second ?? 0)
        if start < end { return days.contains(day) && t >= start && t < end }
        return (days.contains(day) && t >= start) || (days.contains(previous) && t < end)
    }
}

/// A destination rule in force only inside its windows (or, with `outside`, only outside them): while it is, it
/// replaces the rule of its prefix and tier that is always in force, if there is one.
public struct ScheduledDestination: Equatable, Sendable, CustomStringConvertible {
    public let rule: DestinationRule
    public let windows: [HoursWindow]
    public let outside: Bool

    public init(rule: DestinationRule, windows: [HoursWindow], outside: Bool) {
        self.rule = rule
        self.windows = windows
        self.outside = outside
    }

    public func inForce(at date: Date, in zone: TimeZone) -> Bool {
        windows.contains { $0.contains(date, in: zone) } != outside
    }

    public var description: String {
        "\(rule) \(outside ? "outside" : "during") \(windows.map(\.description).joined(separator: "; "))"
    }
}
