import Foundation
import Testing

/// Operator commands against a running daemon, quotas, poison, and independent connectors.
@Suite(.serialized) struct QueueManagementTests {
    static func faxMessage(_ token: String) -> String {
        "From: Zed <zed@elsewhere.org>\r\nTo: fax-desk@example.com\r\nSubject: \(token)\r\nX-Token: \(token)\r\n\r\nfax \(token)\r\n"
    }

    static func faxDrops(_ harness: Harness) -> [String] { harness.files(under: "drop/fax").filter { !$0.contains("/.") } }

    @Test func holdReleaseRetryRemoveOnARunningDaemon() async throws {
        let harness = try Harness()
        // One file fills the fax drop directory; retries are an hour apart, so only an operator's retry delivers now.
        try harness.useDefaultPipeline(replacing: [
            ("dropDirectory: \"drop/fax\", quota: \"100MB\", filePerRecipient: true", "dropDirectory: \"drop/fax\", quotaFiles: 1"),
            ("retry: { first: \"1m\", max: \"1h\" }", "retry: { first: \"1h\", max: \"2h\" }"),
        ])
        try await harness.start()
        try harness.drop(Self.faxMessage("first"), named: "first.eml")
        try await waitUntil("the first fax", timeout: 30) { Self.faxDrops(harness).count == 1 }
        try harness.drop(Self.faxMessage("held"), named: "a.eml")
        try await waitUntil("one deferred entry", timeout: 30) { harness.queued("deferred").count == 1 }
        let held = harness.queued("deferred")[0]
        try harness.drop(Self.faxMessage("retried"), named: "b.eml")
        try await waitUntil("two deferred entries", timeout: 30) { harness.queued("deferred").count == 2 }
        let retried = harness.queued("deferred").first { $0 != held }!

        let listing = try harness.command(["queue", "list"])
        #expect(listing.status == 0)
        #expect(listing.output.contains(held) && listing.output.contains("deferred") && listing.output.contains("over its quota"))

        let hold = try harness.command(["queue", "hold", held])
        #expect(hold.status == 0, "\(hold.error)")
        #expect(harness.queued("hold") == [held])

        // The consumer takes the fax; an operator retry delivers the deferred entry but not the held one.
        for file in Self.faxDrops(harness) { try FileManager.default.removeItem(atPath: harness.spool + "/" + file) }
        let retry = try harness.command(["queue", "retry", "--all"])
        #expect(retry.status == 0, "\(retry.error)")
        try await waitUntil("the retried fax", timeout: 30) { Self.faxDrops(harness).contains { $0.contains(retried) } }
        #expect(harness.queued("hold") == [held])
        #expect(Self.faxDrops(harness).count == 1)

        for file in Self.faxDrops(harness) { try FileManager.default.removeItem(atPath: harness.spool + "/" + file) }
        let release = try harness.command(["queue", "release", held])
        #expect(release.status == 0, "\(release.error)")
        try await waitUntil("the released fax", timeout: 30) { Self.faxDrops(harness).contains { $0.contains(held) } }
        #expect(harness.queued("hold").isEmpty)

        try harness.drop(Self.faxMessage("removed"), named: "c.eml")
        try await waitUntil("a deferred entry", timeout: 30) { harness.queued("deferred").count == 1 }
        let removed = harness.queued("deferred")[0]
        let remove = try harness.command(["queue", "remove", removed])
        #expect(remove.status == 0, "\(remove.error)")
        #expect(harness.queued("deferred").isEmpty)
        #expect(try harness.command(["queue", "show", removed]).status == 1)

        for event in ["HOLD", "RELEASE", "RETRY", "REMOVE", "DEFER"] {
            #expect(!harness.trackingLines(event).isEmpty, "no \(event) event in the tracking log")
        }
        #expect(try await harness.stop() == 0)
        #expect(harness.census()["removed"] == nil)
    }

    @Test func commandsWorkOnAStoppedSpool() async throws {
        let harness = try Harness()
        try harness.useDefaultPipeline(replacing: [("dropDirectory: \"drop/fax\", quota: \"100MB\", filePerRecipient: true", "dropDirectory: \"drop/fax\", quotaFiles: 0")])
        try await harness.start()
        try harness.drop(Self.faxMessage("parked"), named: "p.eml")
        try await waitUntil("a deferred entry", timeout: 30) { harness.queued("deferred").count == 1 }
        #expect(try await harness.stop() == 0)
        let id = harness.queued("deferred")[0]
        #expect(try harness.command(["queue", "hold", id]).status == 0)
        #expect(harness.queued("hold") == [id])
        let json = try harness.command(["queue", "list", "--json"])
        #expect(json.output.contains("\"state\" : \"hold\""))
        #expect(try harness.command(["queue", "release", id]).status == 0)
        #expect(harness.queued("active") == [id])
        #expect(try harness.command(["queue", "frobnicate"]).status == 2)
    }

    @Test func aMessageThatCrashesTheDaemonTwiceIsParkedAsPoison() async throws {
        let harness = try Harness()
        let crash = ["POSTROOM_TEST_CRASH_MARKER": "CRASH-ME-NOW"]
        for round in 1...2 {
            if round == 1 {
                try await harness.start(environment: crash)
                try harness.drop("From: z@elsewhere.org\r\nTo: alice@example.com\r\nSubject: CRASH-ME-NOW\r\n\r\nboom\r\n", named: "poison.eml")
            } else {
                try await harness.start(environment: crash)
            }
            let process = harness.process!
            try await waitUntil("the crash in round \(round)", timeout: 30) { !process.isRunning }
            #expect(process.terminationReason == .uncaughtSignal)
            harness.process = nil
        }
        try await harness.start(environment: crash)
        try harness.drop(Mail.message(0, token: "healthy"), named: "healthy.eml")
        try await waitUntil("the healthy message", timeout: 30) { harness.census()["healthy"] != nil }
        #expect(harness.queued("poison").count == 1)
        #expect(harness.queued("poison").first?.hasSuffix("poison.eml") == true)
        #expect(harness.log.contains("parked as poison"))
        // The daemon writes the tracking log in batches (within 25 ms).
        try? await waitUntil("the POISON event", timeout: 10) { !harness.trackingLines("POISON").isEmpty }
        #expect(!harness.trackingLines("POISON").isEmpty)
        #expect(try await harness.stop() == 0)
    }

    @Test func aStuckConnectorDoesNotDelayTheOthers() async throws {
        let harness = try Harness()
        try harness.useDefaultPipeline(replacing: [("dropDirectory: \"drop/fax\", quota: \"100MB\", filePerRecipient: true", "dropDirectory: \"drop/fax\", quotaFiles: 0")])
        try await harness.start()
        for index in 0..<20 {
            try harness.drop("From: z@elsewhere.org\r\nTo: fax-desk@example.com, alice@example.com, someone@elsewhere.org\r\nX-Token: s\(index)\r\n\r\nx\r\n", named: "s\(index).eml")
        }
        // Every mailbox and outbound copy arrives while every fax copy waits on the full drop directory.
        try await waitUntil("mailbox and outbound copies", timeout: 60) {
            harness.census().values.filter { $0["mailbox:alice"] == 1 && $0["drop:outbound"] == 1 }.count == 20
        }
        #expect(Self.faxDrops(harness).isEmpty)
        try await waitUntil("20 deferred fax entries", timeout: 30) { harness.queued("deferred").count == 20 }
        #expect(try await harness.stop() == 0)
    }
}

/// Retry timing in the queue: a delay notice, then expiry with a report.
@Suite(.serialized) struct ExpiryTests {
    @Test func aMessageThatCannotBeDeliveredGetsADelayNoticeThenExpires() async throws {
        let harness = try Harness()
        try harness.useDefaultPipeline(replacing: [
            ("dropDirectory: \"drop/fax\", quota: \"100MB\", filePerRecipient: true", "dropDirectory: \"drop/fax\", quotaFiles: 0"),
            ("deliver\", retry: { first: \"1m\", max: \"1h\" }, expireAfter: \"2d\", delayNotice: \"4h\"",
             "deliver\", retry: { first: \"250ms\", max: \"500ms\" }, expireAfter: \"3s\", delayNotice: \"1s\""),
        ])
        try await harness.start()
        try harness.drop("From: Carol <carol@example.com>\r\nTo: fax-desk@example.com\r\nSubject: stuck fax\r\nX-Token: stuck\r\n\r\nfax\r\n", named: "stuck.eml")
        // carol gets first a delay notice (action delayed), then the expiry report (4.4.7, failed).
        try await waitUntil("two reports to carol", timeout: 60) { harness.files(under: "mailboxes/carol/new").count == 2 }
        try await waitUntil("the queue to empty", timeout: 30) { harness.queuedFiles().isEmpty }
        let reports = try harness.files(under: "mailboxes/carol/new").map { try String(contentsOfFile: harness.spool + "/" + $0, encoding: .utf8) }
        #expect(reports.contains { $0.contains("Action: delayed") && $0.contains("Subject: Delivery delayed") })
        #expect(reports.contains { $0.contains("Action: failed") && $0.contains("Status: 4.4.7") && $0.contains("expired") })
        #expect(harness.files(under: "drop/fax").isEmpty)
        #expect(try await harness.stop() == 0)
    }
}
