import Foundation
import PostroomSystem
import Synchronization

/// Hands messages to a foreign system as files in its drop directory (Exchange's foreign connector).
///
/// Each queue entry becomes one `<entry id>.eml` in replay format (`X-Sender`/`X-Receiver`
/// first), written under a hidden temporary name, made durable and renamed (``DeliveryCommit``), so the consumer
/// never sees a partial file. When the directory is over its quota, missing or unwritable,
/// the delivery is deferred and retried: never lost, never half-written.
public struct ForeignConnector: Connector {
    public let configuration: ConnectorConfiguration
    let spool: String
    /// Makes each drop file durable before and after its rename into the drop directory.
    let commit: DeliveryCommit
    /// The drop directory's usage, listed at most once a second rather than on every delivery.
    let usage = DropUsage()

    public var dropDirectory: String { resolvePath(configuration.dropDirectory ?? configuration.name, against: spool) }

    public func prepare() throws {
        if let permissions = configuration.permissions {
            try permissions.prepare(dropDirectory, privateMode: 0o750, spool: spool)
        } else {
            try FileSystem.createDirectory(dropDirectory)
        }
    }

    public func deliver(_ entry: QueueEntry, message: [UInt8]) async -> [DeliveryResult] {
        guard configuration.filePerRecipient else {
            return Array(repeating: await write(envelope: entry.envelope, name: entry.id, message: message), count: entry.envelope.recipients.count)
        }
        var results: [DeliveryResult] = []
        for recipient in entry.envelope.recipients {
            let single = Envelope(sender: entry.envelope.sender, recipients: [recipient], parameters: entry.envelope.parameters)
            results.append(await write(envelope: single, name: entry.id + "-" + stableHash(recipient.address), message: message))
        }
        return results
    }

    /// Writes one drop file `<name>.eml`; a file already there is an earlier run's delivery.
    private func write(envelope: Envelope, name: String, message: [UInt8]) async -> DeliveryResult {
        let directory = dropDirectory
        let path = directory + "/" + name + ".eml"
        let bytes = ReplayFormat.encode(envelope: envelope, message: message, lineEnding: lineEnding(of: message))
        let quota = configuration.quota?.bytes
        let quotaFiles = configuration.quotaFiles
        let usageCache = usage
        let permissions = configuration.permissions
        let temporary = FileSystem.temporaryPath(for: path)
        let outcome: Result<Bool, SystemError>
        do throws(SystemError) {
            // Quick unless a quota may scan the drop directory or the file is big.
            let quick = quota == nil && quotaFiles == nil && bytes.count <= DeliveryCommit.quickWriteLimit
            outcome = .success(try await commit.deliver(temporary: temporary, final: path, quick: quick) { () throws(SystemError) -> OpenFile? in
                if FileSystem.exists(path) { return nil }
                guard FileSystem.status(of: directory, followLinks: true)?.kind == .directory else {
                    throw SystemError.notFound(operation: "drop directory", path: directory)
                }
                if quota != nil || quotaFiles != nil {
                    func isFull(_ usage: (bytes: Int64, files: Int)) -> Bool {
                        if let quota, usage.bytes + Int64(bytes.count) > quota, usage.files > 0 { return true }
                        if let quotaFiles, usage.files >= quotaFiles { return true }
                        return false
                    }
                    if try isFull(usageCache.current(of: directory)), try isFull(usageCache.current(of: directory, fresh: true)) {
                        throw SystemError.overQuota(operation: "quota", path: directory)
                    }
                }
                let file = try OpenFile.open(temporary, flags: O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, mode: permissions == nil ? 0o644 : 0o600)
                if let permissions { try Ownership.apply(to: file, mode: permissions.fileMode(private: 0o644), group: permissions.groupID) }
                try file.writeAll(bytes)
                usageCache.add(bytes: Int64(bytes.count))
                return file
            })
        } catch {
            outcome = .failure(error)
        }
        let result: DeliveryResult
        switch outcome {
        case .success:
            result = .delivered
        case .failure(let error):
            if error.isOverQuota {
                result = .deferred("drop directory \(directory) is over its quota; waiting for the consumer to take files")
            } else if error.isNotFound {
                result = .deferred("drop directory \(directory) is missing; create it (Postroom creates it at start-up)")
            } else if error.isPermission {
                result = .deferred("drop directory \(directory) is not writable; fix its permissions")
            } else {
                result = error.isTransient ? .deferred("\(error)") : .failed(status: "4.3.0", diagnostic: "\(error)")
            }
        }
        return result
    }
}

/// A drop directory's size and file count, refreshed by listing it at most once a second and
/// counting Postroom's own writes in between (the consumer only ever makes it smaller).
final class DropUsage: Sendable {
    private struct Snapshot {
        var bytes: Int64
        var files: Int
        var taken: ContinuousClock.Instant
    }
    private let snapshot = Mutex<Snapshot?>(nil)

    /// The usage; `fresh` lists the directory now. A cached figure is never below the real one,
    /// so "there is room" may come from the cache but "full" must be confirmed fresh.
    func current(of directory: String, fresh: Bool = false) throws(SystemError) -> (bytes: Int64, files: Int) {
        if !fresh, let cached = snapshot.withLock({ $0 }), ContinuousClock.now - cached.taken < .seconds(1) {
            return (cached.bytes, cached.files)
        }
        let listed = try FileSystem.usage(of: directory)
        snapshot.withLock { $0 = Snapshot(bytes: listed.bytes, files: listed.files, taken: .now) }
        return listed
    }

    func add(bytes: Int64) {
        snapshot.withLock { snapshot in
            snapshot?.bytes += bytes
            snapshot?.files += 1
        }
    }
}
