import Foundation
import PostroomSystem
import Synchronization
import Testing
@testable import Postroom

extension Spine {
    /// The four defects the power-loss suite found (issue 13), each pinned down without a daemon.
    @Suite struct CrashRecoveryTests {
        // MARK: (a) a report is as exactly-once as a delivery

        @Test func aReRunAfterACrashMakesTheSameReportNotASecondOne() async throws {
            let fixture = try StageFixture(stages: #"{ stage: "categorize", directory: "directory.json5", acceptedDomains: ["example.com"] }, { stage: "route" },"#)
            defer { fixture.remove() }
            let reports = { fixture.files(in: "queue/incoming").filter { $0.contains(".report.") } }
            let routed = try #require(try await fixture.run(testMessage(to: "alice@example.com, nobody@example.com"), through: "route").forwarded())
            // The deliver stage writes the report, queues the entries, releases the claimed file. A crash
            // before the release makes the next run do it all again with the same claimed file.
            _ = try await fixture.runner.delivery.accept(routed)
            let first = reports()
            #expect(first.count == 1)
            _ = try await fixture.runner.delivery.accept(routed)
            #expect(reports() == first, "the report made again is the one already in incoming/")
            // Even once the first report has gone on (delivered, its claimed file released), the same
            // cause names the same report, so its deliveries land on the same names.
            try FileManager.default.removeItem(atPath: fixture.spool + "/queue/incoming/" + first[0])
            _ = try await fixture.runner.delivery.accept(routed)
            #expect(reports() == first)
            let text = try fixture.read("queue/incoming/" + first[0])
            let reportID = String(first[0].prefix { $0 != "." })
            #expect(reportID.hasPrefix(routed.queueID + "R"))
            #expect(text.contains("Message-ID: <\(reportID).report@"), "the report's Message-ID derives from its cause too")
        }

        @Test func reportIdentityDependsOnCauseAndRecipientsOnly() {
            let failed = [FailedRecipient(address: "x@example.com", status: "5.1.1", diagnostic: "unknown")]
            let cause = ReportCause.intake("0000000000ABC")
            let id = cause.reportQueueID(reporting: failed)
            #expect(id == cause.reportQueueID(reporting: [FailedRecipient(address: "x@example.com", status: "5.1.1", diagnostic: "other words")]))
            #expect(id != ReportCause(queueID: "0000000000ABC", event: "validate").reportQueueID(reporting: failed))
            #expect(id != cause.reportQueueID(reporting: failed + [FailedRecipient(address: "y@example.com", status: "5.1.1", diagnostic: "unknown")]))
            #expect(id.count == 13 + 1 + 16 && !id.contains("."))
            #expect(id.prefix(13) == "0000000000ABC")
        }

        // MARK: (b) one crash is one crash, and a finished stage is never blamed

        @Test func oneDeathCountsOncePerMessageHoweverManyLinesAreOpen() throws {
            let spool = try Spine.TemporaryFolder("journal")
            let store = QueueStore(spool: spool.path)
            try store.prepare()
            try spool.write("queue/inflight.journal", "X C:A\nB C:A\nB C:A\nE C:A\nB C:A\nB Q:A.1\nE Q:A.1\nB C:B\nE C:B\n")
            let counts = PoisonJournal(queue: store).failureCounts()
            #expect(counts["C:A"] == 2, "one earlier failure plus this death, not three")
            #expect(counts["Q:A.1"] == nil)
            #expect(counts["C:B"] == nil)
        }

        /// Stage k writes its "end" before stage k+1 can write its "begin": the journal never has two
        /// open lines for one message, so a kill at any instant counts at most once against it.
        @Test func aStageEndsItsJournalLineBeforeHandingTheMessageOn() async throws {
            let spool = try Spine.TemporaryFolder("journal")
            let store = QueueStore(spool: spool.path)
            try store.prepare()
            // Journal lines only (no slots): the order of the lines is what this checks.
            let journal = PoisonJournal(queue: store, slotCount: 0)
            try journal.reset(keeping: [:])
            let channels = (0...3).map { _ in BoundedChannel<PipelineItem>(capacity: 4) }
            let telemetry = Telemetry.inMemory(pipeline: "test")
            let log = Logger(minimum: .error)
            let count = 400
            await withTaskGroup(of: Void.self) { group in
                for index in 0..<3 {
                    group.addTask {
                        await PipelineRunner.runStage(name: "s\(index)", stage: PassStage(last: index == 2), input: channels[index],
                                                      output: index == 2 ? nil : channels[index + 1], telemetry: telemetry,
                                                      journal: journal, log: log, onFailure: { _, _ in })
                        channels[index + 1].finish()
                    }
                }
                for index in 0..<count {
                    let claimed = ClaimedFile(queueID: String(format: "%013X", index), source: .pickup, originalName: "m.eml", path: "/nonexistent")
                    await channels[0].send(PipelineItem(claimed: claimed, sourceDirectory: nil, arrival: Date(), size: 0, bytes: []))
                }
                channels[0].finish()
            }
            let lines = try String(contentsOfFile: journal.path, encoding: .utf8).split(separator: "\n")
            #expect(lines.count == count * 3 * 2)
            var open: [Substring: Int] = [:]
            var overlaps = 0
            for line in lines {
                let key = line.dropFirst(2)
                open[key, default: 0] += line.hasPrefix("B") ? 1 : -1
                if open[key]! > 1 { overlaps += 1 }
            }
            #expect(overlaps == 0, "\(overlaps) times a message was begun by one stage before the previous one ended it")
        }

        actor PassStage: MessageStage {
            let last: Bool
            init(last: Bool) { self.last = last }
            func process(_ item: PipelineItem) async throws -> StageResult { last ? .finished(.queued) : .forward(item) }
        }

        // MARK: (c) a parked claimed file is a queue item like any other

        @Test func aParkedClaimedFileIsListedReleasedAndRemoved() async throws {
            let spool = try Spine.TemporaryFolder("parked")
            let store = QueueStore(spool: spool.path)
            try store.prepare()
            let original = try spool.write("pickup/crash.eml", "From: Zed <z@elsewhere.org>\r\nTo: alice@example.com\r\nMessage-ID: <boom@x>\r\n\r\nboom\r\n")
            let claimed = try store.claim(path: original, source: .pickup)
            try store.park(claimed, reason: "failed unexpectedly 2 times")
            let scan = store.scan()
            #expect(scan.entries.isEmpty)
            #expect(scan.damaged.isEmpty, "a parked file and its reason are not damaged entries")
            let parked = try #require(scan.parked.first)
            #expect(scan.parked.count == 1)
            #expect(parked.claimed.queueID == claimed.queueID)
            #expect(parked.reason == "failed unexpectedly 2 times")
            #expect(parked.messageID == "<boom@x>")
            #expect(parked.sender == "Zed <z@elsewhere.org>")
            #expect(parked.recipients == ["alice@example.com"])

            let resubmitted = Spine.Recorder<ClaimedFile>()
            let administration = QueueAdministration(store: store, delivery: nil, telemetry: nil, resubmit: { resubmitted.append($0) })
            let hold = await administration.apply(QueueRequest(action: .hold, id: claimed.queueID))
            #expect(!hold.ok && hold.message.contains("is poison"))
            let release = await administration.apply(QueueRequest(action: .release, id: "<boom@x>"))
            #expect(release.ok, "\(release.message)")
            #expect(release.affected == [claimed.queueID])
            #expect(try store.claimedFiles().map(\.queueID) == [claimed.queueID], "back in incoming/ for the pipeline")
            #expect(resubmitted.values.map(\.path) == [claimed.path])
            #expect(store.scan().parked.isEmpty)
            #expect(QueueStoreTests.files(in: store.folder(.poison)).isEmpty, "the reason goes with it")

            try store.park(try #require(try store.claimedFiles().first), reason: "again")
            let remove = await administration.apply(QueueRequest(action: .remove, id: claimed.queueID))
            #expect(remove.ok)
            #expect(QueueStoreTests.files(in: store.folder(.poison)).isEmpty)
        }

        // MARK: (d) a damaged entry is reported and moved aside, never skipped in silence

        @Test func damagedEntriesAreFoundAndMovedAside() async throws {
            let spool = try Spine.TemporaryFolder("damaged")
            let store = QueueStore(spool: spool.path)
            try store.prepare()
            try spool.write("queue/active/0000000000001.1", "")
            try spool.write("queue/deferred/0000000000002.1", "garbage")
            var entry = QueueStoreTests.entry("0000000000003.1")
            entry.size = 10
            try await store.store([(entry, Array("0123456789".utf8))])
            let scan = store.scan()
            #expect(scan.entries.map(\.entry.id) == ["0000000000003.1"])
            #expect(scan.damaged.map(\.state) == [.active, .deferred])
            #expect(scan.damaged.first?.problem == "empty (0 bytes)")
            // A file cut short keeps a readable head; loading the whole entry notices.
            let path = store.folder(.active) + "/0000000000003.1"
            let whole = try FileSystem.readFile(path)
            try FileSystem.writeAtomically(whole.dropLast(4), to: path, sync: false)
            #expect(throws: QueueFileDamage.self) { try store.loadChecked(id: "0000000000003.1", state: .active) }
            #expect(try store.loadChecked(id: "0000000000009.1", state: .active) == nil, "a missing entry is not damaged")

            for damaged in scan.damaged { try store.quarantine(damaged) }
            #expect(store.quarantinedFiles() == ["active.0000000000001.1", "deferred.0000000000002.1"])
            #expect(try String(contentsOfFile: store.damagedFolder + "/active.0000000000001.1.reason", encoding: .utf8).contains("empty"))
            #expect(store.scan().damaged.isEmpty)
        }
    }

    /// Collects values from a Sendable callback.
    final class Recorder<Value: Sendable>: Sendable {
        private let storage = Mutex<[Value]>([])
        func append(_ value: Value) { storage.withLock { $0.append(value) } }
        var values: [Value] { storage.withLock { $0 } }
    }
}
