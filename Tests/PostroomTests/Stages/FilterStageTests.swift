import Foundation
import PostroomSystem
import Testing
@testable import Postroom

@Suite("filter stage")
struct FilterStageTests {
    static let rules = """
        { stage: "filter", rules: [
            { name: "trusted", when: { sender: "boss@spam.example" }, action: "continue" },
            { name: "spam", when: { sender: "*@spam.example" }, action: "reject", reason: "no spam here" },
            { name: "flagged", when: { header: { name: "X-Hold", matches: "yes" } }, action: "hold", reason: "flagged for review" },
            { name: "big-urgent", when: { header: { name: "Subject", matches: "*urgent*" }, sizeOver: "1KB" }, action: "drop" },
            { name: "to-bob", when: { recipient: "bob@example.com" }, action: "reject", status: "5.7.2", reason: "bob takes no mail" },
        ] },
        """

    func reports(_ fixture: StageFixture) -> [String] { fixture.files(in: "queue/incoming").filter { $0.contains(".report.") } }

    @Test func rejectSendsOneReportAndQueuesNothing() async throws {
        let fixture = try StageFixture(stages: Self.rules + #"{ stage: "categorize", directory: "directory.json5", acceptedDomains: ["example.com"] }, { stage: "route" },"#)
        defer { fixture.remove() }
        let result = try await fixture.run(testMessage(from: "bad@SPAM.example", to: "alice@example.com, someone@elsewhere.org"))
        #expect(result.outcome == .reported)
        #expect(fixture.files(in: "queue/incoming").count == 1, "the claimed file is released; only the report is left")
        let report = try fixture.read("queue/incoming/" + #require(reports(fixture).first))
        #expect(report.contains("X-Receiver: <bad@spam.example>"), "the report goes to the sender")
        #expect(report.contains("Final-Recipient: rfc822; alice@example.com"))
        #expect(report.contains("Final-Recipient: rfc822; someone@elsewhere.org"))
        #expect(report.contains("Status: 5.7.1"), "5.7.1 is the default status")
        #expect(report.contains("no spam here"))
        #expect(fixture.files(in: "queue/active").isEmpty)
        let fail = try #require(fixture.trackingEvents.first { $0.event == .fail })
        #expect(fail.status == "5.7.1")
        #expect(fail.reason == "rule 'spam': no spam here")
    }

    @Test func rejectAfterCategorizeReportsEarlierFailuresInTheSameReport() async throws {
        let fixture = try StageFixture(stages: #"{ stage: "categorize", directory: "directory.json5", acceptedDomains: ["example.com"] }, "# + Self.rules + #"{ stage: "route" },"#)
        defer { fixture.remove() }
        // to-bob matches through the group: the rule sees resolved recipients too.
        let result = try await fixture.run(testMessage(to: "team@example.com, nobody@example.com"), through: "filter")
        #expect(result.outcome == .reported)
        #expect(reports(fixture).count == 1)
        let report = try fixture.read("queue/incoming/" + #require(reports(fixture).first))
        #expect(report.contains("Final-Recipient: rfc822; team@example.com"), "the report names the address the sender used")
        #expect(report.contains("Status: 5.7.2"))
        #expect(report.contains("Final-Recipient: rfc822; nobody@example.com"))
        #expect(report.contains("Status: 5.1.1"))
        #expect(!report.contains("Final-Recipient: rfc822; bob@example.com"), "group expansion is not disclosed")
    }

    @Test func firstMatchingRuleWins() async throws {
        let fixture = try StageFixture(stages: Self.rules)
        defer { fixture.remove() }
        // boss@spam.example matches "trusted" (continue) before "spam" (reject), and then no other rule.
        let item = try #require(try await fixture.run(testMessage(from: "boss@spam.example", headers: ["X-Hold: yes"]), through: "filter").forwarded())
        #expect(item.holdReason == nil)
        #expect(item.notes.contains("filter: rule 'trusted' matched: continue"))
        #expect(reports(fixture).isEmpty)
    }

    @Test func holdQueuesIntoHoldAndNotActive() async throws {
        let fixture = try StageFixture(stages: Self.rules + #"{ stage: "categorize", directory: "directory.json5", acceptedDomains: ["example.com"] }, { stage: "route" },"#)
        defer { fixture.remove() }
        let result = try await fixture.run(testMessage(to: "alice@example.com, someone@elsewhere.org", headers: ["x-hold:   YES"]))
        #expect(result.outcome == .queued)
        let held = fixture.files(in: "queue/hold")
        #expect(held.count == 2, "one entry per next hop, both held: \(held)")
        #expect(fixture.files(in: "queue/active").isEmpty)
        #expect(fixture.files(in: "queue/incoming").isEmpty)
        let entry = try #require(fixture.runner.context.queue.loadEntry(id: held[0], state: .held))
        #expect(entry.lastError == "flagged for review")
        #expect(fixture.trackingEvents.contains { $0.event == .hold && $0.reason == "rule 'flagged': flagged for review" })
    }

    @Test func dropFinishesSilently() async throws {
        let fixture = try StageFixture(stages: Self.rules)
        defer { fixture.remove() }
        let big = String(repeating: "x", count: 2048) + "\r\n"
        let result = try await fixture.run(testMessage(headers: ["Subject: =?UTF-8?B?VVJHRU5UIHJlcGx5?="], body: big), through: "filter")
        #expect(result.outcome == .dropped, "the encoded-word subject decodes to 'URGENT reply'")
        #expect(fixture.files(in: "queue/incoming").isEmpty, "released, and no report")
        // Exchange's DROP: discarded without a report.
        #expect(fixture.trackingEvents.contains { $0.event == .drop && $0.reason?.contains("dropped by filter rule 'big-urgent'") == true })
    }

    @Test func allConditionsMustHold() async throws {
        let fixture = try StageFixture(stages: Self.rules)
        defer { fixture.remove() }
        // Urgent but small: big-urgent needs both conditions.
        let item = try #require(try await fixture.run(testMessage(headers: ["Subject: urgent"]), through: "filter").forwarded())
        #expect(item.notes.contains("filter: no rule matched"))
    }

    @Test func nullSenderIsRejectedWithoutAReport() async throws {
        let fixture = try StageFixture(stages: #"{ stage: "filter", rules: [{ name: "no-bounces", when: { sender: "<>" }, action: "reject" }] },"#)
        defer { fixture.remove() }
        let replay = "X-Sender: <>\r\nX-Receiver: <alice@example.com>\r\nFrom: MAILER-DAEMON@elsewhere.org\r\nSubject: bounce\r\n\r\nbody\r\n"
        let pickup = fixture.spool + "/replay"
        try FileSystem.createDirectory(pickup)
        try FileSystem.writeAtomically(Array(replay.utf8), to: pickup + "/r.eml")
        let claimed = try fixture.runner.context.queue.claim(path: pickup + "/r.eml", source: .replay)
        var result = StageResult.forward(PipelineItem(claimed: claimed, sourceDirectory: pickup, arrival: Date(), size: Int64(replay.utf8.count), bytes: Array(replay.utf8)))
        for (_, stage) in fixture.runner.stages.prefix(2) { if case .forward(let item) = result { result = try await stage.process(item) } }
        #expect(result.outcome == .reported)
        #expect(fixture.files(in: "queue/incoming").isEmpty, "no report about a null-sender message, and the file is released")
    }

    @Test func dryRunChangesNothing() async throws {
        let fixture = try StageFixture(stages: Self.rules, dryRun: true)
        defer { fixture.remove() }
        let result = try await fixture.run(testMessage(from: "x@spam.example"), through: "filter")
        #expect(result.outcome == .reported)
        #expect(fixture.files(in: "queue/incoming").count == 1, "the claimed file stays and no report is written")
        let held = try #require(try await fixture.run(testMessage(headers: ["X-Hold: yes"]), name: "h.eml", through: "filter").forwarded())
        #expect(held.holdReason == "flagged for review")
        #expect(!fixture.trackingEvents.contains { $0.event == .fail || $0.event == .hold })
    }

    @Test(arguments: [
        (#"{ stage: "filter", rules: [{ name: "a", when: { sender: "*" }, action: "reject", colour: 1 }] },"#, "stages[2].rules[0].colour: unknown key"),
        (#"{ stage: "filter", rules: [{ name: "a", when: { sendr: "*" }, action: "reject" }] },"#, "stages[2].rules[0].when.sendr: unknown key"),
        (#"{ stage: "filter", rules: [{ name: "a", when: { header: { name: "X", match: "y" } }, action: "hold" }] },"#, "stages[2].rules[0].when.header.match: unknown key"),
        (#"{ stage: "filter", rules: [{ name: "a", when: { header: { name: "X Y", matches: "y" } }, action: "hold" }] },"#, "not a valid field name"),
        (#"{ stage: "filter", rules: [{ name: "a", when: { sender: "*" }, action: "bounce" }] },"#, "stages[2].rules[0].action: unknown action 'bounce'"),
        (#"{ stage: "filter", rules: [{ name: "a", when: { sender: "*" } }] },"#, "stages[2].rules[0].action: required key is missing"),
        (#"{ stage: "filter", rules: [{ name: "a", when: { sender: "*" }, action: "hold", status: "5.7.1" }] },"#, "status applies to reject only"),
        (#"{ stage: "filter", rules: [{ name: "a", when: { sender: "*" }, action: "reject", status: "4.7.1" }] },"#, "not a permanent enhanced status code"),
        (#"{ stage: "filter", rules: [{ name: "a", when: { sender: "*" }, action: "reject", status: "5.7" }] },"#, "not a permanent enhanced status code"),
        (#"{ stage: "filter", rules: [{ name: "a", when: {}, action: "reject" }] },"#, "stages[2].rules[0].when: a rule needs at least one condition"),
        (#"{ stage: "filter", rules: [{ name: "a", when: { sender: "" }, action: "reject" }] },"#, "stages[2].rules[0].when.sender: an empty pattern"),
        (#"{ stage: "filter", rules: [{ name: "a", when: { sizeOver: "lots" }, action: "drop" }] },"#, "stages[2].rules[0].when.sizeOver: 'lots' is not a size"),
        (#"{ stage: "filter", rules: [{ name: "a", when: { sender: "*" }, action: "drop", reason: "x\ny" }] },"#, "stages[2].rules[0].reason: a reason is one line"),
        (#"{ stage: "filter", rules: [] },"#, "stages[2].rules: a filter needs at least one rule"),
        (#"{ stage: "filter", rules: [{ name: "a", when: { sender: "*" }, action: "drop" }, { name: "a", when: { sender: "*" }, action: "drop" }] },"#, "stages[2].rules[1].name: another rule is already named 'a'"),
    ])
    func configurationErrors(stages: String, expected: String) {
        let error = StageFixture.decodeError(stages: stages)
        #expect(error?.contains(expected) == true, "got: \(error ?? "no error")")
    }
}
