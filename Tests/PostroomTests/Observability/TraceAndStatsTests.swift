import Foundation
import Testing
@testable import Postroom

@Suite("Trace")
struct TraceTests {
    /// A message to a local user and a fax recipient, bifurcated into Q1 (mailbox) and Q2 (fax),
    /// plus an unrelated message Q9 and an event with an empty Message-ID.
    static func bifurcated() -> [TrackingEvent] {
        func at(_ ms: Int64) -> Date { Date(timeIntervalSince1970: 1_795_427_100 + Double(ms) / 1000) }
        var events: [TrackingEvent] = []
        events.append(TrackingEvent(timestamp: at(0), event: .receive, source: .pickup, queueID: "Q1", messageID: "<abc@example.com>",
                                    sender: "alice@example.com", recipients: ["bob@example.com", "fax-desk@example.com"], file: "m1.eml", size: 1234))
        events.append(TrackingEvent(timestamp: at(5), event: .receive, source: .pickup, queueID: "Q9", messageID: "<other@example.com>",
                                    sender: "carol@example.com", recipients: ["bob@example.com"]))
        events.append(TrackingEvent(timestamp: at(40), event: .deliver, source: .delivery, queueID: "Q1", messageID: "<abc@example.com>",
                                    sender: "alice@example.com", recipients: ["bob@example.com"], connector: "mailbox", status: "2.0.0"))
        // Logged out of order (different writer), must be sorted by time.
        events.append(TrackingEvent(timestamp: at(10), event: .route, source: .routing, queueID: "Q2", messageID: "abc@example.com",
                                    sender: "alice@example.com", recipients: ["FAX:+15551234"], connector: "fax"))
        events.append(TrackingEvent(timestamp: at(20), event: .defer, source: .queue, queueID: "Q2", messageID: "<abc@example.com>",
                                    sender: "alice@example.com", recipients: ["FAX:+15551234"], connector: "fax", status: "4.3.4", reason: "drop directory quota full"))
        events.append(TrackingEvent(timestamp: at(30), event: .hold, source: .admin, queueID: "Q2", messageID: "",
                                    sender: "alice@example.com", recipients: []))
        events.append(TrackingEvent(timestamp: at(50), event: .receive, source: .pickup, queueID: "Q8", messageID: "",
                                    sender: "x@example.com", recipients: []))
        return events
    }

    @Test(arguments: ["<abc@example.com>", "abc@example.com", " <abc@example.com> ", "Q1", "Q2"])
    func findsAllQueueIDsOfABifurcatedMessage(_ id: String) throws {
        let text = try #require(Trace.render(events: Self.bifurcated(), id: id))
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines[0] == "Message-ID: <abc@example.com>")
        #expect(lines[1] == "Queue ids:  Q1, Q2")
        #expect(lines[2] == "Sender:     alice@example.com")
        let story = lines.dropFirst(4).filter { !$0.isEmpty }
        #expect(story.map { $0.split(separator: " ")[1] } == ["RECEIVE", "ROUTE", "DEFER", "HOLD", "DELIVER"])
        #expect(!text.contains("Q9") && !text.contains("Q8"))
    }

    @Test func rendersReadableLines() throws {
        let text = try #require(Trace.render(events: Self.bifurcated(), id: "Q2"))
        let expected = """
            Message-ID: <abc@example.com>
            Queue ids:  Q1, Q2
            Sender:     alice@example.com

            2026-11-23T09:45:00.000Z  RECEIVE  PICKUP    Q1  to bob@example.com, fax-desk@example.com; file m1.eml; 1234 bytes
            2026-11-23T09:45:00.010Z  ROUTE    ROUTING   Q2  to FAX:+15551234; via fax
            2026-11-23T09:45:00.020Z  DEFER    QUEUE     Q2  to FAX:+15551234; via fax; status 4.3.4; reason: drop directory quota full
            2026-11-23T09:45:00.030Z  HOLD     ADMIN     Q2
            2026-11-23T09:45:00.040Z  DELIVER  DELIVERY  Q1  to bob@example.com; via mailbox; status 2.0.0

            """
        #expect(text == expected)
    }

    @Test func unknownOrEmptyIDGivesNil() {
        #expect(Trace.render(events: Self.bifurcated(), id: "nope") == nil)
        #expect(Trace.render(events: Self.bifurcated(), id: "") == nil)
        #expect(Trace.render(events: Self.bifurcated(), id: "<>") == nil)
        #expect(Trace.render(events: [], id: "Q1") == nil)
    }

    @Test func queueIDWithoutMessageID() throws {
        let text = try #require(Trace.render(events: Self.bifurcated(), id: "Q8"))
        #expect(text.hasPrefix("Message-ID: (none)\nQueue ids:  Q8\n"))
    }

    @Test func worksFromATrackingLogOnDisk() throws {
        let dir = try ObservabilityTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = try TrackingLog(path: "\(dir)/tracking.log", maxBytes: 400, maxFiles: 20)
        for event in Self.bifurcated() { try log.append(event) }
        try log.close()
        let text = try #require(Trace.render(events: TrackingLogReader.events(in: dir), id: "abc@example.com"))
        #expect(text == Trace.render(events: Self.bifurcated(), id: "abc@example.com"))
    }
}

@Suite("Stats table")
struct StatsTableTests {
    @Test func quantileInterpolatesInsideBuckets() {
        let buckets: [(le: Double, count: Double)] = [(0.1, 10), (1, 90), (10, 100), (.infinity, 100)]
        #expect(StatsTable.quantile(0.05, buckets: buckets) == 0.05)   // half of the first bucket, from 0
        #expect(abs(StatsTable.quantile(0.5, buckets: buckets)! - 0.55) < 1e-9)  // rank 50: 0.1 + 0.9 * 40/80
        #expect(abs(StatsTable.quantile(0.99, buckets: buckets)! - 9.1) < 1e-9)  // rank 99: 1 + 9 * 9/10
        #expect(StatsTable.quantile(0.5, buckets: [(1, 0), (.infinity, 0)]) == nil)
        #expect(StatsTable.quantile(0.99, buckets: [(1, 1), (.infinity, 10)]) == 1)  // beyond the last bound
    }

    @Test func rendersSampleExposition() {
        let text = """
            # HELP postroom_stage_received_messages_total r
            # TYPE postroom_stage_received_messages_total counter
            postroom_stage_received_messages_total{pipeline="default",stage="deliver"} 90
            postroom_stage_received_messages_total{pipeline="default",stage="ingest"} 100
            postroom_stage_received_messages_total{pipeline="default",stage="header-rewrite"} 95
            # HELP postroom_stage_sent_messages_total s
            # TYPE postroom_stage_sent_messages_total counter
            postroom_stage_sent_messages_total{pipeline="default",stage="deliver"} 85
            postroom_stage_sent_messages_total{pipeline="default",stage="ingest"} 97
            # HELP postroom_stage_errors_total e
            # TYPE postroom_stage_errors_total counter
            postroom_stage_errors_total{pipeline="default",reason="io",stage="deliver"} 2
            postroom_stage_errors_total{pipeline="default",reason="quota",stage="deliver"} 3
            # HELP postroom_stage_in_flight f
            # TYPE postroom_stage_in_flight gauge
            postroom_stage_in_flight{pipeline="default",stage="deliver"} 4
            # HELP postroom_stage_processing_seconds p
            # TYPE postroom_stage_processing_seconds histogram
            postroom_stage_processing_seconds_bucket{pipeline="default",stage="deliver",le="0.001"} 10
            postroom_stage_processing_seconds_bucket{pipeline="default",stage="deliver",le="0.01"} 90
            postroom_stage_processing_seconds_bucket{pipeline="default",stage="deliver",le="0.1"} 100
            postroom_stage_processing_seconds_bucket{pipeline="default",stage="deliver",le="+Inf"} 100
            postroom_stage_processing_seconds_sum{pipeline="default",stage="deliver"} 0.9
            postroom_stage_processing_seconds_count{pipeline="default",stage="deliver"} 100
            # HELP postroom_queue_messages q
            # TYPE postroom_queue_messages gauge
            postroom_queue_messages{connector="fax",pipeline="default",state="active"} 3
            postroom_queue_messages{connector="fax",pipeline="default",state="deferred"} 7
            postroom_queue_messages{connector="fax",pipeline="default",state="held"} 1
            postroom_queue_messages{connector="fax",pipeline="default",state="poison"} 0
            # HELP postroom_delivery_attempts_total a
            # TYPE postroom_delivery_attempts_total counter
            postroom_delivery_attempts_total{connector="fax",pipeline="default",result="failed"} 2
            # HELP postroom_delivered_messages_total d
            # TYPE postroom_delivered_messages_total counter
            postroom_delivered_messages_total{connector="fax",pipeline="default"} 40
            postroom_delivered_messages_total{connector="mailbox",pipeline="default"} 45
            # HELP postroom_messages_rejected_total x
            # TYPE postroom_messages_rejected_total counter
            postroom_messages_rejected_total{outcome="badmail",pipeline="default"} 1
            postroom_messages_rejected_total{outcome="report",pipeline="default"} 2

            """
        let expected = """
            PIPELINE  STAGE            IN  OUT  FAILED  IN FLIGHT  BUFFERED  P50 MS  P99 MS
            default   ingest          100   97       0          -         -       -       -
            default   deliver          90   85       5          4         -     5.5    91.0
            default   header-rewrite   95    -       0          -         -       -       -

            PIPELINE  CONNECTOR  QUEUED  DEFERRED  HELD  POISON  DELIVERED  FAILED
            default   fax             3         7     1       0         40       2
            default   mailbox         -         -     -       -         45       -

            PIPELINE  E2E P50 MS  E2E P99 MS  BADMAIL  REPORTED  OVERFLOWS  RESCANS
            default            -           -        1         2          -        -

            """
        #expect(StatsTable.render(exposition: text) == expected)
    }

    @Test func rendersTheRegistryAndToleratesGarbage() {
        let table = StatsTable.render(exposition: sampleRegistry().exposition())
        #expect(table.contains("default   ingest"))
        #expect(table.contains("default   fax"))
        let empty = StatsTable.render(exposition: "this is not a metrics file")
        #expect(empty.contains("(none)"))
    }
}

@Suite("systemd unit")
struct SystemdUnitTests {
    static let unitPath = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("contrib/postroom.service").path

    @Test func unitHasTheContractedSettings() throws {
        let unit = try String(contentsOfFile: Self.unitPath, encoding: .utf8)
        for line in [
            "ExecStart=/usr/local/bin/postroom run /etc/postroom/default.json5 --spool /var/spool/postroom",
            "KillSignal=SIGTERM", "TimeoutStopSec=45", "Restart=on-failure", "ExecReload=/bin/kill -HUP $MAINPID",
            "User=postroom", "ReadWritePaths=/var/spool/postroom", "Type=simple",
        ] {
            #expect(unit.split(separator: "\n").contains(Substring(line)), "missing \(line)")
        }
    }

    /// `systemd-analyze verify` checks syntax and that ExecStart is executable, so it runs on a copy whose
    /// ExecStart is /bin/true (the postroom binary is not installed where tests run). Skipped when
    /// systemd-analyze is not installed.
    @Test(.enabled(if: ObservabilityTestSupport.which("systemd-analyze") != nil, "systemd-analyze not installed"))
    func systemdAnalyzeVerifies() throws {
        let unit = try String(contentsOfFile: Self.unitPath, encoding: .utf8)
        let patched = unit.split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.hasPrefix("ExecStart=") ? "ExecStart=/bin/true" : String($0) }
            .joined(separator: "\n")
        let dir = try ObservabilityTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try patched.write(toFile: "\(dir)/postroom.service", atomically: true, encoding: .utf8)
        let result = try ObservabilityTestSupport.run(ObservabilityTestSupport.which("systemd-analyze")!, ["verify", "\(dir)/postroom.service"])
        #expect(result.status == 0, "systemd-analyze: \(result.output)")
        #expect(!result.output.contains("postroom.service:"), "systemd-analyze warnings: \(result.output)")
    }
}
