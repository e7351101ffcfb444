/// A header that ends without its blank line: `From`, `To`, then a line that is not a
/// field, then more text. Python's `email`, Postfix's cleanup and MimeKit all start the
/// body at that line; Postroom does the same, by inserting the blank line, but only when
/// the meaning is unambiguous: no line between it and the first blank line looks like a
/// header field. Otherwise (`X-Broken line` then `Bcc: secret@x`) the "body" would show
/// header fields, a Bcc among them, to every recipient, so the message is still refused.
enum MissingSeparator {
    /// The message with a blank line inserted before the first line that is not a field,
    /// and that line's number; nil when the error is another one or the case is ambiguous.
    static func separated(_ bytes: [UInt8], error: MessageFormatError) -> ([UInt8], Int)? {
        guard case .notAHeaderField(let line) = error, line > 1 else { return nil }
        let (fields, range) = RFC5322Message.lenientHeader(of: bytes)
        let cut = range.upperBound
        guard !fields.isEmpty, cut > range.lowerBound, cut < bytes.count else { return nil }
        var start = cut
        while start < bytes.count {
            var end = start
            while end < bytes.count, bytes[end] != 0x0A { end += 1 }
            var content = bytes[start..<end]
            if content.last == 0x0D { content = content.dropLast() }
            if content.isEmpty { break }
            if looksLikeField(content) { return nil }
            start = end + 1
        }
        let crlf = cut >= 2 && bytes[cut - 2] == 0x0D
        return (Array(bytes[..<cut]) + (crlf ? [0x0D, 0x0A] : [0x0A]) + bytes[cut...], line)
    }

    /// `Name:` (printable ASCII name, white space allowed before the colon, as RFC 5322's obsolete syntax).
    private static func looksLikeField(_ line: ArraySlice<UInt8>) -> Bool {
        var index = line.startIndex
        while index < line.endIndex, line[index] > 0x20, line[index] < 0x7F, line[index] != 0x3A { index += 1 }
        guard index > line.startIndex else { return false }
        while index < line.endIndex, line[index] == 0x20 || line[index] == 0x09 { index += 1 }
        return index < line.endIndex && line[index] == 0x3A
    }
}

extension SubmissionValidator {
    /// `verdict` with `change` first among the header changes of an accepted message.
    static func noting(_ change: String, _ verdict: SubmissionVerdict) -> SubmissionVerdict {
        guard case .accepted(var accepted) = verdict else { return verdict }
        accepted.headerChanges.insert(change, at: 0)
        return .accepted(accepted)
    }
}
