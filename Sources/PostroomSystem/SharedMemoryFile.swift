#if canImport(Glibc)
import Glibc
#endif

/// A small file mapped into memory with `MAP_SHARED`, for state that must outlive the process
/// but is written too often for a system call each time.
///
/// A store into the mapping is a store into the kernel's page cache: it is in the file the
/// moment it is made, so it survives `kill -9` or a crash of the process at any instant (the
/// kernel writes it back later). Like any write that was not fsynced, it does not survive a
/// power cut. The file's blocks are written (with zeros) when it is made, so a later store never
/// has to allocate one: on a full disk that would be a `SIGBUS`, not an error.
///
/// Not `Sendable`: its owner serialises every access (``PoisonJournal`` keeps it inside a `Mutex`).
public final class SharedMemoryFile {
    public let path: String
    /// Size of the file and of the mapping, in bytes.
    public let count: Int
    private let base: UnsafeMutableRawPointer

    /// Makes `path` a file of `count` zero bytes (replacing what was there) and maps it.
    public init(creating path: String, count: Int) throws(SystemError) {
        precondition(count > 0)
        let fd = retrying { Glibc.open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o640) }
        guard fd >= 0 else { throw SystemError(operation: "open", path: path, errno: errno) }
        defer { Glibc.close(fd) }
        let zeros = [UInt8](repeating: 0, count: count)
        var written = 0
        while written < count {
            let result = zeros.withUnsafeBytes { buffer in
                retrying { Glibc.write(fd, buffer.baseAddress! + written, count - written) }
            }
            guard result > 0 else { throw SystemError(operation: "write", path: path, errno: result < 0 ? errno : ENOSPC) }
            written += result
        }
        guard let mapped = mmap(nil, count, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), mapped != MAP_FAILED else {
            throw SystemError(operation: "mmap", path: path, errno: errno)
        }
        self.path = path
        self.count = count
        base = mapped
    }

    deinit { munmap(base, count) }

    /// The byte at `offset`.
    public subscript(offset: Int) -> UInt8 {
        get {
            precondition(offset >= 0 && offset < count)
            return base.load(fromByteOffset: offset, as: UInt8.self)
        }
        set {
            precondition(offset >= 0 && offset < count)
            base.storeBytes(of: newValue, toByteOffset: offset, as: UInt8.self)
        }
    }

    /// Copies `bytes` into the file at `offset`.
    public func store(_ bytes: UnsafeRawBufferPointer, at offset: Int) {
        precondition(offset >= 0 && offset + bytes.count <= count)
        guard let source = bytes.baseAddress else { return }
        (base + offset).copyMemory(from: source, byteCount: bytes.count)
    }

    /// Stores `value` at `offset` in little-endian order.
    public func store(_ value: UInt32, at offset: Int) {
        precondition(offset >= 0 && offset + 4 <= count)
        base.storeBytes(of: value.littleEndian, toByteOffset: offset, as: UInt32.self)
    }
}
