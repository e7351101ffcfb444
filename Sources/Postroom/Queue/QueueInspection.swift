import Foundation
import PostroomSystem

/// A file in a queue state folder that cannot be read as a queue entry: empty, cut short,
/// not in the entry format, or unreadable.
///
/// Whatever the cause (a disk or file system fault, a power loss on a system without working
/// fsync, a hand edit), such a file is never skipped in silence: the daemon logs it, counts it
/// in `postroom_queue_damaged_files_total` and moves it into `queue/damaged/` for the operator.
public struct DamagedQueueFile: Sendable, Equatable {
    public var path: String
    public var state: QueueState
    /// What is wrong with it, in one line.
    public var problem: String
}

/// A claimed file parked in `queue/poison/` before it was routed (it crashed or failed in a
/// stage `poisonThreshold` times), with the reason it was parked.
///
/// It has no queue entry yet (no connector, no resolved recipients), so the operator sees it
/// by its queue id, with the sender, recipients and Message-ID read from its header.
public struct ParkedClaimedFile: Sendable, Equatable {
    /// The claimed file, with `path` in `queue/poison/`.
    public var claimed: ClaimedFile
    /// Why it was parked; nil when the record of the reason was lost (e.g. a crash while parking).
    public var reason: String?
    public var size: Int64
    public var parkedAt: Date
    public var messageID: String
    public var sender: String
    public var recipients: [String]
}

/// Everything in the queue's state folders, sorted out.
public struct QueueScan: Sendable {
    public var entries: [StoredEntry] = []
    public var damaged: [DamagedQueueFile] = []
    public var parked: [ParkedClaimedFile] = []
}

/// Why ``QueueStore/loadChecked(id:state:)`` refused a file.
public struct QueueFileDamage: Error, Sendable, CustomStringConvertible {
    public var problem: String
    public var description: String { problem }
}

extension QueueStore {
    /// Where damaged queue files are moved for the operator.
    public var damagedFolder: String { root + "/damaged" }

    /// The suffix of the one-line reason file beside a parked claimed file or a damaged file.
    static let reasonSuffix = ".reason"

    /// Reads every state folder: entries (after settling duplicates a crash may have left, the
    /// later state winning), files that are not readable entries, and parked claimed files.
    ///
    /// Only the entry metadata is read (the first 64 KB), so this stays cheap for a big queue.
    public func scan() -> QueueScan {
        var result = QueueScan()
        var best: [String: QueueState] = [:]
        for state in QueueState.allCases {
            let names = (try? FileSystem.contents(of: folder(state))) ?? []
            for name in names where !name.hasPrefix(".") {
                if state == .poison, let parked = parkedClaimedFile(named: name, among: names) {
                    result.parked.append(parked)
                    continue
                }
                if state == .poison, name.hasSuffix(Self.reasonSuffix), Self.parseClaimedName(name) != nil { continue }
                if let existing = best[name] {
                    let (keep, drop) = existing.precedence >= state.precedence ? (existing, state) : (state, existing)
                    try? FileSystem.removeFileIfPresent(folder(drop) + "/" + name)
                    best[name] = keep
                } else {
                    best[name] = state
                }
            }
        }
        for (id, state) in best.sorted(by: { $0.key < $1.key }) {
            let path = folder(state) + "/" + id
            let head: [UInt8]
            do {
                head = try FileSystem.readFile(path, limit: 64 * 1024)
            } catch {
                if !error.isNotFound { result.damaged.append(DamagedQueueFile(path: path, state: state, problem: "cannot be read: \(error)")) }
                continue
            }
            if let entry = Self.decodeEntry(head) {
                result.entries.append(StoredEntry(entry: entry, state: state))
            } else {
                result.damaged.append(DamagedQueueFile(path: path, state: state, problem: Self.describeDamage(head)))
            }
        }
        result.parked.sort { $0.claimed.queueID < $1.claimed.queueID }
        return result
    }

    /// Loads an entry and its message, checking that the message is whole (its length is the
    /// entry's `size`). Nil when the file is not there; throws when it is there but damaged.
    public func loadChecked(id: String, state: QueueState) throws(QueueFileDamage) -> (QueueEntry, [UInt8])? {
        let bytes: [UInt8]
        do {
            bytes = try FileSystem.readFile(folder(state) + "/" + id)
        } catch {
            if error.isNotFound { return nil }
            throw QueueFileDamage(problem: "cannot be read: \(error)")
        }
        guard let (entry, message) = Self.decode(bytes) else { throw QueueFileDamage(problem: Self.describeDamage(bytes)) }
        guard Int64(message.count) == entry.size else {
            throw QueueFileDamage(problem: "cut short: its message has \(message.count) of \(entry.size) bytes")
        }
        return (entry, message)
    }

    /// Moves a damaged file into `queue/damaged/` with a one-line `.reason` beside it; returns its new path.
    @discardableResult
    public func quarantine(_ damaged: DamagedQueueFile) throws(SystemError) -> String {
        try FileSystem.createDirectory(damagedFolder)
        var target = damagedFolder + "/" + damaged.state.rawValue + "." + (damaged.path as NSString).lastPathComponent
        if FileSystem.exists(target) { target += "-" + QueueID.next() }
        let line = "\(damaged.path): \(damaged.problem)\n"
        try FileSystem.writeAtomically(Array(line.utf8), to: target + Self.reasonSuffix, mode: 0o640)
        try FileSystem.rename(damaged.path, to: target)
        try FileSystem.syncDirectory(damagedFolder)
        try FileSystem.syncDirectory(folder(damaged.state))
        return target
    }

    /// Files moved aside into `queue/damaged/` (not their reason files).
    public func quarantinedFiles() -> [String] {
        ((try? FileSystem.contents(of: damagedFolder)) ?? []).filter { !$0.hasPrefix(".") && !$0.hasSuffix(Self.reasonSuffix) }.sorted()
    }

    // MARK: Parked claimed files

    /// Parks a claimed file in `queue/poison/` with its reason; returns the parked file.
    @discardableResult
    public func park(_ claimed: ClaimedFile, reason: String) throws(SystemError) -> String {
        let name = (claimed.path as NSString).lastPathComponent
        let parked = folder(.poison) + "/" + name
        try FileSystem.rename(claimed.path, to: parked)
        let line = reason.replacingOccurrences(of: "\n", with: " ") + "\n"
        try FileSystem.writeAtomically(Array(line.utf8), to: parked + Self.reasonSuffix, mode: 0o640)
        try FileSystem.syncDirectory(folder(.poison))
        try FileSystem.syncDirectory(incoming)
        return parked
    }

    /// Puts a parked claimed file back into `incoming/`, to go through the pipeline again.
    public func unpark(_ parked: ParkedClaimedFile) throws(SystemError) -> ClaimedFile {
        var claimed = parked.claimed
        let destination = incoming + "/" + (parked.claimed.path as NSString).lastPathComponent
        try FileSystem.rename(parked.claimed.path, to: destination)
        try FileSystem.syncDirectory(incoming)
        try FileSystem.removeFileIfPresent(parked.claimed.path + Self.reasonSuffix)
        try FileSystem.syncDirectory(folder(.poison))
        claimed.path = destination
        claimed.recovered = true
        return claimed
    }

    /// Deletes a parked claimed file and its reason (an operator's `remove`).
    public func removeParked(_ parked: ParkedClaimedFile) throws(SystemError) {
        try FileSystem.removeFileIfPresent(parked.claimed.path)
        try FileSystem.removeFileIfPresent(parked.claimed.path + Self.reasonSuffix)
        try FileSystem.syncDirectory(folder(.poison))
    }

    /// A claimed file's name split into queue id, source and the producer's name.
    static func parseClaimedName(_ name: String) -> (queueID: String, source: IntakeSource, originalName: String)? {
        let parts = name.split(separator: ".", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, let source = IntakeSource(rawValue: String(parts[1])) else { return nil }
        return (String(parts[0]), source, String(parts[2]))
    }

    private func parkedClaimedFile(named name: String, among names: [String]) -> ParkedClaimedFile? {
        guard !name.hasSuffix(Self.reasonSuffix), let parts = Self.parseClaimedName(name) else { return nil }
        let path = folder(.poison) + "/" + name
        guard let status = FileSystem.status(of: path) else { return nil }
        var reason: String?
        if names.contains(name + Self.reasonSuffix), let bytes = try? FileSystem.readFile(path + Self.reasonSuffix, limit: 4096) {
            reason = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let head = (try? FileSystem.readFile(path, limit: 64 * 1024)) ?? []
        let fields = Self.headerFields(head)
        func values(_ field: String) -> [String] { fields.filter { $0.name == field }.map(\.value) }
        let isReplay = parts.source != .pickup
        return ParkedClaimedFile(
            claimed: ClaimedFile(recovered: true, queueID: parts.queueID, source: parts.source, originalName: parts.originalName, path: path),
            reason: reason, size: status.size, parkedAt: status.modified,
            messageID: values("message-id").first ?? "",
            sender: (isReplay ? values("x-sender").first : nil) ?? values("from").first ?? "",
            recipients: isReplay && !values("x-receiver").isEmpty ? values("x-receiver") : values("to") + values("cc"))
    }

    /// The header fields of a file (names lower-cased, folded lines joined), for display only.
    static func headerFields(_ bytes: [UInt8]) -> [(name: String, value: String)] {
        var fields: [(name: String, value: String)] = []
        // "\r\n" is one Character in Swift, so lines are split on any newline character.
        for line in String(decoding: bytes, as: UTF8.self).split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
            if line.isEmpty { break }
            if line.first == " " || line.first == "\t" {
                if !fields.isEmpty { fields[fields.count - 1].value += " " + line.trimmingCharacters(in: .whitespaces) }
                continue
            }
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields.append((line[..<colon].lowercased(), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
        }
        return fields
    }

    static func describeDamage(_ bytes: [UInt8]) -> String {
        if bytes.isEmpty { return "empty (0 bytes)" }
        if !bytes.starts(with: Array("POSTROOM-QUEUE 1\n".utf8)) { return "not a queue entry (\(bytes.count) bytes, no POSTROOM-QUEUE line)" }
        return "its entry line is missing or unreadable (\(bytes.count) bytes)"
    }
}
