import Foundation
import Testing

/// Helpers for tests that run real Debian tools beside Postroom (Dovecot, node_exporter,
/// Prometheus, systemd-analyze) and real unprivileged users.
enum Tools {
    /// The first executable among `candidates`, or nil (the test then skips and says why).
    static func find(_ candidates: String...) -> String? {
        candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    static let isRoot = getuid() == 0

    /// Runs a program to completion; standard output and error together.
    @discardableResult
    static func run(_ executable: String, _ arguments: [String], directory: String? = nil) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// Runs a shell command line as `user` (runuser: no password, no login shell needed).
    @discardableResult
    static func runAs(_ user: String, _ command: String, directory: String) throws -> (status: Int32, output: String) {
        try run("/usr/sbin/runuser", ["-u", user, "--", "/bin/sh", "-c", "cd \"$0\" && \(command)", directory])
    }

    /// A loopback TCP port nobody listens on right now (bind to port 0, read it, close).
    static func freePort() -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return UInt16(bigEndian: address.sin_port)
    }

    /// GET a URL with curl; nil when it cannot be fetched.
    static func fetch(_ url: String) -> String? {
        guard let curl = find("/usr/bin/curl"), let result = try? run(curl, ["-sf", "--max-time", "5", url]), result.status == 0 else { return nil }
        return result.output
    }

    /// Starts a long-running program in the background with its output in `log`.
    static func start(_ executable: String, _ arguments: [String], log: String) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return process
    }

    /// SIGTERM, then SIGKILL after a bounded wait.
    static func stop(_ process: Process) {
        guard process.isRunning else { return }
        process.terminate()
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning, Date() < deadline { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}

/// Real users and groups made for one test with unique names, removed when it ends.
final class TemporaryAccounts: @unchecked Sendable {
    // @unchecked: one test owns an instance; its arrays are touched only by that test's task and deinit.
    private var users: [String] = []
    private var groups: [String] = []
    private let tag = String(UUID().uuidString.prefix(6)).lowercased()

    /// Creates a group `pr<tag><name>` and returns its name.
    func group(_ name: String) throws -> String {
        let full = "pr\(tag)\(name)"
        let result = try Tools.run("/usr/sbin/groupadd", [full])
        guard result.status == 0 else { throw Failure(what: "groupadd \(full): \(result.output)") }
        groups.append(full)
        return full
    }

    /// Creates a user `pr<tag><name>` with no home and no login shell, in `groups`.
    func user(_ name: String, groups memberOf: [String] = []) throws -> String {
        let full = "pr\(tag)\(name)"
        var arguments = ["-M", "-s", "/usr/sbin/nologin", "-U"]
        if !memberOf.isEmpty { arguments += ["-G", memberOf.joined(separator: ",")] }
        let result = try Tools.run("/usr/sbin/useradd", arguments + [full])
        guard result.status == 0 else { throw Failure(what: "useradd \(full): \(result.output)") }
        users.append(full)
        return full
    }

    deinit {
        for user in users { _ = try? Tools.run("/usr/sbin/userdel", [user]) }
        for group in groups { _ = try? Tools.run("/usr/sbin/groupdel", [group]) }
    }

    struct Failure: Error, CustomStringConvertible {
        let what: String
        var description: String { what }
    }
}
