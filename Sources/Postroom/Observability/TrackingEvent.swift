#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// One line of the message tracking log (`tracking.log`): something that happened to a message.
///
/// Encoded as one JSON object with the keys `timestamp`, `event`, `source`, `queueID`, `messageID`,
/// `sender`, `recipients` and, when set, `connector`, `status`, `reason`, `file`, `size`. The timestamp is
/// ISO 8601 in UTC with milliseconds (`2026-11-23T09:36:19.123Z`), so lines sort and grep well.
public struct TrackingEvent: Codable, Sendable, Equatable {
    /// What happened, in the vocabulary of Exchange's message tracking log.
    public enum Kind: String, Codable, Sendable, CaseIterable {
        case receive = "RECEIVE", submit = "SUBMIT", badmail = "BADMAIL", resolve = "RESOLVE", expand = "EXPAND"
        case route = "ROUTE", `defer` = "DEFER", deliver = "DELIVER", drop = "DROP", transfer = "TRANSFER"
        case fail = "FAIL", dsn = "DSN", poison = "POISON"
        /// Operator actions (`postroom queue hold/release/remove/retry`).
        case hold = "HOLD", release = "RELEASE", remove = "REMOVE", retry = "RETRY"
    }

    /// Which part of Postroom reported the event.
    public enum Source: String, Codable, Sendable, CaseIterable {
        case pickup = "PICKUP", replay = "REPLAY", routing = "ROUTING", queue = "QUEUE", delivery = "DELIVERY"
        case admin = "ADMIN"
    }

    public var timestamp: Date
    public var event: Kind
    public var source: Source
    /// Postroom's queue id; a bifurcated message has one per copy.
    public var queueID: String
    /// The `Message-ID` header, as written (with or without angle brackets).
    public var messageID: String
    /// Envelope sender; empty for the null sender.
    public var sender: String
    public var recipients: [String]
    public var connector: String?
    /// Enhanced status code or short status (e.g. `2.0.0`, `5.1.1`).
    public var status: String?
    /// Human-readable reason (why deferred, failed, rejected).
    public var reason: String?
    /// The file involved (pickup name, `.bad` name, drop file).
    public var file: String?
    /// Message size in bytes.
    public var size: Int?

    public init(
        timestamp: Date = Date(), event: Kind, source: Source, queueID: String, messageID: String,
        sender: String, recipients: [String], connector: String? = nil, status: String? = nil,
        reason: String? = nil, file: String? = nil, size: Int? = nil
    ) {
        self.timestamp = timestamp
        self.event = event
        self.source = source
        self.queueID = queueID
        self.messageID = messageID
        self.sender = sender
        self.recipients = recipients
        self.connector = connector
        self.status = status
        self.reason = reason
        self.file = file
        self.size = size
    }

    private enum CodingKeys: String, CodingKey {
        case timestamp, event, source, queueID, messageID, sender, recipients, connector, status, reason, file, size
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let text = try c.decode(String.self, forKey: .timestamp)
        guard let date = TrackingTimestamp.parse(text) else {
            throw DecodingError.dataCorruptedError(forKey: .timestamp, in: c, debugDescription: "not an ISO 8601 UTC timestamp: \(text)")
        }
        timestamp = date
        event = try c.decode(Kind.self, forKey: .event)
        source = try c.decode(Source.self, forKey: .source)
        queueID = try c.decode(String.self, forKey: .queueID)
        messageID = try c.decodeIfPresent(String.self, forKey: .messageID) ?? ""
        sender = try c.decodeIfPresent(String.self, forKey: .sender) ?? ""
        recipients = try c.decodeIfPresent([String].self, forKey: .recipients) ?? []
        connector = try c.decodeIfPresent(String.self, forKey: .connector)
        status = try c.decodeIfPresent(String.self, forKey: .status)
        reason = try c.decodeIfPresent(String.self, forKey: .reason)
        file = try c.decodeIfPresent(String.self, forKey: .file)
        size = try c.decodeIfPresent(Int.self, forKey: .size)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(TrackingTimestamp.format(timestamp), forKey: .timestamp)
        try c.encode(event, forKey: .event)
        try c.encode(source, forKey: .source)
        try c.encode(queueID, forKey: .queueID)
        try c.encode(messageID, forKey: .messageID)
        try c.encode(sender, forKey: .sender)
        try c.encode(recipients, forKey: .recipients)
        try c.encodeIfPresent(connector, forKey: .connector)
        try c.encodeIfPresent(status, forKey: .status)
        try c.encodeIfPresent(reason, forKey: .reason)
        try c.encodeIfPresent(file, forKey: .file)
        try c.encodeIfPresent(size, forKey: .size)
    }

    /// The event as one JSON line (with the trailing `\n`), keys in a fixed order with `timestamp` first so
    /// the file reads well with `tail -f`. Strings are JSON-escaped (control characters included), so a
    /// field can never break the one-object-per-line framing. Written by hand rather than with
    /// `JSONEncoder`, whose key order is unspecified, and because this runs for every event.
    public func jsonLine() -> [UInt8] {
        var out = "{\"timestamp\":\"\(TrackingTimestamp.format(timestamp))\""
        out += ",\"event\":\"\(event.rawValue)\",\"source\":\"\(source.rawValue)\""
        out += ",\"queueID\":" + Self.quoted(queueID)
        out += ",\"messageID\":" + Self.quoted(messageID)
        out += ",\"sender\":" + Self.quoted(sender)
        out += ",\"recipients\":[" + recipients.map(Self.quoted).joined(separator: ",") + "]"
        if let connector { out += ",\"connector\":" + Self.quoted(connector) }
        if let status { out += ",\"status\":" + Self.quoted(status) }
        if let reason { out += ",\"reason\":" + Self.quoted(reason) }
        if let file { out += ",\"file\":" + Self.quoted(file) }
        if let size { out += ",\"size\":\(size)" }
        out += "}\n"
        return Array(out.utf8)
    }

    /// A JSON string literal (RFC 8259 escaping).
    static func quoted(_ s: String) -> String {
        // Almost every value (ids, addresses, connector names) needs no escaping at all.
        if !s.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) { return "\"" + s + "\"" }
        var out = "\""
        out.reserveCapacity(s.utf8.count + 2)
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

/// `yyyy-MM-ddTHH:mm:ss.SSSZ` in UTC, done with `gmtime_r`/`timegm` so it needs no shared formatter.
enum TrackingTimestamp {
    static func format(_ date: Date) -> String {
        let totalMillis = Int64((date.timeIntervalSince1970 * 1000).rounded())
        var seconds = time_t(totalMillis >= 0 ? totalMillis / 1000 : (totalMillis - 999) / 1000)
        let millis = Int(totalMillis - Int64(seconds) * 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let s = String(value)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(millis), 3))Z"
    }

    /// Accepts `yyyy-MM-ddTHH:mm:ss[.fraction]Z`.
    static func parse(_ text: String) -> Date? {
        let u = Array(text.utf8)
        func number(_ from: Int, _ count: Int) -> Int32? {
            guard from + count <= u.count else { return nil }
            var value: Int32 = 0
            for c in u[from ..< from + count] {
                guard c >= 48, c <= 57 else { return nil }
                value = value * 10 + Int32(c - 48)
            }
            return value
        }
        guard u.count >= 20, u[4] == 45, u[7] == 45, u[10] == 84 || u[10] == 116, u[13] == 58, u[16] == 58,
              u.last == 90 || u.last == 122,
              let year = number(0, 4), let month = number(5, 2), let day = number(8, 2),
              let hour = number(11, 2), let minute = number(14, 2), let second = number(17, 2),
              (1 ... 12).contains(month), (1 ... 31).contains(day), hour < 24, minute < 60, second < 61
        else { return nil }
        var fraction = 0.0
        if u.count > 20 {
            guard u[19] == 46, u.count > 21 else { return nil }
            var scale = 0.1
            for c in u[20 ..< u.count - 1] {
                guard c >= 48, c <= 57 else { return nil }
                fraction += Double(c - 48) * scale
                scale /= 10
            }
        } else if u.count != 20 {
            return nil
        }
        var parts = tm()
        parts.tm_year = year - 1900
        parts.tm_mon = month - 1
        parts.tm_mday = day
        parts.tm_hour = hour
        parts.tm_min = minute
        parts.tm_sec = second
        let seconds = timegm(&parts)
        // Round to the millisecond so format(parse(x)) == x.
        return Date(timeIntervalSince1970: (Double(seconds) * 1000 + (fraction * 1000).rounded()) / 1000)
    }
}
