import Foundation
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import Inotify

/// A unique folder under the temporary directory, removed when the test is done with it.
private final class TemporaryFolder {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "inotify-tests-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func write(_ name: String, _ text: String = "x") throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path + "/" + name))
    }
}

/// Ends the instance's event sequences after a generous deadline, so a missing event fails
/// the test (next() returns nil) instead of hanging it. Cancel it once the test has its events.
private func watchdog(_ inotify: Inotify, seconds: Int = 10) -> Task<Void, Never> {
    Task {
        do { try await Task.sleep(for: .seconds(seconds)) } catch { return }
        inotify.close()
    }
}

@Suite struct InotifyTests {
    @Test func closeWriteIsReportedWithTheFileName() async throws {
        let folder = try TemporaryFolder()
        let inotify = try Inotify()
        let watch = try inotify.addWatch(path: folder.path, mask: [.closeWrite, .movedTo])
        let guardTask = watchdog(inotify)
        defer { guardTask.cancel() }

        try folder.write("message.eml", "hello")
        var events = inotify.events().makeAsyncIterator()
        let event = try #require(await events.next())
        #expect(event.mask.contains(.closeWrite))
        #expect(!event.mask.contains(.movedTo))
        #expect(event.name == "message.eml")
        #expect(event.watch == watch)
        #expect(!event.isQueueOverflow)
        #expect(!event.isWatchGone)
    }

    @Test func aNameThatIsNotUTF8ArrivesAsItsExactBytes() async throws {
        let folder = try TemporaryFolder()
        let inotify = try Inotify()
        try inotify.addWatch(path: folder.path, mask: [.closeWrite])
        let guardTask = watchdog(inotify)
        defer { guardTask.cancel() }
        let name: [UInt8] = Array("caf".utf8) + [0xE9] + Array(".eml".utf8)
        let path = (Array(folder.path.utf8) + [0x2F] + name + [0]).map { CChar(bitPattern: $0) }
        let fd = path.withUnsafeBufferPointer { open($0.baseAddress!, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644) }
        #expect(fd >= 0)
        close(fd)
        var events = inotify.events().makeAsyncIterator()
        let event = try #require(await events.next())
        #expect(event.nameBytes == name)
        // The String form cannot hold the byte: it is lossy, which is why intake uses nameBytes.
        #expect(event.name.map { Array($0.utf8) } != name)
    }

    @Test func renameIntoTheFolderIsReportedAsMovedTo() async throws {
        let folder = try TemporaryFolder()
        let outside = try TemporaryFolder()
        try outside.write("draft.tmp", "body")
        let inotify = try Inotify()
        try inotify.addWatch(path: folder.path, mask: [.closeWrite, .movedTo])
        let guardTask = watchdog(inotify)
        defer { guardTask.cancel() }

        #expect(rename(outside.path + "/draft.tmp", folder.path + "/final.eml") == 0)
        var events = inotify.events().makeAsyncIterator()
        let event = try #require(await events.next())
        #expect(event.mask.contains(.movedTo))
        #expect(!event.mask.contains(.closeWrite))
        #expect(event.name == "final.eml")
        #expect(event.cookie != 0, "a rename carries a cookie pairing its two halves")
    }

    @Test func eventsOutsideTheMaskAreNotReported() async throws {
        let folder = try TemporaryFolder()
        let inotify = try Inotify()
        try inotify.addWatch(path: folder.path, mask: [.closeWrite, .movedTo])
        let guardTask = watchdog(inotify)
        defer { guardTask.cancel() }

        // Created and still open for writing: IN_CREATE and IN_MODIFY only.
        let open = Glibc.open(folder.path + "/still-open.eml", O_CREAT | O_WRONLY | O_CLOEXEC, 0o600)
        try #require(open >= 0)
        defer { Glibc.close(open) }
        #expect(Glibc.write(open, "partial", 7) == 7)
        // Created read-only and closed: IN_CREATE and IN_CLOSE_NOWRITE only.
        let readOnly = Glibc.open(folder.path + "/read-only.eml", O_CREAT | O_RDONLY | O_CLOEXEC, 0o600)
        try #require(readOnly >= 0)
        Glibc.close(readOnly)
        // Events are queued in order: had either file been reported, it would come before this one.
        try folder.write("sentinel.eml")

        var events = inotify.events().makeAsyncIterator()
        let event = try #require(await events.next())
        #expect(event.name == "sentinel.eml")
        #expect(event.mask.contains(.closeWrite))
    }

    @Test func removeWatchReportsIgnored() async throws {
        let folder = try TemporaryFolder()
        let inotify = try Inotify()
        let watch = try inotify.addWatch(path: folder.path, mask: [.closeWrite])
        let guardTask = watchdog(inotify)
        defer { guardTask.cancel() }

        try inotify.removeWatch(watch)
        var events = inotify.events().makeAsyncIterator()
        let event = try #require(await events.next())
        #expect(event.isWatchGone)
        #expect(event.mask.contains(.ignored))
        #expect(event.watch == watch)
        #expect(event.name == nil)

        // Removing it twice is an error: the watch is gone.
        #expect(throws: Inotify.Error.self) { try inotify.removeWatch(watch) }
    }

    @Test func addingAPathTwiceReturnsTheSameWatch() throws {
        let folder = try TemporaryFolder()
        let inotify = try Inotify()
        let first = try inotify.addWatch(path: folder.path, mask: [.closeWrite])
        let second = try inotify.addWatch(path: folder.path, mask: [.movedTo])
        #expect(first == second)
    }

    @Test func deletingTheWatchedFolderReportsDeleteSelfThenIgnored() async throws {
        let parent = try TemporaryFolder()
        let watched = parent.path + "/watched"
        try FileManager.default.createDirectory(atPath: watched, withIntermediateDirectories: false)
        let inotify = try Inotify()
        let watch = try inotify.addWatch(path: watched, mask: [.deleteSelf])
        let guardTask = watchdog(inotify)
        defer { guardTask.cancel() }

        #expect(rmdir(watched) == 0)
        var events = inotify.events().makeAsyncIterator()
        let deleted = try #require(await events.next())
        #expect(deleted.mask.contains(.deleteSelf))
        #expect(deleted.watch == watch)
        #expect(!deleted.isWatchGone)
        let ignored = try #require(await events.next())
        #expect(ignored.isWatchGone)
        #expect(ignored.watch == watch)
    }

    @Test func watchingAMissingPathThrowsAnErrorNamingThePath() throws {
        let folder = try TemporaryFolder()
        let missing = folder.path + "/does-not-exist"
        let inotify = try Inotify()
        do {
            try inotify.addWatch(path: missing, mask: [.closeWrite])
            Issue.record("adding a watch on a missing path succeeded")
        } catch {
            #expect(error.operation == "inotify_add_watch")
            #expect(error.path == missing)
            #expect(error.errno == ENOENT)
            #expect(error.description.contains(missing))
            #expect(error.description.contains(String(cString: strerror(ENOENT))))
        }
    }

    @Test func onlyDirectoryRefusesAFile() throws {
        let folder = try TemporaryFolder()
        try folder.write("plain")
        let inotify = try Inotify()
        #expect(throws: Inotify.Error.self) {
            try inotify.addWatch(path: folder.path + "/plain", mask: [.closeWrite, .onlyDirectory])
        }
    }

    @Test func closeEndsAPendingLoop() async throws {
        let folder = try TemporaryFolder()
        let inotify = try Inotify()
        try inotify.addWatch(path: folder.path, mask: [.closeWrite])
        let seen = Counter()
        let loop = Task {
            for await _ in inotify.events() { seen.increment() }
            return seen.value
        }
        // Let the loop take one event, so it is waiting in the kernel for the next when we close.
        try folder.write("first.eml")
        let deadline = ContinuousClock.now + .seconds(120)
        while seen.value == 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(seen.value == 1)

        inotify.close()
        let ended = await withTaskGroup(of: Int?.self) { group in
            group.addTask { await loop.value }
            group.addTask {
                try? await Task.sleep(for: .seconds(120))
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        #expect(ended == 1, "the loop ended after close() with the one event it had read")
    }

    @Test func aSequenceStartedAfterCloseEndsAtOnce() async throws {
        let inotify = try Inotify()
        inotify.close()
        var events = inotify.events().makeAsyncIterator()
        #expect(await events.next() == nil)
        #expect(await events.next() == nil, "a finished iterator stays finished")
    }

    @Test func decodeSplitsRecordsWithPaddedNames() {
        func record(wd: Int32, mask: UInt32, cookie: UInt32, name: String?, padTo length: Int) -> [UInt8] {
            var bytes: [UInt8] = []
            withUnsafeBytes(of: wd.littleEndian) { bytes += $0 }
            withUnsafeBytes(of: mask.littleEndian) { bytes += $0 }
            withUnsafeBytes(of: cookie.littleEndian) { bytes += $0 }
            withUnsafeBytes(of: UInt32(length).littleEndian) { bytes += $0 }
            var nameBytes = Array((name ?? "").utf8)
            nameBytes += [UInt8](repeating: 0, count: length - nameBytes.count)
            return bytes + nameBytes
        }
        #expect(MemoryLayout<inotify_event>.size == 16)
        let buffer = record(wd: 3, mask: UInt32(IN_CLOSE_WRITE), cookie: 0, name: "a.eml", padTo: 16)
            + record(wd: 7, mask: UInt32(IN_MOVED_TO) | UInt32(IN_ISDIR), cookie: 42, name: "folder-name", padTo: 32)
            + record(wd: -1, mask: UInt32(IN_Q_OVERFLOW), cookie: 0, name: nil, padTo: 0)
        let events = Inotify.decode(buffer[...])
        #expect(events.count == 3)
        #expect(events.first == Inotify.Event(watch: .init(rawValue: 3), mask: .closeWrite, cookie: 0, name: "a.eml"))
        #expect(events.dropFirst().first == Inotify.Event(watch: .init(rawValue: 7), mask: [.movedTo, .isDirectory], cookie: 42, name: "folder-name"))
        #expect(events.last?.isQueueOverflow == true)
        #expect(events.last?.watch.rawValue == -1)
        #expect(events.last?.name == nil)
    }

    @Test func decodeOfASliceWithANonZeroStartIndex() {
        // readBatch hands decode `buffer[0..<count]`; a slice that does not start at 0 must work too.
        var bytes: [UInt8] = [0xEE, 0xEE]
        withUnsafeBytes(of: Int32(5)) { bytes += $0 }
        withUnsafeBytes(of: UInt32(IN_CLOSE_WRITE)) { bytes += $0 }
        withUnsafeBytes(of: UInt32(0)) { bytes += $0 }
        withUnsafeBytes(of: UInt32(8)) { bytes += $0 }
        bytes += Array("abc".utf8) + [UInt8](repeating: 0, count: 5)
        let events = Inotify.decode(bytes[2...])
        #expect(events == [Inotify.Event(watch: .init(rawValue: 5), mask: .closeWrite, cookie: 0, name: "abc")])
    }

    @Test func decodeIgnoresATruncatedTrailingHeader() {
        var bytes: [UInt8] = []
        withUnsafeBytes(of: Int32(1)) { bytes += $0 }
        withUnsafeBytes(of: UInt32(IN_CLOSE_WRITE)) { bytes += $0 }
        withUnsafeBytes(of: UInt32(0)) { bytes += $0 }
        withUnsafeBytes(of: UInt32(0)) { bytes += $0 }
        bytes += [1, 2, 3]  // fewer bytes than a header
        #expect(Inotify.decode(bytes[...]).count == 1)
    }

    static let queueLimitPath = "/proc/sys/fs/inotify/max_queued_events"

    /// Writable for real (root, and /proc/sys not read-only): writing the current value back changes nothing.
    static let queueLimitWritable: Bool = {
        guard let current = try? String(contentsOfFile: queueLimitPath, encoding: .utf8) else { return false }
        return (try? current.write(toFile: queueLimitPath, atomically: false, encoding: .utf8)) != nil
    }()

    @Test(.enabled(if: queueLimitWritable, "needs a writable \(queueLimitPath) (root)"))
    func aFullKernelQueueReportsOverflow() async throws {
        let folder = try TemporaryFolder()
        let original = try String(contentsOfFile: Self.queueLimitPath, encoding: .utf8)
        // The limit is read when an instance is created: lower it just for this one, then restore it
        // at once, so other inotify users on the machine see the small limit for as short as possible.
        let inotify: Inotify
        do {
            defer { try? original.write(toFile: Self.queueLimitPath, atomically: false, encoding: .utf8) }
            try "16\n".write(toFile: Self.queueLimitPath, atomically: false, encoding: .utf8)
            inotify = try Inotify()
        }
        #expect(try String(contentsOfFile: Self.queueLimitPath, encoding: .utf8) == original)
        try inotify.addWatch(path: folder.path, mask: [.closeWrite])
        let guardTask = watchdog(inotify)
        defer { guardTask.cancel() }

        for index in 0..<100 { try folder.write("file-\(index)") }

        var events = inotify.events().makeAsyncIterator()
        var read: [Inotify.Event] = []
        while read.count < 17, let event = await events.next() {
            read.append(event)
            if event.isQueueOverflow { break }
        }
        #expect(read.contains { $0.isQueueOverflow }, "the kernel queue of 16 overflowed: \(read.count) events read")
        #expect(read.filter { !$0.isQueueOverflow }.count <= 16)
        #expect(read.last?.watch.rawValue == -1)
    }
}

/// A thread-safe counter for events seen by another task.
private final class Counter: Sendable {
    private let count = Mutex(0)
    func increment() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
}
