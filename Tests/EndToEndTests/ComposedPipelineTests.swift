import Foundation
import Testing

/// End-to-end: `pipelines/composed.json5` (headers, filter and journal between ingest and deliver) on the real binary.
@Suite(.serialized) struct ComposedPipelineTests {
    func contents(_ harness: Harness, _ relative: String) -> String {
        (try? String(contentsOfFile: harness.spool + "/" + relative, encoding: .utf8)) ?? ""
    }

    @Test func headersFilterAndJournalWorkTogether() async throws {
        let harness = try Harness(pipeline: Harness.packageRoot + "/pipelines/composed.json5")
        try await harness.start()
        try harness.drop("From: Sender <sender@elsewhere.org>\r\nTo: alice@example.com\r\nSubject: normal\r\nX-Internal-Note: secret\r\nX-Token: n1\r\n\r\nHello Alice.\r\n",
                         named: "normal.eml")
        try harness.drop("From: Spammer <bad@spam.example>\r\nTo: alice@example.com\r\nSubject: buy now\r\nX-Token: s1\r\n\r\nBuy.\r\n",
                         named: "spam.eml")
        try harness.drop("From: Sender <sender@elsewhere.org>\r\nTo: bob@example.com\r\nSubject: check me\r\nX-Hold: yes\r\nX-Token: h1\r\n\r\nHold this.\r\n",
                         named: "hold.eml")

        // The normal message: delivered with the added header, without the removed one, and journaled.
        try await waitUntil("the normal message in alice's mailbox", timeout: 30) {
            harness.files(under: "mailboxes/alice/new").contains { self.contents(harness, $0).contains("X-Token: n1") }
        }
        let delivered = try #require(harness.files(under: "mailboxes/alice/new").first { contents(harness, $0).contains("X-Token: n1") })
        let text = contents(harness, delivered)
        #expect(text.contains("X-Postroom-Pipeline: composed\r\n"))
        #expect(!text.contains("X-Internal-Note"))
        try await waitUntil("the journal copy", timeout: 30) {
            harness.files(under: "journal").contains { self.contents(harness, $0).contains("X-Token: n1") }
        }
        let copy = try #require(harness.files(under: "journal").first { contents(harness, $0).contains("X-Token: n1") })
        #expect(contents(harness, copy).hasPrefix("X-Sender: <sender@elsewhere.org>\r\nX-Receiver: <alice@example.com>\r\n"))
        #expect(!contents(harness, copy).contains("X-Internal-Note"))

        // The spam sender's message: only a report, to the sender, through the outbound connector.
        try await waitUntil("the report to the spam sender", timeout: 30) {
            harness.files(under: "drop/outbound").contains { self.contents(harness, $0).contains("X-Receiver: <bad@spam.example>") }
        }
        let reports = harness.files(under: "drop/outbound")
        #expect(reports.count == 1, "\(reports)")
        let report = contents(harness, reports[0])
        #expect(report.hasPrefix("X-Sender: <>\r\n"))
        #expect(report.contains("report-type=delivery-status"))
        #expect(report.contains("Status: 5.7.1"))
        #expect(report.contains("mail from spam.example is not accepted"))

        // The flagged message: durably held, not delivered.
        try await waitUntil("the held entry", timeout: 30) { !harness.files(under: "queue/hold").isEmpty }
        let held = harness.files(under: "queue/hold").filter { !($0 as NSString).lastPathComponent.hasPrefix(".") }
        #expect(held.count == 1, "\(held)")
        #expect(contents(harness, held[0]).contains("X-Token: h1"))

        // Every message has reached its end (delivered, reported, or parked in hold/), so what
        // has not been delivered by now never will be.
        try await waitUntil("the queue to settle", timeout: 30) {
            harness.queuedFiles().filter { !$0.hasPrefix("queue/hold/") }.isEmpty
        }
        let mailboxFiles = harness.deliveredFiles().filter { $0.hasPrefix("mailboxes/") }
        #expect(mailboxFiles == [delivered], "only the normal message reaches a mailbox: \(mailboxFiles)")
        #expect(!harness.files(under: "mailboxes/bob").contains { contents(harness, $0).contains("X-Token: h1") })
        #expect(try await harness.stop() == 0)
    }
}
