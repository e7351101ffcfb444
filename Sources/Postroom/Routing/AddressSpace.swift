/// A connector's address space, written `TYPE:space;cost` as in Exchange's `-AddressSpaces`
/// (reference/exchange-transport.md §4, [NFC]).
///
/// Parsing rules:
/// - The type defaults to SMTP: `"SMTP:contoso.com;1"`, `"contoso.com;1"`, `"SMTP:contoso.com"`
///   and `"contoso.com"` are the same space.
/// - The cost is 1–100, default 1. It is read from after the **last** `;`, and only when that
///   part is an integer, so `X400:c=US;a=Fabrikam;p=Contoso;5` has cost 5. A non-SMTP space that
///   contains `;` must therefore state the cost (`X400:c=US;a=Fabrikam;p=Contoso` is an error:
///   `p=Contoso` is not a cost), exactly as Exchange requires.
/// - SMTP spaces are `*`, `*.domain` or `domain` (RFC 1035 labels); `*contoso.com` is refused.
///   They are stored lower-cased.
/// - Other types accept any text, with `*` as a wildcard (`FAX:*`, `FAX:+1555*`).
///
/// Two spaces are equal when type, space and cost are; types and SMTP spaces compare
/// case-insensitively (they are normalised when parsed).
public struct AddressSpace: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The address type, upper-cased: `SMTP`, `FAX`, `X400`, …
    public let type: String
    /// The space: `contoso.com`, `*.contoso.com`, `*`, `c=US;a=Fabrikam;p=Contoso`, `+1555*`.
    public let space: String
    /// The address-space cost, 1–100; lower is preferred among equally specific matches.
    public let cost: Int

    /// The accepted cost range.
    public static let costRange = 1...100

    /// Parses `TYPE:space;cost`; see the type's rules. The error says what is wrong and how to write it.
    public init(parsing text: String) throws(AddressSpaceError) {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty else { throw AddressSpaceError(text, "the address space is empty; write e.g. \"SMTP:contoso.com;1\" or \"FAX:*\"") }

        var type = "SMTP"
        var rest = Substring(trimmed)
        if let colon = trimmed.firstIndex(of: ":") {
            let prefix = String(trimmed[..<colon])
            guard RoutingAddress.isTypeToken(prefix) else {
                throw AddressSpaceError(text, prefix.isEmpty
                    ? "the type before ':' is empty; write e.g. \"FAX:*\" or leave out \"TYPE:\" for SMTP"
                    : "the type '\(prefix)' may hold only letters, digits, '-' and '_'")
            }
            type = prefix.uppercased()
            rest = trimmed[trimmed.index(after: colon)...]
        }

        var space = String(rest)
        var cost = 1
        if let semicolon = rest.lastIndex(of: ";") {
            let costText = rest[rest.index(after: semicolon)...].trimmingCharacters(in: .whitespaces)
            let digits = costText.first == "-" || costText.first == "+" ? costText.dropFirst() : Substring(costText)
            let isInteger = !digits.isEmpty && digits.allSatisfy(\.isASCIIDigit)
            if isInteger {
                guard let value = Int(costText), Self.costRange.contains(value) else {
                    throw AddressSpaceError(text, "the cost \(costText) is out of range; it must be 1 to 100")
                }
                cost = value
                space = String(rest[..<semicolon])
            } else if type == "SMTP" {
                throw AddressSpaceError(text, "'\(costText)' is not a cost; write SPACE;COST with a cost of 1 to 100, e.g. \"contoso.com;10\"")
            } else {
                throw AddressSpaceError(text, "a \(type) space containing ';' must end with ';COST' (1 to 100), e.g. \"\(type):\(rest);1\"")
            }
        }
        space = space.trimmingCharacters(in: .whitespaces)
        guard !space.isEmpty else { throw AddressSpaceError(text, "the \(type) space is empty; write \"*\" to match every \(type) address") }

        if type == "SMTP" {
            space = space.lowercased()
            if let problem = Self.smtpSpaceProblem(space) { throw AddressSpaceError(text, problem) }
        }
        self.type = type
        self.space = space
        self.cost = cost
    }

    /// Decodes the `TYPE:space;cost` text form, so a pipeline file's `addressSpaces: ["FAX:*;1"]`
    /// decodes straight to `[AddressSpace]` and a bad entry is reported at its key path and line.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        do {
            self = try AddressSpace(parsing: text)
        } catch {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: error.description)
        }
    }

    /// Encodes the canonical text form (``description``).
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }

    /// Builds a space from parts already known to be valid (e.g. a maildir connector's local domain).
    init(validatedType type: String, space: String, cost: Int) {
        self.type = type.uppercased()
        self.space = type.uppercased() == "SMTP" ? space.lowercased() : space
        self.cost = cost
    }

    private static func smtpSpaceProblem(_ space: String) -> String? {
        if space == "*" { return nil }
        var domain = Substring(space)
        if space.hasPrefix("*.") { domain = space.dropFirst(2) }
        if domain.contains("*") {
            return "'\(space)' is not a valid SMTP space: '*' may only stand alone or start '*.domain' (e.g. \"*.contoso.com\", not \"*contoso.com\")"
        }
        if let problem = RoutingAddress.domainProblem(String(domain)) {
            return "'\(space)' is not a valid SMTP space: \(problem)"
        }
        if domain.hasPrefix("[") { return "'\(space)' is not a valid SMTP space: address literals cannot be address spaces" }
        return nil
    }

    /// How specifically a space matched an address. Greater is more specific; compare only
    /// matches for the same address.
    ///
    /// An exact space (no `*`) beats any wildcard. Among wildcards, a longer literal part wins:
    /// for SMTP that is the number of domain labels after `*.` (`*.sub.contoso.com` (3) >
    /// `*.contoso.com` (2) > `*` (0)); for other types the number of characters before the first `*`.
    public struct Match: Sendable, Hashable, Codable, Comparable, CustomStringConvertible {
        /// True when the space has no wildcard.
        public var isExact: Bool
        /// Labels (SMTP) or characters (other types) the space fixes.
        public var literalLength: Int

        public init(isExact: Bool, literalLength: Int) {
            self.isExact = isExact
            self.literalLength = literalLength
        }

        public static func < (lhs: Match, rhs: Match) -> Bool {
            (lhs.isExact ? 1 : 0, lhs.literalLength) < (rhs.isExact ? 1 : 0, rhs.literalLength)
        }

        public var description: String { isExact ? "exact" : "wildcard(\(literalLength))" }
    }

    /// Whether `address` (`local@domain`, `SMTP:local@domain` or `TYPE:value`) falls in this space,
    /// and how specifically. Types compare case-insensitively; so do SMTP domains and (as
    /// X.400 and most gateways treat them) other types' values.
    ///
    /// `*.contoso.com` matches `contoso.com` itself as well as its subdomains (Exchange's
    /// "include subdomains"); an exact `contoso.com` space is still more specific.
    public func matches(_ address: String) -> Match? {
        guard let parsed = RoutingAddress.parse(address), parsed.type == type else { return nil }
        switch parsed {
        case .smtp(_, let domain):
            if space == "*" { return Match(isExact: false, literalLength: 0) }
            if space.hasPrefix("*.") {
                let suffix = space.dropFirst(2)
                guard domain == suffix || domain.hasSuffix("." + suffix) else { return nil }
                return Match(isExact: false, literalLength: suffix.split(separator: ".").count)
            }
            guard domain == space else { return nil }
            return Match(isExact: true, literalLength: space.split(separator: ".").count)
        case .typed(_, let value):
            guard Self.glob(space.lowercased(), matches: value.lowercased()) else { return nil }
            guard let star = space.firstIndex(of: "*") else { return Match(isExact: true, literalLength: space.count) }
            return Match(isExact: false, literalLength: space.distance(from: space.startIndex, to: star))
        }
    }

    /// `*` matches any run of characters (including none); everything else matches itself.
    static func glob(_ pattern: String, matches text: String) -> Bool {
        let p = Array(pattern), t = Array(text)
        var pi = 0, ti = 0
        var starP = -1, starT = 0
        while ti < t.count {
            if pi < p.count, p[pi] != "*", p[pi] == t[ti] {
                pi += 1; ti += 1
            } else if pi < p.count, p[pi] == "*" {
                starP = pi; starT = ti; pi += 1
            } else if starP >= 0 {
                pi = starP + 1; starT += 1; ti = starT
            } else {
                return false
            }
        }
        while pi < p.count, p[pi] == "*" { pi += 1 }
        return pi == p.count
    }

    /// `TYPE:space;cost`, always with the type and cost, so it parses back to an equal value.
    public var description: String { "\(type):\(space);\(cost)" }
}

/// Why a piece of text is not an address space. Its description names the text and the fault.
public struct AddressSpaceError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The text as given.
    public var text: String
    /// What is wrong and how to write it.
    public var problem: String

    public init(_ text: String, _ problem: String) {
        self.text = text
        self.problem = problem
    }

    public var description: String { "address space \"\(text)\": \(problem)" }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}
