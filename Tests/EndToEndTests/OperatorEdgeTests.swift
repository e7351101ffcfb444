import Foundation
import Testing

/// Issue 14: the edges an operator meets first. Spool discovery, queue commands with several ids and
/// filters, `check` and `run` agreeing, metrics from the start, Exchange's tracking vocabulary and
/// reports that name the host properly.
@Suite struct OperatorEdgeTests {
    /// A pipeline with an agent that always defers with its own status, a foreign and a Maildir connector.
    static func deferringPipeline(in root: String, extra: String = "") throws -> String {
        let path = root + "/edge.json5"
        try? FileManager.default.removeItem(atPath: root + "/directory.json5")
        try FileManager.default.copyItem(atPath: Harness.packageRoot + "/pipelines/directory.json5", toPath: root + "/directory.json5")
        try """
        {
          name: "edge",
          hostname: "mail.example.net",
          stages: [
            { stage: "ingest" },
            { stage: "validate" },
            { stage: "categorize", directory: "directory.json5", acceptedDomains: ["example.com"] },
            { stage: "route" },
            { stage: "deliver", retry: { first: "1h", max: "2h" } },
          ],
          connectors: [
            { name: "mailbox", type: "maildir", domains: ["example.com"], path: "mailboxes/{user}" },
            { name: "outbound", type: "foreign", addressSpaces: ["SMTP:*;10"], dropDirectory: "drop/outbound" },
            { name: "sms", type: "agent", addressSpaces: ["SMS:*;1"],
              command: ["/bin/sh", "-c", "echo '4.4.1 no answer from the SMS gateway'; exit 75"] },
          ],
          metrics: { file: "metrics.prom", every: "1s" \(extra) },
          tracking: { file: "tracking.log" },
        }
        """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static func sms(_ index: Int) -> String {
        "X-Sender: <alice@example.com>\nX-Receiver: <SMS:+1555000\(index)>\nSubject: sms \(index)\nMessage-ID: <sms\(index)@example.com>\n\nCall me.\n"
    }

    // MARK: Finding 2: the spool

    @Test func aFolderThatIsNotASpoolIsRefusedByEveryCommand() throws {
        let missing = NSTemporaryDirectory() + "postroom-nospool-" + UUID().uuidString
        let empty = NSTemporaryDirectory() + "postroom-notaspool-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: empty) }
        for folder in [missing, empty] {
            for arguments in [["queue", "list"], ["queue", "remove", "X"], ["stats"], ["trace", "X"]] {
                let result = try runPostroom(arguments + ["--spool", folder])
                #expect(result.status == 1, "\(arguments) on \(folder): \(result.output) \(result.error)")
                #expect(result.error.contains(folder) && (result.error.contains("does not exist") || result.error.contains("is not a Postroom spool")),
                        "\(arguments): \(result.error)")
                #expect(!result.output.contains("Mail queue is empty"))
            }
        }
    }

    @Test func theEnvironmentVariableFindsTheSpool() async throws {
        let harness = try Harness()
        harness.pipeline = try Self.deferringPipeline(in: harness.root)
        try await harness.start()
        try harness.drop(Self.sms(7), named: "sms7.eml", into: harness.replay)
        try await waitUntil("a deferred entry", timeout: 30) { harness.queued("deferred").count == 1 }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Harness.binary)
        process.arguments = ["queue", "list"]
        process.currentDirectoryURL = URL(fileURLWithPath: "/")
        process.environment = ["POSTROOM_SPOOL": harness.spool, "PATH": "/usr/bin:/bin"]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        #expect(text.contains(harness.queued("deferred")[0]), "POSTROOM_SPOOL was not used: \(text)")
        #expect(try await harness.stop() == 0)
    }

    // MARK: Findings 3 and 8: queue commands, tracking vocabulary

    @Test func queueCommandsTakeSeveralIdsAndFiltersAndTrackingUsesExchangeNames() async throws {
        let harness = try Harness()
        harness.pipeline = try Self.deferringPipeline(in: harness.root)
        try await harness.start()
        for index in 0..<4 { try harness.drop(Self.sms(index), named: "sms\(index).eml", into: harness.replay) }
        try harness.drop("From: Zed <zed@elsewhere.org>\nTo: alice@example.com, partner@elsewhere.org\nSubject: hi\n\nHi.\n", named: "mixed.eml")
        try await waitUntil("four deferred entries", timeout: 30) { harness.queued("deferred").count == 4 }
        try await waitUntil("the mixed message delivered", timeout: 30) { harness.trackingLines("SEND").count >= 1 && harness.trackingLines("DELIVER").count >= 1 }

        let ids = harness.queued("deferred")
        let removed = try harness.command(["queue", "remove", ids[0], ids[1]])
        #expect(removed.status == 0, "\(removed.error)")
        #expect(harness.queued("deferred") == Array(ids[2...]))

        let typo = try harness.command(["queue", "remove", "no-such-id"])
        #expect(typo.status == 1)
        #expect(typo.error.contains("no queued message matches no-such-id"))

        let held = try harness.command(["queue", "hold", ids[2]])
        #expect(held.status == 0, "\(held.error)")
        let again = try harness.command(["queue", "hold", ids[2]])
        #expect(again.status == 0, "holding a held entry: \(again.error)")
        #expect(harness.queued("hold") == [ids[2]])

        let listed = try harness.command(["queue", "list", "--connector", "sms", "--state", "deferred"])
        #expect(listed.status == 0)
        #expect(listed.output.contains(ids[3]) && !listed.output.contains(ids[2]), "\(listed.output)")
        let byRecipient = try harness.command(["queue", "list", "--recipient", "sms:+1555000*"])
        #expect(byRecipient.output.contains(ids[3]) && byRecipient.output.contains(ids[2]), "\(byRecipient.output)")
        #expect(try harness.command(["queue", "list", "--recipient", "SMS:+19*"]).output.contains("No queued message matches the filters"))
        let none = try harness.command(["queue", "list", "--sender", "*@nowhere.example"])
        #expect(none.output.contains("No queued message matches the filters"))
        let young = try harness.command(["queue", "remove", "--connector", "sms", "--older-than", "1h"])
        #expect(young.status == 0)
        #expect(harness.queued("deferred") == [ids[3]], "nothing is an hour old yet")
        let byFilter = try harness.command(["queue", "remove", "--connector", "sms", "--state", "deferred"])
        #expect(byFilter.status == 0, "\(byFilter.error)")
        #expect(harness.queued("deferred").isEmpty)
        #expect(harness.queued("hold") == [ids[2]])

        // Exchange's names: SEND/GATEWAY into a drop directory, DELIVER/STOREDRIVER into a Maildir,
        // DEFER with the agent's own status, never DROP for a delivery.
        #expect(harness.trackingLines("SEND").contains { $0.contains("\"source\":\"GATEWAY\"") && $0.contains("\"connector\":\"outbound\"") })
        #expect(harness.trackingLines("DELIVER").contains { $0.contains("\"source\":\"STOREDRIVER\"") })
        #expect(harness.trackingLines("DROP").isEmpty)
        let defers = harness.trackingLines("DEFER")
        #expect(!defers.isEmpty && defers.allSatisfy { $0.contains("\"status\":\"4.4.1\"") && $0.contains("\"source\":\"AGENT\"") }, "\(defers)")
        #expect(harness.trackingLines("RECEIVE").contains { $0.contains("\"source\":\"ADMIN\"") }, "replay receipts are ADMIN in Exchange")

        let csv = try harness.command(["trace", "sms3@example.com", "--csv"])
        #expect(csv.status == 0, "\(csv.error)")
        let rows = csv.output.components(separatedBy: "\r\n").filter { !$0.isEmpty }
        let fields = try #require(rows.first { $0.hasPrefix("#Fields: ") }).dropFirst("#Fields: ".count).split(separator: ",").map(String.init)
        #expect(fields.count == 30 && fields[0] == "date-time" && fields[8] == "event-id" && fields[13] == "recipient-status")
        let deferRow = try #require(rows.first { $0.contains(",DEFER,") })
        #expect(deferRow.contains("AGENT,DEFER") && deferRow.contains("4.4.1"), "\(deferRow)")
        #expect(try await harness.stop() == 0)
    }

    // MARK: Finding 9: reports

    @Test func reportsFollowTheMessagesLineEndingsAndNameTheHost() async throws {
        let harness = try Harness()
        harness.pipeline = try Self.deferringPipeline(in: harness.root)
        try await harness.start()
        try harness.drop("From: Zed <zed@elsewhere.org>\nTo: nobody@example.com\nSubject: lf\n\nbody\n", named: "lf.eml")
        try await waitUntil("the report in the outbound drop directory", timeout: 30) {
            harness.files(under: "drop/outbound").contains { !$0.contains("/.") }
        }
        let files = harness.files(under: "drop/outbound").filter { !$0.contains("/.") }
        let texts = try files.map { try String(contentsOfFile: harness.spool + "/" + $0, encoding: .utf8) }
        let report = try #require(texts.first { $0.contains("multipart/report") }, "\(texts)")
        #expect(!report.contains("\r"), "an LF producer gets an LF report")
        let header = report.components(separatedBy: "\n\n").dropFirst().first ?? report
        #expect(report.contains("Message-ID: <") && report.contains(".report@mail.example.net>"), "\(header)")
        #expect(report.contains("Received: by mail.example.net (Postroom) with local (delivery status notification);"), "\(header)")
        #expect(!report.contains("with replay"))
        #expect(report.contains("Reporting-MTA: dns; mail.example.net"))
        #expect(try await harness.stop() == 0)
    }

    // MARK: Finding 5: every series from the start

    @Test func everyDocumentedSeriesExistsAtZeroFromTheStart() async throws {
        let harness = try Harness()
        harness.pipeline = try Self.deferringPipeline(in: harness.root)
        try await harness.start()
        let path = harness.spool + "/metrics.prom"
        try await waitUntil("metrics.prom", timeout: 10) { FileManager.default.fileExists(atPath: path) }
        let text = try String(contentsOfFile: path, encoding: .utf8)
        for stage in ["ingest", "validate", "categorize", "route", "deliver"] {
            let labels = "pipeline=\"edge\",stage=\"\(stage)\""
            #expect(text.contains("postroom_stage_received_messages_total{\(labels)} 0"), "\(stage)")
            #expect(text.contains("postroom_stage_sent_messages_total{\(labels)} 0"))
            #expect(text.contains("postroom_stage_errors_total{pipeline=\"edge\",reason=\"io\",stage=\"\(stage)\"} 0"))
            #expect(text.contains("postroom_stage_processing_seconds_count{\(labels)} 0"))
        }
        for connector in ["mailbox", "outbound", "sms"] {
            #expect(text.contains("postroom_delivered_messages_total{connector=\"\(connector)\",pipeline=\"edge\"} 0"), "\(connector)")
            #expect(text.contains("postroom_delivery_attempts_total{connector=\"\(connector)\",pipeline=\"edge\",result=\"deferred\"} 0"))
            #expect(text.contains("postroom_queue_messages{connector=\"\(connector)\",pipeline=\"edge\",state=\"active\"} 0"))
        }
        #expect(text.contains("postroom_intake_paused{pipeline=\"edge\"} 0"))
        #expect(text.contains("postroom_stage_errors_total{pipeline=\"edge\",reason=\"hostile_file\",stage=\"ingest\"} 0"))
        let lines = text.split(separator: "\n")
        #expect(!lines.contains { $0.hasPrefix("process_") || $0.hasPrefix("# TYPE process_") }, "process_* collide with node_exporter's own")
        #expect(lines.contains { $0.hasPrefix("postroom_process_start_time_seconds ") })
        let mode = try #require(FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
        #expect(mode == 0o644)
        #expect(try await harness.stop() == 0)
    }

    // MARK: Finding 4: check and run agree

    /// Pipelines `check` refuses, each with the text it must print.
    static let checkFixtures: [(name: String, pipeline: String, expected: String)] = [
        ("listen-not-loopback", #"metrics: { listen: "0.0.0.0:9465" }"#, "metrics.listen:"),
        ("listen-not-a-port", #"metrics: { listen: "127.0.0.1:http" }"#, "metrics.listen:"),
        ("directory-misspelt", #"directoryKey: "directroy.json5""#, "stages[2].directory: the recipient directory"),
        ("unknown-key", #"shutdownTimeot: "5s""#, "shutdownTimeot: unknown key"),
        ("bad-duration", #"shutdownTimeout: "soon""#, "shutdownTimeout:"),
        ("hostname-not-fqdn", #"hostname: "vm""#, "hostname: hostname must be fully qualified"),
        ("duplicate-connector", #"extraConnector: { name: "out", type: "foreign", addressSpaces: ["X400:*"], dropDirectory: "d2" }"#, "connectors[1].name: another connector is already named 'out'"),
        ("unknown-group", #"permissionsGroup: "postroom-no-such-group-14""#, "connectors[0].permissions.group: no group named"),
        ("bad-mode", #"permissionsMode: "rwx""#, "directoryMode"),
    ]

    static func fixtureText(_ fragment: String, folder: String) -> String {
        var topLevel = ""
        var directory = ""
        var connectorExtra = ""
        var extraConnector = ""
        if fragment.hasPrefix("directoryKey: ") {
            directory = ", directory: " + fragment.dropFirst("directoryKey: ".count)
        } else if fragment.hasPrefix("extraConnector: ") {
            extraConnector = ", " + fragment.dropFirst("extraConnector: ".count)
        } else if fragment.hasPrefix("permissionsGroup: ") {
            connectorExtra = ", permissions: { group: " + fragment.dropFirst("permissionsGroup: ".count) + " }"
        } else if fragment.hasPrefix("permissionsMode: ") {
            connectorExtra = ", permissions: { directoryMode: " + fragment.dropFirst("permissionsMode: ".count) + " }"
        } else {
            topLevel = fragment + ",\n"
        }
        return """
        {
          name: "fixture",
          \(topLevel)stages: [
            { stage: "ingest" },
            { stage: "validate" },
            { stage: "categorize", acceptedDomains: ["example.com"]\(directory) },
            { stage: "route" },
            { stage: "deliver" },
          ],
          connectors: [ { name: "out", type: "foreign", addressSpaces: ["SMTP:*"], dropDirectory: "drop"\(connectorExtra) }\(extraConnector) ],
        }
        """
    }

    /// `postroom run` that must refuse at once: one that starts instead is stopped after 10 s
    /// (status -1), so a missing refusal fails the test rather than hanging it.
    static func runBriefly(_ arguments: [String]) throws -> (status: Int32, error: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Harness.binary)
        process.arguments = arguments
        let errorPath = NSTemporaryDirectory() + "postroom-agree-run-" + UUID().uuidString
        _ = FileManager.default.createFile(atPath: errorPath, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: errorPath) }
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errorPath))
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning, Date() < deadline { usleep(20_000) }
        var status = process.terminationStatus
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            status = -1
        }
        return (status, (try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? "")
    }

    @Test func whateverCheckRefusesRunRefusesWithTheSameText() throws {
        let folder = NSTemporaryDirectory() + "postroom-agree-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        for fixture in Self.checkFixtures {
            let path = folder + "/\(fixture.name).json5"
            try Self.fixtureText(fixture.pipeline, folder: folder).write(toFile: path, atomically: true, encoding: .utf8)
            let spool = folder + "/spool-\(fixture.name)"
            let check = try runPostroom(["check", path, "--spool", spool])
            #expect(check.status == 1, "\(fixture.name): check passed")
            let errors = check.error.split(separator: "\n").map(String.init).filter { !$0.hasPrefix("warning:") }
            #expect(errors.contains { $0.hasPrefix(path + ":") && $0.contains(fixture.expected) }, "\(fixture.name): \(check.error)")
            let run = try Self.runBriefly(["run", path, "--spool", spool])
            #expect(run.status == 1, "\(fixture.name): run did not refuse (\(run.status)): \(run.error)")
            for error in errors {
                #expect(run.error.contains(error), "\(fixture.name): run did not say \(error)\n\(run.error)")
            }
        }
    }
}
