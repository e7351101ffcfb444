import Foundation
import PostroomSystem
import Synchronization

/// Remembers which messages were being worked on when the process died, so a message that
/// crashes Postroom is parked as poison instead of crashing it forever (Exchange's PoisonCount).
///
/// `queue/inflight.journal` gets a `B <key>` line before work on a key starts and an
/// `E <key>` line when it ends; `X <key>` marks an unexpected failure. The lines are plain
/// `write(2)`s with `O_APPEND` and no fsync: they must survive the death of the process
/// (`kill -9`, a crash), which the page cache guarantees, not the loss of the machine.
/// At start-up, a key with a `B` but no `E` crashed the previous run: once, however many
/// of its lines are open, since one death of the process is one crash for each message.
/// A stage writes its `E` before it hands the message on, so a message waiting between
/// stages is not open and is not blamed for a crash elsewhere.
public final class PoisonJournal: Sendable {
    public let path: String
    private let file: Mutex<AppendOnlyFile?>

    public init(queue: QueueStore) {
        path = queue.root + "/inflight.journal"
        file = Mutex(nil)
    }

    /// Reads the journal left by earlier runs: failures (crashes and unexpected errors) per key.
    public func failureCounts() -> [String: Int] {
        guard let bytes = try? FileSystem.readFile(path) else { return [:] }
        var open: [String: Int] = [:]
        var failures: [String: Int] = [:]
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
            guard line.count > 2 else { continue }
            let key = String(line.dropFirst(2))
            switch line.first {
            case "B": open[key, default: 0] += 1
            case "E": open[key, default: 0] -= 1
            case "X": failures[key, default: 0] += 1
            default: continue
            }
        }
        for (key, count) in open where count > 0 { failures[key, default: 0] += 1 }
        return failures
    }

    /// Rewrites the journal to hold only the failure counts still relevant, then opens it for this run.
    public func reset(keeping counts: [String: Int]) throws(SystemError) {
        var text = ""
        for (key, count) in counts.sorted(by: { $0.key < $1.key }) where count > 0 {
            text += String(repeating: "X \(key)\n", count: count)
        }
        try FileSystem.writeAtomically(Array(text.utf8), to: path)
        let opened = try AppendOnlyFile(path: path)
        file.withLock { $0 = opened }
    }

    public func begin(_ key: String) { append("B \(key)\n") }
    public func end(_ key: String) { append("E \(key)\n") }
    public func failed(_ key: String) { append("X \(key)\n") }

    private func append(_ line: String) {
        file.withLock { $0 }?.append(Array(line.utf8))
    }

    /// Journal keys: claimed files and queue entries live in different name spaces.
    public static func key(claimed queueID: String) -> String { "C:" + queueID }
    public static func key(entry id: String) -> String { "Q:" + id }
}
