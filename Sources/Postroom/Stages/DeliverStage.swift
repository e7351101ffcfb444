import Foundation

/// Settings of the `deliver` stage: retry, expiry, delay notices and poison handling.
public struct DeliverSettings: StageSettings, Decodable {
    /// First retry interval; each later one doubles, up to `retryMax` (Postfix-shaped backoff).
    public var retryFirst = ConfigDuration(seconds: 60)
    public var retryMax = ConfigDuration(seconds: 3600)
    /// How long a message may wait before it expires with a report (Exchange: 2 days).
    public var expireAfter = ConfigDuration(seconds: 2 * 86400)
    /// Send a delay notice once a message has waited this long; 0 = never (Exchange: 4 hours).
    public var delayNotice = ConfigDuration(seconds: 4 * 3600)
    /// Unexpected failures (crashes) before an entry is parked as poison (Exchange's PoisonThreshold).
    public var poisonThreshold = 2

    enum CodingKeys: String, CodingKey, CaseIterable { case stage, retry, expireAfter, delayNotice, poisonThreshold }
    enum RetryKeys: String, CodingKey, CaseIterable { case first, max }

    public init() {}

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        if container.contains(.retry) {
            let retryDecoder = try container.superDecoder(forKey: .retry)
            try retryDecoder.rejectUnknownKeys(RetryKeys.self)
            let retry = try retryDecoder.container(keyedBy: RetryKeys.self)
            retryFirst = try retry.decodeIfPresent(ConfigDuration.self, forKey: .first) ?? retryFirst
            retryMax = try retry.decodeIfPresent(ConfigDuration.self, forKey: .max) ?? retryMax
        }
        expireAfter = try container.decodeIfPresent(ConfigDuration.self, forKey: .expireAfter) ?? expireAfter
        delayNotice = try container.decodeIfPresent(ConfigDuration.self, forKey: .delayNotice) ?? delayNotice
        poisonThreshold = try container.decodeIfPresent(Int.self, forKey: .poisonThreshold) ?? poisonThreshold
        guard (1...10).contains(poisonThreshold) else {
            throw DecodingError.dataCorruptedError(forKey: .poisonThreshold, in: container, debugDescription: "must be between 1 and 10")
        }
        guard retryFirst.seconds > 0, retryMax.seconds >= retryFirst.seconds else {
            throw DecodingError.dataCorruptedError(forKey: .retry, in: container, debugDescription: "first must be above 0 and max at least first")
        }
    }

    /// The wait before retry number `attempt` (1-based).
    public func backoff(afterAttempt attempt: Int) -> Double {
        let doubled = retryFirst.seconds * pow(2, Double(max(0, attempt - 1)))
        return min(doubled, retryMax.seconds)
    }
}

/// The last stage: makes one durable queue entry per next hop, releases the claimed file,
/// sends one report for every recipient that already failed, and hands the entries to the
/// connectors' queues.
public actor DeliverStage: MessageStage {
    private let delivery: DeliveryService

    public init(context: StageContext) throws {
        guard let delivery = context.delivery else {
            throw ConfigError(file: context.pipeline.path, keyPath: "stages", problem: "deliver needs the delivery service")
        }
        self.delivery = delivery
    }

    /// 64 workers: a message waits on the disk here (its copies' group commit takes two rounds of
    /// `syncfs`), and the messages waiting together are what makes each round's sync serve many.
    static let kind = StageKind.make("deliver", summary: "queue one copy per next hop durably and deliver it", workers: 64, settings: DeliverSettings.self) { _, context in
        try DeliverStage(context: context)
    }

    public func process(_ item: PipelineItem) async throws -> StageResult {
        try await delivery.accept(item)
    }
}
