import Foundation
import PostroomSystem
import Testing
import TestSupport
@testable import Postroom

@Suite struct MaildirConnectorTests {
    static func connector(spool: String) throws -> MaildirConnector {
        let data = Data(#"{"name":"mailbox","type":"maildir","domains":["example.com"],"path":"mailboxes/{user}"}"#.utf8)
        let configuration = try ConfigFile.decode(ConnectorConfiguration.self, from: data, file: "test.json5")
        return MaildirConnector(configuration: configuration, spool: spool, hostname: "host", commit: DeliveryCommit(spool: spool, directorySync: DirectorySync()))
    }

    static func entry(_ number: Int) -> QueueEntry {
        var entry = QueueEntry(id: "0000000001A.\(number)", queueID: "0000000001A", connector: "mailbox",
                               envelope: Envelope(sender: "z@elsewhere.org", recipients: [EnvelopeRecipient(address: "alice@example.com")]),
                               mailboxes: ["alice@example.com": "alice"], messageID: "<m@x>", source: .pickup, arrival: Date(), size: 0)
        entry.isFresh = true
        return entry
    }

    /// The connector makes a mailbox's tmp/new/cur once, not on every delivery; a mailbox removed
    /// behind its back must be made again, not lose the next message.
    @Test func aMailboxRemovedWhileRunningIsMadeAgain() async throws {
        let spool = try TemporaryFolder("maildir")
        let connector = try Self.connector(spool: spool.path)
        let message = Array("Subject: hi\r\n\r\nhello\r\n".utf8)
        #expect(await connector.deliver(Self.entry(1), message: message) == [.delivered])
        try FileManager.default.removeItem(atPath: spool.sub("mailboxes/alice"))
        #expect(await connector.deliver(Self.entry(2), message: message) == [.delivered])
        let delivered = try FileManager.default.contentsOfDirectory(atPath: spool.sub("mailboxes/alice/new"))
        #expect(delivered.count == 1 && delivered[0].contains("Q0000000001A.2R"), "\(delivered)")
        // Only new/ removed: that delivery defers, and the one after makes it again.
        try FileManager.default.removeItem(atPath: spool.sub("mailboxes/alice/new"))
        let third = await connector.deliver(Self.entry(3), message: message)
        guard case .deferred = third.first else {
            Issue.record("a mailbox without new/ must defer, not \(third)")
            return
        }
        #expect(await connector.deliver(Self.entry(3), message: message) == [.delivered])
        #expect(try FileManager.default.contentsOfDirectory(atPath: spool.sub("mailboxes/alice/new")).count == 1)
        #expect(try FileManager.default.contentsOfDirectory(atPath: spool.sub("mailboxes/alice/tmp")).isEmpty)
    }
}
