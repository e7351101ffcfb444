import Foundation
import Testing

/// Runs `postroom ARGS` with `input` on standard input.
func runPostroom(_ arguments: [String], input: String, directory: String = Harness.packageRoot) throws -> (status: Int32, output: String, error: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: Harness.binary)
    process.arguments = arguments
    process.currentDirectoryURL = URL(fileURLWithPath: directory)
    let stdin = Pipe(), out = Pipe(), err = Pipe()
    process.standardInput = stdin
    process.standardOutput = out
    process.standardError = err
    try process.run()
    stdin.fileHandleForWriting.write(Data(input.utf8))
    try stdin.fileHandleForWriting.close()
    let output = out.fileHandleForReading.readDataToEndOfFile()
    let error = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: output, as: UTF8.self), String(decoding: error, as: UTF8.self))
}

/// `postroom submit` and the replay envelope's DSN parameters (RET, ENVID, NOTIFY, ORCPT)
/// through the running daemon: kept in the queue, written to drop files, honoured for reports.
@Suite(.serialized) struct SubmitAndEnvelopeTests {
    @Test func submitQueuesIntoPickupAndReplayAndTheDaemonDeliversBoth() async throws {
        let harness = try Harness()
        try await harness.start()
        let plain = try runPostroom(["submit", "--spool", harness.spool],
                                    input: "From: zed@elsewhere.org\nTo: bob@example.com\nSubject: one\nX-Token: sub-1\n\nhi\n")
        #expect(plain.status == 0, "\(plain.error)")
        #expect(plain.output.hasPrefix(harness.pickup + "/") && plain.output.contains(".eml"))
        let replayed = try runPostroom(["submit", "--spool", harness.spool, "-f", "zed@elsewhere.org", "--", "carol@example.com"],
                                       input: "From: zed@elsewhere.org\nTo: somebody-else@example.org\nSubject: two\nX-Token: sub-2\n\nhi\n")
        #expect(replayed.status == 0, "\(replayed.error)")
        #expect(replayed.output.hasPrefix(harness.replay + "/"))
        try await waitUntil("both deliveries", timeout: 30) {
            let census = harness.census()
            return census["sub-1"] == ["mailbox:bob": 1] && census["sub-2"] == ["mailbox:carol": 1]
        }
        try await waitUntil("the queue to empty", timeout: 30) { harness.queuedFiles().isEmpty }
        #expect(harness.census().count == 2, "the replay envelope, not the To: header, decides: \(harness.census())")
        #expect(try await harness.stop() == 0)
    }

    @Test func checkAcceptsTheSmartHostExampleAndShowsItsHosts() throws {
        let spool = NSTemporaryDirectory() + "postroom-check-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: spool) }
        let result = try runPostroom(["check", "pipelines/smarthost.json5", "--spool", spool])
        #expect(result.status == 0, "\(result.error)")
        #expect(result.output.contains("outbound [smtp] SMTP:*;10 → 127.0.0.1:10025, relay2.example.net:25"))
    }

    @Test func submitExits75WhenTheSpoolIsMissingOrFull() throws {
        let missing = try runPostroom(["submit", "--spool", NSTemporaryDirectory() + "postroom-nothing-" + UUID().uuidString], input: "Subject: x\n\nx\n")
        #expect(missing.status == 75)
        #expect(missing.error.contains("does not exist"))
        let harness = try Harness()
        try FileManager.default.createDirectory(atPath: harness.pickup, withIntermediateDirectories: true)
        let full = try runPostroom(["submit", "--spool", harness.spool, "--min-free", "1000000GB"], input: "Subject: x\n\nx\n")
        #expect(full.status == 75)
        #expect(full.error.contains("full"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: harness.pickup).isEmpty, "nothing may be left behind")
        let usage = try runPostroom(["submit", "--spool", harness.spool, "someone@example.com"], input: "x")
        #expect(usage.status == 2)
    }

    @Test func dsnParametersSurviveIntoDropFilesAndDecideTheReports() async throws {
        let harness = try Harness()
        try await harness.start()
        // NOTIFY=SUCCESS to a local mailbox: a delivery notice to the sender, carrying ENVID.
        let notice = try runPostroom(["submit", "--spool", harness.spool, "-f", "zed@elsewhere.org", "-R", "HDRS", "-V", "env-42", "-N", "SUCCESS",
                                      "--", "alice@example.com"], input: "Subject: tell me\nX-Token: dsn-1\n\nhi\n")
        #expect(notice.status == 0, "\(notice.error)")
        // NOTIFY=NEVER: no report for the unknown local recipient; the parameters go on to the drop file.
        try harness.drop("X-Sender: <zed@elsewhere.org> RET=FULL ENVID=env-7\r\n"
            + "X-Receiver: <partner@elsewhere.org> NOTIFY=NEVER ORcpt=rfc822;partner@elsewhere.org\r\n"
            + "X-Receiver: <nobody@example.com> NOTIFY=NEVER\r\n"
            + "From: zed@elsewhere.org\r\nSubject: quiet\r\nX-Token: dsn-2\r\n\r\nhi\r\n", named: "dsn-2.eml", into: harness.replay)

        let outbound = { harness.files(under: "drop/outbound").filter { !($0 as NSString).lastPathComponent.hasPrefix(".") } }
        try await waitUntil("alice's copy, the partner's drop file and the notice", timeout: 30) {
            harness.census()["dsn-1"]?["mailbox:alice"] == 1 && outbound().count == 2
        }
        try await waitUntil("the queue to empty", timeout: 30) { harness.queuedFiles().isEmpty }
        let texts = try outbound().map { try String(contentsOfFile: harness.spool + "/" + $0, encoding: .utf8) }
        let partner = try #require(texts.first { $0.contains("X-Token: dsn-2") })
        #expect(partner.hasPrefix("X-Sender: <zed@elsewhere.org> RET=FULL ENVID=env-7\r\n"))
        #expect(partner.contains("X-Receiver: <partner@elsewhere.org> NOTIFY=NEVER ORcpt=rfc822;partner@elsewhere.org\r\n"))
        let report = try #require(texts.first { $0.contains("multipart/report") })
        #expect(report.contains("X-Receiver: <zed@elsewhere.org>"))
        #expect(report.contains("Action: delivered"))
        #expect(report.contains("Original-Envelope-Id: env-42"))
        #expect(report.contains("Subject: Delivered: tell me"))
        #expect(!texts.contains { $0.contains("nobody@example.com") && $0.contains("Action: failed") }, "NOTIFY=NEVER: no report")
        #expect(try await harness.stop() == 0)
    }
}
