/// A case-insensitive glob over text, for `filter` rule conditions (`*@spam.example`, `*urgent*`).
///
/// `*` matches any run of characters (none included) and `?` exactly one character; every
/// other character matches itself, ignoring case. The whole text must match (not a part of
/// it), so `*@spam.example` does not match `a@spam.example.org`. There is no escape and no
/// character class: addresses and header values do not need them, and a small language is
/// one an operator can read at a glance.
///
/// Matching takes at most `O(pattern × text)` steps, never exponential time, whatever the
/// pattern: a hostile message cannot make a rule slow.
public struct GlobPattern: Sendable, Hashable, CustomStringConvertible {
    /// The pattern as written in the pipeline file.
    public let text: String
    private let characters: [Character]

    public init(_ text: String) {
        self.text = text
        characters = Array(text.lowercased())
    }

    public var description: String { text }

    /// True when `candidate` as a whole matches the pattern, ignoring case.
    public func matches(_ candidate: String) -> Bool {
        let subject = Array(candidate.lowercased())
        var p = 0
        var s = 0
        // The last `*` seen and the text position it currently stands for: on a mismatch the
        // star swallows one more character and matching resumes after it. Only the last star
        // needs remembering, because an earlier star can never do better than a later one.
        var star: Int?
        var starSubject = 0
        while s < subject.count {
            if p < characters.count, characters[p] == "?" || characters[p] == subject[s] {
                p += 1
                s += 1
            } else if p < characters.count, characters[p] == "*" {
                star = p
                starSubject = s
                p += 1
            } else if let star {
                p = star + 1
                starSubject += 1
                s = starSubject
            } else {
                return false
            }
        }
        while p < characters.count, characters[p] == "*" { p += 1 }
        return p == characters.count
    }
}

extension GlobPattern: Decodable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard !text.isEmpty else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "an empty pattern matches only empty text; write \"*\" to match anything")
        }
        self.init(text)
    }
}

/// Checks shared by the stage kinds that work on the validated message.
extension StageContext {
    /// Throws unless every stage of `kind` comes after a `validate` stage: before it, the bytes
    /// are the producer's raw file (Replay envelope lines included) and the envelope is unknown.
    func requireAfterValidate(_ kind: String) throws(ConfigError) {
        let validate = pipeline.stages.firstIndex { $0.kind == "validate" }
        for (index, stage) in pipeline.stages.enumerated() where stage.kind == kind {
            if let validate, validate < index { continue }
            throw ConfigError(file: pipeline.path, keyPath: "stages[\(index)].stage",
                              problem: "\(kind) works on the validated message, so it must come after a validate stage")
        }
    }
}

/// RFC 5322 field-name rules, shared by the `headers` and `filter` stages.
enum FieldName {
    /// A field name is one or more printable US-ASCII characters other than `:` (RFC 5322 §3.6.8).
    static func isValid(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy { $0 >= 33 && $0 <= 126 && $0 != UInt8(ascii: ":") }
    }

    static let rule = "a header field name is printable ASCII without spaces or ':' (RFC 5322 §3.6.8)"
}
