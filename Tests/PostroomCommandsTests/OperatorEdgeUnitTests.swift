import Foundation
import PostroomSystem
import Testing
@testable import Postroom
@testable import PostroomCommands

/// Issue 14's pieces on their own: spool discovery, queue selection, Exchange's tracking names and
/// CSV, textfile-safe metrics, permission settings.
@Suite struct OperatorEdgeUnitTests {
    static func folder() throws -> String {
        let path = NSTemporaryDirectory() + "postroom-unit14-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    @Test func spoolDiscoveryOrderAndValidation() throws {
        let root = try Self.folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/a/queue", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root + "/b", withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: root + "/b/postroom.lock", contents: nil)
        try FileManager.default.createDirectory(atPath: root + "/spool/queue", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root + "/plain", withIntermediateDirectories: true)
        // --spool wins over the environment, the environment over ./spool.
        #expect(try SpoolLocation.resolve(override: "a", environment: ["POSTROOM_SPOOL": root + "/b"], workingDirectory: root) == root + "/a")
        #expect(try SpoolLocation.resolve(override: nil, environment: ["POSTROOM_SPOOL": root + "/b"], workingDirectory: root) == root + "/b")
        #expect(try SpoolLocation.resolve(override: nil, environment: [:], workingDirectory: root) == root + "/spool")
        #expect(throws: SpoolLocation.Problem.self) { try SpoolLocation.resolve(override: "plain", environment: [:], workingDirectory: root) }
        #expect(throws: SpoolLocation.Problem.self) { try SpoolLocation.resolve(override: "missing", environment: [:], workingDirectory: root) }
        do {
            _ = try SpoolLocation.resolve(override: nil, environment: ["POSTROOM_SPOOL": root + "/plain"], workingDirectory: root)
            Issue.record("a folder without queue/ or postroom.lock was accepted")
        } catch {
            #expect(error.description.contains("is not a Postroom spool") && error.description.contains("POSTROOM_SPOOL"))
        }
    }

    static func stored(_ id: String, _ state: QueueState, connector: String, sender: String, recipients: [String], age: Double) -> StoredEntry {
        let envelope = Envelope(sender: sender, recipients: recipients.map { EnvelopeRecipient(address: $0) })
        let entry = QueueEntry(id: id, queueID: String(id.prefix(13)), connector: connector, envelope: envelope, mailboxes: [:],
                               messageID: "<\(id)@example.com>", source: .pickup, arrival: Date().addingTimeInterval(-age), size: 10)
        return StoredEntry(entry: entry, state: state)
    }

    @Test func queueSelectionCombinesIdsAndFilters() throws {
        let entries = [
            Self.stored("AAAAAAAAAAAAA.1", .deferred, connector: "fax", sender: "a@x.org", recipients: ["FAX:+1"], age: 7200),
            Self.stored("BBBBBBBBBBBBB.1", .deferred, connector: "outbound", sender: "", recipients: ["p@y.org"], age: 60),
            Self.stored("CCCCCCCCCCCCC.1", .held, connector: "fax", sender: "c@x.org", recipients: ["FAX:+2"], age: 60),
        ]
        var selection = QueueSelection()
        selection.connector = "fax"
        #expect(selection.select(from: entries).entries.map(\.entry.id) == ["AAAAAAAAAAAAA.1", "CCCCCCCCCCCCC.1"])
        selection.olderThan = 3600
        #expect(selection.select(from: entries).entries.map(\.entry.id) == ["AAAAAAAAAAAAA.1"])
        var bySender = QueueSelection()
        bySender.sender = GlobPattern("<>")
        #expect(bySender.select(from: entries).entries.map(\.entry.id) == ["BBBBBBBBBBBBB.1"])
        var byIDs = QueueSelection()
        byIDs.ids = ["CCCCCCCCCCCCC.1", "nope", "<AAAAAAAAAAAAA.1@example.com>"]
        byIDs.state = .held
        let (chosen, unmatched) = byIDs.select(from: entries)
        #expect(chosen.map(\.entry.id) == ["CCCCCCCCCCCCC.1"])
        #expect(unmatched == ["nope"])
    }

    @Test func exchangeTrackingNames() throws {
        #expect(TrackingEvent.delivery(connectorType: "foreign") == (.send, .gateway))
        #expect(TrackingEvent.delivery(connectorType: "maildir") == (.deliver, .storeDriver))
        #expect(TrackingEvent.delivery(connectorType: "agent").source == .agent)
        #expect(TrackingEvent.leadingStatus(of: "4.4.1 no answer", fallback: "4.0.0") == "4.4.1")
        #expect(TrackingEvent.leadingStatus(of: "4.2.2: mailbox full", fallback: "4.0.0") == "4.2.2")
        #expect(TrackingEvent.leadingStatus(of: "drop directory missing", fallback: "4.0.0") == "4.0.0")
        #expect(TrackingEvent.leadingStatus(of: "4.4 not a code", fallback: "4.0.0") == "4.0.0")
        // Logs written before the rename still read.
        let old = #"{"timestamp":"2026-11-23T09:00:00.000Z","event":"POISON","source":"DELIVERY","queueID":"Q","messageID":"","sender":"","recipients":[]}"#
        let decoded = try JSONDecoder().decode(TrackingEvent.self, from: Data(old.utf8))
        #expect(decoded.event == .poison && decoded.event.rawValue == "POISONMESSAGE")
    }

    @Test func messageTrackingCSVHasExchangesColumnsAndQuotes() throws {
        let event = TrackingEvent(timestamp: Date(timeIntervalSince1970: 1_800_000_000), event: .defer, source: .agent, queueID: "Q1.1",
                                  messageID: "m@x", sender: "", recipients: ["SMS:+1", "SMS:+2"], connector: "sms",
                                  status: "4.4.1", reason: "no answer, \"busy\"", size: 42)
        let text = try #require(MessageTrackingCSV.render(events: [event], id: "Q1.1", serverHostname: "mail.example.net"))
        let lines = text.components(separatedBy: "\r\n")
        #expect(lines.first == "#Software: Postroom \(CommandLineInterface.version)")
        #expect(lines.contains("#Log-Type: Message Tracking Log"))
        let fields = try #require(lines.first { $0.hasPrefix("#Fields: ") })
        #expect(fields == "#Fields: " + MessageTrackingCSV.fields.joined(separator: ","))
        #expect(MessageTrackingCSV.fields.count == 30)
        let row = try #require(lines.first { $0.hasPrefix("20") })
        #expect(row.contains(",mail.example.net,\"no answer, \"\"busy\"\"\",sms,AGENT,DEFER,Q1.1,<m@x>,,SMS:+1;SMS:+2,"), "\(row)")
        #expect(row.contains(",42,2,"), "\(row)")
        #expect(row.contains(",<>,"), "the null sender's return-path")
    }

    @Test func textfileExpositionRenamesProcessSeries() {
        let registry = MetricsRegistry()
        registry.counter("postroom_x_total", help: "x").increment()
        let served = registry.exposition()
        let textfile = registry.exposition(forTextfile: true)
        #expect(served.contains("\nprocess_start_time_seconds ") || served.hasPrefix("process_start_time_seconds "))
        #expect(!textfile.split(separator: "\n").contains { $0.hasPrefix("process_") || $0.contains(" process_") })
        #expect(textfile.contains("# TYPE postroom_process_resident_memory_bytes gauge"))
        #expect(textfile.contains("postroom_x_total 1"))
    }

    @Test func permissionSettingsDecodeAndDefault() throws {
        let decoded = try ConfigFile.decode(PermissionSettings.self, from: Data(#"{ group: "mail", fileMode: "0660" }"#.utf8), file: "p.json5")
        #expect(decoded.group == "mail" && decoded.fileMode == 0o660 && decoded.directoryMode == nil)
        #expect(decoded.folderMode(private: 0o700) == 0o770)
        #expect(PermissionSettings().folderMode(private: 0o700) == 0o700)
        #expect(PermissionSettings().fileMode(private: 0o600) == 0o600)
        #expect(PermissionSettings(group: "g").fileMode(private: 0o600) == 0o640)
        #expect(throws: ConfigError.self) { try ConfigFile.decode(PermissionSettings.self, from: Data(#"{ directoryMode: "999" }"#.utf8), file: "p.json5") }
        #expect(throws: ConfigError.self) { try ConfigFile.decode(PermissionSettings.self, from: Data(#"{ fileMode: "4755" }"#.utf8), file: "p.json5") }
        #expect(throws: ConfigError.self) { try ConfigFile.decode(PermissionSettings.self, from: Data(#"{ owner: "x" }"#.utf8), file: "p.json5") }
    }

    @Test func ownershipGivesExactModesWhateverTheUmask() throws {
        let root = try Self.folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let group = getegid()
        try Ownership.prepareDirectory(root + "/a/b", mode: 0o770, group: group, parentMode: 0o711)
        let attributes = try FileManager.default.attributesOfItem(atPath: root + "/a/b")
        #expect((attributes[.posixPermissions] as? Int) == 0o2770)
        #expect((try FileManager.default.attributesOfItem(atPath: root + "/a")[.posixPermissions] as? Int) == 0o711)
        // What the connectors do to a file they write under a shared folder.
        let file = try OpenFile.open(root + "/a/b/f", flags: O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, mode: 0o600)
        try Ownership.apply(to: file, mode: 0o640, group: group)
        #expect((try FileManager.default.attributesOfItem(atPath: root + "/a/b/f")[.posixPermissions] as? Int) == 0o640)
        try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: root + "/a")
        try Ownership.makeSearchable(ancestorsOf: root + "/a/b", below: root)
        #expect((try FileManager.default.attributesOfItem(atPath: root + "/a")[.posixPermissions] as? Int) == 0o711)
        #expect(throws: SystemError.self) { try Ownership.groupID(named: "postroom-no-such-group-14") }
    }

    @Test func reportsConvertToBareLineFeeds() {
        #expect(ReportSender.bareLineFeeds(Array("a\r\nb\r\n\r\nc\rd\n".utf8)) == Array("a\nb\n\nc\rd\n".utf8))
        #expect(HostIdentity.name(configured: "Mail.Example.NET", acceptedDomains: ["example.com"]) == "mail.example.net")
    }
}
