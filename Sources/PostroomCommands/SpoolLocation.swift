import Foundation
import Postroom
import PostroomSystem

/// Where the operator commands (`queue`, `stats`, `trace`, `submit`) find the daemon's spool, and
/// the check that what they found is one.
///
/// The order is documented in the README (Commands): `--spool DIR`, then the `POSTROOM_SPOOL`
/// environment variable, then `./spool` when it exists, then `/var/spool/postroom` (the spool the
/// systemd install uses). A folder is a spool when it has `queue/` or `postroom.lock` (both made by
/// the first `postroom run`); anything else is refused with a one-line error, so a wrong or missing
/// `--spool` never looks like an empty queue.
public enum SpoolLocation {
    /// The environment variable that names the spool when `--spool` is not given.
    public static let environmentVariable = PipelineFile.spoolEnvironmentVariable
    /// The spool of a systemd install (`contrib/install.sh`), the last place looked at.
    public static let systemDefault = "/var/spool/postroom"

    /// Why a spool could not be used.
    public struct Problem: Error, Sendable, CustomStringConvertible {
        public let path: String
        public let description: String
    }

    /// The spool for an operator command, absolute and validated.
    ///
    /// - Parameters:
    ///   - override: the command's `--spool` value, if given.
    ///   - environment: the process environment (a parameter so tests can pass their own).
    ///   - workingDirectory: where a relative path resolves.
    public static func resolve(
        override: String?, environment: [String: String] = ProcessInfo.processInfo.environment,
        workingDirectory: String = FileManager.default.currentDirectoryPath
    ) throws(Problem) -> String {
        func absolute(_ path: String) -> String {
            let joined = path.hasPrefix("/") ? path : workingDirectory + "/" + path
            return URL(fileURLWithPath: joined).standardizedFileURL.path
        }
        let chosen: String
        let how: String
        if let override, !override.isEmpty {
            (chosen, how) = (absolute(override), "--spool")
        } else if let fromEnvironment = environment[environmentVariable], !fromEnvironment.isEmpty {
            (chosen, how) = (absolute(fromEnvironment), environmentVariable)
        } else if FileSystem.exists(absolute("spool")) {
            (chosen, how) = (absolute("spool"), "./spool")
        } else if FileSystem.exists(systemDefault) {
            (chosen, how) = (systemDefault, "the default \(systemDefault)")
        } else {
            throw Problem(path: absolute("spool"),
                          description: "no spool found (no ./spool, no \(systemDefault)); pass --spool DIR or set \(environmentVariable)")
        }
        try validate(chosen, how: how)
        return chosen
    }

    /// Throws unless `path` is a Postroom spool (`queue/` or `postroom.lock` inside a directory).
    public static func validate(_ path: String, how: String = "--spool") throws(Problem) {
        guard let status = FileSystem.status(of: path, followLinks: true) else {
            throw Problem(path: path, description: "\(path) does not exist (from \(how)); pass the spool `postroom run` uses with --spool DIR or \(environmentVariable)")
        }
        guard status.kind == .directory else {
            throw Problem(path: path, description: "\(path) is not a directory (from \(how)); pass the spool `postroom run` uses with --spool DIR or \(environmentVariable)")
        }
        guard FileSystem.exists(path + "/queue") || FileSystem.exists(path + "/postroom.lock") else {
            throw Problem(path: path, description: "\(path) is not a Postroom spool: it has no queue/ or postroom.lock (from \(how)); pass the spool `postroom run` uses with --spool DIR or \(environmentVariable)")
        }
    }

    /// For commands: the resolved spool, or nil after printing `postroom COMMAND: problem` on standard error.
    public static func resolveOrReport(_ override: String?, command: String) -> String? {
        do {
            return try resolve(override: override)
        } catch {
            printError("postroom \(command): \(error.description)")
            return nil
        }
    }
}
