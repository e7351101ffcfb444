import Foundation
@testable import Postroom

/// Helpers shared by the Message tests (namespaced so they cannot clash with other test files).
enum MessageTestSupport {
    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    static func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

    /// A fixed instant, 2026-11-23 09:36:18 UTC, so rewritten headers are predictable.
    static let now = Date(timeIntervalSince1970: 1_795_426_578)

    static let context = SubmissionContext(
        hostname: "mx1.example.com", defaultDomain: "example.com", now: now, uniqueID: "Q123")

    static func validate(
        _ text: String, source: MessageSource = .pickup, limits: SubmissionLimits = SubmissionLimits()
    ) -> SubmissionVerdict {
        let data = bytes(text)
        return SubmissionValidator.validate(
            data, totalSize: Int64(data.count), source: source, limits: limits, context: context)
    }

    /// Deterministic PRNG (SplitMix64) so fuzz failures are reproducible from the seed.
    struct SplitMix64: RandomNumberGenerator {
        var state: UInt64
        init(seed: UInt64) { state = seed }
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }
}

extension SubmissionVerdict {
    var accepted: AcceptedSubmission? {
        if case .accepted(let value) = self { return value }
        return nil
    }

    var report: SubmissionReport? {
        if case .report(let value) = self { return value }
        return nil
    }

    var badmailReason: String? {
        if case .badmail(let reason) = self { return reason }
        return nil
    }

    /// `accept`, `report-<status>` or `badmail`, as used in corpus file names.
    var label: String {
        switch self {
        case .accepted: return "accept"
        case .report(let report): return "report-\(report.status)"
        case .badmail: return "badmail"
        }
    }
}
