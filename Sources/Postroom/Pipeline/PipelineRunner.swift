import Foundation
import PostroomSystem
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
    /// Unexpected stage failures per queue id in this run.
    let failureCounts = Mutex<[String: Int]>([:])

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
        let commit = DeliveryCommit(spool: spool, directorySync: directorySync, strategy: pipeline.durability.strategy)
        if !dryRun {
            log.info(commit.strategy == .filesystem ? "deliveries made durable by group commit (syncfs of the spool's file system)"
                                                    : "deliveries made durable by an fsync per file")
        }
        let connectors = pipeline.connectors.map {
            ConnectorFactory.make($0, spool: spool, hostname: hostname, commit: commit, configurationFolder: pipeline.folder)
        }
        let delivery = DeliveryService(settings: pipeline.settings(DeliverSettings.self) ?? DeliverSettings(), store: store,
                                       connectors: connectors, log: log, telemetry: telemetry, deliveriesCoverClaims: commit.coversEarlierRenames)
        self.delivery = delivery
        let ingestBox = Mutex<IngestStage?>(nil)
        let acceptedDomains = pipeline.settings(CategorizeSettings.self)?.acceptedDomains ?? []
        // Headers name this host by its FQDN (Maildir file names keep the bare name above).
        let identity = HostIdentity.name(configured: pipeline.hostname, acceptedDomains: acceptedDomains)
        let defaultDomain = acceptedDomains.first ?? identity
        let context = StageContext(pipeline: pipeline, spool: spool, hostname: identity, queue: store, log: log,
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
            guard let kind = pipeline.registry.kind(named: declaration.kind) else { continue }
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
        telemetry.declare(stages: ["ingest"] + stages.map(\.0), connectors: pipeline.connectors.map(\.name))
        if !dryRun {
            // The intake directories exist as soon as the runner does, so producers can drop files at once.
            for directory in ingest.watchedDirectories { try? ingestSettings.prepareDirectory(directory) }
        }
        for connector in connectors where !dryRun {
            do { try connector.prepare() } catch { log.warning("connector \(connector.name): \(error)") }
        }
    }

    /// Runs until ``stop()``: recovers the queue, starts delivery, then takes files.
    public func run() async throws {
        try context.queue.prepare()
        context.queue.removeTemporaryFiles()
        // A claimed file still in incoming/ means its queue entries were never released to
        // the connectors: any entries of that queue id are leftovers of an interrupted write.
        let failures = delivery.journal.failureCounts()
        var claimed: [ClaimedFile] = []
        for file in try context.queue.claimedFiles() {
            let crashes = failures[PoisonJournal.key(claimed: file.queueID)] ?? 0
            if crashes >= delivery.settings.poisonThreshold {
                let parked = try context.queue.park(file, reason: "failed unexpectedly \(crashes) times (Postroom died or failed while a stage worked on it)")
                context.log.error("claimed file \(file.originalName) (\(file.queueID)) failed unexpectedly \(crashes) times; parked as poison in \(parked)")
                telemetry.track(TrackingEvent(event: .poison, source: .init(file.source), queueID: file.queueID, messageID: "",
                                              sender: "", recipients: [], reason: "failed unexpectedly \(crashes) times", file: parked))
            } else {
                claimed.append(file)
            }
        }
        let recovered = await delivery.recover(discarding: Set(claimed.map(\.queueID)), failures: failures)
        let existing = Set(claimed.map { PoisonJournal.key(claimed: $0.queueID) }).union(context.queue.entries().map { PoisonJournal.key(entry: $0.entry.id) })
        try delivery.journal.reset(keeping: failures.filter { existing.contains($0.key) })
        for file in claimed { ingest.resubmit(file) }
        if recovered + claimed.count > 0 {
            context.log.info("recovered \(claimed.count) claimed file(s) and \(recovered) queue entr\(recovered == 1 ? "y" : "ies")")
        }
        await delivery.start()

        let capacity = channelCapacity
        let channels = (0...stages.count).map { _ in BoundedChannel<PipelineItem>(capacity: capacity) }
        let telemetry = self.telemetry
        let journal = delivery.journal
        let onFailure: @Sendable (PipelineItem, any Error) async -> Void = { [self] item, error in await self.stageFailed(item, error: error) }
        let log = context.log
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, (name, stage)) in stages.enumerated() {
                let input = channels[index]
                let output = channels[index + 1]
                let isLast = index == stages.count - 1
                // A stage that waits on the disk (deliver's fsyncs) gets several workers, so its
                // waits overlap and the directory fsyncs of concurrent messages are shared.
                let workers = pipeline.registry.kind(named: name)?.workers ?? 1
                group.addTask {
                    await withTaskGroup(of: Void.self) { workerGroup in
                        for _ in 0..<workers {
                            workerGroup.addTask {
                                await Self.runStage(name: name, stage: stage, input: input, output: isLast ? nil : output,
                                                    telemetry: telemetry, journal: journal, log: log, onFailure: onFailure)
                            }
                        }
                    }
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
                         output: BoundedChannel<PipelineItem>?, telemetry: Telemetry, journal: PoisonJournal, log: Logger,
                         onFailure: @Sendable (PipelineItem, any Error) async -> Void) async {
        let metrics = telemetry.stage(name)
        while let item = await input.receive() {
            telemetry.stageStarted(metrics, buffered: input.count)
            let start = ContinuousClock.now
            // Only the message a stage is working on is at risk if the process dies now.
            let mark = journal.begin(PoisonJournal.key(claimed: item.queueID))
            FaultInjection.crashIfMarked(item.bytes, stage: name)
            do {
                let result = try await stage.process(item)
                // "end" before the hand-off: once the next stage may begin, this one must be on
                // record as finished, or a crash there would count twice against the message.
                journal.end(mark)
                telemetry.stageFinished(metrics, seconds: seconds(since: start), result: result)
                if case .forward(let next) = result {
                    if let output {
                        await output.send(next)
                    } else {
                        log.error("stage \(name) is last but passed message \(item.queueID) on; it stays queued")
                    }
                }
            } catch {
                journal.end(mark)
                telemetry.stageFailed(metrics, seconds: seconds(since: start), error: error)
                log.error("stage \(name) failed on \(item.queueID): \(error); the message stays queued in \(item.claimed.path)")
                await onFailure(item, error)
            }
        }
    }
}

extension PipelineRunner {
    /// A stage threw: transient errors (disk full, permissions) retry the message later; other
    /// errors count towards poison, and at the threshold the claimed file is parked in `queue/poison/`.
    func stageFailed(_ item: PipelineItem, error: any Error) async {
        let transient = (error as? SystemError)?.isTransient ?? false
        if !transient {
            delivery.journal.failed(PoisonJournal.key(claimed: item.queueID))
            let failures = failureCounts.withLock { counts -> Int in
                counts[item.queueID, default: 0] += 1
                return counts[item.queueID]!
            }
            if failures >= delivery.settings.poisonThreshold {
                do {
                    let parked = try context.queue.park(item.claimed, reason: "failed \(failures) times: \(error)")
                    context.log.error("\(item.claimed.originalName) (\(item.queueID)) failed \(failures) times; parked as poison in \(parked)")
                    telemetry.track(TrackingEvent(event: .poison, source: .init(item.claimed.source), queueID: item.queueID, messageID: item.messageID,
                                                  sender: item.envelope.sender, recipients: item.envelope.recipients.map(\.address),
                                                  reason: "\(error)", file: parked))
                } catch {
                    context.log.error("cannot park \(item.claimed.path) as poison: \(error)")
                }
                return
            }
        }
        let claimed = item.claimed
        let resubmit = context.resubmit
        Task {
            try? await Task.sleep(for: .seconds(transient ? 10 : 2))
            resubmit(claimed)
        }
    }
}

func seconds(since start: ContinuousClock.Instant) -> Double {
    let elapsed = ContinuousClock.now - start
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
}
