import Foundation
import Testing
@testable import Postroom

/// Issue 11, classes 2-4 at the submission level, and the sender rules README "Messages" documents.
@Suite("Submission: unusable recipients, sender rules, tolerant header")
struct SubmissionRecipientReportTests {
    typealias S = MessageTestSupport

    private func validate(bytes: [UInt8], source: MessageSource = .pickup) -> SubmissionVerdict {
        SubmissionValidator.validate(bytes, totalSize: Int64(bytes.count), source: source, limits: SubmissionLimits(), context: S.context)
    }

    // MARK: Class 2: every unusable To/Cc/Bcc element is reported, the rest delivered

    @Test func unusableElementsAreReportedWithTheirTextAndReason() throws {
        let accepted = try #require(S.validate("From: a@x.example\nTo: b@x.example, jsmith\nCc: <c@x.example junk>\nBcc: d@x.example, Mary Ann Smith mas@x.example\n\nhi\n").accepted)
        #expect(accepted.envelope.recipients.map(\.address) == ["b@x.example", "d@x.example"])
        #expect(accepted.invalidRecipients.map(\.address) == ["jsmith", "<c@x.example junk>", "Mary Ann Smith mas@x.example"])
        #expect(accepted.invalidRecipients.allSatisfy { $0.status == "5.1.3" && $0.action == "failed" })
        #expect(accepted.invalidRecipients[0].diagnostic
            == "The To: element \"jsmith\" is not a valid address: it has no @domain (a bare local part is not an address).")
        #expect(accepted.invalidRecipients[2].diagnostic.hasPrefix("The Bcc: element \"Mary Ann Smith mas@x.example\""))
        #expect(accepted.headerChanges.contains { $0.hasPrefix("3 unusable recipient element(s) reported to the sender (5.1.3)") })
    }

    @Test func aNonDeliveryReportListsEachUnusableElement() throws {
        let accepted = try #require(S.validate("From: a@x.example\nTo: b@x.example, jsmith\nSubject: s\n\nhi\n").accepted)
        let report = try #require(DeliveryStatusNotification.build(
            about: accepted.envelope, originalMessage: accepted.message, originalMessageID: accepted.messageID,
            failed: accepted.invalidRecipients, reportingDomain: "example.com", reportingHost: "mx1", now: S.now, messageID: "<r@x>"))
        let text = S.text(report.message)
        #expect(report.envelope.recipients.map(\.address) == ["a@x.example"])
        #expect(text.contains("Final-Recipient: rfc822; jsmith\r\n"))
        #expect(text.contains("Status: 5.1.3\r\n"))
        #expect(text.contains("is not a valid address: it has no @domain"))
    }

    @Test func withNoUsableRecipientTheReportNamesEveryElement() throws {
        let report = try #require(S.validate("From: a@x.example\nTo: jsmith, <>\n\nhi\n").report)
        #expect(report.status == "5.1.3")
        #expect(report.envelope.recipients.isEmpty)
        #expect(report.failedRecipients.map(\.address) == ["jsmith", "<>"])
    }

    @Test func aRefusedMessageAlsoReportsItsUnusableElements() throws {
        let limits = SubmissionLimits(maxRecipients: 1)
        let data = S.bytes("From: a@x.example\nTo: b@x.example, c@x.example, jsmith\n\nhi\n")
        let report = try #require(SubmissionValidator.validate(data, totalSize: Int64(data.count), source: .pickup, limits: limits, context: S.context).report)
        #expect(report.status == "5.5.3")
        #expect(report.failedRecipients.map(\.status) == ["5.5.3", "5.5.3", "5.1.3"])
    }

    // MARK: Class 3: bytes are never transcoded into an address

    @Test func aLatin1RecipientIsReportedNotDeliveredToItsUTF8Spelling() throws {
        let data = S.bytes("From: a@x.example\nTo: b@x.example, j") + [0xF6] + S.bytes("rg@x.example\n\nhi\n")
        let accepted = try #require(validate(bytes: data).accepted)
        #expect(accepted.envelope.recipients.map(\.address) == ["b@x.example"])
        #expect(accepted.invalidRecipients.map(\.address) == ["j\\xF6rg@x.example"])
        #expect(!accepted.envelope.recipients.contains { $0.address.contains("ö") })
    }

    @Test func aLatin1SenderIsNoSender() throws {
        let data = S.bytes("From: j") + [0xF6] + S.bytes("rg@x.example\nTo: b@x.example\n\nhi\n")
        let reason = try #require(validate(bytes: data).badmailReason)
        #expect(reason.contains("neither ASCII nor UTF-8"))
    }

    @Test func replayEnvelopeLinesMustBeASCIIOrUTF8() throws {
        let receiver = S.bytes("X-Sender: <a@x.example>\nX-Receiver: <j") + [0xF6] + S.bytes("rg@x.example>\nSubject: s\n\nhi\n")
        let report = try #require(validate(bytes: receiver, source: .replay).report)
        #expect(report.status == "5.1.3")
        let sender = S.bytes("X-Sender: <j") + [0xF6] + S.bytes("rg@x.example>\nX-Receiver: <b@x.example>\n\nhi\n")
        #expect(validate(bytes: sender, source: .replay).badmailReason != nil)
        let utf8 = S.bytes("X-Sender: <jörg@x.example>\nX-Receiver: <b@x.example>\n\nhi\n")
        #expect(validate(bytes: utf8, source: .replay).accepted?.envelope.sender == "jörg@x.example")
    }

    @Test func quotedAddressesSurviveTheReplayFormatUnchanged() throws {
        // A drop file's X-Receiver must read back as the very address delivered to.
        for address in ["\"a<b>c\"@x.example", "\"john doe\"@x.example", "\"a\\\"<\"@x.example"] {
            let envelope = Envelope(sender: "s@x.example", recipients: [EnvelopeRecipient(address: address)])
            let file = ReplayFormat.encode(envelope: envelope, message: S.bytes("From: s@x.example\n\nbody\n"), lineEnding: "\n")
            #expect(try ReplayEnvelope.parse(RFC5322Message(parsing: file)) == envelope, "\(address)")
        }
    }

    // MARK: Class 1 in From: a glued sender is no sender

    @Test func aFromOfWordsIsBadmailNotAnInventedSender() throws {
        let reason = try #require(S.validate("From: Mary Ann Smith mas@example.org\nTo: b@x.example\n\nhi\n").badmailReason)
        #expect(reason.contains("From: \"Mary Ann Smith mas@example.org\" holds no valid address"))
        #expect(!reason.contains("maryannsmithmas"))
    }

    // MARK: Class 4: accept what the mainstream parsers accept when unambiguous

    @Test func aNulInAnUnstructuredFieldIsAccepted() throws {
        let data = S.bytes("From: a@x.example\nTo: b@x.example\nSubject: a") + [0x00] + S.bytes("b\n\nhi\n")
        let accepted = try #require(validate(bytes: data).accepted)
        #expect(accepted.message.contains(0x00))
    }

    @Test func whiteSpaceOnlyLinesBeforeTheHeaderAreSkipped() throws {
        for prefix in [" \n", "\t\n", "  \t \r\n", " \n \n"] {
            let accepted = try #require(S.validate(prefix + "From: a@x.example\nTo: b@x.example\n\nhi\n").accepted, "\(prefix.debugDescription)")
            #expect(accepted.envelope.sender == "a@x.example")
        }
        // Text on a continuation line before the first field would be lost: still refused.
        #expect(S.validate(" junk\nFrom: a@x.example\nTo: b@x.example\n\nhi\n").badmailReason?.contains("starts with white space") == true)
        // Only white space, no field: nothing to deliver.
        #expect(S.validate(" \n\nFrom: a@x.example\n").badmailReason != nil)
    }

    @Test func aMissingBlankLineBeforeTheBodyIsInsertedWhenUnambiguous() throws {
        let accepted = try #require(S.validate("From: a@x.example\nTo: b@x.example\nHello Bob, no blank line.\nSecond line.\n").accepted)
        #expect(accepted.envelope.recipients.map(\.address) == ["b@x.example"])
        #expect(accepted.headerChanges.first == "no blank line before the body: it starts at header line 3, which is not a field")
        let message = try RFC5322Message(parsing: accepted.message)
        #expect(S.text(Array(message.body)) == "Hello Bob, no blank line.\nSecond line.\n")
        // A field-like line after it would become visible body text (a Bcc!): still refused.
        let refused = S.validate("From: a@x.example\nTo: b@x.example\nX-Broken line\nBcc: secret@x.example\n\nbody\n")
        #expect(refused.report?.status == "5.6.0")
        // Nothing before it to be a header: no sender, badmail as before.
        #expect(S.validate("Just text\nFrom: a@x.example\n\nbody\n").badmailReason != nil)
    }

    @Test func aBareCarriageReturnInTheHeaderIsStillRefused() throws {
        #expect(S.validate("From: a@x.example\nTo: b@x.example\nSubject: a\rb\n\nhi\n").report?.status == "5.6.0")
    }

    @Test func aByteOrderMarkIsAccepted() throws {
        let data: [UInt8] = [0xEF, 0xBB, 0xBF] + S.bytes("From: a@x.example\nTo: b@x.example\n\nhi\n")
        #expect(validate(bytes: data).accepted?.envelope.sender == "a@x.example")
    }

    // MARK: Sender rules (README "Messages")

    @Test func twoFromAddressesAndNoSenderIsBadmail() throws {
        #expect(S.validate("From: a@x.example, b@x.example\nTo: c@x.example\n\nhi\n").badmailReason?.contains("lists 2 addresses") == true)
        #expect(S.validate("From: a@x.example\nFrom: b@x.example\nTo: c@x.example\n\nhi\n").badmailReason != nil)
        // An unusable From: element is still an author.
        #expect(S.validate("From: a@x.example, jsmith\nTo: c@x.example\n\nhi\n").badmailReason != nil)
        #expect(S.validate("From: a@x.example, jsmith\nSender: s@x.example\nTo: c@x.example\n\nhi\n").accepted?.envelope.sender == "s@x.example")
    }

    @Test func twoSenderAddresses() throws {
        // With one From: address the Sender: field is not consulted.
        #expect(S.validate("From: a@x.example\nSender: s@x.example, t@x.example\nTo: c@x.example\n\nhi\n").accepted?.envelope.sender == "a@x.example")
        // With several authors the Sender: must be exactly one usable mailbox.
        #expect(S.validate("From: a@x.example, b@x.example\nSender: s@x.example, t@x.example\nTo: c@x.example\n\nhi\n").badmailReason != nil)
        #expect(S.validate("From: a@x.example, b@x.example\nSender: s@x.example\nSender: t@x.example\nTo: c@x.example\n\nhi\n").badmailReason != nil)
        #expect(S.validate("From: a@x.example, b@x.example\nSender: s@x.example, junk\nTo: c@x.example\n\nhi\n").badmailReason != nil)
    }
}
