import Foundation
import Testing

/// Runs the real `postroom` binary against a temporary spool and inspects what it leaves on disk.
final class Harness: @unchecked Sendable {
    // @unchecked: a harness belongs to one test; its mutable `process` is touched only by that test's task.
    let root: String
    let spool: String
    let logPath: String
    var process: Process?
    var pipeline: String

    static let packageRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    static let binary: String = {
        if let explicit = ProcessInfo.processInfo.environment["POSTROOM_BINARY"] { return explicit }
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("postroom").path
        if FileManager.default.isExecutableFile(atPath: beside) { return beside }
        return packageRoot + "/.build/debug/postroom"
    }()

    init(pipeline: String = Harness.packageRoot + "/pipelines/default.json5") throws {
        root = NSTemporaryDirectory() + "postroom-e2e-" + UUID().uuidString
        spool = root + "/spool"
        logPath = root + "/postroom.log"
        self.pipeline = pipeline
        try FileManager.default.createDirectory(atPath: spool, withIntermediateDirectories: true)
    }

    deinit {
        if let process, process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        for path in mounts.reversed() {
            let umount = Process()
            umount.executableURL = URL(fileURLWithPath: "/bin/umount")
            umount.arguments = ["-l", path]
            try? umount.run()
            umount.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: root)
    }

    /// Writes a copy of the default pipeline (and its directory file) with text replaced, and uses it.
    @discardableResult
    func useDefaultPipeline(replacing replacements: [(String, String)]) throws -> String {
        var text = try String(contentsOfFile: Harness.packageRoot + "/pipelines/default.json5", encoding: .utf8)
        for (old, new) in replacements {
            precondition(text.contains(old), "the default pipeline no longer contains \(old)")
            text = text.replacingOccurrences(of: old, with: new)
        }
        let path = root + "/pipeline.json5"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        try? FileManager.default.removeItem(atPath: root + "/directory.json5")
        try FileManager.default.copyItem(atPath: Harness.packageRoot + "/pipelines/directory.json5", toPath: root + "/directory.json5")
        pipeline = path
        return path
    }

    /// Runs `postroom` with the harness's spool appended.
    func command(_ arguments: [String]) throws -> (status: Int32, output: String, error: String) {
        try runPostroom(arguments + ["--spool", spool])
    }

    /// Ids of the entries in one queue state folder.
    func queued(_ state: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: spool + "/queue/" + state)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
    }

    /// Tracking events of a kind, as raw JSON lines.
    func trackingLines(_ event: String) -> [String] {
        let text = (try? String(contentsOfFile: spool + "/tracking.log", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").map(String.init).filter { $0.contains("\"event\":\"\(event)\"") }
    }

    var pickup: String { spool + "/pickup" }
    var replay: String { spool + "/replay" }

    /// Starts `postroom run` and waits until it says it is watching.
    /// `wrapper` runs the daemon under another program (e.g. strace); signals still go to the daemon.
    func start(environment: [String: String] = [:], expectRunning: Bool = true, wrapper: [String] = []) async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: wrapper.first ?? Harness.binary)
        process.arguments = wrapper.dropFirst() + (wrapper.isEmpty ? [] : [Harness.binary]) + ["run", pipeline, "--spool", spool]
        process.currentDirectoryURL = URL(fileURLWithPath: root)
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        if !FileManager.default.fileExists(atPath: logPath) { _ = FileManager.default.createFile(atPath: logPath, contents: nil) }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        log.seekToEndOfFile()
        process.standardError = log
        process.standardOutput = log
        try process.run()
        self.process = process
        wrapped = !wrapper.isEmpty
        let linesBefore = startCount
        try await waitUntil("the daemon to start", timeout: 30) { self.startCount > linesBefore || !process.isRunning }
        if expectRunning { #expect(process.isRunning, "postroom exited at start-up: \(self.log)") }
    }

    private var startCount: Int { log.components(separatedBy: "running on spool").count - 1 }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Sends SIGTERM and waits for the exit status.
    @discardableResult
    func stop() async throws -> Int32 {
        guard let process else { return -1 }
        kill(daemonPID(of: process), SIGTERM)
        try await waitUntil("the daemon to exit", timeout: 60) { !process.isRunning }
        self.process = nil
        return process.terminationStatus
    }

    /// SIGKILL: no chance to clean up.
    func crash() async throws {
        guard let process else { return }
        kill(process.processIdentifier, SIGKILL)
        try await waitUntil("the daemon to die", timeout: 10) { !process.isRunning }
        self.process = nil
    }

    /// Sends a signal to the running daemon.
    func signal(_ number: Int32) {
        if let process { kill(daemonPID(of: process), number) }
    }

    /// The daemon's pid: the process itself, or its child when it runs under a wrapper.
    private func daemonPID(of process: Process) -> pid_t {
        let pid = process.processIdentifier
        guard wrapped else { return pid }
        let children = (try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8)) ?? ""
        return children.split(separator: " ").first.flatMap { pid_t($0) } ?? pid
    }

    /// The daemon's peak resident memory (VmHWM) in bytes, while it runs.
    func peakMemory() -> Int? {
        guard let process, let status = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }) else { return nil }
        return line.split(separator: " ").compactMap { Int($0) }.first.map { $0 * 1024 }
    }

    /// Mounts a tmpfs of `size` at `path` (root only); nil when this machine does not allow it.
    func mountTmpfs(at path: String, size: String) -> Bool {
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let mount = Process()
        mount.executableURL = URL(fileURLWithPath: "/bin/mount")
        mount.arguments = ["-t", "tmpfs", "-o", "size=\(size)", "tmpfs", path]
        mount.standardError = FileHandle.nullDevice
        guard (try? mount.run()) != nil else { return false }
        mount.waitUntilExit()
        if mount.terminationStatus == 0 { mounts.append(path) }
        return mount.terminationStatus == 0
    }

    /// Runs `mount` with arguments (e.g. a remount), returning whether it worked.
    @discardableResult
    func remount(_ path: String, options: String) -> Bool {
        let mount = Process()
        mount.executableURL = URL(fileURLWithPath: "/bin/mount")
        mount.arguments = ["-o", "remount,\(options)", path]
        guard (try? mount.run()) != nil else { return false }
        mount.waitUntilExit()
        return mount.terminationStatus == 0
    }

    var mounts: [String] = []
    /// True while the daemon runs under a wrapper (see ``start(environment:expectRunning:wrapper:)``).
    var wrapped = false

    /// Writes a message under a hidden name and renames it in, as a careful producer does.
    func drop(_ text: String, named name: String, into directory: String? = nil) throws {
        let folder = directory ?? pickup
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let temporary = folder + "/." + name + ".tmp"
        try Data(text.utf8).write(to: URL(fileURLWithPath: temporary))
        try FileManager.default.moveItem(atPath: temporary, toPath: folder + "/" + name)
    }

    /// Writes a message in place, slowly, in several writes with pauses (IN_CLOSE_WRITE only at the end).
    func dropSlowly(_ text: String, named name: String, pieces: Int = 4) async throws {
        let handle = try Harness.openForWriting(pickup + "/" + name)
        let bytes = Array(text.utf8)
        let size = (bytes.count + pieces - 1) / pieces
        for start in stride(from: 0, to: bytes.count, by: size) {
            handle.write(Data(bytes[start..<min(bytes.count, start + size)]))
            try await Task.sleep(for: .milliseconds(30))
        }
        try handle.close()
    }

    /// Every file under a folder (recursively, across mount points), relative to the spool.
    func files(under relative: String) -> [String] {
        let fm = FileManager.default
        var result: [String] = []
        var pending = [relative]
        while let folder = pending.popLast() {
            for name in (try? fm.contentsOfDirectory(atPath: spool + "/" + folder)) ?? [] {
                var isDirectory: ObjCBool = false
                guard fm.fileExists(atPath: spool + "/" + folder + "/" + name, isDirectory: &isDirectory) else { continue }
                if isDirectory.boolValue { pending.append(folder + "/" + name) } else { result.append(folder + "/" + name) }
            }
        }
        return result.sorted()
    }

    /// Creates and opens a file in one `open(O_CREAT|O_EXCL)`, as a producer writing in place does:
    /// there is no moment when the file exists closed and empty.
    static func openForWriting(_ path: String) throws -> FileHandle {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path]) }
        return FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
    }

    /// The visible deliveries: Maildir `new/` files and drop directory `.eml` files (not hidden temporaries).
    func deliveredFiles() -> [String] {
        (files(under: "mailboxes").filter { $0.contains("/new/") } + files(under: "drop"))
            .filter { !(($0 as NSString).lastPathComponent.hasPrefix(".")) }
    }

    /// For each delivered file, the location (mailbox or drop directory) and the X-Token it carries.
    func census() -> [String: [String: Int]] {
        var result: [String: [String: Int]] = [:]
        for file in deliveredFiles() {
            let components = file.split(separator: "/")
            let location = components[0] == "mailboxes" ? "mailbox:" + components[1] : "drop:" + components[1]
            guard let text = try? String(contentsOfFile: spool + "/" + file, encoding: .utf8) else { continue }
            let token = text.split(whereSeparator: \.isNewline).first { $0.hasPrefix("X-Token: ") }?.dropFirst(9).trimmingCharacters(in: .whitespaces) ?? "none"
            result[token, default: [:]][location, default: 0] += 1
        }
        return result
    }

    /// Queue files left: claimed files and entries in every state (not the journal or control files).
    func queuedFiles() -> [String] {
        ["incoming", "active", "deferred", "hold", "poison"].flatMap { files(under: "queue/" + $0) }
    }
}

/// The differences between two censuses, at most `limit` of them, for readable failures.
func censusDifferences(_ actual: [String: [String: Int]], _ expected: [String: [String: Int]], limit: Int = 10) -> [String] {
    var differences: [String] = []
    for token in Set(actual.keys).union(expected.keys).sorted() where actual[token] != expected[token] {
        differences.append("\(token): got \(actual[token] ?? [:]), expected \(expected[token] ?? [:])")
        if differences.count == limit { break }
    }
    return differences
}

/// Waits for a condition with a deadline; the condition is what the test awaits, not the clock.
func waitUntil(_ what: String, timeout seconds: Double, _ condition: @escaping () -> Bool) async throws {
    let deadline = ContinuousClock.now + .seconds(seconds)
    while !condition() {
        if ContinuousClock.now > deadline { throw WaitTimeout(what: what, seconds: seconds) }
        try await Task.sleep(for: .milliseconds(25))
    }
}

struct WaitTimeout: Error, CustomStringConvertible {
    let what: String
    let seconds: Double
    var description: String { "timed out after \(seconds) s waiting for \(what)" }
}

/// Generated test mail for the default pipeline, each message with a unique `X-Token`.
enum Mail {
    /// The recipients of message `index` and where each copy must land.
    static func plan(_ index: Int) -> (to: [String], locations: [String: Int]) {
        switch index % 5 {
        case 0: return (["alice@example.com"], ["mailbox:alice": 1])
        case 1: return (["bob@example.com", "carol@example.com"], ["mailbox:bob": 1, "mailbox:carol": 1])
        case 2: return (["team@example.com"], ["mailbox:alice": 1, "mailbox:bob": 1])
        case 3: return (["fax-desk@example.com"], ["drop:fax": 1])
        default: return (["someone@elsewhere.org", "carol@example.com"], ["drop:outbound": 1, "mailbox:carol": 1])
        }
    }

    /// With `reported`, one more recipient nobody knows: a report (5.1.1) to the sender lands in
    /// `drop/outbound`, and it carries the original header, so the census counts it under the token.
    static func message(_ index: Int, token: String, reported: Bool = false) -> String {
        let recipients = (plan(index).to + (reported ? ["nobody\(index)@example.com"] : [])).joined(separator: ", ")
        return "From: Sender \(index) <sender\(index)@elsewhere.org>\r\nTo: \(recipients)\r\nSubject: message \(index)\r\nX-Token: \(token)\r\n\r\nBody of message \(index).\r\n"
    }

    /// The census a run of messages `range` must produce, exactly.
    static func expectedCensus(_ range: Range<Int>, prefix: String, reported: (Int) -> Bool = { _ in false }) -> [String: [String: Int]] {
        Dictionary(uniqueKeysWithValues: range.map { index in
            var locations = plan(index).locations
            if reported(index) { locations["drop:outbound", default: 0] += 1 }
            return ("\(prefix)\(index)", locations)
        })
    }
}
