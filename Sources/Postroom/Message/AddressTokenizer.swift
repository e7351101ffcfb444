import PostroomSystem

/// The lexical layer of ``AddressParser``: header-value bytes split into RFC 5322 tokens,
/// each remembering where it was written, so an unusable list element can be quoted
/// exactly as written in a report.
enum AddressTokenizer {
    enum Kind: Equatable {
        /// A run of `atext` (RFC 5322 §3.2.3) and 8-bit bytes (RFC 6532); never a dot.
        case atom
        /// `.` between words (obs-local-part and obs-domain allow CFWS around it).
        case dot
        /// A quoted string; `content` is unescaped, folding line breaks removed.
        case quoted
        /// A comment; `content` is its text (nested comments kept, escapes removed).
        case comment
        /// A domain literal, brackets included, as written.
        case literal
        /// One of `< > : ; @ ,`.
        case special(UInt8)
        /// A byte no token may start with (`\`, a stray `)` or `]`, a control character).
        case junk
    }

    struct Token: Equatable {
        var kind: Kind
        /// The token's bytes (see `Kind` for quoted strings and comments).
        var content: [UInt8]
        /// Where the token was written in the input.
        var range: Range<Int>
        /// A quoted string, comment or domain literal the input ended inside.
        var unterminated = false

        var isWord: Bool { kind == .atom || kind == .quoted }
    }

    static func isAtext(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A, 0x80...0xFF:
            return true
        case 0x21, 0x23, 0x24, 0x25, 0x26, 0x27, 0x2A, 0x2B, 0x2D, 0x2F, 0x3D, 0x3F, 0x5E, 0x5F, 0x60, 0x7B, 0x7C, 0x7D, 0x7E:
            return true
        default:
            return false
        }
    }

    static func isWhitespace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0D || byte == 0x0A
    }

    /// Splits `bytes` into tokens; white space (including folding) separates tokens and is dropped.
    static func tokenize(_ bytes: [UInt8]) -> [Token] {
        var tokens: [Token] = []
        var index = 0
        let count = bytes.count
        while index < count {
            let start = index
            let byte = bytes[index]
            if isWhitespace(byte) {
                index += 1
                continue
            }
            switch byte {
            case 0x22:
                var content: [UInt8] = []
                var closed = false
                index += 1
                while index < count {
                    let current = bytes[index]
                    if current == 0x22 {
                        closed = true
                        index += 1
                        break
                    }
                    if current == 0x5C, index + 1 < count {
                        content.append(bytes[index + 1])
                        index += 2
                        continue
                    }
                    // Folding inside a quoted string is not part of its content (RFC 5322 §3.2.4).
                    if current != 0x0D, current != 0x0A { content.append(current) }
                    index += 1
                }
                tokens.append(Token(kind: .quoted, content: content, range: start..<index, unterminated: !closed))
            case 0x28:
                var depth = 0
                var content: [UInt8] = []
                var closed = false
                while index < count {
                    let current = bytes[index]
                    if current == 0x5C, index + 1 < count {
                        content.append(bytes[index + 1])
                        index += 2
                        continue
                    }
                    index += 1
                    if current == 0x28 {
                        depth += 1
                        if depth == 1 { continue }
                    } else if current == 0x29 {
                        depth -= 1
                        if depth == 0 {
                            closed = true
                            break
                        }
                    }
                    content.append(current)
                }
                tokens.append(Token(kind: .comment, content: content, range: start..<index, unterminated: !closed))
            case 0x5B:
                var closed = false
                while index < count {
                    let current = bytes[index]
                    index += 1
                    if current == 0x5D {
                        closed = true
                        break
                    }
                }
                tokens.append(Token(kind: .literal, content: Array(bytes[start..<index]), range: start..<index, unterminated: !closed))
            case 0x2E:
                index += 1
                tokens.append(Token(kind: .dot, content: [byte], range: start..<index))
            case 0x3C, 0x3E, 0x3A, 0x3B, 0x40, 0x2C:
                index += 1
                tokens.append(Token(kind: .special(byte), content: [byte], range: start..<index))
            default:
                if isAtext(byte) {
                    while index < count, isAtext(bytes[index]) { index += 1 }
                    tokens.append(Token(kind: .atom, content: Array(bytes[start..<index]), range: start..<index))
                } else {
                    index += 1
                    tokens.append(Token(kind: .junk, content: [byte], range: start..<index))
                }
            }
        }
        return tokens
    }

    /// Bytes as text for a person: unfolded, and every byte that is not part of valid
    /// UTF-8 (or is a control character other than a tab) written as `\xNN`, so nothing is transcoded.
    static func escapedText(_ bytes: ArraySlice<UInt8>) -> String {
        UTF8Validation.escaped(bytes, keepingTabs: true, droppingLineBreaks: true)
    }

    /// Whether every byte is ASCII or part of valid UTF-8 (RFC 6532).
    static func isValidUTF8(_ bytes: [UInt8]) -> Bool {
        var index = 0
        let slice = bytes[...]
        while index < bytes.count {
            if bytes[index] < 0x80 {
                index += 1
                continue
            }
            let length = UTF8Validation.sequenceLength(in: slice, at: index)
            guard length > 0 else { return false }
            index += length
        }
        return true
    }
}
