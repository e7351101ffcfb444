/// Character sets that header text may be encoded in.
///
/// Own tables rather than Foundation's `String.Encoding`, because Foundation on Linux
/// lacks ISO-8859-15 and several others, and a table lookup is faster than a bridge.
/// The single-byte tables in `CharsetTables.swift` were generated from Python's
/// `codecs` module (`bytes([b]).decode(name)` for b in 0x80...0xFF).
enum Charset {
    /// Decodes `bytes` in the charset called `name` (any case, common aliases);
    /// nil for an unknown charset or bytes that are invalid in it.
    static func decode(_ bytes: [UInt8], charset name: String) -> String? {
        let key = canonicalName(name)
        switch key {
        case "utf-8":
            guard HeaderText.isValidUTF8(bytes[...]) else { return nil }
            return String(decoding: bytes, as: UTF8.self)
        case "us-ascii":
            // Mislabelled 8-bit text is common; accept it when it is valid UTF-8.
            if bytes.allSatisfy({ $0 < 0x80 }) { return String(decoding: bytes, as: UTF8.self) }
            return HeaderText.isValidUTF8(bytes[...]) ? String(decoding: bytes, as: UTF8.self) : nil
        case "iso-8859-1", "windows-1252":
            return windows1252(bytes[...])
        default:
            guard let upper = upperHalves[key] else { return nil }
            var scalars = String.UnicodeScalarView()
            for byte in bytes {
                if byte < 0x80 {
                    scalars.append(Unicode.Scalar(byte))
                } else {
                    let code = upper[Int(byte) - 0x80]
                    guard code != 0xFFFF, let scalar = Unicode.Scalar(code) else { return nil }
                    scalars.append(scalar)
                }
            }
            return String(scalars)
        }
    }

    /// Windows-1252 as web browsers read it (WHATWG): also used for ISO-8859-1, because
    /// text labelled Latin-1 is in practice Windows-1252 (curly quotes, €), and the five
    /// bytes 1252 leaves unassigned map to the C1 controls, so it never fails.
    static func windows1252(_ bytes: ArraySlice<UInt8>) -> String {
        let upper = upperHalves["windows-1252"] ?? []
        var scalars = String.UnicodeScalarView()
        for byte in bytes {
            if byte >= 0x80, upper.count == 128, upper[Int(byte) - 0x80] != 0xFFFF,
               let scalar = Unicode.Scalar(upper[Int(byte) - 0x80]) {
                scalars.append(scalar)
            } else {
                scalars.append(Unicode.Scalar(byte))
            }
        }
        return String(scalars)
    }

    /// Whether `canonical` (a `canonicalName` result) can be decoded.
    static func isKnown(_ canonical: String) -> Bool {
        canonical == "utf-8" || canonical == "us-ascii" || canonical == "iso-8859-1" || upperHalves[canonical] != nil
    }

    /// Lowercased name with aliases folded onto the table names.
    static func canonicalName(_ name: String) -> String {
        var key = name.lowercased()
        // RFC 2231 language suffix: charset*language.
        if let star = key.firstIndex(of: "*") { key = String(key[..<star]) }
        switch key {
        case "utf8": return "utf-8"
        case "ascii", "us_ascii", "ansi_x3.4-1968", "iso646-us": return "us-ascii"
        case "latin1", "latin-1", "iso8859-1", "iso_8859-1", "l1": return "iso-8859-1"
        case "latin2", "latin-2", "l2": return "iso-8859-2"
        case "latin9", "latin-9", "l9": return "iso-8859-15"
        case "cp1250": return "windows-1250"
        case "cp1251": return "windows-1251"
        case "cp1252": return "windows-1252"
        default: break
        }
        if key.hasPrefix("iso8859-") { return "iso-8859-" + key.dropFirst(8) }
        if key.hasPrefix("iso_8859-") { return "iso-8859-" + key.dropFirst(9) }
        return key
    }
}

/// RFC 2047 encoded words (`=?charset?B?...?=`, `=?charset?Q?...?=`) in header text.
///
/// Decoding is total: it never fails, and any word it cannot decode (unknown charset,
/// bad Base64, bytes invalid in the charset) is left exactly as written.
public enum EncodedWords {
    /// Decodes every well-formed encoded word in `text`. White space between two
    /// adjacent encoded words is dropped (RFC 2047 §6.2); adjacent words in the same
    /// charset are decoded together, so a multi-byte character split across two
    /// words still comes out whole.
    public static func decode(_ text: String) -> String {
        let bytes = Array(text.utf8)
        guard bytes.count >= 8, bytes.firstIndex(of: 0x3D) != nil else { return text }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        // Bytes of consecutive decoded words in one charset, not yet converted.
        var pending: (charset: String, bytes: [UInt8], raw: [UInt8])?
        var pendingWhitespace: [UInt8] = []
        var index = 0
        var lookahead = Lookahead()

        func flush() {
            guard let run = pending else { return }
            if let decoded = Charset.decode(run.bytes, charset: run.charset) {
                out.append(contentsOf: decoded.utf8)
            } else {
                out.append(contentsOf: run.raw)
            }
            pending = nil
        }

        while index < bytes.count {
            if bytes[index] == 0x3D, index + 1 < bytes.count, bytes[index + 1] == 0x3F,
               let word = parseWord(bytes, at: index, lookahead: &lookahead) {
                if pending?.charset == word.charset {
                    // Mutate through the optional in place: copying the run out and back
                    // would copy its buffers on every word and make long runs quadratic.
                    pending!.bytes.append(contentsOf: word.decoded)
                    pending!.raw.append(contentsOf: pendingWhitespace)
                    pending!.raw.append(contentsOf: bytes[index..<word.end])
                } else {
                    flush()
                    pending = (word.charset, word.decoded, Array(bytes[index..<word.end]))
                }
                pendingWhitespace.removeAll(keepingCapacity: true)
                index = word.end
                continue
            }
            let byte = bytes[index]
            if pending != nil, byte == 0x20 || byte == 0x09 || byte == 0x0D || byte == 0x0A {
                pendingWhitespace.append(byte)
                index += 1
                continue
            }
            flush()
            out.append(contentsOf: pendingWhitespace)
            pendingWhitespace.removeAll(keepingCapacity: true)
            out.append(byte)
            index += 1
        }
        flush()
        out.append(contentsOf: pendingWhitespace)
        return String(decoding: out, as: UTF8.self)
    }

    private struct Word {
        var charset: String
        var decoded: [UInt8]
        var end: Int
    }

    /// Forward-only memo of where the next `?=` and the next byte illegal inside an
    /// encoded word are. Word starts are visited in increasing order, so both
    /// pointers only move forward and finding word ends costs linear time in total,
    /// even for input full of stray `=?` sequences.
    private struct Lookahead {
        var terminator = -1
        var illegal = -1

        mutating func terminator(in bytes: [UInt8], from index: Int) -> Int {
            if terminator < index {
                terminator = index
                while terminator + 1 < bytes.count, !(bytes[terminator] == 0x3F && bytes[terminator + 1] == 0x3D) {
                    terminator += 1
                }
                if terminator + 1 >= bytes.count { terminator = bytes.count }
            }
            return terminator
        }

        mutating func illegal(in bytes: [UInt8], from index: Int) -> Int {
            if illegal < index {
                illegal = index
                while illegal < bytes.count, bytes[illegal] > 0x20, bytes[illegal] < 0x7F { illegal += 1 }
            }
            return illegal
        }
    }

    /// Parses one encoded word starting at `start` (which holds `=?`).
    private static func parseWord(_ bytes: [UInt8], at start: Int, lookahead: inout Lookahead) -> Word? {
        var index = start + 2
        let charsetStart = index
        // The charset cannot contain "=", so charset scans of different starts never overlap.
        while index < bytes.count, bytes[index] != 0x3F {
            if !isTokenByte(bytes[index]) { return nil }
            index += 1
        }
        guard index < bytes.count, index > charsetStart else { return nil }
        // An unknown charset makes the word plain text, so the white space around it is kept.
        let charset = Charset.canonicalName(String(decoding: bytes[charsetStart..<index], as: UTF8.self))
        guard Charset.isKnown(charset) else { return nil }
        index += 1
        guard index + 1 < bytes.count, bytes[index + 1] == 0x3F else { return nil }
        let encoding = bytes[index] | 0x20
        guard encoding == 0x62 || encoding == 0x71 else { return nil }
        index += 2
        let textStart = index
        let end = lookahead.terminator(in: bytes, from: textStart)
        guard end < bytes.count, lookahead.illegal(in: bytes, from: textStart) >= end else { return nil }
        let text = bytes[textStart..<end]
        let decoded = encoding == 0x62 ? base64(text) : quotedPrintable(text)
        guard let decoded else { return nil }
        return Word(charset: charset, decoded: decoded, end: end + 2)
    }

    private static func isTokenByte(_ byte: UInt8) -> Bool {
        guard byte > 0x20, byte < 0x7F else { return false }
        switch byte {
        case 0x28, 0x29, 0x3C, 0x3E, 0x40, 0x2C, 0x3B, 0x3A, 0x22, 0x2F, 0x5B, 0x5D, 0x3F, 0x3D:
            // RFC 2047 also excludes ".", but real charset names such as
            // "ansi_x3.4-1968" contain it, so it is allowed here.
            return false
        default:
            return true
        }
    }

    private static func base64(_ text: ArraySlice<UInt8>) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(text.count * 3 / 4)
        var accumulator: UInt32 = 0
        var bits = 0
        var padding = 0
        for byte in text {
            let value: UInt32
            switch byte {
            case 0x41...0x5A: value = UInt32(byte - 0x41)
            case 0x61...0x7A: value = UInt32(byte - 0x61 + 26)
            case 0x30...0x39: value = UInt32(byte - 0x30 + 52)
            case 0x2B: value = 62
            case 0x2F: value = 63
            case 0x3D:
                padding += 1
                continue
            default: return nil
            }
            if padding > 0 { return nil }
            accumulator = (accumulator << 6) | value
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8((accumulator >> UInt32(bits)) & 0xFF))
            }
        }
        // Leftover bits must be fewer than a byte; a single dangling character is invalid.
        guard bits < 6, padding <= 2 else { return nil }
        return out
    }

    private static func quotedPrintable(_ text: ArraySlice<UInt8>) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(text.count)
        var index = text.startIndex
        while index < text.endIndex {
            let byte = text[index]
            if byte == 0x5F {
                out.append(0x20)
            } else if byte == 0x3D {
                guard index + 2 < text.endIndex,
                      let high = hexValue(text[index + 1]), let low = hexValue(text[index + 2]) else { return nil }
                out.append(high << 4 | low)
                index += 2
            } else {
                out.append(byte)
            }
            index += 1
        }
        return out
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case 0x30...0x39: return byte - 0x30
        case 0x41...0x46: return byte - 0x41 + 10
        case 0x61...0x66: return byte - 0x61 + 10
        default: return nil
        }
    }
}
