import Foundation
import PostroomSystem

/// Runs a program on every message, between validate and deliver: the universal stage for
/// spam scoring, virus scanning, DKIM signing, disclaimers and archiving (Exchange's transport
/// agents, Postfix's content filters and milters).
///
/// Contract with the program, shared with the agent connector where it can be:
/// - `command` is argv, run without a shell. `{sender}` (empty for the null sender),
///   `{queueid}` and `{messageid}` are replaced in every argument; an argument containing
///   `{recipient}` is repeated once per envelope recipient (as pipe(8) does with `${recipient}`).
///   A program path with a `/` resolves against the pipeline file's folder; a bare name is
///   looked up in the agent connector's fixed `PATH`.
/// - Standard input is the message as it stands at this stage. The environment is exactly
///   `PATH`, `HOME=/`, `POSTROOM_SENDER`, `POSTROOM_RECIPIENTS` (space-separated),
///   `POSTROOM_QUEUE_ID`, `POSTROOM_MESSAGE_ID`, `POSTROOM_STAGE`, and `POSTROOM_DRY_RUN=1`
///   under `postroom explain` (a program with side effects should skip them then); the working
///   directory is the spool; only descriptors 0, 1 and 2 are open.
/// - `filter`: standard output (at most `maxMessageSize` bytes are kept) replaces the message
///   once ``CommandOutputCheck`` accepts it; standard error (first 4 KB) is for people.
///   `check`: the message is unchanged; output and error are captured together (first 4 KB).
/// - The exit status decides (``CommandVerdict``). A rejection sends one report to the sender
///   with the program's first line and finishes the message. A deferral leaves the claimed file
///   in `queue/incoming/` and resubmits it after a backoff equal to the message's age, bounded
///   by the deliver stage's `retry.first` and `retry.max` (Postfix's rule, so the delays double
///   without any stored state); past `expireAfter` the message is reported with 4.4.7. A
///   program that cannot be found or started defers, with a log line saying so.
/// - `onError: "pass"` turns every deferral and every refused filter output into "pass the
///   message on unchanged" (a spam scorer that is down must not hold mail); a rejection still rejects.
///
/// Nothing is lost across `kill -9`: until the message passes (or is reported) its claimed file
/// stays in `queue/incoming/`, which start-up resubmits; the whole pipeline then runs again on the
/// original file, so a filter never sees its own output twice.
public actor CommandStage: MessageStage {
    private let settings: CommandSettings
    private let context: StageContext
    private let reports: ReportSender
    private let metrics: CommandMetrics
    private let limits: ValidateSettings
    private let retry: DeliverSettings
    private let folder: String
    private var running = 0
    private var waiting: [CheckedContinuation<Void, Never>] = []

    public init(settings: CommandSettings, context: StageContext) throws {
        try context.requireAfterValidate("command")
        self.settings = settings
        self.context = context
        reports = ReportSender(context: context)
        metrics = CommandMetrics(registry: context.telemetry.registry, pipeline: context.pipeline.name, stage: settings.name)
        limits = context.pipeline.settings(ValidateSettings.self) ?? ValidateSettings()
        retry = context.pipeline.settings(DeliverSettings.self) ?? DeliverSettings()
        let base = context.pipeline.folder
        folder = base.hasPrefix("/") ? base : FileManager.default.currentDirectoryPath + "/" + base
    }

    static let kind = StageKind.make("command", summary: "run a program on each message: filter (rewrite) or check (verdict)",
                                     workers: CommandSettings.maxConcurrency, settings: CommandSettings.self) {
        try CommandStage(settings: $0, context: $1)
    }

    /// Where the program is, or why it cannot be run (`postroom check` reports the same).
    func locateProgram() -> Result<String, AgentConnector.ProgramProblem> {
        AgentConnector.locate(settings.command[0], against: folder, role: "command program")
    }

    public func process(_ item: PipelineItem) async throws -> StageResult {
        var item = item
        let (verdict, line) = await run(item)
        switch verdict {
        case .pass(let output):
            if let output {
                // Notes are read by `explain` only: the comparison (two more parses) is not paid in production.
                let change = context.dryRun ? " (" + CommandOutputCheck.headerChanges(from: item.bytes, to: output) + ")" : ""
                item.bytes = output
                item.size = Int64(output.count)
                item.notes.append("command \(settings.name): filtered\(change)" + (line.map { ": \($0)" } ?? ""))
            } else {
                item.notes.append("command \(settings.name): passed" + (line.map { ": \($0)" } ?? ""))
            }
            return .forward(item)
        case .defer(let reason):
            if settings.onError == .pass {
                item.notes.append("command \(settings.name): \(reason); passed unchanged (onError: pass)")
                context.log.warning("\(item.queueID): command stage \(settings.name): \(reason); passed unchanged (onError: pass)")
                return .forward(item)
            }
            return try await deferMessage(item, reason: reason)
        case .reject(let status, let reason):
            return try await reject(item, status: status, reason: reason, note: "rejected \(status) \(reason)")
        }
    }

    /// A verdict after the output check: `pass` carries a filter's accepted output.
    private enum Decision {
        case pass([UInt8]?)
        case `defer`(String)
        case reject(status: String, reason: String)
    }

    /// Runs the program once, records the run (metrics, AGENTINFO) and decides.
    private func run(_ item: PipelineItem) async -> (Decision, String?) {
        let executable: String
        switch locateProgram() {
        case .success(let path):
            executable = path
        case .failure(let problem):
            context.log.warning("\(item.queueID): command stage \(settings.name): \(problem.reason); the message waits until it is installed")
            return record(item, result: .unavailable, decision: .defer(problem.reason), line: nil)
        }
        await acquire()
        let outcome = await Subprocess.run(request(for: item, executable: executable))
        release()
        let ran: SubprocessOutcome
        switch outcome {
        case .success(let value): ran = value
        case .failure(let error):
            let reason = "cannot start \(executable): \(error)"
            context.log.warning("\(item.queueID): command stage \(settings.name): \(reason)")
            return record(item, result: .unavailable, decision: .defer(reason), line: nil)
        }
        let line = CommandVerdict.firstLine(of: ran, mode: settings.mode)
        let (verdict, result) = CommandVerdict.classify(ran.termination, line: line, program: settings.name, timeout: settings.timeout.seconds)
        switch verdict {
        case .defer(let reason): return record(item, result: result, decision: .defer(reason), line: line)
        case .reject(let status, let reason): return record(item, result: result, decision: .reject(status: status, reason: reason), line: line)
        case .pass where settings.mode == .check: return record(item, result: result, decision: .pass(nil), line: line)
        case .pass:
            switch CommandOutputCheck.check(output: ran.output, overflowed: ran.outputOverflowed, input: item.bytes, messageID: item.messageID,
                                            maxMessageSize: limits.maxMessageSize.bytes, maxHeaderSize: Int(limits.maxHeaderSize.bytes)) {
            case .success(let output): return record(item, result: .pass, decision: .pass(output), line: line)
            case .failure(let refusal):
                let reason = "\(settings.name) exited 0 but \(refusal)"
                context.log.warning("\(item.queueID): command stage \(settings.name): \(reason)")
                return record(item, result: .invalidOutput, decision: .defer(reason), line: line)
            }
        }
    }

    private func record(_ item: PipelineItem, result: CommandMetrics.Result, decision: Decision, line: String?) -> (Decision, String?) {
        guard !context.dryRun else { return (decision, line) }
        metrics.exits(result).increment()
        let status: String? = switch decision {
        case .pass: nil
        case .defer(let reason): AgentConnector.enhancedStatusCode(at: reason)
        case .reject(let status, _): status
        }
        context.telemetry.track(TrackingEvent(event: .agentInfo, source: .agent, queueID: item.queueID, messageID: item.messageID,
                                              sender: item.envelope.sender, recipients: item.envelope.recipients.map(\.address),
                                              status: status, reason: "\(settings.name): \(result.rawValue)" + (line.map { ": \($0)" } ?? ""),
                                              size: Int(item.size)))
        return (decision, line)
    }

    private func request(for item: PipelineItem, executable: String) -> SubprocessRequest {
        let recipients = item.envelope.recipients.map(\.address)
        let values = ["sender": item.envelope.sender, "queueid": item.queueID, "messageid": item.messageID]
        var arguments = [settings.command[0]]
        for argument in settings.command.dropFirst() {
            if argument.contains("{recipient}") {
                arguments += recipients.map { AgentConnector.substitute(argument, values.merging(["recipient": $0]) { $1 }) }
            } else {
                arguments.append(AgentConnector.substitute(argument, values))
            }
        }
        var environment = [
            "PATH=" + AgentConnector.searchPath,
            "HOME=/",
            "POSTROOM_SENDER=" + item.envelope.sender,
            "POSTROOM_RECIPIENTS=" + recipients.joined(separator: " "),
            "POSTROOM_QUEUE_ID=" + item.queueID,
            "POSTROOM_MESSAGE_ID=" + item.messageID,
            "POSTROOM_STAGE=" + settings.name,
        ]
        if context.dryRun { environment.append("POSTROOM_DRY_RUN=1") }
        let spool = context.spool.hasPrefix("/") ? context.spool : FileManager.default.currentDirectoryPath + "/" + context.spool
        var request = SubprocessRequest(executable: executable, arguments: arguments, environment: environment,
                                        workingDirectory: context.dryRun && !FileSystem.exists(spool) ? nil : spool,
                                        input: item.bytes, timeLimit: settings.timeout.seconds)
        if settings.mode == .filter {
            request.separateErrorOutput = true
            // One byte more than the largest message, so "too large" is seen, not cut silently.
            request.outputLimit = Int(limits.maxMessageSize.bytes) + 1
        }
        return request
    }

    /// For `postroom check`: each command stage whose program cannot be found or run, as
    /// (key path, problem). The daemon itself defers instead, so mail waits for the fix.
    static func programProblems(in pipeline: PipelineFile) -> [(keyPath: String, problem: String)] {
        let base = pipeline.folder
        let folder = base.hasPrefix("/") ? base : FileManager.default.currentDirectoryPath + "/" + base
        return pipeline.stages.enumerated().compactMap { index, stage in
            guard let settings = stage.settings as? CommandSettings,
                  case .failure(let problem) = AgentConnector.locate(settings.command[0], against: folder, role: "command program")
            else { return nil }
            return ("stages[\(index)].command[0]", problem.reason + " (messages would wait in the queue until it is installed)")
        }
    }

    // MARK: Deferral and rejection

    /// Leaves the claimed file queued and resubmits it after the backoff, or reports it when it
    /// has waited longer than `expireAfter`.
    private func deferMessage(_ item: PipelineItem, reason: String) async throws -> StageResult {
        var item = item
        let age = Self.age(ofQueueID: item.queueID, now: Date())
        if age >= retry.expireAfter.seconds {
            let text = "message expired after \(AgentConnector.formatSeconds(retry.expireAfter.seconds))s in command stage \(settings.name): \(reason)"
            return try await reject(item, status: "4.4.7", reason: text, note: "expired: \(reason)")
        }
        let delay = Self.backoff(age: age, first: retry.retryFirst.seconds, max: retry.retryMax.seconds)
        item.notes.append("command \(settings.name): deferred: \(reason); would retry in \(AgentConnector.formatSeconds(delay.rounded()))s")
        guard !context.dryRun else { return .finished(.deferred) }
        context.log.notice("\(item.queueID): command stage \(settings.name) deferred: \(reason); retry in \(AgentConnector.formatSeconds(delay.rounded()))s, queued in \(item.claimed.path)")
        context.telemetry.track(TrackingEvent(event: .defer, source: .agent, queueID: item.queueID, messageID: item.messageID,
                                              sender: item.envelope.sender, recipients: item.envelope.recipients.map(\.address),
                                              status: AgentConnector.enhancedStatusCode(at: reason) ?? "4.0.0",
                                              reason: "\(settings.name): \(reason)", size: Int(item.size)))
        let claimed = item.claimed
        let resubmit = context.resubmit
        Task {
            try? await Task.sleep(for: .seconds(delay))
            resubmit(claimed)
        }
        return .finished(.deferred)
    }

    /// Reports every recipient not already failed with `status`, together with those already
    /// failed, then forgets the claimed file (as a `filter` rule's reject does).
    private func reject(_ item: PipelineItem, status: String, reason: String, note: String) async throws -> StageResult {
        var item = item
        let alreadyFailed = Set(item.failures.map(\.address))
        item.failures += item.envelope.recipients.filter { !alreadyFailed.contains($0.address) }.map {
            FailedRecipient(address: $0.address, status: status, diagnostic: reason)
        }
        item.resolved = []
        item.hops = []
        item.notes.append("command \(settings.name): \(note)" + (item.envelope.hasNullSender ? " (no report: null sender)" : ""))
        guard !context.dryRun else { return .finished(.reported) }
        context.log.notice("\(item.queueID) from \(item.envelope.hasNullSender ? "<>" : item.envelope.sender): command stage \(settings.name) rejected it: \(status) \(reason)")
        context.telemetry.track(TrackingEvent(event: .fail, source: .agent, queueID: item.queueID, messageID: item.messageID,
                                              sender: item.envelope.sender, recipients: item.envelope.recipients.map(\.address),
                                              status: status, reason: "\(settings.name): \(reason)", size: Int(item.size)))
        try await reports.send(about: item.envelope, message: DeliveryService.headerBlock(of: item.bytes),
                               messageID: item.messageID, failed: item.failures,
                               cause: ReportCause(queueID: item.queueID, event: "command \(settings.name)"))
        try await context.queue.release(item.claimed)
        return .finished(.reported)
    }

    /// Seconds since the message was claimed: a queue id is its claim time in microseconds, so
    /// the age survives restarts without state of its own. 0 for ids that are not (explain).
    static func age(ofQueueID queueID: String, now: Date) -> Double {
        guard let micros = UInt64(queueID, radix: 16) else { return 0 }
        return max(0, now.timeIntervalSince1970 - Double(micros) / 1e6)
    }

    /// The wait before the next try: the message's age, bounded by `first` and `max`.
    static func backoff(age: Double, first: Double, max maximum: Double) -> Double {
        min(max(age, first), Swift.max(first, maximum))
    }

    // MARK: Concurrency

    /// Waits for one of the `concurrency` slots; the runner hands the stage more messages than that.
    private func acquire() async {
        if running < settings.concurrency {
            running += 1
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    /// Hands the slot to the next waiter, or frees it.
    private func release() {
        if waiting.isEmpty {
            running -= 1
        } else {
            waiting.removeFirst().resume()
        }
    }
}
