import Foundation
import Postroom
import Testing

/// Metrics and tracking after a real run: valid Prometheus text, and counts equal to what happened on disk.
@Suite(.serialized) struct ObservabilityEndToEndTests {
    static let promtool = ["/usr/bin/promtool", "/usr/local/bin/promtool"].first { FileManager.default.isExecutableFile(atPath: $0) }

    static func run(_ executable: String, _ arguments: [String], input: Data) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let stdin = Pipe(), stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stdout
        try process.run()
        stdin.fileHandleForWriting.write(input)
        try stdin.fileHandleForWriting.close()
        let output = stdout.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }

    /// Sums of every sample per metric name (and per `outcome` label for rejections), read by Python's prometheus_client.
    static func pythonSums(_ exposition: Data) throws -> [String: Double]? {
        let script = """
        import sys, json
        try:
            from prometheus_client.parser import text_string_to_metric_families
        except ImportError:
            print("null"); sys.exit(0)
        sums = {}
        for family in text_string_to_metric_families(sys.stdin.read()):
            for sample in family.samples:
                key = sample.name + (":" + sample.labels["outcome"] if "outcome" in sample.labels else "")
                sums[key] = sums.get(key, 0) + sample.value
        print(json.dumps(sums))
        """
        let result = try run("/usr/bin/env", ["python3", "-c", script], input: exposition)
        guard result.status == 0, result.output.trimmingCharacters(in: .whitespacesAndNewlines) != "null" else { return nil }
        return try JSONDecoder().decode([String: Double].self, from: Data(result.output.utf8))
    }

    @Test func metricsPassPromtoolAndCountWhatHappened() async throws {
        let harness = try Harness()
        try harness.useDefaultPipeline(replacing: [("metrics: { file: \"metrics.prom\", every: \"10s\" }", "metrics: { file: \"metrics.prom\", every: \"1s\", listen: \"127.0.0.1:0\" }")])
        try await harness.start()
        for index in 0..<30 { try harness.drop(Mail.message(index, token: "m\(index)"), named: "m\(index).eml") }
        for index in 0..<3 { try harness.drop("Subject: no sender \(index)\n\nbody\n", named: "bad\(index).eml") }
        for index in 0..<2 { try harness.drop("From: carol@example.com\nSubject: nobody to send to \(index)\n\nbody\n", named: "norcpt\(index).eml") }
        let expected = Mail.expectedCensus(0..<30, prefix: "m")
        let expectedFiles = expected.values.reduce(0) { $0 + $1.values.reduce(0, +) } + 2
        try await waitUntil("deliveries and reports", timeout: 60) { harness.deliveredFiles().count >= expectedFiles }
        try await waitUntil("badmail", timeout: 30) { (0..<3).allSatisfy { FileManager.default.fileExists(atPath: harness.pickup + "/bad\($0).eml.bad") } }
        try await waitUntil("the queue to empty", timeout: 30) { harness.queuedFiles().isEmpty }

        let portLine = harness.log.split(separator: "\n").first { $0.contains("serving metrics") }.map(String.init) ?? ""
        let port = portLine.split(separator: " ").last.flatMap { Int($0) }
        #expect(port != nil, "no metrics port in the log: \(harness.log)")
        let fetched = try Self.run("/usr/bin/env", ["python3", "-c", "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1]).read().decode())",
                                                        "http://127.0.0.1:\(port ?? 0)/metrics"], input: Data())
        #expect(fetched.status == 0, "GET /metrics failed: \(fetched.output)")
        let body = Data(fetched.output.utf8)
        #expect(String(decoding: body, as: UTF8.self).contains("# TYPE postroom_stage_received_messages_total counter"))
        #expect(try await harness.stop() == 0)
        let file = try Data(contentsOf: URL(fileURLWithPath: harness.spool + "/metrics.prom"))
        let stats = try harness.command(["stats"])
        #expect(stats.status == 0, "\(stats.error)")
        for word in ["ingest", "validate", "categorize", "route", "deliver", "mailbox", "fax", "outbound"] {
            #expect(stats.output.contains(word), "stats lacks \(word): \(stats.output)")
        }

        if let promtool = Self.promtool {
            for (what, data) in [("/metrics", body), ("metrics.prom", file)] {
                let check = try Self.run(promtool, ["check", "metrics"], input: data)
                #expect(check.status == 0, "promtool rejects \(what): \(check.output)")
            }
        } else {
            print("promtool is not installed (apt-get install prometheus); the promtool checks are skipped")
        }
        // Postroom's own strict parser always reads it; Python's prometheus_client, a real third-party
        // parser, does too where .ci/run could install it. Both must give the same counts.
        var sums: [String: Double] = [:]
        for family in try PrometheusTextParser.parse(String(decoding: file, as: UTF8.self), mode: .strict) {
            for sample in family.samples {
                sums[sample.name + (sample.labels["outcome"].map { ":" + $0 } ?? ""), default: 0] += sample.value
            }
        }
        if let python = try Self.pythonSums(file) {
            for key in ["postroom_delivered_messages_total", "postroom_messages_rejected_total:badmail", "postroom_messages_rejected_total:report"] {
                #expect(python[key] == sums[key], "prometheus_client reads \(key) as \(python[key] ?? -1)")
            }
        } else {
            print("prometheus_client is not installed (pip install prometheus_client); only Postroom's own parser read the metrics")
        }
        #expect(sums["postroom_delivered_messages_total"] == Double(harness.deliveredFiles().count))
        #expect(sums["postroom_messages_rejected_total:badmail"] == 3)
        #expect(sums["postroom_messages_rejected_total:report"] == 2)
        #expect(sums["postroom_inotify_overflows_total"] == 0)
        #expect((sums["postroom_end_to_end_seconds_count"] ?? 0) > 0)
        #expect(sums["postroom_stage_received_messages_total"] ?? 0 > 0)
    }
}
