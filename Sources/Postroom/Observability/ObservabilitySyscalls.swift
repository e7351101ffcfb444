#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Foundation

/// Errors raised by the observability module (metrics files, HTTP endpoint, tracking log).
///
/// Metrics updates themselves never fail; only I/O and configuration can.
public enum ObservabilityError: Error, Equatable, CustomStringConvertible {
    /// A system call failed; `call` is the C function, `errno` its error, `detail` usually the path.
    case syscall(call: String, errno: Int32, detail: String)
    /// A `host:port` listen string could not be parsed.
    case invalidListenAddress(String, reason: String)
    /// The metrics endpoint may only listen on a loopback address (it has no authentication).
    case nonLoopbackAddress(String)

    public var description: String {
        switch self {
        case let .syscall(call, err, detail):
            let message = String(cString: strerror(err))
            return detail.isEmpty ? "\(call): \(message)" : "\(call) \(detail): \(message)"
        case let .invalidListenAddress(address, reason):
            return "invalid listen address \"\(address)\": \(reason)"
        case let .nonLoopbackAddress(address):
            return "refusing to listen on \"\(address)\": the metrics endpoint is unauthenticated, use a loopback address (127.0.0.1, ::1 or localhost)"
        }
    }
}

/// The only place this module calls Glibc for files and sockets.
///
/// Every wrapper retries `EINTR` and turns `-1` into a thrown ``ObservabilityError/syscall(call:errno:detail:)``,
/// so callers read as straight-line code and a test can reason about one error shape.
enum ObsSyscall {
    /// Runs `body` until it does not fail with `EINTR`; throws on any other failure.
    @discardableResult
    static func retrying<T: BinaryInteger>(_ call: String, _ detail: String = "", _ body: () -> T) throws -> T {
        while true {
            let result = body()
            if result != -1 { return result }
            let err = errno
            if err == EINTR { continue }
            throw ObservabilityError.syscall(call: call, errno: err, detail: detail)
        }
    }

    // MARK: Files

    static func open(_ path: String, _ flags: Int32, mode: mode_t = 0o644) throws -> Int32 {
        try retrying("open", path) { Glibc.open(path, flags | O_CLOEXEC, mode) }
    }

    static func close(_ fd: Int32) {
        // close(2) must not be retried on EINTR on Linux: the descriptor is already released.
        _ = Glibc.close(fd)
    }

    /// Writes all of `bytes`, looping over short writes.
    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, detail: String = "") throws {
        var offset = 0
        while offset < bytes.count {
            let n = try retrying("write", detail) {
                Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            }
            offset += n
        }
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8], detail: String = "") throws {
        try bytes.withUnsafeBytes { (raw) in try writeAll(fd, raw, detail: detail) }
    }

    static func fsync(_ fd: Int32, detail: String = "") throws {
        try retrying("fsync", detail) { Glibc.fsync(fd) }
    }

    static func rename(_ from: String, _ to: String) throws {
        try retrying("rename", "\(from) -> \(to)") { Glibc.rename(from, to) }
    }

    static func unlink(_ path: String) {
        _ = Glibc.unlink(path)
    }

    /// The size of an open file, for resuming an existing log.
    static func fileSize(_ fd: Int32, detail: String = "") throws -> Int {
        var st = stat()
        try retrying("fstat", detail) { fstat(fd, &st) }
        return Int(st.st_size)
    }

    static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    /// fsyncs a directory so that a rename inside it is durable.
    static func fsyncDirectory(_ path: String) throws {
        let fd = try open(path, O_RDONLY | O_DIRECTORY)
        defer { close(fd) }
        try fsync(fd, detail: path)
    }

    /// Writes `bytes` to `path` so that a reader sees either the old or the new content, never a mix:
    /// temp file in the same directory (same filesystem, so `rename` is atomic), fsync, rename, fsync directory.
    /// The temp name starts with a dot and does not end in `.prom`, so node_exporter's textfile collector ignores it.
    static func writeAtomically(_ bytes: [UInt8], to path: String) throws {
        let directory = (path as NSString).deletingLastPathComponent
        let name = (path as NSString).lastPathComponent
        let dir = directory.isEmpty ? "." : directory
        let temp = "\(dir)/.\(name).tmp-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        let fd = try open(temp, O_WRONLY | O_CREAT | O_EXCL, mode: 0o644)
        do {
            defer { close(fd) }
            // Readable by a collector running as another user, whatever the daemon's umask.
            _ = try retrying("fchmod", temp) { fchmod(fd, 0o644) }
            try writeAll(fd, bytes, detail: temp)
            try fsync(fd, detail: temp)
        } catch {
            unlink(temp)
            throw error
        }
        do {
            try rename(temp, path)
        } catch {
            unlink(temp)
            throw error
        }
        try fsyncDirectory(dir)
    }

    /// Reads a small file (procfs) completely; nil when it cannot be read.
    static func readSmallFile(_ path: String) -> String? {
        guard let fd = try? open(path, O_RDONLY) else { return nil }
        defer { close(fd) }
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            result.append(contentsOf: buffer[0 ..< n])
        }
        return String(decoding: result, as: UTF8.self)
    }

    static var pageSize: Int { Int(sysconf(Int32(_SC_PAGESIZE))) }
    static var clockTicksPerSecond: Int { Int(sysconf(Int32(_SC_CLK_TCK))) }

    // MARK: Sockets

    /// A listening TCP socket and the port it got (useful when asked for port 0).
    struct Listener {
        let fd: Int32
        let port: Int
    }

    /// Creates a TCP socket bound to `address` (an `in_addr`/`in6_addr` in network order) and listening.
    static func listen(ipv6: Bool, address: [UInt8], port: Int, backlog: Int32 = 16) throws -> Listener {
        let family = ipv6 ? AF_INET6 : AF_INET
        let fd = try retrying("socket") { socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        do {
            var yes: Int32 = 1
            try retrying("setsockopt", "SO_REUSEADDR") {
                setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
            }
            if ipv6 {
                var sa = sockaddr_in6()
                sa.sin6_family = sa_family_t(AF_INET6)
                sa.sin6_port = in_port_t(UInt16(port).bigEndian)
                withUnsafeMutableBytes(of: &sa.sin6_addr) { $0.copyBytes(from: address) }
                _ = try withUnsafePointer(to: &sa) { ptr in
                    try ptr.withMemoryRebound(to: sockaddr.self, capacity: 1) { p in
                        try retrying("bind", "[::1]:\(port)") { bind(fd, p, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
                    }
                }
            } else {
                var sa = sockaddr_in()
                sa.sin_family = sa_family_t(AF_INET)
                sa.sin_port = in_port_t(UInt16(port).bigEndian)
                withUnsafeMutableBytes(of: &sa.sin_addr) { $0.copyBytes(from: address) }
                _ = try withUnsafePointer(to: &sa) { ptr in
                    try ptr.withMemoryRebound(to: sockaddr.self, capacity: 1) { p in
                        try retrying("bind", "\(address.map(String.init).joined(separator: ".")):\(port)") {
                            bind(fd, p, socklen_t(MemoryLayout<sockaddr_in>.size))
                        }
                    }
                }
            }
            try retrying("listen") { Glibc.listen(fd, backlog) }
            var storage = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            _ = try withUnsafeMutablePointer(to: &storage) { ptr in
                try ptr.withMemoryRebound(to: sockaddr.self, capacity: 1) { p in
                    try retrying("getsockname") { getsockname(fd, p, &length) }
                }
            }
            let boundPort: UInt16 = withUnsafeBytes(of: &storage) { raw in
                // sin_port and sin6_port sit at the same offset (2) in both layouts.
                UInt16(bigEndian: raw.load(fromByteOffset: 2, as: UInt16.self))
            }
            return Listener(fd: fd, port: Int(boundPort))
        } catch {
            close(fd)
            throw error
        }
    }

    /// Blocks until a client connects. Returns nil when the call should simply be retried
    /// (aborted connection); throws when the listener is unusable (e.g. shut down by `stop`).
    static func accept(_ fd: Int32) throws -> Int32? {
        // accept4 is not visible through Glibc's module map; the tiny window before FD_CLOEXEC only matters
        // if another thread spawns a process right then, and the fd would merely leak into that child.
        let client = Glibc.accept(fd, nil, nil)
        if client >= 0 {
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            return client
        }
        let err = errno
        if err == EINTR || err == ECONNABORTED || err == EPROTO { return nil }
        throw ObservabilityError.syscall(call: "accept", errno: err, detail: "")
    }

    /// Sets receive and send timeouts so a silent client cannot hold the server forever.
    static func setTimeouts(_ fd: Int32, seconds: Double) {
        var tv = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - seconds.rounded(.down)) * 1_000_000))
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Receives up to `max` bytes; 0 means the peer closed; throws on error or timeout (`EAGAIN`).
    static func receive(_ fd: Int32, into buffer: inout [UInt8], max: Int) throws -> Int {
        var chunk = [UInt8](repeating: 0, count: max)
        let n = try retrying("recv") { chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, max, 0) } }
        buffer.append(contentsOf: chunk[0 ..< n])
        return n
    }

    /// Sends everything; `MSG_NOSIGNAL` because a client that hung up must not raise SIGPIPE in the daemon.
    static func sendAll(_ fd: Int32, _ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = try retrying("send") {
                bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
            }
            offset += n
        }
    }

    static func shutdown(_ fd: Int32, _ how: Int32 = Int32(SHUT_RDWR)) {
        _ = Glibc.shutdown(fd, how)
    }
}
