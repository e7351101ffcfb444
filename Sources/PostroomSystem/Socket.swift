#if canImport(Glibc)
import Glibc
#endif

/// A TCP socket descriptor, with the few calls Postroom's loopback servers need, each wrapped once.
///
/// A plain value (the descriptor number): whoever creates it closes it exactly once with ``close()``.
/// Every call retries `EINTR` and reports failures as ``SystemError`` with the operation and address.
/// `shutdown` may be called from another thread to wake a blocked `accept`/`receive`: on Linux it makes
/// them return at once, without the descriptor-reuse race a `close` from that thread would have.
public struct SocketDescriptor: Sendable, Hashable {
    public let rawValue: Int32

    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// Which directions ``shutdown(_:)`` ends.
    public enum Direction: Sendable {
        case write, both
        var raw: Int32 { self == .write ? Int32(SHUT_WR) : Int32(SHUT_RDWR) }
    }

    /// Creates a TCP socket bound to `address` (4 or 16 bytes of an `in_addr`/`in6_addr`, network order)
    /// and listening. Returns it with the port it got (useful when asked for port 0).
    public static func listen(address: [UInt8], port: Int, backlog: Int32 = 16) throws(SystemError) -> (socket: SocketDescriptor, port: Int) {
        let ipv6 = address.count == 16
        let display = ipv6 ? "[ipv6]:\(port)" : "\(address.map(String.init).joined(separator: ".")):\(port)"
        let fd = try check("socket", display) { Glibc.socket(ipv6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        let listener = SocketDescriptor(rawValue: fd)
        do throws(SystemError) {
            var yes: Int32 = 1
            try check("setsockopt SO_REUSEADDR", display) { setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size)) }
            if ipv6 {
                var sa = sockaddr_in6()
                sa.sin6_family = sa_family_t(AF_INET6)
                sa.sin6_port = in_port_t(UInt16(port).bigEndian)
                withUnsafeMutableBytes(of: &sa.sin6_addr) { $0.copyBytes(from: address) }
                try bind(fd, &sa, display)
            } else {
                var sa = sockaddr_in()
                sa.sin_family = sa_family_t(AF_INET)
                sa.sin_port = in_port_t(UInt16(port).bigEndian)
                withUnsafeMutableBytes(of: &sa.sin_addr) { $0.copyBytes(from: address) }
                try bind(fd, &sa, display)
            }
            try check("listen", display) { Glibc.listen(fd, backlog) }
            var storage = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            try withUnsafeMutablePointer(to: &storage) { (pointer) throws(SystemError) in
                try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { (address) throws(SystemError) in
                    _ = try check("getsockname", display) { getsockname(fd, address, &length) }
                }
            }
            // sin_port and sin6_port sit at the same offset (2) in both layouts.
            let bound = withUnsafeBytes(of: &storage) { UInt16(bigEndian: $0.load(fromByteOffset: 2, as: UInt16.self)) }
            return (listener, Int(bound))
        } catch {
            listener.close()
            throw error
        }
    }

    /// Blocks until a client connects. Returns nil when the call should simply be retried (an aborted
    /// connection); throws when the listener is unusable (for example shut down).
    public func accept() throws(SystemError) -> SocketDescriptor? {
        // accept4 is not visible through Glibc's module map; the window before FD_CLOEXEC only matters
        // if another thread spawns a process right then, and the descriptor would merely leak into that child.
        let client = Glibc.accept(rawValue, nil, nil)
        if client >= 0 {
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            return SocketDescriptor(rawValue: client)
        }
        let err = errno
        if err == EINTR || err == ECONNABORTED || err == EPROTO { return nil }
        throw SystemError(operation: "accept", path: "", errno: err)
    }

    /// Sets receive and send timeouts, so a silent peer cannot hold a blocking call forever.
    public func setTimeouts(seconds: Double) {
        var tv = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - seconds.rounded(.down)) * 1_000_000))
        _ = setsockopt(rawValue, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(rawValue, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Receives up to `max` bytes and appends them to `buffer`; 0 means the peer closed.
    /// Throws on error or timeout (`EAGAIN`).
    public func receive(into buffer: inout [UInt8], max: Int) throws(SystemError) -> Int {
        var chunk = [UInt8](repeating: 0, count: max)
        let fd = rawValue
        let n = try Self.check("recv", "") { chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, max, 0) } }
        buffer.append(contentsOf: chunk[0 ..< n])
        return n
    }

    /// Sends everything; `MSG_NOSIGNAL` because a peer that hung up must not raise SIGPIPE in the daemon.
    public func sendAll(_ bytes: [UInt8]) throws(SystemError) {
        var offset = 0
        let fd = rawValue
        while offset < bytes.count {
            offset += try Self.check("send", "") {
                bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
            }
        }
    }

    public func shutdown(_ direction: Direction = .both) {
        _ = Glibc.shutdown(rawValue, direction.raw)
    }

    public func close() {
        // close(2) must not be retried on EINTR on Linux: the descriptor is already released.
        _ = Glibc.close(rawValue)
    }

    private static func bind<Address>(_ fd: Int32, _ address: inout Address, _ display: String) throws(SystemError) {
        try withUnsafePointer(to: &address) { (pointer) throws(SystemError) in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { (raw) throws(SystemError) in
                _ = try check("bind", display) { Glibc.bind(fd, raw, socklen_t(MemoryLayout<Address>.size)) }
            }
        }
    }

    /// Runs `body` until it does not fail with `EINTR`; any other `-1` becomes a ``SystemError``.
    @discardableResult
    private static func check<T: BinaryInteger>(_ operation: String, _ detail: String, _ body: () -> T) throws(SystemError) -> T {
        let result = retrying(body)
        if result == -1 { throw SystemError(operation: operation, path: detail, errno: errno) }
        return result
    }
}
