import Foundation
import PostroomSystem

/// What a report is about: the message (its queue id) and the event that made it, e.g.
/// "failed at intake" or "failed at attempt 3 of entry 0123.2".
///
/// A report's identity (its queue id, hence its queue entries and delivered file names, and
/// its Message-ID) derives from its cause and the recipients it reports, never from a clock:
/// a crash between writing the report and recording that it was written re-runs the work,
/// and the report made again is recognised as the same one (exactly once, like a delivery).
public struct ReportCause: Sendable, Equatable {
    /// The queue id of the message reported on.
    public var queueID: String
    /// The event, unique for that message (e.g. `intake`, `validate`, `filter`, `failed 0123.2#3`).
    public var event: String

    public init(queueID: String, event: String) {
        self.queueID = queueID
        self.event = event
    }

    /// Failures found before the message was queued (categorize, route).
    public static func intake(_ queueID: String) -> ReportCause { ReportCause(queueID: queueID, event: "intake") }
    /// A delivery attempt of an entry that failed recipients for good (or let them expire).
    public static func failed(_ entry: QueueEntry) -> ReportCause {
        ReportCause(queueID: entry.queueID, event: "failed \(entry.id)#\(entry.attempts)")
    }
    /// The delivery notice (NOTIFY=SUCCESS) for the recipients an attempt of an entry delivered.
    public static func delivered(_ entry: QueueEntry) -> ReportCause {
        ReportCause(queueID: entry.queueID, event: "delivered \(entry.id)#\(entry.attempts)")
    }
    /// The one delay notice of an entry.
    public static func delayed(_ entry: QueueEntry) -> ReportCause { ReportCause(queueID: entry.queueID, event: "delayed \(entry.id)") }

    /// `<cause queue id>R<16 hex digits>`: sorts after its cause, never equal to a clock-made id
    /// (those are hex only), and the same for the same cause and recipients.
    func reportQueueID(reporting recipients: [FailedRecipient]) -> String {
        let subject = recipients.map { "\($0.address) \($0.status) \($0.action)" }.sorted().joined(separator: "\n")
        let digest = stableHash(event + "\n" + subject).uppercased()
        return queueID + "R" + String(repeating: "0", count: max(0, 16 - digest.count)) + digest
    }
}

/// Sends non-delivery and delay reports: builds the RFC 3464 message, writes it durably
/// into the queue's `incoming/` in replay format and feeds it back into the pipeline, so a
/// report is routed like any other message. Never reports about a null-sender message.
public struct ReportSender: Sendable {
    let context: StageContext

    public init(context: StageContext) { self.context = context }

    /// Returns false (and sends nothing) when the original came from the null sender.
    @discardableResult
    public func send(about original: Envelope, message: [UInt8], messageID: String?, failed: [FailedRecipient],
                     cause: ReportCause) async throws(SystemError) -> Bool {
        guard !failed.isEmpty, !original.hasNullSender else { return false }
        let queueID = cause.reportQueueID(reporting: failed)
        guard let report = DeliveryStatusNotification.build(
            about: original, originalMessage: message, originalMessageID: messageID, failed: failed,
            reportingDomain: context.defaultDomain, reportingHost: context.hostname, now: Date(), messageID: reportMessageID(queueID))
        else { return false }
        try await submit(report, queueID: queueID, lineEndingOf: message)
        context.telemetry.track(TrackingEvent(event: .dsn, source: .dsn, queueID: queueID, messageID: messageID ?? "", sender: original.sender,
                                              recipients: failed.map(\.address), status: failed.first?.status,
                                              reason: failed.first.map { "\($0.action): \($0.diagnostic)" }))
        return true
    }

    /// Reports a message refused at validation (limits, no valid recipient, malformed).
    @discardableResult
    public func send(rejecting rejection: SubmissionReport, messageID: String?, cause: ReportCause) async throws(SystemError) -> Bool {
        guard !rejection.envelope.hasNullSender else { return false }
        let failed = rejection.envelope.recipients.map { FailedRecipient(address: $0.address, status: rejection.status, diagnostic: rejection.diagnostic) }
        let queueID = cause.reportQueueID(reporting: failed)
        guard let report = DeliveryStatusNotification.build(
            rejecting: rejection, originalMessageID: messageID, reportingDomain: context.defaultDomain,
            reportingHost: context.hostname, now: Date(), messageID: reportMessageID(queueID))
        else { return false }
        try await submit(report, queueID: queueID, lineEndingOf: rejection.headerBytes)
        context.telemetry.track(TrackingEvent(event: .dsn, source: .dsn, queueID: queueID, messageID: messageID ?? "", sender: rejection.envelope.sender,
                                              recipients: rejection.envelope.recipients.map(\.address), status: rejection.status, reason: rejection.diagnostic))
        return true
    }

    private func reportMessageID(_ queueID: String) -> String { "<\(queueID).report@\(context.hostname)>" }

    /// Queues the report with the line endings of the message it is about, so a report lands in a
    /// Maildir or drop directory in the same convention as the relayed mail around it.
    private func submit(_ report: (envelope: Envelope, message: [UInt8]), queueID: String,
                        lineEndingOf original: [UInt8]) async throws(SystemError) {
        let ending = original.isEmpty ? "\r\n" : lineEnding(of: original)
        let message = ending == "\n" ? Self.bareLineFeeds(report.message) : report.message
        let bytes = ReplayFormat.encode(envelope: report.envelope, message: message, lineEnding: ending)
        // Nil: the same report is already in incoming/ (recovered or in flight); it goes on from there.
        if let claimed = try await context.queue.submitGenerated(bytes, queueID: queueID) {
            context.resubmit(claimed)
        }
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
