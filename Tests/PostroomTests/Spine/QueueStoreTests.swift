import Foundation
import PostroomSystem
import Testing
@testable import Postroom

extension Spine {
    @Suite struct QueueStoreTests {
        static func entry(_ id: String, queueID: String? = nil, connector: String = "outbound", messageID: String = "<m1@example.com>") -> QueueEntry {
            var entry = QueueEntry(id: id, queueID: queueID ?? String(id.prefix { $0 != "." }), connector: connector,
                                   envelope: Envelope(sender: "a@example.com", recipients: [EnvelopeRecipient(address: "b@example.net", parameters: ["NOTIFY=NEVER"])]),
                                   mailboxes: ["b@example.net": "b"], messageID: messageID, source: .pickup,
                                   arrival: Date(timeIntervalSince1970: 1_700_000_000.123), size: 42)
            entry.attempts = 3
            entry.nextAttempt = Date(timeIntervalSince1970: 1_700_000_600.5)
            entry.lastError = "451 4.4.1 try later"
            entry.delayNotified = true
            entry.crashCount = 1
            return entry
        }

        static func files(in folder: String) -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).sorted()
        }

        @Test func prepareCreatesTheFolders() throws {
            let spool = try Spine.TemporaryFolder("queue")
            let store = QueueStore(spool: spool.path)
            try store.prepare()
            for folder in [store.incoming, store.folder(.active), store.folder(.deferred), store.folder(.held), store.folder(.poison), store.controlFolder] {
                #expect(FileSystem.status(of: folder)?.kind == .directory, "\(folder)")
            }
            #expect(store.folder(.held).hasSuffix("/queue/hold"))
            try store.prepare()  // twice is fine
        }

        @Test func claimMovesTheFileInUnderANewQueueID() throws {
            let spool = try Spine.TemporaryFolder("queue")
            let store = QueueStore(spool: spool.path)
            try store.prepare()
            let original = try spool.write("pickup/msg.v1.eml", "body")
            let claimed = try store.claim(path: original, source: .pickup)
            #expect(!FileManager.default.fileExists(atPath: original))
            #expect(claimed.queueID.count == 13)
            #expect(claimed.queueID.allSatisfy { $0.isHexDigit && !$0.isLowercase })
            #expect(claimed.originalName == "msg.v1.eml")
            #expect(claimed.source == .pickup)
            #expect(claimed.path == store.incoming + "/\(claimed.queueID).pickup.msg.v1.eml")
            #expect(try String(contentsOfFile: claimed.path, encoding: .utf8) == "body")
            var recovered = claimed
            recovered.recovered = true
            #expect(!claimed.recovered)
            #expect(try store.claimedFiles() == [recovered])
        }

        @Test func claimedFilesParsesNamesBackOldestFirstAndSkipsStrangers() throws {
            let spool = try Spine.TemporaryFolder("queue")
            let store = QueueStore(spool: spool.path)
            try store.prepare()
            let first = try store.claim(path: try spool.write("pickup/a", "1"), source: .replay)
            let second = try store.claim(path: try spool.write("pickup/b.c.d.eml", "2"), source: .pickup)
            try spool.write("queue/incoming/not-a-claim", "x")
            try spool.write("queue/incoming/0123456789ABC.smtp.x.eml", "x")
            try spool.write("queue/incoming/.hidden.1.tmp", "x")
            let found = try store.claimedFiles()
            #expect(found == [first, second].map { claim in
                var recovered = claim
                recovered.recovered = true
                return recovered
            })
            #expect(found.last?.originalName == "b.c.d.eml")
            #expect(!FileManager.default.fileExists(atPath: store.incoming + "/.hidden.1.tmp"), "hidden leftovers are removed")
        }

        @Test func claimByCopyLeavesOneCopy() throws {
            let spool = try Spine.TemporaryFolder("queue")
            let store = QueueStore(spool: spool.path)
            try store.prepare()
            let original = try spool.write("pickup/x.eml", "copied")
            let claimed = try store.claimByCopy(path: original, source: .pickup)
            #expect(!FileManager.default.fileExists(atPath: original))
            #expect(try String(contentsOfFile: claimed.path, encoding: .utf8) == "copied")
            #expect(Self.files(in: store.incoming) == [(claimed.path as NSString).lastPathComponent])
        }

        @Test func storeLoadRoundTripsEveryField() async throws {
            let spool = try Spine.TemporaryFolder("queue")
            let store = QueueStore(spool: spool.path)
            try store.prepare()
            let entry = Self.entry("0000000000001.1")
            let message = Array("Subject: hi\r\n\r\nbody\r\n".utf8) + [0, 255, 10]
            try await store.store([(entry, message)], state: .deferred)
            #expect(Self.files(in: store.folder(.deferred)) == [entry.id])

            let (loaded, bytes) = try #require(try store.load(id: entry.id, state: .deferred))
            #expect(bytes == message)
            #expect(loaded == entry)
            #expect(Int64((loaded.arrival.timeIntervalSince1970 * 1000).rounded()) == 1_700_000_000_123)
            #expect(store.loadEntry(id: entry.id, state: .deferred) == entry)
            #expect(try store.load(id: entry.id, state: .active) == nil, "a missing entry loads as nil")
            #expect(store.loadEntry(id: "nope", state: .deferred) == nil)
        }

        @Test func arrivalKeepsMillisecondsOfAnyDate() async throws {
            let spool = try Spine.TemporaryFolder("queue")
            let store = QueueStore(spool: spool.path)
            try store.prepare()
            var entry = Self.entry("0000000000002.1")
            entry.arrival = Date()
            try await store.store([(entry, [])])
            let loaded = try #require(store.loadEntry(id: entry.id, state: .active))
            #expect(abs(loaded.arrival.timeIntervalSince(entry.arrival)) < 0.001)
        }

        @Test func aCorruptEntryDoesNotLoad() throws {
            let spool = try Spine.TemporaryFolder("queue")
            let store = QueueStore(spool: spool.path)
            try store.prepare()
            try spool.write("queue/active/bad.1", "POSTROOM-QUEUE 1\n{not json\nbody")
            try spool.write("queue/active/bad.2", "something else entirely")
            #expect(store.loadEntry(id: "bad.1", state: .active) == nil)
            #expect(try store.load(id: "bad.2", state: .active) == nil)
            #expect(store.entries().isEmpty)
        }

        @Test func moveLeavesExactlyOneFile() async throws {
            let spool = try Spine.TemporaryFolder("queue")
            let store = QueueStore(spool: spool.path)
            try store.prepare()
            var entry = Self.entry("0000000000003.1")
            try await store.store([(entry, Array("m".utf8))])
            entry.attempts += 1
            try await store.move(entry, message: Array("m".utf8), from: .active, to: .deferred)
            #expect(Self.files(in: store.folder(.active)).isEmpty)
            #expect(Self.files(in: store.folder(.deferred)) == [entry.id])
            #expect(store.loadEntry(id: entry.id, state: .deferred)?.attempts == 4)

            try await store.rename(id: entry.id, from: .deferred, to: .poison)
            #expect(Self.files(in: store.folder(.deferred)).isEmpty)
            #expect(Self.files(in: store.folder(.poison)) == [entry.id])
            #expect(store.entries().map(\.state) == [.poison])

            try await store.remove(id: entry.id, state: .poison)
            #expect(store.entries().isEmpty)
            for state in QueueState.allCases { #expect(Self.files(in: store.folder(state)).isEmpty) }
        }

        @Test(arguments: [
            (QueueState.active, QueueState.deferred),
            (.deferred, .held),
            (.held, .poison),
            (.active, .poison),
            (.poison, .active),
            (.held, .deferred),
        ])
        func aDuplicateIsSettledForTheLaterState(first: QueueState, second: QueueState) async throws {
            let spool = try Spine.TemporaryFolder("queue")
            let store = QueueStore(spool: spool.path)
            try store.prepare()
            let entry = Self.entry("0000000000004.1")
            try await store.store([(entry, [])], state: first)
            try await store.store([(entry, [])], state: second)
            let winner = first.precedence > second.precedence ? first : second
            let loser = winner == first ? second : first
            let entries = store.entries()
            #expect(entries.count == 1)
            #expect(entries.first?.state == winner)
            #expect(entries.first?.entry == entry)
            #expect(Self.files(in: store.folder(winner)) == [entry.id])
            #expect(Self.files(in: store.folder(loser)).isEmpty, "the other copy is deleted")
        }

        @Test func entriesAreSortedByIDAndCountedPerConnector() async throws {
            let spool = try Spine.TemporaryFolder("queue")
            let store = QueueStore(spool: spool.path)
            try store.prepare()
            try await store.store([(Self.entry("B.1", connector: "fax"), []), (Self.entry("A.1"), [])])
            try await store.store([(Self.entry("C.1", connector: "fax"), [])], state: .held)
            #expect(store.entries().map(\.entry.id) == ["A.1", "B.1", "C.1"])
            let counts = store.counts(in: [.active, .held])
            #expect(counts["fax"] == [.active: 1, .held: 1])
            #expect(counts["outbound"] == [.active: 1])
        }

        @Test func removeTemporaryFilesRemovesOnlyHiddenTmpFiles() throws {
            let spool = try Spine.TemporaryFolder("queue")
            let store = QueueStore(spool: spool.path)
            try store.prepare()
            try spool.write("queue/incoming/.0000000000005.pickup.a.123.tmp", "x")
            try spool.write("queue/active/.A.1.99.tmp", "x")
            try spool.write("queue/poison/.P.1.7.tmp", "x")
            try spool.write("queue/active/A.2", "kept")
            try spool.write("queue/active/visible.tmp", "kept: not hidden")
            try spool.write("queue/deferred/.hidden", "kept: not .tmp")
            store.removeTemporaryFiles()
            #expect(Self.files(in: store.incoming).isEmpty)
            #expect(Self.files(in: store.folder(.active)) == ["A.2", "visible.tmp"])
            #expect(Self.files(in: store.folder(.poison)).isEmpty)
            #expect(Self.files(in: store.folder(.deferred)) == [".hidden"])
        }

        @Test func queueIDsStrictlyIncrease() {
            var previous = QueueID.next()
            var previousValue = UInt64(previous, radix: 16) ?? 0
            for _ in 0..<10_000 {
                let next = QueueID.next()
                let value = UInt64(next, radix: 16) ?? 0
                guard next.count == 13, value > previousValue, next > previous else {
                    Issue.record("\(next) does not follow \(previous)")
                    return
                }
                previous = next
                previousValue = value
            }
            #expect(previous.count == 13)
        }

        @Test func queueIDsAreUniqueAcrossThreads() async {
            let ids = await withTaskGroup(of: [String].self) { group in
                for _ in 0..<4 { group.addTask { (0..<2000).map { _ in QueueID.next() } } }
                var all: [String] = []
                for await chunk in group { all += chunk }
                return all
            }
            #expect(Set(ids).count == ids.count)
        }

        // MARK: PoisonJournal

        @Test func beginWithoutEndCountsAsAFailureAfterARestart() throws {
            let spool = try Spine.TemporaryFolder("poison")
            let store = QueueStore(spool: spool.path)
            try store.prepare()
            let run1 = PoisonJournal(queue: store)
            #expect(run1.failureCounts().isEmpty, "no journal yet")
            try run1.reset(keeping: run1.failureCounts())
            _ = run1.begin("Q:crashed")
            run1.end(run1.begin("Q:fine"))
            run1.failed("Q:errored")
            run1.failed("Q:errored")

            let run2 = PoisonJournal(queue: store)
            let counts = run2.failureCounts()
            #expect(counts == ["Q:crashed": 1, "Q:errored": 2])
            #expect(counts["Q:fine"] == nil)
        }

        @Test func resetKeepsCountsAcrossAnotherRestart() throws {
            let spool = try Spine.TemporaryFolder("poison")
            let store = QueueStore(spool: spool.path)
            try store.prepare()
            let key = PoisonJournal.key(entry: "0000000000006.1")
            #expect(key == "Q:0000000000006.1")
            #expect(PoisonJournal.key(claimed: "0000000000006") == "C:0000000000006")

            let run1 = PoisonJournal(queue: store)
            try run1.reset(keeping: [:])
            _ = run1.begin(key)

            let run2 = PoisonJournal(queue: store)
            let afterFirstCrash = run2.failureCounts()
            #expect(afterFirstCrash == [key: 1])
            try run2.reset(keeping: afterFirstCrash)
            _ = run2.begin(key)  // crashes again

            let run3 = PoisonJournal(queue: store)
            let afterSecondCrash = run3.failureCounts()
            #expect(afterSecondCrash == [key: 2])
            try run3.reset(keeping: afterSecondCrash)
            run3.end(run3.begin(key))  // this time it finished

            let run4 = PoisonJournal(queue: store)
            #expect(run4.failureCounts() == [key: 2], "earlier failures are kept, the clean run adds none")
            try run4.reset(keeping: [:])
            #expect(PoisonJournal(queue: store).failureCounts().isEmpty, "reset with nothing forgets everything")
        }

        @Test func aLongRunCompactsTheJournalAndKeepsItsMeaning() throws {
            let spool = try Spine.TemporaryFolder("poison")
            let store = QueueStore(spool: spool.path)
            try store.prepare()
            // Without slots every mark is a line, which is what compaction is for.
            let journal = PoisonJournal(queue: store, compactAfter: 4096, slotCount: 0)
            try journal.reset(keeping: ["C:old": 1])
            let throughout = journal.begin("Q:open-throughout")
            journal.failed("Q:errored")
            // Ten thousand finished stages: 300 KB of lines without compaction.
            for index in 0..<10_000 {
                journal.end(journal.begin("C:\(index)"))
            }
            let atTheEnd = journal.begin("C:open-at-the-end")
            let size = try FileSystem.readFile(journal.path).count
            #expect(size < 8192, "the journal is \(size) bytes after 10,000 finished stages")
            // What a crash now would find: every open key once, every failure.
            #expect(PoisonJournal(queue: store).failureCounts() == ["C:old": 1, "Q:errored": 1, "Q:open-throughout": 1, "C:open-at-the-end": 1])
            journal.end(throughout)
            journal.end(atTheEnd)
            #expect(PoisonJournal(queue: store).failureCounts() == ["C:old": 1, "Q:errored": 1])
        }

        @Test func marksGoToSlotsAndWriteNothingToTheJournal() throws {
            let spool = try Spine.TemporaryFolder("poison")
            let store = QueueStore(spool: spool.path)
            try store.prepare()
            let journal = PoisonJournal(queue: store)
            try journal.reset(keeping: ["C:old": 1])
            let size = try FileSystem.readFile(journal.path).count
            for index in 0..<1000 {
                let first = journal.begin("C:\(index)")
                let second = journal.begin("C:\(index)")
                journal.end(first)
                journal.end(second)
            }
            let open = journal.begin("Q:open")
            #expect(try FileSystem.readFile(journal.path).count == size, "begin and end wrote journal lines")
            // A second process (the next start) reads the slots from the file, as after a kill -9.
            #expect(PoisonJournal(queue: store).failureCounts() == ["C:old": 1, "Q:open": 1])
            journal.end(open)
            #expect(PoisonJournal(queue: store).failureCounts() == ["C:old": 1])
        }

        @Test func aTornSlotIsNotCounted() throws {
            let spool = try Spine.TemporaryFolder("poison")
            let store = QueueStore(spool: spool.path)
            try store.prepare()
            let journal = PoisonJournal(queue: store, slotCount: 4)
            try journal.reset(keeping: [:])
            let mark = journal.begin("C:0000000000001")
            let whole = try FileSystem.readFile(journal.slotsPath)
            #expect(PoisonJournal.openSlots(whole) == ["C:0000000000001"])
            // A death in the middle of the stores: a key byte not yet written, or the state byte set
            // over a slot whose key was never stored (its checksum cleared when it last ended).
            var torn = whole
            torn[5] ^= 0x01
            #expect(PoisonJournal.openSlots(torn).isEmpty)
            journal.end(mark)
            var reused = try FileSystem.readFile(journal.slotsPath)
            #expect(PoisonJournal.openSlots(reused).isEmpty)
            reused[0] = 1
            #expect(PoisonJournal.openSlots(reused).isEmpty, "an ended key came back to life")
            #expect(PoisonJournal.openSlots(Array(whole.prefix(100))).isEmpty, "a short file is read without a crash")
        }

        @Test func fullSlotsAndLongKeysFallBackToJournalLines() throws {
            let spool = try Spine.TemporaryFolder("poison")
            let store = QueueStore(spool: spool.path)
            try store.prepare()
            let journal = PoisonJournal(queue: store, slotCount: 2)
            try journal.reset(keeping: [:])
            let long = "Q:" + String(repeating: "x", count: 200)
            let keys = ["C:1", "C:2", "C:3", long]
            let marks = keys.map { journal.begin($0) }
            #expect(try FileSystem.readFile(journal.path).count > 0, "the keys without a slot went to the journal")
            #expect(PoisonJournal(queue: store).failureCounts() == Dictionary(uniqueKeysWithValues: keys.map { ($0, 1) }))
            for mark in marks { journal.end(mark) }
            #expect(PoisonJournal(queue: store).failureCounts().isEmpty)
        }
    }
}
