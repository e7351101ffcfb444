import Foundation
import Testing
@testable import Postroom

@Suite("DeliveryStatusNotification")
struct DeliveryStatusNotificationTests {
    typealias S = MessageTestSupport

    private let original = S.bytes("From: Alice <alice@example.com>\nTo: bob@example.com\nSubject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\nDate: Mon, 23 Nov 2026 09:00:00 +0000\nMessage-ID: <orig@example.com>\n\nThe body must not be attached.\n")

    private func build(
        _ failed: [FailedRecipient], sender: String = "alice@example.com",
        recipients: [EnvelopeRecipient] = [EnvelopeRecipient(address: "bob@example.com")]
    ) -> (envelope: Envelope, message: [UInt8])? {
        DeliveryStatusNotification.build(
            about: Envelope(sender: sender, recipients: recipients), originalMessage: original,
            originalMessageID: "<orig@example.com>", failed: failed, reportingDomain: "example.com",
            reportingHost: "mx1.example.com", now: S.now, messageID: "ndr1@example.com")
    }

    /// The parts of a multipart message, each parsed as a message (part header + content).
    private func parts(of message: RFC5322Message) throws -> [RFC5322Message] {
        let contentType = try #require(message.value(of: "Content-Type"))
        let boundary = try #require(contentType.split(separator: "\"").dropFirst().first.map(String.init))
        let body = S.text(Array(message.body))
        let chunks = body.components(separatedBy: "--\(boundary)")
        #expect(chunks.last?.hasPrefix("--") == true)
        return try chunks.dropFirst().dropLast().map { chunk in
            // "\r\n" is one Character, so dropFirst() removes the line break after the boundary.
            try RFC5322Message(parsing: S.bytes(String(chunk.dropFirst())))
        }
    }

    @Test func nonDeliveryReportStructure() throws {
        let result = try #require(build([FailedRecipient(address: "bob@example.com", status: "5.1.1", diagnostic: "mailbox unknown")]))
        #expect(result.envelope == Envelope(sender: "", recipients: [EnvelopeRecipient(address: "alice@example.com")]))
        let message = try RFC5322Message(parsing: result.message)
        #expect(message.lineEnding == "\r\n")
        #expect(!S.text(result.message).replacingOccurrences(of: "\r\n", with: "").contains("\n"))
        #expect(message.value(of: "From") == "Mail Delivery System <postmaster@example.com>")
        #expect(message.value(of: "To") == "<alice@example.com>")
        #expect(message.value(of: "Subject") == "Undeliverable: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=")
        #expect(message.value(of: "Message-ID") == "<ndr1@example.com>")
        #expect(message.value(of: "In-Reply-To") == "<orig@example.com>")
        #expect(message.value(of: "Auto-Submitted") == "auto-replied")
        #expect(message.value(of: "Content-Type")?.hasPrefix("multipart/report; report-type=delivery-status;") == true)

        let sections = try parts(of: message)
        #expect(sections.count == 3)
        #expect(sections[0].value(of: "Content-Type") == "text/plain; charset=utf-8")
        let text = S.text(Array(sections[0].body))
        #expect(text.contains("bob@example.com"))
        #expect(text.contains("Grüße"))
        #expect(text.contains("check the address"))

        #expect(sections[1].value(of: "Content-Type") == "message/delivery-status")
        let status = S.text(Array(sections[1].body))
        #expect(status.contains("Reporting-MTA: dns; mx1.example.com\r\n"))
        #expect(status.contains("Arrival-Date: Mon, 23 Nov 2026 09:36:18 +0000\r\n"))
        #expect(status.contains("\r\n\r\nFinal-Recipient: rfc822; bob@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 mailbox unknown\r\n"))
        // The per-message and per-recipient groups themselves parse as header blocks.
        let perMessage = try RFC5322Message(parsing: Array(sections[1].body))
        #expect(perMessage.value(of: "Reporting-MTA") == "dns; mx1.example.com")
        let perRecipient = try RFC5322Message(parsing: Array(perMessage.body))
        #expect(perRecipient.value(of: "Status") == "5.1.1")

        #expect(sections[2].value(of: "Content-Type") == "text/rfc822-headers")
        let headers = try RFC5322Message(parsing: Array(sections[2].body))
        #expect(headers.value(of: "Message-ID") == "<orig@example.com>")
        #expect(!S.text(result.message).contains("The body must not be attached"))
    }

    @Test func delayNoticeAndSeveralRecipients() throws {
        let result = try #require(build([
            FailedRecipient(address: "bob@example.com", status: "4.2.2", diagnostic: "mailbox full", action: "delayed"),
            FailedRecipient(address: "FAX:+15551234", status: "4.4.1", diagnostic: "450 4.4.1 line busy", action: "delayed"),
        ]))
        let message = try RFC5322Message(parsing: result.message)
        #expect(message.value(of: "Subject")?.hasPrefix("Delivery delayed: ") == true)
        let status = S.text(Array(try parts(of: message)[1].body))
        #expect(status.contains("Final-Recipient: X-unknown; FAX:+15551234\r\nAction: delayed\r\nStatus: 4.4.1\r\nDiagnostic-Code: smtp; 450 4.4.1 line busy\r\n"))
        #expect(status.contains("Diagnostic-Code: smtp; 450 4.2.2 mailbox full"))
    }

    @Test func mixedFailedAndDelayedIsUndeliverable() throws {
        let result = try #require(build([
            FailedRecipient(address: "bob@example.com", status: "5.1.1", diagnostic: "unknown"),
            FailedRecipient(address: "carol@example.com", status: "4.2.2", diagnostic: "full", action: "delayed"),
        ]))
        #expect(try RFC5322Message(parsing: result.message).value(of: "Subject")?.hasPrefix("Undeliverable") == true)
    }

    @Test func reportsSubmissionRejections() throws {
        let verdict = S.validate("From: alice@example.com\nTo: undisclosed-recipients:;\nSubject: s\n\nbody")
        let report = try #require(verdict.report)
        let result = try #require(DeliveryStatusNotification.build(
            rejecting: report, reportingDomain: "example.com", reportingHost: "mx1", now: S.now, messageID: "<n@x>"))
        #expect(result.envelope == Envelope(sender: "", recipients: [EnvelopeRecipient(address: "alice@example.com")]))
        let sections = try parts(of: RFC5322Message(parsing: result.message))
        #expect(sections.count == 3)
        let status = S.text(Array(sections[1].body))
        #expect(status.contains("Final-Recipient: X-unknown; (no valid recipient)\r\nAction: failed\r\nStatus: 5.1.3\r\n"))
        #expect(S.text(Array(sections[2].body)).hasPrefix("From: alice@example.com\r\nTo: undisclosed-recipients:;\r\n"))

        let limits = SubmissionLimits(maxRecipients: 2)
        let tooMany = try #require(S.validate("From: a@x.com\nTo: b@x.com, c@x.com, d@x.com\n\n", limits: limits).report)
        let text = S.text(try #require(DeliveryStatusNotification.build(
            rejecting: tooMany, reportingDomain: "example.com", reportingHost: "mx1", now: S.now, messageID: "<n@x>")).message)
        #expect(text.components(separatedBy: "Status: 5.5.3").count == 4)
    }

    @Test func neverReportsAboutReports() {
        #expect(build([FailedRecipient(address: "bob@example.com", status: "5.1.1", diagnostic: "x")], sender: "") == nil)
        #expect(build([]) == nil)
    }

    @Test func honoursNotifyAndOriginalRecipient() throws {
        let recipients = [
            EnvelopeRecipient(address: "never@example.com", parameters: ["NOTIFY=NEVER"]),
            EnvelopeRecipient(address: "success@example.com", parameters: ["NOTIFY=SUCCESS"]),
            EnvelopeRecipient(address: "fail@example.com", parameters: ["notify=success,failure", "ORCPT=rfc822;Fail+2BAlias@example.com"]),
        ]
        let failures = recipients.map { FailedRecipient(address: $0.address, status: "5.1.1", diagnostic: "unknown") }
        let result = try #require(build(failures, recipients: recipients))
        let text = S.text(result.message)
        #expect(!text.contains("never@example.com"))
        #expect(!text.contains("success@example.com"))
        #expect(text.contains("Final-Recipient: rfc822; fail@example.com\r\nOriginal-Recipient: rfc822; Fail+Alias@example.com\r\n"))
        #expect(build([failures[0]], recipients: recipients) == nil)
        let delayed = [FailedRecipient(address: "fail@example.com", status: "4.0.0", diagnostic: "later", action: "delayed")]
        #expect(build(delayed, recipients: recipients) == nil)
    }

    @Test func sanitisesHostileInputs() throws {
        let result = try #require(build([FailedRecipient(address: "bob@example.com", status: "bogus", diagnostic: "a\r\nBcc: evil@x.com", action: "exploded")]))
        let text = S.text(result.message)
        #expect(text.contains("Action: failed\r\nStatus: 5.0.0\r\nDiagnostic-Code: smtp; 550 5.0.0 a  Bcc: evil@x.com\r\n"))
    }

    @Test func eightBitHeadersAreMarked() throws {
        let header = S.bytes("From: a@x.com\r\nSubject: caf") + [0xE9] + S.bytes("\r\n\r\n")
        let result = try #require(DeliveryStatusNotification.build(
            about: Envelope(sender: "a@x.com", recipients: []), originalMessage: header, originalMessageID: nil,
            failed: [FailedRecipient(address: "b@x.com", status: "5.1.1", diagnostic: "unknown")],
            reportingDomain: "example.com", reportingHost: "mx1", now: S.now, messageID: "<n@x>"))
        let sections = try parts(of: RFC5322Message(parsing: result.message))
        #expect(sections[2].value(of: "Content-Transfer-Encoding") == "8bit")
        #expect(S.text(Array(sections[0].body)).contains("café"))
    }

    @Test func worksWithHeaderOnlyOriginalsAndLFOriginals() throws {
        let lf = S.bytes("From: a@x.com\nSubject: hi\n")
        let result = try #require(DeliveryStatusNotification.build(
            about: Envelope(sender: "a@x.com", recipients: []), originalMessage: lf, originalMessageID: nil,
            failed: [FailedRecipient(address: "b@x.com", status: "5.3.4", diagnostic: "too big")],
            reportingDomain: "example.com", reportingHost: "mx1", now: S.now, messageID: "<n@x>"))
        let sections = try parts(of: RFC5322Message(parsing: result.message))
        #expect(S.text(Array(sections[2].body)) == "From: a@x.com\r\nSubject: hi\r\n\r\n")
    }
}
