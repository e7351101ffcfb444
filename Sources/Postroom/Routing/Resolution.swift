/// What recipient resolution made of a message's envelope recipients: who gets a copy,
/// who gets a non-delivery report, and how each was reached.
///
/// Guarantees: `resolved` holds each final address once (a person reached through two groups
/// gets one copy), in the order first reached; `failed` holds each failing address once;
/// every recipient given to ``RecipientDirectory/resolve(_:)`` is accounted for: it (or each of
/// its group's members) is in `resolved` or `failed`, except that an empty distribution group
/// yields nothing (as in Exchange: no copy, no report) and a group already expanded for an
/// earlier recipient of the same message is not expanded again (its members are already there).
public struct ResolutionResult: Sendable, Hashable, Codable {
    /// Final recipients, deduplicated by final address, in the order first reached.
    public var resolved: [ResolvedRecipient]
    /// Recipients that cannot be delivered, with the DSN status for the report.
    public var failed: [FailedResolution]
    /// Every rewrite and expansion, in order: for the tracking log and `postroom explain`.
    public var steps: [ResolutionStep]

    public init(resolved: [ResolvedRecipient] = [], failed: [FailedResolution] = [], steps: [ResolutionStep] = []) {
        self.resolved = resolved
        self.failed = failed
        self.steps = steps
    }
}

/// One final recipient after resolution and expansion.
public struct ResolvedRecipient: Sendable, Hashable, Codable {
    /// The address to deliver to: a mailbox's primary SMTP address, a contact's target,
    /// an outside SMTP address or a typed address (`FAX:+15551234`), as written.
    public var address: String
    /// The envelope recipient this one came from, exactly as given (parameters and ORCPT kept).
    /// For a group member it is the group's envelope recipient.
    public var original: EnvelopeRecipient
    /// The mailbox name (`mailboxes/<name>/`) when the address is a local mailbox; nil otherwise.
    public var mailbox: String?
    /// How it was reached, from the envelope address to `address`, e.g.
    /// `["team@example.com", "alice@example.com"]`; one element when nothing was rewritten.
    public var chain: [String]

    public init(address: String, original: EnvelopeRecipient, mailbox: String? = nil, chain: [String]) {
        self.address = address
        self.original = original
        self.mailbox = mailbox
        self.chain = chain
    }

    /// The recipient to write on the outgoing envelope (`X-Receiver`): the final address with the
    /// original's parameters. When resolution changed the address and the original carried no
    /// `ORCPT=`, one is added naming the address the sender used (RFC 3461 §4.2), as Exchange
    /// keeps the original in ORCPT when it rewrites to the primary address.
    public var envelopeRecipient: EnvelopeRecipient {
        var parameters = original.parameters
        let hasORCPT = parameters.contains { $0.uppercased().hasPrefix("ORCPT=") }
        if !hasORCPT, address != original.address, RoutingAddress.parse(original.address)?.type == "SMTP" {
            parameters.append("ORCPT=rfc822;" + xtext(original.address))
        }
        return EnvelopeRecipient(address: address, parameters: parameters)
    }
}

/// A recipient that cannot be delivered, with what to put in the non-delivery report.
public struct FailedResolution: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The address that failed (for a group member: the member, not the group).
    public var address: String
    /// The envelope recipient it came from, as given.
    public var original: EnvelopeRecipient
    /// The RFC 3463 enhanced status code: `5.1.1` unknown recipient, `5.1.3` bad address syntax,
    /// `5.4.6` forwarding loop, `5.4.4` no route (from ``RouteTable/route(_:)``).
    public var status: String
    /// A sentence for people, e.g. `unknown recipient alice2@example.com`.
    public var diagnostic: String

    public init(address: String, original: EnvelopeRecipient, status: String, diagnostic: String) {
        self.address = address
        self.original = original
        self.status = status
        self.diagnostic = diagnostic
    }

    public var description: String { "\(address): \(status) \(diagnostic)" }
}

/// One rewrite or expansion made while resolving, e.g. `al@example.com` → `alice@example.com`.
public struct ResolutionStep: Sendable, Hashable, Codable, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable, Codable {
        /// An address rewritten to another: alias → primary, contact → target, IMCEA decapsulation.
        case resolve
        /// A group expanded: one step per member.
        case expand
    }

    public var kind: Kind
    public var from: String
    public var to: String
    /// Why, for people: `alias of mailbox alice`, `contact fax-desk`, `IMCEA decapsulation`,
    /// `member of group team@example.com`.
    public var detail: String

    public init(kind: Kind, from: String, to: String, detail: String) {
        self.kind = kind
        self.from = from
        self.to = to
        self.detail = detail
    }

    public var description: String { "\(kind.rawValue) \(from) → \(to) (\(detail))" }
}

/// Something wrong in a recipient directory, found by ``RecipientDirectory/problems()``.
public struct DirectoryProblem: Sendable, Hashable, Codable, CustomStringConvertible {
    /// Where in the directory file, e.g. `groups[1].members[2]`.
    public var keyPath: String
    /// What is wrong and, where it helps, what to do.
    public var message: String
    /// The line in the directory file, when it was loaded from one and the place was found.
    public var line: Int?

    public init(keyPath: String, message: String, line: Int? = nil) {
        self.keyPath = keyPath
        self.message = message
        self.line = line
    }

    public var description: String { "\(keyPath): \(message)" }
}

/// RFC 3461 xtext: `+`, `=`, controls, space and non-ASCII become `+HH`.
func xtext(_ text: String) -> String {
    var result = ""
    for byte in text.utf8 {
        if byte > 0x20, byte < 0x7F, byte != UInt8(ascii: "+"), byte != UInt8(ascii: "=") {
            result.unicodeScalars.append(Unicode.Scalar(byte))
        } else {
            result += "+" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
        }
    }
    return result
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
