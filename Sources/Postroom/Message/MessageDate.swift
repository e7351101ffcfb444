import Foundation

/// RFC 5322 `date-time` formatting and lenient parsing.
///
/// Done by hand rather than with `DateFormatter`: it is locale-free, much faster, and
/// thread-safe without locks, which matters at thousands of messages per second.
public enum MessageDate {
    private static let dayNames = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    private static let monthNames = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// `date` as `Mon, 23 Nov 2026 09:36:18 +0000` (always UTC, so output never
    /// depends on the machine's time zone).
    public static func format(_ date: Date) -> String {
        // Clamped to years 0001...9999 so no input can overflow the conversion.
        let interval = date.timeIntervalSince1970
        let clamped = interval.isFinite ? min(max(interval, -62_135_596_800), 253_402_300_799) : 0
        let seconds = Int64(clamped.rounded(.down))
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = Int(seconds - days * 86_400)
        let (year, month, day) = civilDate(fromDays: days)
        let weekday = Int(((days % 7) + 11) % 7)  // 1970-01-01 was a Thursday.
        func two(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(dayNames[weekday]), \(day) \(monthNames[month - 1]) \(year) "
            + "\(two(secondOfDay / 3600)):\(two(secondOfDay / 60 % 60)):\(two(secondOfDay % 60)) +0000"
    }

    /// Parses an RFC 5322 date (obsolete forms included: two-digit years, zone names,
    /// missing seconds or day name, comments). Nil when it is not a date.
    public static func parse(_ text: String) -> Date? {
        // Scalars, not Characters: every delimiter is ASCII, and grapheme breaking (which would
        // also glue "\r\n" into one Character) costs more than the rest of the parse.
        var depth = 0
        var current = String.UnicodeScalarView()
        var words: [Substring] = []
        for scalar in text.unicodeScalars {
            if scalar == "(" { depth += 1; continue }
            if scalar == ")" { depth = max(0, depth - 1); continue }
            if depth > 0 { continue }
            if scalar == " " || scalar == "\t" || scalar == "," || scalar == "\r" || scalar == "\n" {
                if !current.isEmpty { words.append(Substring(String(current))); current = String.UnicodeScalarView() }
            } else {
                current.append(scalar)
            }
            if words.count > 8 { return nil }
        }
        if !current.isEmpty { words.append(Substring(String(current))) }
        // Day and month names are ASCII, so ASCII case folding is the whole comparison.
        func named(_ word: Substring, in names: [String]) -> Int? {
            guard word.utf8.count == 3 else { return nil }
            let lower = word.lowercased()
            return names.firstIndex { $0.lowercased() == lower }
        }
        if let first = words.first, named(first, in: dayNames) != nil {
            words.removeFirst()
        }
        guard words.count >= 4, words.count <= 5,
              let day = Int(words[0]), (1...31).contains(day),
              let monthIndex = named(words[1], in: monthNames),
              words[2].count >= 2, words[2].count <= 4, var year = Int(words[2]) else { return nil }
        if words[2].count == 2 { year += year < 50 ? 2000 : 1900 } else if words[2].count == 3 { year += 1900 }
        let timeParts = words[3].split(separator: ":", omittingEmptySubsequences: false)
        guard timeParts.count == 2 || timeParts.count == 3,
              timeParts.allSatisfy({ $0.count == 2 && $0.allSatisfy(\.isASCII) }),
              let hour = Int(timeParts[0]), let minute = Int(timeParts[1]),
              hour < 24, minute < 60 else { return nil }
        var second = 0
        if timeParts.count == 3 {
            guard let value = Int(timeParts[2]), value <= 60 else { return nil }
            second = value
        }
        var offset = 0
        if words.count == 5 {
            guard let zone = zoneOffset(words[4]) else { return nil }
            offset = zone
        }
        guard day <= daysInMonth(monthIndex + 1, year: year) else { return nil }
        let days = daysFromCivil(year: year, month: monthIndex + 1, day: day)
        let total = days * 86_400 + Int64(hour * 3600 + minute * 60 + second) - Int64(offset)
        return Date(timeIntervalSince1970: TimeInterval(total))
    }

    /// Offset from UTC in seconds for `+hhmm`, `-hhmm` or an obsolete zone name.
    private static func zoneOffset(_ zone: Substring) -> Int? {
        if let sign = zone.first, sign == "+" || sign == "-" {
            let digits = zone.dropFirst()
            guard digits.count == 4, digits.allSatisfy(\.isASCII), let value = Int(digits) else { return nil }
            let minutes = value / 100 * 60 + value % 100
            guard value % 100 < 60 else { return nil }
            return (sign == "+" ? 1 : -1) * minutes * 60
        }
        switch zone.uppercased() {
        case "UT", "GMT", "Z", "UTC": return 0
        case "EDT": return -4 * 3600
        case "EST", "CDT": return -5 * 3600
        case "CST", "MDT": return -6 * 3600
        case "MST", "PDT": return -7 * 3600
        case "PST": return -8 * 3600
        default:
            // RFC 5322 §4.3: other (military) zone letters are treated as -0000.
            return zone.count == 1 && zone.allSatisfy(\.isLetter) ? 0 : nil
        }
    }

    private static func daysInMonth(_ month: Int, year: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    // Howard Hinnant's days-from-civil algorithms (proleptic Gregorian calendar).
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int64 {
        let y = Int64(month <= 2 ? year - 1 : year)
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let m = Int64(month)
        let dayOfYear = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + Int64(day) - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    static func civilDate(fromDays days: Int64) -> (Int, Int, Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        return (Int(year), Int(month), Int(day))
    }
}
