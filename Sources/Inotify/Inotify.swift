import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A typed wrapper over one Linux inotify instance.
///
/// The instance is created with `IN_CLOEXEC | IN_NONBLOCK`. Events are read through
/// ``events()``, an `AsyncSequence` that reads from the kernel only when the consumer
/// asks for the next event: a slow consumer leaves events in the kernel queue, and when
/// that queue overflows the kernel reports ``Event/Kind/queueOverflow`` instead of the
/// process buffering without bound. The blocking wait for readability happens on a
/// dedicated thread, never on Swift's cooperative thread pool.
///
/// This module knows nothing about mail.
public final class Inotify: Sendable {
    /// A watch descriptor returned by ``addWatch(path:mask:)``.
    public struct Watch: Hashable, Sendable {
        public let rawValue: Int32
        public init(rawValue: Int32) { self.rawValue = rawValue }
    }

    /// The events to watch for and the flags reported with each event.
    public struct Mask: OptionSet, Hashable, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }

        /// A file opened for writing was closed (`IN_CLOSE_WRITE`).
        public static let closeWrite = Mask(rawValue: UInt32(IN_CLOSE_WRITE))
        /// A file was moved into the watched directory (`IN_MOVED_TO`).
        public static let movedTo = Mask(rawValue: UInt32(IN_MOVED_TO))
        /// A file was moved out of the watched directory (`IN_MOVED_FROM`).
        public static let movedFrom = Mask(rawValue: UInt32(IN_MOVED_FROM))
        /// A file was created (`IN_CREATE`); usually still empty, never a signal to read it.
        public static let create = Mask(rawValue: UInt32(IN_CREATE))
        /// A file was deleted (`IN_DELETE`).
        public static let delete = Mask(rawValue: UInt32(IN_DELETE))
        /// The watched directory itself was deleted (`IN_DELETE_SELF`).
        public static let deleteSelf = Mask(rawValue: UInt32(IN_DELETE_SELF))
        /// The watched directory itself was moved (`IN_MOVE_SELF`).
        public static let moveSelf = Mask(rawValue: UInt32(IN_MOVE_SELF))
        /// Only watch the path if it is a directory (`IN_ONLYDIR`).
        public static let onlyDirectory = Mask(rawValue: UInt32(IN_ONLYDIR))
        /// Do not follow a symbolic link at the path (`IN_DONT_UNLINK` is not this; `IN_DONT_FOLLOW`).
        public static let dontFollow = Mask(rawValue: UInt32(IN_DONT_FOLLOW))
        /// The subject of the event is a directory (`IN_ISDIR`, reported only).
        public static let isDirectory = Mask(rawValue: UInt32(IN_ISDIR))
        /// The kernel queue overflowed and events were lost (`IN_Q_OVERFLOW`, reported only).
        public static let queueOverflow = Mask(rawValue: UInt32(IN_Q_OVERFLOW))
        /// The watch was removed, explicitly or because its target went away (`IN_IGNORED`, reported only).
        public static let ignored = Mask(rawValue: UInt32(IN_IGNORED))
        /// The filesystem holding the watched object was unmounted (`IN_UNMOUNT`, reported only).
        public static let unmount = Mask(rawValue: UInt32(IN_UNMOUNT))
    }

    /// One event read from the instance.
    public struct Event: Sendable, Hashable {
        /// The watch the event belongs to; `-1` for a queue overflow.
        public let watch: Watch
        /// The raw event bits.
        public let mask: Mask
        /// Pairs `movedFrom` with `movedTo` for one rename.
        public let cookie: UInt32
        /// The name of the file inside the watched directory, when the event is about one,
        /// decoded as UTF-8 (invalid bytes become U+FFFD: use `nameBytes` to reach the file).
        public let name: String?
        /// The name exactly as the kernel gave it: Linux file names are bytes, not UTF-8.
        public let nameBytes: [UInt8]?

        public init(watch: Watch, mask: Mask, cookie: UInt32, name: String?, nameBytes: [UInt8]? = nil) {
            self.watch = watch
            self.mask = mask
            self.cookie = cookie
            self.name = name
            self.nameBytes = nameBytes ?? name.map { Array($0.utf8) }
        }

        /// True when the kernel dropped events: the consumer must rescan what it watches.
        public var isQueueOverflow: Bool { mask.contains(.queueOverflow) }
        /// True when the watch no longer exists and must be added again to keep watching.
        public var isWatchGone: Bool { mask.contains(.ignored) }
    }

    /// An inotify system call failed.
    public struct Error: Swift.Error, Sendable, Equatable, CustomStringConvertible {
        public let operation: String
        public let path: String?
        public let errno: Int32

        public var description: String {
            let reason = String(cString: strerror(errno))
            var hint = ""
            if operation == "inotify_add_watch", errno == ENOSPC {
                hint = " (raise fs.inotify.max_user_watches)"
            } else if operation == "inotify_init1", errno == EMFILE {
                hint = " (raise fs.inotify.max_user_instances)"
            }
            if let path { return "\(operation) \(path): \(reason)\(hint)" }
            return "\(operation): \(reason)\(hint)"
        }
    }

    private let descriptor: Int32
    /// Waits for the kernel on a thread of its own, reused for every batch.
    let reader = BlockingThread()
    /// Writing a byte here wakes a reader blocked in `poll` so ``close()`` never waits on the kernel.
    private let wakeRead: Int32
    private let wakeWrite: Int32

    /// Creates an inotify instance with `IN_CLOEXEC | IN_NONBLOCK`.
    public init() throws(Inotify.Error) {
        let fd = inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK))
        guard fd >= 0 else { throw Error(operation: "inotify_init1", path: nil, errno: errno) }
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else {
            let code = errno
            Glibc.close(fd)
            throw Error(operation: "pipe", path: nil, errno: code)
        }
        for end in fds {
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
            _ = fcntl(end, F_SETFL, O_NONBLOCK)
        }
        descriptor = fd
        wakeRead = fds[0]
        wakeWrite = fds[1]
    }

    deinit {
        reader.stop()
        Glibc.close(descriptor)
        Glibc.close(wakeRead)
        Glibc.close(wakeWrite)
    }

    /// Watches `path` for the events in `mask`; adding a path twice returns the same watch.
    @discardableResult
    public func addWatch(path: String, mask: Mask) throws(Inotify.Error) -> Watch {
        let wd = inotify_add_watch(descriptor, path, mask.rawValue)
        guard wd >= 0 else { throw Error(operation: "inotify_add_watch", path: path, errno: errno) }
        return Watch(rawValue: wd)
    }

    /// Stops watching; the kernel then reports an `ignored` event for the watch.
    public func removeWatch(_ watch: Watch) throws(Inotify.Error) {
        guard inotify_rm_watch(descriptor, watch.rawValue) == 0 else {
            throw Error(operation: "inotify_rm_watch", path: nil, errno: errno)
        }
    }

    /// Ends every ``events()`` sequence: a pending `next()` returns nil promptly.
    public func close() {
        var byte: UInt8 = 1
        _ = Glibc.write(wakeWrite, &byte, 1)
    }

    /// The events of this instance, read on demand. Ends after ``close()``.
    public func events() -> Events { Events(inotify: self) }

    /// Reads whatever events are queued now, or waits until some are, or returns nil once closed.
    func readBatch() -> [Event]? {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
            if count > 0 {
                return Inotify.decode(buffer[0..<count])
            }
            let code = errno
            if count < 0, code == EINTR { continue }
            if count < 0, code != EAGAIN, code != EWOULDBLOCK { return nil }
            var fds = [pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)]
            let ready = poll(&fds, 2, -1)
            if ready < 0, errno == EINTR { continue }
            if ready < 0 || fds[1].revents != 0 { return nil }
        }
    }

    /// Splits a buffer of `struct inotify_event` records.
    static func decode(_ bytes: ArraySlice<UInt8>) -> [Event] {
        var events: [Event] = []
        let headerSize = MemoryLayout<inotify_event>.size
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset + headerSize <= raw.count {
                let wd = raw.loadUnaligned(fromByteOffset: offset, as: Int32.self)
                let mask = raw.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)
                let cookie = raw.loadUnaligned(fromByteOffset: offset + 8, as: UInt32.self)
                let length = Int(raw.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
                var name: String?
                var exactName: [UInt8]?
                if length > 0, offset + headerSize + length <= raw.count {
                    let nameBytes = raw[(offset + headerSize)..<(offset + headerSize + length)]
                    let trimmed = Array(nameBytes.prefix { $0 != 0 })
                    name = String(decoding: trimmed, as: UTF8.self)
                    exactName = trimmed
                }
                events.append(Event(watch: Watch(rawValue: wd), mask: Mask(rawValue: mask), cookie: cookie, name: name, nameBytes: exactName))
                offset += headerSize + length
            }
        }
        return events
    }

    /// The events of an ``Inotify`` instance as an `AsyncSequence`.
    public struct Events: AsyncSequence, Sendable {
        public typealias Element = Event
        let inotify: Inotify

        public func makeAsyncIterator() -> Iterator { Iterator(inotify: inotify) }

        /// Reads a batch from the kernel when the previous one is used up.
        public struct Iterator: AsyncIteratorProtocol {
            let inotify: Inotify
            var pending: [Event] = []
            var index = 0
            var finished = false

            public mutating func next() async -> Event? {
                while index >= pending.count {
                    if finished { return nil }
                    let instance = inotify
                    let batch = await instance.reader.run { instance.readBatch() }
                    guard let batch else { finished = true; return nil }
                    pending = batch
                    index = 0
                }
                defer { index += 1 }
                return pending[index]
            }
        }
    }
}

/// One long-lived thread of its own that runs blocking calls (a `poll` on the inotify descriptor),
/// keeping them off Swift's cooperative pool and off Dispatch's shared worker threads (a reader
/// may block for hours), without creating a thread per call. It ends when ``stop()`` is called.
final class BlockingThread: Sendable {
    /// The jobs and their signal, shared with the thread (which must not keep the owner alive).
    private final class Jobs: Sendable {
        let list = Mutex<[(@Sendable () -> Void)?]>([])
        let ready = DispatchSemaphore(value: 0)

        func add(_ job: (@Sendable () -> Void)?) {
            list.withLock { $0.append(job) }
            ready.signal()
        }

        /// The next job; nil when told to stop.
        func next() -> (@Sendable () -> Void)? {
            while true {
                ready.wait()
                let taken: (@Sendable () -> Void)?? = list.withLock { $0.isEmpty ? .none : .some($0.removeFirst()) }
                if case .some(let job) = taken { return job }
            }
        }
    }

    private let jobs = Jobs()

    init() {
        let jobs = self.jobs
        let thread = Thread {
            while let job = jobs.next() { job() }
        }
        thread.name = "inotify-reader"
        thread.start()
    }

    func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            jobs.add { continuation.resume(returning: body()) }
        }
    }

    /// Lets the thread finish once the jobs before this call have run.
    func stop() { jobs.add(nil) }
}
