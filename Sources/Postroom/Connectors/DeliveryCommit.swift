import Foundation
import PostroomSystem
import Synchronization

/// How the file connectors (Maildir, foreign drop directories) make a delivered file durable:
/// written under a temporary name, durable, renamed to its final name, and that rename durable,
/// before the delivery counts as done. A reader never sees a partial file under the final name,
/// and a power cut never loses a file whose delivery was reported.
///
/// Two strategies, with the same guarantees:
/// - ``Strategy/eachFile``: each file is fsynced, then renamed; the folders' fsyncs are shared
///   between concurrent deliveries (``DirectorySync``). Two syncs per file, at least.
/// - ``Strategy/filesystem``: group commit over the whole spool file system. Files written by
///   concurrent deliveries wait together; one `syncfs` makes all of them (and every earlier
///   rename, such as the claims of their messages) durable, then they are renamed, and the next
///   `syncfs` makes the renames durable before their callers are answered. Under load each
///   `syncfs` serves two batches (the renames of one, the contents of the next), so a message
///   costs a fraction of a sync. Used only where `syncfs` is a real durability point
///   (``FileSystem/filesystemSyncIsDurable(at:)``); a target on another file system is fsynced
///   on its own and its folder synced after the rename.
///
/// With ``Strategy/filesystem``, every rename made before a delivery's write is durable before its
/// file becomes visible, so the claim of the message needs no sync of its own (``coversEarlierRenames``).
public final class DeliveryCommit: Sendable {
    /// How files are made durable; see the type's description.
    public enum Strategy: String, Sendable, CaseIterable {
        case eachFile = "file"
        case filesystem
    }

    public let strategy: Strategy
    let spool: String
    let directorySync: DirectorySync
    private let pool: BlockingPool
    private let spoolDevice: UInt64?
    private let batch = Mutex(Batch())
    /// A sync that follows another within this is under sustained load, and may wait `gatherDelay`
    /// for up to `fullBatch` files (group commit's commit delay, as PostgreSQL's `commit_delay`).
    static let sustained = Duration.milliseconds(2)
    static let gatherDelay = 0.001
    static let fullBatch = 16
    /// The spool, held open for the whole run: `syncfs` reports a write-back error that happened
    /// since its descriptor was opened, so one opened per call could miss an error another process's
    /// `syncfs` had already seen. Only the round's leader uses it.
    private let spoolHandle: Mutex<OpenFile?>
    /// Whether a target folder is on the spool's file system (one `stat` per folder per run).
    private let onSpool = Mutex<[String: Bool]>([:])

    private struct Waiting {
        var temporary: String
        var final: String
        /// False for a file on another file system: fsynced already, its folder is synced after the rename.
        var onSpool: Bool
        var continuation: CheckedContinuation<Result<Bool, SystemError>, Never>
    }

    private struct Batch {
        var waiting: [Waiting] = []
        var leading = false
    }

    /// `strategy` nil chooses: ``Strategy/filesystem`` where the spool's file system honours
    /// `syncfs`, else ``Strategy/eachFile``.
    public init(spool: String, directorySync: DirectorySync, strategy: Strategy? = nil, pool: BlockingPool = .shared) {
        self.spool = spool
        self.directorySync = directorySync
        self.pool = pool
        self.strategy = strategy ?? (FileSystem.filesystemSyncIsDurable(at: spool) ? .filesystem : .eachFile)
        spoolDevice = FileSystem.status(of: spool, followLinks: true)?.device
        // Opened before any delivery is written (or at the first sync, if the spool is made later).
        spoolHandle = Mutex(try? OpenFile.open(spool, flags: O_RDONLY | O_DIRECTORY))
    }

    /// True when a delivery's first sync also makes durable every rename made before it was
    /// asked for (a message's claim), so those need no sync of their own.
    public var coversEarlierRenames: Bool { strategy == .filesystem }

    /// Delivers one file: on a pool thread (or, `quick`, the caller's), `write` creates `temporary`
    /// and writes it (or returns nil when the delivery exists already: an earlier attempt made it);
    /// then the file is made durable, renamed to `final` (in the same folder as `temporary`, or one
    /// on the same file system) and the rename made durable. Returns false when `write` found nothing to do; the
    /// final folder is synced then too, since the earlier attempt may have died before its sync.
    /// On an error before the rename, the temporary file is removed.
    ///
    /// `quick` says `write` is short work that never waits for the disk (a small file into the page
    /// cache, no folder scan): with ``Strategy/filesystem`` it then runs on the caller's thread,
    /// which saves the two thread switches of a trip to the pool; the syncs stay on pool threads.
    public func deliver(temporary: String, final: String, quick: Bool = false,
                        write: @escaping @Sendable () throws(SystemError) -> OpenFile?) async throws(SystemError) -> Bool {
        let folder = FileSystem.parentPath(final)
        let wrote = try await commit(temporary: temporary, final: final, folder: folder, quick: quick, write: write)
        if !wrote { try await directorySync.sync(folder) }
        return wrote
    }

    /// Files at most this big may be written on the caller's thread (see `quick`).
    public static let quickWriteLimit = 256 * 1024

    private func commit(temporary: String, final: String, folder: String, quick: Bool,
                        write: @escaping @Sendable () throws(SystemError) -> OpenFile?) async throws(SystemError) -> Bool {
        switch strategy {
        case .eachFile:
            let wrote = try await pool.run { () throws(SystemError) -> Bool in
                try Self.removingTemporary(temporary) { () throws(SystemError) -> Bool in
                    guard let file = try write() else { return false }
                    try file.sync()
                    try FileSystem.rename(temporary, to: final)
                    FaultInjection.checkpoint("rename")
                    return true
                }
            }
            if wrote { try await directorySync.sync(folder) }
            return wrote
        case .filesystem:
            let onSpool = isOnSpool(folder)
            // A file off the spool is fsynced on its own: that waits for the disk, so never quick.
            let inline = quick && onSpool
            @Sendable func written() -> Result<Bool, SystemError> {
                Result { () throws(SystemError) -> Bool in
                    try Self.removingTemporary(temporary) { () throws(SystemError) -> Bool in
                        guard let file = try write() else { return false }
                        if !onSpool { try file.sync() }
                        return true
                    }
                }
            }
            let result: Result<Bool, SystemError> = await withCheckedContinuation { continuation in
                @Sendable func writeThenJoin(onPoolThread: Bool) {
                    let outcome = written()
                    guard case .success(true) = outcome else { return continuation.resume(returning: outcome) }
                    join(Waiting(temporary: temporary, final: final, onSpool: onSpool, continuation: continuation), onPoolThread: onPoolThread)
                }
                if inline { writeThenJoin(onPoolThread: false) } else { pool.submit { writeThenJoin(onPoolThread: true) } }
            }
            return try result.get()
        }
    }

    /// Runs `body`; if it throws, removes the temporary file it may have left.
    private static func removingTemporary<T>(_ temporary: String, _ body: () throws(SystemError) -> T) throws(SystemError) -> T {
        do {
            return try body()
        } catch {
            try? FileSystem.removeFileIfPresent(temporary)
            throw error
        }
    }

    private func isOnSpool(_ folder: String) -> Bool {
        if let known = onSpool.withLock({ $0[folder] }) { return known }
        // A folder not made yet (a mailbox's first delivery) will be on its nearest existing ancestor's
        // file system; that answer is not kept, since the folder may yet be a mount point's.
        var existing = folder
        var device = FileSystem.status(of: existing, followLinks: true)?.device
        while device == nil, existing.count > 1 {
            existing = FileSystem.parentPath(existing)
            device = FileSystem.status(of: existing, followLinks: true)?.device
        }
        let same = spoolDevice != nil && device == spoolDevice
        if existing == folder { onSpool.withLock { $0[folder] = same } }
        return same
    }

    /// Adds a written file to the next batch; the first caller with no batch running leads, on its
    /// own pool thread when it is on one, else on a pool thread it asks for (a round blocks on the disk).
    private func join(_ waiting: Waiting, onPoolThread: Bool) {
        let lead = batch.withLock { batch -> Bool in
            batch.waiting.append(waiting)
            if batch.leading { return false }
            batch.leading = true
            return true
        }
        guard lead else { return }
        if onPoolThread { self.lead() } else { pool.submit { self.lead() } }
    }

    /// Commits batches until none is waiting. Each round makes one `syncfs` of the spool, which
    /// makes durable both the files written for this round (and every rename before them, such as
    /// their messages' claims) and the renames of the round before, whose callers are answered
    /// then; this round's files are renamed into place next and answered after the next round's
    /// sync. Under load that is one `syncfs` per batch; a lone delivery gets two.
    private func lead() {
        var renamed: [Waiting] = []
        var lastSync: ContinuousClock.Instant?
        while true {
            // Under sustained load (the previous sync ended a moment ago) wait a little for more files,
            // so that one syncfs serves more of them; a delivery that comes alone is never delayed.
            if let lastSync, ContinuousClock.now - lastSync < Self.sustained, batch.withLock({ $0.waiting.count }) < Self.fullBatch {
                Thread.sleep(forTimeInterval: Self.gatherDelay)
            }
            let written = batch.withLock { batch -> [Waiting] in
                if batch.waiting.isEmpty, renamed.isEmpty { batch.leading = false }
                defer { batch.waiting = [] }
                return batch.waiting
            }
            if written.isEmpty, renamed.isEmpty { return }
            let synced = Result { () throws(SystemError) in try syncSpool() }
            lastSync = .now
            for file in renamed { file.continuation.resume(returning: synced.map { true }) }
            renamed = []
            for file in written {
                do throws(SystemError) {
                    try synced.get()
                    try FileSystem.rename(file.temporary, to: file.final)
                    FaultInjection.checkpoint("rename")
                } catch {
                    try? FileSystem.removeFileIfPresent(file.temporary)
                    file.continuation.resume(returning: .failure(error))
                    continue
                }
                if file.onSpool {
                    renamed.append(file)
                } else {
                    // On another file system the spool's syncfs does not reach the rename: sync its folder now.
                    let folder = FileSystem.parentPath(file.final)
                    file.continuation.resume(returning: Result { () throws(SystemError) -> Bool in
                        try FileSystem.syncDirectory(folder)
                        return true
                    })
                }
            }
        }
    }

    private func syncSpool() throws(SystemError) {
        try spoolHandle.withLock { handle throws(SystemError) in
            if handle == nil { handle = try OpenFile.open(spool, flags: O_RDONLY | O_DIRECTORY) }
            try handle!.syncFilesystem()
        }
    }
}
