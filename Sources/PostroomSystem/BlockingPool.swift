import Foundation
import Synchronization

/// A fixed set of threads for system calls that wait for the disk (`fsync`, `syncfs`, an
/// `unlink` that frees blocks, copying or writing a big file).
///
/// Swift's cooperative pool has one thread per core; a blocking `fsync` there would stall
/// every actor. Work submitted here runs on threads of its own, at most `threads` at once,
/// which also bounds how many files are written in parallel. Short calls that only touch the
/// page cache (a rename, a small read or write) are cheaper made where they are: a trip here
/// costs two thread switches.
public final class BlockingPool: Sendable {
    private let jobs = Mutex<[@Sendable () -> Void]>([])
    private let available = DispatchSemaphore(value: 0)

    /// The pool shared by the whole process.
    public static let shared = BlockingPool(threads: 16)

    public init(threads: Int) {
        for index in 0..<threads {
            let thread = Thread { [self] in self.work() }
            thread.name = "postroom-io-\(index)"
            thread.start()
        }
    }

    private func work() {
        while true {
            available.wait()
            let job = jobs.withLock { $0.isEmpty ? nil : $0.removeFirst() }
            job?()
        }
    }

    /// Queues `job` to run on a pool thread; returns at once.
    public func submit(_ job: @escaping @Sendable () -> Void) {
        jobs.withLock { $0.append(job) }
        available.signal()
    }

    /// Runs `body` on a pool thread and returns its result.
    public func run<T: Sendable, E: Error>(_ body: @escaping @Sendable () throws(E) -> T) async throws(E) -> T {
        let result: Result<T, E> = await withCheckedContinuation { continuation in
            submit { continuation.resume(returning: Result { () throws(E) -> T in try body() }) }
        }
        return try result.get()
    }
}

/// Batches directory fsyncs: concurrent callers asking for the same directories share one `fsync` each.
///
/// A caller returns only after an fsync of each directory it named that started after its
/// request, so the entries it created or renamed before calling are durable. This is group
/// commit for directory entries. Callers that name the same list share one leader, which syncs
/// the list in order on one pool thread.
public final class DirectorySync: Sendable {
    private struct Waiters {
        var waiting: [CheckedContinuation<Result<Void, SystemError>, Never>] = []
        var running = false
    }
    /// Keyed by the directories joined with NUL, which no path contains.
    private let groups = Mutex<[String: Waiters]>([:])
    private let pool: BlockingPool

    public init(pool: BlockingPool = .shared) { self.pool = pool }

    public func sync(_ directory: String) async throws(SystemError) {
        try await sync([directory])
    }

    /// Syncs every directory of `directories`, in order.
    public func sync(_ directories: [String]) async throws(SystemError) {
        let key = directories.joined(separator: "\0")
        let result: Result<Void, SystemError> = await withCheckedContinuation { continuation in
            let lead = groups.withLock { table -> Bool in
                table[key, default: Waiters()].waiting.append(continuation)
                if table[key]!.running { return false }
                table[key]!.running = true
                return true
            }
            // The leader runs on a pool thread itself: no task hop before the fsyncs, none after them.
            if lead { pool.submit { self.lead(key, directories: directories) } }
        }
        try result.get()
    }

    /// Fsyncs `directories` until no caller is waiting; each round answers every caller queued before it started.
    private func lead(_ key: String, directories: [String]) {
        while true {
            let batch = groups.withLock { table -> [CheckedContinuation<Result<Void, SystemError>, Never>] in
                let waiting = table[key]?.waiting ?? []
                if waiting.isEmpty {
                    table[key] = nil
                } else {
                    table[key]!.waiting = []
                }
                return waiting
            }
            if batch.isEmpty { return }
            let outcome = Result { () throws(SystemError) in
                for directory in directories { try FileSystem.syncDirectory(directory) }
            }
            for waiter in batch { waiter.resume(returning: outcome) }
        }
    }
}
