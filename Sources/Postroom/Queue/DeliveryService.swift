import Foundation
import PostroomSystem
import Synchronization

/// The delivery side of Postroom: one queue per connector, each with its own workers.
///
/// Connectors are independent: a stuck connector (quota full, agent down) defers its own
/// entries and never delays the others. Entries are files (see ``QueueStore``); memory
/// holds only their ids, so any backlog stays cheap.
public final class DeliveryService: Sendable {
    public let settings: DeliverSettings
    let store: QueueStore
    let queues: [String: ConnectorQueue]
    let log: Logger
    let reports: Mutex<ReportSender?> = Mutex(nil)
    let telemetry: Telemetry
    /// Records in-flight attempts so a crash during one counts against that entry (poison).
    public let journal: PoisonJournal
    /// True when the file connectors' first sync of a delivery also makes its message's claim
    /// durable (``DeliveryCommit/coversEarlierRenames``), so inline delivery needs no claim sync of its own.
    let deliveriesCoverClaims: Bool

    public init(settings: DeliverSettings, store: QueueStore, connectors: [any Connector], log: Logger, telemetry: Telemetry,
                deliveriesCoverClaims: Bool = false) {
        self.settings = settings
        self.deliveriesCoverClaims = deliveriesCoverClaims
        self.store = store
        self.log = log
        self.telemetry = telemetry
        self.journal = PoisonJournal(queue: store)
        var queues: [String: ConnectorQueue] = [:]
        for connector in connectors {
            queues[connector.name] = ConnectorQueue(connector: connector)
        }
        self.queues = queues
    }

    /// Connects the report sender, which needs the finished stage context.
    func attach(reports: ReportSender) { self.reports.withLock { $0 = reports } }

    private var reportSender: ReportSender {
        get throws {
            guard let sender = reports.withLock({ $0 }) else { throw SystemError.invalid(operation: "report", path: "") }
            return sender
        }
    }

    // MARK: Intake from the pipeline

    /// Queues one entry per next hop durably, reports failed recipients, then releases the claimed file.
    ///
    /// A message with a `holdReason` is queued the same way but into `hold/` and not given to
    /// the connectors: it waits there, durably, until an operator releases it.
    func accept(_ item: PipelineItem) async throws -> StageResult {
        let state: QueueState = item.holdReason == nil ? .active : .held
        var entries: [(QueueEntry, [UInt8])] = []
        for (index, hop) in item.hops.enumerated() {
            var mailboxes: [String: String] = [:]
            for recipient in hop.recipients { if let mailbox = recipient.mailbox { mailboxes[recipient.address] = mailbox } }
            let envelope = Envelope(sender: item.envelope.sender, recipients: hop.recipients.map {
                EnvelopeRecipient(address: $0.address, parameters: $0.original.parameters)
            }, parameters: item.envelope.parameters)
            var entry = QueueEntry(id: "\(item.queueID).\(index + 1)", queueID: item.queueID, connector: hop.connector,
                                   envelope: envelope, mailboxes: mailboxes, messageID: item.messageID,
                                   source: item.claimed.source, arrival: item.arrival, size: Int64(item.bytes.count))
            // The reason travels in the entry so `postroom queue show` tells the operator why it waits.
            entry.lastError = item.holdReason
            entry.isFresh = !item.claimed.recovered
            entries.append((entry, item.bytes))
        }
        if !item.failures.isEmpty {
            try await reportSender.send(about: item.envelope, message: Self.headerBlock(of: item.bytes), messageID: item.messageID, failed: item.failures,
                                        cause: .intake(item.queueID))
        }
        var queued = entries
        if state == .active, !entries.isEmpty { queued = try await deliverInline(item, entries: entries) }
        if !queued.isEmpty { try await store.store(queued, state: state) }
        FaultInjection.checkpoint("store")
        // Delivered inline only: a claimed file that comes back after a power loss finds its copies by name.
        try await store.release(item.claimed, sync: !queued.isEmpty)
        if let reason = item.holdReason, !entries.isEmpty {
            log.notice("held \(entries.map(\.0.id).joined(separator: ", ")): \(reason); `postroom queue release ID` delivers it")
        }
        for (entry, message) in queued {
            telemetry.track(TrackingEvent(event: .submit, source: .queue, queueID: entry.id, messageID: entry.messageID,
                                          sender: entry.envelope.sender, recipients: entry.envelope.recipients.map(\.address),
                                          connector: entry.connector, size: Int(entry.size)))
            if state == .active {
                await queues[entry.connector]?.enqueue(entry.id, state: .active, cached: (entry, message))
            }
        }
        return .finished(entries.isEmpty ? .reported : .queued)
    }

    /// True when the recipient's `NOTIFY=` lists SUCCESS (RFC 3461); without NOTIFY, never.
    static func asksForSuccessNotice(_ recipient: EnvelopeRecipient) -> Bool {
        recipient.parameters.contains { parameter in
            let upper = parameter.uppercased()
            return upper.hasPrefix("NOTIFY=") && upper.dropFirst(7).split(separator: ",").contains("SUCCESS")
        }
    }

    /// The header block of a message (up to the first empty line), attached to reports.
    public static func headerBlock(of message: [UInt8]) -> [UInt8] {
        var index = 0
        while index < message.count {
            guard let newline = message[index...].firstIndex(of: UInt8(ascii: "\n")) else { break }
            let lineLength = newline - index
            if lineLength == 0 || (lineLength == 1 && message[index] == UInt8(ascii: "\r")) { return Array(message[..<index]) }
            index = newline + 1
        }
        return message
    }

    // MARK: Recovery and lifecycle

    /// Loads the entries an earlier run left, into their connectors' queues.
    /// Entries whose queue id is in `discarding` are removed instead (see ``PipelineRunner/run()``).
    /// Entries that failed unexpectedly `poisonThreshold` times (`failures`, from the journal) are parked as poison.
    public func recover(discarding: Set<String> = [], failures: [String: Int] = [:]) async -> Int {
        var count = 0
        let scan = store.scan()
        damagedFiles.increment(by: 0)
        for damaged in scan.damaged { setAside(damaged) }
        for stored in scan.entries {
            if discarding.contains(stored.entry.queueID) {
                try? FileSystem.removeFileIfPresent(store.folder(stored.state) + "/" + stored.entry.id)
                continue
            }
            let crashes = failures[PoisonJournal.key(entry: stored.entry.id)] ?? 0
            if crashes >= settings.poisonThreshold, stored.state == .active || stored.state == .deferred {
                do {
                    try await park(stored, reason: "failed unexpectedly \(crashes) times (Postroom died or failed while delivering it)")
                    log.error("queue entry \(stored.entry.id) failed unexpectedly \(crashes) times; parked as poison (postroom queue show \(stored.entry.id))")
                    telemetry.track(TrackingEvent(event: .poison, source: .queue, queueID: stored.entry.id, messageID: stored.entry.messageID,
                                                  sender: stored.entry.envelope.sender, recipients: stored.entry.envelope.recipients.map(\.address),
                                                  connector: stored.entry.connector, reason: "failed unexpectedly \(crashes) times"))
                } catch {
                    log.error("cannot park \(stored.entry.id) as poison: \(error)")
                }
                continue
            }
            guard let queue = queues[stored.entry.connector] else {
                log.warning("queue entry \(stored.entry.id) is for connector '\(stored.entry.connector)', which the pipeline no longer has; it stays queued")
                continue
            }
            switch stored.state {
            case .active:
                await queue.enqueue(stored.entry.id, state: .active, cached: nil)
            case .deferred:
                await queue.schedule(stored.entry.id, at: stored.entry.nextAttempt ?? Date())
            case .held, .poison:
                break
            }
            count += 1
        }
        return count
    }

    /// Starts every connector's workers.
    public func start() async {
        for queue in queues.values {
            await queue.start(service: self)
        }
    }

    /// Stops taking entries and waits for deliveries in flight (at most `timeout`).
    public func shutdown(timeout: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            for queue in queues.values {
                group.addTask { await queue.stop(timeout: timeout) }
            }
        }
    }

    // MARK: Operator actions

    /// Takes an entry out of its connector's schedule, waiting for a delivery in flight to finish.
    public func quiesce(id: String, connector: String) async {
        await queues[connector]?.quiesce(id)
    }

    /// Schedules an entry for delivery now (released from hold, or retried).
    public func deliverNow(id: String, state: QueueState, connector: String) async {
        await queues[connector]?.enqueue(id, state: state, cached: nil)
    }

    /// Counts per connector and state, for stats and metrics.
    public func queueCounts() async -> [String: [QueueState: Int]] {
        var counts = store.counts(in: [.held, .poison])
        for (name, queue) in queues {
            counts[name, default: [:]].merge(await queue.counts()) { $1 }
        }
        return counts
    }

    // MARK: One attempt

    /// Tracking events for one attempt in Exchange's names: DELIVER (STOREDRIVER) or SEND (GATEWAY,
    /// AGENT) per connector type, DEFER with the connector's own status, FAIL.
    func track(_ entry: QueueEntry, results: [DeliveryResult], connector: any Connector) {
        telemetry.track(trackingEvents(entry, results: results, connector: connector))
    }

    /// One event per outcome (delivered, deferred, failed with one reason), each with its recipients.
    func trackingEvents(_ entry: QueueEntry, results: [DeliveryResult], connector: any Connector) -> [TrackingEvent] {
        let (delivered, source) = TrackingEvent.delivery(connectorType: connector.configuration.type.rawValue)
        var groups: [(TrackingEvent.Kind, String?, String?, [String])] = []
        for (recipient, result) in zip(entry.envelope.recipients, results) {
            let key: (TrackingEvent.Kind, String?, String?)
            switch result {
            case .delivered: key = (delivered, "2.0.0", nil)
            case .deferred(let reason): key = (.defer, TrackingEvent.leadingStatus(of: reason, fallback: "4.0.0"), reason)
            case .failed(let status, let diagnostic): key = (.fail, status, diagnostic)
            }
            if let index = groups.firstIndex(where: { $0.0 == key.0 && $0.1 == key.1 && $0.2 == key.2 }) {
                groups[index].3.append(recipient.address)
            } else {
                groups.append((key.0, key.1, key.2, [recipient.address]))
            }
        }
        return groups.map { kind, status, reason, recipients in
            TrackingEvent(event: kind, source: source, queueID: entry.id, messageID: entry.messageID,
                          sender: entry.envelope.sender, recipients: recipients, connector: entry.connector,
                          status: status, reason: reason, size: Int(entry.size))
        }
    }

    /// Delivers one entry once and records the outcome durably.
    func attempt(_ id: String, state: QueueState, cached: (QueueEntry, [UInt8])?, connector: any Connector) async -> (QueueState, Date)? {
        let loaded: (QueueEntry, [UInt8])?
        if let cached { loaded = cached } else {
            let read = await BlockingPool.shared.run { Result { () throws(QueueFileDamage) in try self.store.loadChecked(id: id, state: state) } }
            switch read {
            case .success(let found): loaded = found
            case .failure(let damage):
                setAside(DamagedQueueFile(path: store.folder(state) + "/" + id, state: state, problem: damage.problem))
                return nil
            }
        }
        guard let (loadedEntry, message) = loaded else { return nil }
        var entry = loadedEntry
        let journalKey = PoisonJournal.key(entry: id)
        let mark = journal.begin(journalKey)
        defer { journal.end(mark) }
        let results = await connector.deliver(entry, message: message)
        telemetry.attempted(entry, results: results)
        track(entry, results: results, connector: connector)
        var remaining: [EnvelopeRecipient] = []
        var failed: [FailedRecipient] = []
        var succeeded: [FailedRecipient] = []
        let successAction = connector.successAction(for: entry)
        var lastError: String?
        for (recipient, result) in zip(entry.envelope.recipients, results) {
            switch result {
            case .delivered:
                if let successAction, Self.asksForSuccessNotice(recipient) {
                    succeeded.append(FailedRecipient(address: recipient.address, status: "2.0.0", diagnostic: successAction == "delivered"
                        ? "delivered by connector \(connector.name)" : "relayed by connector \(connector.name) to a system that does not report delivery",
                        action: successAction))
                }
            case .deferred(let reason):
                remaining.append(recipient)
                lastError = reason
            case .failed(let status, let diagnostic):
                failed.append(FailedRecipient(address: recipient.address, status: status, diagnostic: diagnostic))
            }
        }
        let now = Date()
        if !remaining.isEmpty, now.timeIntervalSince(entry.arrival) >= settings.expireAfter.seconds {
            failed += remaining.map {
                FailedRecipient(address: $0.address, status: "4.4.7", diagnostic: "expired after \(settings.expireAfter) in the queue; last error: \(lastError ?? "none")")
            }
            remaining = []
            log.warning("queue entry \(id) expired; reporting to \(entry.envelope.sender.isEmpty ? "nobody (null sender)" : entry.envelope.sender)")
        }
        do {
            if !failed.isEmpty {
                try await reportSender.send(about: entry.envelope, message: Self.headerBlock(of: message), messageID: entry.messageID, failed: failed,
                                            cause: .failed(entry))
            }
            if !succeeded.isEmpty {
                try await reportSender.send(about: entry.envelope, message: Self.headerBlock(of: message), messageID: entry.messageID, failed: succeeded,
                                            cause: .delivered(entry))
            }
            if remaining.isEmpty {
                FaultInjection.checkpoint("remove")
                try await store.remove(id: id, state: state)
                telemetry.delivered(entry)
                return nil
            }
            entry.envelope.recipients = remaining
            entry.attempts += 1
            entry.lastError = lastError
            let next = now.addingTimeInterval(settings.backoff(afterAttempt: entry.attempts))
            entry.nextAttempt = next
            if settings.delayNotice.seconds > 0, !entry.delayNotified, now.timeIntervalSince(entry.arrival) >= settings.delayNotice.seconds {
                let delayed = remaining.map { FailedRecipient(address: $0.address, status: "4.4.7", diagnostic: lastError ?? "delivery delayed", action: "delayed") }
                try await reportSender.send(about: entry.envelope, message: Self.headerBlock(of: message), messageID: entry.messageID, failed: delayed,
                                            cause: .delayed(entry))
                entry.delayNotified = true
            }
            try await store.move(entry, message: message, from: state, to: .deferred)
            if entry.attempts == 1 || entry.attempts % 10 == 0 {
                log.notice("deferred \(id) via \(entry.connector) (attempt \(entry.attempts)): \(lastError ?? "")")
            }
            return (.deferred, next)
        } catch {
            journal.failed(journalKey)
            log.error("cannot update queue entry \(id): \(error); it is retried from disk")
            return (state, now.addingTimeInterval(settings.retryFirst.seconds))
        }
    }
}
