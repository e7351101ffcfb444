/// One mailbox from an address header field (`From`, `To`, `Cc`, `Bcc`, `Sender`).
///
/// `address` is always `local@domain` with the domain's ASCII letters lowercased (the local part keeps
/// its case: RFC 5321 says only the destination may interpret it). A local part that
/// needs quoting is kept quoted, so `address` is always a valid addr-spec to write back.
public struct MailboxAddress: Sendable, Hashable, Codable {
    /// The display name with encoded words decoded, or nil when there is none.
    public var displayName: String?
    /// The addr-spec, `local@domain`, domain lowercased.
    public var address: String

    public init(displayName: String? = nil, address: String) {
        self.displayName = displayName
        self.address = address
    }

    /// The part before the last `@`.
    public var localPart: Substring {
        guard let at = address.lastIndex(of: "@") else { return address[...] }
        return address[..<at]
    }

    /// The part after the last `@` (lowercase).
    public var domain: Substring {
        guard let at = address.lastIndex(of: "@") else { return "" }
        return address[address.index(after: at)...]
    }
}

/// An element of an address list that is not a usable mailbox, as written.
public struct InvalidAddress: Sendable, Equatable, Codable {
    /// The element as written: unfolded, trimmed, bytes that are not UTF-8 as `\xNN`.
    public var text: String
    /// Why it cannot be used, in words (e.g. `has no @domain`).
    public var reason: String

    public init(text: String, reason: String) {
        self.text = text
        self.reason = reason
    }
}

/// The outcome of parsing an address-list field value.
public struct AddressList: Sendable, Equatable {
    /// The usable mailboxes in order (group members included, duplicates kept).
    public var mailboxes: [MailboxAddress] = []
    /// Every non-empty element that is not a usable mailbox, in order.
    public var invalid: [InvalidAddress] = []
}

/// An RFC 5322 address-list parser that never invents an address.
///
/// It reads display names, quoted strings, comments, angle addresses, groups and the
/// obsolete syntax of RFC 5322 §4.4 (CFWS around the dots of a local part or domain,
/// quoted words in a local part, source routes `<@a,@b:x@y>`, empty list elements).
/// Each element is either exactly one mailbox or reported in `invalid` with its text
/// and the reason: characters are never removed or joined to make an element parse,
/// so every address returned is, ignoring comments, quoting and folding, written
/// contiguously in the input. An address is ASCII or valid UTF-8 (RFC 6532); other
/// bytes make the element invalid, never a transcoded address. A local part that
/// needs quoting stays quoted. Linear time, never crashes.
public enum AddressParser {
    typealias Token = AddressTokenizer.Token

    /// Every usable mailbox and every unusable element of an address-list field value.
    public static func parse(_ bytes: [UInt8]) -> AddressList {
        let tokens = AddressTokenizer.tokenize(bytes)
        var result = AddressList()
        var element: [Token] = []
        var inGroup = false
        var angleStart: Int?

        func finish() {
            defer {
                element.removeAll(keepingCapacity: true)
                angleStart = nil
            }
            guard !element.isEmpty else { return }
            switch mailbox(element) {
            case .none:
                break
            case .some(.success(let mailbox)):
                result.mailboxes.append(mailbox)
            case .some(.failure(let problem)):
                let range = element.first!.range.lowerBound..<element.last!.range.upperBound
                var text = AddressTokenizer.escapedText(bytes[range]).trimmingWhitespace()
                if text.count > 200 { text = String(text.prefix(200)) + "…" }
                result.invalid.append(InvalidAddress(text: text, reason: problem.reason))
            }
        }

        for token in tokens {
            switch token.kind {
            case .special(0x3C):
                if angleStart == nil { angleStart = element.count }
                element.append(token)
            case .special(0x3E):
                angleStart = nil
                element.append(token)
            case .special(0x2C):
                // Inside `<@a,@b:` the commas belong to the obsolete source route.
                if let start = angleStart, isOpenRoute(element[(start + 1)...]) {
                    element.append(token)
                } else {
                    finish()
                }
            case .special(0x3B):
                finish()
                inGroup = false
            case .special(0x3A) where angleStart == nil && !inGroup && element.allSatisfy(isPhrasePart):
                // A group's name is not an address.
                element.removeAll(keepingCapacity: true)
                inGroup = true
            default:
                element.append(token)
            }
        }
        finish()
        return result
    }

    /// Every usable mailbox in an address-list header value, in order.
    public static func parseList(_ value: String) -> [MailboxAddress] {
        parse(Array(value.utf8)).mailboxes
    }

    /// The single address in `value` (an addr-spec or an angle address, optionally
    /// with a display name), or nil when it holds none, several, or an unusable element.
    public static func parseAddress(_ value: String) -> String? {
        let list = parse(Array(value.utf8))
        return list.mailboxes.count == 1 && list.invalid.isEmpty ? list.mailboxes[0].address : nil
    }

    // MARK: - Elements

    struct Problem: Error {
        var reason: String
    }

    private static func isPhrasePart(_ token: Token) -> Bool {
        switch token.kind {
        case .atom, .quoted, .dot, .comment: return !token.unterminated
        default: return false
        }
    }

    /// Whether the tokens after `<` are a source route still waiting for its `:`.
    private static func isOpenRoute(_ tokens: ArraySlice<Token>) -> Bool {
        let significant = tokens.filter { $0.kind != .comment }
        guard significant.first?.kind == .special(0x40) else { return false }
        return !significant.contains { $0.kind == .special(0x3A) }
    }

    /// One list element: nil when it is empty (only white space and comments).
    private static func mailbox(_ element: [Token]) -> Result<MailboxAddress, Problem>? {
        if let broken = element.first(where: \.unterminated) {
            switch broken.kind {
            case .quoted: return .failure(Problem(reason: "has a quoted string without its closing quote"))
            case .comment: return .failure(Problem(reason: "has a comment without its closing parenthesis"))
            default: return .failure(Problem(reason: "has a domain literal without its closing ]"))
            }
        }
        let significant = element.filter { $0.kind != .comment }
        guard !significant.isEmpty else { return nil }
        guard let open = significant.firstIndex(where: { $0.kind == .special(0x3C) }) else {
            if significant.contains(where: { $0.kind == .special(0x3E) }) {
                return .failure(Problem(reason: "has a > without a <"))
            }
            let comment = element.last { $0.kind == .comment }.map { HeaderText.string(from: HeaderText.trimmed($0.content[...])) }
            return addrSpec(significant[...]).map {
                MailboxAddress(displayName: comment.flatMap { $0.isEmpty ? nil : $0 }, address: $0)
            }
        }
        let phrase = significant[..<open]
        // An unquoted @ before "<" may be a recipient with a lost comma ("a@b <c@d>"):
        // ambiguous, so reported rather than guessed (Python's email refuses it too).
        if phrase.contains(where: { $0.kind == .special(0x40) }) {
            return .failure(Problem(reason: "has an unquoted @ in its display name (a missing comma? quote the name)"))
        }
        if let bad = phrase.first(where: { !($0.isWord || $0.kind == .dot) }) {
            return .failure(Problem(reason: "has \(describe(bad)) in its display name (quote the name)"))
        }
        guard let close = significant[(open + 1)...].firstIndex(where: { $0.kind == .special(0x3E) }) else {
            return .failure(Problem(reason: "has a < without its closing >"))
        }
        if close + 1 < significant.count {
            return .failure(Problem(reason: "has text after the closing > (a missing comma?)"))
        }
        var inner = significant[(open + 1)..<close]
        if inner.contains(where: { $0.kind == .special(0x3C) }) {
            return .failure(Problem(reason: "has a < inside <angle brackets>"))
        }
        if inner.first?.kind == .special(0x40) {
            guard let colon = inner.firstIndex(where: { $0.kind == .special(0x3A) }) else {
                return .failure(Problem(reason: "has a source route without its closing colon"))
            }
            let route = inner[..<colon]
            if route.contains(where: { !($0.kind == .atom || $0.kind == .dot || $0.kind == .literal || $0.kind == .special(0x40) || $0.kind == .special(0x2C)) }) {
                return .failure(Problem(reason: "has a malformed source route"))
            }
            inner = inner[(colon + 1)...]
        }
        guard !inner.isEmpty else { return .failure(Problem(reason: "is an empty address <>")) }
        return addrSpec(inner).map { MailboxAddress(displayName: displayName(phrase), address: $0) }
    }

    /// `local@domain` from exactly one addr-spec (comments already removed).
    static func addrSpec(_ tokens: ArraySlice<Token>) -> Result<String, Problem> {
        let ats = tokens.indices.filter { tokens[$0].kind == .special(0x40) }
        guard let at = ats.first else {
            if tokens.allSatisfy({ $0.isWord || $0.kind == .dot }) {
                return .failure(Problem(reason: tokens.count == 1 ? "has no @domain (a bare local part is not an address)"
                    : "has no @domain (words without an address)"))
            }
            return .failure(Problem(reason: "is not an address"))
        }
        guard ats.count == 1 else { return .failure(Problem(reason: "has more than one @")) }
        let localTokens = tokens[..<at]
        let domainTokens = tokens[(at + 1)...]
        guard !localTokens.isEmpty else { return .failure(Problem(reason: "has nothing before the @")) }
        guard !domainTokens.isEmpty else { return .failure(Problem(reason: "has no domain after the @")) }

        var local: [UInt8] = []
        var previousWasWord = false
        var needsQuotes = false
        for token in localTokens {
            switch token.kind {
            case .atom, .quoted:
                if previousWasWord {
                    return .failure(Problem(reason: "has words before the @ that are not joined by dots "
                        + "(a display name goes before <angle brackets>)"))
                }
                previousWasWord = true
                local += token.content
                if token.kind == .quoted, !token.content.allSatisfy({ AddressTokenizer.isAtext($0) || $0 == 0x2E }) {
                    needsQuotes = true
                }
            case .dot:
                previousWasWord = false
                local.append(0x2E)
            default:
                return .failure(Problem(reason: "has \(describe(token)) before the @"))
            }
        }
        guard AddressTokenizer.isValidUTF8(local) else {
            return .failure(Problem(reason: "has bytes before the @ that are neither ASCII nor UTF-8"))
        }
        guard !local.isEmpty else { return .failure(Problem(reason: "has an empty local part")) }
        if local.contains(where: { $0 < 0x20 || $0 == 0x7F }) {
            return .failure(Problem(reason: "has a control character before the @"))
        }
        let domain: String
        switch domainPart(domainTokens) {
        case .success(let value): domain = value
        case .failure(let problem): return .failure(problem)
        }
        let localText = String(decoding: local, as: UTF8.self)
        return .success((needsQuotes ? quote(localText) : localText) + "@" + domain)
    }

    /// A host name (atoms joined by dots, CFWS around them allowed) or a domain literal, lowercased.
    private static func domainPart(_ tokens: ArraySlice<Token>) -> Result<String, Problem> {
        if tokens.count == 1, let literal = tokens.first, literal.kind == .literal {
            let inside = literal.content.dropFirst().dropLast()
            guard !inside.isEmpty, inside.allSatisfy({ ($0 >= 0x21 && $0 <= 0x5A) || ($0 >= 0x5E && $0 <= 0x7E) }) else {
                return .failure(Problem(reason: "has a malformed domain literal"))
            }
            return .success(String(decoding: literal.content.map(HeaderText.lowerASCII), as: UTF8.self))
        }
        var bytes: [UInt8] = []
        var expectAtom = true
        for token in tokens {
            switch token.kind {
            case .atom where expectAtom:
                bytes += token.content
                expectAtom = false
            case .dot where !expectAtom:
                bytes.append(0x2E)
                expectAtom = true
            case .atom:
                return .failure(Problem(reason: "has words after the @ that are not joined by dots"))
            case .dot:
                return .failure(Problem(reason: "has an empty label in its domain"))
            default:
                return .failure(Problem(reason: "has \(describe(token)) after the @"))
            }
        }
        if expectAtom { return .failure(Problem(reason: "has a domain ending in a dot")) }
        guard AddressTokenizer.isValidUTF8(bytes) else {
            return .failure(Problem(reason: "has bytes after the @ that are neither ASCII nor UTF-8"))
        }
        let text = String(decoding: bytes, as: UTF8.self)
        guard isValidDomain(text) else { return .failure(Problem(reason: "has a domain that is not a host name")) }
        // ASCII only: case-mapping other characters is IDNA's business, not a transport's.
        return .success(String(decoding: bytes.map(HeaderText.lowerASCII), as: UTF8.self))
    }

    private static func describe(_ token: Token) -> String {
        switch token.kind {
        case .quoted: return "a quoted string"
        case .comment: return "a comment"
        case .literal: return "a domain literal"
        case .dot: return "a dot"
        case .atom: return "a word"
        case .special, .junk:
            return "\"\(AddressTokenizer.escapedText(token.content[...]))\""
        }
    }

    private static func quote(_ text: String) -> String {
        var out = "\""
        for character in text.unicodeScalars {
            if character == "\"" || character == "\\" { out.append("\\") }
            out.unicodeScalars.append(character)
        }
        out.append("\"")
        return out
    }

    /// A hostname (letters, digits, hyphens, underscores, dots, 8-bit for IDN) or a domain literal.
    static func isValidDomain(_ domain: String) -> Bool {
        let bytes = Array(domain.utf8)
        guard !bytes.isEmpty, bytes.count <= 255 else { return false }
        if bytes.first == 0x5B {
            return bytes.count > 2 && bytes.last == 0x5D
        }
        var labelLength = 0
        for byte in bytes {
            if byte == 0x2E {
                if labelLength == 0 { return false }
                labelLength = 0
                continue
            }
            let ok = (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A)
                || (byte >= 0x61 && byte <= 0x7A) || byte == 0x2D || byte == 0x5F || byte >= 0x80
            guard ok else { return false }
            labelLength += 1
        }
        return labelLength > 0
    }

    /// The display name: the phrase's words as written (a space where the input had white
    /// space), quoted strings unquoted, encoded words decoded.
    private static func displayName(_ phrase: ArraySlice<Token>) -> String? {
        guard !phrase.isEmpty else { return nil }
        var bytes: [UInt8] = []
        var previousEnd: Int?
        for token in phrase {
            if let previousEnd, previousEnd < token.range.lowerBound { bytes.append(0x20) }
            bytes += token.content
            previousEnd = token.range.upperBound
        }
        let decoded = EncodedWords.decode(HeaderText.string(from: bytes[...]))
        let trimmed = decoded.trimmingWhitespace()
        return trimmed.isEmpty ? nil : trimmed
    }
}

extension String {
    /// The string without leading and trailing spaces, tabs and line breaks.
    func trimmingWhitespace() -> String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
              let last = scalars.lastIndex(where: { !$0.properties.isWhitespace }) else { return "" }
        return String(scalars[first...last])
    }
}
