import Foundation
import Testing
@testable import Postroom

@Suite("Metrics registry")
struct MetricsRegistryTests {
    @Test func counterCountsAndIsShared() {
        let registry = MetricsRegistry(processMetrics: false)
        let a = registry.counter("x_total", help: "x", labels: ["stage": "route"])
        a.increment()
        a.increment(by: 41)
        let b = registry.counter("x_total", help: "x", labels: ["stage": "route"])
        #expect(a === b)
        #expect(b.value == 42)
        let other = registry.counter("x_total", help: "x", labels: ["stage": "deliver"])
        #expect(other !== a)
        #expect(other.value == 0)
    }

    @Test func gaugeSetsAndAdds() {
        let registry = MetricsRegistry(processMetrics: false)
        let g = registry.gauge("g", help: "g")
        g.set(10)
        g.add(2.5)
        g.decrement()
        g.increment()
        g.add(-0.5)
        #expect(g.value == 12)
        g.set(-3)
        #expect(g.value == -3)
        #expect(registry.gauge("g", help: "g") === g)
    }

    @Test func histogramBucketsAreInclusiveAndCumulative() {
        let registry = MetricsRegistry(processMetrics: false)
        let h = registry.histogram("h_seconds", help: "h", buckets: [0.1, 1, 10])
        for v in [0.05, 0.1, 0.5, 1, 5, 100, .nan] { h.observe(v) }
        #expect(h.count == 6)  // NaN ignored
        #expect(h.sum == 0.05 + 0.1 + 0.5 + 1 + 5 + 100)
        #expect(h.cumulativeCounts == [2, 4, 5, 6])
        h.observe(Duration.milliseconds(250))
        #expect(h.cumulativeCounts == [2, 5, 6, 7])
    }

    @Test func defaultBucketsSpanMillisecondsToMinutes() {
        let buckets = [Double].defaultLatency
        #expect(buckets.first == 0.0005)
        #expect(buckets.last == 300)
        #expect(zip(buckets, buckets.dropFirst()).allSatisfy { $0 < $1 })
    }

    @Test func exactExpositionText() {
        let registry = MetricsRegistry(processMetrics: false)
        registry.counter("b_total", help: "B things.", labels: ["stage": "route", "pipeline": "p"]).increment(by: 3)
        registry.counter("b_total", help: "B things.", labels: ["stage": "deliver", "pipeline": "p"]).increment()
        registry.gauge("a_in_flight", help: "A gauge.").set(1.5)
        let h = registry.histogram("c_seconds", help: "C latency.", labels: ["stage": "x"], buckets: [0.005, 1, 2.5])
        h.observe(0.001)
        h.observe(2)
        let expected = """
            # HELP a_in_flight A gauge.
            # TYPE a_in_flight gauge
            a_in_flight 1.5
            # HELP b_total B things.
            # TYPE b_total counter
            b_total{pipeline="p",stage="deliver"} 1
            b_total{pipeline="p",stage="route"} 3
            # HELP c_seconds C latency.
            # TYPE c_seconds histogram
            c_seconds_bucket{stage="x",le="0.005"} 1
            c_seconds_bucket{stage="x",le="1"} 1
            c_seconds_bucket{stage="x",le="2.5"} 2
            c_seconds_bucket{stage="x",le="+Inf"} 2
            c_seconds_sum{stage="x"} 2.001
            c_seconds_count{stage="x"} 2

            """
        #expect(registry.exposition() == expected)
    }

    @Test func labelValuesAndHelpAreEscaped() throws {
        let registry = MetricsRegistry(processMetrics: false)
        registry.counter("e_total", help: "Back\\slash and\nnewline.", labels: ["reason": "a\\b \"q\"\nnext"]).increment()
        let text = registry.exposition()
        #expect(text.contains(#"e_total{reason="a\\b \"q\"\nnext"} 1"#))
        #expect(text.contains(#"# HELP e_total Back\\slash and\nnewline."#))
        // And the parser gets the original value back.
        let families = try PrometheusTextParser.parse(text)
        #expect(families.first?.samples.first?.labels["reason"] == "a\\b \"q\"\nnext")
        #expect(families.first?.help == "Back\\slash and\nnewline.")
    }

    @Test func concurrentUpdatesAreExact() async {
        let registry = MetricsRegistry(processMetrics: false)
        let tasks = 64
        let perTask = 5_000
        await withTaskGroup(of: Void.self) { group in
            for t in 0 ..< tasks {
                group.addTask {
                    // Half the tasks look the handle up each time, as a careless caller would.
                    let counter = registry.counter("n_total", help: "n")
                    let gauge = registry.gauge("g", help: "g")
                    let histogram = registry.histogram("h_seconds", help: "h")
                    for i in 0 ..< perTask {
                        if t % 2 == 0 { counter.increment() } else { registry.counter("n_total", help: "n").increment() }
                        gauge.add(1)
                        gauge.add(-1)
                        gauge.add(1)
                        histogram.observe(Double(i % 10) / 1000)
                    }
                }
            }
        }
        #expect(registry.counter("n_total", help: "n").value == tasks * perTask)
        #expect(registry.gauge("g", help: "g").value == Double(tasks * perTask))
        let h = registry.histogram("h_seconds", help: "h")
        #expect(h.count == tasks * perTask)
        #expect(h.cumulativeCounts.last == tasks * perTask)
    }

    @Test func expositionDuringUpdatesStaysConsistent() async throws {
        let registry = MetricsRegistry()
        let h = registry.histogram("h_seconds", help: "h")
        let writer = Task {
            var i = 0
            while !Task.isCancelled {
                h.observe(Double(i % 1000) / 100)
                i += 1
            }
        }
        for _ in 0 ..< 200 {
            _ = try PrometheusTextParser.parse(registry.exposition())  // strict: +Inf == _count every time
        }
        writer.cancel()
    }

    @Test func processMetricsArePresentAndPlausible() throws {
        let registry = MetricsRegistry()
        let families = try PrometheusTextParser.parse(registry.exposition())
        let start = try #require(families.first { $0.name == "process_start_time_seconds" }?.samples.first?.value)
        let rss = try #require(families.first { $0.name == "process_resident_memory_bytes" }?.samples.first?.value)
        let now = Date().timeIntervalSince1970
        #expect(start > now - 86_400 && start <= now + 1)
        #expect(rss > 1_000_000)
    }

    @Test func stageConnectorAndPipelineSeries() async throws {
        let registry = MetricsRegistry(processMetrics: false)
        let stage = StageMetrics(registry: registry, pipeline: "default", stage: "route")
        struct Boom: Error {}
        let value = await stage.measure { 7 }
        #expect(value == 7)
        await #expect(throws: Boom.self) {
            try await stage.measure(errorReason: { _ in "boom" }) { throw Boom() }
        }
        stage.buffer.set(3)
        #expect(stage.received.value == 2)
        #expect(stage.sent.value == 1)
        #expect(stage.errors(reason: "boom").value == 1)
        #expect(stage.inFlight.value == 0)
        #expect(stage.processing.count == 2)

        let connector = ConnectorMetrics(registry: registry, pipeline: "default", connector: "fax")
        connector.queue(.deferred).set(4)
        connector.attempts(.delivered).increment()
        connector.delivered.increment()
        let pipeline = PipelineMetrics(registry: registry, pipeline: "default")
        pipeline.rejected(.badmail).increment(by: 2)
        pipeline.rejected(.report).increment()
        pipeline.endToEnd.observe(0.2)
        pipeline.rescans.increment()

        let text = registry.exposition()
        for line in [
            #"postroom_stage_received_messages_total{pipeline="default",stage="route"} 2"#,
            #"postroom_stage_sent_messages_total{pipeline="default",stage="route"} 1"#,
            #"postroom_stage_errors_total{pipeline="default",reason="boom",stage="route"} 1"#,
            #"postroom_stage_processing_seconds_count{pipeline="default",stage="route"} 2"#,
            #"postroom_stage_in_flight{pipeline="default",stage="route"} 0"#,
            #"postroom_stage_buffer_messages{pipeline="default",stage="route"} 3"#,
            #"postroom_queue_messages{connector="fax",pipeline="default",state="deferred"} 4"#,
            #"postroom_queue_messages{connector="fax",pipeline="default",state="poison"} 0"#,
            #"postroom_delivery_attempts_total{connector="fax",pipeline="default",result="delivered"} 1"#,
            #"postroom_delivery_attempts_total{connector="fax",pipeline="default",result="failed"} 0"#,
            #"postroom_delivered_messages_total{connector="fax",pipeline="default"} 1"#,
            #"postroom_messages_rejected_total{outcome="badmail",pipeline="default"} 2"#,
            #"postroom_messages_rejected_total{outcome="report",pipeline="default"} 1"#,
            #"postroom_end_to_end_seconds_count{pipeline="default"} 1"#,
            #"postroom_inotify_overflows_total{pipeline="default"} 0"#,
            #"postroom_rescans_total{pipeline="default"} 1"#,
        ] {
            #expect(text.contains(line + "\n"), "missing \(line)")
        }
        _ = try PrometheusTextParser.parse(text)
    }

    /// Runs `promtool check metrics` on a realistic registry. promtool is installed in CI
    /// (`apt-get install prometheus`); without it this test is skipped.
    @Test(.enabled(if: ObservabilityTestSupport.which("promtool") != nil, "promtool not installed"))
    func promtoolAcceptsExposition() throws {
        let registry = sampleRegistry()
        let result = try ObservabilityTestSupport.run(ObservabilityTestSupport.which("promtool")!, ["check", "metrics"], stdin: registry.exposition())
        #expect(result.status == 0, "promtool: \(result.output)")
        #expect(!result.output.contains("problem"), "promtool: \(result.output)")
    }
}

/// A registry with every Postroom series populated, shared by several tests.
func sampleRegistry() -> MetricsRegistry {
    let registry = MetricsRegistry()
    for (i, name) in ["ingest", "validate", "categorize", "route", "deliver"].enumerated() {
        let stage = StageMetrics(registry: registry, pipeline: "default", stage: name)
        stage.received.increment(by: 100 - i)
        stage.sent.increment(by: 99 - i)
        stage.errors(reason: "io").increment()
        for j in 0 ..< 50 { stage.processing.observe(Double(j) / 1000) }
    }
    let fax = ConnectorMetrics(registry: registry, pipeline: "default", connector: "fax")
    fax.queue(.active).set(2)
    fax.attempts(.deferred).increment(by: 3)
    fax.delivered.increment(by: 5)
    let pipeline = PipelineMetrics(registry: registry, pipeline: "default")
    pipeline.endToEnd.observe(0.5)
    pipeline.rejected(.badmail).increment()
    return registry
}
