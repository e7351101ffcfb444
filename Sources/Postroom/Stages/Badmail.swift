import Foundation
import PostroomSystem

/// Puts a file that cannot become a message back where the producer left it, as
/// `<name>.bad`, with a one-line reason in `<name>.bad.reason` (Exchange's badmail, made readable).
enum Badmail {
    /// Renames `path` to `<directory>/<name>.bad` (or `<name>-<time>.bad` if taken) and writes the reason first.
    /// Returns the path of the `.bad` file.
    @discardableResult
    static func reject(path: String, name: String, directory: String, reason: String) throws(SystemError) -> String {
        var base = directory + "/" + name
        if FileSystem.exists(base + ".bad") {
            base += "-" + String(Int(Date().timeIntervalSince1970 * 1000))
        }
        let line = reason.replacingOccurrences(of: "\n", with: " ") + "\n"
        try FileSystem.writeAtomically(Array(line.utf8), to: base + ".bad.reason", sync: false, mode: 0o644)
        try FileSystem.rename(path, to: base + ".bad")
        return base + ".bad"
    }
}
