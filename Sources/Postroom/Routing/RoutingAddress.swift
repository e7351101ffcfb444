/// An envelope address as routing sees it: an SMTP mailbox or a typed (non-SMTP) address.
///
/// Routing never changes how an address is written; it only needs to know which kind it is,
/// compare it case-insensitively and find its domain or its type. Parsing is deliberately
/// lenient about the local part (quoted strings, IMCEA's 315-character locals) and strict
/// about the shape (`local@domain`, `TYPE:value`), because the shape decides the route.
enum RoutingAddress: Sendable, Hashable {
    /// `local@domain`; `domain` is lower-cased, `local` kept as written.
    case smtp(local: String, domain: String)
    /// `TYPE:value`; `type` is upper-cased (`FAX`, `X400`), `value` kept as written.
    case typed(type: String, value: String)

    /// Parses `alice@example.com`, `SMTP:alice@example.com` (the same SMTP address) or `FAX:+1555`.
    /// Returns nil for text that is neither, with the reason in `problem`.
    static func parse(_ text: String) -> RoutingAddress? {
        if case .success(let address) = parseWithReason(text) { return address }
        return nil
    }

    /// Like ``parse(_:)`` but says what is wrong, for diagnostics and directory problems.
    static func parseWithReason(_ text: String) -> Result<RoutingAddress, AddressSyntaxError> {
        guard !text.isEmpty else { return .failure(.init("the address is empty")) }
        // Printable ASCII (almost every address) has no control characters; only other text needs the Unicode tables.
        let printableASCII = text.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F }
        guard printableASCII || !text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            return .failure(.init("'\(text)' contains control characters"))
        }
        // A typed address starts with a type token and a colon. An SMTP local part cannot hold an
        // unquoted colon, so a valid token before the first colon settles it.
        if let colon = text.firstIndex(of: ":") {
            let type = String(text[..<colon])
            let value = String(text[text.index(after: colon)...])
            if isTypeToken(type) {
                if type.uppercased() == "SMTP" { return parseSMTP(value) }
                guard !value.trimmingCharacters(in: .whitespaces).isEmpty else {
                    return .failure(.init("'\(text)' has an empty \(type.uppercased()) address after the colon"))
                }
                return .success(.typed(type: type.uppercased(), value: value))
            }
            if !text.contains("@") {
                return .failure(.init("'\(text)' is neither local@domain nor TYPE:address (the type must be letters and digits)"))
            }
        }
        return parseSMTP(text)
    }

    private static func parseSMTP(_ text: String) -> Result<RoutingAddress, AddressSyntaxError> {
        guard let at = text.lastIndex(of: "@") else {
            return .failure(.init("'\(text)' has no @domain (write local@domain or TYPE:address)"))
        }
        let local = String(text[..<at])
        let domain = String(text[text.index(after: at)...])
        guard !local.isEmpty else { return .failure(.init("'\(text)' has an empty local part before @")) }
        if let problem = localPartProblem(local) { return .failure(.init("'\(text)': \(problem)")) }
        if let problem = domainProblem(domain) { return .failure(.init("'\(text)': \(problem)")) }
        return .success(.smtp(local: local, domain: domain.lowercased()))
    }

    /// Letters, digits, `-` and `_`: `FAX`, `X400`, `MSMAIL`, `EX`, `SMS`.
    static func isTypeToken(_ text: String) -> Bool {
        !text.isEmpty && text.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "-" || $0 == "_") }
    }

    private static func localPartProblem(_ local: String) -> String? {
        if local.hasPrefix("\""), local.hasSuffix("\""), local.count >= 2 { return nil }
        // Letters, digits and the dot-atom specials in ASCII: none of the problems below.
        if local.utf8.allSatisfy({ isAtomTextASCII($0) || $0 == UInt8(ascii: ".") }) { return nil }
        if local.contains(where: { $0.isWhitespace }) { return "the local part contains a space (quote it)" }
        if local.contains(where: { "<>()[],;:\\\"@".contains($0) }) { return "the local part contains a character that must be quoted" }
        return nil
    }

    /// RFC 1035-style check, lenient enough for IDN U-labels and `[address literals]`.
    static func domainProblem(_ domain: String) -> String? {
        guard !domain.isEmpty else { return "the domain after @ is empty" }
        if domain.hasPrefix("["), domain.hasSuffix("]") { return nil }
        guard domain.utf8.count <= 255 else { return "the domain is longer than 255 characters" }
        if isPlainASCIIDomain(domain) { return nil }
        for label in domain.split(separator: ".", omittingEmptySubsequences: false) {
            guard !label.isEmpty else { return "the domain '\(domain)' has an empty label (two dots, or a dot at an end)" }
            guard label.utf8.count <= 63 else { return "the domain label '\(label)' is longer than 63 characters" }
            guard label.unicodeScalars.allSatisfy({ !$0.isASCII || $0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "-" }) else {
                return "the domain '\(domain)' may hold only letters, digits, '-' and '.'"
            }
            guard !label.hasPrefix("-"), !label.hasSuffix("-") else {
                return "the domain label '\(label)' starts or ends with '-'"
            }
        }
        return nil
    }

    /// ASCII labels of 1...63 letters, digits and inner hyphens: what almost every domain is, and
    /// valid without the Unicode tables the full check needs (which names the problem otherwise).
    private static func isPlainASCIIDomain(_ domain: String) -> Bool {
        var labelLength = 0
        var previous = UInt8(ascii: ".")
        for byte in domain.utf8 {
            if byte == UInt8(ascii: ".") {
                guard labelLength > 0, previous != UInt8(ascii: "-") else { return false }
                labelLength = 0
            } else {
                guard isLetterOrDigitASCII(byte) || (byte == UInt8(ascii: "-") && labelLength > 0) else { return false }
                labelLength += 1
                guard labelLength <= 63 else { return false }
            }
            previous = byte
        }
        return labelLength > 0 && previous != UInt8(ascii: "-")
    }

    private static func isLetterOrDigitASCII(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
            || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
    }

    /// RFC 5322 `atext` in ASCII: letters, digits and ``!#$%&'*+-/=?^_`{|}~``.
    private static func isAtomTextASCII(_ byte: UInt8) -> Bool {
        isLetterOrDigitASCII(byte) || "!#$%&'*+-/=?^_`{|}~".utf8.contains(byte)
    }

    /// The key routing compares addresses by: SMTP addresses wholly lower-cased (Exchange matches
    /// proxy addresses case-insensitively), typed addresses by upper-cased type and exact value.
    var key: String {
        switch self {
        case .smtp(let local, let domain): return "\(local.lowercased())@\(domain)"
        case .typed(let type, let value): return "\(type):\(value)"
        }
    }

    /// The domain of an SMTP address (lower-cased), nil for a typed address.
    var domain: String? {
        if case .smtp(_, let domain) = self { return domain }
        return nil
    }

    /// `SMTP` or the typed address's type, upper-cased.
    var type: String {
        switch self {
        case .smtp: return "SMTP"
        case .typed(let type, _): return type
        }
    }

    /// How the address is written on an envelope: `local@domain` or `TYPE:value`.
    var text: String {
        switch self {
        case .smtp(let local, let domain): return "\(local)@\(domain)"
        case .typed(let type, let value): return "\(type):\(value)"
        }
    }
}

/// Why a piece of text is not an address; the message names the text and the fault.
struct AddressSyntaxError: Error, Sendable, Equatable {
    var message: String
    init(_ message: String) { self.message = message }
}
