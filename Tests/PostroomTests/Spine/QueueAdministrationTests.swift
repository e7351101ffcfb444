import Foundation
import Testing
@testable import Postroom

extension Spine {
    /// `postroom queue` on a stopped spool: no delivery service, only the files.
    @Suite struct QueueAdministrationTests {
        let spool: Spine.TemporaryFolder
        let store: QueueStore
        let administration: QueueAdministration

        init() throws {
            spool = try Spine.TemporaryFolder("admin")
            store = QueueStore(spool: spool.path)
            try store.prepare()
            administration = QueueAdministration(store: store, delivery: nil, telemetry: nil)
        }

        func put(_ id: String, _ state: QueueState, messageID: String = "<m@example.com>") async throws {
            try await store.store([(QueueStoreTests.entry(id, messageID: messageID), Array("m".utf8))], state: state)
        }

        func state(of id: String) -> QueueState? { store.entries().first { $0.entry.id == id }?.state }

        @Test func holdMovesActiveAndDeferredEntriesToHold() async throws {
            try await put("AAAAAAAAAAAAA.1", .active)
            try await put("BBBBBBBBBBBBB.1", .deferred)
            for id in ["AAAAAAAAAAAAA.1", "BBBBBBBBBBBBB.1"] {
                let response = await administration.apply(QueueRequest(action: .hold, id: id))
                #expect(response.ok)
                #expect(response.affected == [id])
                #expect(response.message == "1 entry held")
                #expect(state(of: id) == .held)
            }
            #expect(QueueStoreTests.files(in: store.folder(.active)).isEmpty)
            #expect(QueueStoreTests.files(in: store.folder(.deferred)).isEmpty)
        }

        /// As `postsuper -h` on a held message: the wanted state holds already, which is not an error.
        @Test func holdOnAHeldEntryIsUnchanged() async throws {
            try await put("AAAAAAAAAAAAA.1", .held)
            let response = await administration.apply(QueueRequest(action: .hold, id: "AAAAAAAAAAAAA.1"))
            #expect(response.ok)
            #expect(response.affected.isEmpty)
            #expect(response.message == "0 entries held; already held: AAAAAAAAAAAAA.1")
            #expect(state(of: "AAAAAAAAAAAAA.1") == .held)
        }

        @Test func releaseMovesHeldAndPoisonToActive() async throws {
            try await put("AAAAAAAAAAAAA.1", .held)
            try await put("BBBBBBBBBBBBB.1", .poison)
            try await put("CCCCCCCCCCCCC.1", .deferred)
            for id in ["AAAAAAAAAAAAA.1", "BBBBBBBBBBBBB.1"] {
                let response = await administration.apply(QueueRequest(action: .release, id: id))
                #expect(response.ok)
                #expect(state(of: id) == .active)
            }
            let unchanged = await administration.apply(QueueRequest(action: .release, id: "CCCCCCCCCCCCC.1"))
            #expect(!unchanged.ok)
            #expect(unchanged.message.contains("unchanged: CCCCCCCCCCCCC.1 is deferred"))
            #expect(state(of: "CCCCCCCCCCCCC.1") == .deferred)
        }

        @Test func retryOnAStoppedSpoolMakesDeferredEntriesActive() async throws {
            try await put("AAAAAAAAAAAAA.1", .deferred)
            try await put("BBBBBBBBBBBBB.1", .active)
            try await put("CCCCCCCCCCCCC.1", .held)
            let deferred = await administration.apply(QueueRequest(action: .retry, id: "AAAAAAAAAAAAA.1"))
            #expect(deferred.ok)
            #expect(deferred.message == "1 entry scheduled for retry")
            #expect(state(of: "AAAAAAAAAAAAA.1") == .active)
            let active = await administration.apply(QueueRequest(action: .retry, id: "BBBBBBBBBBBBB.1"))
            #expect(active.ok, "an active entry is retried first thing at the next start")
            #expect(state(of: "BBBBBBBBBBBBB.1") == .active)
            let held = await administration.apply(QueueRequest(action: .retry, id: "CCCCCCCCCCCCC.1"))
            #expect(!held.ok)
            #expect(state(of: "CCCCCCCCCCCCC.1") == .held)
        }

        @Test func retryAllAppliesToEveryEntryAndIsOKEvenIfNoneChanges() async throws {
            try await put("AAAAAAAAAAAAA.1", .deferred)
            try await put("BBBBBBBBBBBBB.1", .deferred)
            try await put("CCCCCCCCCCCCC.1", .held)
            let response = await administration.apply(QueueRequest(action: .retry, id: nil, all: true))
            #expect(response.ok)
            #expect(Set(response.affected) == ["AAAAAAAAAAAAA.1", "BBBBBBBBBBBBB.1"])
            #expect(!response.message.contains("unchanged"), "--all does not list what it skipped")
            #expect(state(of: "CCCCCCCCCCCCC.1") == .held)

            let empty = QueueAdministration(store: QueueStore(spool: spool.sub("empty")), delivery: nil, telemetry: nil)
            let none = await empty.apply(QueueRequest(action: .retry, id: nil, all: true))
            #expect(none.ok)
            #expect(none.affected.isEmpty)
        }

        @Test func removeDeletesFromAnyState() async throws {
            for (id, state) in [("AAAAAAAAAAAAA.1", QueueState.active), ("BBBBBBBBBBBBB.1", .deferred), ("CCCCCCCCCCCCC.1", .held), ("DDDDDDDDDDDDD.1", .poison)] {
                try await put(id, state)
                let response = await administration.apply(QueueRequest(action: .remove, id: id))
                #expect(response.ok)
                #expect(response.message == "1 entry removed")
                #expect(self.state(of: id) == nil)
            }
            #expect(store.entries().isEmpty)
        }

        @Test func anUnknownIDIsNotOK() async throws {
            try await put("AAAAAAAAAAAAA.1", .active)
            let response = await administration.apply(QueueRequest(action: .remove, id: "FFFFFFFFFFFFF.9"))
            #expect(!response.ok)
            #expect(response.affected.isEmpty)
            #expect(response.message == "no queued message matches FFFFFFFFFFFFF.9")
            #expect(state(of: "AAAAAAAAAAAAA.1") == .active)

            let neither = await administration.apply(QueueRequest(action: .hold, id: nil))
            #expect(!neither.ok)
        }

        @Test func aQueueIDNamesAllItsEntries() async throws {
            try await put("AAAAAAAAAAAAA.1", .active)
            try await put("AAAAAAAAAAAAA.2", .deferred)
            try await put("BBBBBBBBBBBBB.1", .active)
            let response = await administration.apply(QueueRequest(action: .hold, id: "AAAAAAAAAAAAA"))
            #expect(response.ok)
            #expect(response.affected == ["AAAAAAAAAAAAA.1", "AAAAAAAAAAAAA.2"])
            #expect(response.message == "2 entries held")
            #expect(state(of: "BBBBBBBBBBBBB.1") == .active)
        }

        @Test func matchingByEntryIDQueueIDAndMessageID() async throws {
            try await put("AAAAAAAAAAAAA.1", .active, messageID: "<one@example.com>")
            try await put("AAAAAAAAAAAAA.2", .active, messageID: "<one@example.com>")
            try await put("BBBBBBBBBBBBB.1", .held, messageID: "<two@example.com>")
            try await put("CCCCCCCCCCCCC.1", .active, messageID: "three@example.com")
            let entries = store.entries()
            func ids(_ id: String) -> [String] { QueueAdministration.matching(id, in: entries).map(\.entry.id) }
            #expect(ids("AAAAAAAAAAAAA.2") == ["AAAAAAAAAAAAA.2"])
            #expect(ids("AAAAAAAAAAAAA") == ["AAAAAAAAAAAAA.1", "AAAAAAAAAAAAA.2"])
            #expect(ids("<two@example.com>") == ["BBBBBBBBBBBBB.1"])
            #expect(ids("two@example.com") == ["BBBBBBBBBBBBB.1"])
            #expect(ids("one@example.com") == ["AAAAAAAAAAAAA.1", "AAAAAAAAAAAAA.2"])
            #expect(ids("<three@example.com>") == ["CCCCCCCCCCCCC.1"], "a stored Message-ID without brackets matches too")
            #expect(ids("AAAAAAAAAAAA").isEmpty, "a prefix of a queue id is not a match")
            #expect(ids("four@example.com").isEmpty)

            let byMessageID = await administration.apply(QueueRequest(action: .release, id: "two@example.com"))
            #expect(byMessageID.affected == ["BBBBBBBBBBBBB.1"])
            #expect(state(of: "BBBBBBBBBBBBB.1") == .active)
        }
    }
}
