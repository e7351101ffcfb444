import Foundation
import Synchronization

/// Process exit codes, as the contract fixes them.
public enum ExitCode: Int32, Sendable {
    case ok = 0
    case userError = 1
    case usage = 2
    case temporaryFailure = 75
}

/// `postroom run`: the long-running watcher with its signals and its spool lock.
public enum Daemon {
    /// The spool a pipeline runs on: `--spool`, else the file's `spool`, else `./spool`.
    public static func spoolPath(for pipeline: PipelineFile, override: String?) -> String {
        let chosen = override ?? pipeline.spool ?? "spool"
        let absolute = chosen.hasPrefix("/") ? chosen : FileManager.default.currentDirectoryPath + "/" + chosen
        return URL(fileURLWithPath: absolute).standardizedFileURL.path
    }

    public static func run(pipelinePath: String, spoolOverride: String?, log: Logger) async -> ExitCode {
        let pipeline: PipelineFile
        do {
            pipeline = try PipelineFile.load(path: pipelinePath)
        } catch {
            log.error("\(error)")
            return .userError
        }
        let spool = spoolPath(for: pipeline, override: spoolOverride)
        let lock: ExclusiveLock
        do {
            try FileSystem.createDirectory(spool)
            lock = try ExclusiveLock(path: spool + "/postroom.lock")
        } catch let error as ExclusiveLock.Failure {
            log.error("\(error)")
            return .temporaryFailure
        } catch {
            log.error("cannot use spool \(spool): \(error)")
            return .temporaryFailure
        }
        let runner: PipelineRunner
        do {
            runner = try PipelineRunner(pipeline: pipeline, spool: spool, log: log)
        } catch {
            log.error("\(error)")
            return .userError
        }
        let signals = SignalWatcher([.terminate, .interrupt, .hangup]) { signal in
            switch signal {
            case .terminate, .interrupt:
                log.notice("received SIG\(signal == .terminate ? "TERM" : "INT"); stopping intake and finishing in-flight work")
                Task { await runner.stop() }
            case .hangup:
                log.notice("received SIGHUP; reloading is not supported yet, keeping the running pipeline")
            }
        }
        log.notice("pipeline \(pipeline.name) running on spool \(spool), watching \(runner.ingest.watchedDirectories.joined(separator: ", "))")
        do {
            try await runner.run()
        } catch {
            log.error("pipeline stopped: \(error)")
            withExtendedLifetime((signals, lock)) {}
            return .temporaryFailure
        }
        log.notice("stopped; everything not delivered stays queued in \(spool)/queue")
        withExtendedLifetime((signals, lock)) {}
        return .ok
    }
}
