/// Finds the line of every key path (`groups[1].members[2]`) in JSON5 text.
///
/// Semantic checks run after decoding, when the decoder's positions are gone; this walker gives
/// their findings a line. It follows JSON5's structure (comments, both quote styles, unquoted
/// keys, trailing commas) but does not validate: the text has already decoded successfully.
/// On text it cannot follow it simply returns what it found so far.
enum JSON5Lines {
    static func lines(in text: String) -> [String: Int] {
        var walker = Walker(bytes: Array(text.utf8))
        walker.value(path: "")
        return walker.lines
    }

    /// Where a walk over text that does not parse stops: the line of the syntax error, roughly.
    /// Nil when the walker reaches the end of the text.
    static func stopLine(in text: String) -> Int? {
        var walker = Walker(bytes: Array(text.utf8))
        walker.value(path: "")
        walker.skipTrivia()
        return walker.stopped || walker.position < walker.bytes.count ? walker.line : nil
    }

    private struct Walker {
        let bytes: [UInt8]
        var position = 0
        var line = 1
        var lines: [String: Int] = [:]
        /// Set where the text stops following JSON5's structure (a missing comma, colon or bracket).
        var stopped = false

        init(bytes: [UInt8]) { self.bytes = bytes }

        var current: UInt8? { position < bytes.count ? bytes[position] : nil }

        mutating func advance() {
            if bytes[position] == UInt8(ascii: "\n") { line += 1 }
            position += 1
        }

        mutating func skipTrivia() {
            while let byte = current {
                if byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r") {
                    advance()
                } else if byte >= 0x80, let length = unicodeSpaceLength() {
                    for _ in 0..<length { advance() }
                } else if byte == UInt8(ascii: "/"), position + 1 < bytes.count, bytes[position + 1] == UInt8(ascii: "/") {
                    while let next = current, next != UInt8(ascii: "\n") { advance() }
                } else if byte == UInt8(ascii: "/"), position + 1 < bytes.count, bytes[position + 1] == UInt8(ascii: "*") {
                    advance(); advance()
                    while position < bytes.count, !(bytes[position] == UInt8(ascii: "*") && position + 1 < bytes.count && bytes[position + 1] == UInt8(ascii: "/")) {
                        advance()
                    }
                    if position < bytes.count { advance(); advance() }
                } else {
                    return
                }
            }
        }

        /// Non-ASCII white space is rare; U+00A0 (NBSP) and U+FEFF (BOM) are skipped whole, by
        /// their UTF-8 length, anything else is text.
        func unicodeSpaceLength() -> Int? {
            let rest = bytes[position...]
            if rest.starts(with: [0xC2, 0xA0]) { return 2 }
            if rest.starts(with: [0xEF, 0xBB, 0xBF]) { return 3 }
            return nil
        }

        mutating func value(path: String) {
            skipTrivia()
            guard let byte = current else { return }
            if !path.isEmpty, lines[path] == nil { lines[path] = line }
            switch byte {
            case UInt8(ascii: "{"):
                advance()
                while true {
                    skipTrivia()
                    guard let next = current else { return }
                    if next == UInt8(ascii: "}") { advance(); return }
                    if next == UInt8(ascii: ",") { advance(); continue }
                    let keyLine = line
                    let key = next == UInt8(ascii: "\"") || next == UInt8(ascii: "'") ? string() : bareToken()
                    guard !key.isEmpty else { stopped = true; return }
                    skipTrivia()
                    guard current == UInt8(ascii: ":") else { stopped = true; return }
                    advance()
                    let childPath = path.isEmpty ? key : "\(path).\(key)"
                    lines[childPath] = keyLine
                    value(path: childPath)
                    if stopped { return }
                    skipTrivia()
                    guard current == UInt8(ascii: ",") || current == UInt8(ascii: "}") else { stopped = true; return }
                }
            case UInt8(ascii: "["):
                advance()
                var index = 0
                while true {
                    skipTrivia()
                    guard let next = current else { return }
                    if next == UInt8(ascii: "]") { advance(); return }
                    if next == UInt8(ascii: ",") { advance(); continue }
                    let before = position
                    value(path: "\(path)[\(index)]")
                    index += 1
                    if stopped { return }
                    if position == before { stopped = true; return }
                    skipTrivia()
                    guard current == UInt8(ascii: ",") || current == UInt8(ascii: "]") else { stopped = true; return }
                }
            case UInt8(ascii: "\""), UInt8(ascii: "'"):
                _ = string()
            default:
                if bareToken().isEmpty { return }
            }
        }

        /// A quoted string; returns its text with simple escapes undone (enough for key names).
        mutating func string() -> String {
            let quote = bytes[position]
            advance()
            var result: [UInt8] = []
            while let byte = current, byte != quote {
                if byte == UInt8(ascii: "\\") {
                    advance()
                    guard current != nil else { break }
                }
                result.append(bytes[position])
                advance()
            }
            if current != nil { advance() }
            return String(decoding: result, as: UTF8.self)
        }

        /// An unquoted key, number, `true`, `false`, `null`, `Infinity`, `NaN`.
        mutating func bareToken() -> String {
            let start = position
            while let byte = current, !" \t\r\n,:[]{}\"'/".utf8.contains(byte) {
                advance()
            }
            return String(decoding: bytes[start..<position], as: UTF8.self)
        }
    }
}
