import Foundation
import Testing
@testable import Postroom

@Suite("journal stage")
struct JournalStageTests {
    static let afterRoute = #"{ stage: "categorize", directory: "directory.json5", acceptedDomains: ["example.com"] }, { stage: "route" },"#

    @Test func writesOneReplayCopyWithTheResolvedEnvelope() async throws {
        let fixture = try StageFixture(stages: Self.afterRoute + #"{ stage: "journal", directory: "archive/journal" },"#)
        defer { fixture.remove() }
        let item = try #require(try await fixture.run(testMessage(to: "team@example.com"), through: "journal").forwarded())
        #expect(fixture.files(in: "archive/journal") == ["\(item.queueID).eml"], "one copy, no temporaries left")
        let copy = try fixture.read("archive/journal/\(item.queueID).eml")
        #expect(copy.hasPrefix("X-Sender: <sender@elsewhere.org>\r\nX-Receiver: <alice@example.com> ORCPT=rfc822;team@example.com\r\n"))
        #expect(copy.contains("X-Receiver: <bob@example.com>"))
        #expect(copy.contains("X-EndOfInjectedXHeaders: "))
        #expect(copy.hasSuffix(String(decoding: item.bytes, as: UTF8.self)), "then the message exactly as forwarded")
        #expect(item.notes.contains("journal: copy written to \(fixture.spool)/archive/journal/\(item.queueID).eml"))
    }

    @Test func emlFormatIsTheMessageAlone() async throws {
        let fixture = try StageFixture(stages: #"{ stage: "journal", directory: "j", format: "eml" },"#)
        defer { fixture.remove() }
        let item = try #require(try await fixture.run(testMessage(), through: "journal").forwarded())
        let copy = try #require(FileManager.default.contents(atPath: fixture.spool + "/j/\(item.queueID).eml"))
        #expect(Array(copy) == item.bytes)
    }

    @Test func aReRunKeepsTheFirstCopy() async throws {
        let fixture = try StageFixture(stages: #"{ stage: "journal", directory: "j", format: "eml" },"#)
        defer { fixture.remove() }
        let item = try #require(try await fixture.run(testMessage(), through: "validate").forwarded())
        let journal = try #require(fixture.runner.stages.first { $0.name == "journal" }?.stage)
        let first = try #require(try await journal.process(item).forwarded())
        var changed = item
        changed.bytes += Array("changed on the re-run\r\n".utf8)
        let second = try #require(try await journal.process(changed).forwarded())
        #expect(second.bytes == changed.bytes, "the message itself goes on unchanged")
        #expect(fixture.files(in: "j") == ["\(item.queueID).eml"])
        #expect(try Array(fixture.read("j/\(item.queueID).eml").utf8) == first.bytes)
        #expect(second.notes.last == "journal: copy already in \(fixture.spool)/j/\(item.queueID).eml")
    }

    @Test func dryRunWritesNothing() async throws {
        let fixture = try StageFixture(stages: #"{ stage: "journal", directory: "j" },"#, dryRun: true)
        defer { fixture.remove() }
        let item = try #require(try await fixture.run(testMessage(), through: "journal").forwarded())
        #expect(!FileManager.default.fileExists(atPath: fixture.spool + "/j"))
        #expect(item.notes.last?.hasPrefix("journal: would write a copy to ") == true)
    }

    @Test(arguments: [
        (#"{ stage: "journal", directory: "j", fromat: "eml" },"#, "stages[2].fromat: unknown key (allowed here: stage, directory, format)"),
        (#"{ stage: "journal", directory: "j", format: "mbox" },"#, "stages[2].format: unknown format 'mbox'"),
        (#"{ stage: "journal" },"#, "stages[2].directory: required key is missing"),
        (#"{ stage: "journal", directory: "" },"#, "stages[2].directory: the journal directory cannot be empty"),
    ])
    func configurationErrors(stages: String, expected: String) {
        let error = StageFixture.decodeError(stages: stages)
        #expect(error?.contains(expected) == true, "got: \(error ?? "no error")")
    }

    @Test(arguments: [
        (#"{ stage: "journal", directory: "pickup" },"#, "stages[2].directory: "),
        (#"{ stage: "journal", directory: "replay/../replay/copies" },"#, "overlaps the folder ingest watches"),
        (#"{ stage: "journal", directory: "queue/journal" },"#, "is inside the queue"),
        (#"{ stage: "journal", directory: "/etc/hostname" },"#, "exists and is not a directory"),
    ])
    func unusableDirectoriesAreRefusedWhenBuilt(stages: String, expected: String) throws {
        let error = try StageFixture.buildError(stages: stages)
        #expect(error?.contains(expected) == true, "got: \(error ?? "no error")")
    }
}
