import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A failed system call, with the operation and path it was about.
///
/// This is the one error type for file-system work; callers ask it questions
/// (``isNoSpace``, ``isNotFound``) instead of comparing errno values.
public struct SystemError: Error, Sendable, Equatable, CustomStringConvertible {
    public let operation: String
    public let path: String
    public let errno: Int32

    public init(operation: String, path: String, errno: Int32) {
        self.operation = operation
        self.path = path
        self.errno = errno
    }

    public var description: String { "\(operation) \(path): \(String(cString: strerror(errno)))" }
    public var isNoSpace: Bool { errno == ENOSPC || errno == EDQUOT }
    public var isNotFound: Bool { errno == ENOENT }
    public var isPermission: Bool { errno == EACCES || errno == EPERM || errno == EROFS }
    /// Errors worth retrying later (space, permissions, missing directories, I/O), as opposed to bugs.
    public var isTransient: Bool { isNoSpace || isPermission || isNotFound || errno == EIO || errno == EMFILE || errno == ENFILE || errno == EAGAIN || errno == EBUSY }
}

/// What `lstat`/`fstat` says about a file, reduced to what Postroom decides on.
public struct FileStatus: Sendable, Equatable {
    public enum Kind: String, Sendable { case regular, directory, symbolicLink, fifo, socket, characterDevice, blockDevice, unknown }
    public let kind: Kind
    public let size: Int64
    public let linkCount: Int
    public let device: UInt64
    public let inode: UInt64
    public let modified: Date

    init(_ raw: stat) {
        switch raw.st_mode & S_IFMT {
        case S_IFREG: kind = .regular
        case S_IFDIR: kind = .directory
        case S_IFLNK: kind = .symbolicLink
        case S_IFIFO: kind = .fifo
        case S_IFSOCK: kind = .socket
        case S_IFCHR: kind = .characterDevice
        case S_IFBLK: kind = .blockDevice
        default: kind = .unknown
        }
        size = Int64(raw.st_size)
        linkCount = Int(raw.st_nlink)
        device = UInt64(raw.st_dev)
        inode = UInt64(raw.st_ino)
        modified = Date(timeIntervalSince1970: Double(raw.st_mtim.tv_sec) + Double(raw.st_mtim.tv_nsec) / 1e9)
    }
}

/// An open file descriptor that is closed exactly once, when the value is released.
///
/// Instances are not shared between tasks; they live inside one function call.
public final class OpenFile {
    public let descriptor: Int32
    public let path: String

    init(descriptor: Int32, path: String) {
        self.descriptor = descriptor
        self.path = path
    }

    deinit { Glibc.close(descriptor) }

    /// Opens `path` with the given flags; `O_CLOEXEC` is always added.
    public static func open(_ path: String, flags: Int32, mode: mode_t = 0o640) throws(SystemError) -> OpenFile {
        let fd = retrying { Glibc.open(path, flags | O_CLOEXEC, mode) }
        guard fd >= 0 else { throw SystemError(operation: "open", path: path, errno: errno) }
        return OpenFile(descriptor: fd, path: path)
    }

    public func status() throws(SystemError) -> FileStatus {
        var raw = stat()
        guard fstat(descriptor, &raw) == 0 else { throw SystemError(operation: "fstat", path: path, errno: errno) }
        return FileStatus(raw)
    }

    /// Reads up to `limit` bytes from the current offset.
    ///
    /// `regularFile: true` stops at the first short read: for a regular file the kernel returns
    /// fewer bytes than asked only at the end of the file, so asking for one byte more than its
    /// size reads it with one `read(2)` instead of two (the second only to see 0).
    public func read(upTo limit: Int, regularFile: Bool = false) throws(SystemError) -> [UInt8] {
        if regularFile, limit <= 1 << 20 {
            var failure: Int32 = 0
            let bytes = [UInt8](unsafeUninitializedCapacity: max(limit, 1)) { buffer, initialized in
                initialized = 0
                while initialized < limit {
                    let count = retrying { Glibc.read(descriptor, buffer.baseAddress! + initialized, limit - initialized) }
                    if count < 0 { failure = errno; return }
                    initialized += count
                    if count == 0 || initialized < limit { return }
                }
            }
            if failure != 0 { throw SystemError(operation: "read", path: path, errno: failure) }
            return bytes
        }
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: min(max(limit, 1), 1 << 20))
        while result.count < limit {
            let want = min(chunk.count, limit - result.count)
            let count = chunk.withUnsafeMutableBytes { buffer in retrying { Glibc.read(descriptor, buffer.baseAddress, want) } }
            if count < 0 { throw SystemError(operation: "read", path: path, errno: errno) }
            if count == 0 { break }
            result.append(contentsOf: chunk[0..<count])
        }
        return result
    }

    /// Writes every byte, retrying short writes and interruptions.
    public func writeAll(_ bytes: some Collection<UInt8>) throws(SystemError) {
        let array = Array(bytes)
        var offset = 0
        while offset < array.count {
            let count = array.withUnsafeBytes { buffer in
                retrying { Glibc.write(descriptor, buffer.baseAddress! + offset, array.count - offset) }
            }
            if count < 0 { throw SystemError(operation: "write", path: path, errno: errno) }
            offset += count
        }
    }

    public func sync() throws(SystemError) {
        guard retrying({ fsync(descriptor) }) == 0 else { throw SystemError(operation: "fsync", path: path, errno: errno) }
    }

    /// True when nobody has this file open for writing (a read lease can be taken).
    ///
    /// A lease is refused with `EAGAIN` while any process holds the file open for writing,
    /// which tells a file still being written from a finished one. Where leases are not
    /// permitted (not the owner, no CAP_LEASE) the answer is `true`: the file's
    /// `IN_CLOSE_WRITE` event is then the only completeness signal.
    public func isClosedByWriters() -> Bool {
        // F_SETLEASE is F_LINUX_SPECIFIC_BASE + 0 in <fcntl.h>; Glibc's module map hides it behind _GNU_SOURCE.
        let setLease: Int32 = 1024
        if fcntl(descriptor, setLease, Int32(F_RDLCK)) == 0 {
            _ = fcntl(descriptor, setLease, Int32(F_UNLCK))
            return true
        }
        return errno != EAGAIN
    }
}

/// Retries a system call while it fails with `EINTR`.
@inline(__always)
func retrying<T: BinaryInteger>(_ call: () -> T) -> T {
    while true {
        let result = call()
        if result == -1 && errno == EINTR { continue }
        return result
    }
}

/// The file-system operations Postroom needs, each a thin wrapper over one system call.
///
/// Glibc stays inside this file and ``OpenFile``; the rest of the code speaks in paths,
/// bytes and ``SystemError``s.
public enum FileSystem {
    public static func status(of path: String, followLinks: Bool = false) -> FileStatus? {
        var raw = stat()
        let result = followLinks ? stat(path, &raw) : lstat(path, &raw)
        return result == 0 ? FileStatus(raw) : nil
    }

    public static func exists(_ path: String) -> Bool { status(of: path) != nil }

    /// Creates a directory and any missing parents; an existing directory is fine.
    public static func createDirectory(_ path: String, mode: mode_t = 0o750) throws(SystemError) {
        if status(of: path, followLinks: true)?.kind == .directory { return }
        let parent = (path as NSString).deletingLastPathComponent
        if !parent.isEmpty, parent != path, parent != "/" { try createDirectory(parent, mode: mode) }
        if mkdir(path, mode) != 0, errno != EEXIST {
            throw SystemError(operation: "mkdir", path: path, errno: errno)
        }
    }

    /// Names in a directory, without `.` and `..`.
    public static func contents(of path: String) throws(SystemError) -> [String] {
        guard let directory = opendir(path) else { throw SystemError(operation: "opendir", path: path, errno: errno) }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != ".", name != ".." { names.append(name) }
        }
        return names
    }

    public static func rename(_ source: String, to destination: String) throws(SystemError) {
        guard Glibc.rename(source, destination) == 0 else {
            throw SystemError(operation: "rename", path: "\(source) -> \(destination)", errno: errno)
        }
    }

    public static func removeFile(_ path: String) throws(SystemError) {
        guard unlink(path) == 0 else { throw SystemError(operation: "unlink", path: path, errno: errno) }
    }

    /// Removes a file if it is there; a missing file is not an error.
    public static func removeFileIfPresent(_ path: String) throws(SystemError) {
        if unlink(path) != 0, errno != ENOENT { throw SystemError(operation: "unlink", path: path, errno: errno) }
    }

    /// Makes the directory's entries (creations, renames, removals) durable.
    public static func syncDirectory(_ path: String) throws(SystemError) {
        let directory = try OpenFile.open(path, flags: O_RDONLY | O_DIRECTORY)
        try directory.sync()
    }

    /// Writes `bytes` to a hidden temporary name beside `path`, fsyncs it and renames it into place.
    ///
    /// The directory entry is not synced here; callers batch that with ``DirectorySync``.
    /// A reader never sees a partial file under `path`.
    public static func writeAtomically(_ bytes: some Collection<UInt8>, to path: String, sync: Bool = true, mode: mode_t = 0o640) throws(SystemError) {
        let directory = (path as NSString).deletingLastPathComponent
        let name = (path as NSString).lastPathComponent
        let temporary = (directory.isEmpty ? "" : directory + "/") + ".\(name).\(cachedProcessID).tmp"
        do {
            let file = try OpenFile.open(temporary, flags: O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, mode: mode)
            try file.writeAll(bytes)
            if sync { try file.sync() }
            try rename(temporary, to: path)
        } catch {
            try? removeFileIfPresent(temporary)
            throw error
        }
    }

    public static func readFile(_ path: String, limit: Int = Int.max) throws(SystemError) -> [UInt8] {
        let file = try OpenFile.open(path, flags: O_RDONLY | O_NOFOLLOW)
        return try file.read(upTo: limit)
    }

    /// The total size of regular files directly inside `path` and their count.
    public static func usage(of path: String) throws(SystemError) -> (bytes: Int64, files: Int) {
        var bytes: Int64 = 0
        var files = 0
        for name in try contents(of: path) {
            if let status = status(of: path + "/" + name), status.kind == .regular {
                bytes += status.size
                files += 1
            }
        }
        return (bytes, files)
    }

    /// True when both paths are on the same filesystem (so `rename` between them is atomic).
    public static func sameFilesystem(_ first: String, _ second: String) -> Bool {
        guard let a = status(of: first, followLinks: true), let b = status(of: second, followLinks: true) else { return false }
        return a.device == b.device
    }

    /// Bytes an unprivileged writer can still use on the filesystem holding `path`.
    public static func availableBytes(at path: String) -> Int64? {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else { return nil }
        return Int64(info.f_bavail) * Int64(info.f_frsize)
    }

    public static func hostname() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return "localhost" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public static var processID: Int32 { getpid() }
    /// Read once: temporary names need it for every write, and Postroom never forks.
    private static let cachedProcessID = getpid()

    /// SIGKILL to this process: no clean-up of any kind (fault injection).
    public static func killSelf() { kill(getpid(), SIGKILL) }
}

/// An exclusive `fcntl` lock on a file, held for the life of the value.
///
/// Used to refuse a second `postroom run` on the same spool: the kernel drops the lock
/// when the process dies, so a crash never leaves a stale lock behind.
public final class ExclusiveLock: Sendable {
    private let descriptor: Int32
    public let path: String

    public enum Failure: Error, Sendable, CustomStringConvertible {
        case held(path: String, pid: Int32?)
        case system(SystemError)

        public var description: String {
            switch self {
            case .held(let path, let pid):
                let who = pid.map { "process \($0)" } ?? "another process"
                return "the spool is in use by \(who) (lock \(path)); stop it first or use another --spool"
            case .system(let error): return "cannot lock the spool: \(error)"
            }
        }
    }

    public init(path: String) throws(Failure) {
        let fd = Glibc.open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw .system(SystemError(operation: "open", path: path, errno: errno)) }
        var lock = flock()
        lock.l_type = Int16(F_WRLCK)
        lock.l_whence = Int16(SEEK_SET)
        if fcntl(fd, F_SETLK, &lock) != 0 {
            var probe = flock()
            probe.l_type = Int16(F_WRLCK)
            probe.l_whence = Int16(SEEK_SET)
            let holder = fcntl(fd, F_GETLK, &probe) == 0 && probe.l_type != Int16(F_UNLCK) ? probe.l_pid : nil
            Glibc.close(fd)
            throw .held(path: path, pid: holder)
        }
        let text = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = text.withUnsafeBytes { Glibc.pwrite(fd, $0.baseAddress, $0.count, 0) }
        descriptor = fd
        self.path = path
    }

    /// True when another process holds the lock on `path` now.
    ///
    /// Only for processes that do not hold the lock themselves: `fcntl` locks belong to the
    /// process, so closing any descriptor of the file here would drop a lock this process holds.
    public static func isHeld(path: String) -> Bool {
        let fd = Glibc.open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { Glibc.close(fd) }
        var probe = flock()
        probe.l_type = Int16(F_WRLCK)
        probe.l_whence = Int16(SEEK_SET)
        return fcntl(fd, F_GETLK, &probe) == 0 && probe.l_type != Int16(F_UNLCK)
    }

    deinit { Glibc.close(descriptor) }
}

/// A file opened with `O_APPEND` that many threads may write whole lines to.
///
/// Sendable because its only state is an immutable descriptor, and the kernel makes each
/// `O_APPEND` write land at the end of the file as one unit.
public final class AppendOnlyFile: Sendable {
    private let descriptor: Int32
    public let path: String

    public init(path: String) throws(SystemError) {
        let fd = retrying { Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640) }
        guard fd >= 0 else { throw SystemError(operation: "open", path: path, errno: errno) }
        descriptor = fd
        self.path = path
    }

    deinit { Glibc.close(descriptor) }

    public func append(_ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { buffer in retrying { Glibc.write(descriptor, buffer.baseAddress, buffer.count) } }
    }
}
