#if canImport(Glibc)
import Glibc
#endif

/// What the kernel counted for a process that has been reaped (`wait4`'s `rusage`).
///
/// The figures are the kernel's own accounting for that process and its threads only, which makes
/// them the robust measure of a daemon's cost on a shared machine: wall-clock time depends on the
/// neighbours, CPU time hardly does.
public struct ResourceUsage: Sendable, Equatable {
    /// CPU time spent in user mode, in seconds.
    public var userSeconds: Double
    /// CPU time spent in the kernel on the process's behalf, in seconds.
    public var systemSeconds: Double
    /// Peak resident set size in bytes.
    public var peakResidentBytes: Int
    /// Times a thread gave up the CPU to wait (a blocking call, a futex: thread hand-offs show here).
    public var voluntaryContextSwitches: Int = 0
    /// Times a thread was preempted.
    public var involuntaryContextSwitches: Int = 0

    /// User plus system time.
    public var cpuSeconds: Double { userSeconds + systemSeconds }
}

/// A long-running child process started from an argv (no shell), that inherits this process's
/// environment, and whose resource usage is read when it is reaped.
///
/// Unlike ``Subprocess`` (a bounded run with captured output and a time limit), this is for a
/// process the caller supervises itself, such as the daemon under `postroom bench`. It is a plain
/// value: whoever spawns it must reap it once, with ``reapIfExited()``.
public struct ChildProcess: Sendable {
    public let processID: Int32

    /// How a reaped child ended.
    public struct Exit: Sendable, Equatable {
        /// The raw wait status (exit code and signal, as `waitpid` reports them).
        public var status: Int32
        public var usage: ResourceUsage
        /// The exit code when the child called `exit`, nil when a signal ended it.
        public var exitCode: Int32? { status & 0x7f == 0 ? (status >> 8) & 0xff : nil }
    }

    /// Starts `executable` with `arguments` (without `argv[0]`); standard output and standard error
    /// go to the given files (created or truncated; `/dev/null` discards).
    public static func spawn(executable: String, arguments: [String], standardOutput: String,
                             standardError: String) throws(SystemError) -> ChildProcess {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, standardOutput, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, standardError, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, nil, argv, environ)
        guard result == 0 else { throw SystemError(operation: "posix_spawn", path: executable, errno: result) }
        return ChildProcess(processID: pid)
    }

    /// Asks the child to finish (SIGTERM).
    public func terminate() { kill(processID, SIGTERM) }

    /// Ends the child at once (SIGKILL).
    public func forceKill() { kill(processID, SIGKILL) }

    /// Reaps the child if it has ended, without waiting; nil while it runs. Once it has returned an
    /// exit, the process id is free for reuse: do not signal or reap it again.
    public func reapIfExited() -> Exit? {
        var status: Int32 = 0
        var usage = rusage()
        let reaped = retrying { wait4(processID, &status, WNOHANG, &usage) }
        guard reaped == processID else { return nil }
        func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
        // ru_maxrss is in kilobytes on Linux.
        return Exit(status: status, usage: ResourceUsage(userSeconds: seconds(usage.ru_utime), systemSeconds: seconds(usage.ru_stime),
                                                         peakResidentBytes: Int(usage.ru_maxrss) * 1024,
                                                         voluntaryContextSwitches: Int(usage.ru_nvcsw),
                                                         involuntaryContextSwitches: Int(usage.ru_nivcsw)))
    }
}
