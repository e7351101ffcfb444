import Foundation
import Testing

/// Hostile and broken files in pickup end as `.bad` (or a report) while normal mail keeps flowing.
@Suite(.serialized) struct HostileInputTests {
    @Test func hostileEntriesBecomeBadWithAReason() async throws {
        let harness = try Harness()
        try harness.useDefaultPipeline(replacing: [("maxMessageSize: \"35MB\"", "maxMessageSize: \"1MB\"")])
        try await harness.start()
        let staging = harness.root + "/staging"
        try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
        let fm = FileManager.default
        // Made elsewhere and moved in (IN_MOVED_TO) ...
        try fm.createSymbolicLink(atPath: staging + "/link.eml", withDestinationPath: "/etc/passwd")
        #expect(mkfifo(staging + "/fifo.eml", 0o644) == 0)
        try fm.createDirectory(atPath: staging + "/folder.eml", withIntermediateDirectories: false)
        try "From: z@elsewhere.org\nTo: alice@example.com\n\nlinked\n".write(toFile: staging + "/original", atomically: true, encoding: .utf8)
        try fm.linkItem(atPath: staging + "/original", toPath: staging + "/hardlink.eml")
        for name in ["link.eml", "fifo.eml", "folder.eml", "hardlink.eml"] {
            #expect(rename(staging + "/" + name, harness.pickup + "/" + name) == 0)
        }
        // ... and made in place (only IN_CREATE).
        try fm.createSymbolicLink(atPath: harness.pickup + "/inplace-link.eml", withDestinationPath: "/etc/shadow")
        #expect(mkfifo(harness.pickup + "/inplace-fifo.eml", 0o644) == 0)
        let socketPath = harness.pickup + "/socket.eml"
        let python = Process()
        python.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        python.arguments = ["-c", "import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])", socketPath]
        try python.run()
        python.waitUntilExit()
        // Oversized: a usable sender gets a 5.3.4 report, no sender means badmail; neither is read whole.
        let big = String(repeating: "x", count: 76) + "\n"
        try harness.drop("From: carol@example.com\nTo: bob@example.com\nX-Token: big\n\n" + String(repeating: big, count: 30_000), named: "big.eml")
        try harness.drop("To: bob@example.com\n\n" + String(repeating: big, count: 30_000), named: "big-nosender.eml")
        try harness.drop("\u{01}\u{02}binary garbage\u{00}\u{FF}", named: "garbage.eml")
        try harness.drop(Mail.message(0, token: "normal"), named: "normal.eml")

        let bad = ["link.eml", "fifo.eml", "folder.eml", "hardlink.eml", "inplace-link.eml", "inplace-fifo.eml", "socket.eml", "big-nosender.eml", "garbage.eml"]
        try await waitUntil("every hostile entry to be .bad", timeout: 60) {
            bad.allSatisfy { fm.fileExists(atPath: harness.pickup + "/" + $0 + ".bad.reason") }
        }
        for name in bad {
            let reason = try String(contentsOfFile: harness.pickup + "/" + name + ".bad.reason", encoding: .utf8)
            #expect(!reason.isEmpty && reason.hasSuffix("\n") && reason.split(separator: "\n").count == 1, "\(name): \(reason)")
            var info = stat()
            #expect(lstat(harness.pickup + "/" + name + ".bad", &info) == 0, "\(name).bad is missing")
        }
        #expect(try String(contentsOfFile: harness.pickup + "/link.eml.bad.reason", encoding: .utf8).contains("symbolic link"))
        #expect(try String(contentsOfFile: harness.pickup + "/fifo.eml.bad.reason", encoding: .utf8).contains("FIFO"))
        #expect(try String(contentsOfFile: harness.pickup + "/hardlink.eml.bad.reason", encoding: .utf8).contains("hard links"))
        try await waitUntil("the normal message and the size report", timeout: 60) {
            harness.census()["normal"] != nil && !harness.files(under: "mailboxes/carol/new").isEmpty
        }
        let report = try String(contentsOfFile: harness.spool + "/" + harness.files(under: "mailboxes/carol/new")[0], encoding: .utf8)
        #expect(report.contains("Status: 5.3.4"))
        // Only the report (which attaches the original header) carries the token: bob got nothing.
        #expect(harness.census()["big"] == ["mailbox:carol": 1])
        // The symlink target was never touched, and the daemon is still healthy.
        #expect(try fm.destinationOfSymbolicLink(atPath: harness.pickup + "/link.eml.bad") == "/etc/passwd")
        #expect(harness.process?.isRunning == true)
        #expect(try await harness.stop() == 0)
    }

    @Test func aFileStillBeingWrittenIsTakenOnlyWhenClosed() async throws {
        let harness = try Harness()
        try await harness.start()
        let path = harness.pickup + "/open.eml"
        let writer = try Harness.openForWriting(path)
        writer.write(Data("From: z@elsewhere.org\r\nTo: alice@example.com\r\nX-Token: open\r\n".utf8))
        // Other mail flows while the file is open; its IN_CREATE must not make it claimed half-written.
        try harness.drop(Mail.message(0, token: "meanwhile"), named: "meanwhile.eml")
        try await waitUntil("the other message", timeout: 30) { harness.census()["meanwhile"] != nil }
        #expect(FileManager.default.fileExists(atPath: path))
        writer.write(Data("\r\nthe complete body\r\n".utf8))
        try writer.close()
        try await waitUntil("the slow message", timeout: 30) { harness.census()["open"] != nil }
        let delivered = harness.files(under: "mailboxes/alice/new").compactMap { try? String(contentsOfFile: harness.spool + "/" + $0, encoding: .utf8) }
        #expect(delivered.contains { $0.contains("X-Token: open") && $0.contains("the complete body") })
        #expect(try await harness.stop() == 0)
    }
}
