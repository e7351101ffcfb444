import Foundation

/// An error in a configuration file (pipeline or directory), pointing at the place to fix.
///
/// Its description is one line in the `file:line: key.path: what is wrong` form that
/// editors and `postroom check` users expect.
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int?
    public var keyPath: String
    public var problem: String

    public init(file: String, line: Int? = nil, keyPath: String, problem: String) {
        self.file = file
        self.line = line
        self.keyPath = keyPath
        self.problem = problem
    }

    public var description: String {
        let location = line.map { "\(file):\($0)" } ?? file
        return keyPath.isEmpty ? "\(location): \(problem)" : "\(location): \(keyPath): \(problem)"
    }
}

/// Reads JSON5 configuration files with Foundation's decoder and turns decoding
/// failures into ``ConfigError``s that name the file, the line and the key path.
public enum ConfigFile {
    /// Decodes `T` from the JSON5 file at `path`.
    /// `userInfo` reaches every `init(from:)` (the pipeline file passes its ``StageRegistry`` this way).
    public static func decode<T: Decodable>(_ type: T.Type, fromFile path: String,
                                            userInfo: [CodingUserInfoKey: any Sendable] = [:]) throws(ConfigError) -> T {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ConfigError(file: path, keyPath: "", problem: "cannot read the file (\(error.localizedDescription)); check the path")
        }
        return try decode(type, from: data, file: path, userInfo: userInfo)
    }

    /// Decodes `T` from JSON5 text; `file` names it in errors.
    public static func decode<T: Decodable>(_ type: T.Type, from data: Data, file: String,
                                            userInfo: [CodingUserInfoKey: any Sendable] = [:]) throws(ConfigError) -> T {
        let decoder = JSONDecoder()
        decoder.allowsJSON5 = true
        decoder.userInfo = userInfo
        do {
            return try decoder.decode(T.self, from: data)
        } catch let error as DecodingError {
            throw configError(from: error, data: data, file: file)
        } catch let error as ConfigError {
            throw error
        } catch {
            throw ConfigError(file: file, keyPath: "", problem: "\(error)")
        }
    }

    static func configError(from error: DecodingError, data: Data, file: String) -> ConfigError {
        let path: [any CodingKey]
        let problem: String
        switch error {
        case .keyNotFound(let key, let context):
            path = context.codingPath + [key]
            problem = "required key is missing"
        case .typeMismatch(let type, let context):
            path = context.codingPath
            problem = "expected \(describe(type))"
        case .valueNotFound(let type, let context):
            path = context.codingPath
            problem = "expected \(describe(type)), found null"
        case .dataCorrupted(let context):
            path = context.codingPath
            problem = syntaxProblem(context)
        @unknown default:
            path = []
            problem = "\(error)"
        }
        let text = String(decoding: data, as: UTF8.self)
        var line = lineOf(keyPath: keyPathString(path), in: text)
        if line == nil, case .dataCorrupted = error, path.isEmpty {
            line = JSON5Lines.stopLine(in: text)
        }
        return ConfigError(file: file, line: line, keyPath: keyPathString(path), problem: problem)
    }

    /// `stages[2].maxRecipients` from a coding path.
    public static func keyPathString(_ path: [any CodingKey]) -> String {
        var result = ""
        for key in path {
            if let index = key.intValue {
                result += "[\(index)]"
            } else {
                result += result.isEmpty ? key.stringValue : ".\(key.stringValue)"
            }
        }
        return result
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Int.Type, is Double.Type: return "a number"
        case is Bool.Type: return "true or false"
        default:
            let name = "\(type)"
            if name.hasPrefix("Array") { return "a list" }
            if name.hasPrefix("Dictionary") { return "an object" }
            return "a value of type \(name)"
        }
    }

    private static func syntaxProblem(_ context: DecodingError.Context) -> String {
        if let underlying = context.underlyingError as NSError?,
           let detail = underlying.userInfo[NSDebugDescriptionErrorKey] as? String {
            return "not valid JSON5: \(detail)"
        }
        return context.codingPath.isEmpty ? "not valid JSON5 (check brackets, commas and quotes near this line)" : context.debugDescription
    }

    /// The line of a key path (`stages[2].maxRecipients`), or of its nearest enclosing key that has one.
    public static func lineOf(keyPath: String, in text: String) -> Int? {
        let lines = JSON5Lines.lines(in: text)
        var candidate = keyPath
        while !candidate.isEmpty {
            if let line = lines[candidate] { return line }
            guard let cut = candidate.lastIndex(where: { $0 == "." || $0 == "[" }) else { break }
            candidate = String(candidate[..<cut])
        }
        return nil
    }
}

/// A key that decodes any key name, used to find keys a type does not know.
public struct AnyCodingKey: CodingKey, Sendable {
    public var stringValue: String
    public var intValue: Int?
    public init(stringValue: String) { self.stringValue = stringValue }
    public init(intValue: Int) { self.stringValue = "\(intValue)"; self.intValue = intValue }
}

extension Decoder {
    /// Throws when the object being decoded has a key that `Keys` does not list:
    /// a misspelt option must be an error, never silently ignored.
    public func rejectUnknownKeys<Keys: CodingKey & CaseIterable>(_ keys: Keys.Type) throws {
        let container = try self.container(keyedBy: AnyCodingKey.self)
        let known = Set(Keys.allCases.map(\.stringValue))
        for key in container.allKeys where !known.contains(key.stringValue) {
            let allowed = Keys.allCases.map(\.stringValue).joined(separator: ", ")
            throw DecodingError.dataCorrupted(.init(
                codingPath: codingPath + [key],
                debugDescription: "unknown key (allowed here: \(allowed))"))
        }
    }
}

/// A byte count written as `"35MB"`, `"64KB"`, `"1GB"` or a plain number of bytes.
public struct ByteSize: Sendable, Hashable, Codable, CustomStringConvertible {
    public var bytes: Int64
    public init(bytes: Int64) { self.bytes = bytes }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let number = try? container.decode(Int64.self) {
            guard number >= 0 else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "a size cannot be negative")
            }
            bytes = number
            return
        }
        let text = try container.decode(String.self)
        guard let parsed = ByteSize(parsing: text) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "'\(text)' is not a size; write e.g. \"64KB\", \"35MB\" or a number of bytes")
        }
        self = parsed
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(bytes)
    }

    /// Parses `"10MB"`, `"64 KB"`, `"512"`; units are binary multiples (KB = 1024 bytes), as Exchange's limits are.
    public init?(parsing text: String) {
        let trimmed = text.trimmingCharacters(in: .whitespaces).uppercased()
        let digits = trimmed.prefix { $0.isNumber || $0 == "." }
        let unit = trimmed.dropFirst(digits.count).trimmingCharacters(in: .whitespaces)
        guard let value = Double(digits), value >= 0 else { return nil }
        let multipliers: [String: Double] = ["": 1, "B": 1, "K": 1024, "KB": 1024, "KIB": 1024,
                                             "M": 1_048_576, "MB": 1_048_576, "MIB": 1_048_576,
                                             "G": 1_073_741_824, "GB": 1_073_741_824, "GIB": 1_073_741_824]
        guard let multiplier = multipliers[unit] else { return nil }
        bytes = Int64(value * multiplier)
    }

    public var description: String {
        if bytes >= 1 << 20, bytes % (1 << 20) == 0 { return "\(bytes >> 20)MB" }
        if bytes >= 1 << 10, bytes % (1 << 10) == 0 { return "\(bytes >> 10)KB" }
        return "\(bytes)B"
    }
}

/// A time span written as `"30s"`, `"5m"`, `"2h"`, `"2d"`, `"250ms"` or a number of seconds.
public struct ConfigDuration: Sendable, Hashable, Codable, CustomStringConvertible {
    public var seconds: Double
    public init(seconds: Double) { self.seconds = seconds }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let number = try? container.decode(Double.self) {
            guard number >= 0 else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "a duration cannot be negative")
            }
            seconds = number
            return
        }
        let text = try container.decode(String.self)
        guard let parsed = ConfigDuration(parsing: text) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "'\(text)' is not a duration; write e.g. \"30s\", \"5m\", \"2h\" or \"2d\"")
        }
        self = parsed
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(seconds)
    }

    public init?(parsing text: String) {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        let digits = trimmed.prefix { $0.isNumber || $0 == "." }
        let unit = trimmed.dropFirst(digits.count).trimmingCharacters(in: .whitespaces)
        guard let value = Double(digits), value >= 0 else { return nil }
        let multipliers: [String: Double] = ["": 1, "ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400]
        guard let multiplier = multipliers[unit] else { return nil }
        seconds = value * multiplier
    }

    public var description: String {
        for (unit, size) in [("d", 86400.0), ("h", 3600), ("m", 60), ("s", 1)] where seconds >= size && seconds.truncatingRemainder(dividingBy: size) == 0 {
            return "\(Int(seconds / size))\(unit)"
        }
        return "\(Int(seconds * 1000))ms"
    }
}
