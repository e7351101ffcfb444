import Foundation
import Testing

/// Issue 11 end to end: every regular `*.eml` entry in pickup ends taken, `.bad` with a
/// reason, or named in a warning log line within a bounded time, whatever its name and
/// whatever its writer does; unusable recipients are reported to the sender, never dropped.
@Suite(.serialized) struct IntakeBoundTests {
    /// The daemon's re-check warning comes after 10 s, re-checks at most 5 s apart; with
    /// start-up and a loaded machine, 40 s is the bound a test waits.
    static let bound: Double = 40

    // MARK: Byte-level helpers (names that are not UTF-8 cannot go through String)

    static func cPath(_ directory: String, _ name: [UInt8]) -> [CChar] {
        (Array(directory.utf8) + [0x2F] + name + [0]).map { CChar(bitPattern: $0) }
    }

    static func write(_ text: String, directory: String, name: [UInt8]) {
        let fd = cPath(directory, name).withUnsafeBufferPointer { open($0.baseAddress!, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644) }
        precondition(fd >= 0, "cannot create a test file")
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        close(fd)
    }

    static func move(_ from: (String, [UInt8]), to: (String, [UInt8])) -> Bool {
        cPath(from.0, from.1).withUnsafeBufferPointer { source in
            cPath(to.0, to.1).withUnsafeBufferPointer { rename(source.baseAddress!, $0.baseAddress!) }
        } == 0
    }

    /// The names in a directory as bytes, `.` and `..` left out.
    static func listing(_ directory: String) -> [[UInt8]] {
        guard let handle = opendir(directory) else { return [] }
        defer { closedir(handle) }
        var names: [[UInt8]] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { Array($0.prefix { $0 != 0 }) }
            if name != [0x2E], name != [0x2E, 0x2E] { names.append(name) }
        }
        return names
    }

    static func escaped(_ name: [UInt8]) -> String {
        name.map { $0 >= 0x20 && $0 < 0x7F ? String(UnicodeScalar($0)) : String(format: "\\x%02X", $0) }.joined()
    }

    // MARK: Tests

    @Test func aMixedRunLeavesNothingUnaccountedForInPickup() async throws {
        let harness = try Harness()
        try await harness.start()
        let staging = harness.root + "/staging"
        try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
        let message = { (token: String) in "From: z@elsewhere.org\nTo: alice@example.com\nX-Token: \(token)\n\nbody of \(token)\n" }

        // 1. A name that is not UTF-8 (Latin-1 "café.eml"), valid content: taken and delivered.
        let latin1: [UInt8] = Array("caf".utf8) + [0xE9] + Array(".eml".utf8)
        Self.write(message("latin1-name"), directory: staging, name: latin1)
        #expect(Self.move((staging, latin1), to: (harness.pickup, latin1)))
        // 2. A name that is not UTF-8 with no sender inside: badmail, under its escaped name.
        let broken: [UInt8] = Array("broken".utf8) + [0xFF, 0xFE] + Array(".eml".utf8)
        Self.write("To: alice@example.com\n\nno sender\n", directory: staging, name: broken)
        #expect(Self.move((staging, broken), to: (harness.pickup, broken)))
        // 3. A hostile entry (a symbolic link) whose name is not UTF-8: .bad in place, bytes kept.
        let link: [UInt8] = Array("link".utf8) + [0x80] + Array(".eml".utf8)
        #expect(Self.cPath(harness.pickup, link).withUnsafeBufferPointer { symlink("/etc/passwd", $0.baseAddress!) } == 0)
        // 4. Truncate after rename: renamed in while a writer holds it, then cut by path with truncate(2).
        let full = message("truncated") + "this line is cut off by truncate\n"
        let kept = message("truncated")
        let truncPath = harness.pickup + "/truncated.eml"
        let holder = try Harness.openForWriting(staging + "/truncated.eml")
        holder.write(Data(full.utf8))
        #expect(rename(staging + "/truncated.eml", truncPath) == 0)
        #expect(truncate(truncPath, off_t(kept.utf8.count)) == 0)
        try holder.close()
        // 5. A writer killed while holding the file open (renamed in mid-write, then SIGKILL).
        let killedPath = staging + "/killed.eml"
        try message("killed-writer").write(toFile: killedPath, atomically: false, encoding: .utf8)
        let ready = Pipe()
        let writer = Process()
        writer.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        writer.arguments = ["-c", "import sys, time\nf = open(sys.argv[1], 'a')\nprint('ready', flush=True)\ntime.sleep(600)", killedPath]
        writer.standardOutput = ready
        try writer.run()
        _ = ready.fileHandleForReading.availableData  // blocks until the writer holds the file
        #expect(rename(killedPath, harness.pickup + "/killed.eml") == 0)
        try await Task.sleep(for: .milliseconds(500))
        #expect(FileManager.default.fileExists(atPath: harness.pickup + "/killed.eml"), "taken while its writer still held it")
        kill(writer.processIdentifier, SIGKILL)
        writer.waitUntilExit()
        // 6. A name too long to append ".bad.reason" to, with content that is not a message.
        let longName = String(repeating: "n", count: 246) + ".eml"
        try harness.drop("not a message at all\n", named: longName)
        // 7. An ordinary message beside them all.
        try harness.drop(message("ordinary"), named: "ordinary.eml")

        try await waitUntil("every message to be delivered", timeout: Self.bound) {
            ["latin1-name", "truncated", "killed-writer", "ordinary"].allSatisfy { harness.census()[$0] != nil }
        }
        try await waitUntil("every bad file to be renamed", timeout: Self.bound) {
            Self.listing(harness.pickup).filter { Self.escaped($0).hasSuffix(".bad") }.count == 3
        }
        let truncated = try harness.files(under: "mailboxes/alice/new").map { try String(contentsOfFile: harness.spool + "/" + $0, encoding: .utf8) }
            .first { $0.contains("X-Token: truncated") }
        #expect(truncated?.contains("cut off") == false, "the truncated file was taken before it was cut")

        // The listing after the run: only .bad files and their reasons, nothing left waiting.
        let names = Self.listing(harness.pickup).map(Self.escaped).sorted()
        let leftovers = names.filter { !$0.hasSuffix(".bad") && !$0.hasSuffix(".bad.reason") }
        #expect(leftovers.isEmpty, "left in pickup: \(leftovers); log:\n\(harness.log)")
        // The escaped name of the badmail whose name was not UTF-8 is readable text now.
        #expect(names.contains("broken\\xFF\\xFE.eml.bad"))
        #expect(FileManager.default.fileExists(atPath: harness.pickup + "/broken\\xFF\\xFE.eml.bad.reason"))
        // The symbolic link keeps its target and gets a reason that says the name was escaped.
        let linkReason = try String(contentsOfFile: harness.pickup + "/link\\x80.eml.bad.reason", encoding: .utf8)
        #expect(linkReason.contains("symbolic link") && linkReason.contains("not valid UTF-8"))
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: harness.pickup + "/link\\x80.eml.bad") == "/etc/passwd")
        // The long name was shortened to fit, with a reason beside it.
        let longBad = names.filter { $0.hasPrefix("nnnn") && $0.hasSuffix(".bad") }
        #expect(longBad.count == 1 && longBad.allSatisfy { $0.utf8.count + 7 <= 255 })
        // Logs name the non-UTF-8 files escaped, never with a replacement character.
        #expect(harness.log.contains("caf\\xE9.eml"))
        #expect(!harness.log.contains("\u{FFFD}"))
        #expect(try await harness.stop() == 0)
    }

    @Test func aFileHeldOpenByAnOrphanIsNamedInAWarningThenTaken() async throws {
        let harness = try Harness()
        try await harness.start()
        let staging = harness.root + "/staging"
        try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
        let path = staging + "/orphan.eml"
        try "From: z@elsewhere.org\nTo: alice@example.com\nX-Token: orphan\n\nbody\n".write(toFile: path, atomically: false, encoding: .utf8)
        // The writer exits at once, leaving a `sleep` that holds the file open for writing
        // (as its standard output): no close comes until it is killed. close_fds keeps the
        // orphan from holding Foundation's process-monitoring socket too.
        let output = Pipe()
        let shell = Process()
        shell.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        shell.arguments = ["-c", """
            import subprocess, sys
            orphan = subprocess.Popen(["sleep", "600"], stdin=subprocess.DEVNULL, stdout=open(sys.argv[1], "a"),
                                      stderr=subprocess.DEVNULL, close_fds=True, start_new_session=True)
            print(orphan.pid, flush=True)
            """, path]
        shell.standardOutput = output
        try shell.run()
        shell.waitUntilExit()
        // One read, not to end of file: the orphan may hold an inherited copy of the pipe.
        let orphan = try #require(Int32(String(decoding: output.fileHandleForReading.availableData, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)))
        defer { kill(orphan, SIGKILL) }
        let renamed = ContinuousClock.now
        #expect(rename(path, harness.pickup + "/orphan.eml") == 0)
        try await waitUntil("a warning naming the held file", timeout: Self.bound) {
            harness.log.contains("pickup/orphan.eml: not taken after")
        }
        let warnedAfter = ContinuousClock.now - renamed
        #expect(warnedAfter >= .seconds(9), "warned too early: \(warnedAfter)")
        #expect(FileManager.default.fileExists(atPath: harness.pickup + "/orphan.eml"))
        #expect(harness.log.contains("open for writing by another process"))
        kill(orphan, SIGKILL)
        try await waitUntil("the file to be taken once its last writer is gone", timeout: Self.bound) {
            harness.census()["orphan"] != nil
        }
        #expect(!FileManager.default.fileExists(atPath: harness.pickup + "/orphan.eml"))
        #expect(try await harness.stop() == 0)
    }

    @Test func unusableRecipientsAreReportedAndTheOthersDelivered() async throws {
        let harness = try Harness()
        try await harness.start()
        let header = "From: Carol <carol@example.com>\nTo: alice@example.com, jsmith\nCc: Mary Ann Smith mas@elsewhere.org, <bob@example.com plus words>\nCc: j"
        let bytes = Array(header.utf8) + [0xF6] + Array("rg@elsewhere.org\nSubject: hello\nX-Token: mixed\n\nbody\n".utf8)
        let staging = harness.root + "/staging"
        try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
        try Data(bytes).write(to: URL(fileURLWithPath: staging + "/mixed.eml"))
        #expect(rename(staging + "/mixed.eml", harness.pickup + "/mixed.eml") == 0)

        // The copies carry the Latin-1 byte as written, so they are read as bytes, not as UTF-8.
        func read(_ file: String) -> String {
            String(decoding: (try? Data(contentsOf: URL(fileURLWithPath: harness.spool + "/" + file))) ?? Data(), as: UTF8.self)
        }
        try await waitUntil("alice's copy and carol's report", timeout: Self.bound) {
            harness.files(under: "mailboxes/alice/new").count == 1 && harness.files(under: "mailboxes/carol/new").count == 1
        }
        #expect(read(harness.files(under: "mailboxes/alice/new")[0]).contains("X-Token: mixed"))
        let report = read(harness.files(under: "mailboxes/carol/new")[0])
        for element in ["jsmith", "Mary Ann Smith mas@elsewhere.org", "<bob@example.com plus words>", "j\\xF6rg@elsewhere.org"] {
            // The original uses LF line endings, and so does its report (issue 14: one convention per mailbox).
            #expect(report.contains("Final-Recipient: rfc822; \(element)\n"), "\(element) missing from the report:\n\(report)")
        }
        #expect(report.components(separatedBy: "Status: 5.1.3").count - 1 == 4)
        #expect(report.contains("has no @domain"))
        // Nothing went anywhere else: no invented address, no transcoded one.
        #expect(harness.files(under: "mailboxes").filter { $0.contains("/new/") }.count == 2)
        #expect(harness.files(under: "drop").isEmpty)
        // Tracking shows each unusable element as FAIL.
        let fails = harness.trackingLines("FAIL")
        #expect(fails.contains { $0.contains("\"jsmith\"") && $0.contains("5.1.3") })
        #expect(fails.count >= 4)
        #expect(try await harness.stop() == 0)
    }
}
