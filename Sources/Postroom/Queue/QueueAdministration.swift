import Foundation
import PostroomSystem
import Inotify

/// An operator's change to the queue (Exchange's Suspend-/Resume-/Remove-Message and Retry-Queue; Postfix's postsuper).
public struct QueueRequest: Sendable, Codable, Equatable {
    public enum Action: String, Sendable, Codable, CaseIterable { case hold, release, retry, remove }
    public var action: Action
    /// An entry id (`<queue id>.<n>`), a queue id (all its entries) or a Message-ID; nil with `all`.
    public var id: String?
    /// Every entry the action applies to (e.g. `retry --all`).
    public var all: Bool
    /// Exact entry ids chosen by the CLI from ids and filters (`postroom queue remove ID1 ID2`,
    /// `--connector fax --older-than 1d`); when set, `id` and `all` are not used.
    public var ids: [String]?

    public init(action: Action, id: String?, all: Bool = false, ids: [String]? = nil) {
        self.action = action
        self.id = id
        self.all = all
        self.ids = ids
    }
}

/// What a request did.
public struct QueueResponse: Sendable, Codable, Equatable {
    public var ok: Bool
    public var message: String
    public var affected: [String]
}

/// Applies operator requests to the queue files, and to the running daemon's schedule when
/// there is one. Safe while `postroom run` runs: the daemon is the only writer, and the CLI
/// hands it requests through `queue/control/` (see ``QueueControl``).
public struct QueueAdministration: Sendable {
    public let store: QueueStore
    /// The running delivery side; nil when the CLI works on a stopped spool (it holds the lock then).
    public let delivery: DeliveryService?
    public let telemetry: Telemetry?
    /// Hands a released claimed file back to the running pipeline; nil on a stopped spool
    /// (the next start recovers it from `incoming/`).
    public let resubmit: (@Sendable (ClaimedFile) -> Void)?

    public init(store: QueueStore, delivery: DeliveryService?, telemetry: Telemetry?, resubmit: (@Sendable (ClaimedFile) -> Void)? = nil) {
        self.store = store
        self.delivery = delivery
        self.telemetry = telemetry
        self.resubmit = resubmit
    }

    /// Entries an id names: exact entry id, every entry of a queue id, or every entry with that Message-ID.
    public static func matching(_ id: String, in entries: [StoredEntry]) -> [StoredEntry] {
        let bare = id.trimmingCharacters(in: CharacterSet(charactersIn: "<> "))
        return entries.filter {
            $0.entry.id == id || $0.entry.queueID == id
                || (!bare.isEmpty && $0.entry.messageID.trimmingCharacters(in: CharacterSet(charactersIn: "<> ")) == bare)
        }
    }

    /// Parked claimed files an id names: their queue id, file name or Message-ID.
    public static func matching(_ id: String, in parked: [ParkedClaimedFile]) -> [ParkedClaimedFile] {
        let bare = id.trimmingCharacters(in: CharacterSet(charactersIn: "<> "))
        return parked.filter {
            $0.claimed.queueID == id || ($0.claimed.path as NSString).lastPathComponent == id
                || (!bare.isEmpty && $0.messageID.trimmingCharacters(in: CharacterSet(charactersIn: "<> ")) == bare)
        }
    }

    public func apply(_ request: QueueRequest) async -> QueueResponse {
        let scan = store.scan()
        let entries = scan.entries
        let targets: [StoredEntry]
        let parkedTargets: [ParkedClaimedFile]
        var vanished: [String] = []
        if let ids = request.ids {
            let wanted = Set(ids)
            targets = entries.filter { wanted.contains($0.entry.id) }
            parkedTargets = scan.parked.filter { wanted.contains($0.claimed.queueID) }
            // Delivered or removed between the CLI's selection and now: nothing left to change.
            vanished = ids.filter { id in !targets.contains { $0.entry.id == id } && !parkedTargets.contains { $0.claimed.queueID == id } }
        } else if request.all {
            targets = entries
            parkedTargets = scan.parked
        } else if let id = request.id {
            targets = Self.matching(id, in: entries)
            parkedTargets = Self.matching(id, in: scan.parked)
            guard !targets.isEmpty || !parkedTargets.isEmpty else { return QueueResponse(ok: false, message: "no queued message matches \(id)", affected: []) }
        } else {
            return QueueResponse(ok: false, message: "name a message id or use --all", affected: [])
        }
        var affected: [String] = []
        var skipped: [String] = []
        for parked in parkedTargets {
            do {
                if try apply(request.action, to: parked) {
                    affected.append(parked.claimed.queueID)
                } else if !request.all {
                    skipped.append("\(parked.claimed.queueID) is poison (a claimed file, not yet routed)")
                }
            } catch {
                return QueueResponse(ok: false, message: "\(request.action.rawValue) \(parked.claimed.queueID): \(error)", affected: affected)
            }
        }
        var already: [String] = []
        for target in targets {
            do {
                if Self.alreadyDone(request.action, state: target.state) {
                    // postsuper -h on a held message is not an error: the wanted state holds.
                    already.append(target.entry.id)
                } else if try await apply(request.action, to: target) {
                    affected.append(target.entry.id)
                } else if !request.all {
                    skipped.append("\(target.entry.id) is \(target.state.rawValue)")
                }
            } catch {
                return QueueResponse(ok: false, message: "\(request.action.rawValue) \(target.entry.id): \(error)", affected: affected)
            }
        }
        let verb = ["hold": "held", "release": "released", "retry": "scheduled for retry", "remove": "removed"][request.action.rawValue] ?? request.action.rawValue
        var message = "\(affected.count) entr\(affected.count == 1 ? "y" : "ies") \(verb)"
        if !already.isEmpty { message += "; already held: " + already.joined(separator: ", ") }
        if !skipped.isEmpty { message += "; unchanged: " + skipped.joined(separator: ", ") }
        if !vanished.isEmpty { message += "; no longer queued: " + vanished.joined(separator: ", ") }
        let ok = !affected.isEmpty || !already.isEmpty || request.all || (request.ids != nil && skipped.isEmpty)
        return QueueResponse(ok: ok, message: message, affected: affected)
    }

    /// Hold on a held entry: already as asked (postsuper -h does not complain either).
    static func alreadyDone(_ action: QueueRequest.Action, state: QueueState) -> Bool {
        action == .hold && state == .held
    }

    /// Returns false when the action does not apply to the entry's state.
    private func apply(_ action: QueueRequest.Action, to target: StoredEntry) async throws(SystemError) -> Bool {
        let entry = target.entry
        switch action {
        case .hold:
            guard target.state == .active || target.state == .deferred else { return false }
            await delivery?.quiesce(id: entry.id, connector: entry.connector)
            guard let state = currentState(of: entry.id) else { return false }
            guard state == .active || state == .deferred else { return false }
            try await store.rename(id: entry.id, from: state, to: .held)
        case .release:
            guard target.state == .held || target.state == .poison else { return false }
            try await store.rename(id: entry.id, from: target.state, to: .active)
            await delivery?.deliverNow(id: entry.id, state: .active, connector: entry.connector)
        case .retry:
            guard target.state == .deferred || target.state == .active else { return false }
            if let delivery {
                await delivery.deliverNow(id: entry.id, state: target.state, connector: entry.connector)
            } else if target.state == .deferred {
                // Stopped spool: active entries are attempted first thing at the next start.
                try await store.rename(id: entry.id, from: .deferred, to: .active)
            }
        case .remove:
            await delivery?.quiesce(id: entry.id, connector: entry.connector)
            guard let state = currentState(of: entry.id) else { return false }
            try await store.remove(id: entry.id, state: state, sync: true)
        }
        let kind: TrackingEvent.Kind = switch action {
        case .hold: .hold
        case .release: .release
        case .retry: .retry
        case .remove: .remove
        }
        telemetry?.track(TrackingEvent(event: kind, source: .admin, queueID: entry.id, messageID: entry.messageID,
                                       sender: entry.envelope.sender, recipients: entry.envelope.recipients.map(\.address),
                                       connector: entry.connector))
        return true
    }

    /// Release puts a parked claimed file back at the start of the pipeline; remove deletes it.
    /// Hold and retry do not apply: it is not in any connector's queue.
    private func apply(_ action: QueueRequest.Action, to parked: ParkedClaimedFile) throws(SystemError) -> Bool {
        let kind: TrackingEvent.Kind
        switch action {
        case .release:
            let claimed = try store.unpark(parked)
            resubmit?(claimed)
            kind = .release
        case .remove:
            try store.removeParked(parked)
            kind = .remove
        case .hold, .retry:
            return false
        }
        telemetry?.track(TrackingEvent(event: kind, source: .admin, queueID: parked.claimed.queueID, messageID: parked.messageID,
                                       sender: parked.sender, recipients: parked.recipients, file: parked.claimed.path))
        return true
    }

    private func currentState(of id: String) -> QueueState? {
        QueueState.allCases.first { FileSystem.exists(store.folder($0) + "/" + id) }
    }
}

/// The daemon's side of `postroom queue`: watches `queue/control/` for request files and answers each.
///
/// A request is `<name>.request` (JSON ``QueueRequest``), written under a hidden name and renamed
/// in; the answer is `<name>.response` (JSON ``QueueResponse``), written the same way.
public actor QueueControl {
    private let administration: QueueAdministration
    private let folder: String
    private let log: Logger
    private var inotify: Inotify?

    public init(administration: QueueAdministration, log: Logger) {
        self.administration = administration
        self.folder = administration.store.controlFolder
        self.log = log
    }

    public func run() async {
        do {
            try FileSystem.createDirectory(folder)
            let inotify = try Inotify()
            self.inotify = inotify
            try inotify.addWatch(path: folder, mask: [.movedTo, .closeWrite])
            for name in (try? FileSystem.contents(of: folder)) ?? [] { await handle(name) }
            for await event in inotify.events() {
                if event.isQueueOverflow {
                    for name in (try? FileSystem.contents(of: folder)) ?? [] { await handle(name) }
                } else if let name = event.name {
                    await handle(name)
                }
            }
        } catch {
            log.error("queue control is unavailable (\(error)); postroom queue commands will time out")
        }
    }

    public func stop() { inotify?.close() }

    private func handle(_ name: String) async {
        guard name.hasSuffix(".request"), !name.hasPrefix(".") else { return }
        let path = folder + "/" + name
        let base = String(name.dropLast(".request".count))
        guard let bytes = try? FileSystem.readFile(path, limit: 64 * 1024) else { return }
        try? FileSystem.removeFile(path)
        let response: QueueResponse
        if let request = try? JSONDecoder().decode(QueueRequest.self, from: Data(bytes)) {
            response = await administration.apply(request)
            log.notice("queue \(request.action.rawValue) \(request.all ? "--all" : request.id ?? ""): \(response.message)")
        } else {
            response = QueueResponse(ok: false, message: "unreadable request \(name)", affected: [])
        }
        let encoded = (try? JSONEncoder().encode(response)) ?? Data()
        try? FileSystem.writeAtomically(Array(encoded), to: folder + "/" + base + ".response", sync: false, mode: 0o644)
    }
}
