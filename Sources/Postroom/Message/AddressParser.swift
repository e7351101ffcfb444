/// One mailbox from an address header field (`From`, `To`, `Cc`, `Bcc`, `Sender`).
///
/// `address` is always `local@domain` with the domain lowercased (the local part keeps
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

/// A forgiving RFC 5322 address-list parser.
///
/// It understands display names, quoted strings, comments, angle addresses, groups,
/// obsolete routes (`<@route:a@b>`) and empty list elements, and skips anything it
/// cannot read as a mailbox instead of failing: a message with one garbled recipient
/// should still reach the others. It never crashes and runs in linear time.
public enum AddressParser {
    /// Every mailbox in an address-list header value (group members included,
    /// group names dropped), in order, duplicates kept.
    public static func parseList(_ value: String) -> [MailboxAddress] {
        let tokens = tokenize(Array(value.utf8))
        var results: [MailboxAddress] = []
        var phrase: [Token] = []
        var lastComment: String?
        var index = 0

        func finishBareElement() {
            defer {
                phrase.removeAll(keepingCapacity: true)
                lastComment = nil
            }
            guard !phrase.isEmpty, let address = addrSpec(phrase[...]) else { return }
            results.append(MailboxAddress(displayName: lastComment, address: address))
        }

        while index < tokens.count {
            let token = tokens[index]
            switch token {
            case .special(0x2C), .special(0x3B):  // "," ";"
                finishBareElement()
            case .special(0x3A):  // ":" starts a group; its name is not an address.
                phrase.removeAll(keepingCapacity: true)
                lastComment = nil
            case .special(0x3C):  // "<"
                var end = index + 1
                var routePending = end < tokens.count && tokens[end] == .special(0x40)
                while end < tokens.count {
                    let inner = tokens[end]
                    if inner == .special(0x3E) || inner == .special(0x3B) { break }
                    if inner == .special(0x3A) { routePending = false }
                    if inner == .special(0x2C), !routePending { break }
                    end += 1
                }
                if let address = addrSpec(stripRoute(tokens[(index + 1)..<end])) {
                    results.append(MailboxAddress(displayName: displayName(phrase), address: address))
                }
                phrase.removeAll(keepingCapacity: true)
                lastComment = nil
                index = end
                if index < tokens.count, tokens[index] == .special(0x3E) {
                    index += 1
                }
                // Anything after the angle address up to the next element is junk.
                while index < tokens.count, tokens[index] != .special(0x2C), tokens[index] != .special(0x3B) {
                    index += 1
                }
                continue
            case .comment(let text):
                lastComment = text.isEmpty ? nil : text
            default:
                phrase.append(token)
            }
            index += 1
        }
        finishBareElement()
        return results
    }

    /// The single address in `value` (an addr-spec or an angle address, optionally
    /// with a display name), or nil when it holds none or several.
    public static func parseAddress(_ value: String) -> String? {
        let list = parseList(value)
        return list.count == 1 ? list[0].address : nil
    }

    // MARK: - Tokens

    enum Token: Equatable {
        /// A run of non-special, non-space bytes (dots included), or a domain literal.
        case atom(String)
        /// A quoted string's content, unescaped.
        case quoted(String)
        case comment(String)
        case special(UInt8)
    }

    static func tokenize(_ bytes: [UInt8]) -> [Token] {
        var tokens: [Token] = []
        var index = 0
        let count = bytes.count
        while index < count {
            let byte = bytes[index]
            switch byte {
            case 0x20, 0x09, 0x0D, 0x0A:
                index += 1
            case 0x22:  // quoted string
                var content: [UInt8] = []
                index += 1
                while index < count, bytes[index] != 0x22 {
                    if bytes[index] == 0x5C, index + 1 < count {
                        index += 1
                        content.append(bytes[index])
                    } else if bytes[index] != 0x0D, bytes[index] != 0x0A {
                        content.append(bytes[index])
                    }
                    index += 1
                }
                index += 1
                tokens.append(.quoted(String(decoding: content, as: UTF8.self)))
            case 0x28:  // comment, may nest
                var depth = 0
                var content: [UInt8] = []
                while index < count {
                    let current = bytes[index]
                    if current == 0x5C, index + 1 < count {
                        content.append(bytes[index + 1])
                        index += 2
                        continue
                    }
                    if current == 0x28 {
                        depth += 1
                        if depth > 1 { content.append(current) }
                    } else if current == 0x29 {
                        depth -= 1
                        if depth == 0 {
                            index += 1
                            break
                        }
                        content.append(current)
                    } else {
                        content.append(current)
                    }
                    index += 1
                }
                let text = String(decoding: HeaderText.trimmed(content[...]), as: UTF8.self)
                tokens.append(.comment(text))
            case 0x5B:  // domain literal
                let start = index
                while index < count, bytes[index] != 0x5D { index += 1 }
                index = min(index + 1, count)
                let literal = bytes[start..<index].filter { !HeaderText.isWhitespace($0) }
                tokens.append(.atom(String(decoding: literal, as: UTF8.self)))
            case 0x3C, 0x3E, 0x3A, 0x3B, 0x40, 0x2C:
                tokens.append(.special(byte))
                index += 1
            case 0x29, 0x5D:  // stray closers: ignore
                index += 1
            default:
                let start = index
                while index < count, !isAtomTerminator(bytes[index]) { index += 1 }
                tokens.append(.atom(String(decoding: bytes[start..<index], as: UTF8.self)))
            }
        }
        return tokens
    }

    private static func isAtomTerminator(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x20, 0x09, 0x0D, 0x0A, 0x22, 0x28, 0x29, 0x3C, 0x3E, 0x3A, 0x3B, 0x40, 0x2C, 0x5B, 0x5D:
            return true
        default:
            return false
        }
    }

    // MARK: - Pieces

    /// Drops an obsolete source route (`@a,@b:`) at the start of an angle address.
    private static func stripRoute(_ tokens: ArraySlice<Token>) -> ArraySlice<Token> {
        guard tokens.first == .special(0x40), let colon = tokens.firstIndex(of: .special(0x3A)) else {
            return tokens
        }
        return tokens[(colon + 1)...]
    }

    /// `local@domain` from tokens, or nil when they are not exactly one addr-spec.
    static func addrSpec(_ tokens: ArraySlice<Token>) -> String? {
        var local = ""
        var localNeedsQuotes = false
        var domain = ""
        var seenAt = false
        for token in tokens {
            switch token {
            case .atom(let text):
                if seenAt { domain += text } else { local += text }
            case .quoted(let text):
                guard !seenAt else { return nil }
                local += text
                localNeedsQuotes = localNeedsQuotes || !isDotAtom(text)
            case .special(0x40):
                guard !seenAt else { return nil }
                seenAt = true
            case .comment:
                continue
            case .special:
                return nil
            }
        }
        guard seenAt, !local.isEmpty, isValidDomain(domain) else { return nil }
        if localNeedsQuotes || !isDotAtom(local) {
            local = quote(local)
        }
        return local + "@" + domain.lowercased()
    }

    /// Whether `text` can be written unquoted as a local part. Leading, trailing or
    /// doubled dots are tolerated (obsolete syntax real mail still uses); 8-bit bytes
    /// are allowed for internationalised addresses.
    private static func isDotAtom(_ text: String) -> Bool {
        for byte in text.utf8 where byte < 0x80 {
            if byte <= 0x20 || byte == 0x7F { return false }
            switch byte {
            case 0x22, 0x28, 0x29, 0x2C, 0x3A, 0x3B, 0x3C, 0x3E, 0x40, 0x5B, 0x5C, 0x5D:
                return false
            default:
                continue
            }
        }
        return !text.isEmpty
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

    /// A hostname (letters, digits, hyphens, dots, 8-bit for IDN) or a domain literal.
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

    private static func displayName(_ phrase: [Token]) -> String? {
        guard !phrase.isEmpty else { return nil }
        var words: [String] = []
        for token in phrase {
            switch token {
            case .atom(let text), .quoted(let text):
                words.append(text)
            case .special(let byte):
                words.append(String(UnicodeScalar(byte)))
            case .comment:
                continue
            }
        }
        let decoded = EncodedWords.decode(words.joined(separator: " "))
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
