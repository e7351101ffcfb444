/// `postroom stats`: the metrics file as tables a human can read at a glance.
public enum StatsTable {
    /// Renders the stage, connector and pipeline tables from a `metrics.prom` body.
    ///
    /// Reads leniently (a half-understood file still shows what it can). Stages are listed in the default
    /// pipeline order (ingest, validate, categorize, route, deliver), other stage kinds after them by name.
    /// Latency percentiles are estimated from histogram buckets by linear interpolation inside the bucket,
    /// as Prometheus' `histogram_quantile` does; `-` means no observation yet.
    public static func render(exposition text: String) -> String {
        let families = (try? PrometheusTextParser.parse(text, mode: .lenient)) ?? []
        let samples = families.flatMap(\.samples)
        /// True when `sample` carries every label in `labels` (it may have more).
        func matches(_ sample: PrometheusTextParser.Sample, _ labels: [String: String]) -> Bool {
            labels.allSatisfy { key, wanted in sample.labels[key] == wanted }
        }
        func value(_ name: String, _ labels: [String: String]) -> Double? {
            samples.first { $0.name == name && $0.labels.count == labels.count && matches($0, labels) }?.value
        }
        func total(_ name: String, matching labels: [String: String]) -> Double {
            samples.filter { $0.name == name && matches($0, labels) }.reduce(0) { $0 + $1.value }
        }
        func percentiles(_ name: String, _ labels: [String: String]) -> (String, String) {
            let buckets = samples.filter { $0.name == name + "_bucket" && matches($0, labels) }
                .compactMap { s -> (le: Double, count: Double)? in
                    guard let le = s.labels["le"].flatMap({ PrometheusTextParser.parseValue(Substring($0)) }) else { return nil }
                    return (le, s.value)
                }
            return (milliseconds(quantile(0.5, buckets: buckets)), milliseconds(quantile(0.99, buckets: buckets)))
        }

        var out = ""

        // Stages.
        let stageKeys = Set(samples.filter { $0.name.hasPrefix("postroom_stage_") }
            .compactMap { s -> Key? in
                guard let p = s.labels["pipeline"], let st = s.labels["stage"] else { return nil }
                return Key(pipeline: p, name: st)
            })
        let order = ["ingest", "validate", "categorize", "route", "deliver"]
        let stages = stageKeys.sorted {
            let a = order.firstIndex(of: $0.name) ?? order.count
            let b = order.firstIndex(of: $1.name) ?? order.count
            return ($0.pipeline, a, $0.name) < ($1.pipeline, b, $1.name)
        }
        var stageRows: [[String]] = []
        for key in stages {
            let l = ["pipeline": key.pipeline, "stage": key.name]
            let (p50, p99) = percentiles(StageMetrics.Name.processing, l)
            stageRows.append([
                key.pipeline, key.name,
                count(value(StageMetrics.Name.received, l)),
                count(value(StageMetrics.Name.sent, l)),
                count(total(StageMetrics.Name.errors, matching: l)),
                count(value(StageMetrics.Name.inFlight, l)),
                count(value(StageMetrics.Name.buffer, l)),
                p50, p99,
            ])
        }
        out += table(["PIPELINE", "STAGE", "IN", "OUT", "FAILED", "IN FLIGHT", "BUFFERED", "P50 MS", "P99 MS"], stageRows, leftColumns: 2)

        // Connectors.
        let connectorKeys = Set(samples.filter {
            $0.name == ConnectorMetrics.Name.queue || $0.name == ConnectorMetrics.Name.attempts || $0.name == ConnectorMetrics.Name.delivered
        }.compactMap { s -> Key? in
            guard let p = s.labels["pipeline"], let c = s.labels["connector"] else { return nil }
            return Key(pipeline: p, name: c)
        })
        var connectorRows: [[String]] = []
        for key in connectorKeys.sorted(by: { ($0.pipeline, $0.name) < ($1.pipeline, $1.name) }) {
            let l = ["pipeline": key.pipeline, "connector": key.name]
            func state(_ s: ConnectorMetrics.QueueState) -> String {
                count(value(ConnectorMetrics.Name.queue, l.merging(["state": s.rawValue]) { $1 }))
            }
            connectorRows.append([
                key.pipeline, key.name,
                state(.active), state(.deferred), state(.held), state(.poison),
                count(value(ConnectorMetrics.Name.delivered, l)),
                count(value(ConnectorMetrics.Name.attempts, l.merging(["result": ConnectorMetrics.AttemptResult.failed.rawValue]) { $1 })),
            ])
        }
        out += "\n"
        out += table(["PIPELINE", "CONNECTOR", "QUEUED", "DEFERRED", "HELD", "POISON", "DELIVERED", "FAILED"], connectorRows, leftColumns: 2)

        // Whole pipeline.
        let pipelines = Set(samples.filter {
            $0.name.hasPrefix(PipelineMetrics.Name.endToEnd) || $0.name == PipelineMetrics.Name.rejected
                || $0.name == PipelineMetrics.Name.inotifyOverflows || $0.name == PipelineMetrics.Name.rescans
        }.compactMap { $0.labels["pipeline"] })
        var pipelineRows: [[String]] = []
        for pipeline in pipelines.sorted() {
            let l = ["pipeline": pipeline]
            let (p50, p99) = percentiles(PipelineMetrics.Name.endToEnd, l)
            pipelineRows.append([
                pipeline, p50, p99,
                count(value(PipelineMetrics.Name.rejected, l.merging(["outcome": "badmail"]) { $1 })),
                count(value(PipelineMetrics.Name.rejected, l.merging(["outcome": "report"]) { $1 })),
                count(value(PipelineMetrics.Name.inotifyOverflows, l)),
                count(value(PipelineMetrics.Name.rescans, l)),
            ])
        }
        out += "\n"
        out += table(["PIPELINE", "E2E P50 MS", "E2E P99 MS", "BADMAIL", "REPORTED", "OVERFLOWS", "RESCANS"], pipelineRows, leftColumns: 1)
        return out
    }

    private struct Key: Hashable {
        var pipeline: String
        var name: String
    }

    /// The `q` quantile (0…1) from cumulative `(le, count)` buckets, `+Inf` included; nil with no data.
    /// Values in the `+Inf` bucket are reported as the highest finite bound (nothing better is known).
    public static func quantile(_ q: Double, buckets: [(le: Double, count: Double)]) -> Double? {
        let sorted = buckets.sorted { $0.le < $1.le }
        guard let total = sorted.last?.count, total > 0 else { return nil }
        let rank = q * total
        guard let i = sorted.firstIndex(where: { $0.count >= rank }) else { return nil }
        if sorted[i].le == .infinity {
            return i > 0 ? sorted[i - 1].le : nil
        }
        let lower = i > 0 ? sorted[i - 1].le : 0
        let lowerCount = i > 0 ? sorted[i - 1].count : 0
        let inBucket = sorted[i].count - lowerCount
        guard inBucket > 0 else { return sorted[i].le }
        return lower + (sorted[i].le - lower) * (rank - lowerCount) / inBucket
    }

    private static func milliseconds(_ seconds: Double?) -> String {
        guard let seconds else { return "-" }
        let ms = seconds * 1000
        let tenths = (ms * 10).rounded()
        let whole = Int(tenths) / 10
        return "\(whole).\(Int(tenths) % 10)"
    }

    private static func count(_ value: Double?) -> String {
        guard let value, value.isFinite else { return "-" }
        return value == value.rounded() ? String(Int64(value)) : String(value)
    }

    /// Columns padded to their widest cell; the first `leftColumns` left-aligned, numbers right-aligned.
    private static func table(_ header: [String], _ rows: [[String]], leftColumns: Int) -> String {
        var widths = header.map(\.count)
        for row in rows {
            for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) }
        }
        func render(_ cells: [String]) -> String {
            var line = cells.enumerated().map { i, cell in
                let padding = String(repeating: " ", count: widths[i] - cell.count)
                return i < leftColumns ? cell + padding : padding + cell
            }.joined(separator: "  ")
            while line.last == " " { line.removeLast() }
            return line + "\n"
        }
        var out = render(header)
        if rows.isEmpty {
            out += "(none)\n"
        }
        for row in rows { out += render(row) }
        return out
    }
}
