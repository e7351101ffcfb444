import Foundation
import PostroomSystem
import Synchronization

/// Everything a running pipeline reports: stage-level metrics, connector metrics and the
/// message tracking log, behind one object the runner, the ingest source and the delivery
/// side call into.
///
/// The runner records every stage through ``stageStarted(_:buffered:)``/``stageFinished(_:seconds:result:)``,
/// so a new stage kind gets its metrics without code of its own. Without a tracking log
/// (`check`, `explain`, tests) events are simply not written.
public final class Telemetry: Sendable {
    public let registry: MetricsRegistry
    public let pipelineName: String
    public let pipelineMetrics: PipelineMetrics
    private let stages: Mutex<[String: StageMetrics]> = Mutex([:])
    private let connectors: Mutex<[String: ConnectorMetrics]> = Mutex([:])
    private let tracking: TrackingLog?
    private let log: Logger

    public init(pipeline: String, registry: MetricsRegistry = MetricsRegistry(), tracking: TrackingLog? = nil, log: Logger = Logger()) {
        self.registry = registry
        self.pipelineName = pipeline
        self.pipelineMetrics = PipelineMetrics(registry: registry, pipeline: pipeline)
        self.tracking = tracking
        self.log = log
    }

    /// Telemetry that keeps metrics in memory only and writes no tracking log.
    public static func inMemory(pipeline: String) -> Telemetry {
        Telemetry(pipeline: pipeline, registry: MetricsRegistry(processMetrics: false))
    }

    public func stage(_ name: String) -> StageMetrics {
        stages.withLock { table in
            Self.cached(&table, name) { StageMetrics(registry: registry, pipeline: pipelineName, stage: name) }
        }
    }

    public func connector(_ name: String) -> ConnectorMetrics {
        connectors.withLock { table in
            Self.cached(&table, name) { ConnectorMetrics(registry: registry, pipeline: pipelineName, connector: name) }
        }
    }

    /// The series of one stage or connector, made once and then reused.
    private static func cached<Metrics>(_ table: inout [String: Metrics], _ name: String, make: () -> Metrics) -> Metrics {
        if let existing = table[name] { return existing }
        let metrics = make()
        table[name] = metrics
        return metrics
    }

    /// Creates every series of these stages and connectors at 0, and `postroom_intake_paused` at 0,
    /// so they are exported from the start and not only after the first message.
    public func declare(stages: [String], connectors: [String]) {
        for name in stages { _ = stage(name) }
        _ = stage("ingest").errors(reason: "hostile_file")
        for name in connectors { _ = connector(name) }
        _ = intakePausedSeries()
    }

    private func intakePausedSeries() -> Gauge {
        registry.gauge("postroom_intake_paused", help: "1 while intake is paused because the spool filesystem is nearly full.",
                       labels: ["pipeline": pipelineName])
    }

    // MARK: Stages (called by the runner)

    func stageStarted(_ metrics: StageMetrics, buffered: Int) {
        metrics.received.increment()
        metrics.inFlight.increment()
        metrics.buffer.set(buffered)
    }

    func stageFinished(_ metrics: StageMetrics, seconds: Double, result: StageResult) {
        metrics.processing.observe(seconds)
        metrics.inFlight.decrement()
        metrics.sent.increment()
        if case .finished(let outcome) = result {
            switch outcome {
            case .badmail: pipelineMetrics.rejected(.badmail).increment()
            case .reported: pipelineMetrics.rejected(.report).increment()
            case .queued, .dropped, .deferred: break
            }
        }
    }

    func stageFailed(_ metrics: StageMetrics, seconds: Double, error: any Error) {
        metrics.processing.observe(seconds)
        metrics.inFlight.decrement()
        let reason: String
        switch error {
        case let error as SystemError: reason = error.isNoSpace ? "disk_full" : "io"
        case is ConfigError: reason = "config"
        default: reason = "error"
        }
        metrics.errors(reason: reason).increment()
    }

    // MARK: Intake

    func claimed(_ source: IntakeSource) {
        let metrics = stage("ingest")
        metrics.received.increment()
        metrics.sent.increment()
    }

    func hostileFile(_ path: String, reason: String, source: IntakeSource) {
        let metrics = stage("ingest")
        metrics.received.increment()
        metrics.errors(reason: "hostile_file").increment()
        pipelineMetrics.rejected(.badmail).increment()
        track(TrackingEvent(event: .badmail, source: .init(source), queueID: "", messageID: "",
                            sender: "", recipients: [], reason: reason, file: path))
    }

    func intakePaused(_ paused: Bool) {
        intakePausedSeries().set(paused ? 1 : 0)
    }

    func inotifyOverflowed() { pipelineMetrics.inotifyOverflows.increment() }
    func rescanned() { pipelineMetrics.rescans.increment() }

    // MARK: Delivery

    func attempted(_ entry: QueueEntry, results: [DeliveryResult]) {
        let metrics = connector(entry.connector)
        for result in results {
            switch result {
            case .delivered:
                metrics.attempts(.delivered).increment()
                metrics.delivered.increment()
            case .deferred: metrics.attempts(.deferred).increment()
            case .failed: metrics.attempts(.failed).increment()
            }
        }
    }

    func delivered(_ entry: QueueEntry) {
        pipelineMetrics.endToEnd.observe(max(0, Date().timeIntervalSince(entry.arrival)))
    }

    /// Sets the queue gauges from a count per connector and state.
    public func updateQueueGauges(_ counts: [String: [QueueState: Int]]) {
        for (name, states) in counts {
            let metrics = connector(name)
            metrics.queue(.active).set(states[.active] ?? 0)
            metrics.queue(.deferred).set(states[.deferred] ?? 0)
            metrics.queue(.held).set(states[.held] ?? 0)
            metrics.queue(.poison).set(states[.poison] ?? 0)
        }
    }

    // MARK: Tracking

    /// Appends one event to the tracking log; a failing log is reported but never stops mail.
    public func track(_ event: TrackingEvent) {
        track([event])
    }

    /// Records events that happened together, in one write.
    public func track(_ events: [TrackingEvent]) {
        guard let tracking, !events.isEmpty else { return }
        do { try tracking.append(events) } catch { log.warning("cannot write the tracking log: \(error)") }
    }

    public func close() {
        try? tracking?.flush()
        try? tracking?.close()
    }
}

extension TrackingEvent.Source {
    init(_ source: IntakeSource) {
        switch source {
        case .pickup: self = .pickup
        // Exchange logs Replay directory submissions under ADMIN and generated reports under DSN.
        case .replay: self = .admin
        case .report: self = .dsn
        }
    }
}
