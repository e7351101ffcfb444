import Testing
@testable import Postroom

@Suite("Prometheus text parser")
struct PrometheusTextParserTests {
    @Test func parsesRegistryOutputStrictly() throws {
        let families = try PrometheusTextParser.parse(sampleRegistry().exposition())
        let names = families.map(\.name)
        #expect(names == names.sorted())
        let processing = try #require(families.first { $0.name == "postroom_stage_processing_seconds" })
        #expect(processing.type == .histogram)
        #expect(processing.help == "Time a stage spends on one message, in seconds.")
        #expect(processing.samples.count == 5 * (18 + 1 + 2))
    }

    @Test func parsesLabelsValuesAndTimestamps() throws {
        let text = """
            # HELP m Some help.
            # TYPE m gauge
            m{a="x",b="y\\"z",} -1.5e3 1700000000000
            m{a="inf"} +Inf
            m{a="nan"} NaN

            """
        let samples = try #require(try PrometheusTextParser.parse(text).first).samples
        #expect(samples[0].labels == ["a": "x", "b": "y\"z"])
        #expect(samples[0].value == -1500)
        #expect(samples[1].value == .infinity)
        #expect(samples[2].value.isNaN)
    }

    /// Each malformed body must be rejected in strict mode with a line number.
    @Test(arguments: [
        ("sample before HELP/TYPE", "m 1\n"),
        ("missing final newline", "# HELP m h\n# TYPE m gauge\nm 1"),
        ("family not grouped", "# HELP a h\n# TYPE a gauge\na 1\n# HELP b h\n# TYPE b gauge\nb 1\na{x=\"1\"} 2\n"),
        ("TYPE after samples", "# HELP a h\n# TYPE a gauge\na 1\n# TYPE a gauge\n"),
        ("bad escape", "# HELP a h\n# TYPE a gauge\na{x=\"\\t\"} 1\n"),
        ("unquoted label", "# HELP a h\n# TYPE a gauge\na{x=1} 1\n"),
        ("bad value", "# HELP a h\n# TYPE a gauge\na one\n"),
        ("duplicate series", "# HELP a h\n# TYPE a gauge\na{x=\"1\"} 1\na{x=\"1\"} 2\n"),
        ("negative counter", "# HELP a_total h\n# TYPE a_total counter\na_total -1\n"),
        ("foreign sample in family", "# HELP a h\n# TYPE a gauge\na_sum 1\n"),
        ("bad metric name", "# HELP 1a h\n# TYPE 1a gauge\n1a 1\n"),
        ("non-cumulative buckets", histogramText(buckets: [("1", 5), ("2", 3), ("+Inf", 5)], count: 5)),
        ("+Inf differs from count", histogramText(buckets: [("1", 1), ("+Inf", 2)], count: 3)),
        ("no +Inf bucket", histogramText(buckets: [("1", 1)], count: 1)),
        ("le out of order", histogramText(buckets: [("2", 1), ("1", 1), ("+Inf", 1)], count: 1)),
    ])
    func rejectsMalformed(_ case_: (String, String)) {
        #expect(throws: PrometheusTextParser.ParseError.self, "\(case_.0)") {
            try PrometheusTextParser.parse(case_.1)
        }
    }

    @Test func acceptsWellFormedHistogram() throws {
        _ = try PrometheusTextParser.parse(histogramText(buckets: [("1", 1), ("2", 3), ("+Inf", 3)], count: 3))
    }

    @Test func lenientModeSkipsBadLines() throws {
        let text = "garbage line\n# TYPE a gauge\na 1\na{x=} 2\nb 3"
        let families = try PrometheusTextParser.parse(text, mode: .lenient)
        #expect(families.map(\.name) == ["a", "b"])
        #expect(families[0].samples.map(\.value) == [1])
    }
}

private func histogramText(buckets: [(String, Int)], count: Int) -> String {
    var text = "# HELP h_seconds h\n# TYPE h_seconds histogram\n"
    for (le, c) in buckets { text += "h_seconds_bucket{le=\"\(le)\"} \(c)\n" }
    text += "h_seconds_sum 1\nh_seconds_count \(count)\n"
    return text
}
