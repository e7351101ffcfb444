import Foundation

/// One recipient a delivery status notification reports on.
public struct FailedRecipient: Sendable, Codable, Equatable {
    /// The envelope recipient address (`local@domain` or `TYPE:value`).
    public var address: String
    /// The enhanced status code (RFC 3463), e.g. `5.1.1`, or `4.4.7` for a delay.
    public var status: String
    /// Why, in words (an SMTP reply like `550 5.1.1 unknown user` is kept as is).
    public var diagnostic: String
    /// The RFC 3464 action: `failed`, or `delayed` for a delay notice.
    public var action: String

    public init(address: String, status: String, diagnostic: String, action: String = "failed") {
        self.address = address
        self.status = status
        self.diagnostic = diagnostic
        self.action = action
    }
}

/// Builds RFC 3464 delivery status notifications: non-delivery reports and delay notices.
///
/// The result is a `multipart/report; report-type=delivery-status` message with three
/// parts: an explanation for people, the machine-readable `message/delivery-status`,
/// and the original header block as `text/rfc822-headers` (never the body: it may be
/// large and the sender has it). It always uses CRLF line endings.
///
/// Recipient address types in `Final-Recipient`: `rfc822` for ASCII SMTP addresses,
/// `utf-8` (RFC 6533) for internationalised ones, `x400` for `X400:` addresses, and
/// `X-unknown` with the whole typed address (`X-unknown; FAX:+15551234`) for any other
/// address type, since no registered type describes them.
public enum DeliveryStatusNotification {
    /// The report about `failed` recipients of a message, addressed to its sender.
    /// A `FailedRecipient` with an empty address stands for a failure of the whole
    /// message that concerns no recipient (e.g. it had none).
    ///
    /// Returns nil when no report may be sent: the original sender is null (never a
    /// report about a report), or every recipient asked not to get one (`NOTIFY=NEVER`,
    /// or a `NOTIFY=` list without `FAILURE` / `DELAY` for that kind of notice, RFC 3461).
    /// The report's envelope has the null sender and the original sender as recipient.
    /// `originalMessage` may be the whole message or only its header block.
    public static func build(
        about original: Envelope, originalMessage: [UInt8], originalMessageID: String?,
        failed: [FailedRecipient], reportingDomain: String, reportingHost: String,
        now: Date, messageID: String, arrivalDate: Date? = nil
    ) -> (envelope: Envelope, message: [UInt8])? {
        guard !original.hasNullSender else { return nil }
        // Indexed once: a message may have thousands of recipients.
        var originals: [String: EnvelopeRecipient] = [:]
        for recipient in original.recipients where originals[recipient.address] == nil {
            originals[recipient.address] = recipient
        }
        let reported = failed.map(normalized).filter { wantsNotice(for: $0, original: originals[$0.address]) }
        guard !reported.isEmpty else { return nil }

        let (fields, range) = RFC5322Message.lenientHeader(of: originalMessage)
        let headerBlock = crlfHeader(originalMessage[range])
        let allDelayed = reported.allSatisfy { $0.action == "delayed" }
        let allSucceeded = reported.allSatisfy { $0.action == "delivered" || $0.action == "relayed" }
        let subjectPrefix = allSucceeded ? "Delivered" : allDelayed ? "Delivery delayed" : "Undeliverable"
        let originalSubject = fields.first { $0.hasName("Subject") }?.value
        var subject = subjectPrefix
        if let originalSubject, !originalSubject.isEmpty {
            subject += ": " + singleLine(String(originalSubject.prefix(300)))
        }
        let boundary = makeBoundary(messageID: messageID, avoiding: headerBlock)
        let date = MessageDate.format(now)
        let id = angled(messageID)

        var header = "From: Mail Delivery System <postmaster@\(reportingDomain)>\r\n"
        if ReplayEnvelope.typedAddressType(original.sender) == nil, original.sender.contains("@") {
            header += "To: <\(singleLine(original.sender))>\r\n"
        } else {
            // A typed sender (FAX:…) cannot be written in a To: field; the envelope carries it.
            header += "To: undisclosed-recipients:;\r\n"
        }
        header += "Subject: \(subject)\r\n"
        header += "Date: \(date)\r\n"
        header += "Message-ID: \(id)\r\n"
        if let originalMessageID, !originalMessageID.isEmpty {
            header += "In-Reply-To: \(angled(originalMessageID))\r\n"
            header += "References: \(angled(originalMessageID))\r\n"
        }
        header += "Auto-Submitted: auto-replied\r\n"
        header += "MIME-Version: 1.0\r\n"
        header += "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"\(boundary)\"\r\n"
        header += "\r\n"
        header += "This is a MIME-encapsulated message.\r\n\r\n"

        let text = humanText(
            reported, allDelayed: allDelayed, host: reportingHost,
            subject: originalSubject.map(EncodedWords.decode), date: fields.first { $0.hasName("Date") }?.value)
        header += "--\(boundary)\r\n"
        header += "Content-Type: text/plain; charset=utf-8\r\n"
        header += "Content-Transfer-Encoding: \(text.utf8.allSatisfy { $0 < 0x80 } ? "7bit" : "8bit")\r\n\r\n"
        header += text
        header += "\r\n--\(boundary)\r\n"
        header += "Content-Type: message/delivery-status\r\n\r\n"
        header += "Reporting-MTA: dns; \(singleLine(reportingHost))\r\n"
        if let envid = parameter("ENVID", in: original.parameters) {
            header += "Original-Envelope-Id: \(singleLine(xtextDecoded(envid)))\r\n"
        }
        header += "Arrival-Date: \(MessageDate.format(arrivalDate ?? now))\r\n"
        for recipient in reported {
            header += "\r\n"
            header += "Final-Recipient: \(typed(recipient.address))\r\n"
            if let original = originals[recipient.address],
               let orcpt = parameter("ORCPT", in: original.parameters) {
                header += "Original-Recipient: \(originalRecipient(orcpt))\r\n"
            }
            header += "Action: \(recipient.action)\r\n"
            header += "Status: \(recipient.status)\r\n"
            header += "Diagnostic-Code: smtp; \(diagnosticCode(recipient))\r\n"
            if recipient.action == "failed" || recipient.action == "delayed" {
                header += "Last-Attempt-Date: \(date)\r\n"
            }
        }
        header += "\r\n--\(boundary)\r\n"
        header += "Content-Type: text/rfc822-headers\r\n"
        if headerBlock.contains(where: { $0 >= 0x80 }) {
            header += "Content-Transfer-Encoding: 8bit\r\n"
        }
        header += "\r\n"
        var message = Array(header.utf8)
        message.append(contentsOf: headerBlock)
        message.append(contentsOf: "\r\n--\(boundary)--\r\n".utf8)
        let envelope = Envelope(sender: "", recipients: [EnvelopeRecipient(address: original.sender)])
        return (envelope, message)
    }

    /// The report for a message refused at submission (`SubmissionVerdict.report`):
    /// every intended recipient failed with the report's status, or, when the message
    /// had no valid recipient at all, one entry `Final-Recipient: X-unknown; (no valid
    /// recipient)`. Nil in the same cases as `build(about:…)`.
    public static func build(
        rejecting report: SubmissionReport, originalMessageID: String? = nil,
        reportingDomain: String, reportingHost: String, now: Date, messageID: String
    ) -> (envelope: Envelope, message: [UInt8])? {
        var failed = report.envelope.recipients.map {
            FailedRecipient(address: $0.address, status: report.status, diagnostic: report.diagnostic)
        }
        if failed.isEmpty {
            failed = [FailedRecipient(address: "", status: report.status, diagnostic: report.diagnostic)]
        }
        return build(
            about: report.envelope, originalMessage: report.headerBytes, originalMessageID: originalMessageID,
            failed: failed, reportingDomain: reportingDomain, reportingHost: reportingHost, now: now,
            messageID: messageID)
    }

    /// Stands in for the address of a failure that concerns no particular recipient.
    static let noRecipient = "(no valid recipient)"

    // MARK: - Pieces

    /// Action and status made valid, diagnostic made one line.
    private static func normalized(_ recipient: FailedRecipient) -> FailedRecipient {
        var out = recipient
        out.action = recipient.action.lowercased()
        if !["failed", "delayed", "delivered", "relayed", "expanded"].contains(out.action) {
            out.action = "failed"
        }
        let parts = recipient.status.split(separator: ".", omittingEmptySubsequences: false)
        let valid = parts.count == 3 && ["2", "4", "5"].contains(parts[0])
            && parts.dropFirst().allSatisfy { (1...3).contains($0.count) && $0.allSatisfy(\.isASCII) && Int($0) != nil }
        if !valid { out.status = out.action == "delayed" ? "4.0.0" : "5.0.0" }
        out.diagnostic = singleLine(String(recipient.diagnostic.prefix(900)))
        return out
    }

    /// RFC 3461 NOTIFY: absent means "failures (and delays at our discretion)".
    private static func wantsNotice(for recipient: FailedRecipient, original: EnvelopeRecipient?) -> Bool {
        let success = recipient.action == "delivered" || recipient.action == "relayed"
        guard let match = original,
              let notify = parameter("NOTIFY", in: match.parameters) else { return !success }
        let kinds = notify.uppercased().split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        if kinds.contains("NEVER") { return false }
        return kinds.contains(success ? "SUCCESS" : recipient.action == "delayed" ? "DELAY" : "FAILURE")
    }

    /// The value of `NAME=value` among ESMTP parameters (name case-insensitive).
    private static func parameter(_ name: String, in parameters: [String]) -> String? {
        for parameter in parameters {
            guard let equals = parameter.firstIndex(of: "=") else { continue }
            if HeaderText.equalsIgnoringASCIICase(String(parameter[..<equals]), name) {
                return String(parameter[parameter.index(after: equals)...])
            }
        }
        return nil
    }

    /// An xtext value (RFC 3461 §4) with its `+XX` escapes decoded.
    private static func xtextDecoded(_ text: String) -> String {
        var bytes: [UInt8] = []
        let source = Array(text.utf8)
        var index = 0
        while index < source.count {
            if source[index] == UInt8(ascii: "+"), index + 2 < source.count,
               let value = UInt8(String(decoding: source[(index + 1)...(index + 2)], as: UTF8.self), radix: 16) {
                bytes.append(value)
                index += 3
            } else {
                bytes.append(source[index])
                index += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// `rfc822;a@b` from ORCPT, xtext-decoded (RFC 3461 §4.2).
    private static func originalRecipient(_ orcpt: String) -> String {
        var decoded = ""
        var iterator = orcpt.unicodeScalars.makeIterator()
        while let scalar = iterator.next() {
            if scalar == "+", let high = iterator.next(), let low = iterator.next(),
               let value = UInt8(String(high) + String(low), radix: 16) {
                decoded.unicodeScalars.append(Unicode.Scalar(value))
            } else {
                decoded.unicodeScalars.append(scalar)
            }
        }
        guard let semicolon = decoded.firstIndex(of: ";") else { return "rfc822; " + singleLine(decoded) }
        let type = decoded[..<semicolon]
        let address = decoded[decoded.index(after: semicolon)...]
        return "\(singleLine(String(type))); \(singleLine(String(address)))"
    }

    private static func typed(_ address: String) -> String {
        if address.isEmpty { return "X-unknown; " + noRecipient }
        if let type = ReplayEnvelope.typedAddressType(address) {
            if type.uppercased() == "X400" {
                return "x400; " + singleLine(String(address[address.index(after: type.endIndex)...]))
            }
            return "X-unknown; " + singleLine(address)
        }
        return (address.utf8.allSatisfy { $0 < 0x80 } ? "rfc822; " : "utf-8; ") + singleLine(address)
    }

    /// An SMTP reply for `Diagnostic-Code: smtp;`: kept when the diagnostic already is
    /// one, otherwise built from the status (550 for permanent, 450 for transient).
    private static func diagnosticCode(_ recipient: FailedRecipient) -> String {
        let diagnostic = recipient.diagnostic
        let prefix = diagnostic.prefix(4)
        if prefix.count == 4, prefix.prefix(3).allSatisfy(\.isNumber), prefix.last == " " || prefix.last == "-" {
            return diagnostic
        }
        let code = recipient.status.hasPrefix("5") ? "550" : (recipient.status.hasPrefix("4") ? "450" : "250")
        return "\(code) \(recipient.status) \(diagnostic)"
    }

    private static func humanText(
        _ recipients: [FailedRecipient], allDelayed: Bool, host: String, subject: String?, date: String?
    ) -> String {
        var text = ""
        if recipients.allSatisfy({ $0.action == "delivered" || $0.action == "relayed" }) {
            text += "Your message was delivered to the following recipients, as you asked to be told.\r\n\r\n"
            for recipient in recipients {
                text += "\(singleLine(recipient.address)) (\(recipient.action)): \(recipient.diagnostic)\r\n"
            }
            return text + "\r\nThis notice was generated by Postroom on \(singleLine(host)).\r\n"
        }
        if allDelayed {
            text += "Delivery of your message to the following recipients has been delayed.\r\n"
            text += "The system will keep trying; you do not need to do anything now. You will get\r\n"
            text += "another notice if the message cannot be delivered in the end.\r\n\r\n"
        } else {
            text += "Your message could not be delivered to one or more recipients.\r\n\r\n"
        }
        if let subject, !subject.isEmpty { text += "  Subject: \(singleLine(subject))\r\n" }
        if let date, !date.isEmpty { text += "  Sent:    \(singleLine(date))\r\n" }
        if subject != nil || date != nil { text += "\r\n" }
        for recipient in recipients {
            let state = recipient.action == "delayed" ? "delayed" : "not delivered"
            text += "\(recipient.address.isEmpty ? noRecipient : singleLine(recipient.address)) (\(state))\r\n"
            text += "  Status \(recipient.status): \(recipient.diagnostic)\r\n"
            text += "  What to do: \(advice(for: recipient))\r\n\r\n"
        }
        text += "This report was generated by Postroom on \(singleLine(host)). The technical details\r\n"
        text += "and the header of your original message are attached.\r\n"
        return text
    }

    /// Advice for the sender, by status class and subject (RFC 3463).
    private static func advice(for recipient: FailedRecipient) -> String {
        if recipient.action == "delayed" || recipient.status.hasPrefix("4") {
            return "nothing yet; delivery is being retried."
        }
        let detail = recipient.status.split(separator: ".").dropFirst().joined(separator: ".")
        switch detail {
        case "1.1", "1.2", "1.3", "1.10":
            return "check the address for typing errors, or ask the recipient for the right one, and send the message again."
        case "2.2", "2.1":
            return "the recipient's mailbox cannot accept mail now; try again later or contact them another way."
        case "3.4", "2.3":
            return "the message is too large; send a smaller one (for example, share large files by link)."
        case "5.3":
            return "the message has too many recipients; send it in several parts or to a distribution group."
        case "6.0", "6.1":
            return "the message is malformed; send it again from a standard mail program."
        case "4.7":
            return "the system tried for too long; check the address and send the message again later."
        default:
            return "send the message again later; if it keeps failing, forward this report to your email administrator."
        }
    }

    /// The original header lines with CRLF endings; bare CR/LF and NUL can't break the report.
    private static func crlfHeader(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + bytes.count / 32)
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let byte = bytes[index]
            if byte == 0x0D {
                if index + 1 < bytes.endIndex, bytes[index + 1] == 0x0A {
                    out.append(0x0D)
                    out.append(0x0A)
                    index += 2
                    continue
                }
                out.append(0x20)
            } else if byte == 0x0A {
                out.append(0x0D)
                out.append(0x0A)
            } else if byte == 0x00 {
                out.append(0x20)
            } else {
                out.append(byte)
            }
            index += 1
        }
        // Exactly one line ending at the end, no blank separator line inside the part.
        while out.count >= 2, out[out.count - 2] == 0x0D, out[out.count - 1] == 0x0A { out.removeLast(2) }
        if !out.isEmpty { out.append(contentsOf: [0x0D, 0x0A]) }
        return out
    }

    private static func makeBoundary(messageID: String, avoiding content: [UInt8]) -> String {
        // FNV-1a of the report's Message-ID: unique per report, stable for tests.
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in messageID.utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        var boundary = "=_Postroom_DSN_" + String(hash, radix: 16)
        let haystack = String(decoding: content, as: UTF8.self)
        while haystack.contains(boundary) { boundary += "_" }
        return boundary
    }

    private static func angled(_ id: String) -> String {
        let trimmed = singleLine(id).trimmingWhitespace()
        return trimmed.hasPrefix("<") ? trimmed : "<\(trimmed)>"
    }

    private static func singleLine(_ text: String) -> String {
        // Scalars, not Characters: "\r\n" is a single Character and would slip through.
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            out.append(scalar == "\r" || scalar == "\n" || scalar == "\0" ? " " : scalar)
        }
        return String(out)
    }
}
