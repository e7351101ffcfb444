#if canImport(Glibc)
import Glibc
#endif

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

