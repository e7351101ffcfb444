import Foundation
import Testing

/// A LazyFS mount: a FUSE file system with its own page cache that keeps every write in memory
/// until it is fsynced. `lazyfs::clear-cache` on its fault FIFO drops what was not fsynced: a
/// power cut as an application sees it (data not made durable is gone; what was fsynced stays).
///
/// What it does not simulate: directory operations (create, rename, unlink) go straight to the
/// file system below and always survive, so a missing directory fsync cannot be seen here
/// (`DirectoryDurabilityTests` checks those from a system-call trace instead); and `syncfs(2)`
/// never reaches it (the FUSE kernel module does not forward it), so data made durable only by
/// `syncfs` looks lost.
///
/// Run with one FUSE thread (`-s`): its multi-threaded loop crashes or deadlocks now and then.
final class LazyFSMount: @unchecked Sendable {
    // @unchecked: one test owns a mount; its state is set in init and read-only afterwards
    // except `process`, which only `unmount()` (called by that test or deinit) touches.
    let mountPoint: String
    let backing: String
    let logPath: String
    private let faultsFIFO: String
    private let doneDescriptor: Int32
    private var process: Process?

    /// The LazyFS binary: `POSTROOM_LAZYFS`, else `.build/lazyfs` (where `.ci/run` builds it), else `/tmp/lazyfs`.
    static let binary: String? = {
        let candidates = [ProcessInfo.processInfo.environment["POSTROOM_LAZYFS"],
                          Harness.packageRoot + "/.build/lazyfs/lazyfs/build/lazyfs",
                          "/tmp/lazyfs/lazyfs/build/lazyfs"].compactMap { $0 }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }()

    /// Nil when a LazyFS file system can be mounted here; otherwise why not (printed once, so a skip is explained).
    static let unavailableReason: String? = {
        let reason: String?
        if binary == nil {
            reason = "LazyFS is not built (.ci/run builds it with ../shared/tools/lazyfs/build.sh .build/lazyfs; or set POSTROOM_LAZYFS)"
        } else if !FileManager.default.fileExists(atPath: "/dev/fuse") {
            reason = "/dev/fuse is missing (no FUSE in this container)"
        } else {
            let folder = NSTemporaryDirectory() + "postroom-lazyfs-probe-" + UUID().uuidString
            defer { try? FileManager.default.removeItem(atPath: folder) }
            do {
                try FileManager.default.createDirectory(atPath: folder + "/mnt", withIntermediateDirectories: true)
                let probe = try LazyFSMount(mountPoint: folder + "/mnt", work: folder, cacheSize: "16mb")
                probe.unmount()
                reason = nil
            } catch {
                reason = "cannot mount LazyFS: \(error)"
            }
        }
        if let reason { print("power-loss tests skipped: \(reason)") }
        return reason
    }()

    static var available: Bool { unavailableReason == nil }

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// Mounts LazyFS at `mountPoint` (an existing empty folder), backed by `<work>/lazyfs-backing`.
    init(mountPoint: String, work: String, cacheSize: String = "256mb") throws {
        guard let binary = Self.binary else { throw Failure(description: "no LazyFS binary") }
        self.mountPoint = mountPoint
        backing = work + "/lazyfs-backing"
        logPath = work + "/lazyfs.log"
        faultsFIFO = work + "/lazyfs-faults.fifo"
        let doneFIFO = work + "/lazyfs-done.fifo"
        let fm = FileManager.default
        try fm.createDirectory(atPath: backing, withIntermediateDirectories: true)
        try fm.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        for fifo in [faultsFIFO, doneFIFO] {
            unlink(fifo)
            guard mkfifo(fifo, 0o600) == 0 else { throw Failure(description: "mkfifo \(fifo): errno \(errno)") }
        }
        // O_RDWR on a FIFO never blocks, and lets LazyFS open its writing end at any time.
        doneDescriptor = open(doneFIFO, O_RDWR | O_CLOEXEC)
        guard doneDescriptor >= 0 else { throw Failure(description: "open \(doneFIFO): errno \(errno)") }
        let config = work + "/lazyfs.toml"
        try """
        [faults]
        fifo_path="\(faultsFIFO)"
        fifo_path_completed="\(doneFIFO)"
        [cache]
        apply_eviction=false
        [cache.simple]
        custom_size="\(cacheSize)"
        blocks_per_page=1
        [filesystem]
        log_all_operations=false
        logfile="\(logPath)"
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = [mountPoint, "--config-path", config, "-o", "modules=subdir", "-o", "subdir=\(backing)", "-f", "-s"]
        _ = fm.createFile(atPath: work + "/lazyfs.out", contents: nil)
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: work + "/lazyfs.out"))
        process.standardOutput = output
        process.standardError = output
        try process.run()
        self.process = process
        let deadline = Date().addingTimeInterval(20)
        while !Self.isMounted(mountPoint) {
            if !process.isRunning || Date() > deadline {
                let out = (try? String(contentsOfFile: work + "/lazyfs.out", encoding: .utf8)) ?? ""
                unmount()
                throw Failure(description: "LazyFS did not mount \(mountPoint): \(out.split(separator: "\n").suffix(3).joined(separator: " | "))")
            }
            usleep(20_000)
        }
    }

    deinit {
        unmount()
        close(doneDescriptor)
    }

    static func isMounted(_ path: String) -> Bool {
        let table = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
        return table.split(separator: "\n").contains { line in
            let fields = line.split(separator: " ")
            return fields.count > 4 && fields[4] == path && line.contains("fuse.lazyfs")
        }
    }

    /// The power cut: every write not fsynced is dropped. Returns once LazyFS says it is done.
    func clearCache() throws {
        let fd = open(faultsFIFO, O_WRONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw Failure(description: "LazyFS is not reading its fault FIFO (errno \(errno))") }
        let command = Array("lazyfs::clear-cache\n".utf8)
        let written = command.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        guard written == command.count else { throw Failure(description: "cannot write the clear-cache command (errno \(errno))") }
        var answer = ""
        let deadline = Date().addingTimeInterval(30)
        while !answer.contains("finished::clear-cache") {
            var poller = pollfd(fd: doneDescriptor, events: Int16(POLLIN), revents: 0)
            let remaining = Int32(max(0, deadline.timeIntervalSinceNow * 1000))
            guard remaining > 0, poll(&poller, 1, remaining) > 0 else { throw Failure(description: "LazyFS did not finish clear-cache within 30 s") }
            var buffer = [UInt8](repeating: 0, count: 256)
            let count = buffer.withUnsafeMutableBytes { read(doneDescriptor, $0.baseAddress, $0.count) }
            if count > 0 { answer += String(decoding: buffer[0..<count], as: UTF8.self) }
        }
    }

    /// Unmounts and stops LazyFS (idempotent).
    func unmount() {
        guard let process else { return }
        self.process = nil
        let fusermount = Process()
        fusermount.executableURL = URL(fileURLWithPath: "/usr/bin/fusermount3")
        fusermount.arguments = ["-u", mountPoint]
        fusermount.standardError = FileHandle.nullDevice
        if (try? fusermount.run()) != nil { fusermount.waitUntilExit() }
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        if Self.isMounted(mountPoint) {
            let umount = Process()
            umount.executableURL = URL(fileURLWithPath: "/bin/umount")
            umount.arguments = ["-l", mountPoint]
            if (try? umount.run()) != nil { umount.waitUntilExit() }
        }
    }
}
