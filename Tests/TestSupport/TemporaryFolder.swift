import Foundation

/// A unique folder under the temporary directory, removed when released (shared by the unit test targets).
public final class TemporaryFolder {
    public let path: String

    public init(_ label: String) throws {
        path = NSTemporaryDirectory() + "postroom-\(label)-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    public func sub(_ relative: String) -> String { path + "/" + relative }

    @discardableResult
    public func write(_ relative: String, _ text: String) throws -> String {
        let full = sub(relative)
        try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: full))
        return full
    }

    public func names() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted()
    }
}
