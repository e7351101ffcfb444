import Postroom
import Inotify
import PostroomSystem
import Synchronization

/// One message prepared for the run: where it waits, and what identifies its delivered copies.
struct StagedMessage: Sendable {
    let staged: String
    let name: String
    let messageID: String
    let copies: Int
}

/// One copy seen arriving in a Maildir `new/` folder.
struct SeenDelivery: Sendable {
    let folder: String
    let name: String
    let at: ContinuousClock.Instant
}

/// Collects delivered copies as inotify reports them, for the waiting bench and the final tally.
final class DeliveryWatcher: Sendable {
    private struct State {
        var seen: [SeenDelivery] = []
        var names: Set<String> = []
        var overflows = 0
    }

    private let state = Mutex(State())
    private let inotify: Inotify
    private let folders: [Inotify.Watch: String]

    /// Watches each folder for renames into it; the folders must exist.
    init(folders paths: [String]) throws {
        inotify = try Inotify()
        var folders: [Inotify.Watch: String] = [:]
        // IN_CREATE too: Postfix's virtual(8) links a relay's Maildir copies into new/ instead of renaming.
        for path in paths { folders[try inotify.addWatch(path: path, mask: [.movedTo, .create, .onlyDirectory])] = path }
        self.folders = folders
    }

    var count: Int { state.withLock { $0.seen.count } }
    var overflows: Int { state.withLock { $0.overflows } }
    var deliveries: [SeenDelivery] { state.withLock { $0.seen } }

    /// Reads events until ``close()``. The instant is taken as the event is read, so a copy's
    /// time is at most the bench's own event-reading delay after its rename.
    func watch() async {
        for await event in inotify.events() {
            let now = ContinuousClock.now
            if event.isQueueOverflow {
                // Events were lost: take whatever is in the folders now, at the current instant.
                state.withLock { $0.overflows += 1 }
                for folder in folders.values {
                    for name in (try? FileSystem.contents(of: folder)) ?? [] { record(folder: folder, name: name, at: now) }
                }
            } else if let name = event.name, let folder = folders[event.watch] {
                record(folder: folder, name: name, at: now)
            }
        }
    }

    private func record(folder: String, name: String, at instant: ContinuousClock.Instant) {
        state.withLock { state in
            if state.names.insert(folder + "/" + name).inserted {
                state.seen.append(SeenDelivery(folder: folder, name: name, at: instant))
            }
        }
    }

    func close() { inotify.close() }
}
