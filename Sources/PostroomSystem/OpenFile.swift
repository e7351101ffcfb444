#if canImport(Glibc)
import Glibc
#endif

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

    /// Opens (creating it if needed, mode 0640) a file that every write appends to, as one unit per write.
    public static func openForAppending(_ path: String) throws(SystemError) -> OpenFile {
        try open(path, flags: O_WRONLY | O_CREAT | O_APPEND)
    }

    /// Sets the file's permission bits exactly (`fchmod`), regardless of the umask it was created under.
    public func setMode(_ mode: mode_t) throws(SystemError) {
        guard fchmod(descriptor, mode) == 0 else { throw SystemError(operation: "fchmod", path: path, errno: errno) }
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
    /// size reads it with one `read(2)` instead of two (the second only to see 0). The buffer is
    /// then `limit` bytes from the start, so pass a limit near the file's size.
    public func read(upTo limit: Int, regularFile: Bool = false) throws(SystemError) -> [UInt8] {
        if regularFile { return try readRegularFile(upTo: limit) }
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

    private func readRegularFile(upTo limit: Int) throws(SystemError) -> [UInt8] {
        guard limit > 0 else { return [] }
        var result = [UInt8](repeating: 0, count: limit)
        var filled = 0
        while filled < limit {
            let want = limit - filled
            let count = result.withUnsafeMutableBytes { buffer in
                retrying { Glibc.read(descriptor, buffer.baseAddress! + filled, want) }
            }
            if count < 0 { throw SystemError(operation: "read", path: path, errno: errno) }
            filled += count
            if count < want { break }
        }
        result.removeSubrange(filled...)
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
        if FileSystem.skipsSyncForTests { return }
        guard retrying({ fsync(descriptor) }) == 0 else { throw SystemError(operation: "fsync", path: path, errno: errno) }
    }

    /// `syncfs(2)`: makes durable everything written to the file system holding this file, by any
    /// process, before the call: file contents, inodes and directory entries. Since Linux 5.8 it
    /// reports a write-back error of any file there since this descriptor was opened (or since its
    /// last call); before that it may not (see ``FileSystem/filesystemSyncIsDurable(at:)``).
    public func syncFilesystem() throws(SystemError) {
        if FileSystem.skipsSyncForTests { return }
        guard let syncfs = LibC.syncfs else { throw SystemError(operation: "syncfs", path: path, errno: ENOSYS) }
        guard retrying({ syncfs(descriptor) }) == 0 else { throw SystemError(operation: "syncfs", path: path, errno: errno) }
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
