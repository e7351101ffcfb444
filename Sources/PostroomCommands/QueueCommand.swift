import Foundation
import Postroom
import PostroomSystem
import Inotify

/// `postroom queue list | show ID | retry ID|--all | hold ID | release ID | remove ID [--spool DIR] [--json]`.
///
/// Reading (`list`, `show`) works straight from the queue files. Changes go to the running
/// daemon through `queue/control/` when it holds the spool lock; on a stopped spool the
/// command takes the lock itself and changes the files.
public enum QueueCommand {
    static let help = """
    usage: postroom queue list [--spool DIR] [--json]
           postroom queue show ID [--spool DIR] [--json]
           postroom queue retry ID|--all | hold ID | release ID | remove ID [--spool DIR]

    ID is an entry id (as listed), a queue id (all its copies) or a Message-ID.
    hold: stop delivering (Suspend-Message); release: deliver held or poison entries again;
    retry: attempt deferred entries now; remove: delete from the queue without a report.
    Safe while `postroom run` is running: the daemon applies the change.
    """

    public static func main(_ words: [String]) async -> ExitCode {
        let arguments: Arguments
        do {
            arguments = try Arguments(words, options: ["--spool"], flags: ["--json", "--all", "--help", "-h"])
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
        let spool = CommandLineInterface.spool(arguments["--spool"])
        let store = QueueStore(spool: spool)
        let id = arguments.positional.dropFirst().first
        switch verb {
        case "list":
            return list(store, json: arguments.has("--json"))
        case "show":
            guard let id else { printError("postroom queue show: needs an ID\n\n\(help)"); return .usage }
            return show(store, id: id, json: arguments.has("--json"))
        default:
            guard let action = QueueRequest.Action(rawValue: verb) else {
                printError("postroom queue: unknown command '\(verb)'\n\n\(help)")
                return .usage
            }
            let all = arguments.has("--all")
            guard (id != nil) != all else {
                printError("postroom queue \(verb): name one ID or use --all\n\n\(help)")
                return .usage
            }
            return await change(QueueRequest(action: action, id: id, all: all), spool: spool, store: store)
        }
    }

    static func list(_ store: QueueStore, json: Bool) -> ExitCode {
        let scan = store.scan()
        let entries = scan.entries
        let damaged = scan.damaged.map(\.path) + store.quarantinedFiles().map { store.damagedFolder + "/" + $0 }
        if json {
            let rows = entries.map { QueueListing(stored: $0) } + scan.parked.map { QueueListing(parked: $0) }
            print(String(decoding: (try? encoder.encode(rows)) ?? Data(), as: UTF8.self))
            return .ok
        }
        defer { printDamaged(damaged) }
        if entries.isEmpty && scan.parked.isEmpty {
            print("Mail queue is empty")
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

    static func show(_ store: QueueStore, id: String, json: Bool) -> ExitCode {
        let scan = store.scan()
        let matches = QueueAdministration.matching(id, in: scan.entries)
        let parked = QueueAdministration.matching(id, in: scan.parked)
        guard !matches.isEmpty || !parked.isEmpty else {
            printError("postroom queue show: no queued message matches \(id)")
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
        return .ok
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
