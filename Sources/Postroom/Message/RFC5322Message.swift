/// Why a byte sequence cannot be read as an RFC 5322 message.
///
/// Every case names the 1-based line of the header block where the problem was seen,
/// so a `.bad.reason` file can point an operator straight at it.
public enum MessageFormatError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file holds no bytes (or only a byte-order mark / mbox `From ` line).
    case empty
    /// The file starts with a blank line: there is no header at all.
    case noHeaderFields
    /// A carriage return not followed by a line feed inside the header block.
    /// Rejected because readers disagree on whether it ends a line, which lets a
    /// producer smuggle header fields past one reader and into another.
    case bareCarriageReturn(line: Int)
    /// A line starting with white space before any header field.
    case continuationBeforeFirstField(line: Int)
    /// A line in the header block that is neither `Name: value` nor a continuation.
    case notAHeaderField(line: Int)

    public var description: String {
        switch self {
        case .empty:
            return "the file is empty (or holds only a byte-order mark or an mbox \"From \" line)"
        case .noHeaderFields:
            return "the file starts with a blank line, so it has no header fields"
        case .bareCarriageReturn(let line):
            return "header line \(line) contains a carriage return (CR) not followed by a line feed (LF)"
        case .continuationBeforeFirstField(let line):
            return "header line \(line) starts with white space but there is no header field before it to continue"
        case .notAHeaderField(let line):
            return "header line \(line) is not a header field (\"Name: value\") nor a folded continuation"
        }
    }
}

/// One header field as written in the file.
///
/// `rawValue` keeps the bytes after the colon exactly as written, including folding
/// line breaks and 8-bit bytes, so a message can be written back without changes.
public struct HeaderField: Sendable, Equatable {
    /// The field name as written (without the colon or trailing white space).
    public var name: String
    /// The bytes after the colon up to (not including) the final line ending;
    /// folded continuation lines are included with their own line breaks.
    public var rawValue: [UInt8]

    public init(name: String, rawValue: [UInt8]) {
        self.name = name
        self.rawValue = rawValue
    }

    /// The raw value as a string (UTF-8, or Windows-1252 when the bytes are not UTF-8).
    public var rawString: String { HeaderText.string(from: rawValue[...]) }

    /// The value unfolded (line breaks before white space removed) and trimmed.
    /// Encoded words are *not* decoded: use `EncodedWords.decode` for display text.
    public var value: String {
        var out: [UInt8] = []
        out.reserveCapacity(rawValue.count)
        for byte in rawValue where byte != 0x0D && byte != 0x0A {
            out.append(byte)
        }
        return HeaderText.string(from: HeaderText.trimmed(out[...]))
    }

    /// Whether this field's name equals `other`, ignoring ASCII case.
    public func hasName(_ other: String) -> Bool {
        HeaderText.equalsIgnoringASCIICase(name, other)
    }
}

/// An RFC 5322 message split into its header fields and its body.
///
/// Parsing never crashes or loops on any input and is linear in its size. The body
/// is kept as the original bytes; only the header is modelled, because transport
/// never needs to look inside the body. `serialized()` writes the header back with
/// the message's own dominant line ending, followed by the body unchanged.
public struct RFC5322Message: Sendable {
    /// Where a new header field goes.
    public enum Position: Sendable { case top, bottom }

    /// The header fields in file order.
    public var fields: [HeaderField]
    /// The dominant line ending of the header block: `"\r\n"` or `"\n"`.
    public var lineEnding: String
    /// Size in bytes of the header block as read, including the blank separator
    /// line, excluding a dropped byte-order mark or mbox `From ` line.
    public let headerByteCount: Int
    /// Offset of the first body byte in the original bytes.
    public let bodyOffset: Int
    /// Offset of the first header byte in the original bytes (after a BOM / mbox line).
    public let headerOffset: Int
    private let storage: [UInt8]

    /// The body bytes exactly as in the file (empty when the file ends after the header).
    public var body: ArraySlice<UInt8> { storage[bodyOffset...] }

    /// The header block exactly as in the file, including the blank separator line.
    public var originalHeaderBlock: ArraySlice<UInt8> { storage[headerOffset..<bodyOffset] }

    /// Parses `bytes` as a message. A file that ends right after the header block
    /// (with or without a final blank line) has an empty body.
    public init(parsing bytes: [UInt8]) throws(MessageFormatError) {
        let scan = HeaderScanner.scan(bytes, stopAtFirstError: false)
        if let error = scan.error { throw error }
        self.init(scan: scan, bytes: bytes)
    }

    private init(scan: HeaderScanner.Result, bytes: [UInt8]) {
        fields = scan.fields
        lineEnding = scan.crlfCount >= scan.lfCount && scan.crlfCount > 0 ? "\r\n" : (scan.lfCount > 0 ? "\n" : "\r\n")
        headerOffset = scan.headerStart
        bodyOffset = scan.bodyOffset
        headerByteCount = scan.bodyOffset - scan.headerStart
        storage = bytes
    }

    /// Reads as many header fields as possible from a possibly truncated or broken
    /// header, stopping silently at the first problem. Used to find a sender to
    /// report to when the whole message cannot be parsed or was not read entirely.
    public static func leadingFields(of bytes: [UInt8]) -> [HeaderField] {
        HeaderScanner.scan(bytes, stopAtFirstError: true).fields
    }

    /// Like `leadingFields(of:)`, plus the byte range of the header lines read
    /// (up to the blank line, the first bad line, or the end of `bytes`).
    static func lenientHeader(of bytes: [UInt8]) -> (fields: [HeaderField], range: Range<Int>) {
        let scan = HeaderScanner.scan(bytes, stopAtFirstError: true)
        return (scan.fields, scan.headerStart..<max(scan.headerStart, scan.bodyOffset))
    }

    /// The first field named `name` (ASCII case-insensitive), unfolded and trimmed.
    public func value(of name: String) -> String? {
        fields.first { $0.hasName(name) }?.value
    }

    /// Every field named `name`, unfolded and trimmed, in file order.
    public func values(of name: String) -> [String] {
        fields.filter { $0.hasName(name) }.map(\.value)
    }

    /// Removes every field named `name`; returns how many were removed.
    @discardableResult
    public mutating func removeFields(named name: String) -> Int {
        removeFields { $0.hasName(name) }
    }

    /// Removes every field matching `predicate`; returns how many were removed.
    @discardableResult
    public mutating func removeFields(where predicate: (HeaderField) -> Bool) -> Int {
        let before = fields.count
        fields.removeAll(where: predicate)
        return before - fields.count
    }

    /// Adds a field. Line breaks in `value` become spaces so a value can never
    /// inject another header field.
    public mutating func addField(name: String, value: String, at position: Position = .bottom) {
        let field = HeaderField(name: HeaderText.sanitizedName(name), rawValue: HeaderText.rawValue(for: value))
        switch position {
        case .top: fields.insert(field, at: 0)
        case .bottom: fields.append(field)
        }
    }

    /// Replaces the first field named `name` in place (keeping its position) and
    /// removes the others; adds the field at the bottom when there is none.
    public mutating func setField(name: String, value: String) {
        guard let index = fields.firstIndex(where: { $0.hasName(name) }) else {
            addField(name: name, value: value)
            return
        }
        fields[index].rawValue = HeaderText.rawValue(for: value)
        var seen = false
        fields.removeAll { field in
            guard field.hasName(name) else { return false }
            defer { seen = true }
            return seen
        }
    }

    /// The header fields followed by the blank line, each line ending normalised to `lineEnding`.
    public func serializedHeader() -> [UInt8] {
        let eol = Array(lineEnding.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(headerByteCount + 256)
        for field in fields {
            out.append(contentsOf: field.name.utf8)
            out.append(0x3A)
            // Folded values may have been written with either line ending; a stored
            // message must use one, or later readers may split it differently.
            var index = 0
            let raw = field.rawValue
            while index < raw.count {
                let byte = raw[index]
                if byte == 0x0D, index + 1 < raw.count, raw[index + 1] == 0x0A {
                    index += 1
                    continue
                }
                if byte == 0x0A || byte == 0x0D {
                    out.append(contentsOf: eol)
                } else {
                    out.append(byte)
                }
                index += 1
            }
            out.append(contentsOf: eol)
        }
        out.append(contentsOf: eol)
        return out
    }

    /// The whole message: the header as `serializedHeader()`, then the body unchanged.
    public func serialized() -> [UInt8] {
        var out = serializedHeader()
        out.append(contentsOf: body)
        return out
    }
}

/// The single linear pass over the header block shared by strict and lenient parsing.
private enum HeaderScanner {
    struct Result {
        var fields: [HeaderField] = []
        var headerStart = 0
        var bodyOffset = 0
        var crlfCount = 0
        var lfCount = 0
        var error: MessageFormatError?
    }

    static func scan(_ bytes: [UInt8], stopAtFirstError: Bool) -> Result {
        var result = Result()
        var position = 0
        let count = bytes.count
        if count >= 3, bytes[0] == 0xEF, bytes[1] == 0xBB, bytes[2] == 0xBF {
            position = 3
        }
        if count - position >= 5, bytes[position..<(position + 5)].elementsEqual("From ".utf8),
           !isObsoleteFromField(bytes, at: position + 5) {
            // mbox separator line: not part of the message.
            while position < count, bytes[position] != 0x0A { position += 1 }
            if position < count { position += 1 }
        }
        result.headerStart = position
        result.bodyOffset = count
        if position >= count {
            result.error = .empty
            return result
        }

        var line = 0
        // The field being built: its name and the start of its value in `bytes`.
        var currentName: String?
        var valueStart = 0
        var valueEnd = 0

        func finishField(_ result: inout Result) {
            if let name = currentName {
                result.fields.append(HeaderField(name: name, rawValue: Array(bytes[valueStart..<valueEnd])))
            }
            currentName = nil
        }

        while position < count {
            line += 1
            let lineStart = position
            var contentEnd = position
            var failure: MessageFormatError?
            while contentEnd < count {
                let byte = bytes[contentEnd]
                if byte == 0x0A { break }
                // A NUL is obsolete but allowed text (RFC 5322 obs-utext); it is kept as is.
                if byte == 0x0D, !(contentEnd + 1 < count && bytes[contentEnd + 1] == 0x0A) {
                    failure = failure ?? .bareCarriageReturn(line: line)
                }
                contentEnd += 1
            }
            // contentEnd is at LF or at end of input; step back over the CR of a CRLF.
            var nextLine = contentEnd
            if contentEnd < count {
                nextLine = contentEnd + 1
                if contentEnd > lineStart, bytes[contentEnd - 1] == 0x0D {
                    contentEnd -= 1
                    result.crlfCount += 1
                } else {
                    result.lfCount += 1
                }
            }
            if let failure {
                result.error = failure
                result.bodyOffset = lineStart
                break
            }
            if contentEnd == lineStart {
                // The blank line that separates header and body.
                if result.fields.isEmpty && currentName == nil {
                    result.error = .noHeaderFields
                    result.bodyOffset = lineStart
                    return result
                }
                finishField(&result)
                result.bodyOffset = nextLine
                return result
            }
            let first = bytes[lineStart]
            if first == 0x20 || first == 0x09 {
                // White space alone before the first field: skipping it loses no text (as Python's email).
                if currentName == nil, bytes[lineStart..<contentEnd].allSatisfy({ $0 == 0x20 || $0 == 0x09 }) {
                    position = nextLine
                    continue
                }
                guard currentName != nil else {
                    result.error = .continuationBeforeFirstField(line: line)
                    result.bodyOffset = lineStart
                    break
                }
                valueEnd = contentEnd
                position = nextLine
                continue
            }
            guard let (name, afterColon) = fieldName(bytes, from: lineStart, to: contentEnd) else {
                result.error = .notAHeaderField(line: line)
                result.bodyOffset = lineStart
                break
            }
            finishField(&result)
            currentName = name
            valueStart = afterColon
            valueEnd = contentEnd
            position = nextLine
        }
        if result.error == nil, result.fields.isEmpty, currentName == nil {
            result.error = .noHeaderFields  // only white-space lines
        } else if result.error == nil {
            // The file ended inside the header block: accepted, with an empty body.
            finishField(&result)
            result.bodyOffset = count
        } else if stopAtFirstError {
            finishField(&result)
        }
        return result
    }

    /// Whether "From " is the field `From : value` (obsolete white space before the
    /// colon) rather than an mbox separator line.
    private static func isObsoleteFromField(_ bytes: [UInt8], at start: Int) -> Bool {
        var index = start
        while index < bytes.count, bytes[index] == 0x20 || bytes[index] == 0x09 { index += 1 }
        return index < bytes.count && bytes[index] == 0x3A
    }

    /// The field name of a `Name: value` line and the offset just after the colon.
    /// Accepts white space between name and colon (RFC 5322 obsolete syntax).
    private static func fieldName(_ bytes: [UInt8], from start: Int, to end: Int) -> (String, Int)? {
        var index = start
        while index < end {
            let byte = bytes[index]
            if byte == 0x3A { break }
            if byte == 0x20 || byte == 0x09 {
                var probe = index
                while probe < end, bytes[probe] == 0x20 || bytes[probe] == 0x09 { probe += 1 }
                guard probe < end, bytes[probe] == 0x3A, index > start else { return nil }
                return (String(decoding: bytes[start..<index], as: UTF8.self), probe + 1)
            }
            guard byte > 0x20, byte < 0x7F else { return nil }
            index += 1
        }
        guard index < end, index > start else { return nil }
        return (String(decoding: bytes[start..<index], as: UTF8.self), index + 1)
    }
}

/// Small byte-level helpers for header text.
enum HeaderText {
    /// Decodes header bytes: UTF-8 when valid, otherwise Windows-1252 (what unlabelled
    /// 8-bit headers from Windows mail programs are), so every byte sequence gives a
    /// string and no byte is silently replaced by U+FFFD.
    static func string(from bytes: ArraySlice<UInt8>) -> String {
        if bytes.allSatisfy({ $0 < 0x80 }) || isValidUTF8(bytes) {
            return String(decoding: bytes, as: UTF8.self)
        }
        return Charset.windows1252(bytes)
    }

    static func isValidUTF8(_ bytes: ArraySlice<UInt8>) -> Bool {
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue: continue
            case .emptyInput: return true
            case .error: return false
            }
        }
    }

    static func isWhitespace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0D || byte == 0x0A
    }

    static func trimmed(_ bytes: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        var start = bytes.startIndex
        var end = bytes.endIndex
        while start < end, isWhitespace(bytes[start]) { start += 1 }
        while end > start, isWhitespace(bytes[end - 1]) { end -= 1 }
        return bytes[start..<end]
    }

    static func equalsIgnoringASCIICase(_ lhs: String, _ rhs: String) -> Bool {
        var left = lhs.utf8.makeIterator()
        var right = rhs.utf8.makeIterator()
        while true {
            switch (left.next(), right.next()) {
            case (nil, nil): return true
            case (let l?, let r?):
                if lowerASCII(l) != lowerASCII(r) { return false }
            default: return false
            }
        }
    }

    static func hasPrefixIgnoringASCIICase(_ string: String, _ prefix: String) -> Bool {
        var iterator = string.utf8.makeIterator()
        for byte in prefix.utf8 {
            guard let next = iterator.next(), lowerASCII(next) == lowerASCII(byte) else { return false }
        }
        return true
    }

    @inline(__always)
    static func lowerASCII(_ byte: UInt8) -> UInt8 {
        byte >= 0x41 && byte <= 0x5A ? byte + 0x20 : byte
    }

    /// The raw bytes for a new field value: a leading space, no line breaks.
    static func rawValue(for value: String) -> [UInt8] {
        var raw: [UInt8] = [0x20]
        raw.reserveCapacity(value.utf8.count + 1)
        for byte in value.utf8 {
            raw.append(byte == 0x0D || byte == 0x0A || byte == 0x00 ? 0x20 : byte)
        }
        return raw
    }

    /// A field name reduced to the printable ASCII characters RFC 5322 allows.
    static func sanitizedName(_ name: String) -> String {
        let kept = name.utf8.filter { $0 > 0x20 && $0 < 0x7F && $0 != 0x3A }
        return kept.isEmpty ? "X-Invalid-Name" : String(decoding: kept, as: UTF8.self)
    }
}
