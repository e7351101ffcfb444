import Foundation

/// Delivery straight from the claimed file, for the common case: a fresh message whose next hops
/// are file connectors (Maildir, foreign drop directory) that take it at once.
///
/// The claimed file in `queue/incoming/` is then the message's only queue copy: no queue entry is
/// written, fsynced, renamed and later removed, which saves a file, an fsync and a directory fsync
/// per message. Every guarantee of the queued path holds:
/// - the claimed file leaves `incoming/` (``QueueStore/release(_:)``) only after every copy is
///   delivered (fsynced and renamed into place, the folder fsynced by the connector), so a crash or
///   power loss at any instant before that finds it there and processes it again under the same
///   queue id, and the connectors find the copies already made by their names;
/// - the claim itself is made durable first (``QueueStore/syncClaim(sourceDirectory:)``), so a power
///   loss can never put the file back in pickup/ after a copy of it became durable (it would be
///   claimed again under a new queue id and delivered again under new names);
/// - anything short of complete success (a recipient deferred or failed, a connector that is not a
///   file connector) gets a queue entry exactly as before and goes through the connector's queue,
///   which retries, reports and parks as usual; an inline attempt leaves no state of its own.
///
/// Inline deliveries run in the deliver stage's workers (16), outside the connectors' `concurrency`
/// limit, which applies to queued entries. Agents are never delivered inline: a command may run
/// for its whole time limit.
extension DeliveryService {
    /// File connectors: a bounded amount of local work per recipient.
    static func deliversInline(_ connector: any Connector) -> Bool {
        switch connector.configuration.type {
        case .maildir, .foreign: true
        case .agent: false
        }
    }

    /// Delivers what it can at once; returns the entries that still need a queue entry, in order.
    func deliverInline(_ item: PipelineItem, entries: [(QueueEntry, [UInt8])]) async throws(SystemError) -> [(QueueEntry, [UInt8])] {
        let inline = entries.map { entry, _ in queues[entry.connector].map { Self.deliversInline($0.connector) } ?? false }
        guard inline.contains(true) else { return entries }
        try await store.syncClaim(sourceDirectory: item.sourceDirectory)
        // A message that failed after an inline attempt (a queue write, the release) comes back with
        // the same queue id and looks fresh; its copies may exist now, so the connectors must look.
        let seenBefore = inlineAttempts.withLock { !$0.insert(item.queueID).inserted }
        var pending: [(QueueEntry, [UInt8])] = []
        for ((original, message), isInline) in zip(entries, inline) {
            var entry = original
            if seenBefore { entry.isFresh = false }
            guard isInline, let connector = queues[entry.connector]?.connector else {
                pending.append((original, message))
                continue
            }
            let results = await connector.deliver(entry, message: message)
            guard results.allSatisfy({ $0 == .delivered }) else {
                // Copies made for some recipients may exist now: the queued attempt must look for them.
                var queued = entry
                queued.isFresh = false
                pending.append((queued, message))
                continue
            }
            telemetry.track(TrackingEvent(event: .submit, source: .queue, queueID: entry.id, messageID: entry.messageID,
                                          sender: entry.envelope.sender, recipients: entry.envelope.recipients.map(\.address),
                                          connector: entry.connector, size: Int(entry.size)))
            telemetry.attempted(entry, results: results)
            track(entry, results: results, connector: connector)
            telemetry.delivered(entry)
        }
        // For the kill tests, every copy of the message is final here and the claimed file is about
        // to leave the queue: the instant an entry is removed after delivery.
        if pending.count < entries.count { FaultInjection.checkpoint("remove") }
        return pending
    }
}
