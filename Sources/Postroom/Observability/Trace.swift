/// `postroom trace ID`: the history of one message told from the tracking log.
public enum Trace {
    /// The events of the message `id` (see ``render(events:id:)``), in time order.
    public static func select(events: [TrackingEvent], id: String) -> [TrackingEvent] {
        let wanted = id.trimmingCharacters(in: .whitespaces)
        guard !wanted.isEmpty else { return [] }
        let wantedMessageID = normalizedMessageID(wanted)

        var messageIDs: Set<String> = []
        var queueIDs: Set<String> = []
        for event in events {
            let mid = normalizedMessageID(event.messageID)
            if event.queueID == wanted || (!mid.isEmpty && mid == wantedMessageID) {
                queueIDs.insert(event.queueID)
                if !mid.isEmpty { messageIDs.insert(mid) }
            }
        }
        // Second pass: siblings that share a Message-ID with an asked-for queue id.
        for event in events {
            let mid = normalizedMessageID(event.messageID)
            if !mid.isEmpty, messageIDs.contains(mid) { queueIDs.insert(event.queueID) }
        }
        queueIDs.remove("")
        let selected = events.enumerated()
            .filter { queueIDs.contains($0.element.queueID) || messageIDs.contains(normalizedMessageID($0.element.messageID)) }
            .sorted { ($0.element.timestamp, $0.offset) < ($1.element.timestamp, $1.offset) }
            .map(\.element)
        return selected
    }

    /// Renders the story of the message `id` (a queue id, or a Message-ID with or without `<>`), or nil
    /// when no event matches.
    ///
    /// A message bifurcated by routing has several queue ids sharing one Message-ID, so the selection is
    /// closed over both: the queue ids whose events carry the Message-ID (or that were asked for), and the
    /// Message-IDs of those queue ids. Events are sorted by time (ties keep log order), one line each:
    /// time, event, source, queue id, recipients, then connector, status, reason, file and size when set.
    public static func render(events: [TrackingEvent], id: String) -> String? {
        let selected = select(events: events, id: id)
        let messageIDs = Set(selected.map { normalizedMessageID($0.messageID) }.filter { !$0.isEmpty })
        let queueIDs = Set(selected.map(\.queueID).filter { !$0.isEmpty })
        guard !selected.isEmpty else { return nil }

        var out = ""
        let shownMessageIDs = messageIDs.sorted().map { "<\($0)>" }.joined(separator: ", ")
        out += "Message-ID: \(shownMessageIDs.isEmpty ? "(none)" : shownMessageIDs)\n"
        out += "Queue ids:  \(queueIDs.sorted().joined(separator: ", "))\n"
        if let first = selected.first {
            out += "Sender:     \(first.sender.isEmpty ? "<>" : first.sender)\n"
        }
        out += "\n"
        let eventWidth = selected.map(\.event.rawValue.count).max() ?? 0
        let sourceWidth = selected.map(\.source.rawValue.count).max() ?? 0
        let queueWidth = selected.map(\.queueID.count).max() ?? 0
        for event in selected {
            var line = TrackingTimestamp.format(event.timestamp)
            line += "  " + pad(event.event.rawValue, eventWidth)
            line += "  " + pad(event.source.rawValue, sourceWidth)
            line += "  " + pad(event.queueID, queueWidth)
            var details: [String] = []
            if !event.recipients.isEmpty { details.append("to " + event.recipients.joined(separator: ", ")) }
            if let connector = event.connector { details.append("via \(connector)") }
            if let status = event.status { details.append("status \(status)") }
            if let reason = event.reason { details.append("reason: \(reason)") }
            if let file = event.file { details.append("file \(file)") }
            if let size = event.size { details.append("\(size) bytes") }
            if !details.isEmpty { line += "  " + details.joined(separator: "; ") }
            while line.last == " " { line.removeLast() }
            out += line + "\n"
        }
        return out
    }

    /// Message-IDs compare without surrounding whitespace and angle brackets.
    static func normalizedMessageID(_ id: String) -> String {
        var s = Substring(id.trimmingCharacters(in: .whitespaces))
        if s.hasPrefix("<") { s = s.dropFirst() }
        if s.hasSuffix(">") { s = s.dropLast() }
        return String(s)
    }

    private static func pad(_ s: String, _ width: Int) -> String {
        s.count >= width ? s : s + String(repeating: " ", count: width - s.count)
    }
}
