import Foundation

/// Hands messages to a foreign system as files in its drop directory (Exchange's foreign connector).
///
/// Each queue entry becomes one `<entry id>.eml` in replay format (`X-Sender`/`X-Receiver`
/// first), written under a hidden temporary name, fsynced and renamed, so the consumer
/// never sees a partial file. When the directory is over its quota, missing or unwritable,
/// the delivery is deferred and retried: never lost, never half-written.
public struct ForeignConnector: Connector {
    public let configuration: ConnectorConfiguration
    let spool: String
    let directorySync: DirectorySync

    public var dropDirectory: String { resolvePath(configuration.dropDirectory ?? configuration.name, against: spool) }

    public func prepare() throws {
        try FileSystem.createDirectory(dropDirectory)
    }

    public func deliver(_ entry: QueueEntry, message: [UInt8]) async -> [DeliveryResult] {
        guard configuration.filePerRecipient else {
            return Array(repeating: await write(envelope: entry.envelope, name: entry.id, message: message), count: entry.envelope.recipients.count)
        }
        var results: [DeliveryResult] = []
        for recipient in entry.envelope.recipients {
            let single = Envelope(sender: entry.envelope.sender, recipients: [recipient])
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
        let outcome: Result<Bool, SystemError> = await BlockingPool.shared.run {
            Result { () throws(SystemError) -> Bool in
                if FileSystem.exists(path) { return false }
                guard FileSystem.status(of: directory, followLinks: true)?.kind == .directory else {
                    throw SystemError(operation: "drop directory", path: directory, errno: ENOENT)
                }
                if quota != nil || quotaFiles != nil {
                    let usage = try FileSystem.usage(of: directory)
                    if let quota, usage.bytes + Int64(bytes.count) > quota, usage.files > 0 {
                        throw SystemError(operation: "quota", path: directory, errno: EDQUOT)
                    }
                    if let quotaFiles, usage.files >= quotaFiles {
                        throw SystemError(operation: "quota", path: directory, errno: EDQUOT)
                    }
                }
                try FileSystem.writeAtomically(bytes, to: path, mode: 0o644)
                return true
            }
        }
        let result: DeliveryResult
        switch outcome {
        case .success(let wrote):
            if wrote {
                do { try await directorySync.sync(directory) } catch { return .deferred("\(error)") }
            }
            result = .delivered
        case .failure(let error):
            if error.errno == EDQUOT {
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
