import Foundation

extension Telemetry {
    /// `postroom_queue_damaged_files_total`: queue files that could not be read as entries and were
    /// moved into `queue/damaged/`. Anything above 0 needs an operator (see the README, Operations).
    var damagedQueueFiles: Counter {
        registry.counter("postroom_queue_damaged_files_total",
                         help: "Queue files that could not be read and were moved into queue/damaged/.",
                         labels: ["pipeline": pipelineName])
    }
}

extension DeliveryService {
    var damagedFiles: Counter { telemetry.damagedQueueFiles }

    /// Logs a damaged queue file, counts it and moves it into `queue/damaged/`, so it is never
    /// skipped in silence and never tried again as if it were an entry.
    func setAside(_ damaged: DamagedQueueFile) {
        damagedFiles.increment()
        do {
            let moved = try store.quarantine(damaged)
            log.error("queue file \(damaged.path) is damaged (\(damaged.problem)); moved to \(moved) for an operator to inspect")
        } catch {
            log.error("queue file \(damaged.path) is damaged (\(damaged.problem)) and cannot be moved aside: \(error); it is not delivered")
        }
        let id = (damaged.path as NSString).lastPathComponent
        telemetry.track(TrackingEvent(event: .poison, source: .queue, queueID: id, messageID: "", sender: "", recipients: [],
                                      reason: "damaged queue file: \(damaged.problem)", file: damaged.path))
    }

    /// Moves an entry into `poison/` with the reason in its `lastError`, so `postroom queue list`
    /// and `show` tell the operator why it was parked.
    func park(_ stored: StoredEntry, reason: String) async throws {
        do {
            guard let (loaded, message) = try store.loadChecked(id: stored.entry.id, state: stored.state) else { return }
            var entry = loaded
            entry.lastError = "parked as poison: \(reason)" + (entry.lastError.map { "; last error: \($0)" } ?? "")
            try await store.move(entry, message: message, from: stored.state, to: .poison)
        } catch let damage as QueueFileDamage {
            setAside(DamagedQueueFile(path: store.folder(stored.state) + "/" + stored.entry.id, state: stored.state, problem: damage.problem))
        }
    }
}
