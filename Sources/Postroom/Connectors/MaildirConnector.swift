import Foundation
import PostroomSystem
import Synchronization

/// Delivers into Maildir folders: written in `tmp/`, made durable, renamed into `new/`, and the
/// rename made durable (``DeliveryCommit``), before the delivery counts as done.
///
/// File names follow the Maildir rules (`<seconds>.M<usec>Q<entry>R<hash>.<host>`) and are
/// derived from the queue entry and the recipient, so a delivery re-run after a crash finds
/// its earlier copy (in `new/` or, once read, in `cur/`) instead of writing a second one.
public struct MaildirConnector: Connector {
    public let configuration: ConnectorConfiguration
    let spool: String
    let hostname: String
    /// Makes each copy durable before and after its rename into `new/`.
    let commit: DeliveryCommit
    /// Mailboxes whose `tmp/new/cur` this run has made or found: made once, not on every delivery.
    let preparedFolders = PreparedFolders()

    public func deliver(_ entry: QueueEntry, message: [UInt8]) async -> [DeliveryResult] {
        var results: [DeliveryResult] = []
        for recipient in entry.envelope.recipients {
            results.append(await deliver(entry, message: message, to: recipient.address))
        }
        return results
    }

    func mailboxFolder(for user: String) -> String {
        if let known = preparedFolders.folder(of: user) { return known }
        let template = configuration.path ?? "mailboxes/{user}"
        let folder = resolvePath(template.replacing("{user}", with: user), against: spool)
        preparedFolders.remember(folder, of: user)
        return folder
    }

    static func user(of address: String, entry: QueueEntry) -> String {
        if let mailbox = entry.mailboxes[address] { return mailbox }
        let local = address.split(separator: "@").first.map(String.init) ?? address
        return local.lowercased().filter { $0.isLetter || $0.isNumber || "._-+".contains($0) }
    }

    /// Derived only from the queue id and the recipient (never from a clock), so a re-run names the file the same.
    func fileName(_ entry: QueueEntry, recipient: String) -> String {
        // The queue id is the arrival time in microseconds, in hex (a report's id starts with its cause's).
        let arrival = UInt64(entry.queueID.prefix(13), radix: 16) ?? UInt64(max(0, entry.arrival.timeIntervalSince1970 * 1_000_000))
        let seconds = arrival / 1_000_000
        let micros = arrival % 1_000_000
        // Maildir's escapes for the two characters a host name must not bring into a file name.
        let host = hostname.utf8.contains(where: { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: ":") })
            ? hostname.replacing("/", with: "\\057").replacing(":", with: "\\072") : hostname
        return "\(seconds).M\(micros)Q\(entry.id)R\(stableHash(recipient)).\(host)"
    }

    private func deliver(_ entry: QueueEntry, message: [UInt8], to recipient: String) async -> DeliveryResult {
        let user = Self.user(of: recipient, entry: entry)
        guard !user.isEmpty, !user.hasPrefix(".") else {
            return .failed(status: "5.1.3", diagnostic: "no mailbox name can be made from \(recipient)")
        }
        let folder = mailboxFolder(for: user)
        let name = fileName(entry, recipient: recipient)
        let eol = lineEnding(of: message)
        let header = "Return-Path: <\(entry.envelope.sender)>\(eol)Delivered-To: \(recipient)\(eol)"
        let quota = configuration.quota?.bytes
        let permissions = configuration.permissions
        // A fresh entry was never attempted, so no earlier copy can exist; otherwise look in new/
        // and in cur/ (a reader may have moved it there and added flags after ":2,").
        let mayExist = !entry.isFresh
        let prepared = preparedFolders
        let temporary = folder + "/tmp/" + name
        do throws(SystemError) {
            // Quick unless it scans folders (an earlier copy, the quota) or the message is big.
            let quick = !mayExist && quota == nil && message.count <= DeliveryCommit.quickWriteLimit
            _ = try await commit.deliver(temporary: temporary, final: folder + "/new/" + name, quick: quick) { () throws(SystemError) -> OpenFile? in
                if mayExist, FileSystem.exists(folder + "/new/" + name) || FileSystem.exists(folder + "/cur/" + name)
                    || ((try? FileSystem.contents(of: folder + "/cur")) ?? []).contains(where: { $0.hasPrefix(name + ":") }) {
                    return nil
                }
                func makeFolders() throws(SystemError) {
                    if let permissions {
                        // The mailbox folder and its tmp/new/cur shared with the group (Dovecot as another user).
                        try permissions.prepare(folder, privateMode: 0o700, spool: spool)
                        for sub in ["/tmp", "/new", "/cur"] { try permissions.prepare(folder + sub, privateMode: 0o700) }
                    } else {
                        for sub in ["tmp", "new", "cur"] { try FileSystem.createDirectory(folder + "/" + sub, mode: 0o700) }
                    }
                    prepared.add(folder)
                }
                if !prepared.contains(folder) { try makeFolders() }
                if let quota {
                    let used = try FileSystem.usage(of: folder + "/new").bytes + FileSystem.usage(of: folder + "/cur").bytes
                    if used + Int64(message.count) > quota { throw SystemError.overQuota(operation: "quota", path: folder) }
                }
                let file: OpenFile
                do throws(SystemError) {
                    file = try OpenFile.open(temporary, flags: O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, mode: 0o600)
                } catch where error.isNotFound {
                    // The mailbox was removed while Postroom ran: make it again.
                    try makeFolders()
                    file = try OpenFile.open(temporary, flags: O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, mode: 0o600)
                }
                if let permissions { try Ownership.apply(to: file, mode: permissions.fileMode(private: 0o600), group: permissions.groupID) }
                try file.writeAll(Array(header.utf8) + message)
                return file
            }
            return .delivered
        } catch {
            // Part of the mailbox is gone (new/ renamed away, say): the retry makes its folders again.
            if error.isNotFound { preparedFolders.remove(folder) }
            if error.isOverQuota { return .deferred("mailbox \(user) is over its quota") }
            return error.isTransient ? .deferred("\(error)") : .failed(status: "5.2.0", diagnostic: "\(error)")
        }
    }
}

/// The mailbox folders a Maildir connector has made (or found) complete in this run, and each
/// user's folder path (the template filled in once per user, not on every delivery).
///
/// Sendable: both live behind mutexes. A folder removed behind Postroom's back is noticed by
/// the delivery that fails on it (ENOENT) and made again.
final class PreparedFolders: Sendable {
    private let folders = Mutex<Set<String>>([])
    private let paths = Mutex<[String: String]>([:])

    func folder(of user: String) -> String? { paths.withLock { $0[user] } }
    func remember(_ folder: String, of user: String) {
        // Bounded: past 10,000 users the table starts afresh, so memory stays small with many mailboxes.
        paths.withLock { table in
            if table.count >= 10_000 { table.removeAll() }
            table[user] = folder
        }
    }

    func contains(_ folder: String) -> Bool { folders.withLock { $0.contains(folder) } }
    func add(_ folder: String) { _ = folders.withLock { $0.insert(folder) } }
    func remove(_ folder: String) { _ = folders.withLock { $0.remove(folder) } }
}
