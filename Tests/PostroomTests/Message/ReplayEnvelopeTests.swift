import Testing
@testable import Postroom

@Suite("ReplayEnvelope and ReplayFormat")
struct ReplayEnvelopeTests {
    typealias S = MessageTestSupport

    private func envelope(_ header: String) throws -> Envelope {
        try ReplayEnvelope.parse(RFC5322Message(parsing: S.bytes(header + "\r\nbody\r\n")))
    }

    @Test func documentedExample() throws {
        let result = try envelope("""
            X-Sender: <bob@Fabrikam.com> BODY=7bit RET=HDRS ENVID=12345ABCD auth=<someAuth>\r
            X-Receiver: <mary@contoso.com> NOTIFY=NEVER ORcpt=rfc822;mary@contoso.com\r
            X-Receiver: <sam@contoso.com>\r
            X-CreatedBy: MSExchange15\r
            X-EndOfInjectedXHeaders: 234\r
            From: someone@else.com\r
            To: nobody@else.com\r

            """)
        #expect(result.sender == "bob@fabrikam.com")
        #expect(result.recipients == [
            EnvelopeRecipient(address: "mary@contoso.com", parameters: ["NOTIFY=NEVER", "ORcpt=rfc822;mary@contoso.com"]),
            EnvelopeRecipient(address: "sam@contoso.com"),
        ])
    }

    @Test func typedAndUnbracketedAddresses() throws {
        let result = try envelope("""
            X-Sender: bob@example.com\r
            X-Receiver: FAX:+15551234\r
            X-Receiver: <FAX:+15559999> NOTIFY=FAILURE\r
            X-Receiver: <X400:c=US;a= ;p=Org;o=Exchange;s=Smith;>\r
            X-Receiver: <SMTP:Carol@Example.COM>\r
            Subject: x\r

            """)
        #expect(result.recipients.map(\.address)
            == ["FAX:+15551234", "FAX:+15559999", "X400:c=US;a= ;p=Org;o=Exchange;s=Smith;", "Carol@example.com"])
        #expect(result.recipients[1].parameters == ["NOTIFY=FAILURE"])
    }

    @Test func nullSenderAndDuplicates() throws {
        let result = try envelope("X-Sender: <>\r\nX-Receiver: <a@b.com>\r\nX-Receiver: <a@B.com> NOTIFY=NEVER\r\n")
        #expect(result.sender == "")
        #expect(result.hasNullSender)
        #expect(result.recipients == [EnvelopeRecipient(address: "a@b.com")])
    }

    @Test func otherXFieldsMayBeMixedIntoTheLeadingBlock() throws {
        let result = try envelope("X-Mailer: x\r\nX-Sender: <a@b.com>\r\nX-Source: Replay\r\nX-Receiver: <c@d.com>\r\nFrom: a@b.com\r\n")
        #expect(result == Envelope(sender: "a@b.com", recipients: [EnvelopeRecipient(address: "c@d.com")]))
    }

    @Test func errors() {
        #expect(throws: SubmissionError.missingSender) { try envelope("X-Receiver: <a@b.com>\r\n") }
        #expect(throws: SubmissionError.multipleSenders) {
            try envelope("X-Sender: <a@b.com>\r\nX-Sender: <c@b.com>\r\nX-Receiver: <a@b.com>\r\n")
        }
        #expect(throws: SubmissionError.missingRecipients) { try envelope("X-Sender: <a@b.com>\r\nSubject: x\r\n") }
        #expect(throws: SubmissionError.invalidSender("not an address")) {
            try envelope("X-Sender: not an address\r\nX-Receiver: <a@b.com>\r\n")
        }
        #expect(throws: SubmissionError.invalidSender("")) { try envelope("X-Sender:\r\nX-Receiver: <a@b.com>\r\n") }
        #expect(throws: SubmissionError.invalidRecipient("<>")) { try envelope("X-Sender: <a@b.com>\r\nX-Receiver: <>\r\n") }
        #expect(throws: SubmissionError.invalidRecipient("<a@b.com")) {
            try envelope("X-Sender: <a@b.com>\r\nX-Receiver: <a@b.com\r\n")
        }
        #expect(throws: SubmissionError.envelopeFieldAfterHeader("X-Receiver")) {
            try envelope("X-Sender: <a@b.com>\r\nX-Receiver: <c@d.com>\r\nFrom: a@b.com\r\nX-Receiver: <evil@x.com>\r\n")
        }
        #expect(throws: SubmissionError.envelopeFieldAfterHeader("X-Sender")) {
            try envelope("From: a@b.com\r\nX-Sender: <a@b.com>\r\nX-Receiver: <c@d.com>\r\n")
        }
    }

    @Test func encodeWritesEnvelopeAndByteCount() throws {
        let envelope = Envelope(sender: "a@b.com", recipients: [
            EnvelopeRecipient(address: "FAX:+15551234"),
            EnvelopeRecipient(address: "c@d.com", parameters: ["NOTIFY=NEVER", "ORCPT=rfc822;c@d.com"]),
        ])
        let output = ReplayFormat.encode(envelope: envelope, message: S.bytes("From: a@b.com\r\n\r\nbody"), lineEnding: "\r\n")
        let injected = "X-Sender: <a@b.com>\r\nX-Receiver: <FAX:+15551234>\r\nX-Receiver: <c@d.com> NOTIFY=NEVER ORCPT=rfc822;c@d.com\r\n"
        #expect(S.text(output) == injected + "X-EndOfInjectedXHeaders: \(injected.utf8.count)\r\nFrom: a@b.com\r\n\r\nbody")
        // The output is itself a valid Replay file with the same envelope.
        let reparsed = try ReplayEnvelope.parse(RFC5322Message(parsing: output))
        #expect(reparsed == envelope)
    }

    @Test func encodeReplacesAnExistingEnvelope() throws {
        let original = S.bytes("X-Sender: <old@x.com>\nX-Receiver: <old@y.com>\nX-EndOfInjectedXHeaders: 40\nX-Mailer: m\nFrom: a@b.com\n\nbody\n")
        let output = ReplayFormat.encode(
            envelope: Envelope(sender: "", recipients: [EnvelopeRecipient(address: "new@y.com")]),
            message: original, lineEnding: "\n")
        #expect(S.text(output) == "X-Sender: <>\nX-Receiver: <new@y.com>\nX-EndOfInjectedXHeaders: 37\nX-Mailer: m\nFrom: a@b.com\n\nbody\n")
    }

    @Test func encodeRemovesEnvelopeLinesAnywhereButKeepsOtherHeaders() throws {
        let original = S.bytes("From: a@b.com\r\nX-Sender: <spoof@x.com>\r\nX-Source: kept, not leading\r\n\r\nbody")
        let envelope = Envelope(sender: "a@b.com", recipients: [EnvelopeRecipient(address: "c@d.com")])
        let output = ReplayFormat.encode(envelope: envelope, message: original, lineEnding: "\r\n")
        let message = try RFC5322Message(parsing: output)
        #expect(message.values(of: "X-Sender") == ["<a@b.com>"])
        #expect(message.value(of: "X-Source") == "kept, not leading")
        #expect(try ReplayEnvelope.parse(message) == envelope)
        // A message without envelope lines is copied byte for byte.
        let plain = S.bytes("From: a@b.com\nSubject: x\r\n\r\nbody")
        #expect(Array(ReplayFormat.encode(envelope: envelope, message: plain, lineEnding: "\n").suffix(plain.count)) == plain)
    }

    @Test func encodeCannotBeBrokenByHostileAddresses() throws {
        let envelope = Envelope(sender: "a@b.com>\r\nX-Receiver: <evil@x.com", recipients: [
            EnvelopeRecipient(address: "c@d.com", parameters: ["NOTIFY=NEVER\r\nX-Receiver: <evil@x.com>"]),
        ])
        let output = ReplayFormat.encode(envelope: envelope, message: S.bytes("From: a@b.com\r\n\r\n"), lineEnding: "\r\n")
        let message = try RFC5322Message(parsing: output)
        #expect(message.values(of: "X-Receiver").count == 1)
    }
}
