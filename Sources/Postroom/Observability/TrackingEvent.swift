import Foundation

/// One line of the message tracking log (`tracking.log`): something that happened to a message.
///
/// Encoded as one JSON object with the keys `timestamp`, `event`, `source`, `queueID`, `messageID`,
/// `sender`, `recipients` and, when set, `connector`, `status`, `reason`, `file`, `size`. The timestamp is
/// ISO 8601 in UTC with milliseconds (`2026-11-23T09:36:19.123Z`), so lines sort and grep well.
public struct TrackingEvent: Codable, Sendable, Equatable {
    /// What happened, in the vocabulary of Exchange's message tracking log: `DELIVER` into a
    /// mailbox, `SEND` to another system (a foreign connector's drop directory, an agent), `DROP`
    /// only for a message discarded without a report, `POISONMESSAGE` into the poison queue.
    /// `ROUTE` and the operator actions have no Exchange counterpart and keep Postroom's names.
    public enum Kind: String, Codable, Sendable, CaseIterable {
        case receive = "RECEIVE", submit = "SUBMIT", badmail = "BADMAIL", resolve = "RESOLVE", expand = "EXPAND"
        case route = "ROUTE", `defer` = "DEFER", deliver = "DELIVER", send = "SEND", drop = "DROP", transfer = "TRANSFER"
        case fail = "FAIL", dsn = "DSN", poison = "POISONMESSAGE"
        /// Operator actions (`postroom queue hold/release/remove/retry`).
        case hold = "HOLD", release = "RELEASE", remove = "REMOVE", retry = "RETRY"
        /// What a `command` stage's program said about a message (Exchange's transport agents).
        case agentInfo = "AGENTINFO"

        /// Logs written before the Exchange names were adopted are still read.
        public init(from decoder: any Decoder) throws {
            let text = try decoder.singleValueContainer().decode(String.self)
            guard let kind = Kind(rawValue: text) ?? (text == "POISON" ? .poison : nil) else {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "unknown tracking event \(text)"))
            }
            self = kind
        }
    }

    /// Which part of the transport reported the event, with Exchange's source names: `PICKUP`,
    /// `ADMIN` (Replay directory submissions and operator actions), `ROUTING`, `QUEUE`, `DSN`
    /// (generated reports), and per connector kind `STOREDRIVER` (Maildir), `GATEWAY` (foreign
    /// connector), `AGENT` (delivery agent), `SMTP`. `REPLAY` and `DELIVERY` are only read from
    /// older logs.
    public enum Source: String, Codable, Sendable, CaseIterable {
        case pickup = "PICKUP", replay = "REPLAY", routing = "ROUTING", queue = "QUEUE", delivery = "DELIVERY"
        /// `AGENT` is a delivery agent or a `command` stage's program.
        case admin = "ADMIN", dsn = "DSN", gateway = "GATEWAY", storeDriver = "STOREDRIVER", agent = "AGENT", smtp = "SMTP"
    }

    /// The event and source of a successful delivery through a connector of `type`, and the
    /// source of its DEFER and FAIL events. Keyed by the type's name so a new connector type
    /// needs one entry here, not a change of every switch.
    public static func delivery(connectorType type: String) -> (delivered: Kind, source: Source) {
        switch type {
        case "maildir": (.deliver, .storeDriver)
        case "foreign": (.send, .gateway)
        case "smtp": (.send, .smtp)
        default: (.send, .agent)
        }
    }

    /// The RFC 3463 status a connector's reason starts with (`4.4.1 no answer`), else `fallback`.
    public static func leadingStatus(of reason: String, fallback: String) -> String {
        let word = reason.prefix { !$0.isWhitespace && $0 != ":" && $0 != ";" }
        let parts = word.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let first = parts.first, first == "2" || first == "4" || first == "5",
              parts.allSatisfy({ !$0.isEmpty && $0.count <= 3 && $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) })
        else { return fallback }
        return String(word)
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
        // Built as bytes: this runs for every event, and String concatenation was a measurable
        // part of the daemon's CPU per message.
        var out: [UInt8] = []
        out.reserveCapacity(320)
        func field(_ name: StaticString, _ value: String) {
            Self.appendName(name, to: &out)
            Self.appendQuoted(value, to: &out)
        }
        out.append(contentsOf: #"{"timestamp":""#.utf8)
        TrackingTimestamp.append(timestamp, to: &out)
        out.append(UInt8(ascii: "\""))
        field("event", event.rawValue)
        field("source", source.rawValue)
        field("queueID", queueID)
        field("messageID", messageID)
        field("sender", sender)
        Self.appendName("recipients", to: &out)
        out.append(UInt8(ascii: "["))
        for (index, recipient) in recipients.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            Self.appendQuoted(recipient, to: &out)
        }
        out.append(UInt8(ascii: "]"))
        if let connector { field("connector", connector) }
        if let status { field("status", status) }
        if let reason { field("reason", reason) }
        if let file { field("file", file) }
        if let size {
            Self.appendName("size", to: &out)
            out.append(contentsOf: String(size).utf8)
        }
        out.append(contentsOf: "}\n".utf8)
        return out
    }

    /// `,"name":`
    private static func appendName(_ name: StaticString, to out: inout [UInt8]) {
        out.append(UInt8(ascii: ","))
        out.append(UInt8(ascii: "\""))
        name.withUTF8Buffer { out.append(contentsOf: $0) }
        out.append(UInt8(ascii: "\""))
        out.append(UInt8(ascii: ":"))
    }

    /// A JSON string literal (RFC 8259 escaping).
    static func quoted(_ s: String) -> String {
        var out: [UInt8] = []
        appendQuoted(s, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends `s` as a JSON string literal. Byte-wise is exact: every byte of a multi-byte UTF-8
    /// sequence is 0x80 or above and passes through, and only ASCII needs escaping.
    static func appendQuoted(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        // Most values (queue ids, addresses, connector names) need no escape: one copy then.
        if !s.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
            out.append(contentsOf: s.utf8)
            out.append(UInt8(ascii: "\""))
            return
        }
        for byte in s.utf8 {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                out.append(UInt8(ascii: "\\"))
                out.append(byte)
            case UInt8(ascii: "\n"): out.append(contentsOf: #"\n"#.utf8)
            case UInt8(ascii: "\r"): out.append(contentsOf: #"\r"#.utf8)
            case UInt8(ascii: "\t"): out.append(contentsOf: #"\t"#.utf8)
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: #"\u00"#.utf8)
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0xF)])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

/// `yyyy-MM-ddTHH:mm:ss.SSSZ` in UTC, done with integer calendar arithmetic so it needs no shared formatter.
enum TrackingTimestamp {
    static func format(_ date: Date) -> String {
        var bytes: [UInt8] = []
        append(date, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Appends the formatted `date` (digits written directly: this runs for every tracking line).
    static func append(_ date: Date, to out: inout [UInt8]) {
        let totalMillis = Int64((date.timeIntervalSince1970 * 1000).rounded())
        let seconds = totalMillis >= 0 ? totalMillis / 1000 : (totalMillis - 999) / 1000
        let millis = totalMillis - seconds * 1000
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = seconds - days * 86_400
        let (year, month, day) = MessageDate.civilDate(fromDays: days)
        func digits(_ value: Int64, _ width: Int) {
            // A number this small is a small String, kept inline: no allocation.
            let text = String(value).utf8
            for _ in text.count..<max(width, text.count) { out.append(UInt8(ascii: "0")) }
            out.append(contentsOf: text)
        }
        digits(Int64(year), 4)
        out.append(UInt8(ascii: "-"))
        digits(Int64(month), 2)
        out.append(UInt8(ascii: "-"))
        digits(Int64(day), 2)
        out.append(UInt8(ascii: "T"))
        digits(secondOfDay / 3600, 2)
        out.append(UInt8(ascii: ":"))
        digits(secondOfDay / 60 % 60, 2)
        out.append(UInt8(ascii: ":"))
        digits(secondOfDay % 60, 2)
        out.append(UInt8(ascii: "."))
        digits(millis, 3)
        out.append(UInt8(ascii: "Z"))
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
        let days = MessageDate.daysFromCivil(year: Int(year), month: Int(month), day: Int(day))
        let seconds = days * 86_400 + Int64(hour) * 3600 + Int64(minute) * 60 + Int64(second)
        // Round to the millisecond so format(parse(x)) == x.
        return Date(timeIntervalSince1970: (Double(seconds) * 1000 + (fraction * 1000).rounded()) / 1000)
    }
}
