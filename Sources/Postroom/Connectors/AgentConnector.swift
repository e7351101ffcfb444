import Foundation
import PostroomSystem

/// Delivers by running a command once per recipient with the message on standard input
/// (a delivery agent, as Postfix's pipe(8)).
///
/// Contract with the command:
/// - `command` is an argv array run without a shell. In every argument `{recipient}`,
///   `{sender}` (empty for the null sender), `{queueid}` (the queue entry id) and
///   `{messageid}` are replaced by their values, in one pass (a value is never expanded again).
/// - A program name with a `/` resolves against the pipeline file's folder when relative;
///   a bare name is looked up in ``searchPath``.
/// - Standard input is the message exactly as queued (Postroom's header hygiene applied,
///   line endings as received). No `Return-Path:` is prepended: the envelope reaches the
///   command as `{sender}` / `POSTROOM_SENDER`, and a command that re-injects mail would
///   otherwise carry a stale one (pipe(8) without its `R` flag does the same).
/// - The environment is exactly `PATH` (``searchPath``), `HOME=/`, `POSTROOM_SENDER`,
///   `POSTROOM_RECIPIENT` and `POSTROOM_QUEUE_ID`; the working directory is the spool.
/// - The exit status decides, as pipe(8) and `<sysexits.h>`: 0 delivered; 75 (EX_TEMPFAIL)
///   and 71 (EX_OSERR) deferred; any other status failed with 5.3.0. When the command exits
///   non-zero and the first line of its output starts with an RFC 3463 code, that code wins:
///   `4.x.x` defers, `5.x.x` fails with that code. Killed by a signal: deferred.
/// - A run longer than `timeout` (default 60 s) has its process group killed (SIGTERM, then
///   SIGKILL) and is deferred. A missing or non-executable program defers, so the operator
///   can fix it without losing mail.
///
/// Delivery is at least once: a crash after the command succeeded but before the queue was
/// updated runs it again. `POSTROOM_QUEUE_ID` plus the recipient identify a delivery, so
/// a command that must not repeat itself can deduplicate on them.
public struct AgentConnector: Connector {
    public let configuration: ConnectorConfiguration
    /// The working directory of the command (absolute).
    public let spool: String
    /// The folder of the pipeline file (absolute), against which a relative program path resolves.
    public let configurationFolder: String

    /// `PATH` for the command and for finding a bare program name: fixed, so a delivery does
    /// not depend on the environment the daemon happened to be started from.
    public static let searchPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    /// The time limit when the connector sets none.
    public static let defaultTimeout = 60.0

    public init(configuration: ConnectorConfiguration, spool: String = ".", configurationFolder: String = ".") {
        self.configuration = configuration
        self.spool = absolutePath(spool)
        self.configurationFolder = absolutePath(configurationFolder)
    }

    public var timeout: Double { configuration.timeout?.seconds ?? Self.defaultTimeout }

    public func deliver(_ entry: QueueEntry, message: [UInt8]) async -> [DeliveryResult] {
        // One recipient after the other: the connector's `concurrency` bounds entries in
        // flight, so running recipients in parallel too would exceed it.
        var results: [DeliveryResult] = []
        for recipient in entry.envelope.recipients {
            results.append(await deliver(entry, to: recipient.address, message: message))
        }
        return results
    }

    /// One run of the command for one recipient.
    func deliver(_ entry: QueueEntry, to recipient: String, message: [UInt8]) async -> DeliveryResult {
        let command = configuration.command ?? []
        guard let program = command.first else { return .deferred("agent connector \(name) has no command") }
        let executable: String
        switch locate(program) {
        case .success(let path): executable = path
        case .failure(let problem): return .deferred(problem.reason)
        }
        let values = ["recipient": recipient, "sender": entry.envelope.sender, "queueid": entry.id, "messageid": entry.messageID]
        let request = SubprocessRequest(
            executable: executable,
            arguments: [program] + command.dropFirst().map { Self.substitute($0, values) },
            environment: [
                "PATH=" + Self.searchPath,
                "HOME=/",
                "POSTROOM_SENDER=" + entry.envelope.sender,
                "POSTROOM_RECIPIENT=" + recipient,
                "POSTROOM_QUEUE_ID=" + entry.id,
            ],
            workingDirectory: spool,
            input: message,
            timeLimit: timeout)
        switch await Subprocess.run(request) {
        case .success(let outcome):
            return Self.result(of: outcome, timeout: timeout)
        case .failure(let error):
            return .deferred("cannot start agent \(executable): \(error.reason)")
        }
    }

    // MARK: Decisions (pure, so tests can pin them down)

    /// Replaces `{name}` placeholders in one pass; unknown names stay as written.
    static func substitute(_ argument: String, _ values: [String: String]) -> String {
        var result = ""
        var rest = argument[...]
        while let open = rest.firstIndex(of: "{") {
            result += rest[..<open]
            let afterOpen = rest.index(after: open)
            if let close = rest[afterOpen...].firstIndex(of: "}"), let value = values[String(rest[afterOpen..<close])] {
                result += value
                rest = rest[rest.index(after: close)...]
            } else {
                result += "{"
                rest = rest[afterOpen...]
            }
        }
        return result + rest
    }

    /// What an outcome means for the recipient (pipe(8) and sysexits semantics).
    static func result(of outcome: SubprocessOutcome, timeout: Double) -> DeliveryResult {
        let line = firstLine(of: outcome.output)
        switch outcome.termination {
        case .timedOut:
            // What it printed before it was stopped is usually why it hung (Postfix's sendmail
            // retrying a postdrop that NoNewPrivileges keeps from its setgid, say).
            let said = outputSummary(outcome.output)
            return .deferred("agent timed out after \(formatSeconds(timeout))s" + (said.map { "; its output: " + $0 } ?? " without output"))
        case .statusLost:
            return .deferred("the agent's exit status was lost; it is run again")
        case .signalled(let signal):
            return .deferred("agent killed by signal \(signal)" + (line.map { ": " + $0 } ?? ""))
        case .exited(0):
            return .delivered
        case .exited(let status):
            if let line, let code = enhancedStatusCode(at: line) {
                return code.hasPrefix("4") ? .deferred(line) : .failed(status: code, diagnostic: line)
            }
            if status == EX_TEMPFAIL || status == EX_OSERR {
                return .deferred(line ?? "exit \(status)")
            }
            return .failed(status: "5.3.0", diagnostic: line ?? "agent exited with status \(status)")
        }
    }

    /// `<sysexits.h>` values that mean "try again later".
    static let EX_TEMPFAIL: Int32 = 75
    static let EX_OSERR: Int32 = 71

    /// The first non-empty line of the output, trimmed, with control characters replaced
    /// (it goes into log lines, the tracking log and reports).
    static func firstLine(of output: [UInt8]) -> String? {
        let text = String(decoding: output, as: UTF8.self)
        guard let line = text.split(whereSeparator: \.isNewline).lazy
            .map({ $0.trimmingCharacters(in: .whitespaces) }).first(where: { !$0.isEmpty }) else { return nil }
        let cleaned = String(line.unicodeScalars.map { $0.properties.generalCategory == .control ? " " : Character($0) })
        return String(cleaned.prefix(512))
    }

    /// The whole captured output on one line (lines joined with " | ", control characters
    /// replaced, at most 512 characters), or nil when there was none.
    static func outputSummary(_ output: [UInt8]) -> String? {
        let lines = String(decoding: output, as: UTF8.self).split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !lines.isEmpty else { return nil }
        let joined = lines.joined(separator: " | ")
        let cleaned = String(joined.unicodeScalars.map { $0.properties.generalCategory == .control ? " " : Character($0) })
        return cleaned.count > 512 ? String(cleaned.prefix(512)) + "…" : cleaned
    }

    /// The RFC 3463 code (`4.2.2`, `5.1.1`) a line starts with, if any: class 4 or 5, then
    /// subject and detail of 1 to 3 digits, then the end or a space.
    static func enhancedStatusCode(at line: String) -> String? {
        let token = line.prefix { !$0.isWhitespace }
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "4" || parts[0] == "5",
              parts.dropFirst().allSatisfy({ (1...3).contains($0.count) && $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) })
        else { return nil }
        return String(token)
    }

    static func formatSeconds(_ seconds: Double) -> String {
        seconds.rounded() == seconds ? String(Int(seconds)) : String(format: "%.1f", seconds)
    }

    // MARK: Finding the program

    struct ProgramProblem: Error {
        let reason: String
    }

    /// The executable file for `program`, or why there is none (a deferral reason for the operator).
    func locate(_ program: String) -> Result<String, ProgramProblem> {
        Self.locate(program, against: configurationFolder, role: "agent program")
    }

    /// The executable file for `program` (a path with a `/` relative to `folder`, or a bare name
    /// in ``searchPath``), or why there is none; shared with the `command` stage.
    static func locate(_ program: String, against folder: String, role: String) -> Result<String, ProgramProblem> {
        if program.contains("/") {
            let path = resolvePath(program, against: folder)
            if let problem = Self.executableProblem(path) { return .failure(ProgramProblem(reason: "\(role) \(path) \(problem)")) }
            return .success(path)
        }
        for directory in Self.searchPath.split(separator: ":") {
            let path = directory + "/" + program
            if Self.executableProblem(path) == nil { return .success(path) }
        }
        return .failure(ProgramProblem(reason: "\(role) \(program) is not in PATH (\(Self.searchPath)); give an absolute path"))
    }

    /// Why `path` cannot be run, or nil when it is an executable regular file.
    static func executableProblem(_ path: String) -> String? {
        guard let status = FileSystem.status(of: path, followLinks: true) else { return "does not exist" }
        guard status.kind == .regular else { return "is not a regular file" }
        guard FileSystem.isExecutable(path) else { return "is not executable" }
        return nil
    }
}

/// `path` made absolute against the current directory (the child changes directory, so a
/// relative path would be resolved against the wrong folder).
private func absolutePath(_ path: String) -> String {
    if path.hasPrefix("/") { return path }
    let current = FileManager.default.currentDirectoryPath
    return path == "." ? current : current + "/" + path
}
