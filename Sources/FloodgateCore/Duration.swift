import Foundation

/// Durations as systemd and Go write them: one or more terms of a number (a fraction allowed) and a unit, as in
/// `90s`, `10m`, `1h30m`, `1.5h`, `2d 12h`, `300ms`; units ms (msec), s (sec, second, seconds), m (min, minute,
/// minutes), h (hr, hour, hours), d (day, days), w (week, weeks). A bare whole number is seconds, as in systemd
/// (and as fail2ban and CrowdSec pass ban times). At most 10 years; never zero or negative.
public func parseDurationMilliseconds(_ text: String) throws -> UInt64 {
    let bad = FloodgateError(
        "'\(text)' is not a duration: give a positive number and a unit, e.g. 90s, 10m, 1h30m, 1.5h, 2d, 300ms")
    let units: [String: Double] = [
        "ms": 1, "msec": 1, "s": 1000, "sec": 1000, "second": 1000, "seconds": 1000,
        "m": 60_000, "min": 60_000, "minute": 60_000, "minutes": 60_000,
        "h": 3_600_000, "hr": 3_600_000, "hour": 3_600_000, "hours": 3_600_000,
        "d": 86_400_000, "day": 86_400_000, "days": 86_400_000, "w": 604_800_000, "week": 604_800_000,
        "weeks": 604_800_000,
    ]
    let trimmed = text.trimmingCharacters(in: .whitespaces)
    var total = 0.0
    if let seconds = UInt64(trimmed) {
        total = Double(seconds) * 1000
    } else if trimmed.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }), trimmed.first != ".",
              trimmed.last != ".", let seconds = Double(trimmed) {
        total = seconds * 1000   // bare decimal seconds, as fail2ban's computed ban times can be
    } else {
        var rest = Substring(trimmed)
        guard !rest.isEmpty else { throw bad }
        while !rest.isEmpty {
            rest = rest.drop { $0 == " " }
            let number = rest.prefix { $0.isASCII && ($0.isNumber || $0 == ".") }
            rest = rest.dropFirst(number.count).drop { $0 == " " }
            let unit = rest.prefix { $0.isASCII && $0.isLetter }
            rest = rest.dropFirst(unit.count)
            guard !number.isEmpty, number.first != ".", number.last != ".", number.filter({ $0 == "." }).count <= 1,
                  let value = Double(number), let scale = units[String(unit)]
            else { throw bad }
            total += value * scale
        }
    }
    guard total >= 1, total <= 3650 * 86_400_000 else { throw bad }
    return UInt64(total.rounded())
}

/// A duration in whole seconds (``parseDurationMilliseconds(_:)``'s syntax): `1.5s` is refused, `1.5m` is 90.
public func parseDuration(_ text: String) throws -> UInt64 {
    let ms = try parseDurationMilliseconds(text)
    guard ms % 1000 == 0 else {
        throw FloodgateError("'\(text)' is not a whole number of seconds, as this duration must be")
    }
    return ms / 1000
}
