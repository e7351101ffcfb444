import Foundation
import Synchronization

/// Builds a pipeline from its file and runs it: the ingest source, then each stage actor
/// fed from a bounded channel, then the connectors' queues.
///
/// Start-up order makes restarts safe: the queue is recovered (claimed files go back to
/// the start of the pipeline, queue entries to their connectors) before intake begins.
public final class PipelineRunner: Sendable {
    public let pipeline: PipelineFile
    public let spool: String
    public let context: StageContext
    public let ingest: IngestStage
    public let stages: [(name: String, stage: any MessageStage)]
    public let delivery: DeliveryService
    public let telemetry: Telemetry
    let channelCapacity: Int

    /// Builds every stage; configuration problems surface here as errors.
    public init(pipeline: PipelineFile, spool: String, log: Logger, dryRun: Bool = false,
                telemetry: Telemetry? = nil, channelCapacity: Int = 64) throws {
        guard let first = pipeline.stages.first, let ingestSettings = first.settings as? IngestSettings else {
            throw ConfigError(file: pipeline.path, keyPath: "stages[0]", problem: "the first stage must be ingest")
        }
        self.pipeline = pipeline
        self.spool = spool
        let telemetry = telemetry ?? Telemetry.inMemory(pipeline: pipeline.name)
        self.telemetry = telemetry
        self.channelCapacity = channelCapacity
        let hostname = FileSystem.hostname()
        let directorySync = DirectorySync()
        let store = QueueStore(spool: spool, directorySync: directorySync)
        let connectors = pipeline.connectors.map {
            ConnectorFactory.make($0, spool: spool, hostname: hostname, directorySync: directorySync, configurationFolder: pipeline.folder)
        }
        let delivery = DeliveryService(settings: pipeline.settings(DeliverSettings.self) ?? DeliverSettings(), store: store,
                                       connectors: connectors, log: log, telemetry: telemetry)
        self.delivery = delivery
        let ingestBox = Mutex<IngestStage?>(nil)
        let defaultDomain = pipeline.settings(CategorizeSettings.self)?.acceptedDomains.first ?? hostname
        let context = StageContext(pipeline: pipeline, spool: spool, hostname: hostname, queue: store, log: log,
                                   defaultDomain: defaultDomain,
                                   resubmit: { claimed in ingestBox.withLock { $0 }?.resubmit(claimed) },
                                   delivery: delivery, telemetry: telemetry, dryRun: dryRun)
        self.context = context
        delivery.attach(reports: ReportSender(context: context))
        let ingest = IngestStage(settings: ingestSettings, context: context)
        self.ingest = ingest
        ingestBox.withLock { $0 = ingest }
        var stages: [(String, any MessageStage)] = []
        for (index, declaration) in pipeline.stages.enumerated().dropFirst() {
            guard let kind = StageRegistry.standard.kind(named: declaration.kind) else { continue }
            if declaration.settings is IngestSettings {
                throw ConfigError(file: pipeline.path, keyPath: "stages[\(index)]", problem: "ingest can only be the first stage")
            }
            do {
                stages.append((declaration.kind, try kind.makeStage(declaration.settings, context)))
            } catch let error as ConfigError {
                throw error
            } catch {
                throw ConfigError(file: pipeline.path, keyPath: "stages[\(index)]", problem: "\(error)")
            }
        }
        self.stages = stages
        for connector in connectors {
            do { try connector.prepare() } catch { log.warning("connector \(connector.name): \(error)") }
        }
    }

    /// Runs until ``stop()``: recovers the queue, starts delivery, then takes files.
    public func run() async throws {
        try context.queue.prepare()
        context.queue.removeTemporaryFiles()
        // A claimed file still in incoming/ means its queue entries were never released to
        // the connectors: any entries of that queue id are leftovers of an interrupted write.
        let claimed = try context.queue.claimedFiles()
        let recovered = await delivery.recover(discarding: Set(claimed.map(\.queueID)))
        for file in claimed { ingest.resubmit(file) }
        if recovered + claimed.count > 0 {
            context.log.info("recovered \(claimed.count) claimed file(s) and \(recovered) queue entr\(recovered == 1 ? "y" : "ies")")
        }
        await delivery.start()

        let capacity = channelCapacity
        let channels = (0...stages.count).map { _ in BoundedChannel<PipelineItem>(capacity: capacity) }
        let telemetry = self.telemetry
        let log = context.log
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, (name, stage)) in stages.enumerated() {
                let input = channels[index]
                let output = channels[index + 1]
                let isLast = index == stages.count - 1
                group.addTask {
                    await Self.runStage(name: name, stage: stage, input: input, output: isLast ? nil : output, telemetry: telemetry, log: log)
                    output.finish()
                }
            }
            group.addTask { [ingest] in
                defer { channels[0].finish() }
                try await ingest.run(output: channels[0])
            }
            try await group.waitForAll()
        }
        await delivery.shutdown(timeout: .seconds(pipeline.shutdownTimeout.seconds))
    }

    /// Stops intake; ``run()`` returns once in-flight work is finished or durably parked.
    public func stop() async {
        await ingest.stop()
    }

    static func runStage(name: String, stage: any MessageStage, input: BoundedChannel<PipelineItem>,
                         output: BoundedChannel<PipelineItem>?, telemetry: Telemetry, log: Logger) async {
        while let item = await input.receive() {
            telemetry.stageStarted(name, buffered: input.count)
            let start = ContinuousClock.now
            do {
                let result = try await stage.process(item)
                telemetry.stageFinished(name, seconds: seconds(since: start), result: result)
                if case .forward(let next) = result {
                    if let output {
                        await output.send(next)
                    } else {
                        log.error("stage \(name) is last but passed message \(item.queueID) on; it stays queued")
                    }
                }
            } catch {
                telemetry.stageFailed(name, seconds: seconds(since: start), error: error)
                log.error("stage \(name) failed on \(item.queueID): \(error); the message stays queued in \(item.claimed.path) and is retried at the next start")
            }
        }
    }
}

func seconds(since start: ContinuousClock.Instant) -> Double {
    let elapsed = ContinuousClock.now - start
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
}
