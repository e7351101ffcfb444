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
}
