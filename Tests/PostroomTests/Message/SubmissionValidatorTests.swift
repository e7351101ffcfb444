import Testing
@testable import Postroom

@Suite("SubmissionValidator")
struct SubmissionValidatorTests {
    typealias S = MessageTestSupport
    private let received = "Received: from localhost by mx1.example.com (Postroom) with pickup; Mon, 23 Nov 2026 09:36:18 +0000\r\n"

    // MARK: Pickup: sender

    @Test func senderFromSingleFrom() throws {
        let accepted = try #require(S.validate("From: Alice <Alice@Example.com>\r\nSender: boss@example.com\r\nTo: bob@example.com\r\nMessage-ID: <1@x>\r\nDate: Mon, 23 Nov 2026 09:00:00 +0000\r\n\r\nhi\r\n").accepted)
        #expect(accepted.envelope == Envelope(sender: "Alice@example.com", recipients: [EnvelopeRecipient(address: "bob@example.com")]))
        #expect(accepted.messageID == "<1@x>")
        #expect(S.text(accepted.message) == received + "From: Alice <Alice@Example.com>\r\nSender: boss@example.com\r\nTo: bob@example.com\r\nMessage-ID: <1@x>\r\nDate: Mon, 23 Nov 2026 09:00:00 +0000\r\n\r\nhi\r\n")
        #expect(accepted.headerChanges == ["added Received: from localhost by mx1.example.com (Postroom) with pickup; Mon, 23 Nov 2026 09:36:18 +0000"])
    }

    @Test func severalFromNeedOneSender() throws {
        let ok = try #require(S.validate("From: a@x.com, b@x.com\nSender: sec@x.com\nTo: c@x.com\n\n").accepted)
        #expect(ok.envelope.sender == "sec@x.com")
        let noSender = try #require(S.validate("From: a@x.com, b@x.com\nTo: c@x.com\n\n").badmailReason)
        #expect(noSender.contains("From: lists 2 addresses"))
        #expect(S.validate("From: a@x.com, b@x.com\nSender: s@x.com, t@x.com\nTo: c@x.com\n\n").badmailReason != nil)
    }

    @Test func singleFromWinsOverSender() throws {
        let ok = try #require(S.validate("From: a@x.com\nSender: s@x.com, t@x.com\nTo: c@x.com\n\n").accepted)
        #expect(ok.envelope.sender == "a@x.com")
    }

    @Test func bccOnlyReplacesAToFieldWithoutAddresses() throws {
        let accepted = try #require(S.validate("From: a@x.com\nTo: Nobody In Particular\nBcc: h@x.com\n\n").accepted)
        let message = try RFC5322Message(parsing: accepted.message)
        #expect(message.values(of: "To") == ["Undisclosed recipients:;"])
    }

    @Test func oversizedReplayWithNullSenderIsBadmail() throws {
        let bytes = S.bytes("X-Sender: <>\nX-Receiver: <a@x.com>\n\n")
        let verdict = SubmissionValidator.validate(
            bytes, totalSize: 50_000_000, source: .replay, limits: SubmissionLimits(), context: S.context)
        #expect(verdict.badmailReason?.contains("null sender") == true)
        let withSender = SubmissionValidator.validate(
            S.bytes("X-Sender: <s@x.com>\nX-Receiver: <a@x.com> NOTIFY=NEVER\n"), totalSize: 50_000_000,
            source: .replay, limits: SubmissionLimits(), context: S.context)
        #expect(withSender.report?.envelope == Envelope(sender: "s@x.com", recipients: [EnvelopeRecipient(address: "a@x.com", parameters: ["NOTIFY=NEVER"])]))
    }

    @Test func senderOnlyInSenderField() throws {
        let ok = try #require(S.validate("Sender: s@x.com\nTo: c@x.com\n\n").accepted)
        #expect(ok.envelope.sender == "s@x.com")
    }

    @Test func noValidSenderIsBadmail() throws {
        let missing = try #require(S.validate("To: c@x.com\nSubject: x\n\n").badmailReason)
        #expect(missing.contains("no From: field"))
        #expect(!missing.contains("\n"))
        let junk = try #require(S.validate("From: Just A Name\nTo: c@x.com\n\n").badmailReason)
        #expect(junk.contains("holds no valid address"))
    }

    // MARK: Pickup: recipients and Bcc

    @Test func recipientsAreTheDeduplicatedUnion() throws {
        let accepted = try #require(S.validate("From: a@x.com\nTo: B@X.com, team: c@x.com, b@x.com;\nCc: B@x.COM, d@x.com\nBcc: e@x.com, b@x.com\nTo: f@x.com\n\n").accepted)
        #expect(accepted.envelope.recipients.map(\.address) == ["B@x.com", "c@x.com", "b@x.com", "d@x.com", "f@x.com", "e@x.com"])
        let message = try RFC5322Message(parsing: accepted.message)
        #expect(message.value(of: "Bcc") == nil)
        #expect(accepted.headerChanges.contains("removed Bcc (its 1 address(es) stay envelope recipients)"))
    }

    @Test func bccOnlyAddsUndisclosedRecipients() throws {
        let accepted = try #require(S.validate("From: a@x.com\nBcc: hidden@x.com\nMessage-ID: <m@x>\nDate: Mon, 23 Nov 2026 09:00:00 +0000\n\nbody").accepted)
        #expect(accepted.envelope.recipients == [EnvelopeRecipient(address: "hidden@x.com")])
        #expect(S.text(accepted.message) == "Received: from localhost by mx1.example.com (Postroom) with pickup; Mon, 23 Nov 2026 09:36:18 +0000\nFrom: a@x.com\nMessage-ID: <m@x>\nDate: Mon, 23 Nov 2026 09:00:00 +0000\nTo: Undisclosed recipients:;\n\nbody")
    }

    @Test func noValidRecipientIsReport513() throws {
        let report = try #require(S.validate("From: a@x.com\nTo: undisclosed-recipients:;\nSubject: s\n\nbody").report)
        #expect(report.status == "5.1.3")
        #expect(report.envelope == Envelope(sender: "a@x.com", recipients: []))
        #expect(S.text(report.headerBytes) == "From: a@x.com\nTo: undisclosed-recipients:;\nSubject: s\n\n")
    }

    // MARK: Pickup: limits

    @Test func tooManyRecipientsIsReport553() throws {
        let to = (1...101).map { "u\($0)@x.com" }.joined(separator: ", ")
        let report = try #require(S.validate("From: a@x.com\nTo: \(to)\n\n").report)
        #expect(report.status == "5.5.3")
        #expect(report.envelope.recipients.count == 101)
        let exactly = (1...100).map { "u\($0)@x.com" }.joined(separator: ", ")
        #expect(S.validate("From: a@x.com\nTo: \(exactly)\n\n").accepted != nil)
    }

    @Test func headerTooLargeIsReport534() throws {
        let big = String(repeating: "x", count: 70_000)
        let report = try #require(S.validate("From: a@x.com\nTo: b@x.com\nX-Big: \(big)\n\nbody").report)
        #expect(report.status == "5.3.4")
        #expect(report.diagnostic.contains("header"))
        #expect(report.headerBytes.count <= SubmissionValidator.maxAttachedHeaderBytes)
    }

    @Test func messageTooLargeIsReport534EvenFromAPrefix() throws {
        let prefix = S.bytes("From: a@x.com\r\nTo: b@x.com\r\nSubject: huge\r\n\r\nAAAA")
        let limits = SubmissionLimits(maxMessageSize: 1_000)
        let verdict = SubmissionValidator.validate(prefix, totalSize: 5_000_000, source: .pickup, limits: limits, context: S.context)
        let report = try #require(verdict.report)
        #expect(report.status == "5.3.4")
        #expect(report.envelope.sender == "a@x.com")
        #expect(report.envelope.recipients == [EnvelopeRecipient(address: "b@x.com")])
        #expect(S.text(report.headerBytes) == "From: a@x.com\r\nTo: b@x.com\r\nSubject: huge\r\n\r\n")
        // A prefix cut in the middle of the header still finds the sender.
        let cut = S.bytes("From: a@x.com\r\nTo: b@x.com\r\nX-Long: aaaa")
        #expect(SubmissionValidator.validate(cut, totalSize: 5_000_000, source: .pickup, limits: limits, context: S.context).report?.status == "5.3.4")
        let noSender = SubmissionValidator.validate(S.bytes("To: b@x.com\r\n\r\n"), totalSize: 5_000_000, source: .pickup, limits: limits, context: S.context)
        #expect(noSender.badmailReason?.contains("larger than the limit") == true)
    }

    @Test func replayIgnoresHeaderAndRecipientLimitsButNotSize() throws {
        let receivers = (1...150).map { "X-Receiver: <u\($0)@x.com>\n" }.joined()
        let big = String(repeating: "y", count: 70_000)
        let text = "X-Sender: <a@x.com>\n\(receivers)X-Big: \(big)\nFrom: a@x.com\n\nbody"
        let accepted = try #require(S.validate(text, source: .replay).accepted)
        #expect(accepted.envelope.recipients.count == 150)
        let tooBig = S.validate(text, source: .replay, limits: SubmissionLimits(maxMessageSize: 10_000))
        #expect(tooBig.report?.status == "5.3.4")
        #expect(tooBig.report?.envelope.recipients.count == 150)
    }

    // MARK: Pickup: format errors

    @Test func bareCRWithSenderIsReport560() throws {
        let report = try #require(S.validate("From: a@x.com\r\nTo: b@x.com\r\nSubject: x\rBcc: evil@x.com\r\n\r\n").report)
        #expect(report.status == "5.6.0")
        #expect(report.diagnostic.contains("carriage return"))
        #expect(S.text(report.headerBytes) == "From: a@x.com\r\nTo: b@x.com\r\n")
    }

    @Test func formatErrorWithoutSenderIsBadmail() throws {
        let reason = try #require(S.validate("Subject: x\rFrom: a@x.com\r\n\r\n").badmailReason)
        #expect(reason.contains("carriage return"))
        #expect(reason.contains("no valid sender"))
        #expect(S.validate("").badmailReason?.contains("empty") == true)
        #expect(S.validate("\r\n\r\nbody").badmailReason?.contains("no header fields") == true)
        let binary = [UInt8](arrayLiteral: 0x7F, 0x45, 0x4C, 0x46, 0x02, 0x01, 0x00, 0x00)
        let verdict = SubmissionValidator.validate(binary, totalSize: 8, source: .pickup, limits: SubmissionLimits(), context: S.context)
        #expect(verdict.badmailReason != nil)
    }

    // MARK: Pickup: header hygiene

    @Test func removesReceivedAndResentAndAddsMessageIDAndDate() throws {
        let accepted = try #require(S.validate("""
            Received: from a by b; Mon, 1 Jan 2024 00:00:00 +0000\r
            Resent-From: r@x.com\r
            From: a@x.com\r
            Resent-Date: Mon, 1 Jan 2024 00:00:00 +0000\r
            To: b@x.com\r
            Received: from c by d\r
            Message-ID:   \r
            \r
            body\r

            """).accepted)
        #expect(accepted.messageID == "<Q123@example.com>")
        #expect(S.text(accepted.message) == received + "From: a@x.com\r\nTo: b@x.com\r\nMessage-ID: <Q123@example.com>\r\nDate: Mon, 23 Nov 2026 09:36:18 +0000\r\n\r\nbody\r\n")
        #expect(accepted.headerChanges.contains("removed 2 Received field(s)"))
        #expect(accepted.headerChanges.contains("removed Resent-From, Resent-Date"))
        #expect(accepted.headerChanges.contains("added Message-ID: <Q123@example.com>"))
    }

    @Test func pickupRemovesReplayEnvelopeLines() throws {
        let accepted = try #require(S.validate("X-Sender: <spoof@evil.example>\nFrom: a@x.com\nTo: b@x.com\nX-Receiver: <victim@x.com>\n\n").accepted)
        #expect(accepted.envelope == Envelope(sender: "a@x.com", recipients: [EnvelopeRecipient(address: "b@x.com")]))
        let message = try RFC5322Message(parsing: accepted.message)
        #expect(message.value(of: "X-Sender") == nil && message.value(of: "X-Receiver") == nil)
        #expect(accepted.headerChanges.contains("removed Replay envelope fields X-Sender, X-Receiver (not honoured in pickup)"))
        // So its Replay-format copy is replayable with exactly the envelope given.
        let drop = ReplayFormat.encode(envelope: accepted.envelope, message: accepted.message, lineEnding: "\n")
        #expect(try ReplayEnvelope.parse(RFC5322Message(parsing: drop)) == accepted.envelope)
    }

    @Test func replacesUnparseableDate() throws {
        let accepted = try #require(S.validate("From: a@x.com\nTo: b@x.com\nDate: last tuesday\nMessage-ID: <m@x>\n\n").accepted)
        let message = try RFC5322Message(parsing: accepted.message)
        #expect(message.values(of: "Date") == ["Mon, 23 Nov 2026 09:36:18 +0000"])
        #expect(accepted.headerChanges.contains { $0.hasPrefix("replaced unparseable Date \"last tuesday\"") })
    }

    @Test func keepsLFLineEndingsAndBodyBytes() throws {
        let body: [UInt8] = [0x00, 0xFF, 0x0D, 0x41, 0x0A]
        let input = S.bytes("From: a@x.com\nTo: b@x.com\n\n") + body
        let verdict = SubmissionValidator.validate(input, totalSize: Int64(input.count), source: .pickup, limits: SubmissionLimits(), context: S.context)
        let accepted = try #require(verdict.accepted)
        #expect(Array(accepted.message.suffix(body.count + 2)) == [0x0A, 0x0A] + body)
        #expect(!accepted.message.contains(0x0D) || accepted.message.firstIndex(of: 0x0D)! > accepted.message.count - body.count - 1)
    }

    // MARK: Replay

    @Test func replayAcceptsAndStripsEnvelopeLines() throws {
        let accepted = try #require(S.validate("""
            X-Sender: <bob@fabrikam.com> BODY=7bit RET=HDRS ENVID=12345ABCD auth=<someAuth>\r
            X-Receiver: <mary@contoso.com> NOTIFY=NEVER ORcpt=rfc822;mary@contoso.com\r
            X-Receiver: <FAX:+15551234>\r
            X-CreatedBy: MSExchange15\r
            X-EndOfInjectedXHeaders: 200\r
            X-Mailer: Producer 1.0\r
            Received: from old by old\r
            From: someone@else.com\r
            To: other@else.com\r
            Bcc: hidden@else.com\r
            \r
            body\r

            """, source: .replay).accepted)
        #expect(accepted.envelope.sender == "bob@fabrikam.com")
        #expect(accepted.envelope.recipients == [
            EnvelopeRecipient(address: "mary@contoso.com", parameters: ["NOTIFY=NEVER", "ORcpt=rfc822;mary@contoso.com"]),
            EnvelopeRecipient(address: "FAX:+15551234"),
        ])
        let message = try RFC5322Message(parsing: accepted.message)
        #expect(message.fields.map(\.name) == ["Received", "X-Mailer", "Received", "From", "To", "Message-ID", "Date"])
        #expect(message.value(of: "Received")?.hasSuffix("with replay; Mon, 23 Nov 2026 09:36:18 +0000") == true)
        #expect(accepted.headerChanges.contains("removed Replay envelope fields X-Sender, X-Receiver ×2, X-CreatedBy, X-EndOfInjectedXHeaders"))
        #expect(accepted.headerChanges.contains("removed 1 Bcc field(s)"))
    }

    @Test func replayNullSenderIsAccepted() throws {
        let accepted = try #require(S.validate("X-Sender: <>\nX-Receiver: <a@example.com>\nFrom: MAILER-DAEMON@x.com\n\n", source: .replay).accepted)
        #expect(accepted.envelope.hasNullSender)
    }

    @Test func replayEnvelopeProblems() throws {
        #expect(S.validate("From: a@x.com\nTo: b@x.com\n\n", source: .replay).badmailReason?.contains("no X-Sender") == true)
        #expect(S.validate("X-Sender: <a@x.com>\nX-Sender: <b@x.com>\nX-Receiver: <c@x.com>\n\n", source: .replay).badmailReason != nil)
        let noRecipient = try #require(S.validate("X-Sender: <a@x.com>\nFrom: a@x.com\n\n", source: .replay).report)
        #expect(noRecipient.status == "5.1.3")
        let late = try #require(S.validate("X-Sender: <a@x.com>\nX-Receiver: <b@x.com>\nFrom: a@x.com\nX-Receiver: <evil@x.com>\n\n", source: .replay).report)
        #expect(late.status == "5.6.0")
        #expect(late.envelope.recipients == [EnvelopeRecipient(address: "b@x.com")])
        let nullSender = try #require(S.validate("X-Sender: <>\nX-Receiver: <bad address>\n\n", source: .replay).badmailReason)
        #expect(nullSender.contains("null sender"))
    }

    @Test func replayFormatErrorUsesXSender() {
        #expect(S.validate("X-Sender: <a@x.com>\nX-Receiver: <b@x.com>\nSubject: a\rb\n\n", source: .replay).report?.status == "5.6.0")
        #expect(S.validate("X-Sender: <>\nX-Receiver: <b@x.com>\nSubject: a\rb\n\n", source: .replay).badmailReason != nil)
    }

    @Test func badmailReasonsAreOneLine() {
        let inputs = ["", "To: a@x.com\n\n", "Subject: \r\n", "From: a@x.com, b@x.com\nTo: c@x.com\n\n"]
        for input in inputs {
            for source in [MessageSource.pickup, .replay] {
                if let reason = S.validate(input, source: source).badmailReason {
                    #expect(!reason.contains("\n") && !reason.contains("\r"))
                    #expect(reason.contains("copy the file back"))
                }
            }
        }
    }
}
