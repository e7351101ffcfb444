import Foundation

/// Settings of one stage kind, decoded from its entry in `stages`.
public protocol StageSettings: Sendable {}

/// A pipeline stage that processes one message at a time.
///
/// Each stage is an actor: its state is its own, and the runner feeds it from a bounded
/// inbox. The runner (not the stage) counts what it received, sent on and failed, and how
/// long each message took, so a new stage kind gets metrics without code of its own.
public protocol MessageStage: Actor {
    /// Handles one message: pass it on, or finish it (rejected, or handed to the queue).
    func process(_ item: PipelineItem) async throws -> StageResult
}

/// What a stage did with a message.
public enum StageResult: Sendable {
    /// Hand the (possibly changed) message to the next stage.
    case forward(PipelineItem)
    /// The message needs nothing more from the pipeline (rejected with a reason, or queued for delivery).
    case finished(Outcome)

    /// How a message left the pipeline.
    public enum Outcome: String, Sendable {
        case badmail, reported, queued, dropped
        /// Left in `queue/incoming/` for the stage to try again later (a `command` stage's
        /// program asked to defer); the stage has scheduled its resubmission.
        case deferred
    }
}

/// A message on its way through the stages, with everything learnt about it so far.
public struct PipelineItem: Sendable {
    public var claimed: ClaimedFile
    /// The folder the producer dropped it in (for `.bad` files); nil for generated reports.
    public var sourceDirectory: String?
    public var arrival: Date
    public var arrivalInstant: ContinuousClock.Instant
    public var size: Int64
    /// The whole file when small enough, else its first bytes (see `isTruncated`).
    public var bytes: [UInt8]
    public var isTruncated: Bool = false
    public var envelope = Envelope(sender: "", recipients: [])
    public var messageID = ""
    /// Recipients after directory resolution (categorize).
    public var resolved: [ResolvedRecipient] = []
    /// Recipients that failed for good, to be reported to the sender.
    public var failures: [FailedRecipient] = []
    /// One group of recipients per next hop (route).
    public var hops: [NextHopGroup] = []
    /// Human-readable notes of what the stages did, shown by `postroom explain`.
    public var notes: [String] = []
    /// Why the message must wait for an operator (a `filter` rule's `hold`); nil to deliver.
    /// The deliver stage still queues it durably, but in `queue/hold/`, where only
    /// `postroom queue release` moves it on.
    public var holdReason: String?

    public var queueID: String { claimed.queueID }

    public init(claimed: ClaimedFile, sourceDirectory: String?, arrival: Date, size: Int64, bytes: [UInt8]) {
        self.claimed = claimed
        self.sourceDirectory = sourceDirectory
        self.arrival = arrival
        self.arrivalInstant = .now
        self.size = size
        self.bytes = bytes
    }
}

/// What every stage may use while it is built and while it runs.
public struct StageContext: Sendable {
    public var pipeline: PipelineFile
    public var spool: String
    public var hostname: String
    public var queue: QueueStore
    public var log: Logger
    /// The first accepted domain: reports come from postmaster there.
    public var defaultDomain: String
    /// Puts a claimed file (a report, a recovered file) back at the start of the pipeline.
    public var resubmit: @Sendable (ClaimedFile) -> Void
    /// The delivery side, for the deliver stage.
    public var delivery: DeliveryService?
    /// Metrics and the tracking log.
    public var telemetry: Telemetry
    /// True for `postroom explain`: stages must not change anything on disk.
    public var dryRun: Bool = false

    public func spoolPath(_ relative: String) -> String { resolvePath(relative, against: spool) }
    public func configPath(_ relative: String) -> String { resolvePath(relative, against: pipeline.folder) }
}

/// One kind of stage: how to read its settings and how to build it.
public struct StageKind: Sendable {
    public let name: String
    public let summary: String
    public let decodeSettings: @Sendable (any Decoder) throws -> any StageSettings
    public let makeStage: @Sendable (any StageSettings, StageContext) throws -> any MessageStage
    /// How many messages the runner hands the stage at once. A stage actor runs one call at a
    /// time, but a call that awaits the disk lets the next one start (actor reentrancy).
    public let workers: Int

    public init(name: String, summary: String, workers: Int = 1,
                decodeSettings: @escaping @Sendable (any Decoder) throws -> any StageSettings,
                makeStage: @escaping @Sendable (any StageSettings, StageContext) throws -> any MessageStage) {
        self.name = name
        self.workers = workers
        self.summary = summary
        self.decodeSettings = decodeSettings
        self.makeStage = makeStage
    }
}

/// The stage kinds a pipeline file may name in `stage`.
///
/// ``standard`` holds every kind Postroom ships. A program that embeds Postroom builds its own
/// registry (`StageRegistry.standard.adding([myKind])`) and passes it to ``PipelineFile/load(path:registry:)``
/// and ``PipelineCheck/run(path:spoolOverride:registry:)``; the runner then builds and meters those
/// stages exactly like the shipped ones. Names are unique: a later kind never shadows an earlier one.
public struct StageRegistry: Sendable {
    public let kinds: [StageKind]

    public init(kinds: [StageKind]) {
        var seen = Set<String>()
        self.kinds = kinds.filter { seen.insert($0.name).inserted }
    }

    public func kind(named name: String) -> StageKind? { kinds.first { $0.name == name } }

    /// This registry with `more` kinds after its own; a kind whose name is already taken is ignored.
    public func adding(_ more: [StageKind]) -> StageRegistry { StageRegistry(kinds: kinds + more) }

    /// Every stage kind Postroom ships.
    public static let standard = StageRegistry(kinds: [
        IngestSettings.kind,
        ValidateStage.kind,
        CategorizeStage.kind,
        RouteStage.kind,
        DeliverStage.kind,
        HeadersStage.kind,
        FilterStage.kind,
        JournalStage.kind,
        CommandStage.kind,
    ])
}

extension StageKind {
    /// A kind whose settings type decodes itself and whose stage is built from those settings.
    public static func make<Settings: StageSettings & Decodable>(
        _ name: String, summary: String, workers: Int = 1, settings: Settings.Type,
        build: @escaping @Sendable (Settings, StageContext) throws -> any MessageStage
    ) -> StageKind {
        StageKind(name: name, summary: summary, workers: workers,
                  decodeSettings: { decoder in try Settings(from: decoder) },
                  makeStage: { settings, context in try build(settings as! Settings, context) })
    }
}

extension CodingUserInfoKey {
    /// Where ``StageDeclaration`` finds the ``StageRegistry`` it decodes stage kinds with.
    static let stageRegistry = CodingUserInfoKey(rawValue: "postroom.stageRegistry")!
}
