import Foundation

/// What one SMTP transaction sends: the envelope with its ESMTP parameters and the message
/// prepared for the DATA phase.
///
/// Built once per queue entry, before any connection is touched, so a message that cannot
/// be sent over SMTP at all (a typed recipient) fails without a network round trip.
struct SMTPTransaction: Sendable {
    var sender: String
    /// RET and ENVID from the replay envelope (sent only when the server offers DSN).
    var senderParameters: [String]
    var recipients: [(address: String, parameters: [String])]
    /// The message with CRLF line endings, dot-stuffed, ending in `CRLF.CRLF`.
    var data: [UInt8]
    /// The message's size as the SIZE parameter counts it (before dot-stuffing).
    var size: Int
    /// The message has octets above 127 (BODY=8BITMIME when offered).
    var has8bit: Bool
    /// An address in the envelope is not ASCII: SMTPUTF8 is required.
    var needsSMTPUTF8: Bool
    /// The header has non-ASCII octets: SMTPUTF8 is asked for when offered.
    var headerHasUTF8: Bool

    init(envelope: Envelope, message: [UInt8]) {
        sender = envelope.sender
        senderParameters = Self.dsnParameters(envelope.parameters, allowed: ["RET", "ENVID"])
        recipients = envelope.recipients.map { ($0.address, Self.dsnParameters($0.parameters, allowed: ["NOTIFY", "ORCPT"])) }
        let encoded = Self.encodeData(message)
        data = encoded.data
        size = encoded.size
        has8bit = encoded.has8bit
        headerHasUTF8 = encoded.headerHas8bit
        let addresses = [envelope.sender] + envelope.recipients.map(\.address)
        needsSMTPUTF8 = addresses.contains { !$0.utf8.allSatisfy { $0 < 0x80 } }
    }

    // MARK: DATA

    /// Prepares a message for DATA (RFC 5321 §4.1.1.4, §4.5.2):
    /// - every line ends in CRLF (a bare LF or bare CR becomes CRLF: SMTP forbids them alone);
    /// - a line starting with `.` gets a second `.` (the server removes it);
    /// - the message ends with CRLF, then `.` CRLF;
    /// - lines longer than 998 octets are sent whole: breaking them would change the message
    ///   (and its DKIM signature); Postfix accepts and rebuilds them (see the README).
    static func encodeData(_ message: [UInt8]) -> (data: [UInt8], size: Int, has8bit: Bool, headerHas8bit: Bool) {
        var out: [UInt8] = []
        out.reserveCapacity(message.count + message.count / 40 + 8)
        var has8bit = false
        var headerHas8bit = false
        var inHeader = true
        var atLineStart = true
        var lineLength = 0
        var index = 0
        let count = message.count
        while index < count {
            let byte = message[index]
            if byte == 0x0D || byte == 0x0A {
                // CRLF, bare LF and bare CR all end a line.
                if byte == 0x0D, index + 1 < count, message[index + 1] == 0x0A { index += 1 }
                if inHeader, lineLength == 0 { inHeader = false }
                out.append(0x0D)
                out.append(0x0A)
                atLineStart = true
                lineLength = 0
                index += 1
                continue
            }
            if atLineStart, byte == UInt8(ascii: ".") { out.append(UInt8(ascii: ".")) }
            if byte >= 0x80 {
                has8bit = true
                if inHeader { headerHas8bit = true }
            }
            out.append(byte)
            atLineStart = false
            lineLength += 1
            index += 1
        }
        if !atLineStart { out.append(contentsOf: [0x0D, 0x0A]) }
        // SIZE counts the message as it will be stored, not the transparency dots.
        let size = out.count
        out.append(contentsOf: Array(".\r\n".utf8))
        return (out, size, has8bit, headerHas8bit)
    }

    // MARK: ESMTP parameters

    /// The DSN parameters (RFC 3461) of a replay envelope line, in the form SMTP needs:
    /// names upper-cased, only `allowed` names, NOTIFY checked, ORCPT given its address type
    /// (`ORcpt=a@b`, as Exchange writes it, becomes `ORCPT=rfc822;a@b`), xtext encoded.
    static func dsnParameters(_ parameters: [String], allowed: Set<String>) -> [String] {
        var out: [String] = []
        var seen = Set<String>()
        for parameter in parameters {
            guard let equals = parameter.firstIndex(of: "=") else { continue }
            let name = parameter[..<equals].uppercased()
            let value = String(parameter[parameter.index(after: equals)...])
            guard allowed.contains(name), !value.isEmpty, seen.insert(name).inserted else { continue }
            switch name {
            case "NOTIFY":
                let kinds = value.uppercased().split(separator: ",").map(String.init)
                let valid = kinds.allSatisfy { ["NEVER", "SUCCESS", "FAILURE", "DELAY"].contains($0) }
                    && (!kinds.contains("NEVER") || kinds.count == 1)
                if valid { out.append("NOTIFY=" + kinds.joined(separator: ",")) }
            case "RET":
                let upper = value.uppercased()
                if upper == "FULL" || upper == "HDRS" { out.append("RET=" + upper) }
            case "ORCPT":
                out.append("ORCPT=" + (value.contains(";") ? xtextChecked(value) : "rfc822;" + xtext(value)))
            case "ENVID":
                out.append("ENVID=" + xtextChecked(value))
            default:
                break
            }
        }
        return out
    }

    /// RFC 3461 §4 xtext: `+`, `=`, controls, space and non-ASCII as `+XX`.
    static func xtext(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            if byte < 33 || byte > 126 || byte == UInt8(ascii: "+") || byte == UInt8(ascii: "=") {
                out += "+" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            } else {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            }
        }
        return out
    }

    /// A value already written in xtext keeps its `+XX` escapes; anything else unsafe is encoded.
    private static func xtextChecked(_ text: String) -> String {
        var out = ""
        let bytes = Array(text.utf8)
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "+"), index + 2 < bytes.count, bytes[(index + 1)...(index + 2)].allSatisfy(\.isHexDigitASCII) {
                out += String(decoding: bytes[index...(index + 2)], as: UTF8.self)
                index += 3
                continue
            }
            if byte < 33 || byte > 126 || byte == UInt8(ascii: "+") || byte == UInt8(ascii: "=") {
                out += "+" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            } else {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            }
            index += 1
        }
        return out
    }
}

extension UInt8 {
    fileprivate var isHexDigitASCII: Bool {
        (0x30...0x39).contains(self) || (0x41...0x46).contains(self) || (0x61...0x66).contains(self)
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}

extension Envelope {
    /// RFC 3461 xtext of an envelope parameter value (ENVID, ORCPT), as producers such as
    /// `postroom submit` write it into replay envelope lines.
    public static func xtext(_ text: String) -> String { SMTPTransaction.xtext(text) }
}
