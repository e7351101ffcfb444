import Foundation
import Inotify
import Synchronization
import Testing

/// Issue 13's write path: a message whose next hops are file connectors is delivered from its
/// claimed file, without a queue entry; anything a file connector cannot take at once goes
/// through the queue as before. Watched with real inotify on the queue's folders.
@Suite(.serialized) struct InlineDeliveryTests {
    @Test func fileConnectorsDeliverWithoutAQueueEntryAndWhatWaitsIsQueued() async throws {
        let harness = try Harness()
        // The outbound drop directory takes one file; a second waits for the consumer, in the queue.
        try harness.useDefaultPipeline(replacing: [
            (#"dropDirectory: "drop/outbound" }"#, #"dropDirectory: "drop/outbound", quotaFiles: 1 }"#),
            (#"retry: { first: "1m", max: "1h" }"#, #"retry: { first: "1s", max: "2s" }"#),
        ])
        try await harness.start()
        let created = try QueueFolderWatch(folders: ["active", "deferred"].map { harness.spool + "/queue/" + $0 })

        // Maildir, a group, and the fax gateway: every copy inline.
        for index in [0, 1, 2, 3, 5, 6, 7, 8] { try harness.drop(Mail.message(index, token: "in\(index)"), named: "in\(index).eml") }
        let inline = Mail.expectedCensus(0..<4, prefix: "in").merging(Mail.expectedCensus(5..<9, prefix: "in")) { $1 }
        try await waitUntil("the inline deliveries", timeout: 120) { inline.keys.allSatisfy { harness.census()[$0] == inline[$0] } }
        try await waitUntil("the claimed files to go", timeout: 120) { harness.queuedFiles().isEmpty }
        try await created.catchUp(in: harness.spool + "/queue/active")
        #expect(created.names.isEmpty, "queue entries were written for messages delivered inline: \(created.names)")
        #expect(harness.trackingLines("SUBMIT").count == 8, "one SUBMIT per message and next hop: \(harness.trackingLines("SUBMIT"))")

        // Two messages for the outbound drop directory, one after the other (the quota is checked
        // before a write, not under a lock): the first fills it, the second is queued.
        try harness.drop(Mail.message(4, token: "out4"), named: "out4.eml")
        try await waitUntil("one outbound drop file", timeout: 120) { harness.files(under: "drop/outbound").count == 1 }
        try harness.drop(Mail.message(9, token: "out9"), named: "out9.eml")
        try await waitUntil("a queue entry for the message that does not fit", timeout: 120) { !created.names.isEmpty }
        #expect(harness.files(under: "drop/outbound").count == 1)
        // The consumer takes its file; the queued entry follows on its retry.
        for file in harness.files(under: "drop/outbound") { try FileManager.default.removeItem(atPath: harness.spool + "/" + file) }
        try await waitUntil("the queued message's drop file", timeout: 120) { harness.files(under: "drop/outbound").count == 1 }
        try await waitUntil("the queue to empty", timeout: 120) { harness.queuedFiles().isEmpty }
        let carol = harness.census().filter { $0.key.hasPrefix("out") }.map { $0.value["mailbox:carol"] ?? 0 }
        #expect(carol == [1, 1], "each outbound message's local copy exactly once")
        #expect(created.names.allSatisfy { $0.hasSuffix(".1") || $0.hasSuffix(".2") }, "\(created.names)")
        created.close()
        #expect(try await harness.stop() == 0)
    }
}

/// The names created in some folders, from inotify, until ``close()``.
final class QueueFolderWatch: Sendable {
    private final class Names: Sendable {
        let list = Mutex<[String]>([])
    }
    private let inotify: Inotify
    private let created = Names()

    init(folders: [String]) throws {
        let inotify = try Inotify()
        for folder in folders { _ = try inotify.addWatch(path: folder, mask: [.create, .movedTo, .onlyDirectory]) }
        self.inotify = inotify
        let created = self.created
        Task {
            for await event in inotify.events() {
                if let name = event.name { created.list.withLock { $0.append(name) } }
            }
        }
    }

    /// Queue entries made so far (hidden names left out: a temporary name ends as an entry).
    var names: [String] { created.list.withLock { $0 }.filter { !$0.hasPrefix(".") } }

    /// Returns once every event before this call has been read: a hidden probe file made in
    /// `folder` (queue scans skip hidden names) is seen after them, as inotify keeps their order.
    func catchUp(in folder: String) async throws {
        let probe = ".probe-" + UUID().uuidString
        #expect(FileManager.default.createFile(atPath: folder + "/" + probe, contents: nil))
        try await waitUntil("the watch to catch up", timeout: 120) { self.created.list.withLock { $0.contains(probe) } }
        try FileManager.default.removeItem(atPath: folder + "/" + probe)
    }

    func close() { inotify.close() }
}
