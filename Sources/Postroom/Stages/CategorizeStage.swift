import Foundation

/// Settings of the `categorize` stage: the recipient directory and the accepted domains.
public struct CategorizeSettings: StageSettings, Decodable {
    /// The directory file, relative to the pipeline file's folder.
    public var directory: String?
    public var acceptedDomains: [String]

    enum CodingKeys: String, CodingKey, CaseIterable { case stage, directory, acceptedDomains }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        directory = try container.decodeIfPresent(String.self, forKey: .directory)
        acceptedDomains = try container.decodeIfPresent([String].self, forKey: .acceptedDomains) ?? []
    }
}

/// Resolves each recipient against the directory: aliases to mailboxes, groups to members,
/// contacts to their targets; an unknown address at an accepted domain fails with 5.1.1.
public actor CategorizeStage: MessageStage {
    private let directory: RecipientDirectory
    private let telemetry: Telemetry

    public init(settings: CategorizeSettings, context: StageContext) throws {
        telemetry = context.telemetry
        if let path = settings.directory {
            directory = try RecipientDirectory.load(declaredIn: context.pipeline, path: path, acceptedDomains: settings.acceptedDomains)
        } else {
            directory = RecipientDirectory(file: DirectoryFile(), acceptedDomains: settings.acceptedDomains)
        }
    }

    static let kind = StageKind.make("categorize", summary: "resolve aliases, expand groups, decapsulate IMCEA", settings: CategorizeSettings.self) {
        try CategorizeStage(settings: $0, context: $1)
    }

    public func process(_ item: PipelineItem) async throws -> StageResult {
        var item = item
        let result = directory.resolve(item.envelope.recipients)
        item.resolved = result.resolved
        item.failures += result.failed.map { FailedRecipient(address: $0.address, status: $0.status, diagnostic: $0.diagnostic) }
        item.notes += result.steps.map { "\($0.kind.rawValue): \($0.from) -> \($0.to)" }
        for step in result.steps {
            telemetry.track(TrackingEvent(event: step.kind == .expand ? .expand : .resolve, source: .routing, queueID: item.queueID,
                                          messageID: item.messageID, sender: item.envelope.sender, recipients: [step.to], reason: "\(step.from) -> \(step.to)"))
        }
        for failure in result.failed {
            telemetry.track(TrackingEvent(event: .fail, source: .routing, queueID: item.queueID, messageID: item.messageID,
                                          sender: item.envelope.sender, recipients: [failure.address], status: failure.status, reason: failure.diagnostic))
        }
        return .forward(item)
    }
}
