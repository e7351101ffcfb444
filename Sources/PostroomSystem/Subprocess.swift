import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One run of an external program: what to run, what to feed it and how long it may take.
///
/// The program is started with `posix_spawn` from an argv array, never through a shell,
/// so nothing in an argument (an address, a queue id) is ever interpreted.
public struct SubprocessRequest: Sendable {
    /// The file to execute (already resolved: Postroom does its own `PATH` search).
    public var executable: String
    /// `argv`, including `argv[0]`.
    public var arguments: [String]
    /// The complete environment, as `NAME=value`; nothing is inherited from the daemon.
    public var environment: [String]
    /// The working directory of the child (nil: the daemon's).
    public var workingDirectory: String?
    /// Bytes written to the child's standard input, which is then closed.
    public var input: [UInt8]
    /// Seconds the child may run before its process group gets SIGTERM.
    public var timeLimit: Double
    /// Seconds between SIGTERM and SIGKILL on a time-out.
    public var killGrace: Double = 2
    /// How many bytes of standard output and error (one stream) are kept; the rest is read and dropped.
    /// With ``separateErrorOutput``, the limit of standard output alone.
    public var outputLimit: Int = 4096
    /// Standard error goes to a pipe of its own (``SubprocessOutcome/errorOutput``) instead of
    /// sharing standard output's: for programs whose standard output is data (a mail filter).
    public var separateErrorOutput = false
    /// How many bytes of a separate standard error are kept.
    public var errorLimit: Int = 4096

    public init(executable: String, arguments: [String], environment: [String], workingDirectory: String? = nil,
                input: [UInt8], timeLimit: Double) {
        self.executable = executable
        self.arguments = arguments
        self.environment = environment
        self.workingDirectory = workingDirectory
        self.input = input
        self.timeLimit = timeLimit
    }
}

/// How a finished subprocess ended, and what it said.
public struct SubprocessOutcome: Sendable, Equatable {
    /// Why the child stopped.
    public enum Termination: Sendable, Equatable {
        /// It called `exit` with this status.
        case exited(Int32)
        /// A signal it did not expect ended it (not ours).
        case signalled(Int32)
        /// It outlived its time limit and its process group was killed.
        case timedOut
        /// Something else reaped it (a SIGCHLD set to SIG_IGN, a stray `waitpid(-1)`): the
        /// outcome is unknown and must not be taken for success.
        case statusLost
    }

    public var termination: Termination
    /// The first `outputLimit` bytes of standard output and standard error, interleaved as written
    /// (standard output only when the request separated standard error).
    public var output: [UInt8]
    /// The first `errorLimit` bytes of standard error when the request separated it; else empty.
    public var errorOutput: [UInt8] = []
    /// True when the program wrote more than `outputLimit` bytes to `output`'s stream: the
    /// excess was read and dropped, so memory stays bounded whatever the program writes.
    public var outputOverflowed = false
    /// The child's process id (also its process group id); gone by the time this is returned.
    public var processID: pid_t
}

/// Runs programs without a shell, on a thread of their own, and never leaves a zombie behind.
///
/// Guarantees:
/// - the child gets only the descriptors 0, 1, 2 (pipes); everything else is closed
///   (`posix_spawn_file_actions_addclosefrom_np`, and Postroom opens its files `O_CLOEXEC`);
/// - the child starts in a process group of its own, with default signal dispositions and
///   an empty signal mask: the daemon ignores SIGPIPE, SIGTERM, SIGHUP and SIGINT, and
///   ignored dispositions would otherwise be inherited across `exec`;
/// - standard input is written without blocking, so a child that never reads it cannot
///   deadlock the run; a child that exits early just ends the write (EPIPE, never SIGPIPE:
///   SIGPIPE is ignored process-wide before the first spawn);
/// - on a time-out the whole group gets SIGTERM, then SIGKILL after `killGrace`; the group is
///   killed before the leader is reaped, so its id cannot have been reused by then;
/// - the waiting happens on a dedicated thread, not on Swift's cooperative pool nor the
///   shared ``BlockingPool`` (a run may last minutes and must not stall fsyncs).
public enum Subprocess {
    /// Runs the request to completion on a new thread; failures to start are returned, not thrown.
    public static func run(_ request: SubprocessRequest) async -> Result<SubprocessOutcome, SystemError> {
        await withCheckedContinuation { continuation in
            let thread = Thread { continuation.resume(returning: runBlocking(request)) }
            thread.name = "postroom-agent"
            thread.start()
        }
    }

    /// Runs the request on the calling thread, which blocks until the child is reaped.
    public static func runBlocking(_ request: SubprocessRequest) -> Result<SubprocessOutcome, SystemError> {
        ignoreBrokenPipes()
        let input: (read: Int32, write: Int32)
        let output: (read: Int32, write: Int32)
        var errors: (read: Int32, write: Int32)?
        do {
            input = try makePipe()
        } catch {
            return .failure(error)
        }
        do {
            output = try makePipe()
        } catch {
            close(input.read)
            close(input.write)
            return .failure(error)
        }
        if request.separateErrorOutput {
            do {
                errors = try makePipe()
            } catch {
                for fd in [input.read, input.write, output.read, output.write] { close(fd) }
                return .failure(error)
            }
        }
        let stderrFD = errors?.write ?? output.write
        var spawned = spawn(request, stdin: input.read, stdout: output.write, stderr: stderrFD)
        // ETXTBSY: some process holds the program open for writing. Usually that is a
        // concurrent fork (ours or another thread's) that inherited a descriptor of a script
        // being installed and has not reached exec yet: it clears within milliseconds.
        var attempts = 1
        while case .failure(let error) = spawned, error.errno == ETXTBSY, attempts < 20 {
            usleep(10_000)
            attempts += 1
            spawned = spawn(request, stdin: input.read, stdout: output.write, stderr: stderrFD)
        }
        // The child has its own copies; keeping ours would hide EOF on the output pipe.
        close(input.read)
        close(output.write)
        if let errors { close(errors.write) }
        let pid: pid_t
        switch spawned {
        case .success(let child):
            pid = child
        case .failure(let error):
            close(input.write)
            close(output.read)
            if let errors { close(errors.read) }
            return .failure(error)
        }
        setNonBlocking(input.write)
        setNonBlocking(output.read)
        if let errors { setNonBlocking(errors.read) }
        let outcome = supervise(pid: pid, request: request, input: input.write, output: output.read, errors: errors?.read)
        return .success(outcome)
    }

    // MARK: Supervision

    /// Feeds input, collects output and enforces the time limit until the child has exited.
    private static func supervise(pid: pid_t, request: SubprocessRequest, input inputFD: Int32, output outputFD: Int32,
                                  errors errorFD: Int32?) -> SubprocessOutcome {
        var inputFD: Int32? = inputFD
        var outputFD: Int32? = outputFD
        var errorFD: Int32? = errorFD
        var written = 0
        var captured: [UInt8] = []
        var capturedErrors: [UInt8] = []
        var overflowed = false
        captured.reserveCapacity(min(request.outputLimit, 4096))
        var buffer = [UInt8](repeating: 0, count: 16384)
        if request.input.isEmpty, let fd = inputFD { close(fd); inputFD = nil }

        /// Reads what one pipe has now (at most `reads` times) into `sink`, up to `limit`
        /// bytes; the rest is dropped. Closes the pipe at EOF.
        func drain(_ pipe: inout Int32?, into sink: inout [UInt8], limit: Int, overflow: inout Bool, reads: Int) {
            var reads = reads
            while let fd = pipe, reads > 0 {
                reads -= 1
                let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if count > 0 {
                    let room = limit - sink.count
                    if room > 0 { sink += buffer[0..<min(room, count)] }
                    if count > room { overflow = true }
                } else if count == 0 || (errno != EINTR && errno != EAGAIN) {
                    close(fd)
                    pipe = nil
                } else if errno == EAGAIN {
                    return
                }
            }
        }

        /// Reads what is available now on both output pipes.
        func drainOutput(reads: Int = .max) {
            drain(&outputFD, into: &captured, limit: request.outputLimit, overflow: &overflowed, reads: reads)
            var ignored = false
            drain(&errorFD, into: &capturedErrors, limit: request.errorLimit, overflow: &ignored, reads: reads)
        }

        /// Writes what the pipe takes now; stops for good when the child closed its end.
        func feedInput() {
            while let fd = inputFD, written < request.input.count {
                let count = request.input.withUnsafeBytes { write(fd, $0.baseAddress! + written, $0.count - written) }
                if count > 0 {
                    written += count
                } else if count < 0 && errno == EAGAIN {
                    return
                } else if !(count < 0 && errno == EINTR) {
                    // EPIPE: the child does not want (more of) the message; its exit status decides.
                    break
                }
            }
            if let fd = inputFD { close(fd); inputFD = nil }
        }

        let deadline = monotonicSeconds() + request.timeLimit
        var killDeadline = Double.infinity
        var timedOut = false
        // Child exit is detected by polling waitid; the interval starts short (a typical agent
        // exits in milliseconds) and grows while nothing happens, up to 100 ms.
        var idleWait = 0.001
        while !hasExited(pid) {
            let now = monotonicSeconds()
            if !timedOut, now >= deadline {
                timedOut = true
                signalGroup(pid, SIGTERM)
                killDeadline = now + request.killGrace
            } else if timedOut, now >= killDeadline {
                signalGroup(pid, SIGKILL)
                killDeadline = .infinity
            }
            let wake = min(timedOut ? killDeadline : deadline, now + idleWait)
            var descriptors: [pollfd] = []
            if let fd = inputFD { descriptors.append(pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)) }
            if let fd = outputFD { descriptors.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)) }
            if let fd = errorFD { descriptors.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)) }
            let ready = pollDescriptors(&descriptors, timeout: max(0, wake - now))
            if ready > 0 {
                idleWait = 0.001
                feedInput()
                drainOutput()
            } else {
                idleWait = min(idleWait * 2, 0.1)
            }
        }
        if timedOut {
            // Stragglers of the group (a `sleep` under a killed shell) go too, while the
            // unreaped leader still reserves the group id.
            signalGroup(pid, SIGKILL)
        }
        // What the child wrote before exiting is in the pipe now; a grandchild that keeps the
        // pipe open and keeps writing must not hold the run, hence the bound.
        drainOutput(reads: 64)
        if let fd = outputFD { close(fd) }
        if let fd = errorFD { close(fd) }
        if let fd = inputFD { close(fd) }
        let status = reap(pid)
        let termination: SubprocessOutcome.Termination
        if timedOut {
            termination = .timedOut
        } else if let status, status & 0x7f == 0 {
            termination = .exited((status >> 8) & 0xff)
        } else if let status {
            termination = .signalled(status & 0x7f)
        } else {
            termination = .statusLost
        }
        return SubprocessOutcome(termination: termination, output: captured, errorOutput: capturedErrors,
                                 outputOverflowed: overflowed, processID: pid)
    }

    // MARK: Glibc, wrapped once

    /// SIGPIPE would kill the daemon when a child closes its standard input early; ignoring it
    /// process-wide turns that into EPIPE from `write`. Done once, before the first spawn.
    private static let brokenPipesIgnored: Bool = {
        signal(SIGPIPE, SIG_IGN)
        return true
    }()

    static func ignoreBrokenPipes() { _ = brokenPipesIgnored }

    /// Optional glibc extensions (2.29 and 2.34) that the Glibc module map does not expose.
    private struct Extensions: @unchecked Sendable {
        // @unchecked: immutable C function pointers resolved once.
        typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32
        typealias ChangeDirectory = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, UnsafePointer<CChar>?) -> Int32
        let closeFrom: CloseFrom?
        let changeDirectory: ChangeDirectory?

        static let shared: Extensions = {
            let handle = dlopen(nil, RTLD_NOW)
            return Extensions(
                closeFrom: dlsym(handle, "posix_spawn_file_actions_addclosefrom_np").map { unsafeBitCast($0, to: CloseFrom.self) },
                changeDirectory: dlsym(handle, "posix_spawn_file_actions_addchdir_np").map { unsafeBitCast($0, to: ChangeDirectory.self) })
        }()
    }

    /// A pipe whose ends are close-on-exec and numbered 3 or above, so `dup2` onto 0, 1, 2 never collides.
    private static func makePipe() throws(SystemError) -> (read: Int32, write: Int32) {
        var ends: [Int32] = [0, 0]
        guard pipe(&ends) == 0 else { throw SystemError(operation: "pipe", path: "", errno: errno) }
        for index in 0..<2 {
            if ends[index] < 3 {
                let moved = fcntl(ends[index], F_DUPFD_CLOEXEC, Int32(3))
                let error = errno
                close(ends[index])
                guard moved >= 0 else {
                    close(ends[1 - index])
                    throw SystemError(operation: "pipe", path: "", errno: error)
                }
                ends[index] = moved
            } else {
                _ = fcntl(ends[index], F_SETFD, FD_CLOEXEC)
            }
        }
        return (ends[0], ends[1])
    }

    private static func setNonBlocking(_ fd: Int32) {
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
    }

    /// `posix_spawn` with the pipes on 0, 1 and 2, a new process group and default signals.
    private static func spawn(_ request: SubprocessRequest, stdin: Int32, stdout: Int32, stderr: Int32) -> Result<pid_t, SystemError> {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigfillset(&defaults)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attributes, &mask)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, stdin, 0)
        posix_spawn_file_actions_adddup2(&actions, stdout, 1)
        posix_spawn_file_actions_adddup2(&actions, stderr, 2)
        if let closeFrom = Extensions.shared.closeFrom { _ = closeFrom(&actions, 3) }
        if let directory = request.workingDirectory {
            guard let changeDirectory = Extensions.shared.changeDirectory else {
                return .failure(SystemError(operation: "posix_spawn_file_actions_addchdir_np", path: directory, errno: ENOSYS))
            }
            _ = changeDirectory(&actions, directory)
        }

        let argv = cStrings(request.arguments)
        let envp = cStrings(request.environment)
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, request.executable, &actions, &attributes, argv, envp)
        guard result == 0 else { return .failure(SystemError(operation: "spawn", path: request.executable, errno: result)) }
        return .success(pid)
    }

    /// A NULL-terminated array of `strdup`ed strings; the caller frees each element.
    private static func cStrings(_ strings: [String]) -> [UnsafeMutablePointer<CChar>?] {
        strings.map { strdup($0) } + [nil]
    }

    /// True once the child has exited; it stays a zombie (WNOWAIT) so its pid cannot be reused yet.
    private static func hasExited(_ pid: pid_t) -> Bool {
        var info = siginfo_t()
        while true {
            let result = waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT)
            if result == 0 { return info._sifields._sigchld.si_pid == pid }
            if errno != EINTR { return true }  // ECHILD: nothing left to wait for
        }
    }

    /// Waits for the child and returns its raw wait status (nil when it was reaped elsewhere).
    private static func reap(_ pid: pid_t) -> Int32? {
        var status: Int32 = 0
        while true {
            if waitpid(pid, &status, 0) == pid { return status }
            if errno != EINTR { return nil }
        }
    }

    private static func signalGroup(_ group: pid_t, _ signal: Int32) {
        _ = kill(-group, signal)
    }

    private static func pollDescriptors(_ descriptors: inout [pollfd], timeout seconds: Double) -> Int32 {
        let milliseconds = Int32(min(seconds * 1000, 1000).rounded(.up))
        let result = poll(&descriptors, nfds_t(descriptors.count), milliseconds)
        return result < 0 ? 0 : result
    }

    private static func monotonicSeconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }
}
