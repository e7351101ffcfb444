/// A small parser for the Prometheus text exposition format 0.0.4, used by `postroom stats` to read
/// `metrics.prom` and by the tests to check that what the registry writes is well-formed.
///
/// `.strict` enforces what promtool and a scraper rely on: a trailing newline, `# HELP` and `# TYPE`
/// (once each) before a family's samples, all samples of a family together, sample names that belong to
/// their family, valid names and label escapes (`\\`, `\"`, `\n` only), no duplicate series, non-negative
/// counters, and histograms whose buckets have increasing `le`, are cumulative, and end with `+Inf` equal
/// to `_count` next to a `_sum`. `.lenient` skips lines it cannot read and checks nothing across lines,
/// for reading a file written by something else.
public enum PrometheusTextParser {
    /// One sample line.
    public struct Sample: Sendable, Equatable {
        /// The sample's own name (e.g. `x_bucket` for histogram family `x`).
        public var name: String
        public var labels: [String: String]
        public var value: Double
    }

    /// A metric family: its `HELP`, `TYPE` and samples in file order.
    public struct Family: Sendable, Equatable {
        public var name: String
        public var help: String?
        public var type: MetricType
        public var samples: [Sample]
    }

    /// A parse failure with its 1-based line number.
    public struct ParseError: Error, Equatable, CustomStringConvertible {
        public var line: Int
        public var message: String
        public var description: String { "line \(line): \(message)" }
    }

    public enum Mode: Sendable { case strict, lenient }

    /// Parses `text` into families, in order of first appearance.
    public static func parse(_ text: String, mode: Mode = .strict) throws(ParseError) -> [Family] {
        var families: [Family] = []
        var indexByName: [String: Int] = [:]
        var closed: Set<String> = []
        var current: String?
        var seenSeries: Set<String> = []
        var sawHelp: Set<String> = []
        var sawType: Set<String> = []
        let strict = mode == .strict

        if strict, !text.isEmpty, !text.hasSuffix("\n") {
            throw ParseError(line: text.split(separator: "\n", omittingEmptySubsequences: false).count, message: "missing final newline")
        }

        func family(named name: String, line: Int) throws(ParseError) -> Int {
            if current != name {
                if let current { closed.insert(current) }
                if strict, closed.contains(name) {
                    throw ParseError(line: line, message: "samples or metadata of \(name) are not grouped together")
                }
                current = name
            }
            if let index = indexByName[name] { return index }
            families.append(Family(name: name, help: nil, type: .untyped, samples: []))
            indexByName[name] = families.count - 1
            return families.count - 1
        }

        for (offset, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let number = offset + 1
            let line = Substring(rawLine)
            if line.isEmpty { continue }
            do throws(ParseError) {
                if line.hasPrefix("#") {
                    let words = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: true)
                    guard words.count >= 3, words[0] == "#", words[1] == "HELP" || words[1] == "TYPE" else { continue }  // plain comment
                    let name = String(words[2])
                    guard PrometheusNames.isValidMetricName(name) else {
                        throw ParseError(line: number, message: "invalid metric name \(name)")
                    }
                    let index = try family(named: name, line: number)
                    if words[1] == "HELP" {
                        if strict, !families[index].samples.isEmpty || sawHelp.contains(name) {
                            throw ParseError(line: number, message: "HELP for \(name) must come once, before its samples")
                        }
                        sawHelp.insert(name)
                        families[index].help = words.count > 3 ? try unescapeHelp(words[3], line: number) : ""
                    } else {
                        guard words.count == 4, let type = MetricType(rawValue: String(words[3])) else {
                            throw ParseError(line: number, message: "invalid TYPE line")
                        }
                        if strict, !families[index].samples.isEmpty || sawType.contains(name) {
                            throw ParseError(line: number, message: "TYPE for \(name) must come once, before its samples")
                        }
                        sawType.insert(name)
                        families[index].type = type
                    }
                    continue
                }
                let sample = try parseSample(line, line: number)
                // Attach to the current family when the name belongs to it (histogram suffixes included).
                var familyName = sample.name
                if let current, let index = indexByName[current], belongs(sample.name, to: families[index]) {
                    familyName = current
                } else {
                    for suffix in ["_bucket", "_sum", "_count"] where sample.name.hasSuffix(suffix) {
                        let base = String(sample.name.dropLast(suffix.count))
                        if let index = indexByName[base], families[index].type == .histogram || families[index].type == .summary {
                            familyName = base
                        }
                    }
                }
                let index = try family(named: familyName, line: number)
                if strict {
                    guard sawHelp.contains(familyName), sawType.contains(familyName) else {
                        throw ParseError(line: number, message: "sample of \(familyName) before its HELP and TYPE")
                    }
                    guard belongs(sample.name, to: families[index]) else {
                        throw ParseError(line: number, message: "\(sample.name) does not belong to \(families[index].type.rawValue) \(familyName)")
                    }
                    let identity = sample.name + "{" + PrometheusNames.renderLabels(sample.labels) + "}"
                    guard seenSeries.insert(identity).inserted else {
                        throw ParseError(line: number, message: "duplicate series \(identity)")
                    }
                    if families[index].type == .counter, sample.value < 0 {
                        throw ParseError(line: number, message: "counter \(sample.name) is negative")
                    }
                }
                families[index].samples.append(sample)
            } catch {
                if strict { throw error }
            }
        }
        if strict {
            for family in families where family.type == .histogram {
                try validateHistogram(family)
            }
        }
        return families
    }

    private static func belongs(_ sampleName: String, to family: Family) -> Bool {
        switch family.type {
        case .histogram:
            return sampleName == family.name + "_bucket" || sampleName == family.name + "_sum" || sampleName == family.name + "_count"
        case .summary:
            return sampleName == family.name || sampleName == family.name + "_sum" || sampleName == family.name + "_count"
        default:
            return sampleName == family.name
        }
    }

    /// `name{a="1",b="2"} value [timestamp]`
    static func parseSample(_ line: Substring, line number: Int) throws(ParseError) -> Sample {
        let u = Array(line.utf8)
        var i = 0
        func fail(_ message: String) -> ParseError { ParseError(line: number, message: message) }
        while i < u.count, u[i] != UInt8(ascii: "{"), u[i] != UInt8(ascii: " ") { i += 1 }
        let name = String(decoding: u[0 ..< i], as: UTF8.self)
        guard PrometheusNames.isValidMetricName(name) else { throw fail("invalid metric name \(name)") }
        var labels: [String: String] = [:]
        if i < u.count, u[i] == UInt8(ascii: "{") {
            i += 1
            while true {
                guard i < u.count else { throw fail("unterminated label set") }
                if u[i] == UInt8(ascii: "}") { i += 1; break }
                let start = i
                while i < u.count, u[i] != UInt8(ascii: "=") { i += 1 }
                let labelName = String(decoding: u[start ..< i], as: UTF8.self)
                guard PrometheusNames.isValidLabelName(labelName) || labelName == "le" || labelName == "quantile" else {
                    throw fail("invalid label name \(labelName)")
                }
                guard i + 1 < u.count, u[i + 1] == UInt8(ascii: "\"") else { throw fail("label value must be quoted") }
                i += 2
                var value: [UInt8] = []
                while true {
                    guard i < u.count else { throw fail("unterminated label value") }
                    let c = u[i]
                    if c == UInt8(ascii: "\"") { i += 1; break }
                    if c == UInt8(ascii: "\\") {
                        guard i + 1 < u.count else { throw fail("dangling backslash") }
                        switch u[i + 1] {
                        case UInt8(ascii: "\\"): value.append(UInt8(ascii: "\\"))
                        case UInt8(ascii: "\""): value.append(UInt8(ascii: "\""))
                        case UInt8(ascii: "n"): value.append(UInt8(ascii: "\n"))
                        default: throw fail("invalid escape in label value")
                        }
                        i += 2
                        continue
                    }
                    value.append(c)
                    i += 1
                }
                guard labels.updateValue(String(decoding: value, as: UTF8.self), forKey: labelName) == nil else {
                    throw fail("duplicate label \(labelName)")
                }
                guard i < u.count else { throw fail("unterminated label set") }
                if u[i] == UInt8(ascii: ",") { i += 1 } else if u[i] != UInt8(ascii: "}") { throw fail("expected , or } in label set") }
            }
        }
        guard i < u.count, u[i] == UInt8(ascii: " ") else { throw fail("expected a space before the value") }
        let rest = String(decoding: u[(i + 1)...], as: UTF8.self).split(separator: " ", omittingEmptySubsequences: false)
        guard rest.count == 1 || rest.count == 2, let value = parseValue(rest[0]) else { throw fail("invalid sample value") }
        if rest.count == 2, Int64(rest[1]) == nil { throw fail("invalid timestamp") }
        return Sample(name: name, labels: labels, value: value)
    }

    /// A float as Go's `strconv.ParseFloat` accepts it, plus the format's `+Inf`/`-Inf`/`NaN`.
    static func parseValue(_ text: Substring) -> Double? {
        switch text.lowercased() {
        case "+inf", "inf": return .infinity
        case "-inf": return -.infinity
        case "nan": return .nan
        default:
            guard let first = text.first, first.isNumber || first == "-" || first == "+" || first == "." else { return nil }
            return Double(text)
        }
    }

    private static func unescapeHelp(_ text: Substring, line: Int) throws(ParseError) -> String {
        var out = ""
        var escaping = false
        for ch in text {
            if escaping {
                switch ch {
                case "\\": out.append("\\")
                case "n": out.append("\n")
                default: throw ParseError(line: line, message: "invalid escape in HELP")
                }
                escaping = false
            } else if ch == "\\" {
                escaping = true
            } else {
                out.append(ch)
            }
        }
        if escaping { throw ParseError(line: line, message: "dangling backslash in HELP") }
        return out
    }

    private static func validateHistogram(_ family: Family) throws(ParseError) {
        struct Series { var buckets: [(le: Double, count: Double)] = []; var sum: Double?; var count: Double? }
        var series: [String: Series] = [:]
        for sample in family.samples {
            var labels = sample.labels
            let le = labels.removeValue(forKey: "le")
            let key = PrometheusNames.renderLabels(labels)
            if sample.name.hasSuffix("_bucket") {
                guard let le, let bound = parseValue(Substring(le)), !bound.isNaN else {
                    throw ParseError(line: 0, message: "\(family.name) bucket without a valid le")
                }
                series[key, default: Series()].buckets.append((bound, sample.value))
            } else if sample.name.hasSuffix("_sum") {
                series[key, default: Series()].sum = sample.value
            } else {
                series[key, default: Series()].count = sample.value
            }
        }
        for (key, s) in series {
            let where_ = "\(family.name){\(key)}"
            guard let count = s.count, s.sum != nil else { throw ParseError(line: 0, message: "\(where_) lacks _sum or _count") }
            guard let last = s.buckets.last, last.le == .infinity else { throw ParseError(line: 0, message: "\(where_) lacks a +Inf bucket") }
            guard last.count == count else { throw ParseError(line: 0, message: "\(where_) +Inf bucket \(last.count) != _count \(count)") }
            for (a, b) in zip(s.buckets, s.buckets.dropFirst()) {
                guard a.le < b.le else { throw ParseError(line: 0, message: "\(where_) buckets not in increasing le order") }
                guard a.count <= b.count else { throw ParseError(line: 0, message: "\(where_) buckets are not cumulative") }
            }
        }
    }
}
