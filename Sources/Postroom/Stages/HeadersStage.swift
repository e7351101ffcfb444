import Foundation

/// A header field value with placeholders, decoded from a `headers` stage entry.
///
/// Placeholders (case-insensitive): `{queueid}` Postroom's queue id, `{sender}` the envelope
/// sender (`<>` for the null sender), `{messageid}` the Message-ID as in the message,
/// `{hostname}` this host's name. Any other `{word}` is a configuration error, so a misspelt
/// placeholder never goes out as literal text; braces around anything else stay as written.
public struct HeaderTemplate: Sendable, Hashable, CustomStringConvertible {
    /// What a placeholder stands for.
    public enum Placeholder: String, Sendable, CaseIterable {
        case queueid, sender, messageid, hostname
    }

    enum Part: Sendable, Hashable {
        case text(String)
        case placeholder(Placeholder)
    }

    /// The value as written in the pipeline file.
    public let text: String
    let parts: [Part]

    /// Parses `text`; the error names an unknown placeholder.
    public init(parsing text: String) throws(TemplateError) {
        self.text = text
        var parts: [Part] = []
        var literal = ""
        var rest = Substring(text)
        while let open = rest.firstIndex(of: "{") {
            literal += rest[..<open]
            let afterOpen = rest.index(after: open)
            let word = rest[afterOpen...].prefix { $0.isASCII && $0.isLetter }
            guard !word.isEmpty, word.endIndex < rest.endIndex, rest[word.endIndex] == "}" else {
                literal.append("{")
                rest = rest[afterOpen...]
                continue
            }
            guard let placeholder = Placeholder(rawValue: word.lowercased()) else {
                throw TemplateError(placeholder: String(word))
            }
            if !literal.isEmpty { parts.append(.text(literal)) }
            literal = ""
            parts.append(.placeholder(placeholder))
            rest = rest[rest.index(after: word.endIndex)...]
        }
        literal += rest
        if !literal.isEmpty { parts.append(.text(literal)) }
        self.parts = parts
    }

    public var description: String { text }

    /// The value with every placeholder replaced.
    public func render(_ value: (Placeholder) -> String) -> String {
        parts.map { part in
            switch part {
            case .text(let text): text
            case .placeholder(let placeholder): value(placeholder)
            }
        }.joined()
    }

    /// A `{word}` that is not a known placeholder.
    public struct TemplateError: Error, Sendable, CustomStringConvertible {
        public var placeholder: String
        public var description: String {
            let known = Placeholder.allCases.map { "{\($0.rawValue)}" }.joined(separator: ", ")
            return "unknown placeholder {\(placeholder)} (known: \(known))"
        }
    }
}

/// Which header fields a `headers` stage may not change, and why.
///
/// The line is drawn where a rewrite would break Postroom itself or the message rather than
/// just change what a reader sees: the Replay envelope, the Message-ID everything is tracked
/// by, the MIME fields that say how to read the body, trace fields that only MTAs write, and
/// the RFC 5322 rule that From and Date are required and several fields appear at most once.
enum HeaderProtection {
    enum Operation: String { case add, set, remove }

    private static let envelope: Set<String> = ["x-sender", "x-receiver", "x-endofinjectedxheaders", "x-createdby"]
    private static let untouchable: [String: String] = [
        "message-id": "identifies the message in the queue, the tracking log and reports",
        "mime-version": "says how to read the body; changing it would corrupt the message",
        "content-type": "says how to read the body; changing it would corrupt the message",
        "content-transfer-encoding": "says how to read the body; changing it would corrupt the message",
        "return-path": "is written at final delivery only (RFC 5321 §4.4)",
        "delivered-to": "is written at final delivery and detects mail loops",
    ]
    /// Fields RFC 5322 §3.6 allows at most once: adding one would make a second.
    private static let single: Set<String> = [
        "date", "from", "sender", "reply-to", "to", "cc", "bcc", "in-reply-to", "references", "subject",
    ]

    /// Why a rule may not `operation` the field `name`; nil when it may.
    static func refusal(_ operation: Operation, name: String) -> String? {
        let lower = name.lowercased()
        if envelope.contains(lower) {
            return "\(name) is a Replay envelope line, not header text; the envelope cannot be changed here"
        }
        if let reason = untouchable[lower] { return "\(name) \(reason)" }
        switch operation {
        case .remove:
            if lower == "from" || lower == "date" { return "\(name) is required in every message (RFC 5322 §3.6)" }
        case .add, .set:
            if lower == "received" { return "trace fields are written by the MTAs a message passes, never by rules (RFC 5321 §4.4); removing them is allowed" }
            if lower == "bcc" { return "a Bcc field would be shown to every recipient; the envelope, not the header, decides who gets a copy" }
            if operation == .add, single.contains(lower) { return "\(name) may appear at most once (RFC 5322 §3.6); use set to replace it" }
        }
        return nil
    }
}

/// Settings of the `headers` stage: fields to remove, set and add, in that order.
///
/// Everything is checked when the pipeline file is read: field names must be RFC 5322 names,
/// values may not contain line breaks or other control characters, placeholders must be known,
/// and protected fields (see ``HeaderProtection``) are refused, so a bad rule never reaches mail.
public struct HeadersSettings: StageSettings, Decodable {
    /// One field to add or set.
    public struct Field: Sendable, Hashable {
        public var name: String
        public var value: HeaderTemplate
    }

    /// A field name to remove, or a prefix with a trailing `*` (`X-Spam-*`); case-insensitive.
    public struct NamePattern: Sendable, Hashable, CustomStringConvertible {
        public var text: String
        let prefix: String
        let isPrefix: Bool

        public var description: String { text }

        func matches(_ name: String) -> Bool {
            isPrefix ? HeaderText.hasPrefixIgnoringASCIICase(name, prefix) : HeaderText.equalsIgnoringASCIICase(name, prefix)
        }
    }

    /// Always added at the bottom of the header, even when the field is already there.
    public var add: [Field] = []
    /// Replaces the first field of that name in place and removes the others; added when missing.
    public var set: [Field] = []
    /// Removed wherever they are. A wildcard never removes a protected field; it skips it.
    public var remove: [NamePattern] = []

    enum CodingKeys: String, CodingKey, CaseIterable { case stage, add, set, remove }
    enum FieldKeys: String, CodingKey, CaseIterable { case name, value }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        add = try Self.fields(in: container, key: .add, operation: .add)
        set = try Self.fields(in: container, key: .set, operation: .set)
        if container.contains(.remove) {
            var list = try container.nestedUnkeyedContainer(forKey: .remove)
            while !list.isAtEnd {
                let text = try list.decode(String.self)
                let path = container.codingPath + [CodingKeys.remove, AnyCodingKey(intValue: list.currentIndex - 1)]
                remove.append(try Self.namePattern(text, path: path))
            }
        }
        guard !(add.isEmpty && set.isEmpty && remove.isEmpty) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "headers needs at least one of add, set, remove"))
        }
    }

    private static func fields(in container: KeyedDecodingContainer<CodingKeys>, key: CodingKeys,
                               operation: HeaderProtection.Operation) throws -> [Field] {
        guard container.contains(key) else { return [] }
        var list = try container.nestedUnkeyedContainer(forKey: key)
        var fields: [Field] = []
        while !list.isAtEnd {
            let entryPath = container.codingPath + [key, AnyCodingKey(intValue: list.currentIndex)]
            let entry = try list.superDecoder()
            try entry.rejectUnknownKeys(FieldKeys.self)
            let keyed = try entry.container(keyedBy: FieldKeys.self)
            let name = try keyed.decode(String.self, forKey: .name)
            func fail(_ field: FieldKeys, _ problem: String) -> DecodingError {
                .dataCorrupted(.init(codingPath: entryPath + [field], debugDescription: problem))
            }
            guard FieldName.isValid(name) else { throw fail(.name, "'\(name)' is not a valid field name: \(FieldName.rule)") }
            if let refusal = HeaderProtection.refusal(operation, name: name) { throw fail(.name, "cannot \(operation.rawValue) \(name): \(refusal)") }
            if operation == .set, fields.contains(where: { HeaderText.equalsIgnoringASCIICase($0.name, name) }) {
                throw fail(.name, "\(name) is set twice; the second would silently win")
            }
            let text = try keyed.decode(String.self, forKey: .value)
            if let bad = text.unicodeScalars.first(where: { ($0.value < 0x20 && $0 != "\t") || $0.value == 0x7F }) {
                let what = bad == "\r" || bad == "\n" ? "a line break" : "the control character U+\(String(format: "%04X", bad.value))"
                throw fail(.value, "the value contains \(what); a value is one line of text (a line break would inject another field)")
            }
            // RFC 5322 §2.1.1: a line is at most 998 characters; values are never folded here.
            guard name.utf8.count + 2 + text.utf8.count <= 998 else {
                throw fail(.value, "the field is longer than the 998-character line limit of RFC 5322")
            }
            do {
                fields.append(Field(name: name, value: try HeaderTemplate(parsing: text)))
            } catch {
                throw fail(.value, error.description)
            }
        }
        return fields
    }

    private static func namePattern(_ text: String, path: [any CodingKey]) throws -> NamePattern {
        func fail(_ problem: String) -> DecodingError { .dataCorrupted(.init(codingPath: path, debugDescription: problem)) }
        let isPrefix = text.hasSuffix("*")
        let prefix = isPrefix ? String(text.dropLast()) : text
        if prefix.contains("*") { throw fail("'\(text)': only a trailing * is supported (e.g. \"X-Spam-*\")") }
        if isPrefix, prefix.isEmpty { throw fail("'*' would remove every field; name the fields or a prefix such as \"X-Spam-*\"") }
        guard FieldName.isValid(prefix) else { throw fail("'\(text)' is not a valid field name: \(FieldName.rule)") }
        if !isPrefix, let refusal = HeaderProtection.refusal(.remove, name: prefix) {
            throw fail("cannot remove \(prefix): \(refusal)")
        }
        return NamePattern(text: text, prefix: prefix, isPrefix: isPrefix)
    }
}

/// Rewrites the message header: removes, sets and adds fields, as Exchange transport rules
/// and Postfix's `header_checks` do.
///
/// Only the header changes; the body keeps its bytes. The envelope is never touched (it, not
/// To/Cc, decides recipients). Works in memory only, so it behaves the same in a dry run.
public actor HeadersStage: MessageStage {
    private let settings: HeadersSettings
    private let hostname: String

    public init(settings: HeadersSettings, context: StageContext) throws {
        try context.requireAfterValidate("headers")
        self.settings = settings
        hostname = context.hostname
    }

    static let kind = StageKind.make("headers", summary: "remove, set and add header fields", settings: HeadersSettings.self) {
        try HeadersStage(settings: $0, context: $1)
    }

    public func process(_ item: PipelineItem) async throws -> StageResult {
        var item = item
        var message: RFC5322Message
        do {
            message = try RFC5322Message(parsing: item.bytes)
        } catch {
            // Validate has parsed this message already; if it cannot be parsed now, changing
            // nothing is safer than guessing where the header ends.
            item.notes.append("headers: message header cannot be parsed (\(error)); left unchanged")
            return .forward(item)
        }
        var changes: [String] = []
        for pattern in settings.remove {
            let removed = message.removeFields { pattern.matches($0.name) && HeaderProtection.refusal(.remove, name: $0.name) == nil }
            if removed > 0 { changes.append("removed \(removed) field\(removed == 1 ? "" : "s") matching \(pattern)") }
        }
        let (queueID, sender, messageID, hostname) = (item.queueID, item.envelope.hasNullSender ? "<>" : item.envelope.sender,
                                                      item.messageID, self.hostname)
        let values: (HeaderTemplate.Placeholder) -> String = { placeholder in
            switch placeholder {
            case .queueid: queueID
            case .sender: sender
            case .messageid: messageID
            case .hostname: hostname
            }
        }
        for field in settings.set {
            let value = field.value.render(values)
            message.setField(name: field.name, value: value)
            changes.append("set \(field.name): \(value)")
        }
        for field in settings.add {
            let value = field.value.render(values)
            message.addField(name: field.name, value: value, at: .bottom)
            changes.append("added \(field.name): \(value)")
        }
        if !changes.isEmpty {
            item.bytes = message.serialized()
            item.notes += changes.map { "headers: " + $0 }
        }
        return .forward(item)
    }
}
