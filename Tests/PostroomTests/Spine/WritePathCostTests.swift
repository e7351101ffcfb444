import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import Postroom

/// The cheaper write path of issue 13: what each saving relies on still holds.
@Suite("Write path cost")
struct WritePathCostTests {
    static func folder() throws -> String {
        let path = NSTemporaryDirectory() + "postroom-cost-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    @Test func aChildsCPUTimeAndExitStatusComeBackFromWait4() async throws {
        // A shell loop burns measurable user time; the usage must be the child's, not ours.
        // posix_spawn, not Foundation's Process, which reaps its children itself.
        let words: [String] = ["/bin/sh", "-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; exit 3"]
        let argv: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        try #require(posix_spawn(&pid, "/bin/sh", nil, nil, argv, environ) == 0)
        var outcome = ChildProcess.reap(pid)
        let deadline = ContinuousClock.now + .seconds(60)
        while case .running = outcome, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
            outcome = ChildProcess.reap(pid)
        }
        guard case .ended(let status, let usage) = outcome else {
            Issue.record("the child was not reaped: \(outcome)")
            return
        }
        #expect((status >> 8) & 0xff == 3)
        #expect(usage.userSeconds > 0.01)
        #expect(usage.cpuSeconds >= usage.userSeconds)
        #expect(usage.peakResidentBytes > 0)
        // Reaped once: a second look finds no such child.
        #expect(ChildProcess.reap(pid) != .running)
        let fields = BenchRun.cpuFields(usage, messages: 10)
        #expect(fields.contains(" cpu_ms_per_msg=") && fields.contains(" cpu_user_ms_per_msg=") && fields.contains(" cpu_sys_ms_per_msg="))
        let perMessage = BenchRun.cpuPerMessage(usage, messages: 10)
        #expect(abs(perMessage.total - usage.cpuSeconds * 100) < 1e-9)
    }

    @Test func aRegularFileIsReadWholeInOneCallAtAnySize() throws {
        let dir = try Self.folder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for size in [0, 1, 4095, 4096, 70_000] {
            let bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            let path = dir + "/f\(size)"
            try FileSystem.writeAtomically(bytes, to: path, sync: false)
            let file = try OpenFile.open(path, flags: O_RDONLY)
            #expect(try file.read(upTo: size + 1, regularFile: true) == bytes)
            // A limit below the size stops at the limit.
            let again = try OpenFile.open(path, flags: O_RDONLY)
            #expect(try again.read(upTo: size / 2, regularFile: true) == Array(bytes.prefix(size / 2)))
        }
    }

    @Test func aMailboxRemovedWhileRunningIsMadeAgain() async throws {
        let spool = try Self.folder()
        defer { try? FileManager.default.removeItem(atPath: spool) }
        let data = Data(#"{"name":"mailbox","type":"maildir","domains":["example.com"],"path":"mailboxes/{user}"}"#.utf8)
        let configuration = try ConfigFile.decode(ConnectorConfiguration.self, from: data, file: "test.json5")
        let connector = MaildirConnector(configuration: configuration, spool: spool, hostname: "host", directorySync: DirectorySync())
        func entry(_ number: Int) -> QueueEntry {
            var entry = QueueEntry(id: "0000000001A.\(number)", queueID: "0000000001A", connector: "mailbox",
                                   envelope: Envelope(sender: "z@elsewhere.org", recipients: [EnvelopeRecipient(address: "alice@example.com")]),
                                   mailboxes: ["alice@example.com": "alice"], messageID: "<m@x>", source: .pickup, arrival: Date(), size: 0)
            entry.isFresh = true
            return entry
        }
        let message = Array("Subject: hi\r\n\r\nhello\r\n".utf8)
        #expect(await connector.deliver(entry(1), message: message) == [.delivered])
        // The folders are remembered as made; removing them behind the connector's back must not lose mail.
        try FileManager.default.removeItem(atPath: spool + "/mailboxes/alice")
        #expect(await connector.deliver(entry(2), message: message) == [.delivered])
        let delivered = try FileManager.default.contentsOfDirectory(atPath: spool + "/mailboxes/alice/new")
        #expect(delivered.count == 1 && delivered[0].contains("Q0000000001A.2R"))
    }

    @Test func trackingLinesWaitForTheirBatchButOperatorEventsDoNot() async throws {
        let dir = try Self.folder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/tracking.log"
        let log = try TrackingLog(path: path, bufferBytes: 1 << 20, flushAfter: .milliseconds(300))
        func lines() -> Int { ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").count }
        try log.append(TrackingLogTests.event("Q1"))
        try log.append(TrackingLogTests.event("Q2"))
        // One write for the batch, made by the timer without any further call.
        let deadline = ContinuousClock.now + .seconds(30)
        while lines() < 2, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(lines() == 2)
        var admin = TrackingLogTests.event("Q3", .remove)
        admin.source = .admin
        try log.append(admin, writeNow: true)
        #expect(lines() == 3)
        try log.close()
        #expect(TrackingLogReader.events(in: path).map(\.queueID) == ["Q1", "Q2", "Q3"])
    }
}
