import Foundation

/// Sends non-delivery and delay reports: builds the RFC 3464 message, writes it durably
/// into the queue's `incoming/` in replay format and feeds it back into the pipeline, so a
/// report is routed like any other message. Never reports about a null-sender message.
public struct ReportSender: Sendable {
    let context: StageContext

    public init(context: StageContext) { self.context = context }

    /// Returns false (and sends nothing) when the original came from the null sender.
    @discardableResult
    public func send(about original: Envelope, message: [UInt8], messageID: String?, failed: [FailedRecipient]) async throws(SystemError) -> Bool {
        guard !failed.isEmpty, !original.hasNullSender else { return false }
        let reportID = "<\(QueueID.next()).report@\(context.hostname)>"
        guard let report = DeliveryStatusNotification.build(
            about: original, originalMessage: message, originalMessageID: messageID, failed: failed,
            reportingDomain: context.defaultDomain, reportingHost: context.hostname, now: Date(), messageID: reportID)
        else { return false }
        try await submit(report, lineEndingOf: message)
        context.telemetry.track(TrackingEvent(event: .dsn, source: .dsn, queueID: "", messageID: messageID ?? "", sender: original.sender,
                                              recipients: failed.map(\.address), status: failed.first?.status,
                                              reason: failed.first.map { "\($0.action): \($0.diagnostic)" }))
        return true
    }

    /// Reports a message refused at validation (limits, no valid recipient, malformed).
    @discardableResult
    public func send(rejecting rejection: SubmissionReport, messageID: String?) async throws(SystemError) -> Bool {
        guard !rejection.envelope.hasNullSender else { return false }
        guard let report = DeliveryStatusNotification.build(
            rejecting: rejection, originalMessageID: messageID, reportingDomain: context.defaultDomain,
            reportingHost: context.hostname, now: Date(), messageID: "<\(QueueID.next()).report@\(context.hostname)>")
        else { return false }
        try await submit(report, lineEndingOf: rejection.headerBytes)
        context.telemetry.track(TrackingEvent(event: .dsn, source: .dsn, queueID: "", messageID: messageID ?? "", sender: rejection.envelope.sender,
                                              recipients: rejection.envelope.recipients.map(\.address), status: rejection.status, reason: rejection.diagnostic))
        return true
    }

    /// Queues the report with the line endings of the message it is about, so a report lands in a
    /// Maildir or drop directory in the same convention as the relayed mail around it.
    private func submit(_ report: (envelope: Envelope, message: [UInt8]), lineEndingOf original: [UInt8]) async throws(SystemError) {
        let ending = original.isEmpty ? "\r\n" : lineEnding(of: original)
        let message = ending == "\n" ? Self.bareLineFeeds(report.message) : report.message
        let bytes = ReplayFormat.encode(envelope: report.envelope, message: message, lineEnding: ending)
        let claimed = try await context.queue.submitGenerated(bytes)
        context.resubmit(claimed)
    }

    /// The report with every CRLF turned into LF (reports are built with CRLF).
    static func bareLineFeeds(_ message: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(message.count)
        for (index, byte) in message.enumerated() {
            if byte == UInt8(ascii: "\r"), index + 1 < message.count, message[index + 1] == UInt8(ascii: "\n") { continue }
            out.append(byte)
        }
        return out
    }
}
