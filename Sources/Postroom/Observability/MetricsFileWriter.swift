import PostroomSystem
import Dispatch

/// Writes the registry's exposition to a file (`metrics.prom`) atomically, once or periodically.
///
/// The file is made for node_exporter's textfile collector: mode 0644 whatever the umask (node_exporter
/// runs as its own user), and `process_*` renamed `postroom_process_*` so they do not collide with
/// node_exporter's own series. The temporary name starts with a dot and does not end in `.prom`.
///
/// Follows node_exporter's textfile-collector convention: a temp file in the same directory, fsync, rename,
/// fsync of the directory, so a reader sees a whole old file or a whole new one, and no temp file is left
/// behind on failure. The blocking I/O runs on a private serial queue, never on a Swift concurrency thread,
/// so a slow disk cannot stall the pipeline's actors.
public final class MetricsFileWriter: Sendable {
    /// The file that is replaced on each write.
    public let path: String
    private let registry: MetricsRegistry
    private let queue = DispatchQueue(label: "postroom.metrics-file")

    public init(registry: MetricsRegistry, path: String) {
        self.registry = registry
        self.path = path
    }

    /// Renders and writes the metrics now; returns once the file is durably in place.
    public func writeNow() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            queue.async { [registry, path] in
                do {
                    try FileSystem.writeDurably(Array(registry.exposition(forTextfile: true).utf8), to: path, mode: 0o644)
                    continuation.resume()
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }

    /// Writes at once, then every `interval` until the task is cancelled, then one final time, so the file
    /// reflects the state at shutdown. Write errors (disk full, directory removed) are passed to `onError`
    /// and the loop goes on: metrics must never stop the daemon. `onWritten` is called after each
    /// periodic write that succeeded.
    public func run(every interval: Duration, onWritten: @Sendable () -> Void = {}, onError: @Sendable (any Error) -> Void = { _ in }) async {
        while true {
            do {
                try await writeNow()
                onWritten()
            } catch {
                onError(error)
            }
            do {
                try await Task.sleep(for: interval)
            } catch {
                break  // cancelled
            }
        }
        do { try await writeNow() } catch { onError(error) }
    }
}
