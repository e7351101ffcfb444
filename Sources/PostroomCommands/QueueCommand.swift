import Foundation
import Postroom
import PostroomSystem
import Inotify

/// `postroom queue list | show ID... | retry|hold|release|remove ID...|FILTERS|--all [--spool DIR] [--json]`.
///
/// Reading (`list`, `show`) works straight from the queue files. Changes go to the running
/// daemon through `queue/control/` when it holds the spool lock; on a stopped spool the
/// command takes the lock itself and changes the files.
public enum QueueCommand {
    static let help = """
    usage: postroom queue list [FILTERS] [--spool DIR] [--json]
           postroom queue show ID... [--spool DIR] [--json]
           postroom queue retry|hold|release|remove ID... | FILTERS | --all [--spool DIR]

    ID is an entry id (as listed), a queue id (all its copies) or a Message-ID; name several at once.
    FILTERS select entries (all must match; with IDs, among those): --connector NAME,
    --state active|deferred|hold|poison, --sender GLOB, --recipient GLOB, --older-than DURATION (30m, 2d).
    hold: stop delivering (Suspend-Message; holding a held entry is fine); release: deliver held or
    poison entries again; retry: attempt deferred entries now; remove: delete from the queue without a report.
    Safe while `postroom run` is running: the daemon applies the change.
    The spool: --spool DIR, else $POSTROOM_SPOOL, else ./spool, else /var/spool/postroom.
    """

    public static func main(_ words: [String]) async -> ExitCode {
        let arguments: Arguments
        do {
            arguments = try Arguments(words, options: QueueSelection.options.union(["--spool"]), flags: ["--json", "--all", "--help", "-h"])
        } catch {
            printError("postroom queue: \(error)\n\n\(help)")
            return .usage
        }
        if arguments.has("--help") || arguments.has("-h") {
            print(help)
            return .ok
        }
        guard let verb = arguments.positional.first else {
            printError(help)
            return .usage
        }
        let ids = Array(arguments.positional.dropFirst())
        let selection: QueueSelection
        do { selection = try QueueSelection(ids: ids, arguments: arguments) } catch {
            printError("postroom queue \(verb): \(error)\n\n\(help)")
            return .usage
        }
        let action = QueueRequest.Action(rawValue: verb)
        guard verb == "list" || verb == "show" || action != nil else {
            printError("postroom queue: unknown command '\(verb)'\n\n\(help)")
            return .usage
        }
        guard let spool = SpoolLocation.resolveOrReport(arguments["--spool"], command: "queue \(verb)") else { return .userError }
        let store = QueueStore(spool: spool)
        switch verb {
        case "list":
            guard ids.isEmpty else { printError("postroom queue list: takes filters, not ids (use show ID)\n\n\(help)"); return .usage }
            return list(store, selection: selection, json: arguments.has("--json"))
        case "show":
            guard !ids.isEmpty || selection.hasFilters else { printError("postroom queue show: needs an ID or a filter\n\n\(help)"); return .usage }
            return show(store, selection: selection, json: arguments.has("--json"))
        default:
            guard let action else { return .usage }
            let all = arguments.has("--all")
            guard all != (!ids.isEmpty || selection.hasFilters) else {
                printError("postroom queue \(verb): name IDs, give filters, or use --all (not both)\n\n\(help)")
                return .usage
            }
            if all { return await change(QueueRequest(action: action, id: nil, all: true), spool: spool, store: store) }
            let scan = store.scan()
            let (chosen, unmatchedEntries) = selection.select(from: scan.entries)
            // Claimed files parked as poison are named by their queue id (they have no entries yet).
            let parked = selection.ids.flatMap { QueueAdministration.matching($0, in: scan.parked) }.map(\.claimed.queueID)
            let unmatched = unmatchedEntries.filter { QueueAdministration.matching($0, in: scan.parked).isEmpty }
            for id in unmatched { printError("postroom queue \(verb): no queued message matches \(id)") }
            guard !chosen.isEmpty || !parked.isEmpty else {
                if unmatched.isEmpty { print("no queued message matches the filters; nothing to \(verb)") }
                return unmatched.isEmpty ? .ok : .userError
            }
            let status = await change(QueueRequest(action: action, id: nil, ids: chosen.map(\.entry.id) + parked), spool: spool, store: store)
            return unmatched.isEmpty ? status : .userError
        }
    }

    static func list(_ store: QueueStore, selection: QueueSelection, json: Bool) -> ExitCode {
        let scan = store.scan()
        let entries = selection.select(from: scan.entries).entries
        // Parked claimed files have no connector, sender or age to filter on: listed when nothing is filtered.
        let parked = selection.hasFilters && selection.state != .poison ? [] : scan.parked
        let damaged = scan.damaged.map(\.path) + store.quarantinedFiles().map { store.damagedFolder + "/" + $0 }
        if json {
            let rows = entries.map { QueueListing(stored: $0) } + scan.parked.map { QueueListing(parked: $0) }
            print(String(decoding: (try? encoder.encode(rows)) ?? Data(), as: UTF8.self))
            return .ok
        }
        defer { printDamaged(damaged) }
        if entries.isEmpty && parked.isEmpty {
            print(selection.hasFilters ? "No queued message matches the filters" : "Mail queue is empty")
            return .ok
        }
        let now = Date()
        print("ID                 STATE     AGE     SIZE  CONNECTOR   TRIES  NEXT      SENDER -> RECIPIENTS")
        for stored in entries {
            let entry = stored.entry
            let next = entry.nextAttempt.map { $0 > now ? "in " + duration(Int($0.timeIntervalSince(now))) : "now" } ?? "-"
            let line = [
                pad(entry.id, 18), pad(stored.state.rawValue, 9), pad(age(entry.arrival, now: now), 7),
                pad(String(entry.size), 5, right: true), pad(entry.connector, 11), pad(String(entry.attempts), 5, right: true), pad(next, 9),
                "\(entry.envelope.sender.isEmpty ? "<>" : entry.envelope.sender) -> \(entry.envelope.recipients.map(\.address).joined(separator: ", "))",
            ].joined(separator: " ")
            print(line)
            if let error = entry.lastError { print(String(repeating: " ", count: 19) + "(\(error))") }
        }
        for parked in scan.parked { printListLine(parked, now: now) }
        var counts = Dictionary(grouping: entries, by: \.state).mapValues(\.count)
        if !scan.parked.isEmpty { counts[.poison, default: 0] += scan.parked.count }
        let total = entries.count + scan.parked.count
        print("-- \(total) entr\(total == 1 ? "y" : "ies"): " + QueueState.allCases.compactMap { state in counts[state].map { "\($0) \(state.rawValue)" } }.joined(separator: ", ")
              + (scan.parked.isEmpty ? "" : " (\(scan.parked.count) of them claimed files parked before routing)"))
        return .ok
    }

    static func show(_ store: QueueStore, selection: QueueSelection, json: Bool) -> ExitCode {
        let scan = store.scan()
        let (matches, unmatchedEntries) = selection.select(from: scan.entries)
        let parked = selection.ids.flatMap { QueueAdministration.matching($0, in: scan.parked) }
        let unmatched = unmatchedEntries.filter { QueueAdministration.matching($0, in: scan.parked).isEmpty }
        for id in unmatched { printError("postroom queue show: no queued message matches \(id)") }
        guard !matches.isEmpty || !parked.isEmpty else {
            if unmatched.isEmpty { printError("postroom queue show: no queued message matches the filters") }
            return .userError
        }
        if json {
            let rows = matches.map { QueueListing(stored: $0) } + parked.map { QueueListing(parked: $0) }
            print(String(decoding: (try? encoder.encode(rows)) ?? Data(), as: UTF8.self))
            return .ok
        }
        for file in parked { printDetails(file) }
        for stored in matches {
            let entry = stored.entry
            print("""
            id:          \(entry.id)
            state:       \(stored.state.rawValue)
            connector:   \(entry.connector)
            message-id:  \(entry.messageID)
            sender:      \(entry.envelope.sender.isEmpty ? "<>" : entry.envelope.sender)
            recipients:  \(entry.envelope.recipients.map { ([$0.address] + $0.parameters).joined(separator: " ") }.joined(separator: ", "))
            arrived:     \(ISO8601DateFormatter().string(from: entry.arrival))
            size:        \(entry.size) bytes
            attempts:    \(entry.attempts)
            next:        \(entry.nextAttempt.map { ISO8601DateFormatter().string(from: $0) } ?? "-")
            last error:  \(entry.lastError ?? "-")
            """)
            if let (_, message) = try? store.load(id: entry.id, state: stored.state) {
                print("header:")
                print(String(decoding: DeliveryService.headerBlock(of: message), as: UTF8.self).split(whereSeparator: \.isNewline).map { "  " + $0 }.joined(separator: "\n"))
            }
            print("")
        }
        return unmatched.isEmpty ? .ok : .userError
    }

    static func change(_ request: QueueRequest, spool: String, store: QueueStore) async -> ExitCode {
        let lockPath = spool + "/postroom.lock"
        let response: QueueResponse
        if ExclusiveLock.isHeld(path: lockPath) {
            guard let answer = await ask(request, store: store) else {
                printError("postroom queue: the running daemon did not answer within 15 s; try again")
                return .temporaryFailure
            }
            response = answer
        } else {
            guard FileSystem.exists(store.root) else {
                printError("postroom queue: \(spool) has no queue; check --spool")
                return .userError
            }
            let lock: ExclusiveLock
            do { lock = try ExclusiveLock(path: lockPath) } catch {
                printError("postroom queue: \(error)")
                return .temporaryFailure
            }
            response = await QueueAdministration(store: store, delivery: nil, telemetry: nil).apply(request)
            withExtendedLifetime(lock) {}
        }
        if response.ok {
            print(response.message)
            return .ok
        }
        printError("postroom queue \(request.action.rawValue): \(response.message)")
        return .userError
    }

    /// Hands a request to the daemon and waits (with inotify) for its answer.
    static func ask(_ request: QueueRequest, store: QueueStore) async -> QueueResponse? {
        let folder = store.controlFolder
        let base = "\(QueueID.next())-\(FileSystem.processID)"
        let responsePath = folder + "/" + base + ".response"
        guard let inotify = try? Inotify(), (try? inotify.addWatch(path: folder, mask: [.movedTo, .closeWrite])) != nil,
              let data = try? JSONEncoder().encode(request),
              (try? FileSystem.writeAtomically(Array(data), to: folder + "/" + base + ".request", sync: false, mode: 0o644)) != nil
        else { return nil }
        let timeout = Task {
            try? await Task.sleep(for: .seconds(15))
            inotify.close()
        }
        defer { timeout.cancel() }
        if !FileSystem.exists(responsePath) {
            for await event in inotify.events() where event.name == base + ".response" { break }
        }
        guard let bytes = try? FileSystem.readFile(responsePath, limit: 1 << 20) else { return nil }
        try? FileSystem.removeFile(responsePath)
        return try? JSONDecoder().decode(QueueResponse.self, from: Data(bytes))
    }

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return encoder
    }()

    static func age(_ date: Date, now: Date) -> String { duration(max(0, Int(now.timeIntervalSince(date)))) }

    static func duration(_ seconds: Int) -> String {
        if seconds < 60 { return "\(seconds)s" }
        if seconds < 3600 { return "\(seconds / 60)m" }
        if seconds < 86400 { return "\(seconds / 3600)h\(seconds % 3600 / 60)m" }
        return "\(seconds / 86400)d\(seconds % 86400 / 3600)h"
    }

    static func pad(_ text: String, _ width: Int, right: Bool = false) -> String {
        guard text.count < width else { return text }
        let padding = String(repeating: " ", count: width - text.count)
        return right ? padding + text : text + padding
    }
}

/// One queue entry as `queue list --json` prints it.
struct QueueListing: Codable {
    var id: String
    var queueID: String
    var state: String
    var connector: String
    var messageID: String
    var sender: String
    var recipients: [String]
    var arrival: Date
    var size: Int64
    var attempts: Int
    var nextAttempt: Date?
    var lastError: String?
    /// `entry`, or `claimed` for a claimed file parked as poison before it was routed (no connector yet).
    var kind = "entry"

    init(stored: StoredEntry) {
        let entry = stored.entry
        id = entry.id
        queueID = entry.queueID
        state = stored.state.rawValue
        connector = entry.connector
        messageID = entry.messageID
        sender = entry.envelope.sender
        recipients = entry.envelope.recipients.map(\.address)
        arrival = entry.arrival
        size = entry.size
        attempts = entry.attempts
        nextAttempt = entry.nextAttempt
        lastError = entry.lastError
    }
}
