import Foundation
import PostroomSystem
import Synchronization

/// The state of a queued delivery, which is also the folder it lives in under `queue/`.
public enum QueueState: String, Sendable, Codable, CaseIterable {
    /// Ready to be delivered now.
    case active
    /// Waiting for its next retry after a transient failure.
    case deferred
    /// Held by an operator; never delivered until released.
    case held = "hold"
    /// Parked after repeated unexpected failures; never retried automatically.
    case poison

    /// When the same entry is found in two folders after a crash, the later state wins.
    var precedence: Int {
        switch self {
        case .active: 0
        case .deferred: 1
        case .held: 2
        case .poison: 3
        }
    }
}

/// Where a claimed file came from.
public enum IntakeSource: String, Sendable, Codable {
    case pickup, replay
    /// A report Postroom generated itself; it enters in replay format.
    case report
}

/// One queued delivery: a message copy for one connector (next hop) with only that hop's recipients.
///
/// Stored as `queue/<state>/<id>`: a `POSTROOM-QUEUE 1` line, one line of JSON (this struct),
/// then the message bytes. Written to a temporary name, fsynced and renamed, so a reader
/// sees the old entry or the new one, never a partial one.
public struct QueueEntry: Sendable, Codable, Equatable {
    /// `<queue id>.<hop number>`: unique, and the same after a crash re-runs routing.
    public var id: String
    public var queueID: String
    public var connector: String
    public var envelope: Envelope
    /// The local mailbox name of each recipient that has one (Maildir delivery).
    public var mailboxes: [String: String]
    public var messageID: String
    public var source: IntakeSource
    public var arrival: Date
    public var size: Int64
    public var attempts: Int = 0
    public var nextAttempt: Date?
    public var lastError: String?
    public var delayNotified: Bool = false
    /// How many times processing this entry failed unexpectedly (Exchange's PoisonCount).
    public var crashCount: Int = 0
    /// True while the entry is new in this run and never attempted: no earlier copy can exist.
    /// Never stored: an entry read back from disk is not fresh.
    public var isFresh = false

    enum CodingKeys: String, CodingKey {
        case id, queueID, connector, envelope, mailboxes, messageID, source, arrival, size, attempts, nextAttempt, lastError, delayNotified, crashCount
    }

    public init(id: String, queueID: String, connector: String, envelope: Envelope, mailboxes: [String: String],
                messageID: String, source: IntakeSource, arrival: Date, size: Int64) {
        self.id = id
        self.queueID = queueID
        self.connector = connector
        self.envelope = envelope
        self.mailboxes = mailboxes
        self.messageID = messageID
        self.source = source
        self.arrival = arrival
        self.size = size
    }
}

/// A queue entry found on disk, with the state folder it is in.
public struct StoredEntry: Sendable {
    public var entry: QueueEntry
    public var state: QueueState
}

/// A claimed producer file waiting in `queue/incoming/` to be validated and routed.
public struct ClaimedFile: Sendable, Equatable {
    /// True for a file an earlier run claimed: its deliveries may have happened already.
    public var recovered = false
    public var queueID: String
    public var source: IntakeSource
    /// The producer's file name, so a rejected file can be put back as `<name>.bad`.
    public var originalName: String
    public var path: String

    public init(recovered: Bool = false, queueID: String, source: IntakeSource, originalName: String, path: String) {
        self.queueID = queueID
        self.source = source
        self.originalName = originalName
        self.path = path
        self.recovered = recovered
    }
}

/// The durable queue under `<spool>/queue/`.
///
/// Layout: `incoming/` holds claimed producer files (`<qid>.<source>.<name>`), `active/`,
/// `deferred/`, `hold/` and `poison/` hold ``QueueEntry`` files (and `poison/` claimed files
/// parked before routing, each with a `.reason`), `damaged/` holds files that could not be read
/// as entries (see ``scan()``), `tmp/` holds writes in progress. Every change is a write to a temporary name, fsync, rename and a (batched)
/// directory fsync, so the queue survives `kill -9` and power loss at any instant.
public final class QueueStore: Sendable {
    public let root: String
    public let incoming: String
    private let directorySync: DirectorySync
    private static let magic = Array("POSTROOM-QUEUE 1\n".utf8)

    public init(spool: String, directorySync: DirectorySync = DirectorySync()) {
        root = spool + "/queue"
        incoming = root + "/incoming"
        self.directorySync = directorySync
    }

    public func folder(_ state: QueueState) -> String { root + "/" + state.rawValue }
    public var controlFolder: String { root + "/control" }

    /// Creates the queue folders.
    public func prepare() throws(SystemError) {
        try FileSystem.createDirectory(incoming)
        for state in QueueState.allCases { try FileSystem.createDirectory(folder(state)) }
        try FileSystem.createDirectory(controlFolder)
    }

    // MARK: Claimed files

    /// Moves a producer's file into `incoming/` under a fresh queue id with one atomic `rename`.
    ///
    /// The file is in exactly one place at every instant (pickup or incoming), so a crash can
    /// never leave it to be claimed twice. Only the daemon holding the spool lock writes
    /// `incoming/`, and queue ids only grow, so the existence check cannot race.
    /// `path` names the file by a UTF-8 path; the daemon claims by the bytes the kernel listed
    /// (``claim(_:source:)`` in QueueStore+RawNames.swift), which this calls.
    public func claim(path: String, source: IntakeSource) throws(SystemError) -> ClaimedFile {
        try claim(Self.rawPath(path), source: source)
    }

    /// Moves a file across filesystems: copy, fsync, then unlink the original (``claimByCopy(_:source:)``).
    public func claimByCopy(path: String, source: IntakeSource) throws(SystemError) -> ClaimedFile {
        try claimByCopy(Self.rawPath(path), source: source)
    }

    private static func rawPath(_ path: String) -> RawPath {
        RawPath(directory: (path as NSString).deletingLastPathComponent, name: RawFileName((path as NSString).lastPathComponent))
    }

    /// Writes a message Postroom generated (a report) into `incoming/` durably, under the queue id
    /// its cause determines. Returns nil when that file is already there (a re-run after a crash
    /// made the same report again; the one in `incoming/` goes on). The claimed file counts as
    /// recovered: a copy of the same report may have been delivered before the crash.
    public func submitGenerated(_ bytes: [UInt8], queueID: String) async throws(SystemError) -> ClaimedFile? {
        let name = Self.claimedName(queueID: queueID, source: .report, originalName: "report.eml")
        let path = incoming + "/" + name
        let written = try await BlockingPool.shared.run { () throws(SystemError) -> Bool in
            if FileSystem.exists(path) { return false }
            try FileSystem.writeAtomically(bytes, to: path)
            return true
        }
        try await directorySync.sync(incoming)
        return written ? ClaimedFile(recovered: true, queueID: queueID, source: .report, originalName: "report.eml", path: path) : nil
    }

    /// Makes claims durable: their names in `incoming/`, then their absence from the producer's
    /// directory (nil for a generated report, written into `incoming/` directly). Group-committed:
    /// concurrent callers share the directory fsyncs, made in one trip to the blocking pool.
    public func syncClaim(sourceDirectory: String?) async throws(SystemError) {
        try await directorySync.sync([incoming] + (sourceDirectory.map { [$0] } ?? []))
    }

    /// Forgets a claimed file once its queue entries (or its deliveries) are durable.
    ///
    /// `sync: false` leaves the removal to the page cache, for a message delivered inline by
    /// file connectors: if a power loss undoes the `unlink`, the claimed file is processed again
    /// under the same queue id and its copies are found by their names (see ``remove(id:state:sync:)``).
    /// When queue entries were stored the removal is synced, so that a claimed file can never come
    /// back beside entries whose retry state or deliveries (SMTP, agents) moved on.
    ///
    /// The `unlink` runs on the blocking pool: freeing a file's blocks can wait for the disk (a
    /// synchronous discard on a file system mounted with `discard`), which must not hold up a
    /// thread of Swift's cooperative pool.
    public func release(_ claimed: ClaimedFile, sync: Bool = true) async throws(SystemError) {
        let path = claimed.path
        try await BlockingPool.shared.run { () throws(SystemError) in try FileSystem.removeFileIfPresent(path) }
        if sync { try await directorySync.sync(incoming) }
    }

    static func claimedName(queueID: String, source: IntakeSource, originalName: String) -> String {
        var name = originalName
        while name.utf8.count > 200 { name.removeFirst() }
        return "\(queueID).\(source.rawValue).\(name)"
    }

    /// The claimed files left by an earlier run, oldest first.
    public func claimedFiles() throws(SystemError) -> [ClaimedFile] {
        try FileSystem.contents(of: incoming).sorted().compactMap { name in
            guard !name.hasPrefix(".") else {
                try? FileSystem.removeFileIfPresent(incoming + "/" + name)
                return nil
            }
            let parts = name.split(separator: ".", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3, let source = IntakeSource(rawValue: String(parts[1])) else { return nil }
            return ClaimedFile(recovered: true, queueID: String(parts[0]), source: source, originalName: String(parts[2]), path: incoming + "/" + name)
        }
    }

    // MARK: Queue entries

    /// Writes entries durably (file and directory fsync) into a state folder.
    public func store(_ entries: [(QueueEntry, [UInt8])], state: QueueState = .active) async throws(SystemError) {
        let directory = folder(state)
        try await BlockingPool.shared.run { () throws(SystemError) in
            for (entry, message) in entries {
                try FileSystem.writeAtomically(Self.encode(entry, message: message), to: directory + "/" + entry.id)
            }
        }
        try await directorySync.sync(directory)
    }

    /// Rewrites an entry into a (possibly different) state folder, removing it from the old one.
    public func move(_ entry: QueueEntry, message: [UInt8], from old: QueueState, to new: QueueState) async throws(SystemError) {
        try await store([(entry, message)], state: new)
        if old != new {
            try FileSystem.removeFileIfPresent(folder(old) + "/" + entry.id)
            try await directorySync.sync(folder(old))
        }
    }

    /// Changes only the folder of an entry (its bytes stay as they are).
    public func rename(id: String, from old: QueueState, to new: QueueState) async throws(SystemError) {
        try FileSystem.rename(folder(old) + "/" + id, to: folder(new) + "/" + id)
        try await directorySync.sync(folder(new))
        try await directorySync.sync(folder(old))
    }

    /// Removes a finished entry.
    ///
    /// The removal is not fsynced: a process crash cannot undo an `unlink`, and if a power loss
    /// does, the entry is delivered again under the same names, which the connectors recognise
    /// (Postfix makes the same trade). `sync: true` is for operator removals.
    public func remove(id: String, state: QueueState, sync: Bool = false) async throws(SystemError) {
        try FileSystem.removeFileIfPresent(folder(state) + "/" + id)
        if sync { try await directorySync.sync(folder(state)) }
    }

    public func load(id: String, state: QueueState) throws(SystemError) -> (QueueEntry, [UInt8])? {
        let bytes: [UInt8]
        do {
            bytes = try FileSystem.readFile(folder(state) + "/" + id)
        } catch where error.isNotFound {
            return nil
        }
        return Self.decode(bytes)
    }

    /// Reads only the metadata of an entry, not its message.
    public func loadEntry(id: String, state: QueueState) -> QueueEntry? {
        guard let head = try? FileSystem.readFile(folder(state) + "/" + id, limit: 64 * 1024) else { return nil }
        return Self.decodeEntry(head)
    }

    /// Every readable entry on disk, after settling duplicates a crash may have left (the later state wins).
    /// Damaged files and parked claimed files are in ``scan()``.
    public func entries() -> [StoredEntry] { scan().entries }

    /// How many entries each connector has in the given state folders (held and poison are small; active is not).
    public func counts(in states: [QueueState]) -> [String: [QueueState: Int]] {
        var counts: [String: [QueueState: Int]] = [:]
        for state in states {
            for name in (try? FileSystem.contents(of: folder(state))) ?? [] where !name.hasPrefix(".") {
                if let entry = loadEntry(id: name, state: state) { counts[entry.connector, default: [:]][state, default: 0] += 1 }
            }
        }
        return counts
    }

    /// Removes leftovers of interrupted writes (hidden temporary files) from every queue folder.
    public func removeTemporaryFiles() {
        for directory in [incoming] + QueueState.allCases.map(folder) {
            for name in (try? FileSystem.contents(of: directory)) ?? [] where name.hasPrefix(".") && name.hasSuffix(".tmp") {
                try? FileSystem.removeFileIfPresent(directory + "/" + name)
            }
        }
    }

    static func encode(_ entry: QueueEntry, message: [UInt8]) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .millisecondsSince1970
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let json = (try? encoder.encode(entry)) ?? Data("{}".utf8)
        var bytes = magic
        bytes.reserveCapacity(magic.count + json.count + 1 + message.count)
        bytes.append(contentsOf: json)
        bytes.append(UInt8(ascii: "\n"))
        bytes.append(contentsOf: message)
        return bytes
    }

    static func decode(_ bytes: [UInt8]) -> (QueueEntry, [UInt8])? {
        guard let entry = decodeEntry(bytes), let newline = bytes[magic.count...].firstIndex(of: UInt8(ascii: "\n")) else { return nil }
        return (entry, Array(bytes[(newline + 1)...]))
    }

    static func decodeEntry(_ bytes: [UInt8]) -> QueueEntry? {
        guard bytes.count > magic.count, bytes.starts(with: magic),
              let newline = bytes[magic.count...].firstIndex(of: UInt8(ascii: "\n")) else { return nil }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .millisecondsSince1970
        return try? decoder.decode(QueueEntry.self, from: Data(bytes[magic.count..<newline]))
    }
}

/// Queue ids: 13 upper-case hex digits of microseconds since 1970, strictly increasing in a process.
///
/// They sort by arrival, read like Postfix queue ids, and never repeat across restarts
/// as long as the clock does not run backwards (a claim never overwrites, so even then nothing is lost).
public enum QueueID {
    private static let last = Mutex<UInt64>(0)

    public static func next() -> String {
        let now = UInt64(Date().timeIntervalSince1970 * 1_000_000)
        let value = last.withLock { last in
            last = max(now, last + 1)
            return last
        }
        let hex = String(value, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, 13 - hex.count)) + hex
    }
}
