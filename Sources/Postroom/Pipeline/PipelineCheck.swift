import Foundation
import PostroomSystem

/// `postroom check`: everything that can be known about a pipeline file without running it.
///
/// Returns problems as ``ConfigError``s (`file:line: key.path: what is wrong`) and a
/// printable stage graph. Problems are collected, not stopped at, so one run shows them all.
public struct PipelineCheck: Sendable {
    public var errors: [ConfigError] = []
    public var warnings: [String] = []
    public var graph: String = ""
    /// Errors `run` starts despite: a connector folder that is not writable or cannot be created yet,
    /// which an operator can fix while the daemon runs (deliveries through it defer until then).
    public var fixableWhileRunning: [ConfigError] = []

    public var isValid: Bool { errors.isEmpty }

    /// The errors `postroom run` refuses to start with: every error but ``fixableWhileRunning``.
    public var refusals: [ConfigError] { errors.filter { !fixableWhileRunning.contains($0) } }

    /// Checks the file at `path`, whose stages may be of any kind in `registry`.
    public static func run(path: String, spoolOverride: String? = nil, registry: StageRegistry = .standard) -> PipelineCheck {
        var check = PipelineCheck()
        let pipeline: PipelineFile
        do {
            pipeline = try PipelineFile.load(path: path, registry: registry)
        } catch {
            check.errors.append(error)
            return check
        }
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        func fail(_ keyPath: String, _ problem: String) {
            check.errors.append(ConfigError(file: path, line: ConfigFile.lineOf(keyPath: keyPath, in: text), keyPath: keyPath, problem: problem))
        }
        let spool = pipeline.spoolPath(override: spoolOverride)

        // Stage order.
        if pipeline.stages.first?.kind != "ingest" { fail("stages[0].stage", "the first stage must be ingest") }
        if pipeline.stages.last?.kind != "deliver" { fail("stages[\(max(0, pipeline.stages.count - 1))].stage", "the last stage must be deliver") }
        for (index, stage) in pipeline.stages.enumerated() where index > 0 && stage.kind == "ingest" {
            fail("stages[\(index)].stage", "ingest can only be the first stage")
        }
        for kind in ["validate", "categorize", "route"] where !pipeline.stages.contains(where: { $0.kind == kind }) {
            check.warnings.append("the pipeline has no \(kind) stage")
        }

        // Connectors.
        var names = Set<String>()
        for (index, connector) in pipeline.connectors.enumerated() {
            if !names.insert(connector.name).inserted { fail("connectors[\(index)].name", "another connector is already named '\(connector.name)'") }
            if connector.addressSpaces.isEmpty && connector.domains.isEmpty {
                fail("connectors[\(index)]", "connector '\(connector.name)' has no addressSpaces and no domains, so nothing can reach it")
            }
            for (spaceIndex, space) in connector.addressSpaces.enumerated() {
                do { _ = try AddressSpace(parsing: space) } catch {
                    fail("connectors[\(index)].addressSpaces[\(spaceIndex)]", "\(error)")
                }
            }
            let folder: String?
            switch connector.type {
            case .smtp: folder = nil
            case .foreign: folder = resolvePath(connector.dropDirectory ?? connector.name, against: spool)
            case .maildir: folder = resolvePath((connector.path ?? "").replacingOccurrences(of: "{user}", with: ""), against: spool)
            case .agent:
                folder = nil
                if let program = connector.command?.first,
                   case .failure(let problem) = AgentConnector(configuration: connector, configurationFolder: pipeline.folder).locate(program) {
                    // A warning, not an error: deliveries defer until the program is installed.
                    check.warnings.append("connectors[\(index)].command[0]: \(problem.reason)")
                }
            }
            if let permissions = connector.permissions {
                if connector.type == .agent {
                    fail("connectors[\(index)].permissions", "permissions apply to foreign and maildir connectors only")
                } else if let group = permissions.group, permissions.groupID == nil {
                    fail("connectors[\(index)].permissions.group", "no group named '\(group)' on this machine; create it (groupadd) or fix the name")
                }
            }
            if let folder, let problem = writableProblem(folder) {
                fail(connector.type == .foreign ? "connectors[\(index)].dropDirectory" : "connectors[\(index)].path", problem)
                if !problem.hasSuffix("is not a directory"), let last = check.errors.last { check.fixableWhileRunning.append(last) }
            }
        }
        if pipeline.connectors.isEmpty { fail("connectors", "the pipeline has no connectors, so nothing can be delivered") }
        if let table = try? RouteStage.table(for: pipeline) {
            for problem in table.problems() {
                fail(problem.keyPath.replacingOccurrences(of: ".localDomains", with: ".domains"), problem.message)
            }
        }

        // Command stages: a missing program would defer every message.
        for (keyPath, problem) in CommandStage.programProblems(in: pipeline) { fail(keyPath, problem) }

        // Intake directories and the queue.
        if let ingest = pipeline.settings(IngestSettings.self) {
            if let group = ingest.permissions?.group, ingest.permissions?.groupID == nil {
                fail("stages[0].permissions.group", "no group named '\(group)' on this machine; create it (groupadd) or fix the name")
            }
            if ingest.permissions?.fileMode != nil {
                fail("stages[0].permissions.fileMode", "producers create the files in pickup/ and replay/; set their mode with the producer's umask")
            }
            for (key, directory) in [("pickup", ingest.pickup), ("replay", ingest.replay)] {
                guard let directory else { continue }
                let full = resolvePath(directory, against: spool)
                if let problem = writableProblem(full) { fail("stages[0].\(key)", problem) }
                if let existing = nearestExisting(full), let queue = nearestExisting(spool + "/queue"), !FileSystem.sameFilesystem(existing, queue) {
                    check.warnings.append("stages[0].\(key): \(full) is on another filesystem than the queue; files are claimed by copy, fsync and unlink instead of rename")
                }
            }
        }

        // The metrics endpoint: the same parse `run` does before it binds.
        if let listen = pipeline.metrics?.listen {
            do { _ = try MetricsHTTPServer.parse(listen) } catch { fail("metrics.listen", "\(error)") }
        }

        // Directory.
        if let categorize = pipeline.settings(CategorizeSettings.self), let directoryPath = categorize.directory {
            let full = resolvePath(directoryPath, against: pipeline.folder)
            do {
                let directory = try RecipientDirectory.load(declaredIn: pipeline, path: directoryPath, acceptedDomains: categorize.acceptedDomains)
                check.errors += directory.configErrors(file: full)
                do {
                    let accepted = categorize.acceptedDomains.map { $0.lowercased() }
                    for (index, connector) in pipeline.connectors.enumerated() {
                        for (domainIndex, domain) in connector.domains.enumerated() where !accepted.contains(domain.lowercased()) {
                            check.warnings.append("connectors[\(index)].domains[\(domainIndex)]: \(domain) is not an accepted domain of the categorize stage, so its recipients are never resolved against the directory")
                        }
                    }
                }
            } catch {
                check.errors.append(error)
            }
        }

        // Building catches what decoding alone cannot.
        if check.errors.isEmpty {
            do {
                _ = try PipelineRunner(pipeline: pipeline, spool: spool, log: Logger(minimum: .error), dryRun: true)
            } catch let error as ConfigError {
                check.errors.append(error)
            } catch {
                check.errors.append(ConfigError(file: path, keyPath: "", problem: "\(error)"))
            }
        }
        check.graph = stageGraph(pipeline, spool: spool)
        return check
    }

    static func stageGraph(_ pipeline: PipelineFile, spool: String) -> String {
        var lines = ["pipeline \(pipeline.name) (spool \(spool))"]
        for (index, stage) in pipeline.stages.enumerated() {
            let summary = pipeline.registry.kind(named: stage.kind)?.summary ?? ""
            lines.append("  \(index == 0 ? "  " : "→ ")\(stage.kind.padding(toLength: 11, withPad: " ", startingAt: 0)) \(summary)")
        }
        for connector in pipeline.connectors {
            let target: String
            switch connector.type {
            case .maildir: target = connector.path ?? ""
            case .foreign: target = connector.dropDirectory ?? ""
            case .agent: target = (connector.command ?? []).joined(separator: " ")
            case .smtp: target = (connector.smtp?.smartHosts ?? []).map(\.description).joined(separator: ", ")
            }
            let spaces = (connector.domains + connector.addressSpaces).joined(separator: ", ")
            lines.append("      ⇒ \(connector.name) [\(connector.type.rawValue)] \(spaces) → \(target)")
        }
        return lines.joined(separator: "\n")
    }

    /// Why a directory cannot be used: nil when it exists and is writable, or can be created.
    static func writableProblem(_ path: String) -> String? {
        if let status = FileSystem.status(of: path, followLinks: true) {
            if status.kind != .directory { return "\(path) exists and is not a directory" }
            return FileManager.default.isWritableFile(atPath: path) ? nil : "\(path) is not writable"
        }
        guard let parent = nearestExisting(path) else { return "\(path) cannot be created" }
        return FileManager.default.isWritableFile(atPath: parent) ? nil : "\(path) cannot be created: \(parent) is not writable"
    }

    static func nearestExisting(_ path: String) -> String? {
        var current = path
        while !current.isEmpty {
            if FileSystem.status(of: current, followLinks: true)?.kind == .directory { return current }
            let parent = (current as NSString).deletingLastPathComponent
            if parent == current { break }
            current = parent
        }
        return nil
    }
}
