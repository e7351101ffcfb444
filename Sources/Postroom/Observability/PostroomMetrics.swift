/// The design.md §7 series of one pipeline stage, labelled `pipeline` and `stage`.
///
/// The runner creates one per stage and wraps every message's handling in ``measure(errorReason:_:)``
/// (or updates the handles directly), so a new stage kind gets its metrics for free. All handles are
/// created up front, the error counters of ``errorReasons`` included, so every series exists at 0 from
/// the start (`increase()` over the first burst then counts it); other reasons appear on first use.
public struct StageMetrics: Sendable {
    /// Metric names, shared with ``StatsTable``.
    public enum Name {
        public static let received = "postroom_stage_received_messages_total"
        public static let sent = "postroom_stage_sent_messages_total"
        public static let errors = "postroom_stage_errors_total"
        public static let processing = "postroom_stage_processing_seconds"
        public static let inFlight = "postroom_stage_in_flight"
        public static let buffer = "postroom_stage_buffer_messages"
    }

    private let registry: MetricsRegistry
    private let labels: [String: String]

    /// Messages the stage accepted from its inbox.
    public let received: Counter
    /// Messages the stage passed on (to the next stage, a queue or a final destination).
    public let sent: Counter
    /// Time spent handling one message, in seconds.
    public let processing: Histogram
    /// Messages currently being handled by the stage.
    public let inFlight: Gauge
    /// Messages waiting in the stage's bounded inbox.
    public let buffer: Gauge

    public init(registry: MetricsRegistry, pipeline: String, stage: String) {
        self.registry = registry
        self.labels = ["pipeline": pipeline, "stage": stage]
        received = registry.counter(Name.received, help: "Messages received by the stage.", labels: labels)
        sent = registry.counter(Name.sent, help: "Messages sent on by the stage.", labels: labels)
        processing = registry.histogram(Name.processing, help: "Time a stage spends on one message, in seconds.", labels: labels)
        inFlight = registry.gauge(Name.inFlight, help: "Messages being handled by the stage.", labels: labels)
        buffer = registry.gauge(Name.buffer, help: "Messages waiting in the stage inbox.", labels: labels)
        for reason in Self.errorReasons { _ = errors(reason: reason) }
    }

    /// The `reason` values the runner records for any stage (see ``Telemetry``), created at 0.
    public static let errorReasons = ["config", "disk_full", "error", "io"]

    /// The error counter for `reason` (a short, low-cardinality word such as `io`, `parse`, `limit`;
    /// never a message id or a path).
    public func errors(reason: String) -> Counter {
        registry.counter(Name.errors, help: "Messages a stage failed to handle, by reason.", labels: labels.merging(["reason": reason]) { $1 })
    }

    /// Records one message through the stage: received, in flight while `body` runs, its processing time,
    /// then sent on success or an error with `errorReason(error)` on failure (the error is rethrown).
    public func measure<T>(
        errorReason: (any Error) -> String = { _ in "error" },
        _ body: () async throws -> T
    ) async rethrows -> T {
        received.increment()
        inFlight.increment()
        let clock = ContinuousClock()
        let start = clock.now
        defer {
            processing.observe(clock.now - start)
            inFlight.decrement()
        }
        do {
            let result = try await body()
            sent.increment()
            return result
        } catch {
            errors(reason: errorReason(error)).increment()
            throw error
        }
    }
}

/// The design.md §7 series of one connector's queue and deliveries, labelled `pipeline` and `connector`.
public struct ConnectorMetrics: Sendable {
    /// Metric names, shared with ``StatsTable``.
    public enum Name {
        public static let queue = "postroom_queue_messages"
        public static let attempts = "postroom_delivery_attempts_total"
        public static let delivered = "postroom_delivered_messages_total"
    }

    /// States of a message in a connector queue (`state` label).
    public enum QueueState: String, Sendable, CaseIterable {
        case active, deferred, held, poison
    }

    /// Outcomes of one delivery attempt (`result` label).
    public enum AttemptResult: String, Sendable, CaseIterable {
        case delivered, deferred, failed
    }

    private let queues: [QueueState: Gauge]
    private let results: [AttemptResult: Counter]
    /// Messages delivered through this connector (one per message and connector).
    public let delivered: Counter

    public init(registry: MetricsRegistry, pipeline: String, connector: String) {
        let labels = ["pipeline": pipeline, "connector": connector]
        var queues: [QueueState: Gauge] = [:]
        for state in QueueState.allCases {
            queues[state] = registry.gauge(Name.queue, help: "Messages in a connector queue, by state.", labels: labels.merging(["state": state.rawValue]) { $1 })
        }
        var results: [AttemptResult: Counter] = [:]
        for result in AttemptResult.allCases {
            results[result] = registry.counter(Name.attempts, help: "Delivery attempts, by result.", labels: labels.merging(["result": result.rawValue]) { $1 })
        }
        self.queues = queues
        self.results = results
        delivered = registry.counter(Name.delivered, help: "Messages delivered by the connector.", labels: labels)
    }

    /// The gauge of messages in `state`.
    public func queue(_ state: QueueState) -> Gauge { queues[state]! }

    /// The counter of delivery attempts that ended with `result`.
    public func attempts(_ result: AttemptResult) -> Counter { results[result]! }
}

/// Whole-pipeline series (design.md §7), labelled `pipeline`.
public struct PipelineMetrics: Sendable {
    /// Metric names, shared with ``StatsTable``.
    public enum Name {
        public static let endToEnd = "postroom_end_to_end_seconds"
        public static let inotifyOverflows = "postroom_inotify_overflows_total"
        public static let rescans = "postroom_rescans_total"
        public static let rejected = "postroom_messages_rejected_total"
    }

    /// How a message that could not be accepted was turned away (`outcome` label).
    public enum RejectOutcome: String, Sendable, CaseIterable {
        /// Renamed `.bad` in place (no usable sender).
        case badmail
        /// A non-delivery report was sent to the sender.
        case report
    }

    /// Pickup to delivered, in seconds, once per delivered message and connector.
    public let endToEnd: Histogram
    /// `IN_Q_OVERFLOW` events seen by the watcher.
    public let inotifyOverflows: Counter
    /// Full directory rescans (startup, overflow, lost watch).
    public let rescans: Counter
    private let rejectedCounters: [RejectOutcome: Counter]

    public init(registry: MetricsRegistry, pipeline: String) {
        let labels = ["pipeline": pipeline]
        endToEnd = registry.histogram(Name.endToEnd, help: "Time from pickup to delivery, in seconds.", labels: labels)
        inotifyOverflows = registry.counter(Name.inotifyOverflows, help: "inotify queue overflows.", labels: labels)
        rescans = registry.counter(Name.rescans, help: "Full rescans of the input directories.", labels: labels)
        var rejected: [RejectOutcome: Counter] = [:]
        for outcome in RejectOutcome.allCases {
            rejected[outcome] = registry.counter(Name.rejected, help: "Messages rejected at ingest, by outcome.", labels: labels.merging(["outcome": outcome.rawValue]) { $1 })
        }
        rejectedCounters = rejected
    }

    /// The counter of messages rejected with `outcome`.
    public func rejected(_ outcome: RejectOutcome) -> Counter { rejectedCounters[outcome]! }
}

/// The series of one `command` stage, labelled `pipeline`, `stage` (the stage's name) and `result`.
public struct CommandMetrics: Sendable {
    public static let exitsName = "postroom_command_exits_total"

    /// How one run of the program ended (`result` label): few values, so the series stay few.
    public enum Result: String, Sendable, CaseIterable {
        /// Exit 0 with usable output: the message went on.
        case pass
        /// Exit 75 or a `4.x.x` first line.
        case `defer`
        /// A `5.x.x` first line or any other non-zero status.
        case reject
        /// Killed after its time limit.
        case timeout
        /// Killed by a signal it did not expect.
        case signal
        /// Could not be found or started.
        case unavailable
        /// A filter's output that Postroom refused (empty, too large, not a message, a field lost).
        case invalidOutput = "invalid_output"
    }

    private let counters: [Result: Counter]

    public init(registry: MetricsRegistry, pipeline: String, stage: String) {
        var counters: [Result: Counter] = [:]
        for result in Result.allCases {
            counters[result] = registry.counter(Self.exitsName, help: "Runs of a command stage's program, by result.",
                                                labels: ["pipeline": pipeline, "stage": stage, "result": result.rawValue])
        }
        self.counters = counters
    }

    /// The counter of runs that ended with `result`.
    public func exits(_ result: Result) -> Counter { counters[result]! }
}
