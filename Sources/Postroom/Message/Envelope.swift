/// The SMTP envelope of a message: who it is from and who it is for.
///
/// The envelope, not the `To`/`Cc` header fields, decides where a message goes.
/// Addresses are either SMTP mailboxes (`local@domain`) or typed addresses
/// (`FAX:+15551234`, `X400:c=US;a=...`). The null sender (`<>`) is the empty string.
public struct Envelope: Sendable, Codable, Equatable {
    /// The envelope sender (`MAIL FROM`); empty for the null sender of reports.
    public var sender: String
    /// The envelope recipients (`RCPT TO`), in order, without duplicates.
    public var recipients: [EnvelopeRecipient]
    /// The sender's ESMTP parameters as written in `X-Sender` (`RET=HDRS`, `ENVID=…`, RFC 3461).
    public var parameters: [String]

    public init(sender: String, recipients: [EnvelopeRecipient], parameters: [String] = []) {
        self.sender = sender
        self.recipients = recipients
        self.parameters = parameters
    }

    /// True for the null sender `<>`: no report may ever be sent about such a message.
    public var hasNullSender: Bool { sender.isEmpty }

    enum CodingKeys: String, CodingKey { case sender, recipients, parameters }

    // Written by hand so queue entries from before `parameters` existed still decode, and
    // entries without sender parameters stay byte-for-byte as they were.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        sender = try container.decode(String.self, forKey: .sender)
        recipients = try container.decode([EnvelopeRecipient].self, forKey: .recipients)
        parameters = try container.decodeIfPresent([String].self, forKey: .parameters) ?? []
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(sender, forKey: .sender)
        try container.encode(recipients, forKey: .recipients)
        if !parameters.isEmpty { try container.encode(parameters, forKey: .parameters) }
    }
}

/// One envelope recipient with its DSN parameters (RFC 3461), as carried in `X-Receiver`.
public struct EnvelopeRecipient: Sendable, Codable, Hashable {
    /// The address: `local@domain` or `TYPE:value`.
    public var address: String
    /// ESMTP parameters as written, e.g. `NOTIFY=NEVER`, `ORCPT=rfc822;a@b`.
    public var parameters: [String]

    public init(address: String, parameters: [String] = []) {
        self.address = address
        self.parameters = parameters
    }
}
