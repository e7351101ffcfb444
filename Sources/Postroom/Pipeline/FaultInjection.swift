import Foundation
import PostroomSystem
import Synchronization

// Test-only faults. Compiled into every build (the crash tests run the release binary's code paths),
// and inert unless one of these environment variables is set, which operators never do:
//
// | variable                      | effect                                                              |
// |-------------------------------|---------------------------------------------------------------------|
// | POSTROOM_TEST_KILL_AT=point:n | SIGKILL to itself the n-th time the process passes `point`          |
// |                               | (claim, store, rename, remove): crash safety at exact instants      |
// | POSTROOM_TEST_CRASH_MARKER=s  | a message containing `s` kills the process in `validate`, as a      |
// |                               | parser bug would: poison handling                                   |
// | POSTROOM_TEST_SKIP_FSYNC=1    | every fsync is a no-op (``FileSystem/skipsSyncForTests``, in the    |
// |                               | system layer where the calls are): the power-loss suite's negative  |
// |                               | control, proving the suite sees writes a power cut loses            |
//
// Each hook costs one load of an optional when its variable is unset.

/// Test-only faults, enabled by environment variables that operators never set.
enum FaultInjection {
    /// `POSTROOM_TEST_KILL_AT=point:n`: the process kills itself with SIGKILL the n-th time it passes
    /// `point` (claim, store, rename, remove), to prove crash safety at exactly those instants.
    static let killPoint: (name: String, count: Int)? = {
        guard let value = ProcessInfo.processInfo.environment["POSTROOM_TEST_KILL_AT"] else { return nil }
        let parts = value.split(separator: ":")
        guard parts.count == 2, let count = Int(parts[1]) else { return nil }
        return (String(parts[0]), count)
    }()
    private static let passes = Mutex<[String: Int]>([:])

    static func checkpoint(_ name: String) {
        guard let point = killPoint, point.name == name else { return }
        let reached = passes.withLock { table -> Bool in
            table[name, default: 0] += 1
            return table[name] == point.count
        }
        if reached { FileSystem.killSelf() }
    }

    /// `POSTROOM_TEST_CRASH_MARKER`: a message containing this text kills the process in `validate`,
    /// as a parser bug would; used to prove poison handling.
    static let crashMarker: [UInt8]? = ProcessInfo.processInfo.environment["POSTROOM_TEST_CRASH_MARKER"].map { Array($0.utf8) }

    static func crashIfMarked(_ bytes: [UInt8], stage: String) {
        guard let marker = crashMarker, stage == "validate", !marker.isEmpty, bytes.count >= marker.count else { return }
        for start in 0...(bytes.count - marker.count) where bytes[start] == marker[0] && bytes[start..<start + marker.count].elementsEqual(marker) {
            fatalError("POSTROOM_TEST_CRASH_MARKER found in a message (test fault injection)")
        }
    }
}
