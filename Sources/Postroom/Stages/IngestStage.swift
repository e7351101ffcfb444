import Foundation
import PostroomSystem
import Inotify
import Synchronization

/// Settings of the `ingest` stage: the Pickup and Replay directories and the intake rate.
public struct IngestSettings: StageSettings, Decodable {
    /// Pickup directory, relative to the spool; null disables it.
    public var pickup: String?
    /// Replay directory, relative to the spool; null disables it.
    public var replay: String?
    /// Most files taken per minute from each directory; 0 = no limit.
    public var maxMessagesPerMinute: Int
    /// Intake pauses while the spool's filesystem has less free space than this (back pressure).
    public var minFreeSpace: ByteSize
    /// Group and mode of `pickup/` and `replay/`, for producers running as other users.
    public var permissions: PermissionSettings?

    enum CodingKeys: String, CodingKey, CaseIterable { case stage, pickup, replay, maxMessagesPerMinute, minFreeSpace, permissions }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        pickup = container.contains(.pickup) ? try container.decodeIfPresent(String.self, forKey: .pickup) : "pickup"
        replay = container.contains(.replay) ? try container.decodeIfPresent(String.self, forKey: .replay) : "replay"
        maxMessagesPerMinute = try container.decodeIfPresent(Int.self, forKey: .maxMessagesPerMinute) ?? 0
        minFreeSpace = try container.decodeIfPresent(ByteSize.self, forKey: .minFreeSpace) ?? ByteSize(bytes: 64 << 20)
        permissions = try container.decodeIfPresent(PermissionSettings.self, forKey: .permissions)
        guard maxMessagesPerMinute >= 0 else {
            throw DecodingError.dataCorruptedError(forKey: .maxMessagesPerMinute, in: container, debugDescription: "must be 0 (no limit) or more")
        }
    }

    static let kind = StageKind(
        name: "ingest", summary: "watch pickup/ and replay/, claim complete .eml files into the queue",
        decodeSettings: { try IngestSettings(from: $0) },
        makeStage: { _, _ in throw ConfigError(file: "", keyPath: "stages[0]", problem: "ingest is the source of the pipeline and is built by the runner") })
}

/// The source of the pipeline: watches the Pickup and Replay directories with inotify and
/// claims each complete `.eml` file by renaming it into `queue/incoming/`.
///
/// `IN_CREATE` is watched only to catch entries that never produce a close (a symlink, FIFO,
/// socket, directory or hard link made in place); a regular file is still taken only once no
/// writer has it open.
///
/// Watches are added before the directories are scanned, so no file slips between scan
/// and watch. Only `IN_CLOSE_WRITE` and `IN_MOVED_TO` start a claim; `IN_Q_OVERFLOW`
/// (and a lost watch) trigger a rescan. Hostile entries (symlinks, FIFOs, sockets,
/// devices, directories, hard-linked files) are renamed `.bad` without being opened for
/// reading, and files still open for writing are re-checked on a timer with backoff until
/// they can be taken (named in a warning after `recheckWarnAfter`). Names are kept as the
/// kernel's bytes (``RawFileName``) from `readdir`/inotify to the system call.
public actor IngestStage {
    struct Directory: Sendable {
        let path: String
        let source: IntakeSource
    }

    private enum Signal: Sendable {
        case file(directoryIndex: Int, name: RawFileName)
        /// A re-check timer fired for a file that could not be taken yet.
        case recheck(directoryIndex: Int, name: RawFileName)
        case rescan(directoryIndex: Int?)
        case wake
    }

    /// A file that was seen but could not be taken yet (still open for writing, or a
    /// claim that failed): it is re-checked on a timer with backoff, because the event
    /// that would otherwise bring it back (`IN_CLOSE_WRITE`) never comes after a
    /// `truncate(2)` by path or when a writer's descriptor outlives it.
    private struct Recheck {
        var attempts = 0
        var since = ContinuousClock.now
        var warned = false
        var timer: Task<Void, Never>?
    }

    private struct RecheckKey: Hashable {
        let directoryIndex: Int
        let name: RawFileName
    }

    /// First re-check delay; doubles up to `recheckMaxDelay`.
    static let recheckFirstDelay: Duration = .milliseconds(250)
    static let recheckMaxDelay: Duration = .seconds(5)
    /// A file still not taken after this long is named in a warning log line.
    static let recheckWarnAfter: Duration = .seconds(10)

    private let settings: IngestSettings
    private let context: StageContext
    private let directories: [Directory]
    /// Per directory: whether it shares the queue's filesystem (claim by rename) or not (claim by copy).
    /// Learnt when the directory is watched, not for every file.
    private var claimsByRename: [Bool] = []
    private let readLimit: Int64
    private let signals = BoundedChannel<Signal>(capacity: 8192)
    private let pending = Mutex<[ClaimedFile]>([])
    private var inotify: Inotify?
    private var watches: [Inotify.Watch: Int] = [:]
    private var stopped = false
    private var rechecks: [RecheckKey: Recheck] = [:]
    private var takenThisMinute = 0
    private var minuteStart = ContinuousClock.now

    public init(settings: IngestSettings, context: StageContext) {
        self.settings = settings
        self.context = context
        var directories: [Directory] = []
        if let pickup = settings.pickup { directories.append(Directory(path: context.spoolPath(pickup), source: .pickup)) }
        if let replay = settings.replay { directories.append(Directory(path: context.spoolPath(replay), source: .replay)) }
        self.directories = directories
        claimsByRename = Array(repeating: true, count: directories.count)
        let maxSize = context.pipeline.settings(ValidateSettings.self)?.maxMessageSize.bytes ?? ValidateSettings.defaultMaxMessageSize
        readLimit = maxSize
    }

    /// Set by `POSTROOM_TEST_PAUSE_EVENTS_MS` (tests only): wait this long before reading inotify events.
    private let eventPause: Duration? = ProcessInfo.processInfo.environment["POSTROOM_TEST_PAUSE_EVENTS_MS"].flatMap(Int.init).map { .milliseconds($0) }

    /// The paths watched, for logs and `check`.
    nonisolated public var watchedDirectories: [String] { directories.map(\.path) }

    /// Puts a claimed file back at the start of the pipeline (generated reports, recovery).
    nonisolated public func resubmit(_ claimed: ClaimedFile) {
        pending.withLock { $0.append(claimed) }
        _ = signals.trySend(.wake)
    }

    /// Watches, scans, and claims files into `output` until ``stop()``.
    public func run(output: BoundedChannel<PipelineItem>) async throws {
        let inotify = try Inotify()
        self.inotify = inotify
        for (index, directory) in directories.enumerated() {
            try settings.prepareDirectory(directory.path)
            try watch(index, inotify: inotify)
        }
        // Only now, with every watch in place, is a file dropped in guaranteed to be seen: operators
        // and scripts (and the tests) take this line as the signal that the daemon is watching.
        context.log.notice("pipeline \(context.pipeline.name) running on spool \(context.spool), watching \(watchedDirectories.joined(separator: ", "))")
        let events = inotify.events()
        let pause = eventPause
        let pump = Task { [signals] in
            // Test hook: a paused reader lets the kernel queue overflow on purpose.
            if let pause { try? await Task.sleep(for: pause) }
            for await event in events {
                if event.isQueueOverflow {
                    await signals.send(.rescan(directoryIndex: nil))
                } else if let index = self.directoryIndex(of: event.watch) {
                    if event.isWatchGone || event.mask.contains(.deleteSelf) || event.mask.contains(.moveSelf) {
                        await signals.send(.rescan(directoryIndex: index))
                    } else if let name = event.nameBytes {
                        await signals.send(.file(directoryIndex: index, name: RawFileName(bytes: name)))
                    }
                }
            }
        }
        defer { pump.cancel() }
        for index in directories.indices { await scan(index, output: output) }

        while !stopped {
            await drainPending(output: output)
            guard let signal = await signals.receive() else { break }
            if stopped { break }
            switch signal {
            case .file(let index, let name):
                await take(name: name, directoryIndex: index, output: output)
            case .recheck(let index, let name):
                rechecks[RecheckKey(directoryIndex: index, name: name)]?.timer = nil
                await take(name: name, directoryIndex: index, output: output)
            case .rescan(let index):
                if index == nil { context.telemetry.inotifyOverflowed(); context.log.warning("inotify queue overflowed; rescanning the intake directories") }
                context.telemetry.rescanned()
                for target in index.map({ [$0] }) ?? Array(directories.indices) {
                    try? watch(target, inotify: inotify)
                    await scan(target, output: output)
                }
            case .wake:
                continue
            }
        }
        await drainPending(output: output)
    }

    /// Stops intake: no new files are claimed; what is claimed stays durable in the queue.
    public func stop() {
        stopped = true
        for recheck in rechecks.values { recheck.timer?.cancel() }
        rechecks.removeAll()
        signals.finish()
        inotify?.close()
    }

    private func directoryIndex(of watch: Inotify.Watch) -> Int? { watches[watch] }

    private func watch(_ index: Int, inotify: Inotify) throws {
        let directory = directories[index]
        try settings.prepareDirectory(directory.path)
        let watch = try inotify.addWatch(path: directory.path, mask: [.closeWrite, .movedTo, .create, .deleteSelf, .moveSelf, .onlyDirectory, .dontFollow])
        watches[watch] = index
        claimsByRename[index] = FileSystem.sameFilesystem(directory.path, context.queue.incoming)
    }

    private func scan(_ index: Int, output: BoundedChannel<PipelineItem>) async {
        let directory = directories[index]
        guard let names = try? FileSystem.rawContents(of: directory.path) else {
            context.log.warning("cannot list \(directory.path); check that it exists and is readable")
            return
        }
        for name in names.sorted() where !stopped {
            await take(name: name, directoryIndex: index, output: output)
        }
    }

    private func drainPending(output: BoundedChannel<PipelineItem>) async {
        let claimed = pending.withLock { list -> [ClaimedFile] in
            defer { list.removeAll() }
            return list
        }
        for file in claimed {
            let sourceDirectory = directories.first { $0.source == file.source }?.path
            if let item = await Self.read(file, sourceDirectory: sourceDirectory, readLimit: readLimit, log: context.log) {
                await output.send(item)
            }
        }
    }

    private func take(name: RawFileName, directoryIndex: Int, output: BoundedChannel<PipelineItem>) async {
        guard name.hasSuffixIgnoringCase(".eml"), name.bytes.first != 0x2E else { return }
        await throttle()
        await waitForSpace()
        let directory = directories[directoryIndex]
        let queue = context.queue
        let path = RawPath(directory: directory.path, name: name)
        let byRename = claimsByRename[directoryIndex]
        let limit = readLimit
        // Claim and read through the descriptor the claim checked. A claim by rename is a rename and
        // a read from the page cache, done here (a trip to the blocking pool costs two thread
        // switches); a claim by copy from another file system writes and fsyncs, so it goes there.
        let outcome = byRename
            ? Self.claim(path: path, directory: directory, byRename: true, queue: queue, readLimit: limit)
            : await BlockingPool.shared.run { Self.claim(path: path, directory: directory, byRename: false, queue: queue, readLimit: limit) }
        let key = RecheckKey(directoryIndex: directoryIndex, name: name)
        switch outcome {
        case .skipped:
            finishRecheck(key, path: path, outcome: nil)
            return
        case .busy(let why):
            scheduleRecheck(key, path: path, why: why)
            return
        case .hostile(let reason):
            finishRecheck(key, path: path, outcome: "renamed .bad")
            context.log.warning("\(path): \(reason)")
            context.telemetry.hostileFile(path.display, reason: reason, source: directory.source)
        case .failed(let error):
            if rechecks[key] == nil { context.log.warning("cannot claim \(path): \(error); it stays in place and is re-checked") }
            scheduleRecheck(key, path: path, why: "could not be claimed (\(error))")
        case .claimed(let claimed, let content):
            finishRecheck(key, path: path, outcome: "taken")
            if !name.isPlain {
                context.log.notice("\(path): the file name is not valid UTF-8; taken as \(claimed.originalName) (bytes shown as \\xNN)")
            }
            FaultInjection.checkpoint("claim")
            context.telemetry.claimed(directory.source)
            let item: PipelineItem?
            switch content {
            case .success(let (size, bytes)):
                item = Self.item(claimed, sourceDirectory: directory.path, size: size, bytes: bytes, readLimit: readLimit)
            case .failure:
                // Read again by its claimed name, which logs why if that fails too.
                item = await Self.read(claimed, sourceDirectory: directory.path, readLimit: readLimit, log: context.log)
            }
            if let item { await output.send(item) }
        }
    }

    /// Re-checks `key` after a delay that doubles with each attempt (up to
    /// `recheckMaxDelay`), and names it in a warning once it has waited `recheckWarnAfter`.
    private func scheduleRecheck(_ key: RecheckKey, path: RawPath, why: String) {
        guard !stopped else { return }
        var recheck = rechecks[key] ?? Recheck()
        recheck.attempts += 1
        let waited = ContinuousClock.now - recheck.since
        if !recheck.warned, waited >= Self.recheckWarnAfter {
            recheck.warned = true
            context.log.warning("\(path): not taken after \(Int(waited.components.seconds)) s because it \(why); "
                + "Postroom re-checks it every \(Self.recheckMaxDelay.components.seconds) s and takes it once it is complete "
                + "(close it, or remove it if its writer is gone)")
        }
        if recheck.timer == nil {
            let exponent = min(recheck.attempts - 1, 16)
            let delay = min(Self.recheckFirstDelay * (1 << exponent), Self.recheckMaxDelay)
            let signals = signals
            recheck.timer = Task {
                try? await Task.sleep(for: delay)
                if !Task.isCancelled { _ = await signals.send(.recheck(directoryIndex: key.directoryIndex, name: key.name)) }
            }
        }
        rechecks[key] = recheck
    }

    /// Forgets a file's re-check state once it is taken, rejected or gone.
    private func finishRecheck(_ key: RecheckKey, path: RawPath, outcome: String?) {
        guard let recheck = rechecks.removeValue(forKey: key) else { return }
        recheck.timer?.cancel()
        if recheck.warned {
            context.log.notice("\(path): \(outcome ?? "gone") after \(Int((ContinuousClock.now - recheck.since).components.seconds)) s of re-checks")
        }
    }

    /// Pauses intake while the spool is nearly full: claimed files would only fail to queue.
    /// The free space is checked again every second (there is no event for "space returned").
    private func waitForSpace() async {
        let minimum = settings.minFreeSpace.bytes
        // One statfs per file (about a microsecond): another writer can fill the disk at any moment.
        guard minimum > 0, let free = FileSystem.availableBytes(at: context.queue.root), free < minimum else { return }
        context.log.warning("intake paused: the spool filesystem has \(ByteSize(bytes: free)) free, less than minFreeSpace \(settings.minFreeSpace); files wait in place until space returns")
        context.telemetry.intakePaused(true)
        while !stopped, (FileSystem.availableBytes(at: context.queue.root) ?? minimum) < minimum {
            try? await Task.sleep(for: .seconds(1))
        }
        context.telemetry.intakePaused(false)
        if !stopped { context.log.notice("intake resumed: the spool filesystem has room again") }
    }

    private func throttle() async {
        guard settings.maxMessagesPerMinute > 0 else { return }
        if ContinuousClock.now - minuteStart >= .seconds(60) {
            minuteStart = .now
            takenThisMinute = 0
        }
        if takenThisMinute >= settings.maxMessagesPerMinute {
            try? await Task.sleep(until: minuteStart + .seconds(60))
            minuteStart = .now
            takenThisMinute = 0
        }
        takenThisMinute += 1
    }

    enum ClaimOutcome: Sendable {
        /// `skipped`: the entry is gone (or is not ours to take); `busy`: not complete yet, re-check it.
        /// `claimed` carries the file's size and bytes (a huge file only up to its header), or why
        /// they could not be read through the claim's descriptor (they are then read by path).
        case claimed(ClaimedFile, Result<(Int64, [UInt8]), SystemError>)
        case skipped, busy(String), hostile(String), failed(SystemError)
    }

    /// Checks the entry without following it, and claims it when it is a complete regular file.
    static func claim(path: RawPath, directory: Directory, byRename: Bool, queue: QueueStore, readLimit: Int64) -> ClaimOutcome {
        guard let status = FileSystem.status(of: path) else { return .skipped }
        if let problem = hostileKind(status) {
            return rejectInPlace(path: path, directory: directory.path, reason: problem)
        }
        // O_NONBLOCK: opening never waits (a FIFO swapped in after lstat), and O_NOFOLLOW refuses a swapped-in symlink.
        let file: OpenFile
        do {
            file = try OpenFile.open(path, flags: O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY)
        } catch {
            if error.isNotFound { return .skipped }
            if error.isSymbolicLink { return rejectInPlace(path: path, directory: directory.path, reason: "is a symbolic link; Postroom never follows links in pickup. Copy the message file itself in") }
            return .failed(error)
        }
        guard let opened = try? file.status() else { return .busy("could not be examined") }
        if let problem = hostileKind(opened) {
            return rejectInPlace(path: path, directory: directory.path, reason: problem)
        }
        // Replaced between lstat and open: look again rather than trust either.
        guard opened.inode == status.inode, opened.device == status.device else { return .busy("was being replaced") }
        guard file.isClosedByWriters() else { return .busy("is open for writing by another process") }
        do {
            let claimed = byRename ? try queue.claim(path, source: directory.source) : try queue.claimByCopy(path, source: directory.source)
            // The descriptor names the same inode after the rename, and no writer has it open.
            let content = Result { () throws(SystemError) -> (Int64, [UInt8]) in
                (opened.size, try file.read(upTo: readSize(opened.size, readLimit: readLimit), regularFile: true))
            }
            return .claimed(claimed, content)
        } catch {
            return error.isNotFound ? .skipped : .failed(error)
        }
    }

    private static func hostileKind(_ status: FileStatus) -> String? {
        switch status.kind {
        case .regular:
            return status.linkCount > 1 ? "has \(status.linkCount) hard links; Postroom takes only files with one link. Copy the message in instead of linking it" : nil
        case .symbolicLink: return "is a symbolic link; Postroom never follows links in pickup. Copy the message file itself in"
        case .fifo: return "is a FIFO, not a file; write the message to a regular file"
        case .socket: return "is a socket, not a file; write the message to a regular file"
        case .directory: return "is a directory named like a message; rename or remove it"
        case .characterDevice, .blockDevice: return "is a device, not a file; write the message to a regular file"
        case .unknown: return "is not a regular file"
        }
    }

    private static func rejectInPlace(path: RawPath, directory: String, reason: String) -> ClaimOutcome {
        do {
            try Badmail.reject(path: path, directory: directory, reason: reason)
            return .hostile(reason)
        } catch {
            return error.isNotFound ? .skipped : .failed(error)
        }
    }

    /// Reads a claimed file into a pipeline item; huge files only up to their header.
    static func read(_ claimed: ClaimedFile, sourceDirectory: String?, readLimit: Int64, log: Logger) async -> PipelineItem? {
        let result: Result<(FileStatus, [UInt8]), SystemError> = await BlockingPool.shared.run {
            Result { () throws(SystemError) in
                let file = try OpenFile.open(claimed.path, flags: O_RDONLY | O_NOFOLLOW | O_NONBLOCK)
                let status = try file.status()
                return (status, try file.read(upTo: readSize(status.size, readLimit: readLimit), regularFile: true))
            }
        }
        switch result {
        case .success(let (status, bytes)):
            return item(claimed, sourceDirectory: sourceDirectory, size: status.size, bytes: bytes, readLimit: readLimit)
        case .failure(let error):
            if !error.isNotFound { log.error("cannot read claimed file \(claimed.path): \(error); it stays queued for the next start") }
            return nil
        }
    }

    /// How much of a claimed file to read: all of it (one byte more, to see its end in one
    /// `read`), or of a file over the size limit only enough for its header.
    static func readSize(_ size: Int64, readLimit: Int64) -> Int {
        size > readLimit ? 256 * 1024 : Int(size) + 1
    }

    static func item(_ claimed: ClaimedFile, sourceDirectory: String?, size: Int64, bytes: [UInt8], readLimit: Int64) -> PipelineItem {
        var item = PipelineItem(claimed: claimed, sourceDirectory: sourceDirectory, arrival: Date(), size: size, bytes: bytes)
        item.isTruncated = size > readLimit
        return item
    }
}
