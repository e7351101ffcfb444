// Observability module: how the daemon wires it (design.md §5, §7).
//
//   let registry = MetricsRegistry()                       // one per process
//   let stage = StageMetrics(registry:, pipeline:, stage:)  // one per stage; runner calls stage.measure { ... }
//   let writer = MetricsFileWriter(registry:, path: "<spool>/metrics.prom")
//   group.addTask { await writer.run(every: .seconds(10)) } // cancel at shutdown: writes once more
//   let http = try MetricsHTTPServer(listen: "127.0.0.1:9465", registry:); http.start() ... http.stop()
//   let tracking = try TrackingLog(path: "<spool>/tracking.log"); try? tracking.append(event); try? tracking.close()
//   CLI: StatsTable.render(exposition:), Trace.render(events: TrackingLogReader.events(in: spool), id:)

import Foundation
import PostroomSystem
import Synchronization

// MARK: - Handles

/// A monotonically increasing count (Prometheus `counter`), e.g. messages received by a stage.
///
/// Updates are one relaxed atomic add: no lock, no allocation, safe from any actor or thread.
/// Counts are integers and therefore exact (no floating-point drift after millions of increments).
public final class Counter: Sendable {
    private let storage = Atomic<UInt64>(0)

    init() {}

    /// Adds `amount` (must be ≥ 0: a counter never goes down; a negative amount is a programming error).
    @inlinable
    public func increment(by amount: Int = 1) {
        precondition(amount >= 0, "a counter cannot decrease")
        _add(UInt64(amount))
    }

    @usableFromInline
    func _add(_ amount: UInt64) {
        storage.add(amount, ordering: .relaxed)
    }

    /// The current count.
    public var value: Int { Int(storage.load(ordering: .relaxed)) }
}

/// A value that goes up and down (Prometheus `gauge`), e.g. messages in flight or queued.
///
/// Stored as the bit pattern of a `Double` in one atomic word: `set` is a store, `add` a compare-exchange
/// loop, so concurrent `add(1)` / `add(-1)` from many actors never lose an update.
public final class Gauge: Sendable {
    private let bits = Atomic<UInt64>(0.0.bitPattern)

    init() {}

    /// Replaces the value.
    public func set(_ value: Double) {
        bits.store(value.bitPattern, ordering: .relaxed)
    }

    /// Replaces the value with an integer count.
    public func set(_ value: Int) { set(Double(value)) }

    /// Adds `delta` (may be negative).
    public func add(_ delta: Double) {
        var current = bits.load(ordering: .relaxed)
        while true {
            let next = (Double(bitPattern: current) + delta).bitPattern
            let (exchanged, original) = bits.compareExchange(
                expected: current, desired: next, ordering: .relaxed)
            if exchanged { return }
            current = original
        }
    }

    /// Adds 1: convenience for "entered".
    public func increment() { add(1) }
    /// Subtracts 1: convenience for "left".
    public func decrement() { add(-1) }

    /// The current value.
    public var value: Double { Double(bitPattern: bits.load(ordering: .relaxed)) }
}

/// A distribution of observations in fixed buckets (Prometheus `histogram`), e.g. stage latency in seconds.
///
/// One small uncontended lock per observation keeps `count`, `sum` and the buckets consistent with each other,
/// so an exposition never shows a `+Inf` bucket that differs from `_count` (promtool rejects that).
public final class Histogram: Sendable {
    /// Upper bounds (`le`), strictly increasing, without `+Inf`.
    public let upperBounds: [Double]

    struct Snapshot: Sendable {
        /// Non-cumulative counts; the last slot is the `+Inf` overflow bucket.
        var counts: [UInt64]
        var sum: Double
        var count: UInt64
    }

    private let state: Mutex<Snapshot>

    init(upperBounds: [Double]) {
        self.upperBounds = upperBounds
        self.state = Mutex(Snapshot(counts: Array(repeating: 0, count: upperBounds.count + 1), sum: 0, count: 0))
    }

    /// Records one observation (seconds for latency histograms). NaN is ignored: it would poison `_sum`.
    public func observe(_ value: Double) {
        guard !value.isNaN else { return }
        // Binary search for the first bound >= value (buckets are `le`, i.e. inclusive).
        var low = 0
        var high = upperBounds.count
        while low < high {
            let mid = (low + high) / 2
            if upperBounds[mid] >= value { high = mid } else { low = mid + 1 }
        }
        let index = low
        state.withLock {
            $0.counts[index] += 1
            $0.sum += value
            $0.count += 1
        }
    }

    /// Records a duration in seconds.
    public func observe(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        observe(Double(seconds) + Double(attoseconds) / 1e18)
    }

    /// Runs `body` and records how long it took, whether it returns or throws.
    public func time<T>(_ body: () async throws -> T) async rethrows -> T {
        let clock = ContinuousClock()
        let start = clock.now
        defer { observe(clock.now - start) }
        return try await body()
    }

    /// Number of observations so far.
    public var count: Int { Int(state.withLock { $0.count }) }
    /// Sum of all observations.
    public var sum: Double { state.withLock { $0.sum } }

    /// Cumulative counts per upper bound, the last entry being `+Inf` (equal to ``count``).
    public var cumulativeCounts: [Int] {
        snapshot().cumulative
    }

    func snapshot() -> (cumulative: [Int], sum: Double, count: Int) {
        let s = state.withLock { $0 }
        var running: UInt64 = 0
        var cumulative: [Int] = []
        cumulative.reserveCapacity(s.counts.count)
        for c in s.counts {
            running += c
            cumulative.append(Int(running))
        }
        return (cumulative, s.sum, Int(s.count))
    }
}

extension Array where Element == Double {
    /// Latency buckets in seconds, from half a millisecond to five minutes: file stages take
    /// milliseconds, a delivery agent or a full disk can take minutes.
    public static var defaultLatency: [Double] {
        [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300]
    }
}

// MARK: - Registry

/// The kind of a metric family, as written on its `# TYPE` line.
public enum MetricType: String, Sendable, Equatable {
    case counter, gauge, histogram, untyped, summary
}

/// The process-wide set of metrics and their Prometheus text rendering.
///
/// - Handles returned by ``counter(_:help:labels:)``, ``gauge(_:help:labels:)`` and
///   ``histogram(_:help:labels:buckets:)`` are cached: asking twice for the same name and labels returns the
///   same object, so callers should keep the handle and update it without touching the registry again.
/// - The registry lock is held only to look up or create a series and to copy the list of series for
///   ``exposition()``; updates never take it.
/// - Misuse (invalid names, one name registered with two types or two bucket layouts) is a programming
///   error and stops the process, like swift-metrics: metrics never throw.
public final class MetricsRegistry: Sendable {
    private enum Series: Sendable {
        case counter(Counter)
        case gauge(Gauge)
        case histogram(Histogram)
    }

    private struct Family: Sendable {
        let name: String
        let help: String
        let type: MetricType
        let buckets: [Double]?
        /// Keyed by the rendered, sorted label set (`a="1",b="2"`), which is also the sort key for output.
        var series: [String: Series]
    }

    private let families: Mutex<[String: Family]>
    private let processMetrics: ProcessMetrics?

    /// Creates an empty registry.
    /// - Parameter processMetrics: when true (the default) the registry also exports
    ///   `process_start_time_seconds` and `process_resident_memory_bytes`, refreshed at each exposition.
    public init(processMetrics: Bool = true) {
        var initial: [String: Family] = [:]
        if processMetrics {
            let start = Gauge()
            start.set(ProcessMetrics.startTimeSeconds())
            let rss = Gauge()
            initial["process_start_time_seconds"] = Family(
                name: "process_start_time_seconds", help: "Start time of the process since unix epoch in seconds.",
                type: .gauge, buckets: nil, series: ["": .gauge(start)])
            initial["process_resident_memory_bytes"] = Family(
                name: "process_resident_memory_bytes", help: "Resident memory size in bytes.",
                type: .gauge, buckets: nil, series: ["": .gauge(rss)])
            self.processMetrics = ProcessMetrics(residentMemory: rss)
        } else {
            self.processMetrics = nil
        }
        self.families = Mutex(initial)
    }

    /// Returns the counter `name{labels}`, creating it at zero on first use.
    public func counter(_ name: String, help: String, labels: [String: String] = [:]) -> Counter {
        guard case let .counter(c) = series(name, help: help, type: .counter, labels: labels, buckets: nil, make: { .counter(Counter()) }) else {
            preconditionFailure("\(name) is not a counter")
        }
        return c
    }

    /// Returns the gauge `name{labels}`, creating it at zero on first use.
    public func gauge(_ name: String, help: String, labels: [String: String] = [:]) -> Gauge {
        guard case let .gauge(g) = series(name, help: help, type: .gauge, labels: labels, buckets: nil, make: { .gauge(Gauge()) }) else {
            preconditionFailure("\(name) is not a gauge")
        }
        return g
    }

    /// Returns the histogram `name{labels}`, creating it empty on first use.
    /// - Parameter buckets: upper bounds, strictly increasing, finite; `+Inf` is implicit. All series of a
    ///   family must use the same buckets.
    public func histogram(_ name: String, help: String, labels: [String: String] = [:], buckets: [Double] = .defaultLatency) -> Histogram {
        precondition(!buckets.isEmpty && buckets.allSatisfy(\.isFinite), "histogram buckets must be finite and non-empty")
        precondition(zip(buckets, buckets.dropFirst()).allSatisfy { $0 < $1 }, "histogram buckets must be strictly increasing")
        precondition(labels["le"] == nil, "le is reserved for histogram buckets")
        guard case let .histogram(h) = series(name, help: help, type: .histogram, labels: labels, buckets: buckets, make: { .histogram(Histogram(upperBounds: buckets)) }) else {
            preconditionFailure("\(name) is not a histogram")
        }
        return h
    }

    private func series(_ name: String, help: String, type: MetricType, labels: [String: String], buckets: [Double]?, make: () -> Series) -> Series {
        precondition(PrometheusNames.isValidMetricName(name), "invalid metric name \(name)")
        for key in labels.keys {
            precondition(PrometheusNames.isValidLabelName(key), "invalid label name \(key) on \(name)")
        }
        let key = PrometheusNames.renderLabels(labels)
        return families.withLock { families in
            if var family = families[name] {
                precondition(family.type == type, "\(name) registered as \(family.type) and \(type)")
                precondition(family.buckets == buckets, "\(name) registered with two bucket layouts")
                if let existing = family.series[key] { return existing }
                let created = make()
                family.series[key] = created
                families[name] = family
                return created
            }
            let created = make()
            families[name] = Family(name: name, help: help, type: type, buckets: buckets, series: [key: created])
            return created
        }
    }

    /// The whole registry in the Prometheus text exposition format 0.0.4.
    ///
    /// Families are sorted by name and each appears once (`# HELP`, `# TYPE`, then all its samples); series are
    /// sorted by their rendered label set, so two expositions of the same state are byte-identical.
    ///
    /// - Parameter forTextfile: for node_exporter's textfile collector (`metrics.prom`): the `process_*`
    ///   families are renamed `postroom_process_*`, because node_exporter exports its own `process_*`
    ///   series and refuses a textfile that repeats them.
    public func exposition(forTextfile: Bool = false) -> String {
        processMetrics?.refresh()
        let snapshot = families.withLock { $0 }
        var out = ""
        out.reserveCapacity(snapshot.count * 256)
        let rename: (String) -> String = { forTextfile && $0.hasPrefix("process_") ? "postroom_" + $0 : $0 }
        for original in snapshot.keys.sorted(by: { rename($0) < rename($1) }) {
            let family = snapshot[original]!
            let name = rename(original)
            out += "# HELP \(name) \(PrometheusNames.escapeHelp(family.help))\n"
            out += "# TYPE \(name) \(family.type.rawValue)\n"
            for key in family.series.keys.sorted() {
                let braces = key.isEmpty ? "" : "{\(key)}"
                switch family.series[key]! {
                case let .counter(c):
                    out += "\(name)\(braces) \(c.value)\n"
                case let .gauge(g):
                    out += "\(name)\(braces) \(PrometheusNames.formatValue(g.value))\n"
                case let .histogram(h):
                    let (cumulative, sum, count) = h.snapshot()
                    let prefix = key.isEmpty ? "" : "\(key),"
                    for (i, bound) in h.upperBounds.enumerated() {
                        out += "\(name)_bucket{\(prefix)le=\"\(PrometheusNames.formatValue(bound))\"} \(cumulative[i])\n"
                    }
                    out += "\(name)_bucket{\(prefix)le=\"+Inf\"} \(cumulative[cumulative.count - 1])\n"
                    out += "\(name)_sum\(braces) \(PrometheusNames.formatValue(sum))\n"
                    out += "\(name)_count\(braces) \(count)\n"
                }
            }
        }
        return out
    }
}

// MARK: - Text format helpers

/// Name rules, escaping and number formatting of the Prometheus text format 0.0.4, shared by the
/// registry and the parser so both agree byte for byte.
enum PrometheusNames {
    static func isValidMetricName(_ name: String) -> Bool {
        guard let first = name.utf8.first, !(first >= UInt8(ascii: "0") && first <= UInt8(ascii: "9")) else { return false }
        return name.utf8.allSatisfy { isAlnumUnderscore($0) || $0 == UInt8(ascii: ":") }
    }

    static func isValidLabelName(_ name: String) -> Bool {
        guard let first = name.utf8.first, !(first >= UInt8(ascii: "0") && first <= UInt8(ascii: "9")) else { return false }
        return !name.hasPrefix("__") && name.utf8.allSatisfy(isAlnumUnderscore)
    }

    private static func isAlnumUnderscore(_ c: UInt8) -> Bool {
        (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z"))
            || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || c == UInt8(ascii: "_")
    }

    /// Label values escape backslash, double quote and line feed.
    static func escapeLabelValue(_ value: String) -> String {
        var out = ""
        out.reserveCapacity(value.utf8.count)
        for ch in value.unicodeScalars {
            switch ch {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(ch)
            }
        }
        return out
    }

    /// HELP text escapes backslash and line feed (not quotes).
    static func escapeHelp(_ help: String) -> String {
        var out = ""
        for ch in help.unicodeScalars {
            switch ch {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(ch)
            }
        }
        return out
    }

    /// `a="1",b="2"` with names sorted, the canonical identity of a series.
    static func renderLabels(_ labels: [String: String]) -> String {
        labels.sorted { $0.key < $1.key }
            .map { "\($0.key)=\"\(escapeLabelValue($0.value))\"" }
            .joined(separator: ",")
    }

    /// Integers without a fraction (`42`, `300`), others in Swift's shortest round-trip form, and the
    /// spellings `+Inf`, `-Inf`, `NaN` the format requires.
    static func formatValue(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value == .infinity { return "+Inf" }
        if value == -.infinity { return "-Inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }
}

// MARK: - Process metrics

/// `process_*` metrics read from procfs, refreshed when the registry renders.
struct ProcessMetrics: Sendable {
    let residentMemory: Gauge

    func refresh() {
        if let rss = Self.residentMemoryBytes() { residentMemory.set(Double(rss)) }
    }

    /// Resident set size: second field of `/proc/self/statm`, in pages.
    static func residentMemoryBytes() -> Int? {
        guard let statm = readProcFile("/proc/self/statm") else { return nil }
        let fields = statm.split(separator: " ")
        guard fields.count >= 2, let pages = Int(fields[1]) else { return nil }
        return pages * FileSystem.pageSize
    }

    /// Process start time in seconds since the epoch: boot time (`btime` in `/proc/stat`) plus the start
    /// time in clock ticks (field 22 of `/proc/self/stat`). Falls back to "now" when procfs is unavailable,
    /// which is right to within the registry's creation delay.
    static func startTimeSeconds() -> Double {
        guard let stat = readProcFile("/proc/self/stat"),
              let global = readProcFile("/proc/stat"),
              let close = stat.lastIndex(of: ")")
        else { return Date().timeIntervalSince1970 }
        // Fields after the parenthesised command name start at field 3; field 22 is index 19 there.
        let rest = stat[stat.index(after: close)...].split(separator: " ")
        guard rest.count > 19, let ticks = Double(rest[19]),
              let btimeLine = global.split(separator: "\n").first(where: { $0.hasPrefix("btime ") }),
              let btime = Double(btimeLine.dropFirst(6).trimmingCharacters(in: .whitespaces))
        else { return Date().timeIntervalSince1970 }
        return btime + ticks / Double(FileSystem.clockTicksPerSecond)
    }

    /// A small procfs file as text; nil when it cannot be read.
    static func readProcFile(_ path: String) -> String? {
        (try? FileSystem.readFile(path, limit: 1 << 16)).map { String(decoding: $0, as: UTF8.self) }
    }
}
