import Foundation
import PostroomSystem
import Testing
@testable import Postroom

/// A real pipeline on a temporary spool, for driving stages one message at a time without the daemon.
///
/// The pipeline is `ingest, validate, <stages>, deliver` with the default pipeline's directory and
/// a maildir and an outbound connector. Messages are claimed into `queue/incoming/` as the ingest
/// stage does, then handed to each stage in turn, so every stage sees what it would in production.
struct StageFixture {
    let root: String
    let spool: String
    let runner: PipelineRunner

    static let packageRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<4 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// `validate` and `deliver` replace those stages' entries (with their trailing comma).
    init(stages: String, dryRun: Bool = false, validate: String? = nil, deliver: String? = nil) throws {
        root = NSTemporaryDirectory() + "postroom-stages-" + UUID().uuidString
        spool = root + "/spool"
        try FileManager.default.createDirectory(atPath: spool, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Self.packageRoot + "/pipelines/directory.json5", toPath: root + "/directory.json5")
        let path = root + "/pipeline.json5"
        try Self.pipelineText(stages: stages, validate: validate, deliver: deliver).write(toFile: path, atomically: true, encoding: .utf8)
        let pipeline = try PipelineFile.load(path: path)
        let telemetry = Telemetry(pipeline: "test", registry: MetricsRegistry(processMetrics: false),
                                  tracking: try TrackingLog(path: spool + "/tracking.log"))
        runner = try PipelineRunner(pipeline: pipeline, spool: spool, log: Logger(minimum: .error), dryRun: dryRun, telemetry: telemetry)
        try runner.context.queue.prepare()
    }

    static func pipelineText(stages: String, validate: String? = nil, deliver: String? = nil) -> String {
        """
        {
          name: "test",
          stages: [
            { stage: "ingest" },
            \(validate ?? #"{ stage: "validate" },"#)
            \(stages)
            \(deliver ?? #"{ stage: "deliver" },"#)
          ],
          connectors: [
            { name: "mailbox", type: "maildir", domains: ["example.com"], path: "mailboxes/{user}" },
            { name: "outbound", type: "foreign", addressSpaces: ["SMTP:*;10"], dropDirectory: "drop/outbound" },
          ],
        }
        """
    }

    /// Decodes a pipeline with `stages` in the middle; the error, if any, as `postroom check` prints it.
    static func decodeError(stages: String) -> String? {
        do {
            _ = try ConfigFile.decode(PipelineFile.self, from: Data(pipelineText(stages: stages).utf8), file: "p.json5")
            return nil
        } catch {
            return error.description
        }
    }

    /// The error building the pipeline (after decoding) reports, if any.
    static func buildError(stages: String) throws -> String? {
        let root = NSTemporaryDirectory() + "postroom-stages-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/spool", withIntermediateDirectories: true)
        try pipelineText(stages: stages).write(toFile: root + "/p.json5", atomically: true, encoding: .utf8)
        do {
            _ = try PipelineRunner(pipeline: try PipelineFile.load(path: root + "/p.json5"), spool: root + "/spool", log: Logger(minimum: .error))
            return nil
        } catch {
            return "\(error)"
        }
    }

    /// Claims `text` as a pickup file and runs it through the stages after ingest, stopping after the
    /// stage named `last` (or at the end). Returns what the last stage run returned.
    func run(_ text: String, name: String = "m.eml", through last: String? = nil) async throws -> StageResult {
        let pickup = spool + "/pickup"
        try FileSystem.createDirectory(pickup)
        let bytes = Array(text.utf8)
        try FileSystem.writeAtomically(bytes, to: pickup + "/" + name)
        let claimed = try runner.context.queue.claim(path: pickup + "/" + name, source: .pickup)
        var result = StageResult.forward(PipelineItem(claimed: claimed, sourceDirectory: pickup, arrival: Date(),
                                                      size: Int64(bytes.count), bytes: bytes))
        for (stageName, stage) in runner.stages {
            guard case .forward(let item) = result else { break }
            result = try await stage.process(item)
            if stageName == last { break }
        }
        return result
    }

    /// Files under a spool folder, relative to it, sorted; hidden temporaries included.
    func files(in relative: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: spool + "/" + relative)) ?? []).sorted()
    }

    func read(_ relative: String) throws -> String { try String(contentsOfFile: spool + "/" + relative, encoding: .utf8) }

    var trackingEvents: [TrackingEvent] { TrackingLogReader.events(in: spool + "/tracking.log") }

    func remove() { try? FileManager.default.removeItem(atPath: root) }
}

extension StageResult {
    /// The forwarded item; records an issue and returns nil when the message was finished instead.
    func forwarded(sourceLocation: SourceLocation = #_sourceLocation) -> PipelineItem? {
        guard case .forward(let item) = self else {
            Issue.record("expected the message to be forwarded, got \(self)", sourceLocation: sourceLocation)
            return nil
        }
        return item
    }

    var outcome: Outcome? {
        if case .finished(let outcome) = self { return outcome }
        return nil
    }
}

/// A pickup message from outside to `to`, with extra header lines.
func testMessage(from: String = "sender@elsewhere.org", to: String = "alice@example.com", headers: [String] = [], body: String = "Hello.\r\n") -> String {
    (["From: \(from)", "To: \(to)", "Subject: test"] + headers).joined(separator: "\r\n") + "\r\n\r\n" + body
}
