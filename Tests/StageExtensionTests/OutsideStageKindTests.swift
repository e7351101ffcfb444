import Foundation
import Postroom
import PostroomSystem
import Testing

// A stage kind defined outside the Postroom module, with nothing but its public API (plain
// `import Postroom`, no @testable): the way a program that embeds Postroom adds its own stage.

/// Settings of the `stamp` stage: the value of the header it adds.
struct StampSettings: StageSettings, Decodable {
    var value: String

    enum CodingKeys: String, CodingKey, CaseIterable { case stage, value }

    init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        value = try decoder.container(keyedBy: CodingKeys.self).decode(String.self, forKey: .value)
    }
}

/// Adds `X-Stamp: <value>` at the top of every message; refuses messages whose subject says "explode".
actor StampStage: MessageStage {
    struct Refused: Error {}
    let value: String

    init(value: String) { self.value = value }

    func process(_ item: PipelineItem) async throws -> StageResult {
        if String(decoding: item.bytes, as: UTF8.self).contains("Subject: explode") { throw Refused() }
        var item = item
        item.bytes = Array("X-Stamp: \(value)\r\n".utf8) + item.bytes
        return .forward(item)
    }
}

extension StageKind {
    static let stamp = StageKind.make("stamp", summary: "adds an X-Stamp header", settings: StampSettings.self) { settings, _ in
        StampStage(value: settings.value)
    }
}

@Suite("a stage kind registered from outside the module")
struct OutsideStageKindTests {
    let root = NSTemporaryDirectory() + "postroom-outside-stage-" + UUID().uuidString
    var spool: String { root + "/spool" }
    let registry = StageRegistry.standard.adding([.stamp])

    init() throws {
        try FileManager.default.createDirectory(atPath: root + "/spool", withIntermediateDirectories: true)
        try """
        {
          name: "outside",
          stages: [
            { stage: "ingest" },
            { stage: "validate" },
            { stage: "categorize", acceptedDomains: ["example.com"] },
            { stage: "route" },
            { stage: "stamp", value: "from-outside" },
            { stage: "deliver", retry: { first: "1h", max: "1h" } },
          ],
          connectors: [
            { name: "outbound", type: "foreign", addressSpaces: ["SMTP:*;10"], dropDirectory: "drop/outbound" },
          ],
        }
        """.write(toFile: root + "/pipeline.json5", atomically: true, encoding: .utf8)
    }

    func cleanUp() { try? FileManager.default.removeItem(atPath: root) }

    @Test("the standard registry does not know the kind; check and load do with the caller's registry")
    func checkAndLoadUseTheGivenRegistry() throws {
        defer { cleanUp() }
        let unknown = PipelineCheck.run(path: root + "/pipeline.json5", spoolOverride: spool)
        #expect(unknown.errors.contains { $0.description.contains("unknown stage kind 'stamp'") })
        let check = PipelineCheck.run(path: root + "/pipeline.json5", spoolOverride: spool, registry: registry)
        #expect(check.isValid, "\(check.errors)")
        #expect(check.graph.contains("stamp") && check.graph.contains("adds an X-Stamp header"))
        let pipeline = try PipelineFile.load(path: root + "/pipeline.json5", registry: registry)
        #expect(pipeline.stages.map(\.kind) == ["ingest", "validate", "categorize", "route", "stamp", "deliver"])
    }

    @Test("the runner builds, feeds and meters the stage; the message is delivered with its header and tracked")
    func runsInAPipeline() async throws {
        defer { cleanUp() }
        let pipeline = try PipelineFile.load(path: root + "/pipeline.json5", registry: registry)
        let registryOfMetrics = MetricsRegistry(processMetrics: false)
        let telemetry = Telemetry(pipeline: "outside", registry: registryOfMetrics, tracking: try TrackingLog(path: spool + "/tracking.log"))
        let runner = try PipelineRunner(pipeline: pipeline, spool: spool, log: Logger(minimum: .error), telemetry: telemetry)
        let running = Task { try await runner.run() }

        try Self.drop("From: a@example.com\r\nTo: x@elsewhere.org\r\nSubject: fine\r\n\r\nbody\r\n", as: "fine.eml", into: spool + "/pickup")
        try Self.drop("From: a@example.com\r\nTo: y@elsewhere.org\r\nSubject: explode\r\n\r\nbody\r\n", as: "bad.eml", into: spool + "/pickup")
        let stamp = telemetry.stage("stamp")
        let done = await Self.wait { stamp.sent.value >= 1 && stamp.errors(reason: "error").value >= 1 && telemetry.connector("outbound").delivered.value >= 1 }
        await runner.stop()
        try await running.value
        try #require(done, "the stamp stage did not see both messages in time")

        let drops = try FileSystem.contents(of: spool + "/drop/outbound").filter { $0.hasSuffix(".eml") }
        #expect(drops.count == 1)
        let delivered = String(decoding: try FileSystem.readFile(spool + "/drop/outbound/" + drops[0]), as: UTF8.self)
        #expect(delivered.contains("X-Stamp: from-outside"))
        #expect(delivered.contains("Subject: fine"))

        // Metrics the stage got without code of its own.
        // (The refused message may have been retried once before the stop, so count, don't fix, its failures.)
        let failures = stamp.errors(reason: "error").value
        #expect(stamp.sent.value == 1)
        #expect(failures >= 1)
        #expect(stamp.received.value == 1 + failures)
        let exposition = registryOfMetrics.exposition()
        #expect(exposition.contains(#"postroom_stage_processing_seconds_count{pipeline="outside",stage="stamp"} \#(1 + failures)"#))

        // Tracking follows the message through the stage to its delivery.
        telemetry.close()
        let events = TrackingLogReader.events(in: spool)
        #expect(events.contains { $0.event == .receive && $0.recipients == ["x@elsewhere.org"] })
        #expect(events.contains { $0.event != .receive && $0.recipients.contains("x@elsewhere.org") && $0.connector == "outbound" })
        // The refused message is not lost: it stays claimed in the queue for a retry (or parked as poison).
        let kept = try FileSystem.contents(of: spool + "/queue/incoming") + FileSystem.contents(of: spool + "/queue/poison")
        #expect(kept.filter { $0.hasSuffix("bad.eml") }.count == 1)
    }

    /// Writes a file under a hidden name and renames it into `folder`, as a careful producer does.
    static func drop(_ text: String, as name: String, into folder: String) throws {
        try FileSystem.createDirectory(folder)
        try FileSystem.writeAtomically(Array(text.utf8), to: folder + "/." + name)
        try FileSystem.rename(folder + "/." + name, to: folder + "/" + name)
    }

    /// Polls in-memory counters for at most 120 seconds (a bound for a hang, not a timing: the whole
    /// suite shares two cores, and the runner's tasks then wait their turn on the cooperative pool).
    static func wait(until condition: () -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(120)
        while !condition() {
            if ContinuousClock.now >= deadline { return false }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return true
    }
}
