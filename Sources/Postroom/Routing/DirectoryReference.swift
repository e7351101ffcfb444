import Foundation

extension RecipientDirectory {
    /// Loads the directory file a pipeline's `categorize` stage names, reporting a file that cannot be
    /// read (misspelt, missing, unreadable) at the pipeline's own `file:line: stages[N].directory`, so
    /// the operator sees which setting to fix. `check` and `run` both load it through here, so they
    /// report the same text. Problems inside a readable directory file keep that file's own lines.
    public static func load(declaredIn pipeline: PipelineFile, path: String, acceptedDomains: [String]) throws(ConfigError) -> RecipientDirectory {
        let full = resolvePath(path, against: pipeline.folder)
        do {
            return try load(path: full, acceptedDomains: acceptedDomains)
        } catch where error.file == full && error.keyPath.isEmpty && error.line == nil {
            let index = pipeline.stages.firstIndex { $0.kind == "categorize" } ?? 0
            let keyPath = "stages[\(index)].directory"
            let text = (try? String(contentsOfFile: pipeline.path, encoding: .utf8)) ?? ""
            throw ConfigError(file: pipeline.path, line: ConfigFile.lineOf(keyPath: keyPath, in: text), keyPath: keyPath,
                              problem: "the recipient directory \(full): \(error.problem)")
        }
    }
}
