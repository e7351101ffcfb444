import Foundation
import PostroomSystem

/// Settings of the `validate` stage: the Pickup limits (Exchange's defaults).
public struct ValidateSettings: StageSettings, Decodable {
    public static let defaultMaxMessageSize: Int64 = 35 << 20
    public var maxMessageSize = ByteSize(bytes: defaultMaxMessageSize)
    public var maxHeaderSize = ByteSize(bytes: 64 << 10)
    public var maxRecipients = 100

    enum CodingKeys: String, CodingKey, CaseIterable { case stage, maxMessageSize, maxHeaderSize, maxRecipients }

    public init() {}

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        maxMessageSize = try container.decodeIfPresent(ByteSize.self, forKey: .maxMessageSize) ?? maxMessageSize
        maxHeaderSize = try container.decodeIfPresent(ByteSize.self, forKey: .maxHeaderSize) ?? maxHeaderSize
        maxRecipients = try container.decodeIfPresent(Int.self, forKey: .maxRecipients) ?? maxRecipients
        guard maxRecipients >= 1 else {
            throw DecodingError.dataCorruptedError(forKey: .maxRecipients, in: container, debugDescription: "must be at least 1")
        }
    }

    public var limits: SubmissionLimits {
        SubmissionLimits(maxHeaderSize: Int(maxHeaderSize.bytes), maxRecipients: maxRecipients, maxMessageSize: maxMessageSize.bytes)
    }
}

/// Turns a claimed file into a message with an envelope, by Exchange's Pickup and Replay rules.
///
/// Accepted messages go on with their header cleaned; a message with a usable sender that
/// breaks a rule is answered with a non-delivery report; anything else goes back to the
/// producer's directory as `<name>.bad` with a readable reason.
public actor ValidateStage: MessageStage {
    private let settings: ValidateSettings
    private let context: StageContext
    private let reports: ReportSender

    public init(settings: ValidateSettings, context: StageContext) {
        self.settings = settings
        self.context = context
        reports = ReportSender(context: context)
    }

    static let kind = StageKind.make("validate", summary: "parse the file and apply the Pickup/Replay rules", settings: ValidateSettings.self) {
        ValidateStage(settings: $0, context: $1)
    }

    public func process(_ item: PipelineItem) async throws -> StageResult {
        let source: MessageSource = item.claimed.source == .pickup ? .pickup : .replay
        var submission = SubmissionContext(hostname: context.hostname, defaultDomain: context.defaultDomain, now: item.arrival,
                                           uniqueID: item.queueID + "." + context.hostname)
        submission.generatedReport = item.claimed.source == .report
        let verdict = SubmissionValidator.validate(item.bytes, totalSize: item.size, source: source, limits: settings.limits, context: submission)
        var item = item
        switch verdict {
        case .accepted(let accepted):
            item.envelope = accepted.envelope
            item.bytes = accepted.message
            item.messageID = accepted.messageID
            item.notes += accepted.headerChanges
            track(.receive, item, file: item.claimed.originalName)
            // Unusable To/Cc/Bcc elements join the failures the deliver stage reports on.
            item.failures += accepted.invalidRecipients
            for failure in accepted.invalidRecipients {
                track(.fail, item, recipients: [failure.address], status: failure.status, reason: failure.diagnostic)
            }
            return .forward(item)
        case .report(let report):
            item.envelope = report.envelope
            item.notes.append("rejected with a report: \(report.status) \(report.diagnostic)")
            guard !context.dryRun else { return .finished(.reported) }
            track(.fail, item, status: report.status, reason: report.diagnostic, file: item.claimed.originalName)
            for failure in report.invalidRecipients {
                track(.fail, item, recipients: [failure.address], status: failure.status, reason: failure.diagnostic)
            }
            if item.claimed.source == .report || report.envelope.hasNullSender {
                return try reject(item, reason: "\(report.status) \(report.diagnostic); no report is sent for a message from the null sender")
            }
            if report.invalidRecipients.isEmpty {
                try await reports.send(rejecting: report, messageID: nil, cause: ReportCause(queueID: item.queueID, event: "validate"))
            } else {
                try await reports.send(about: report.envelope, message: report.headerBytes, messageID: nil, failed: report.failedRecipients,
                                       cause: ReportCause(queueID: item.queueID, event: "validate"))
            }
            try await context.queue.release(item.claimed)
            return .finished(.reported)
        case .badmail(let reason):
            item.notes.append("badmail: \(reason)")
            guard !context.dryRun else { return .finished(.badmail) }
            return try reject(item, reason: reason)
        }
    }

    private func track(_ kind: TrackingEvent.Kind, _ item: PipelineItem, recipients: [String]? = nil, status: String? = nil, reason: String? = nil, file: String? = nil) {
        context.telemetry.track(TrackingEvent(event: kind, source: .init(item.claimed.source), queueID: item.queueID, messageID: item.messageID,
                                              sender: item.envelope.sender, recipients: recipients ?? item.envelope.recipients.map(\.address),
                                              status: status, reason: reason, file: file, size: Int(item.size)))
    }

    private func reject(_ item: PipelineItem, reason: String) throws -> StageResult {
        guard let directory = item.sourceDirectory else {
            context.log.error("generated report \(item.queueID) is invalid (\(reason)); it is dropped")
            try FileSystem.removeFileIfPresent(item.claimed.path)
            return .finished(.dropped)
        }
        let path = try Badmail.reject(path: item.claimed.path, name: item.claimed.originalName, directory: directory, reason: reason)
        context.log.warning("\(path): \(reason)")
        track(.badmail, item, reason: reason, file: path)
        return .finished(.badmail)
    }
}
