import Foundation
import PostroomSystem

/// `postroom trace ID --csv`: tracking events as rows of Exchange's message tracking log, for
/// people who feed those logs to existing tools (log parsers, `Get-MessageTrackingLog`-style reports).
///
/// The header lines and the 30 columns are Exchange 2013/2016's, in their order. Postroom fills the
/// columns it knows: `date-time`, `server-hostname`, `source-context` (the reason), `connector-id`,
/// `source`, `event-id`, `internal-message-id` (the queue id), `message-id`, `recipient-address` and
/// `recipient-status` (one per recipient, `;`-separated), `total-bytes`, `recipient-count`,
/// `sender-address`, `return-path` (`<>` for the null sender), `message-info` (the file) and
/// `schema-version`; the others stay empty. Fields are quoted as CSV requires (RFC 4180).
public enum MessageTrackingCSV {
    public static let fields = [
        "date-time", "client-ip", "client-hostname", "server-ip", "server-hostname", "source-context", "connector-id",
        "source", "event-id", "internal-message-id", "message-id", "network-message-id", "recipient-address",
        "recipient-status", "total-bytes", "recipient-count", "related-recipient-address", "reference", "message-subject",
        "sender-address", "return-path", "message-info", "directionality", "tenant-id", "original-client-ip",
        "original-server-ip", "custom-data", "transport-traffic-type", "log-id", "schema-version",
    ]

    /// The rows for the message `id` (selected as `postroom trace` selects them), or nil when none match.
    public static func render(events: [TrackingEvent], id: String, serverHostname: String = FileSystem.hostname(), now: Date = Date()) -> String? {
        let selected = Trace.select(events: events, id: id)
        guard !selected.isEmpty else { return nil }
        var out = "#Software: Postroom \(PostroomVersion.current)\r\n"
        out += "#Version: 15.0.0.0\r\n"
        out += "#Log-Type: Message Tracking Log\r\n"
        out += "#Date: \(TrackingTimestamp.format(now))\r\n"
        out += "#Fields: " + fields.joined(separator: ",") + "\r\n"
        for event in selected {
            out += row(event, serverHostname: serverHostname).map(quote).joined(separator: ",") + "\r\n"
        }
        return out
    }

    /// One event's 30 values, in `fields` order.
    static func row(_ event: TrackingEvent, serverHostname: String) -> [String] {
        let status = event.status.map { code in ([code] + (event.reason.map { [$0] } ?? [])).joined(separator: " ") } ?? ""
        var values = [String: String]()
        values["date-time"] = TrackingTimestamp.format(event.timestamp)
        values["server-hostname"] = serverHostname
        values["source-context"] = event.reason ?? ""
        values["connector-id"] = event.connector ?? ""
        values["source"] = event.source.rawValue
        values["event-id"] = event.event.rawValue
        values["internal-message-id"] = event.queueID
        values["message-id"] = event.messageID.isEmpty ? "" : "<\(Trace.normalizedMessageID(event.messageID))>"
        values["recipient-address"] = event.recipients.joined(separator: ";")
        values["recipient-status"] = status.isEmpty ? "" : Array(repeating: status, count: max(1, event.recipients.count)).joined(separator: ";")
        values["total-bytes"] = event.size.map(String.init) ?? ""
        values["recipient-count"] = String(event.recipients.count)
        values["sender-address"] = event.sender
        values["return-path"] = event.sender.isEmpty ? "<>" : event.sender
        values["message-info"] = event.file ?? ""
        values["schema-version"] = "Postroom \(PostroomVersion.current)"
        return fields.map { values[$0] ?? "" }
    }

    /// A CSV field: quoted when it holds a comma, a quote or a line break, with quotes doubled.
    static func quote(_ value: String) -> String {
        guard value.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return value }
        return "\"" + value.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
