import Foundation
import Testing
@testable import Postroom

/// Validates every file of `Fixtures/.corpus/` (written by its `generate.py`) and checks
/// the verdict against the file name: `<source>-<accept|badmail|report-X.Y.Z>-<what>.eml`.
@Suite("Submission corpus")
struct CorpusTests {
    typealias S = MessageTestSupport

    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()
        .appendingPathComponent("Fixtures/.corpus", isDirectory: true)

    static func files() -> [URL] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { $0.hasSuffix(".eml") }.sorted().map { directory.appendingPathComponent($0) }
    }

    /// (source, expected label) from a corpus file name.
    static func expectation(for url: URL) -> (MessageSource, String)? {
        let parts = url.deletingPathExtension().lastPathComponent.split(separator: "-")
        guard parts.count >= 3, let source = MessageSource(rawValue: String(parts[0])) else { return nil }
        let label = parts[1] == "report" ? "report-\(parts[2])" : String(parts[1])
        return (source, label)
    }

    @Test func corpusHasEnoughVariedFiles() {
        let files = Self.files()
        #expect(files.count >= 100)
        let labels = Set(files.compactMap { Self.expectation(for: $0).map { "\($0.0.rawValue) \($0.1)" } })
        for required in ["pickup accept", "pickup badmail", "pickup report-5.1.3", "pickup report-5.5.3",
                         "pickup report-5.3.4", "pickup report-5.6.0", "replay accept", "replay badmail",
                         "replay report-5.1.3", "replay report-5.6.0"] {
            #expect(labels.contains(required), "no corpus file for \(required)")
        }
    }

    @Test func everyVerdictMatchesItsFileName() throws {
        let files = Self.files()
        var mismatches: [String] = []
        for url in files {
            let (source, expected) = try #require(Self.expectation(for: url), "bad corpus name \(url.lastPathComponent)")
            let bytes = try [UInt8](Data(contentsOf: url))
            let verdict = SubmissionValidator.validate(
                bytes, totalSize: Int64(bytes.count), source: source, limits: SubmissionLimits(), context: S.context)
            if verdict.label != expected {
                mismatches.append("\(url.lastPathComponent): expected \(expected), got \(verdict.label) \(verdict)")
            }
            try checkInvariants(verdict, name: url.lastPathComponent)
        }
        #expect(mismatches.isEmpty, "\(mismatches.joined(separator: "\n"))")
    }

    /// What must hold for every verdict, whatever the input.
    private func checkInvariants(_ verdict: SubmissionVerdict, name: String) throws {
        switch verdict {
        case .accepted(let accepted):
            #expect(!accepted.envelope.recipients.isEmpty, "\(name)")
            #expect(Set(accepted.envelope.recipients.map(\.address)).count == accepted.envelope.recipients.count, "\(name)")
            let message = try RFC5322Message(parsing: accepted.message)
            #expect(message.fields.first?.hasName("Received") == true, "\(name)")
            #expect(message.value(of: "Bcc") == nil, "\(name)")
            #expect(message.value(of: "X-Sender") == nil && message.value(of: "X-Receiver") == nil, "\(name)")
            #expect(message.value(of: "Message-ID")?.isEmpty == false, "\(name)")
            #expect(message.value(of: "Date").flatMap(MessageDate.parse) != nil, "\(name)")
            #expect(message.value(of: "Message-ID") == accepted.messageID, "\(name)")
        case .report(let report):
            #expect(!report.envelope.sender.isEmpty, "\(name)")
            #expect(report.status.hasPrefix("5."), "\(name)")
            #expect(!report.diagnostic.isEmpty, "\(name)")
            #expect(report.headerBytes.count <= SubmissionValidator.maxAttachedHeaderBytes, "\(name)")
        case .badmail(let reason):
            #expect(!reason.isEmpty && !reason.contains("\n") && !reason.contains("\r"), "\(name)")
        }
    }
}
