import Foundation
import Testing

/// `kill -9` at the instants where the power-loss suite found defects (issue 13): reports made
/// twice, a healthy message parked as poison, damaged queue files skipped in silence.
@Suite(.serialized) struct CrashDefectTests {
    static func outboundReports(_ harness: Harness) -> [String] {
        harness.files(under: "drop/outbound").filter { !$0.contains("/.") }.filter {
            ((try? String(contentsOfFile: harness.spool + "/" + $0, encoding: .utf8)) ?? "").contains("multipart/report")
        }
    }

    @Test func aKillBetweenQueueingAndReleaseSendsTheReportOnce() async throws {
        let harness = try Harness()
        // The deliver stage writes the report, queues the entries, then releases the claimed file: die in between.
        try await harness.start(environment: ["POSTROOM_TEST_KILL_AT": "store:1"], expectRunning: false)
        try harness.drop("From: <zed@elsewhere.org>\r\nTo: alice@example.com, nobody@example.com\r\nX-Token: once\r\n\r\nbody\r\n", named: "once.eml")
        let process = try #require(harness.process)
        try await waitUntil("the injected kill", timeout: 30) { !process.isRunning }
        harness.process = nil
        try await harness.start()
        try await waitUntil("the delivery and the report", timeout: 30) { harness.census()["once"]?.count == 2 }
        try await waitUntil("the queue to empty", timeout: 30) { harness.queuedFiles().isEmpty }
        #expect(harness.census()["once"] == ["mailbox:alice": 1, "drop:outbound": 1])
        #expect(Self.outboundReports(harness).count == 1)
        #expect(harness.queued("poison").isEmpty, "one kill must not park a message as poison")
        #expect(try await harness.stop() == 0)
    }

    @Test func aKillBetweenAnExpiryReportAndTheRemovalSendsTheReportOnce() async throws {
        let harness = try Harness()
        try harness.useDefaultPipeline(replacing: [
            ("dropDirectory: \"drop/fax\", quota: \"100MB\", filePerRecipient: true", "dropDirectory: \"drop/fax\", quotaFiles: 0"),
            ("deliver\", retry: { first: \"1m\", max: \"1h\" }, expireAfter: \"2d\", delayNotice: \"4h\"",
             "deliver\", retry: { first: \"250ms\", max: \"500ms\" }, expireAfter: \"2s\", delayNotice: 0"),
        ])
        // The first entry removed is the expired fax: its report is durable, then the daemon dies.
        try await harness.start(environment: ["POSTROOM_TEST_KILL_AT": "remove:1"], expectRunning: false)
        try harness.drop("From: Carol <carol@example.com>\r\nTo: fax-desk@example.com\r\nX-Token: expiring\r\n\r\nfax\r\n", named: "expiring.eml")
        let process = try #require(harness.process)
        try await waitUntil("the injected kill", timeout: 30) { !process.isRunning }
        harness.process = nil
        try await harness.start()
        try await waitUntil("the report", timeout: 30) { !harness.files(under: "mailboxes/carol/new").isEmpty }
        try await waitUntil("the queue to empty", timeout: 30) { harness.queuedFiles().isEmpty }
        try await Task.sleep(for: .seconds(1))  // a second report would follow within a retry interval (500 ms)
        let reports = harness.files(under: "mailboxes/carol/new")
        #expect(reports.count == 1, "\(reports)")
        #expect(try await harness.stop() == 0)
    }

    @Test func aDamagedQueueEntryIsLoggedCountedAndMovedAside() async throws {
        let harness = try Harness()
        try await harness.start()
        #expect(try await harness.stop() == 0)
        // What a power cut leaves where fsync did not work: an empty entry, and one cut short.
        try Data().write(to: URL(fileURLWithPath: harness.spool + "/queue/active/0000000000001.1"))
        try Data("POSTROOM-QUEUE 1\n{\"id\":\"0000000000002.1\",".utf8).write(to: URL(fileURLWithPath: harness.spool + "/queue/deferred/0000000000002.1"))
        try await harness.start()
        try await waitUntil("both files moved aside", timeout: 30) { harness.queued("damaged").count == 4 }
        #expect(harness.queued("damaged") == ["active.0000000000001.1", "active.0000000000001.1.reason",
                                              "deferred.0000000000002.1", "deferred.0000000000002.1.reason"])
        #expect(harness.queued("active").isEmpty && harness.queued("deferred").isEmpty)
        #expect(harness.log.contains("queue file \(harness.spool)/queue/active/0000000000001.1 is damaged (empty (0 bytes))"), "\(harness.log)")
        let listing = try harness.command(["queue", "list"])
        #expect(listing.error.contains("2 damaged queue file(s)") && listing.error.contains("active.0000000000001.1"), "\(listing.error)")
        #expect(try await harness.stop() == 0)
        let metrics = try String(contentsOfFile: harness.spool + "/metrics.prom", encoding: .utf8)
        #expect(metrics.contains("postroom_queue_damaged_files_total{pipeline=\"default\"} 2"), "\(metrics.split(separator: "\n").filter { $0.contains("damaged") })")
    }
}
