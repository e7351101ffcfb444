/// Why the envelope of a Replay file (its `X-Sender`/`X-Receiver` lines) is unusable.
public enum SubmissionError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No `X-Sender` field in the leading X-header block.
    case missingSender
    /// More than one `X-Sender` field.
    case multipleSenders
    /// The `X-Sender` value is not one address (as written).
    case invalidSender(String)
    /// No `X-Receiver` field in the leading X-header block.
    case missingRecipients
    /// An `X-Receiver` value is not one address (as written).
    case invalidRecipient(String)
    /// `X-Sender` or `X-Receiver` after the first ordinary header field (name given).
    case envelopeFieldAfterHeader(String)

    /// Whether the problem is with the sender, so no report can be sent to it.
    public var isSenderProblem: Bool {
        switch self {
        case .missingSender, .multipleSenders, .invalidSender: return true
        default: return false
        }
    }

    public var description: String {
        switch self {
        case .missingSender:
            return "the Replay file has no X-Sender line before its ordinary header fields"
        case .multipleSenders:
            return "the Replay file has more than one X-Sender line; exactly one is required"
        case .invalidSender(let value):
            return "the X-Sender line \"\(ReplayEnvelope.excerpt(value))\" does not hold one address"
        case .missingRecipients:
            return "the Replay file has no X-Receiver line before its ordinary header fields"
        case .invalidRecipient(let value):
            return "the X-Receiver line \"\(ReplayEnvelope.excerpt(value))\" does not hold one address"
        case .envelopeFieldAfterHeader(let name):
            return "\(name) appears after an ordinary header field; Replay envelope lines must come first"
        }
    }
}

/// Reads the envelope of a Replay-directory file from its leading X-header block.
///
/// Rules (Exchange Replay, made strict where Exchange is vague): the file starts with a
/// block of `X-` fields; in it exactly one `X-Sender` and at least one `X-Receiver`;
/// other `X-` fields (`X-CreatedBy`, `X-EndOfInjectedXHeaders`, …) may be mixed in.
/// An `X-Sender`/`X-Receiver` after the first non-`X-` field is an error, because
/// honouring it would let anyone who can write a message body line into a header
/// (a forwarded header, say) redirect the message.
public enum ReplayEnvelope {
    /// The envelope from the message's leading X-header block. The null sender
    /// `<>` gives `sender == ""`; typed recipients (`FAX:+15551234`) are kept verbatim.
    public static func parse(_ message: RFC5322Message) throws(SubmissionError) -> Envelope {
        try parse(fields: message.fields)
    }

    /// The envelope from a list of header fields in file order (see `parse(_:)`).
    static func parse(fields: [HeaderField]) throws(SubmissionError) -> Envelope {
        var sender: String?
        var senderParameters: [String] = []
        var senderCount = 0
        var recipients: [EnvelopeRecipient] = []
        // The same address twice (even with other parameters): the first one wins.
        var seen = Set<String>()
        var inLeadingBlock = true
        for field in fields {
            let isSender = field.hasName("X-Sender")
            let isReceiver = field.hasName("X-Receiver")
            if inLeadingBlock, !HeaderText.hasPrefixIgnoringASCIICase(field.name, "X-") {
                inLeadingBlock = false
            }
            guard isSender || isReceiver else { continue }
            guard inLeadingBlock else { throw .envelopeFieldAfterHeader(isSender ? "X-Sender" : "X-Receiver") }
            let value = field.value
            // An address is ASCII or UTF-8 (RFC 6532); `value` would have read other bytes as
            // Windows-1252 and so delivered to an address nobody wrote.
            let readable = AddressTokenizer.isValidUTF8(field.rawValue)
            if isSender {
                senderCount += 1
                guard senderCount == 1 else { throw .multipleSenders }
                guard readable, let (address, parameters) = split(value), let parsed = normalize(address, allowNull: true) else {
                    throw .invalidSender(value)
                }
                sender = parsed
                senderParameters = parameters
            } else {
                guard readable, let (address, parameters) = split(value),
                      let parsed = normalize(address, allowNull: false) else {
                    throw .invalidRecipient(value)
                }
                let recipient = EnvelopeRecipient(address: parsed, parameters: parameters)
                if seen.insert(recipient.address).inserted { recipients.append(recipient) }
            }
        }
        guard let sender else { throw .missingSender }
        guard !recipients.isEmpty else { throw .missingRecipients }
        return Envelope(sender: sender, recipients: recipients, parameters: senderParameters)
    }

    /// The envelope header fields a Replay producer injects; they describe the
    /// submission, not the message, and are removed from the stored message.
    static let injectedFieldNames: Set<String> = [
        "x-sender", "x-receiver", "x-endofinjectedxheaders", "x-createdby", "x-extendedmessageprops",
        "x-helodomain", "x-source", "x-sourceipaddress",
    ]

    /// The fields that carry an envelope. They are removed wherever they appear in a
    /// stored message, so that writing it out in Replay format can never yield a file
    /// with a second, conflicting (or smuggled) envelope.
    static let envelopeFieldNames: Set<String> = ["x-sender", "x-receiver", "x-endofinjectedxheaders"]

    /// Removes the injected fields from the leading X-header block (other `X-` fields
    /// there, like `X-Mailer`, are message content and stay) and the envelope fields
    /// (`envelopeFieldNames`) anywhere. Returns the names removed, in order.
    static func removeInjectedFields(from message: inout RFC5322Message) -> [String] {
        var removed: [String] = []
        var inLeadingBlock = true
        message.fields.removeAll { field in
            let name = field.name.lowercased()
            if inLeadingBlock, !HeaderText.hasPrefixIgnoringASCIICase(field.name, "X-") {
                inLeadingBlock = false
            }
            let names = inLeadingBlock ? injectedFieldNames : envelopeFieldNames
            guard names.contains(name) else { return false }
            removed.append(field.name)
            return true
        }
        return removed
    }

    /// Splits `<address> PARAM=value …` (or `address PARAM…`) into the address and
    /// its parameters. The angle form may contain spaces (typed addresses).
    static func split(_ value: String) -> (String, [String])? {
        let trimmed = value.trimmingWhitespace()
        guard !trimmed.isEmpty else { return nil }
        let address: String
        let rest: Substring
        if trimmed.hasPrefix("<") {
            guard let close = closingAngle(in: trimmed) else { return nil }
            address = String(trimmed[trimmed.index(after: trimmed.startIndex)..<close])
            rest = trimmed[trimmed.index(after: close)...]
            // Parameters must be separated from the address by white space.
            if let first = rest.first, first != " ", first != "\t" { return nil }
        } else {
            let end = trimmed.firstIndex(where: { $0 == " " || $0 == "\t" }) ?? trimmed.endIndex
            address = String(trimmed[..<end])
            rest = trimmed[end...]
        }
        let parameters = rest.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        return (address, parameters)
    }

    /// The `>` matching the leading `<`, skipping quoted strings.
    private static func closingAngle(in text: String) -> String.Index? {
        var inQuotes = false
        var escaped = false
        for index in text.indices.dropFirst() {
            let character = text[index]
            if escaped { escaped = false; continue }
            if character == "\\" { escaped = true; continue }
            if character == "\"" { inQuotes.toggle(); continue }
            if character == ">", !inQuotes { return index }
        }
        return nil
    }

    /// A normalised envelope address: SMTP (domain lowercased, route dropped), a typed
    /// address `TYPE:value` verbatim (`SMTP:` prefix removed), or "" for `<>` when allowed.
    static func normalize(_ address: String, allowNull: Bool) -> String? {
        let trimmed = address.trimmingWhitespace()
        if trimmed.isEmpty { return allowNull ? "" : nil }
        if let type = typedAddressType(trimmed) {
            let value = trimmed[trimmed.index(after: trimmed.firstIndex(of: ":")!)...]
            if type.uppercased() == "SMTP" {
                return AddressParser.parseAddress(String(value))
            }
            return String(value).trimmingWhitespace().isEmpty ? nil : trimmed
        }
        return AddressParser.parseAddress("<" + trimmed + ">")
    }

    /// The type of a typed address (`FAX` in `FAX:+1555`), or nil for an SMTP address.
    /// A type is a letter then letters, digits or hyphens, at most 32 characters.
    static func typedAddressType(_ address: String) -> Substring? {
        guard let colon = address.firstIndex(of: ":"), colon > address.startIndex else { return nil }
        let type = address[..<colon]
        guard type.count <= 32, let first = type.first, first.isASCII, first.isLetter,
              type.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }) else { return nil }
        return type
    }

    static func excerpt(_ value: String) -> String {
        value.count > 120 ? String(value.prefix(120)) + "…" : value
    }
}

/// Writes messages in Replay format: the envelope as `X-Sender`/`X-Receiver` lines,
/// then the message. The result can be dropped straight into a Replay directory.
public enum ReplayFormat {
    /// `X-Sender: <sender> PARAMS`, one `X-Receiver: <address> PARAMS` per recipient, then
    /// `X-EndOfInjectedXHeaders: N`, then `message`.
    ///
    /// N is the number of bytes of the injected lines *before* the
    /// `X-EndOfInjectedXHeaders` line (X-Sender and X-Receiver lines with their line
    /// endings): excluding its own line keeps the count free of self-reference.
    ///
    /// If `message` already starts with Replay envelope lines (a file that came in
    /// through Replay), they are removed first so the output has exactly one envelope.
    /// All lines use `lineEnding`; pass the message's own so the file is consistent.
    public static func encode(envelope: Envelope, message: [UInt8], lineEnding: String) -> [UInt8] {
        let eol = lineEnding == "\n" ? "\n" : "\r\n"
        var injected = "X-Sender: <\(sanitized(envelope.sender))>"
        for parameter in envelope.parameters {
            let cleaned = sanitizedParameter(parameter)
            if !cleaned.isEmpty { injected += " " + cleaned }
        }
        injected += eol
        for recipient in envelope.recipients {
            injected += "X-Receiver: <\(sanitized(recipient.address))>"
            for parameter in recipient.parameters {
                let cleaned = sanitizedParameter(parameter)
                if !cleaned.isEmpty { injected += " " + cleaned }
            }
            injected += eol
        }
        var out = Array(injected.utf8)
        out.append(contentsOf: "X-EndOfInjectedXHeaders: \(out.count)\(eol)".utf8)
        out.append(contentsOf: strippingEnvelope(message))
        return out
    }

    /// `message` without Replay envelope lines (see `ReplayEnvelope.removeInjectedFields`);
    /// the very same bytes when it has none or cannot be parsed.
    private static func strippingEnvelope(_ message: [UInt8]) -> [UInt8] {
        guard var parsed = try? RFC5322Message(parsing: message) else { return message }
        return ReplayEnvelope.removeInjectedFields(from: &parsed).isEmpty ? message : parsed.serialized()
    }

    /// An address may not close its angle brackets early or break the line. Brackets inside
    /// a quoted local part (`"a<b"@x.example`) are the address itself and stay: the reader
    /// skips quoted strings, and a space there would deliver to an address nobody wrote.
    private static func sanitized(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        var quoted = false
        var escaped = false
        for scalar in text.unicodeScalars {
            if scalar == "\r" || scalar == "\n" || (!quoted && (scalar == ">" || scalar == "<")) {
                out.append(" ")
                escaped = false
                continue
            }
            if escaped {
                escaped = false
            } else if quoted, scalar == "\\" {
                escaped = true
            } else if scalar == "\"" {
                quoted.toggle()
            }
            out.append(scalar)
        }
        return String(out)
    }

    /// A parameter is one word: white space would split it, a line break would inject a field.
    private static func sanitizedParameter(_ text: String) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.filter { !$0.properties.isWhitespace }))
    }
}
