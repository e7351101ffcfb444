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
///
/// The file is compacted while the daemon runs, whenever `compactAfter` bytes were appended since
/// the last compaction: it is rewritten with only the lines still meaningful (a `B` per key open
/// now, every `X`), which the journal also keeps in memory (a few entries: the messages in
/// flight), so a daemon that runs for years keeps a small journal and never reads it back.
public final class PoisonJournal: Sendable {
    public let path: String
    /// Appended bytes after which the journal is compacted.
    public let compactAfter: Int
    private struct State {
        var file: AppendOnlyFile?
        var appended = 0
        /// What the file says, kept in step with it: keys begun and not ended, and failures.
        var open: [String: Int] = [:]
        var failures: [String: Int] = [:]
    }
    // Appends happen under the lock, so none can land in a file that compaction is replacing.
    private let state = Mutex(State())

    public init(queue: QueueStore, compactAfter: Int = 1 << 20) {
        path = queue.root + "/inflight.journal"
        self.compactAfter = compactAfter
    }

    /// Reads the journal left by earlier runs: failures (crashes and unexpected errors) per key.
    public func failureCounts() -> [String: Int] {
        guard let bytes = try? FileSystem.readFile(path) else { return [:] }
        let (open, failures) = Self.tally(bytes)
        return open.keys.reduce(into: failures) { counts, key in counts[key, default: 0] += 1 }
    }

    /// Keys with more `B` than `E` lines (and how many more), and the `X` lines per key.
    static func tally(_ bytes: [UInt8]) -> (open: [String: Int], failures: [String: Int]) {
        var open: [String: Int] = [:]
        var failures: [String: Int] = [:]
        for line in bytes.split(separator: UInt8(ascii: "\n")) {
            guard line.count > 2 else { continue }
            let key = String(decoding: line.dropFirst(2), as: UTF8.self)
            switch line.first {
            case UInt8(ascii: "B"): open[key, default: 0] += 1
            case UInt8(ascii: "E"): open[key, default: 0] -= 1
            case UInt8(ascii: "X"): failures[key, default: 0] += 1
            default: continue
            }
        }
        return (open.filter { $0.value > 0 }, failures)
    }

    /// Rewrites the journal to hold only the failure counts still relevant, then opens it for this run.
    public func reset(keeping counts: [String: Int]) throws(SystemError) {
        try state.withLock { state throws(SystemError) in
            state.file = try Self.rewrite(path, open: [:], failures: counts)
            state.appended = 0
            state.open = [:]
            state.failures = counts.filter { $0.value > 0 }
        }
    }

    /// Writes a journal holding `open` and `failures` and opens it for appending.
    private static func rewrite(_ path: String, open: [String: Int], failures: [String: Int]) throws(SystemError) -> AppendOnlyFile {
        var text = ""
        for (key, count) in failures.sorted(by: { $0.key < $1.key }) where count > 0 {
            text += String(repeating: "X \(key)\n", count: count)
        }
        for (key, count) in open.sorted(by: { $0.key < $1.key }) {
            text += String(repeating: "B \(key)\n", count: count)
        }
        try FileSystem.writeAtomically(Array(text.utf8), to: path)
        return try AppendOnlyFile(path: path)
    }

    public func begin(_ key: String) { append("B", key) }
    public func end(_ key: String) { append("E", key) }
    public func failed(_ key: String) { append("X", key) }

    /// One `write(2)` of `<tag> <key>\n`, built as bytes (this runs twice per stage per message).
    private func append(_ tag: Unicode.Scalar, _ key: String) {
        var line: [UInt8] = []
        line.reserveCapacity(key.utf8.count + 3)
        line.append(UInt8(ascii: tag))
        line.append(UInt8(ascii: " "))
        line.append(contentsOf: key.utf8)
        line.append(UInt8(ascii: "\n"))
        state.withLock { state in
            guard let file = state.file else { return }
            file.append(line)
            state.appended += line.count
            switch tag {
            case "B": state.open[key, default: 0] += 1
            case "E":
                let left = (state.open[key] ?? 0) - 1
                state.open[key] = left > 0 ? left : nil
            default: state.failures[key, default: 0] += 1
            }
            if state.appended >= compactAfter { compact(&state) }
        }
    }

    /// Replaces the journal by its meaning: the keys open now and the failures. On any error the
    /// old file stays in use and the next append tries again; nothing it says is lost.
    private func compact(_ state: inout State) {
        guard let file = try? Self.rewrite(path, open: state.open, failures: state.failures) else { return }
        state.file = file
        state.appended = 0
    }

    /// Journal keys: claimed files and queue entries live in different name spaces.
    public static func key(claimed queueID: String) -> String { "C:" + queueID }
    public static func key(entry id: String) -> String { "Q:" + id }
}
