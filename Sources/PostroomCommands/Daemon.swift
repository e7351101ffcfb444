import Foundation
import Postroom
import PostroomSystem
import Synchronization

/// Process exit codes, as the contract fixes them.
public enum ExitCode: Int32, Sendable {
    case ok = 0
    case userError = 1
    case usage = 2
    case temporaryFailure = 75
}

/// What the signal handlers asked the running pipeline to do.
actor Lifecycle {
    enum Request: Sendable { case stop, reload(PipelineFile) }
    private var pending: Request?
    private var runner: PipelineRunner?

    /// Records the request (a stop wins over a reload) and stops the running pipeline gracefully.
    func request(_ request: Request) async {
        if case .stop = pending {} else { pending = request }
        await runner?.stop()
    }

    /// A runner that starts after a stop was requested is stopped at once.
    func attach(_ runner: PipelineRunner) async {
        self.runner = runner
        if case .stop = pending { await runner.stop() }
    }

    func takeRequest() -> Request? {
        defer { if case .reload = pending { pending = nil } }
        return pending
    }
}

/// `postroom run`: the long-running watcher with its signals and its spool lock.
public enum Daemon {
    /// Refreshes the queue gauges and writes `metrics.prom` on the configured interval, and once more at shutdown.
    static func publishMetrics(pipeline: PipelineFile, spool: String, runner: PipelineRunner, log: Logger) async {
        let file = pipeline.metrics.flatMap(\.file).map { resolvePath($0, against: spool) }
        let writer = file.map { MetricsFileWriter(registry: runner.telemetry.registry, path: $0) }
        let interval = Duration.milliseconds(Int((pipeline.metrics?.every.seconds ?? 10) * 1000))
        func publish() async {
            runner.telemetry.updateQueueGauges(await runner.delivery.queueCounts())
            do { try await writer?.writeNow() } catch { log.warning("cannot write \(file ?? "metrics"): \(error)") }
        }
        while !Task.isCancelled {
            await publish()
            try? await Task.sleep(for: interval)
        }
        await publish()
    }

    public static func run(pipelinePath: String, spoolOverride: String?, log: Logger) async -> ExitCode {
        let pipeline: PipelineFile
        do {
            pipeline = try PipelineFile.load(path: pipelinePath)
        } catch {
            log.error("\(error)")
            return .userError
        }
        let spool = pipeline.spoolPath(override: spoolOverride)
        // Whatever `check` refuses, `run` refuses with the same text (except folders an operator can
        // fix while the daemon runs: deliveries through them defer).
        let check = PipelineCheck.run(path: pipelinePath, spoolOverride: spoolOverride)
        for warning in check.warnings { log.warning(warning) }
        for problem in check.fixableWhileRunning { log.warning("\(problem)") }
        guard check.refusals.isEmpty else {
            for problem in check.refusals { log.error("\(problem)") }
            return .userError
        }
        let lock: ExclusiveLock
        do {
            // Searchable by others (not listable), so producers, gateways, Dovecot and node_exporter
            // running as other users can reach the folders their permissions settings open to them.
            try FileSystem.createDirectory(spool, mode: 0o711)
            lock = try ExclusiveLock(path: spool + "/postroom.lock")
        } catch let error as ExclusiveLock.Failure {
            log.error("\(error)")
            return .temporaryFailure
        } catch {
            log.error("cannot use spool \(spool): \(error)")
            return .temporaryFailure
        }
        let registry = MetricsRegistry()
        var tracking: TrackingLog?
        if let configuration = pipeline.tracking {
            do {
                tracking = try TrackingLog(path: resolvePath(configuration.file, against: spool), maxBytes: Int(configuration.maxSize.bytes), maxFiles: configuration.keep)
            } catch {
                log.error("cannot open the tracking log: \(error)")
                return .temporaryFailure
            }
        }
        let telemetry = Telemetry(pipeline: pipeline.name, registry: registry, tracking: tracking, log: log)
        defer { telemetry.close() }
        var server: MetricsHTTPServer?
        if let listen = pipeline.metrics?.listen {
            do {
                server = try MetricsHTTPServer(listen: listen, registry: registry)
                server?.start()
                if let server { log.notice("serving metrics at GET /metrics on \(listen), port \(server.port)") }
            } catch {
                log.error("cannot serve metrics on \(listen): \(error)")
                return .userError
            }
        }
        defer { server?.stop() }

        let lifecycle = Lifecycle()
        let signals = SignalWatcher([.terminate, .interrupt, .hangup]) { signal in
            switch signal {
            case .terminate, .interrupt:
                log.notice("received SIG\(signal == .terminate ? "TERM" : "INT"); stopping intake and finishing in-flight work")
                Task { await lifecycle.request(.stop) }
            case .hangup:
                log.notice("received SIGHUP; reloading \(pipelinePath)")
                Task {
                    // A new file must build completely before the running pipeline is touched.
                    do {
                        let candidate = try PipelineFile.load(path: pipelinePath)
                        if let refusal = PipelineCheck.run(path: pipelinePath, spoolOverride: spool).refusals.first { throw refusal }
                        _ = try PipelineRunner(pipeline: candidate, spool: spool, log: log, dryRun: true)
                        await lifecycle.request(.reload(candidate))
                    } catch {
                        log.error("reload failed, the running pipeline stays as it was: \(error)")
                    }
                }
            }
        }
        defer { withExtendedLifetime((signals, lock)) {} }

        var current = pipeline
        while true {
            let runner: PipelineRunner
            do {
                runner = try PipelineRunner(pipeline: current, spool: spool, log: log, telemetry: telemetry)
            } catch {
                log.error("\(error)")
                return .userError
            }
            let control = QueueControl(administration: QueueAdministration(store: runner.context.queue, delivery: runner.delivery, telemetry: telemetry,
                                                                           resubmit: runner.context.resubmit), log: log)
            let controlTask = Task { await control.run() }
            let metricsTask = Task { [current] in await publishMetrics(pipeline: current, spool: spool, runner: runner, log: log) }
            await lifecycle.attach(runner)
            // The runner logs "pipeline … running on spool …" once its intake watches are in place.
            var failure: (any Error)?
            do { try await runner.run() } catch { failure = error }
            await control.stop()
            await controlTask.value
            metricsTask.cancel()
            await metricsTask.value
            if let failure {
                log.error("pipeline stopped: \(failure)")
                return .temporaryFailure
            }
            guard case .reload(let next) = await lifecycle.takeRequest() else { break }
            log.notice("reloaded \(pipelinePath): in-flight work was finished or parked, the new pipeline picks it up")
            current = next
        }
        log.notice("stopped; everything not delivered stays queued in \(spool)/queue")
        return .ok
    }
}
