import Foundation
import PostroomSystem

/// Settings of the `journal` stage: where copies go and in which format.
public struct JournalSettings: StageSettings, Decodable {
    /// How a journal copy is written.
    public enum Format: String, Sendable, CaseIterable {
        /// The message exactly as it goes on to the next stage.
        case eml
        /// The envelope as `X-Sender`/`X-Receiver` lines, then the message: the copy says who it
        /// was from and for (which the header need not), and can be fed to a Replay directory.
        case replay
    }

    /// The folder for copies, relative to the spool.
    public var directory: String
    public var format: Format = .replay

    enum CodingKeys: String, CodingKey, CaseIterable { case stage, directory, format }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        directory = try container.decode(String.self, forKey: .directory)
        guard !directory.isEmpty else {
            throw DecodingError.dataCorruptedError(forKey: .directory, in: container, debugDescription: "the journal directory cannot be empty")
        }
        if let name = try container.decodeIfPresent(String.self, forKey: .format) {
            guard let format = Format(rawValue: name) else {
                throw DecodingError.dataCorruptedError(forKey: .format, in: container, debugDescription: "unknown format '\(name)' (known: eml, replay)")
            }
            self.format = format
        }
    }
}

/// Keeps one copy of every message that passes, in `<directory>/<queue id>.eml` (journaling,
/// as Exchange's journal rules do for compliance archives).
///
/// Guarantees: the copy is complete and durable (written under a hidden name, fsynced,
/// renamed, directory fsynced) before the message goes on, so nothing is delivered without
/// its copy; a write that fails (disk full) fails the stage and the message stays queued,
/// which is what an archive that must be complete needs. The name comes from the queue id,
/// so re-running a message after a crash finds its copy and does not make a second one.
/// In a dry run nothing is written. The message itself is forwarded unchanged.
public actor JournalStage: MessageStage {
    private let settings: JournalSettings
    private let context: StageContext
    private let directory: String
    private let directorySync = DirectorySync()
    private var directoryReady = false

    public init(settings: JournalSettings, context: StageContext) throws {
        try context.requireAfterValidate("journal")
        self.settings = settings
        self.context = context
        directory = context.spoolPath(settings.directory)
        let pipeline = context.pipeline
        let index = pipeline.stages.firstIndex { ($0.settings as? JournalSettings)?.directory == settings.directory } ?? 0
        func fail(_ problem: String) -> ConfigError {
            ConfigError(file: pipeline.path, keyPath: "stages[\(index)].directory", problem: problem)
        }
        // A journal folder that ingest watches would feed every copy back in as new mail, forever.
        let mine = Self.standardized(directory)
        if let ingest = pipeline.settings(IngestSettings.self) {
            for watched in [ingest.pickup, ingest.replay].compactMap({ $0 }).map({ Self.standardized(context.spoolPath($0)) })
            where Self.isSameOrInside(mine, watched) || Self.isSameOrInside(watched, mine) {
                throw fail("\(directory) overlaps the folder ingest watches (\(watched)); copies would come back in as new mail")
            }
        }
        if Self.isSameOrInside(mine, Self.standardized(context.spoolPath("queue"))) {
            throw fail("\(directory) is inside the queue, which belongs to Postroom alone")
        }
        if let problem = PipelineCheck.writableProblem(directory) { throw fail(problem) }
    }

    static let kind = StageKind.make("journal", summary: "keep one durable copy of every message", settings: JournalSettings.self) {
        try JournalStage(settings: $0, context: $1)
    }

    public func process(_ item: PipelineItem) async throws -> StageResult {
        var item = item
        let path = directory + "/" + item.queueID + ".eml"
        guard !context.dryRun else {
            item.notes.append("journal: would write a copy to \(path)")
            return .forward(item)
        }
        let bytes: [UInt8]
        switch settings.format {
        case .eml: bytes = item.bytes
        case .replay: bytes = ReplayFormat.encode(envelope: journalEnvelope(item), message: item.bytes, lineEnding: lineEnding(of: item.bytes))
        }
        let directory = self.directory
        let create = !directoryReady
        let written = try await BlockingPool.shared.run { () throws(SystemError) -> Bool in
            if create { try FileSystem.createDirectory(directory) }
            // The copy from an interrupted earlier run of this message is kept: one copy per message.
            if FileSystem.exists(path) { return false }
            try FileSystem.writeAtomically(bytes, to: path)
            return true
        }
        directoryReady = true
        // Synced even when the copy was already there: the earlier run may have died before
        // its directory entry was durable.
        try await directorySync.sync(directory)
        item.notes.append(written ? "journal: copy written to \(path)" : "journal: copy already in \(path)")
        return .forward(item)
    }

    /// The recipients as far as they are known: after categorize the resolved ones (a group's
    /// members, each with its original parameters), so the copy shows who actually gets the message.
    private func journalEnvelope(_ item: PipelineItem) -> Envelope {
        let resolved = item.hops.isEmpty ? item.resolved : item.hops.flatMap(\.recipients)
        guard !resolved.isEmpty else { return item.envelope }
        return Envelope(sender: item.envelope.sender, recipients: resolved.map(\.envelopeRecipient))
    }

    private static func standardized(_ path: String) -> String {
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        return (absolute as NSString).standardizingPath
    }

    private static func isSameOrInside(_ path: String, _ folder: String) -> Bool {
        path == folder || path.hasPrefix(folder.hasSuffix("/") ? folder : folder + "/")
    }
}
