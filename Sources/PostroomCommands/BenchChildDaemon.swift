import Postroom
import PostroomSystem

/// The daemon under test, a child process so the bench can read its resource usage.
struct ChildDaemon {
    let process: ChildProcess
    let started: ContinuousClock.Instant

    static func spawn(executable: String, arguments: [String], log: String) throws(BenchFailure) -> ChildDaemon {
        let started = ContinuousClock.now
        do {
            let process = try ChildProcess.spawn(executable: executable, arguments: arguments, standardOutput: "/dev/null", standardError: log)
            return ChildDaemon(process: process, started: started)
        } catch {
            throw BenchFailure(description: "cannot start the daemon: \(error)")
        }
    }

    /// Exit status when the child has ended, without waiting; the child is reaped.
    func exitedEarly() -> Int32? { process.reapIfExited()?.status }

    /// Sends SIGTERM (the daemon finishes in-flight work) and reaps the child.
    /// Returns its wait status, its peak resident set in bytes and its whole resource usage (`wait4`).
    func stop(timeout: Duration = .seconds(60)) async -> (status: Int32, peakRSS: Int, usage: ResourceUsage) {
        process.terminate()
        let deadline = ContinuousClock.now + timeout
        while true {
            if let exit = process.reapIfExited() { return (exit.status, exit.usage.peakResidentBytes, exit.usage) }
            if ContinuousClock.now > deadline { process.forceKill() }
            try? await Task.sleep(for: .milliseconds(10))
        }
    }
}
