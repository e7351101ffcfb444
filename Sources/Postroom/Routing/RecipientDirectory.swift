/// The categorizer's view of the recipient directory: looks addresses up, rewrites aliases and
/// contacts, expands groups and decapsulates IMCEA addresses.
///
/// Rules (reference/exchange-transport.md §6, [RR]):
/// - Domains and local parts compare case-insensitively, as Exchange's proxy addresses do.
/// - An address in an accepted domain must be in the directory; if not, that recipient alone
///   fails with 5.1.1 and the others are still delivered.
/// - Addresses outside the accepted domains, and typed addresses (`FAX:…`), pass through unchanged.
/// - Groups expand recursively. A group already expanded for this message is not expanded
///   again, so nested and cyclic groups terminate and deliver each member once (Exchange's
///   "harmless loop"). A chain of contacts that only forwards in a circle fails with 5.4.6
///   (Exchange's "broken forward-only loop").
/// - IMCEA addresses are decapsulated in **every accepted domain**, not only the first
///   (Exchange decodes only in its default domain). Postroom is authoritative for all of its
///   accepted domains, so an IMCEA address in any of them can mean nothing else, and an
///   operator with several domains should not see 5.1.1 for what Exchange clients generated
///   with another. Encapsulated `SMTP` and `X500` are refused with 5.1.1, as in Exchange
///   (an encapsulated SMTP address would make Postroom an open relay). A directory entry wins
///   over decapsulation. The decoded address is resolved again (it may name a contact or group).
/// - Resolution never performs I/O; the directory is immutable and safe to share.
public struct RecipientDirectory: Sendable {
    /// The directory as read from the file.
    public let file: DirectoryFile
    /// The accepted domains, lower-cased, in the order given (the first is the default).
    public let acceptedDomains: [String]

    /// Each address (alias, contact, group), keyed by ``RoutingAddress/key``. The first entry
    /// with an address wins; ``problems()`` reports the later ones.
    let entries: [String: Entry]
    /// Problems found while indexing (duplicates), reported by ``problems()``.
    private let indexProblems: [DirectoryProblem]
    /// Where each key path is in the file, when loaded with ``load(path:acceptedDomains:)``.
    private let lines: [String: Int]

    enum Entry: Sendable, Hashable {
        case mailbox(Int)
        case contact(Int)
        case group(Int)
    }

    /// Deeper than this is certainly a mistake; the guard keeps the stack safe whatever the file says.
    static let maxDepth = 100

    /// Builds a directory; `acceptedDomains` are the domains Postroom is authoritative for.
    public init(file: DirectoryFile, acceptedDomains: [String]) {
        self.init(file: file, acceptedDomains: acceptedDomains, lines: [:])
    }

    init(file: DirectoryFile, acceptedDomains: [String], lines: [String: Int]) {
        self.file = file
        self.acceptedDomains = acceptedDomains.map { $0.lowercased() }
        self.lines = lines
        var entries: [String: Entry] = [:]
        var firstPath: [String: String] = [:]
        var problems: [DirectoryProblem] = []
        func index(_ address: String, _ entry: Entry, at keyPath: String) {
            guard let parsed = RoutingAddress.parse(address) else { return }
            let key = parsed.key
            if let earlier = firstPath[key] {
                problems.append(DirectoryProblem(keyPath: keyPath, message: "address \(address) is already used by \(earlier); each address may belong to one entry only"))
                return
            }
            firstPath[key] = keyPath
            entries[key] = entry
        }
        for (i, mailbox) in file.mailboxes.enumerated() {
            index(mailbox.address, .mailbox(i), at: "mailboxes[\(i)].address")
            for (j, alias) in mailbox.aliases.enumerated() {
                index(alias, .mailbox(i), at: "mailboxes[\(i)].aliases[\(j)]")
            }
        }
        for (i, contact) in file.contacts.enumerated() {
            index(contact.address, .contact(i), at: "contacts[\(i)].address")
        }
        for (i, group) in file.groups.enumerated() {
            index(group.address, .group(i), at: "groups[\(i)].address")
        }
        self.entries = entries
        self.indexProblems = problems
    }

    /// Reads a directory file (JSON5). Shape errors (syntax, unknown keys, wrong types) throw a
    /// ``ConfigError`` naming file, line and key path; meaning is checked by ``problems()``,
    /// whose results then carry line numbers too.
    public static func load(path: String, acceptedDomains: [String]) throws(ConfigError) -> RecipientDirectory {
        let file = try ConfigFile.decode(DirectoryFile.self, fromFile: path)
        // The file was just read successfully; if it vanished since, problems just lack lines.
        let lines = (try? String(contentsOfFile: path, encoding: .utf8)).map(JSON5Lines.lines(in:)) ?? [:]
        return RecipientDirectory(file: file, acceptedDomains: acceptedDomains, lines: lines)
    }

    // MARK: - Resolution

    /// Resolves and expands envelope recipients. Never fails as a whole: each recipient is
    /// resolved, or fails on its own with a DSN status. See the type's rules.
    public func resolve(_ recipients: [EnvelopeRecipient]) -> ResolutionResult {
        var walk = Walk(directory: self)
        for recipient in recipients {
            walk.resolveTopLevel(recipient)
        }
        return walk.result
    }

    /// Whether `domain` is one Postroom is authoritative for (case-insensitive).
    public func isAccepted(domain: String) -> Bool {
        acceptedDomains.contains(domain.lowercased())
    }

    /// The state of one ``resolve(_:)`` call.
    private struct Walk {
        let directory: RecipientDirectory
        var result = ResolutionResult()
        var delivered: Set<String> = []
        var failedKeys: Set<String> = []
        var expandedGroups: Set<String> = []
        /// Outcomes for the current top-level recipient: deliveries (new or duplicate), failures,
        /// and already-expanded groups. Zero after a loop means a forward-only loop.
        var outcomes = 0
        var loop: [String]?

        init(directory: RecipientDirectory) { self.directory = directory }

        mutating func resolveTopLevel(_ recipient: EnvelopeRecipient) {
            outcomes = 0
            loop = nil
            visit(recipient.address, original: recipient, chain: [], path: [])
            if outcomes == 0, let loop {
                fail(recipient.address, original: recipient, status: "5.4.6",
                     diagnostic: "forwarding loop: \(loop.joined(separator: " → ")) (no address in the loop reaches a mailbox)")
            }
        }

        mutating func visit(_ text: String, original: EnvelopeRecipient, chain: [String], path: Set<String>) {
            let address: RoutingAddress
            switch RoutingAddress.parseWithReason(text) {
            case .success(let parsed): address = parsed
            case .failure(let error):
                fail(text, original: original, status: "5.1.3", diagnostic: "bad address syntax: \(error.message)")
                return
            }
            // `SMTP:x@y` is written x@y from here on; everything else stays as the sender wrote it.
            let written = address.type == "SMTP" && text.uppercased().hasPrefix("SMTP:") ? String(text.dropFirst(5)) : text
            let chain = chain + [written]
            let key = address.key
            if path.contains(key) {
                if loop == nil { loop = chain }
                return
            }
            guard chain.count <= RecipientDirectory.maxDepth else {
                fail(written, original: original, status: "5.4.6", diagnostic: "resolution deeper than \(RecipientDirectory.maxDepth) levels at \(written)")
                return
            }
            guard let domain = address.domain, directory.isAccepted(domain: domain) else {
                deliver(written, original: original, mailbox: nil, chain: chain)
                return
            }
            let path = path.union([key])
            switch directory.entries[key] {
            case .mailbox(let index):
                let mailbox = directory.file.mailboxes[index]
                if RoutingAddress.parse(mailbox.address)?.key == key {
                    // The primary address, perhaps in another case: deliver it as the directory spells it.
                    deliver(mailbox.address, original: original, mailbox: mailbox.name, chain: chain)
                } else {
                    result.steps.append(ResolutionStep(kind: .resolve, from: written, to: mailbox.address, detail: "alias of mailbox \(mailbox.name)"))
                    deliver(mailbox.address, original: original, mailbox: mailbox.name, chain: chain + [mailbox.address])
                }
            case .contact(let index):
                let contact = directory.file.contacts[index]
                result.steps.append(ResolutionStep(kind: .resolve, from: written, to: contact.target, detail: "contact \(contact.name ?? contact.address)"))
                visit(contact.target, original: original, chain: chain, path: path)
            case .group(let index):
                guard !expandedGroups.contains(key) else {
                    // Expanded earlier for this message: its members are already on their way.
                    outcomes += 1
                    return
                }
                expandedGroups.insert(key)
                let group = directory.file.groups[index]
                for member in group.members {
                    result.steps.append(ResolutionStep(kind: .expand, from: written, to: member, detail: "member of group \(group.address)"))
                    visit(member, original: original, chain: chain, path: path)
                }
            case nil:
                guard case .smtp(let local, _) = address, local.uppercased().hasPrefix("IMCEA"),
                      let decoded = IMCEA.decode(written) else {
                    fail(written, original: original, status: "5.1.1", diagnostic: "unknown recipient \(written)")
                    return
                }
                guard decoded.type != "SMTP", decoded.type != "X500" else {
                    fail(written, original: original, status: "5.1.1",
                         diagnostic: "unknown recipient \(written): IMCEA-encapsulated \(decoded.type) addresses are not accepted")
                    return
                }
                let target = "\(decoded.type):\(decoded.address)"
                result.steps.append(ResolutionStep(kind: .resolve, from: written, to: target, detail: "IMCEA decapsulation"))
                visit(target, original: original, chain: chain, path: path)
            }
        }

        mutating func deliver(_ address: String, original: EnvelopeRecipient, mailbox: String?, chain: [String]) {
            outcomes += 1
            let key = RoutingAddress.parse(address)?.key ?? address
            guard delivered.insert(key).inserted else { return }
            result.resolved.append(ResolvedRecipient(address: address, original: original, mailbox: mailbox, chain: chain))
        }

        mutating func fail(_ address: String, original: EnvelopeRecipient, status: String, diagnostic: String) {
            outcomes += 1
            let key = RoutingAddress.parse(address)?.key ?? address.lowercased()
            guard failedKeys.insert(key).inserted else { return }
            result.failed.append(FailedResolution(address: address, original: original, status: status, diagnostic: diagnostic))
        }
    }

    // MARK: - Checks

    /// Everything wrong with the directory, in file order, each with its key path (and line when
    /// loaded from a file): malformed addresses and targets, mailbox/contact/group addresses
    /// outside the accepted domains, unsafe or duplicate mailbox names, duplicate addresses,
    /// unknown members and targets in an accepted domain, and cycles (named: a → b → a).
    /// An empty list means the directory is fit to run.
    public func problems() -> [DirectoryProblem] {
        var problems: [DirectoryProblem] = []
        func report(_ keyPath: String, _ message: String) {
            problems.append(DirectoryProblem(keyPath: keyPath, message: message))
        }
        /// An address that must be SMTP and in an accepted domain (a directory entry's own address).
        func checkOwnAddress(_ address: String, at keyPath: String, what: String) {
            switch RoutingAddress.parseWithReason(address) {
            case .failure(let error): report(keyPath, "malformed address: \(error.message)")
            case .success(.typed(let type, _)):
                report(keyPath, "\(what) address \(address) is a \(type) address; it must be an SMTP address in an accepted domain")
            case .success(.smtp(_, let domain)):
                if !isAccepted(domain: domain) {
                    report(keyPath, "\(what) address \(address) is not in an accepted domain (\(acceptedDomains.joined(separator: ", ")))")
                }
            }
        }
        /// An address that may be anything, but must exist when it is in an accepted domain.
        func checkReference(_ address: String, at keyPath: String, what: String) {
            switch RoutingAddress.parseWithReason(address) {
            case .failure(let error): report(keyPath, "malformed \(what): \(error.message)")
            case .success(let parsed):
                guard let domain = parsed.domain, isAccepted(domain: domain), entries[parsed.key] == nil else { return }
                if let decoded = IMCEA.decode(address), decoded.type != "SMTP", decoded.type != "X500" { return }
                report(keyPath, "unknown \(what) \(address): no mailbox, alias, contact or group has this address in accepted domain \(domain)")
            }
        }

        var names: [String: Int] = [:]
        for (i, mailbox) in file.mailboxes.enumerated() {
            if let problem = Self.mailboxNameProblem(mailbox.name) {
                report("mailboxes[\(i)].name", problem)
            } else if let earlier = names[mailbox.name.lowercased()] {
                report("mailboxes[\(i)].name", "mailbox name '\(mailbox.name)' is already used by mailboxes[\(earlier)] (names are folders and compared case-insensitively)")
            } else {
                names[mailbox.name.lowercased()] = i
            }
            checkOwnAddress(mailbox.address, at: "mailboxes[\(i)].address", what: "mailbox")
            for (j, alias) in mailbox.aliases.enumerated() {
                checkOwnAddress(alias, at: "mailboxes[\(i)].aliases[\(j)]", what: "alias")
            }
        }
        for (i, contact) in file.contacts.enumerated() {
            checkOwnAddress(contact.address, at: "contacts[\(i)].address", what: "contact")
            checkReference(contact.target, at: "contacts[\(i)].target", what: "contact target")
        }
        for (i, group) in file.groups.enumerated() {
            checkOwnAddress(group.address, at: "groups[\(i)].address", what: "group")
            for (j, member) in group.members.enumerated() {
                checkReference(member, at: "groups[\(i)].members[\(j)]", what: "member")
            }
        }
        problems += indexProblems
        problems += cycleProblems()
        return problems.map { problem in
            var located = problem
            located.line = lines[problem.keyPath]
            return located
        }.sorted { ($0.line ?? Int.max, $0.keyPath) < ($1.line ?? Int.max, $1.keyPath) }
    }

    /// The problems as ``ConfigError``s for `file` (`file:line: key.path: problem`), for `postroom check`.
    public func configErrors(file: String) -> [ConfigError] {
        problems().map { ConfigError(file: file, line: $0.line, keyPath: $0.keyPath, problem: $0.message) }
    }

    /// A mailbox name becomes a folder name: it must not escape `mailboxes/` or hide itself.
    static func mailboxNameProblem(_ name: String) -> String? {
        if name.isEmpty { return "the mailbox name is empty" }
        if name == "." || name == ".." || name.hasPrefix(".") { return "mailbox name '\(name)' must not start with '.' (it names a folder)" }
        if name.contains("/") || name.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
            return "mailbox name '\(name)' must not contain '/' or control characters (it names a folder)"
        }
        return nil
    }

    /// Cycles among groups and contacts, each reported once at the member or target that closes it.
    private func cycleProblems() -> [DirectoryProblem] {
        // The edges of the directory graph: group → member entry, contact → target entry.
        struct Edge { var to: String; var keyPath: String }
        var edges: [String: [Edge]] = [:]
        var display: [String: String] = [:]
        var order: [String] = []
        func node(_ address: String) -> String? {
            guard let parsed = RoutingAddress.parse(address), entries[parsed.key] != nil else { return nil }
            return parsed.key
        }
        for (i, contact) in file.contacts.enumerated() {
            guard let from = node(contact.address), entries[from] == .contact(i) else { continue }
            display[from] = contact.address
            order.append(from)
            if let to = node(contact.target) { edges[from, default: []].append(Edge(to: to, keyPath: "contacts[\(i)].target")) }
        }
        for (i, group) in file.groups.enumerated() {
            guard let from = node(group.address), entries[from] == .group(i) else { continue }
            display[from] = group.address
            order.append(from)
            for (j, member) in group.members.enumerated() {
                if let to = node(member) { edges[from, default: []].append(Edge(to: to, keyPath: "groups[\(i)].members[\(j)]")) }
            }
        }

        enum Color { case grey, black }
        var color: [String: Color] = [:]
        var stack: [String] = []
        var problems: [DirectoryProblem] = []
        func visit(_ key: String) {
            color[key] = .grey
            stack.append(key)
            for edge in edges[key] ?? [] {
                switch color[edge.to] {
                case .grey:
                    let start = stack.lastIndex(of: edge.to) ?? 0
                    let cycle = stack[start...] + [edge.to]
                    let names = cycle.map { display[$0] ?? $0 }.joined(separator: " → ")
                    let hasGroup = cycle.contains { if case .group = entries[$0] { return true } else { return false } }
                    let message = hasGroup
                        ? "group cycle: \(names); each member still gets one copy, but the loop is almost certainly a mistake"
                        : "forwarding loop: \(names); mail to these addresses fails with 5.4.6"
                    problems.append(DirectoryProblem(keyPath: edge.keyPath, message: message))
                case .black:
                    break
                case nil:
                    visit(edge.to)
                }
            }
            stack.removeLast()
            color[key] = .black
        }
        for key in order where color[key] == nil {
            visit(key)
        }
        return problems
    }
}
