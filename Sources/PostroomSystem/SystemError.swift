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

    /// The system's own words for the error (`strerror`).
    public var reason: String { String(cString: strerror(errno)) }
    /// Over a disk or directory quota (a connector's own quota is reported the same way).
    public var isOverQuota: Bool { errno == EDQUOT }
    /// `O_NOFOLLOW` met a symbolic link.
    public var isSymbolicLink: Bool { errno == ELOOP }

    /// A missing file or directory, found by a check rather than a system call.
    public static func notFound(operation: String, path: String) -> SystemError {
        SystemError(operation: operation, path: path, errno: ENOENT)
    }

    /// A quota that is full; ``isOverQuota`` and ``isTransient`` are true for it.
    public static func overQuota(operation: String, path: String) -> SystemError {
        SystemError(operation: operation, path: path, errno: EDQUOT)
    }

    /// A request that cannot be carried out as asked (a missing collaborator, a bad value).
    public static func invalid(operation: String, path: String) -> SystemError {
        SystemError(operation: operation, path: path, errno: EINVAL)
    }

    /// The error for a call on a file this process has already closed.
    public static func closedFile(operation: String, path: String) -> SystemError {
        SystemError(operation: operation, path: path, errno: EBADF)
    }

    public var description: String { "\(operation) \(path): \(reason)" }
    public var isNoSpace: Bool { errno == ENOSPC || errno == EDQUOT }
    public var isNotFound: Bool { errno == ENOENT }
    public var isPermission: Bool { errno == EACCES || errno == EPERM || errno == EROFS }
    /// Errors worth retrying later (space, permissions, missing directories, I/O), as opposed to bugs.
    /// Out of descriptors or memory: back off and try again, rather than spin.
    public var isOutOfResources: Bool { errno == EMFILE || errno == ENFILE || errno == ENOMEM || errno == ENOBUFS }
    public var isTransient: Bool { isNoSpace || isPermission || isNotFound || errno == EIO || errno == EMFILE || errno == ENFILE || errno == EAGAIN || errno == EBUSY }
}

/// Retries a system call while it fails with `EINTR`.
@inline(__always)
public func retrying<T: BinaryInteger>(_ call: () -> T) -> T {
    while true {
        let result = call()
        if result == -1 && errno == EINTR { continue }
        return result
    }
}

