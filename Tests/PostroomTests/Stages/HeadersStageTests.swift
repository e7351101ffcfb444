import Foundation
import PostroomSystem
import Testing
@testable import Postroom

@Suite("headers stage")
struct HeadersStageTests {
    func header(of item: PipelineItem) throws -> RFC5322Message { try RFC5322Message(parsing: item.bytes) }

    @Test func removesSetsAndAddsInThatOrder() async throws {
        let fixture = try StageFixture(stages: """
            { stage: "headers", remove: ["X-Internal", "x-spam-*"],
              set: [{ name: "Subject", value: "[ext] rewritten" }, { name: "X-Internal", value: "set after remove" }],
              add: [{ name: "X-Postroom-Pipeline", value: "composed" }, { name: "Keywords", value: "a" }, { name: "Keywords", value: "b" }] },
            """)
        defer { fixture.remove() }
        let message = testMessage(headers: ["X-Internal: secret", "X-SPAM-Score: 9", "X-Spam-Flag: YES", "X-Spammy: kept", "Keywords: original"])
        let item = try #require(try await fixture.run(message, through: "headers").forwarded())
        let parsed = try header(of: item)
        #expect(parsed.values(of: "X-Spam-Score").isEmpty)
        #expect(parsed.values(of: "X-Spam-Flag").isEmpty)
        #expect(parsed.values(of: "X-Spammy") == ["kept"], "a prefix pattern needs the whole prefix")
        #expect(parsed.values(of: "X-Internal") == ["set after remove"], "set runs after remove")
        #expect(parsed.values(of: "Subject") == ["[ext] rewritten"])
        #expect(parsed.values(of: "Keywords") == ["original", "a", "b"], "add always adds, at the bottom")
        #expect(parsed.fields.last?.name == "Keywords")
        #expect(parsed.body.elementsEqual("Hello.\r\n".utf8), "the body is untouched")
        #expect(item.notes.contains("headers: added X-Postroom-Pipeline: composed"))
        #expect(item.notes.contains { $0.hasPrefix("headers: removed 2 fields matching x-spam-*") })
    }

    @Test func setReplacesInPlaceAndRemovesDuplicates() async throws {
        let fixture = try StageFixture(stages: #"{ stage: "headers", set: [{ name: "x-tag", value: "new" }] },"#)
        defer { fixture.remove() }
        let item = try #require(try await fixture.run(testMessage(headers: ["X-Tag: one", "X-Other: o", "X-Tag: two"]), through: "headers").forwarded())
        let parsed = try header(of: item)
        #expect(parsed.values(of: "X-Tag") == ["new"])
        let names = parsed.fields.map { $0.name.lowercased() }
        #expect(names.firstIndex(of: "x-tag")! < names.firstIndex(of: "x-other")!, "the first field keeps its place")
    }

    @Test func placeholdersAreFilledIn() async throws {
        let fixture = try StageFixture(stages: """
            { stage: "headers", add: [{ name: "X-Trace", value: "{queueid} {SENDER} {messageid} {hostname} {not a placeholder} {}" }] },
            """)
        defer { fixture.remove() }
        let item = try #require(try await fixture.run(testMessage(headers: ["Message-ID: <m1@elsewhere.org>"]), through: "headers").forwarded())
        let value = try #require(try header(of: item).value(of: "X-Trace"))
        #expect(value == "\(item.queueID) sender@elsewhere.org <m1@elsewhere.org> \(FileSystem.hostname()) {not a placeholder} {}")
    }

    @Test func nothingToDoLeavesTheBytesAlone() async throws {
        let fixture = try StageFixture(stages: #"{ stage: "headers", remove: ["X-Absent"] },"#)
        defer { fixture.remove() }
        let validated = try #require(try await fixture.run(testMessage(), through: "validate").forwarded())
        let item = try #require(try await fixture.run(testMessage(), through: "headers").forwarded())
        #expect(item.bytes.count == validated.bytes.count)
        #expect(!item.notes.contains { $0.hasPrefix("headers:") })
    }

    @Test func wildcardNeverRemovesProtectedFields() async throws {
        let fixture = try StageFixture(stages: #"{ stage: "headers", remove: ["M*", "Content-*", "D*", "Received"] },"#)
        defer { fixture.remove() }
        let message = testMessage(headers: ["MIME-Version: 1.0", "Content-Type: text/plain", "Content-Language: en", "Mood: fine", "Received: from x by y"])
        let item = try #require(try await fixture.run(message, through: "headers").forwarded())
        let parsed = try header(of: item)
        #expect(parsed.value(of: "MIME-Version") == "1.0")
        #expect(parsed.value(of: "Content-Type") == "text/plain")
        #expect(parsed.value(of: "Message-ID") != nil)
        #expect(parsed.value(of: "Date") != nil)
        #expect(parsed.value(of: "Mood") == nil)
        #expect(parsed.value(of: "Content-Language") == nil)
        #expect(parsed.values(of: "Received").isEmpty, "Received may be removed (validate's own line too)")
    }

    @Test(arguments: [
        (#"{ stage: "headers", add: [{ name: "X-A", value: "v" }], colour: "red" },"#, "stages[2].colour: unknown key"),
        (#"{ stage: "headers", add: [{ name: "X-A", value: "v", vlaue: "w" }] },"#, "stages[2].add[0].vlaue: unknown key"),
        (#"{ stage: "headers", add: [{ name: "X A", value: "v" }] },"#, "stages[2].add[0].name: 'X A' is not a valid field name"),
        (#"{ stage: "headers", add: [{ name: "X:A", value: "v" }] },"#, "stages[2].add[0].name: 'X:A' is not a valid field name"),
        (#"{ stage: "headers", set: [{ name: "X-A", value: "a\r\nBcc: x@y" }] },"#, "stages[2].set[0].value: the value contains a line break"),
        (#"{ stage: "headers", set: [{ name: "X-A", value: "a\nb" }] },"#, "stages[2].set[0].value: the value contains a line break"),
        (#"{ stage: "headers", add: [{ name: "X-A", value: "{queueId}-{qid}" }] },"#, "stages[2].add[0].value: unknown placeholder {qid}"),
        (#"{ stage: "headers", remove: ["Message-ID"] },"#, "stages[2].remove[0]: cannot remove Message-ID"),
        (#"{ stage: "headers", remove: ["From"] },"#, "stages[2].remove[0]: cannot remove From"),
        (#"{ stage: "headers", remove: ["X-Receiver"] },"#, "cannot remove X-Receiver: X-Receiver is a Replay envelope line"),
        (#"{ stage: "headers", remove: ["*"] },"#, "stages[2].remove[0]: '*' would remove every field"),
        (#"{ stage: "headers", remove: ["X-*-Spam"] },"#, "only a trailing * is supported"),
        (#"{ stage: "headers", add: [{ name: "Received", value: "from forged" }] },"#, "stages[2].add[0].name: cannot add Received: trace fields"),
        (#"{ stage: "headers", set: [{ name: "Content-Type", value: "text/html" }] },"#, "cannot set Content-Type"),
        (#"{ stage: "headers", add: [{ name: "Subject", value: "two" }] },"#, "Subject may appear at most once (RFC 5322 §3.6); use set"),
        (#"{ stage: "headers", set: [{ name: "Bcc", value: "x@y" }] },"#, "cannot set Bcc"),
        (#"{ stage: "headers", set: [{ name: "X-A", value: "1" }, { name: "x-a", value: "2" }] },"#, "stages[2].set[1].name: x-a is set twice"),
        (#"{ stage: "headers" },"#, "headers needs at least one of add, set, remove"),
    ])
    func configurationErrors(stages: String, expected: String) {
        let error = StageFixture.decodeError(stages: stages)
        #expect(error?.contains(expected) == true, "got: \(error ?? "no error")")
    }

    @Test func mustComeAfterValidate() throws {
        let text = StageFixture.pipelineText(stages: "").replacingOccurrences(
            of: #"{ stage: "validate" },"#, with: #"{ stage: "headers", remove: ["X-A"] }, { stage: "validate" },"#)
        let root = NSTemporaryDirectory() + "postroom-order-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        try text.write(toFile: root + "/p.json5", atomically: true, encoding: .utf8)
        #expect(throws: ConfigError.self) {
            _ = try PipelineRunner(pipeline: try PipelineFile.load(path: root + "/p.json5"), spool: root, log: Logger(minimum: .error))
        }
    }

    @Test func templateParsing() throws {
        #expect(try HeaderTemplate(parsing: "{a").render { _ in "" } == "{a")
        #expect(try HeaderTemplate(parsing: "x{hostname}y{").render { _ in "H" } == "xHy{")
        #expect(throws: HeaderTemplate.TemplateError.self) { try HeaderTemplate(parsing: "{queue}") }
    }
}
