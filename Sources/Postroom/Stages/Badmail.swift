import Foundation
import PostroomSystem

/// Puts a file that cannot become a message back where the producer left it, as
/// `<name>.bad`, with a one-line reason in `<name>.bad.reason` (Exchange's badmail, made readable).
enum Badmail {
    /// Renames `path` to `<directory>/<name>.bad` (or `<name>-<time>.bad` if taken) and writes the reason first.
    /// Returns the path of the `.bad` file.
    @discardableResult
    static func reject(path: String, name: String, directory: String, reason: String) throws(SystemError) -> String {
        try reject(name: name, directory: directory, reason: reason) { (destination: String) throws(SystemError) in
            try FileSystem.rename(path, to: destination)
        }
    }

    /// ``reject(path:name:directory:reason:)`` for an entry whose name may not be UTF-8: the
    /// `.bad` file gets the name's escaped display form, and the reason says so.
    @discardableResult
    static func reject(path: RawPath, directory: String, reason: String) throws(SystemError) -> String {
        let name = path.name.display
        let note = path.name.isPlain ? "" : " (the file name is not valid UTF-8; bytes shown as \\xNN)"
        return try reject(name: name, directory: directory, reason: reason + note) { (destination: String) throws(SystemError) in
            try FileSystem.rename(path, to: destination)
        }
    }

    private static func reject(
        name: String, directory: String, reason: String, move: (String) throws(SystemError) -> Void
    ) throws(SystemError) -> String {
        var base = directory + "/" + fitting(name)
        if FileSystem.exists(base + ".bad") {
            base += "-" + String(Int(Date().timeIntervalSince1970 * 1000))
        }
        let line = reason.replacingOccurrences(of: "\n", with: " ").replacingOccurrences(of: "\r", with: " ") + "\n"
        try FileSystem.writeAtomically(Array(line.utf8), to: base + ".bad.reason", sync: false, mode: 0o644)
        try move(base + ".bad")
        return base + ".bad"
    }

    /// A name short enough that `<name>-<time>.bad.reason` and its hidden temporary name stay
    /// within NAME_MAX (255 bytes); a longer name is cut and marked with a hash of the whole.
    static func fitting(_ name: String) -> String {
        guard name.utf8.count > 180 else { return name }
        var hash: UInt32 = 0x811C_9DC5
        for byte in name.utf8 { hash = (hash ^ UInt32(byte)) &* 0x0100_0193 }
        var kept = ""
        for character in name {
            if kept.utf8.count + character.utf8.count > 160 { break }
            kept.append(character)
        }
        return kept + "…" + String(hash, radix: 16)
    }
}
