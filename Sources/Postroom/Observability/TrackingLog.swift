import Foundation
import PostroomSystem
import Synchronization

/// The message tracking log: `tracking.log`, one JSON ``TrackingEvent`` per line, rotated by size.
///
/// Guarantees:
/// - Lines are whole and never interleaved: every write happens under one lock and carries only complete
///   lines, and the file is opened with `O_APPEND`, so lines from another process (the `postroom queue`
///   CLI appending operator events) land between ours, never inside them.
/// - Rotation is rename-based and happens under the same lock: `tracking.log.(N-1)` → `.N` (the oldest is
///   replaced), …, `tracking.log` → `.1`, then a fresh `tracking.log`. No line is lost or written twice.
///   Only one process should rotate (the daemon); other writers pass `maxBytes: .max`.
/// - Durability: with `bufferBytes == 0` (the default) each append is one `write(2)`, so a line survives
///   `kill -9` as soon as `append` returns (not a power cut: call ``flush()`` / ``close()`` for fsync).
///   With `bufferBytes > 0`, lines are kept in memory until that many bytes are pending or ``flush()`` is
///   called; the daemon then calls `flush()` at least every second and at shutdown, and accepts losing the
///   last second of lines on `kill -9`.
public final class TrackingLog: Sendable {
    /// The current log file (e.g. `<spool>/tracking.log`); generations are `path.1` … `path.maxFiles`.
    public let path: String
    /// Size at which the file is rotated before the next write.
    public let maxBytes: Int
    /// Number of rotated generations kept.
    public let maxFiles: Int
    /// Bytes buffered before a write; 0 writes every line at once.
    public let bufferBytes: Int

    private struct State {
        /// nil once closed.
        var file: OpenFile?
        var size: Int
        var pending: [[UInt8]] = []
        var pendingBytes = 0
        var closed = false
    }

    private let state: Mutex<State>

    /// Opens (creating if needed) the log at `path` for appending.
    public init(path: String, maxBytes: Int = 64 << 20, maxFiles: Int = 10, bufferBytes: Int = 0) throws {
        precondition(maxBytes > 0 && maxFiles >= 1 && bufferBytes >= 0)
        self.path = path
        self.maxBytes = maxBytes
        self.maxFiles = maxFiles
        self.bufferBytes = bufferBytes
        let file = try OpenFile.openForAppending(path)
        state = Mutex(State(file: file, size: Int(try file.status().size)))
    }

    deinit {
        try? close()
    }

    /// Appends one event. Encoding happens outside the lock; only the write is serialised.
    /// Throws ``SystemError`` when the log cannot be written (callers usually report and go on:
    /// tracking must not stop mail).
    public func append(_ event: TrackingEvent) throws {
        try append([event])
    }

    /// Appends events that happened together (a message's submission and delivery), in one write when unbuffered.
    public func append(_ events: [TrackingEvent]) throws {
        let lines = events.map { $0.jsonLine() }
        try state.withLock { s in
            guard !s.closed else { throw SystemError.closedFile(operation: "write", path: path) }
            for line in lines {
                s.pending.append(line)
                s.pendingBytes += line.count
            }
            if s.pendingBytes > bufferBytes {
                try writePending(&s)
            }
        }
    }

    /// Writes buffered lines and fsyncs the file.
    public func flush() throws {
        try state.withLock { s in
            guard !s.closed else { return }
            try writePending(&s)
            try s.file?.sync()
        }
    }

    /// Flushes and closes; later appends throw. Idempotent.
    public func close() throws {
        try state.withLock { s in
            guard !s.closed else { return }
            defer {
                s.file = nil
                s.closed = true
            }
            try writePending(&s)
            try s.file?.sync()
        }
    }

    /// Writes pending lines in chunks that fit the current file, rotating between chunks.
    private func writePending(_ s: inout State) throws {
        var index = 0
        while index < s.pending.count {
            if s.size > 0 && s.size + s.pending[index].count > maxBytes {
                try rotate(&s)
            }
            // Gather as many whole lines as fit (at least one, even if it alone exceeds maxBytes).
            let chunkStart = index
            var chunk = s.pending[index]
            index += 1
            while index < s.pending.count, s.size + chunk.count + s.pending[index].count <= maxBytes {
                chunk += s.pending[index]
                index += 1
            }
            do {
                try s.file?.writeAll(chunk)
            } catch {
                // Keep the failed chunk for the next attempt (disk full is usually temporary). A write that
                // failed half-way leaves a torn line, which readers skip as malformed.
                s.pending.removeFirst(chunkStart)
                s.pendingBytes = s.pending.reduce(0) { $0 + $1.count }
                throw error
            }
            s.size += chunk.count
        }
        s.pending.removeAll(keepingCapacity: true)
        s.pendingBytes = 0
    }

    /// Shifts generations up by one and starts a fresh file. If the new file cannot be opened the old
    /// descriptor (now `path.1`) stays in use, so no line is lost.
    private func rotate(_ s: inout State) throws {
        for generation in stride(from: maxFiles - 1, through: 1, by: -1) {
            let from = "\(path).\(generation)"
            if FileSystem.exists(from) {
                try FileSystem.rename(from, to: "\(path).\(generation + 1)")
            }
        }
        try FileSystem.rename(path, to: "\(path).1")
        s.file = try OpenFile.openForAppending(path)
        s.size = 0
    }
}

/// Reads tracking logs back for `postroom trace` and tests.
public enum TrackingLogReader {
    /// All events of the log at `path` (a `tracking.log` file, or the spool directory holding one),
    /// generations oldest first (`.N` … `.1`, then the current file), lines in file order.
    /// Malformed lines (a torn last line after a crash, foreign text) are skipped.
    public static func events(in path: String) -> [TrackingEvent] {
        let decoder = JSONDecoder()
        var events: [TrackingEvent] = []
        for file in generations(of: logPath(path)) {
            guard let data = FileManager.default.contents(atPath: file) else { continue }
            for line in data.split(separator: UInt8(ascii: "\n")) where !line.isEmpty {
                if let event = try? decoder.decode(TrackingEvent.self, from: Data(line)) {
                    events.append(event)
                }
            }
        }
        return events
    }

    /// `path` itself, or `path/tracking.log` when `path` is a directory.
    static func logPath(_ path: String) -> String {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            return (path as NSString).appendingPathComponent("tracking.log")
        }
        return path
    }

    /// Existing files of the log, oldest first.
    static func generations(of log: String) -> [String] {
        let directory = (log as NSString).deletingLastPathComponent
        let base = (log as NSString).lastPathComponent
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.isEmpty ? "." : directory)) ?? []
        let rotated = names.compactMap { name -> Int? in
            guard name.hasPrefix(base + "."), let n = Int(name.dropFirst(base.count + 1)), n > 0 else { return nil }
            return n
        }
        var files = rotated.sorted(by: >).map { "\(log).\($0)" }
        if FileSystem.exists(log) { files.append(log) }
        return files
    }
}
