import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A failed network operation, with the peer it was about.
///
/// Callers ask it what happened (``kind``) rather than comparing errno values; its
/// description is one line fit for a deferral reason (`connect to 127.0.0.1:25: Connection refused`).
public struct NetworkError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// A system call failed with this errno.
        case system(Int32)
        /// The deadline passed before the operation finished.
        case timedOut
        /// The peer closed the connection.
        case closed
        /// The host name did not resolve.
        case unresolved(String)
    }

    public let operation: String
    public let peer: String
    public let kind: Kind

    public init(operation: String, peer: String, kind: Kind) {
        self.operation = operation
        self.peer = peer
        self.kind = kind
    }

    public var description: String {
        switch kind {
        case .system(let number): return "\(operation) \(peer): \(String(cString: strerror(number)))"
        case .timedOut: return "\(operation) \(peer): timed out"
        case .closed: return "\(operation) \(peer): connection closed by the peer"
        case .unresolved(let detail): return "\(operation) \(peer): host not found (\(detail))"
        }
    }
}

/// One TCP connection with deadlines on every operation.
///
/// The socket is non-blocking and every wait is a `poll` with the time left, so a peer that
/// stops answering costs at most the timeout the caller gave, never a hung thread. Writes use
/// `MSG_NOSIGNAL`: a peer that went away is an error, not a SIGPIPE.
///
/// Not shared between threads at the same time: a connection belongs to one SMTP session,
/// and a session to one delivery at a time (handed over through a lock, see its owner).
public final class TCPConnection: @unchecked Sendable {
    // @unchecked: the descriptor is immutable; `closed` is only touched by the one thread
    // that owns the connection at a time (ownership passes through a mutex in the owner).
    private let descriptor: Int32
    /// `host:port` as the caller named it, for error messages.
    public let peer: String
    private var closed = false

    private init(descriptor: Int32, peer: String) {
        self.descriptor = descriptor
        self.peer = peer
    }

    deinit { close() }

    /// Connects to `host:port` (a name or a literal IPv4/IPv6 address), trying each address
    /// the name resolves to until one answers, within `timeout` seconds per address.
    public static func connect(host: String, port: UInt16, timeout: Double) throws(NetworkError) -> TCPConnection {
        let peer = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0, let first = list else {
            throw NetworkError(operation: "resolve", peer: peer, kind: .unresolved(String(cString: gai_strerror(status))))
        }
        defer { freeaddrinfo(first) }
        var lastError = NetworkError(operation: "connect to", peer: peer, kind: .system(EHOSTUNREACH))
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let info = cursor {
            cursor = info.pointee.ai_next
            let fd = socket(info.pointee.ai_family, info.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), info.pointee.ai_protocol)
            guard fd >= 0 else {
                lastError = NetworkError(operation: "socket for", peer: peer, kind: .system(errno))
                continue
            }
            let connection = TCPConnection(descriptor: fd, peer: peer)
            if Glibc.connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 {
                connection.disableNagle()
                return connection
            }
            guard errno == EINPROGRESS else {
                lastError = NetworkError(operation: "connect to", peer: peer, kind: .system(errno))
                continue
            }
            do throws(NetworkError) {
                try connection.wait(for: Int16(POLLOUT), deadline: Deadline(seconds: timeout), operation: "connect to")
            } catch {
                lastError = error
                continue
            }
            var failure: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &failure, &length)
            if failure != 0 {
                lastError = NetworkError(operation: "connect to", peer: peer, kind: .system(failure))
                continue
            }
            connection.disableNagle()
            return connection
        }
        throw lastError
    }

    /// Wraps an accepted socket (see ``TCPListener``).
    fileprivate static func adopt(_ fd: Int32, peer: String) -> TCPConnection {
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        let connection = TCPConnection(descriptor: fd, peer: peer)
        connection.disableNagle()
        return connection
    }

    /// Commands and replies are small and latency-bound: send them at once.
    private func disableNagle() {
        var one: Int32 = 1
        setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Writes every byte. `timeout` bounds each wait for the peer to take more (RFC 5321's
    /// "data block" timeout: a slow but moving transfer of a large message goes on; a stalled one stops).
    public func write(_ bytes: [UInt8], timeout: Double) throws(NetworkError) {
        var deadline = Deadline(seconds: timeout)
        var offset = 0
        while offset < bytes.count {
            let count = bytes.withUnsafeBytes { buffer in
                send(descriptor, buffer.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
            }
            if count >= 0 {
                offset += count
                deadline = Deadline(seconds: timeout)
                continue
            }
            switch errno {
            case EINTR: continue
            case EAGAIN: try wait(for: Int16(POLLOUT), deadline: deadline, operation: "write to")
            case EPIPE, ECONNRESET: throw NetworkError(operation: "write to", peer: peer, kind: .closed)
            case let number: throw NetworkError(operation: "write to", peer: peer, kind: .system(number))
            }
        }
    }

    /// Reads what is available (at most `limit` bytes), waiting up to `timeout` seconds for
    /// the first byte. An empty result never happens: a closed connection throws `.closed`.
    public func read(limit: Int = 65536, timeout: Double) throws(NetworkError) -> [UInt8] {
        let deadline = Deadline(seconds: timeout)
        var buffer = [UInt8](repeating: 0, count: limit)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, limit, 0) }
            if count > 0 { return Array(buffer[0..<count]) }
            if count == 0 { throw NetworkError(operation: "read from", peer: peer, kind: .closed) }
            switch errno {
            case EINTR: continue
            case EAGAIN: try wait(for: Int16(POLLIN), deadline: deadline, operation: "read from")
            case ECONNRESET: throw NetworkError(operation: "read from", peer: peer, kind: .closed)
            case let number: throw NetworkError(operation: "read from", peer: peer, kind: .system(number))
            }
        }
    }

    /// True when the peer has closed its side or sent something unasked (checked without
    /// waiting): an idle SMTP connection in that state cannot be reused.
    public var hasPendingInputOrClosed: Bool {
        var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        return poll(&entry, 1, 0) != 0
    }

    /// Closes the socket (once; later calls do nothing).
    public func close() {
        guard !closed else { return }
        closed = true
        Glibc.close(descriptor)
    }

    private func wait(for events: Int16, deadline: Deadline, operation: String) throws(NetworkError) {
        while true {
            let remaining = deadline.remainingMilliseconds
            guard remaining > 0 else { throw NetworkError(operation: operation, peer: peer, kind: .timedOut) }
            var entry = pollfd(fd: descriptor, events: events, revents: 0)
            let ready = poll(&entry, 1, remaining)
            if ready > 0 { return }
            if ready == 0 { throw NetworkError(operation: operation, peer: peer, kind: .timedOut) }
            if errno != EINTR { throw NetworkError(operation: operation, peer: peer, kind: .system(errno)) }
        }
    }
}

/// A listening TCP socket on a local address, for tests and local tools (scripted SMTP servers).
public final class TCPListener: Sendable {
    private let descriptor: Int32
    /// The port the kernel gave (bind to port 0 to get a free one).
    public let port: UInt16

    /// Listens on `127.0.0.1:port` (0: any free port).
    public init(port: UInt16 = 0, backlog: Int32 = 64) throws(NetworkError) {
        let peer = "127.0.0.1:\(port)"
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw NetworkError(operation: "socket for", peer: peer, kind: .system(errno)) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, backlog) == 0 else {
            let number = errno
            Glibc.close(fd)
            throw NetworkError(operation: "listen on", peer: peer, kind: .system(number))
        }
        var actual = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        descriptor = fd
        self.port = UInt16(bigEndian: actual.sin_port)
    }

    deinit { Glibc.close(descriptor) }

    /// Waits up to `timeout` seconds for the next connection.
    public func accept(timeout: Double) throws(NetworkError) -> TCPConnection {
        let peer = "127.0.0.1:\(port)"
        let deadline = Deadline(seconds: timeout)
        while true {
            var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            let ready = poll(&entry, 1, max(0, deadline.remainingMilliseconds))
            if ready == 0 { throw NetworkError(operation: "accept on", peer: peer, kind: .timedOut) }
            if ready < 0 {
                if errno == EINTR { continue }
                throw NetworkError(operation: "accept on", peer: peer, kind: .system(errno))
            }
            let fd = Glibc.accept(descriptor, nil, nil)
            if fd >= 0 {
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
                return TCPConnection.adopt(fd, peer: "client of \(port)")
            }
            if errno == EINTR || errno == EAGAIN { continue }
            throw NetworkError(operation: "accept on", peer: peer, kind: .system(errno))
        }
    }

    /// Stops accepting: pending and later `accept` calls fail at once.
    public func shutdown() {
        _ = Glibc.shutdown(descriptor, Int32(SHUT_RDWR))
    }
}

/// A point in time on the monotonic clock, `seconds` from when it was made.
struct Deadline {
    private let end: Double

    init(seconds: Double) { end = Deadline.now() + max(0, seconds) }

    var remainingMilliseconds: Int32 {
        let left = (end - Deadline.now()) * 1000
        return left <= 0 ? 0 : Int32(min(left.rounded(.up), Double(Int32.max)))
    }

    private static func now() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }
}
