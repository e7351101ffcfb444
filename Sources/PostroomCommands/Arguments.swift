import Postroom
/// The words of a command line split into positional arguments, flags and options.
///
/// Options take a value (`--spool DIR` or `--spool=DIR`); flags do not. An unknown
/// option is a usage error, reported with the command's help.
public struct Arguments: Sendable, Equatable {
    public var positional: [String] = []
    public var options: [String: String] = [:]
    public var flags: Set<String> = []

    public struct UsageError: Error, Sendable, CustomStringConvertible {
        public let description: String
    }

    public init(_ words: [String], options knownOptions: Set<String>, flags knownFlags: Set<String>) throws(UsageError) {
        var index = 0
        while index < words.count {
            let word = words[index]
            index += 1
            if word == "--" {
                positional += words[index...]
                break
            }
            guard word.hasPrefix("-"), word.count > 1 else {
                positional.append(word)
                continue
            }
            var name = word
            var inlineValue: String?
            if let equals = word.firstIndex(of: "=") {
                name = String(word[..<equals])
                inlineValue = String(word[word.index(after: equals)...])
            }
            if knownFlags.contains(name) {
                guard inlineValue == nil else { throw UsageError(description: "\(name) takes no value") }
                flags.insert(name)
            } else if knownOptions.contains(name) {
                if let inlineValue {
                    options[name] = inlineValue
                } else {
                    guard index < words.count else { throw UsageError(description: "\(name) needs a value") }
                    options[name] = words[index]
                    index += 1
                }
            } else {
                throw UsageError(description: "unknown option \(name)")
            }
        }
    }

    public func has(_ flag: String) -> Bool { flags.contains(flag) }
    public subscript(option: String) -> String? { options[option] }
}
