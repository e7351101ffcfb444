import Foundation
import PostroomSystem

/// Delivery straight from the claimed file, for the common case: a message whose next hops are
/// file connectors (Maildir, foreign drop directory) that take it at once.
///
/// The claimed file in `queue/incoming/` is then the message's only queue copy: no queue entry is
/// written, fsynced, renamed and later removed, which saves a file creation, an fsync and a
/// directory fsync per message. Every guarantee of the queued path holds:
/// - the claimed file leaves `incoming/` (``QueueStore/release(_:sync:)``) only after every copy
///   is delivered (fsynced and renamed into place, its folder fsynced by the connector), so a
///   crash or power loss at any instant before that finds it there and processes it again under
///   the same queue id, and the connectors find the copies already made by their names;
/// - the claim itself is made durable first (``QueueStore/syncClaim(sourceDirectory:)``, or the
///   first `syncfs` of the copy's own group commit: ``DeliveryCommit/coversEarlierRenames``), so a
///   power loss can never put the file back into pickup/ after a copy of it became durable (it
///   would be claimed again under a new queue id and delivered again under new names);
/// - anything short of complete success (a recipient deferred or failed, a success notice asked
///   for, a connector that is not a file connector) gets a queue entry exactly as before and goes
///   through the connector's queue, which retries, reports and parks as usual. An inline attempt
///   leaves no state of its own; the queued attempt looks for copies it may have made.
///
/// A crash during an inline delivery counts against the claimed file (the deliver stage's line
/// in `inflight.journal`), so a message that kills Postroom is parked as poison like any other.
/// Inline deliveries run in the deliver stage's workers, outside the connectors' `concurrency`
/// limit, which applies to queued entries. Agents and SMTP are never delivered inline: a command
/// or a remote server may take its whole time limit.
extension DeliveryService {
    /// File connectors: a bounded amount of local work per recipient, and copies found by name.
    static func deliversInline(_ connector: any Connector) -> Bool {
        switch connector.configuration.type {
        case .maildir, .foreign: true
        case .agent, .smtp: false
        }
    }

    /// Delivers what it can at once; returns the entries that still need a queue entry, in order.
    func deliverInline(_ item: PipelineItem, entries: [(QueueEntry, [UInt8])]) async throws(SystemError) -> [(QueueEntry, [UInt8])] {
        let connectors = entries.map { entry, _ in queues[entry.connector]?.connector }
        guard connectors.contains(where: { $0.map(Self.deliversInline) ?? false }) else { return entries }
        if !deliveriesCoverClaims { try await store.syncClaim(sourceDirectory: item.sourceDirectory) }
        var pending: [(QueueEntry, [UInt8])] = []
        for ((entry, message), connector) in zip(entries, connectors) {
            guard let connector, Self.deliversInline(connector),
                  connector.successAction(for: entry) == nil || !entry.envelope.recipients.contains(where: Self.asksForSuccessNotice) else {
                pending.append((entry, message))
                continue
            }
            let results = await connector.deliver(entry, message: message)
            guard results.allSatisfy({ $0 == .delivered }) else {
                // Copies made for some recipients may exist now: the queued attempt looks for them.
                var queued = entry
                queued.isFresh = false
                pending.append((queued, message))
                continue
            }
            // Submitted to the connector and delivered by it: both lines in one write.
            let submitted = TrackingEvent(event: .submit, source: .queue, queueID: entry.id, messageID: entry.messageID,
                                          sender: entry.envelope.sender, recipients: entry.envelope.recipients.map(\.address),
                                          connector: entry.connector, size: Int(entry.size))
            telemetry.track([submitted] + trackingEvents(entry, results: results, connector: connector))
            telemetry.attempted(entry, results: results)
            telemetry.delivered(entry)
        }
        // For the kill tests: every copy made inline is final here, and the claimed file is about
        // to leave the queue, the instant a queue entry is removed after its delivery.
        if pending.count < entries.count { FaultInjection.checkpoint("remove") }
        return pending
    }
}
