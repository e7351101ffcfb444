import Foundation

/// Which drop directory a message file came from; it decides the submission rules.
public enum MessageSource: String, Sendable, Codable {
    /// `pickup/`: envelope from `From`/`Sender` and `To`/`Cc`/`Bcc`, limits apply.
    case pickup
    /// `replay/`: envelope from the leading `X-Sender`/`X-Receiver` lines.
    case replay
}

/// Limits a submitted message must respect (Exchange Pickup defaults).
public struct SubmissionLimits: Sendable, Equatable {
    /// Largest header block in bytes (Pickup only).
    public var maxHeaderSize: Int
    /// Most envelope recipients (Pickup only).
    public var maxRecipients: Int
    /// Largest message file in bytes (Pickup and Replay).
    public var maxMessageSize: Int64

    public init(maxHeaderSize: Int = 65_536, maxRecipients: Int = 100, maxMessageSize: Int64 = 36_700_160) {
        self.maxHeaderSize = maxHeaderSize
        self.maxRecipients = maxRecipients
        self.maxMessageSize = maxMessageSize
    }
}

/// Facts about the submitting system the validator needs to rewrite a header.
///
/// `uniqueID` becomes the left part of an added `Message-ID` (`<uniqueID@defaultDomain>`).
/// Passing the queue id makes validation a pure function of its inputs, so re-running
/// it after a crash gives the very same message.
public struct SubmissionContext: Sendable {
    /// This host's name, written in the added `Received` field.
    public var hostname: String
    /// The domain of added `Message-ID`s.
    public var defaultDomain: String
    /// The processing time: added `Date` and `Received` fields.
    public var now: Date
    /// A token unique to this submission (the queue id), for an added `Message-ID`.
    public var uniqueID: String

    /// True for a report Postroom generated and fed back in (its Received line says so).
    public var generatedReport = false

    public init(hostname: String, defaultDomain: String, now: Date = Date(), uniqueID: String = UUID().uuidString) {
        self.hostname = hostname
        self.defaultDomain = defaultDomain
        self.now = now
        self.uniqueID = uniqueID
    }
}

/// What to do with a submitted file.
public enum SubmissionVerdict: Sendable {
    /// Queue the rewritten message for the envelope.
    case accepted(AcceptedSubmission)
    /// Refuse the message and send a non-delivery report to its (non-null) sender.
    case report(SubmissionReport)
    /// Refuse the file without a report (no usable sender): rename it `.bad`.
    /// `reason` is one line saying what is wrong and what to do about it.
    case badmail(reason: String)
}

/// An accepted message, ready to queue.
public struct AcceptedSubmission: Sendable {
    /// Sender and recipients; recipients are deduplicated and never empty.
    public var envelope: Envelope
    /// The message with the header rewritten (hygiene, Message-ID, Date, Received).
    public var message: [UInt8]
    /// The `Message-ID` field value (with angle brackets), added or as found.
    public var messageID: String
    /// One human-readable line per header change, for the tracking log.
    public var headerChanges: [String]
    /// To/Cc/Bcc elements that are not usable addresses (5.1.3, quoted as written):
    /// the sender must be told about them while the valid recipients get the message.
    public var invalidRecipients: [FailedRecipient]

    public init(envelope: Envelope, message: [UInt8], messageID: String, headerChanges: [String] = [], invalidRecipients: [FailedRecipient] = []) {
        self.envelope = envelope
        self.message = message
        self.messageID = messageID
        self.headerChanges = headerChanges
        self.invalidRecipients = invalidRecipients
    }
}

/// A refused message whose sender must be told why.
public struct SubmissionReport: Sendable {
    /// The original sender (never null) and the intended recipients (may be empty).
    public var envelope: Envelope
    /// The enhanced status code, e.g. `5.3.4`.
    public var status: String
    /// Why, in words, for the report's text and `Diagnostic-Code`.
    public var diagnostic: String
    /// The original header block to attach (at most 64 KB, cut at a line end).
    public var headerBytes: [UInt8]
    /// To/Cc/Bcc elements that are not usable addresses, each failed with 5.1.3 and its
    /// own reason; the report lists them beside the envelope recipients.
    public var invalidRecipients: [FailedRecipient]

    public init(envelope: Envelope, status: String, diagnostic: String, headerBytes: [UInt8], invalidRecipients: [FailedRecipient] = []) {
        self.envelope = envelope
        self.status = status
        self.diagnostic = diagnostic
        self.headerBytes = headerBytes
        self.invalidRecipients = invalidRecipients
    }

    /// Every recipient the report is about: the envelope recipients with the report's
    /// status, then the unusable elements with their own.
    public var failedRecipients: [FailedRecipient] {
        envelope.recipients.map { FailedRecipient(address: $0.address, status: status, diagnostic: diagnostic) } + invalidRecipients
    }
}

/// The Pickup and Replay submission rules: decides accept, report or badmail, and
/// rewrites the header of accepted messages. Pure: no I/O, no clock, no randomness.
///
/// Outcomes, checked in this order:
///
/// | problem                                        | usable sender     | no sender / null `<>` |
/// |------------------------------------------------|-------------------|-----------------------|
/// | file larger than `maxMessageSize`              | report 5.3.4      | badmail               |
/// | not a message (bare CR, ambiguous junk, empty) | report 5.6.0      | badmail               |
/// | Pickup: no single sender in From/Sender        | —                 | badmail               |
/// | Pickup: header larger than `maxHeaderSize`     | report 5.3.4      |                       |
/// | Pickup: more than `maxRecipients` recipients   | report 5.5.3      |                       |
/// | Pickup: no valid To/Cc/Bcc address             | report 5.1.3      |                       |
/// | Pickup: some To/Cc/Bcc elements unusable       | accepted; each reported 5.1.3 | (dropped, logged)  |
/// | Replay: X-Sender missing, doubled or invalid   | —                 | badmail               |
/// | Replay: X-Receiver missing or invalid          | report 5.1.3      | badmail               |
/// | Replay: X-Sender/X-Receiver after other fields | report 5.6.0      | badmail               |
///
/// "Usable sender" for a broken or oversized file means one found in the header lines
/// that could be read before the problem. A null sender never gets a report (RFC 3461),
/// so its problems are badmail: the operator sees the file instead of it vanishing.
///
/// Accepted Pickup messages lose `Bcc` (its addresses stay envelope recipients; `To:
/// Undisclosed recipients:;` is added when no To/Cc address is left), `Received`,
/// `Resent-*` and any Replay envelope lines; accepted Replay messages lose their injected
/// X-header block and `Bcc`. Both get `Message-ID` when missing or empty, `Date` when
/// missing or unparseable, and a `Received: from localhost by <host> (Postroom) with
/// pickup|replay; <date>` line on top. Every change is listed in `headerChanges`.
public enum SubmissionValidator {
    /// How many leading bytes of a file larger than `maxMessageSize` the caller should
    /// read and pass: enough to find the sender in any sane header.
    public static let oversizedPrefixLength = 262_144
    /// The most header bytes attached to a report.
    public static let maxAttachedHeaderBytes = 65_536

    /// Validates a submitted file. `bytes` is the whole file, or, when `totalSize`
    /// exceeds `limits.maxMessageSize`, just a prefix of it (see `oversizedPrefixLength`).
    public static func validate(
        _ bytes: [UInt8], totalSize: Int64, source: MessageSource,
        limits: SubmissionLimits, context: SubmissionContext
    ) -> SubmissionVerdict {
        let size = max(totalSize, Int64(bytes.count))
        if size > limits.maxMessageSize {
            return refuseEarly(
                bytes, source: source, status: "5.3.4",
                problem: "the message is \(size) bytes, larger than the limit of \(limits.maxMessageSize) bytes",
                advice: "send a smaller message (for example, share large attachments by link)")
        }
        let message: RFC5322Message
        do {
            message = try RFC5322Message(parsing: bytes)
        } catch {
            if let (separated, line) = MissingSeparator.separated(bytes, error: error) {
                return noting("no blank line before the body: it starts at header line \(line), which is not a field",
                              validate(separated, totalSize: Int64(separated.count), source: source, limits: limits, context: context))
            }
            return refuseEarly(
                bytes, source: source, status: "5.6.0",
                problem: "the file cannot be read as a message: \(error.description)",
                advice: "fix the header (each line \"Name: value\", a blank line before the body) and submit it again")
        }
        switch source {
        case .pickup: return validatePickup(message, limits: limits, context: context)
        case .replay: return validateReplay(message, context: context)
        }
    }

    // MARK: - Pickup

    private static func validatePickup(
        _ message: RFC5322Message, limits: SubmissionLimits, context: SubmissionContext
    ) -> SubmissionVerdict {
        let sender: String
        switch pickupSender(message.fields) {
        case .failure(let problem):
            return .badmail(reason: "no valid sender, so no report can be sent: \(problem.text); "
                + "put one address in From: (or, when From: lists several, one address in Sender:) "
                + "and copy the file back into pickup/ as .eml")
        case .success(let address):
            sender = address
        }
        let (recipients, visibleCount, invalid) = pickupRecipients(message.fields)
        let envelope = Envelope(sender: sender, recipients: recipients.map { EnvelopeRecipient(address: $0) })
        let header = attachable(message.originalHeaderBlock)
        if message.headerByteCount > limits.maxHeaderSize {
            return .report(SubmissionReport(
                envelope: envelope, status: "5.3.4",
                diagnostic: "The message header is \(message.headerByteCount) bytes, larger than the limit of "
                    + "\(limits.maxHeaderSize) bytes. Remove unneeded header fields and send it again.",
                headerBytes: header, invalidRecipients: invalid))
        }
        if recipients.count > limits.maxRecipients {
            return .report(SubmissionReport(
                envelope: envelope, status: "5.5.3",
                diagnostic: "The message has \(recipients.count) recipients, more than the limit of "
                    + "\(limits.maxRecipients). Send it in several parts or to a distribution group.",
                headerBytes: header, invalidRecipients: invalid))
        }
        if recipients.isEmpty {
            return .report(SubmissionReport(
                envelope: envelope, status: "5.1.3",
                diagnostic: "The message has no valid recipients: To:, Cc: and Bcc: hold no valid address. "
                    + "Add at least one recipient address and send it again.",
                headerBytes: header, invalidRecipients: invalid))
        }

        var rewritten = message
        var changes: [String] = []
        let bccCount = recipients.count - visibleCount
        if rewritten.removeFields(named: "Bcc") > 0 {
            changes.append("removed Bcc (its \(bccCount) address(es) stay envelope recipients)")
        }
        if visibleCount == 0 {
            rewritten.setField(name: "To", value: "Undisclosed recipients:;")
            changes.append("added To: Undisclosed recipients:;")
        }
        let received = rewritten.removeFields(named: "Received")
        if received > 0 { changes.append("removed \(received) Received field(s)") }
        var resent: [String] = []
        rewritten.removeFields { field in
            guard HeaderText.hasPrefixIgnoringASCIICase(field.name, "Resent-") else { return false }
            resent.append(field.name)
            return true
        }
        if !resent.isEmpty { changes.append("removed \(resent.joined(separator: ", "))") }
        // Pickup never honours Replay envelope lines; dropping them keeps a Replay-format
        // copy of this message (a drop file) from carrying a forged envelope.
        var envelopeLines: [String] = []
        rewritten.removeFields { field in
            guard ReplayEnvelope.envelopeFieldNames.contains(field.name.lowercased()) else { return false }
            envelopeLines.append(field.name)
            return true
        }
        if !envelopeLines.isEmpty { changes.append("removed Replay envelope fields \(summarize(envelopeLines)) (not honoured in pickup)") }
        if !invalid.isEmpty {
            changes.append("\(invalid.count) unusable recipient element(s) reported to the sender (5.1.3): "
                + invalid.map { "\"\($0.address)\"" }.joined(separator: ", "))
        }
        let verdict = finish(rewritten, envelope: envelope, source: .pickup, context: context, changes: changes)
        guard case .accepted(var accepted) = verdict else { return verdict }
        accepted.invalidRecipients = invalid
        return .accepted(accepted)
    }

    // MARK: - Replay

    private static func validateReplay(_ message: RFC5322Message, context: SubmissionContext) -> SubmissionVerdict {
        let envelope: Envelope
        do {
            envelope = try ReplayEnvelope.parse(message)
        } catch {
            let header = attachable(message.originalHeaderBlock)
            return refuseReplay(error, fields: message.fields, header: header)
        }
        var rewritten = message
        var changes: [String] = []
        let removed = ReplayEnvelope.removeInjectedFields(from: &rewritten)
        if !removed.isEmpty { changes.append("removed Replay envelope fields \(summarize(removed))") }
        let bcc = rewritten.removeFields(named: "Bcc")
        if bcc > 0 { changes.append("removed \(bcc) Bcc field(s)") }
        return finish(rewritten, envelope: envelope, source: .replay, context: context, changes: changes)
    }

    private static func refuseReplay(_ error: SubmissionError, fields: [HeaderField], header: [UInt8]) -> SubmissionVerdict {
        let advice = "put exactly one X-Sender: line and at least one X-Receiver: line, each with one address, "
            + "before all other header fields and copy the file back into replay/ as .eml"
        if error.isSenderProblem {
            return .badmail(reason: "\(error.description), so no report can be sent; \(advice)")
        }
        // Parsing stops at the first problem, so a recipient error does not prove the
        // sender is usable: look it up again.
        guard let sender = replaySender(fields) else {
            return .badmail(reason: "\(error.description), and there is no usable X-Sender, so no report can be sent; \(advice)")
        }
        guard !sender.isEmpty else {
            return .badmail(reason: "\(error.description), and the sender is the null sender <>, "
                + "so no report can be sent; \(advice)")
        }
        // The intended recipients that can be read, for the report's text.
        var seen = Set<String>()
        let recipients: [EnvelopeRecipient] = leadingBlock(fields)
            .filter { $0.hasName("X-Receiver") }
            .compactMap { field in
                guard let (address, parameters) = ReplayEnvelope.split(field.value),
                      let parsed = ReplayEnvelope.normalize(address, allowNull: false),
                      seen.insert(parsed).inserted else { return nil }
                return EnvelopeRecipient(address: parsed, parameters: parameters)
            }
        let status: String
        switch error {
        case .missingRecipients, .invalidRecipient: status = "5.1.3"
        default: status = "5.6.0"
        }
        return .report(SubmissionReport(
            envelope: Envelope(sender: sender, recipients: recipients), status: status,
            diagnostic: "The message envelope is invalid: \(error.description). Correct it and submit the message again.",
            headerBytes: header))
    }

    /// The X-Sender address if the leading block has exactly one usable one.
    private static func replaySender(_ fields: [HeaderField]) -> String? {
        let senders = leadingBlock(fields).filter { $0.hasName("X-Sender") }
        guard senders.count == 1, let (address, _) = ReplayEnvelope.split(senders[0].value) else { return nil }
        return ReplayEnvelope.normalize(address, allowNull: true)
    }

    private static func leadingBlock(_ fields: [HeaderField]) -> ArraySlice<HeaderField> {
        let end = fields.firstIndex { !HeaderText.hasPrefixIgnoringASCIICase($0.name, "X-") } ?? fields.endIndex
        return fields[..<end]
    }

    // MARK: - Shared

    /// Adds Message-ID and Date when needed and the Received line, then serializes.
    private static func finish(
        _ message: RFC5322Message, envelope: Envelope, source: MessageSource,
        context: SubmissionContext, changes: [String]
    ) -> SubmissionVerdict {
        var rewritten = message
        var changes = changes
        let messageID: String
        if let existing = rewritten.value(of: "Message-ID"), !existing.isEmpty {
            messageID = existing
        } else {
            messageID = "<\(idLeft(context.uniqueID))@\(idRight(context.defaultDomain))>"
            rewritten.setField(name: "Message-ID", value: messageID)
            changes.append("added Message-ID: \(messageID)")
        }
        let now = MessageDate.format(context.now)
        if let date = rewritten.value(of: "Date") {
            if MessageDate.parse(date) == nil {
                rewritten.setField(name: "Date", value: now)
                changes.append("replaced unparseable Date \"\(ReplayEnvelope.excerpt(date))\" with Date: \(now)")
            }
        } else {
            rewritten.addField(name: "Date", value: now)
            changes.append("added Date: \(now)")
        }
        // Say what happened: a report Postroom generated was not received from anywhere.
        let received = context.generatedReport
            ? "by \(idRight(context.hostname)) (Postroom) with local (delivery status notification); \(now)"
            : "from localhost by \(idRight(context.hostname)) (Postroom) with \(source.rawValue); \(now)"
        rewritten.addField(name: "Received", value: received, at: .top)
        changes.append("added Received: \(received)")
        return .accepted(AcceptedSubmission(
            envelope: envelope, message: rewritten.serialized(), messageID: messageID, headerChanges: changes))
    }

    /// A report when the sender can be found in what could be read, badmail otherwise.
    private static func refuseEarly(
        _ bytes: [UInt8], source: MessageSource, status: String, problem: String, advice: String
    ) -> SubmissionVerdict {
        let (fields, range) = RFC5322Message.lenientHeader(of: bytes)
        let header = attachable(bytes[range])
        switch source {
        case .pickup:
            switch pickupSender(fields) {
            case .success(let sender):
                let (addresses, _, invalid) = pickupRecipients(fields)
                return .report(SubmissionReport(
                    envelope: Envelope(sender: sender, recipients: addresses.map { EnvelopeRecipient(address: $0) }), status: status,
                    diagnostic: "\(capitalized(problem)). To fix it, \(advice).", headerBytes: header, invalidRecipients: invalid))
            case .failure(let senderProblem):
                return .badmail(reason: "\(problem), and no valid sender was found to report to "
                    + "(\(senderProblem.text)); \(advice), then copy the file back as .eml")
            }
        case .replay:
            guard let sender = replaySender(fields) else {
                return .badmail(reason: "\(problem), and no valid X-Sender was found to report to; "
                    + "\(advice), then copy the file back as .eml")
            }
            guard !sender.isEmpty else {
                return .badmail(reason: "\(problem), and the sender is the null sender <>, so no report can be "
                    + "sent; \(advice), then copy the file back as .eml")
            }
            let recipients = (try? ReplayEnvelope.parse(fields: fields).recipients) ?? []
            return .report(SubmissionReport(
                envelope: Envelope(sender: sender, recipients: recipients), status: status,
                diagnostic: "\(capitalized(problem)). To fix it, \(advice).", headerBytes: header))
        }
    }

    /// At most `maxAttachedHeaderBytes`, cut after a line feed.
    private static func attachable(_ header: ArraySlice<UInt8>) -> [UInt8] {
        guard header.count > maxAttachedHeaderBytes else { return Array(header) }
        let limit = header.startIndex + maxAttachedHeaderBytes
        let cut = header[..<limit].lastIndex(of: 0x0A).map { $0 + 1 } ?? limit
        return Array(header[..<cut])
    }

    private static func summarize(_ names: [String]) -> String {
        var counts: [(String, Int)] = []
        for name in names {
            if let index = counts.firstIndex(where: { HeaderText.equalsIgnoringASCIICase($0.0, name) }) {
                counts[index].1 += 1
            } else {
                counts.append((name, 1))
            }
        }
        return counts.map { $0.1 > 1 ? "\($0.0) ×\($0.1)" : $0.0 }.joined(separator: ", ")
    }

    private static func capitalized(_ text: String) -> String {
        guard let first = text.first else { return text }
        return first.uppercased() + text.dropFirst()
    }

    /// The unique id restricted to characters allowed in a Message-ID's left part.
    private static func idLeft(_ text: String) -> String {
        let kept = text.utf8.filter { isASCIIAlphanumeric($0) || "-._$+=".utf8.contains($0) }
        return kept.isEmpty ? "postroom" : String(decoding: kept, as: UTF8.self)
    }

    /// A host or domain name restricted to hostname characters, lowercased.
    private static func idRight(_ text: String) -> String {
        let kept = text.utf8.filter { isASCIIAlphanumeric($0) || $0 == 0x2D || $0 == 0x2E }.map(HeaderText.lowerASCII)
        return kept.isEmpty ? "localhost" : String(decoding: kept, as: UTF8.self)
    }

    private static func isASCIIAlphanumeric(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
    }
}
