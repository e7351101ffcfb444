/// The recipient directory as written by operators (`pipelines/directory.json5`): Postroom's
/// stand-in for the Active Directory objects Exchange's categorizer reads.
///
/// Decoding checks the shape only (keys, types; unknown keys are errors with their
/// `file:line: key.path`); the meaning (addresses well formed, in an accepted domain, no
/// duplicates, no cycles) is checked by ``RecipientDirectory/problems()``, which can report
/// every fault at once instead of stopping at the first.
public struct DirectoryFile: Sendable, Hashable, Decodable {
    /// Local mailboxes, delivered to `mailboxes/<name>/`.
    public var mailboxes: [Mailbox]
    /// Mail contacts: an address in an accepted domain that forwards to an outside or typed target.
    public var contacts: [Contact]
    /// Distribution groups, expanded to their members (which may be groups themselves).
    public var groups: [Group]

    public init(mailboxes: [Mailbox] = [], contacts: [Contact] = [], groups: [Group] = []) {
        self.mailboxes = mailboxes
        self.contacts = contacts
        self.groups = groups
    }

    /// A local mailbox: one primary SMTP address and any number of aliases (proxy addresses).
    /// Mail to an alias is rewritten to the primary address, as Exchange does.
    public struct Mailbox: Sendable, Hashable, Decodable {
        /// The mailbox name: the Maildir folder under `mailboxes/`.
        public var name: String
        /// The primary SMTP address; must be in an accepted domain.
        public var address: String
        /// Further addresses that reach this mailbox; each must be in an accepted domain.
        public var aliases: [String]

        public init(name: String, address: String, aliases: [String] = []) {
            self.name = name
            self.address = address
            self.aliases = aliases
        }

        enum CodingKeys: String, CodingKey, CaseIterable { case name, address, aliases }

        public init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let container = try decoder.container(keyedBy: CodingKeys.self)
            name = try container.decode(String.self, forKey: .name)
            address = try container.decode(String.self, forKey: .address)
            aliases = try container.decodeIfPresent([String].self, forKey: .aliases) ?? []
        }
    }

    /// A mail contact: `address` is in an accepted domain, mail to it goes to `target`
    /// (an outside SMTP address such as `x@elsewhere.org`, or a typed address such as
    /// `FAX:+15551234` or `X400:c=US;a=…;p=…`).
    public struct Contact: Sendable, Hashable, Decodable {
        /// A display name for logs and `explain`; optional.
        public var name: String?
        /// The address in an accepted domain that senders use.
        public var address: String
        /// Where the mail really goes.
        public var target: String

        public init(name: String? = nil, address: String, target: String) {
            self.name = name
            self.address = address
            self.target = target
        }

        enum CodingKeys: String, CodingKey, CaseIterable { case name, address, target }

        public init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let container = try decoder.container(keyedBy: CodingKeys.self)
            name = try container.decodeIfPresent(String.self, forKey: .name)
            address = try container.decode(String.self, forKey: .address)
            target = try container.decode(String.self, forKey: .target)
        }
    }

    /// A distribution group. Members are addresses: mailboxes (primary or alias), contacts,
    /// other groups (nested, expanded recursively) or outside/typed addresses.
    public struct Group: Sendable, Hashable, Decodable {
        /// A display name for logs and `explain`; optional.
        public var name: String?
        /// The group's address, in an accepted domain.
        public var address: String
        /// The member addresses, in order.
        public var members: [String]

        public init(name: String? = nil, address: String, members: [String]) {
            self.name = name
            self.address = address
            self.members = members
        }

        enum CodingKeys: String, CodingKey, CaseIterable { case name, address, members }

        public init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let container = try decoder.container(keyedBy: CodingKeys.self)
            name = try container.decodeIfPresent(String.self, forKey: .name)
            address = try container.decode(String.self, forKey: .address)
            members = try container.decode([String].self, forKey: .members)
        }
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case mailboxes, contacts, groups }

    /// Every section is optional: an empty file `{}` is an empty directory.
    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        mailboxes = try container.decodeIfPresent([Mailbox].self, forKey: .mailboxes) ?? []
        contacts = try container.decodeIfPresent([Contact].self, forKey: .contacts) ?? []
        groups = try container.decodeIfPresent([Group].self, forKey: .groups) ?? []
    }
}
