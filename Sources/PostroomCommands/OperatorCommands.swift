import Foundation
import Postroom
import PostroomSystem

/// `postroom stats`, `postroom trace` and `postroom explain`.
public enum OperatorCommands {
    public static func stats(_ words: [String]) async -> ExitCode {
        let help = """
        usage: postroom stats [--spool DIR] [--file METRICS] [--watch]

        Stage-level metrics as a table: per stage in, out, failed, in flight, p50/p99 latency;
        per connector queued, deferred, held, delivered, failed. Reads <spool>/metrics.prom
        (written by the running daemon); --watch refreshes it in place every 2 s.
        """
        guard let arguments = CommandLineInterface.parse(words, options: ["--spool", "--file"], flags: ["--watch"], help: help) else {
            return CommandLineInterface.helpOrUsage(words)
        }
        let path: String
        if let file = arguments["--file"] {
            path = file
        } else {
            guard let spool = SpoolLocation.resolveOrReport(arguments["--spool"], command: "stats") else { return .userError }
            path = spool + "/metrics.prom"
        }
        repeat {
            guard let bytes = try? FileSystem.readFile(path) else {
                printError("postroom stats: cannot read \(path); is the daemon running with metrics.file set? (--spool, --file)")
                return .userError
            }
            let table = StatsTable.render(exposition: String(decoding: bytes, as: UTF8.self))
            if arguments.has("--watch") {
                print("\u{1B}[H\u{1B}[2J" + table + "\n(\(path), refreshed every 2 s; Ctrl-C to stop)")
                try? await Task.sleep(for: .seconds(2))
            } else {
                print(table)
            }
        } while arguments.has("--watch")
        return .ok
    }

    public static func trace(_ words: [String]) -> ExitCode {
        let help = """
        usage: postroom trace ID [--spool DIR] [--csv]

        The history of one message from the tracking log, by queue id or Message-ID, in time order.
        --csv prints the events as Exchange message tracking log rows (#Fields header, then one
        row per event), for tools that read Exchange's logs.
        """
        guard let arguments = CommandLineInterface.parse(words, options: ["--spool"], flags: ["--csv"], help: help) else {
            return CommandLineInterface.helpOrUsage(words)
        }
        guard arguments.positional.count == 1, let id = arguments.positional.first else {
            printError("postroom trace: needs one queue id or Message-ID\n\n\(help)")
            return .usage
        }
        guard let spool = SpoolLocation.resolveOrReport(arguments["--spool"], command: "trace") else { return .userError }
        let events = TrackingLogReader.events(in: spool)
        if arguments.has("--csv") {
            guard let rows = MessageTrackingCSV.render(events: events, id: id) else {
                printError("postroom trace: no tracking events for \(id) in \(spool)/tracking.log")
                return .userError
            }
            print(rows, terminator: "")
            return .ok
        }
        guard let story = Trace.render(events: events, id: id) else {
            printError("postroom trace: no tracking events for \(id) in \(spool)/tracking.log")
            return .userError
        }
        print(story)
        return .ok
    }

    public static func explain(_ words: [String]) async -> ExitCode {
        let help = """
        usage: postroom explain [PIPELINE] FILE.eml [--replay]

        A dry run: what validate, categorize and route would do with this message (verdict,
        envelope, header changes, each recipient's resolution and next hop). Delivers nothing
        and writes nothing. A file starting with X-Sender: is read as a Replay file.
        """
        guard let arguments = CommandLineInterface.parse(words, flags: ["--replay"], help: help) else {
            return CommandLineInterface.helpOrUsage(words)
        }
        guard (1...2).contains(arguments.positional.count) else {
            printError("postroom explain: needs a message file\n\n\(help)")
            return .usage
        }
        let file = arguments.positional.last!
        let pipelinePath = arguments.positional.count == 2 ? arguments.positional[0] : CommandLineInterface.defaultPipeline
        do {
            let explanation = try await Explainer.explain(file: file, pipelinePath: pipelinePath, forceReplay: arguments.has("--replay"))
            print(explanation)
            return .ok
        } catch {
            printError("postroom explain: \(error)")
            return .userError
        }
    }
}

/// Runs a message through every stage but deliver, on a throw-away spool, and describes what happened.
public enum Explainer {
    public static func explain(file: String, pipelinePath: String, forceReplay: Bool = false) async throws -> String {
        let pipeline = try PipelineFile.load(path: pipelinePath)
        let bytes: [UInt8]
        do { bytes = try FileSystem.readFile(file, limit: 64 << 20) } catch { throw ConfigError(file: file, keyPath: "", problem: "cannot read: \(error)") }
        let scratch = NSTemporaryDirectory() + "postroom-explain-\(QueueID.next())"
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let runner = try PipelineRunner(pipeline: pipeline, spool: scratch, log: Logger(minimum: .error), dryRun: true)
        let isReplay = forceReplay || bytes.starts(with: Array("X-Sender:".utf8)) || bytes.starts(with: Array("x-sender:".utf8))
        let claimed = ClaimedFile(queueID: "EXPLAIN", source: isReplay ? .replay : .pickup, originalName: (file as NSString).lastPathComponent, path: file)
        var item = PipelineItem(claimed: claimed, sourceDirectory: nil, arrival: Date(), size: Int64(bytes.count), bytes: bytes)
        var lines = ["message:   \(file) (\(bytes.count) bytes, read as \(isReplay ? "replay" : "pickup"))",
                     "pipeline:  \(pipeline.name) (\(pipelinePath))"]
        var verdict = "accepted; would be queued"
        stages: for (name, stage) in runner.stages where name != "deliver" {
            let result = try await stage.process(item)
            switch result {
            case .forward(let next):
                item = next
            case .finished(let outcome):
                verdict = "\(outcome.rawValue) at \(name)"
                if name == "validate" { verdict += ": " + validationDetail(bytes, item: item, pipeline: pipeline, runner: runner) }
                break stages
            }
        }
        lines.append("verdict:   \(verdict)")
        if !item.envelope.sender.isEmpty || !item.envelope.recipients.isEmpty {
            lines.append("envelope:  from \(item.envelope.sender.isEmpty ? "<>" : item.envelope.sender)")
            for recipient in item.envelope.recipients {
                lines.append("           to   \(([recipient.address] + recipient.parameters).joined(separator: " "))")
            }
        }
        if !item.messageID.isEmpty { lines.append("message-id: \(item.messageID)") }
        if !item.notes.isEmpty {
            lines.append("steps:")
            lines += item.notes.map { "  - \($0)" }
        }
        if !item.resolved.isEmpty {
            lines.append("recipients:")
            for recipient in item.resolved {
                let hop = item.hops.first { $0.recipients.contains(recipient) }?.connector ?? "(no route)"
                let chain = ([recipient.original.address] + recipient.chain).reduce(into: [String]()) { if $0.last != $1 { $0.append($1) } }
                lines.append("  \(chain.joined(separator: " -> ")) => \(hop)")
            }
        }
        if !item.failures.isEmpty {
            lines.append("reported to the sender:")
            lines += item.failures.map { "  \($0.address): \($0.status) \($0.diagnostic)" }
        }
        return lines.joined(separator: "\n")
    }

    /// Why validation refused the message (a finished stage does not hand its item back).
    static func validationDetail(_ bytes: [UInt8], item: PipelineItem, pipeline: PipelineFile, runner: PipelineRunner) -> String {
        let settings = pipeline.settings(ValidateSettings.self) ?? ValidateSettings()
        let verdict = SubmissionValidator.validate(bytes, totalSize: item.size, source: item.claimed.source == .pickup ? .pickup : .replay,
                                                   limits: settings.limits,
                                                   context: SubmissionContext(hostname: runner.context.hostname, defaultDomain: runner.context.defaultDomain, now: Date()))
        switch verdict {
        case .accepted: return "accepted"
        case .report(let report): return "non-delivery report to \(report.envelope.sender): \(report.status) \(report.diagnostic)"
        case .badmail(let reason): return "the file would be renamed .bad: \(reason)"
        }
    }
}
