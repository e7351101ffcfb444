import Foundation

/// Settings of a `command` stage: which program runs on every message, how, and what an
/// error of the program means for the mail.
public struct CommandSettings: StageSettings, Decodable {
    /// What the program does with the message.
    public enum Mode: String, Sendable, CaseIterable {
        /// The message goes to standard input and standard output replaces it (a content
        /// filter: spam scoring, DKIM signing, a disclaimer). The envelope is unchanged.
        case filter
        /// The message goes to standard input and stays as it was; the exit status decides.
        case check
    }

    /// What happens when the program cannot give a verdict (deferral, time-out, signal, not
    /// installed, unusable filter output).
    public enum ErrorPolicy: String, Sendable, CaseIterable {
        /// The message stays queued and the stage is retried with backoff (a milter's tempfail).
        case `defer`
        /// The message goes on unchanged: for filters that must never hold mail.
        case pass
    }

    /// The most runs of one stage's program at once (also the workers the runner gives the kind).
    public static let maxConcurrency = 32
    public static let defaultConcurrency = 4

    /// The stage's name in logs, metrics (`stage` label of `postroom_command_exits_total`) and
    /// the tracking log; defaults to the program's file name.
    public var name: String
    /// argv, run without a shell; placeholders as the agent connector's (see ``CommandStage``).
    public var command: [String]
    public var mode: Mode
    public var timeout = ConfigDuration(seconds: AgentConnector.defaultTimeout)
    /// Messages through the program at once.
    public var concurrency = defaultConcurrency
    public var onError = ErrorPolicy.defer

    enum CodingKeys: String, CodingKey, CaseIterable { case stage, name, command, mode, timeout, concurrency, onError }

    public init(name: String? = nil, command: [String], mode: Mode, timeout: Double = AgentConnector.defaultTimeout,
                concurrency: Int = defaultConcurrency, onError: ErrorPolicy = .defer) {
        self.command = command
        self.mode = mode
        self.name = name ?? Self.defaultName(command)
        self.timeout = ConfigDuration(seconds: timeout)
        self.concurrency = concurrency
        self.onError = onError
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        command = try container.decode([String].self, forKey: .command)
        guard let program = command.first, !program.isEmpty else {
            throw DecodingError.dataCorruptedError(forKey: .command, in: container,
                                                   debugDescription: "command is the program and its arguments, e.g. [\"/usr/bin/spamc\", \"-x\"]; it cannot be empty")
        }
        guard !command.contains(where: { $0.contains("\0") }) else {
            throw DecodingError.dataCorruptedError(forKey: .command, in: container, debugDescription: "an argument cannot contain a NUL character")
        }
        let modeName = try container.decode(String.self, forKey: .mode)
        guard let mode = Mode(rawValue: modeName) else {
            throw DecodingError.dataCorruptedError(forKey: .mode, in: container, debugDescription: "unknown mode '\(modeName)' (known: filter, check)")
        }
        self.mode = mode
        let name = try container.decodeIfPresent(String.self, forKey: .name) ?? Self.defaultName(command)
        guard !name.isEmpty, name.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value != 0x7F && $0 != "\"" && $0 != "\\" }) else {
            throw DecodingError.dataCorruptedError(forKey: .name, in: container,
                                                   debugDescription: "a stage name is one word of printable characters (no spaces, quotes or backslashes)")
        }
        self.name = name
        timeout = try container.decodeIfPresent(ConfigDuration.self, forKey: .timeout) ?? timeout
        guard timeout.seconds > 0 else {
            throw DecodingError.dataCorruptedError(forKey: .timeout, in: container, debugDescription: "the time limit must be more than 0")
        }
        concurrency = try container.decodeIfPresent(Int.self, forKey: .concurrency) ?? concurrency
        guard (1...Self.maxConcurrency).contains(concurrency) else {
            throw DecodingError.dataCorruptedError(forKey: .concurrency, in: container, debugDescription: "must be from 1 to \(Self.maxConcurrency)")
        }
        if let policy = try container.decodeIfPresent(String.self, forKey: .onError) {
            guard let value = ErrorPolicy(rawValue: policy) else {
                throw DecodingError.dataCorruptedError(forKey: .onError, in: container, debugDescription: "unknown onError '\(policy)' (known: defer, pass)")
            }
            onError = value
        }
    }

    static func defaultName(_ command: [String]) -> String {
        let last = (command.first ?? "command").split(separator: "/").last.map(String.init) ?? "command"
        return last.isEmpty ? "command" : last
    }
}
