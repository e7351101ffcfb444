import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What a finished child process used, from the `rusage` that `wait4(2)` returns with it.
///
/// The figures are the kernel's own accounting for that process and its threads only (not the
/// parent's, not other children's), which makes them the robust measure of a daemon's cost on a
/// shared machine: wall-clock time depends on the neighbours, CPU time hardly does.
public struct ResourceUsage: Sendable, Equatable {
    /// CPU time spent in user space, in seconds.
    public var userSeconds: Double
    /// CPU time spent in the kernel on the process's behalf (system calls, page faults), in seconds.
    public var systemSeconds: Double
    /// Peak resident set size in bytes (`ru_maxrss`).
    public var peakResidentBytes: Int
    /// Times a thread gave up the CPU to wait (a blocking call, a futex: thread hand-offs show here).
    public var voluntaryContextSwitches: Int
    /// Times a thread was preempted.
    public var involuntaryContextSwitches: Int

    public init(userSeconds: Double = 0, systemSeconds: Double = 0, peakResidentBytes: Int = 0,
                voluntaryContextSwitches: Int = 0, involuntaryContextSwitches: Int = 0) {
        self.userSeconds = userSeconds
        self.systemSeconds = systemSeconds
        self.peakResidentBytes = peakResidentBytes
        self.voluntaryContextSwitches = voluntaryContextSwitches
        self.involuntaryContextSwitches = involuntaryContextSwitches
    }

    init(_ raw: rusage) {
        func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
        userSeconds = seconds(raw.ru_utime)
        systemSeconds = seconds(raw.ru_stime)
        // ru_maxrss is in kilobytes on Linux.
        peakResidentBytes = Int(raw.ru_maxrss) * 1024
        voluntaryContextSwitches = Int(raw.ru_nvcsw)
        involuntaryContextSwitches = Int(raw.ru_nivcsw)
    }

    /// User plus system time.
    public var cpuSeconds: Double { userSeconds + systemSeconds }
}

/// Reaping a child process together with its resource usage (`wait4(2)`).
public enum ChildProcess {
    /// The outcome of one look at a child.
    public enum Reaped: Sendable, Equatable {
        /// It has not ended yet.
        case running
        /// It ended with this wait status and used this much; it is reaped now.
        case ended(status: Int32, usage: ResourceUsage)
        /// It is not (or no longer) our child: reaped elsewhere or never started. Carries `errno`.
        case unknown(errno: Int32)
    }

    /// Reaps `pid` if it has ended; with `wait: false` this never blocks.
    public static func reap(_ pid: Int32, wait: Bool = false) -> Reaped {
        var status: Int32 = 0
        var usage = rusage()
        while true {
            let result = wait4(pid, &status, wait ? 0 : WNOHANG, &usage)
            if result == pid { return .ended(status: status, usage: ResourceUsage(usage)) }
            if result == 0 { return .running }
            if errno == EINTR { continue }
            return .unknown(errno: errno)
        }
    }

    /// Sends `signal` to `pid` (SIGTERM, SIGKILL); false if there is no such process.
    @discardableResult
    public static func signal(_ pid: Int32, _ signal: Int32) -> Bool { kill(pid, signal) == 0 }

    public static let terminate = SIGTERM
    public static let killNow = SIGKILL
}
