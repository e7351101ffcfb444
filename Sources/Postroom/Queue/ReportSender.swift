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
        let claimed = try await context.queue.submitGenerated(ReplayFormat.encode(envelope: report.envelope, message: report.message))
        context.resubmit(claimed)
        return true
    }
}
