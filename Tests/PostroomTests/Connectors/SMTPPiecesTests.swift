import Foundation
import Testing
@testable import Postroom

/// The pure pieces of the smtp connector: DATA encoding, DSN parameters, settings, and the
/// sender parameters the replay envelope now keeps.
@Suite("SMTP pieces")
struct SMTPPiecesTests {
    static func data(_ text: String) -> String {
        String(decoding: SMTPTransaction.encodeData(Array(text.utf8)).data, as: UTF8.self)
    }

    @Test func dataGetsCRLFDotStuffingAndTheTerminator() {
        #expect(Self.data("Subject: x\n\n.hidden\n..two\nend") == "Subject: x\r\n\r\n..hidden\r\n...two\r\nend\r\n.\r\n")
        #expect(Self.data("a\r\nb\rc\r\n") == "a\r\nb\r\nc\r\n.\r\n", "a bare CR ends a line too")
        #expect(Self.data(".\r\n") == "..\r\n.\r\n", "a lone dot line is stuffed, not taken as the end")
    }

    @Test func longLinesAreSentWholeAndSizeCountsTheMessageNotTheDots() {
        let long = String(repeating: "x", count: 3000)
        let encoded = SMTPTransaction.encodeData(Array("Subject: long\n\n\(long)\n.dot\n".utf8))
        #expect(String(decoding: encoded.data, as: UTF8.self).contains("\r\n\(long)\r\n"))
        #expect(encoded.size == "Subject: long\r\n\r\n\(long)\r\n..dot\r\n".utf8.count)
        #expect(!encoded.has8bit)
        let utf8 = SMTPTransaction.encodeData(Array("Subject: caf\u{e9}\n\nplain\n".utf8))
        #expect(utf8.has8bit && utf8.headerHas8bit)
        let body8 = SMTPTransaction.encodeData(Array("Subject: x\n\nna\u{ef}ve\n".utf8))
        #expect(body8.has8bit && !body8.headerHas8bit)
    }

    @Test func dsnParametersAreNormalisedForSMTP() {
        #expect(SMTPTransaction.dsnParameters(["NOTIFY=success,failure", "ORcpt=mary@contoso.com", "X=1"], allowed: ["NOTIFY", "ORCPT"])
            == ["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;mary@contoso.com"])
        #expect(SMTPTransaction.dsnParameters(["ORCPT=rfc822;a+2Bb@x"], allowed: ["ORCPT"]) == ["ORCPT=rfc822;a+2Bb@x"], "xtext kept")
        #expect(SMTPTransaction.dsnParameters(["NOTIFY=NEVER,SUCCESS", "NOTIFY=BOGUS"], allowed: ["NOTIFY"]).isEmpty)
        #expect(SMTPTransaction.dsnParameters(["RET=hdrs", "ENVID=a b=c", "BODY=8BITMIME"], allowed: ["RET", "ENVID"]) == ["RET=HDRS", "ENVID=a+20b+3Dc"])
    }

    @Test func smartHostsParse() {
        #expect(SmartHost(parsing: "127.0.0.1") == SmartHost(host: "127.0.0.1", port: 25))
        #expect(SmartHost(parsing: "relay2.example.net:2525") == SmartHost(host: "relay2.example.net", port: 2525))
        #expect(SmartHost(parsing: "[::1]:26") == SmartHost(host: "::1", port: 26))
        #expect(SmartHost(parsing: "host:0") == nil)
        #expect(SmartHost(parsing: "a b") == nil)
        #expect(SmartHost(parsing: "::1") == nil, "an IPv6 address needs brackets")
    }

    static func decode(_ connector: String) -> Result<ConnectorConfiguration, ConfigError> {
        let text = "{ name: \"t\", stages: [{ stage: \"ingest\" }, { stage: \"deliver\" }], connectors: [\(connector)] }"
        do {
            return .success(try ConfigFile.decode(PipelineFile.self, from: Data(text.utf8), file: "p.json5").connectors[0])
        } catch {
            return .failure(error)
        }
    }

    @Test func smtpConnectorSettingsDecode() throws {
        let connector = try Self.decode(#"""
            { name: "out", type: "smtp", addressSpaces: ["SMTP:*;10"], smartHosts: ["127.0.0.1:10025", "relay2.example.net"],
              smartHostOrder: "spread", heloName: "mail.example.com", idleTimeout: "2s", hostBackoff: "1m",
              timeouts: { connect: "10s", dataEnd: "20m" }, concurrency: 4 }
            """#).get()
        let smtp = try #require(connector.smtp)
        #expect(connector.type == .smtp)
        #expect(smtp.smartHosts == [SmartHost(host: "127.0.0.1", port: 10025), SmartHost(host: "relay2.example.net", port: 25)])
        #expect(smtp.spread)
        #expect(smtp.heloName == "mail.example.com")
        #expect(smtp.idleTimeout == 2 && smtp.hostBackoff == 60)
        #expect(smtp.timeouts.connect == 10 && smtp.timeouts.dataEnd == 1200 && smtp.timeouts.mail == 300, "unset timeouts keep RFC 5321's")
    }

    @Test func smtpConnectorMistakesAreNamed() {
        func problem(_ connector: String) -> String {
            if case .failure(let error) = Self.decode(connector) { return error.description }
            return "decoded"
        }
        #expect(problem(#"{ name: "o", type: "smtp", addressSpaces: ["SMTP:*"] }"#).contains("connectors[0].smartHosts: required key is missing"))
        #expect(problem(#"{ name: "o", type: "smtp", addressSpaces: ["SMTP:*"], smartHosts: [] }"#).contains("at least one smart host"))
        #expect(problem(#"{ name: "o", type: "smtp", addressSpaces: ["SMTP:*"], smartHosts: ["x"], smartHostOrder: "random" }"#).contains("ordered or spread"))
        #expect(problem(#"{ name: "o", type: "smtp", addressSpaces: ["SMTP:*"], smartHosts: ["x"], timeouts: { rcpt: 0 } }"#).contains("longer than 0"))
        #expect(problem(#"{ name: "o", type: "foreign", addressSpaces: ["SMTP:*"], dropDirectory: "d", smartHosts: ["x"] }"#).contains("only smtp connectors take smartHosts"))
    }

    @Test func replayEnvelopeKeepsSenderParametersAndWritesThemBack() throws {
        let message = try RFC5322Message(parsing: Array("X-Sender: <bob@fabrikam.com> BODY=7bit RET=HDRS ENVID=12345ABCD\r\nX-Receiver: <mary@contoso.com> NOTIFY=NEVER ORcpt=mary@contoso.com\r\nSubject: x\r\n\r\nbody\r\n".utf8))
        let envelope = try ReplayEnvelope.parse(message)
        #expect(envelope.parameters == ["BODY=7bit", "RET=HDRS", "ENVID=12345ABCD"])
        #expect(envelope.recipients == [EnvelopeRecipient(address: "mary@contoso.com", parameters: ["NOTIFY=NEVER", "ORcpt=mary@contoso.com"])])
        let written = String(decoding: ReplayFormat.encode(envelope: envelope, message: Array("Subject: x\r\n\r\nbody\r\n".utf8), lineEnding: "\r\n"), as: UTF8.self)
        #expect(written.hasPrefix("X-Sender: <bob@fabrikam.com> BODY=7bit RET=HDRS ENVID=12345ABCD\r\nX-Receiver: <mary@contoso.com> NOTIFY=NEVER ORcpt=mary@contoso.com\r\n"))
    }

    @Test func queueEntriesWithAndWithoutSenderParametersDecode() throws {
        let old = #"{"recipients":[{"address":"x@y.z","parameters":[]}],"sender":"a@b.c"}"#
        let decoded = try JSONDecoder().decode(Envelope.self, from: Data(old.utf8))
        #expect(decoded == Envelope(sender: "a@b.c", recipients: [EnvelopeRecipient(address: "x@y.z")]))
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        #expect(String(decoding: try encoder.encode(decoded), as: UTF8.self) == old, "no parameters: the entry is written as before")
        let with = Envelope(sender: "a@b.c", recipients: [], parameters: ["RET=FULL"])
        #expect(try JSONDecoder().decode(Envelope.self, from: encoder.encode(with)) == with)
    }

    @Test func successNoticesFollowNotify() throws {
        let original = Envelope(sender: "zed@elsewhere.org", recipients: [
            EnvelopeRecipient(address: "a@example.com", parameters: ["NOTIFY=SUCCESS"]),
            EnvelopeRecipient(address: "b@example.com"),
            EnvelopeRecipient(address: "c@example.com", parameters: ["NOTIFY=FAILURE"]),
        ], parameters: ["ENVID=env+2D1"])
        func notice(_ address: String) -> [UInt8]? {
            DeliveryStatusNotification.build(about: original, originalMessage: Array("Subject: s\r\n\r\n".utf8), originalMessageID: nil,
                                             failed: [FailedRecipient(address: address, status: "2.0.0", diagnostic: "delivered", action: "delivered")],
                                             reportingDomain: "example.com", reportingHost: "h", now: Date(), messageID: "<r@h>")?.message
        }
        let text = String(decoding: try #require(notice("a@example.com")), as: UTF8.self)
        #expect(text.contains("Action: delivered") && text.contains("Subject: Delivered: s") && text.contains("Original-Envelope-Id: env-1"))
        #expect(notice("b@example.com") == nil, "no NOTIFY: no success notice")
        #expect(notice("c@example.com") == nil, "NOTIFY=FAILURE only: no success notice")
        #expect(DeliveryService.asksForSuccessNotice(original.recipients[0]))
        #expect(!DeliveryService.asksForSuccessNotice(original.recipients[1]))
    }
}
