import Foundation
import Testing

/// End-to-end: pipelines/agent.json5 with its SMS gateway script, run by the real binary.
@Suite(.serialized) struct AgentPipelineTests {
    /// A harness running a copy of pipelines/agent.json5 (with its directory file and script
    /// beside it) whose retries come after 1 s, at most 2 s, so a deferral is seen to recover.
    static func agentHarness() throws -> Harness {
        let harness = try Harness()
        let source = Harness.packageRoot + "/pipelines"
        let folder = harness.root + "/pipelines"
        try FileManager.default.createDirectory(atPath: folder + "/examples", withIntermediateDirectories: true)
        for file in ["directory.json5", "examples/sms-gateway.sh"] {
            try FileManager.default.copyItem(atPath: source + "/" + file, toPath: folder + "/" + file)
        }
        let original = try String(contentsOfFile: source + "/agent.json5", encoding: .utf8)
        let fast = original.replacingOccurrences(of: #"retry: { first: "1m", max: "1h" }"#, with: #"retry: { first: "1s", max: "2s" }"#)
        #expect(fast != original, "the retry settings of pipelines/agent.json5 moved; update this test")
        try fast.write(toFile: folder + "/agent.json5", atomically: true, encoding: .utf8)
        harness.pipeline = folder + "/agent.json5"
        return harness
    }

    static func sms(to recipient: String, token: String) -> String {
        "X-Sender: <alice@example.com>\r\nX-Receiver: <\(recipient)>\r\nFrom: Alice <alice@example.com>\r\n"
            + "To: \(recipient)\r\nSubject: text me\r\nX-Token: \(token)\r\n\r\nCall me back.\r\n"
    }

    /// Messages the gateway script has "sent" (its outbox, without temporaries).
    static func outbox(_ harness: Harness) -> [String] {
        harness.files(under: "sms/outbox").filter { !($0 as NSString).lastPathComponent.hasPrefix(".") }
    }

    @Test func smsIsDeliveredThroughTheScriptAndABadNumberIsReported() async throws {
        let harness = try Self.agentHarness()
        try await harness.start()
        try harness.drop(Self.sms(to: "SMS:+15551230", token: "sms-1"), named: "sms-1.eml", into: harness.replay)
        try harness.drop(Self.sms(to: "SMS:12ab", token: "sms-bad"), named: "sms-bad.eml", into: harness.replay)

        try await waitUntil("the SMS in the gateway outbox", timeout: 30) { Self.outbox(harness).count == 1 }
        let sent = try #require(Self.outbox(harness).first)
        #expect(sent.hasSuffix("-15551230.txt"))
        let text = try String(contentsOfFile: harness.spool + "/" + sent, encoding: .utf8)
        #expect(text.contains("X-Token: sms-1"))
        #expect(text.contains("Call me back."))

        // Exit 64 with "5.1.3 ..." first: a non-delivery report to the sender, with that code.
        let reports = { harness.files(under: "mailboxes/alice").filter { $0.contains("/new/") } }
        try await waitUntil("the non-delivery report to alice", timeout: 30) { !reports().isEmpty }
        let report = try String(contentsOfFile: harness.spool + "/" + reports()[0], encoding: .utf8)
        #expect(report.contains("5.1.3"))
        #expect(report.contains("invalid SMS number"))

        try await waitUntil("the queue to empty", timeout: 30) { harness.queuedFiles().isEmpty }
        #expect(Self.outbox(harness).count == 1)
        #expect(try await harness.stop() == 0)
    }

    @Test func smsWaitsWhileTheGatewayIsDownAndIsDeliveredAfterwards() async throws {
        let harness = try Self.agentHarness()
        let marker = harness.spool + "/sms/gateway-down"
        try FileManager.default.createDirectory(atPath: harness.spool + "/sms", withIntermediateDirectories: true)
        try Data().write(to: URL(fileURLWithPath: marker))
        try await harness.start()
        try harness.drop(Self.sms(to: "SMS:+15551230", token: "sms-down"), named: "sms-down.eml", into: harness.replay)

        try await waitUntil("the message to be deferred", timeout: 30) { !harness.files(under: "queue/deferred").isEmpty }
        #expect(Self.outbox(harness).isEmpty)
        try await waitUntil("the deferral in the log", timeout: 10) { harness.log.contains("SMS gateway is down") }

        try FileManager.default.removeItem(atPath: marker)
        try await waitUntil("the SMS after the gateway is back", timeout: 30) { Self.outbox(harness).count == 1 }
        try await waitUntil("the queue to empty", timeout: 30) { harness.queuedFiles().isEmpty }
        let text = try String(contentsOfFile: harness.spool + "/" + Self.outbox(harness)[0], encoding: .utf8)
        #expect(text.contains("X-Token: sms-down"))
        #expect(harness.files(under: "mailboxes/alice").filter { $0.contains("/new/") }.isEmpty, "no report for a deferral")
        #expect(try await harness.stop() == 0)
    }
}
