import Foundation
import Testing

/// The default pipeline's routing contract, end to end.
@Suite(.serialized) struct RoutingScenarioTests {
    @Test func groupContactImceaUnknownAndExternalRecipients() async throws {
        let harness = try Harness()
        try await harness.start()
        try harness.drop("""
        From: Carol <carol@example.com>\r
        To: team@example.com, fax-desk@example.com, IMCEAFAX-+2B15559876@example.com\r
        Cc: nobody@example.com, someone@elsewhere.org\r
        Subject: routing scenario\r
        X-Token: scenario\r
        \r
        Hello.\r

        """, named: "scenario.eml")
        // Six visible files: alice, bob, two faxes, one outbound, and the report to carol.
        try await waitUntil("six deliveries", timeout: 60) { harness.deliveredFiles().count >= 6 }
        try await waitUntil("the queue to empty", timeout: 30) { harness.queuedFiles().isEmpty }
        let census = harness.census()
        // carol's copy is the report, which attaches the original header (and so its X-Token).
        #expect(census["scenario"] == ["mailbox:alice": 1, "mailbox:bob": 1, "drop:fax": 2, "drop:outbound": 1, "mailbox:carol": 1])
        let faxes = harness.files(under: "drop/fax").map { try? String(contentsOfFile: harness.spool + "/" + $0, encoding: .utf8) }
        #expect(faxes.contains { $0?.contains("X-Receiver: <FAX:+15551234>") == true })
        #expect(faxes.contains { $0?.contains("X-Receiver: <FAX:+15559876>") == true })
        // The report: to the sender only, about nobody@ only, from postmaster with the null envelope sender.
        let reports = harness.files(under: "mailboxes/carol/new")
        #expect(reports.count == 1)
        let report = try String(contentsOfFile: harness.spool + "/" + reports[0], encoding: .utf8)
        #expect(report.contains("Return-Path: <>"))
        #expect(report.contains("From: Mail Delivery System <postmaster@example.com>"))
        #expect(report.contains("multipart/report; report-type=delivery-status"))
        #expect(report.contains("Final-Recipient: rfc822; nobody@example.com"))
        #expect(report.contains("Status: 5.1.1"))
        #expect(!report.contains("Final-Recipient: rfc822; someone@elsewhere.org"))
        #expect(harness.deliveredFiles().count == 6)
        // The tracking log tells the whole story, and trace finds it by Message-ID from any copy.
        let events = ["RECEIVE", "EXPAND", "RESOLVE", "ROUTE", "SUBMIT", "DELIVER", "DROP", "DSN"]
        // The daemon writes the tracking log in batches (within 25 ms), so the last lines may follow the files.
        try? await waitUntil("every event in the tracking log", timeout: 10) { events.allSatisfy { !harness.trackingLines($0).isEmpty } }
        for event in events {
            #expect(!harness.trackingLines(event).isEmpty, "no \(event) event")
        }
        let outbound = harness.files(under: "drop/outbound")[0]
        let queueID = String((outbound as NSString).lastPathComponent.split(separator: ".")[0])
        let trace = try harness.command(["trace", queueID])
        #expect(trace.status == 0, "\(trace.error)")
        for word in ["RECEIVE", "EXPAND", "ROUTE", "DELIVER", "DROP", "mailbox", "fax", "outbound"] {
            #expect(trace.output.contains(word), "trace lacks \(word): \(trace.output)")
        }
        #expect(try await harness.stop() == 0)
    }

    @Test func explainShowsResolutionAndNextHops() throws {
        let folder = NSTemporaryDirectory() + "postroom-explain-test-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let file = folder + "/m.eml"
        try "From: z@elsewhere.org\nTo: team@example.com, IMCEAFAX-+2B15559876@example.com, nobody@example.com\n\nx\n".write(toFile: file, atomically: true, encoding: .utf8)
        let result = try runPostroom(["explain", file])
        #expect(result.status == 0, "\(result.error)")
        #expect(result.output.contains("team@example.com -> alice@example.com => mailbox"))
        #expect(result.output.contains("IMCEAFAX-+2B15559876@example.com -> FAX:+15559876 => fax"))
        #expect(result.output.contains("nobody@example.com: 5.1.1"))
        #expect(!FileManager.default.fileExists(atPath: Harness.packageRoot + "/spool/queue"))
    }
}
