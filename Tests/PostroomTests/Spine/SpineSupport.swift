import Foundation
import Synchronization
import Testing
@testable import Postroom
import TestSupport

/// The unit tests of Postroom's spine (pipeline plumbing, configuration, queue, file system).
/// Every suite is nested here, so `swift test --filter Spine` runs exactly these.
enum Spine {
    /// The package root, found from this file's path (`Tests/PostroomTests/Spine/`).
    static let packageRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<4 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// A unique folder under the temporary directory, removed when released.
    typealias TemporaryFolder = TestSupport.TemporaryFolder

    /// A value shared with another task.
    final class Box<Value: Sendable>: Sendable {
        private let value: Mutex<Value>
        init(_ initial: Value) { value = Mutex(initial) }
        var current: Value { value.withLock { $0 } }
        func set(_ new: Value) { value.withLock { $0 = new } }
        func update(_ body: @Sendable (inout Value) -> Void) { value.withLock { body(&$0) } }
    }

    /// Waits until `condition` holds, polling with yields, for at most `seconds`; returns whether it held.
    static func wait(seconds: Double = 10, until condition: () -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while !condition() {
            if ContinuousClock.now >= deadline { return false }
            await Task.yield()
        }
        return true
    }

    /// The value of `operation`, or nil when it takes longer than `seconds` (a hang is a failure, not a stuck run).
    static func withDeadline<T: Sendable>(seconds: Int = 10, _ operation: @escaping @Sendable () async -> T) async -> T? {
        await withTaskGroup(of: T?.self) { group in
            group.addTask { await operation() }
            group.addTask {
                try? await Task.sleep(for: .seconds(seconds))
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }
}
