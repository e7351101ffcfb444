import Foundation
import Postroom
import PostroomSystem
import Inotify
import Synchronization

/// `postroom bench`: measures a pipeline end to end, the way a producer and a mail reader see it.
///
/// The pipeline runs as a child process (`postroom run PIPELINE --spool TMP`), not inside the
/// bench: the daemon's peak RSS is then its own (`ru_maxrss` from `wait4`), free of the
/// generator's buffers, and the work is split between processes exactly as in production.
/// The bench writes each message to a staging folder beside the spool and renames it into
/// `pickup/` (write temp + rename, as a producer should), records the instant the rename
/// returned (the daemon's `IN_MOVED_TO`), and watches the Maildir `new/` folders with inotify
/// for the delivered copies. A message's latency is the time from its rename into pickup until
/// its last recipient's copy is renamed into `new/`.
///
/// Three modes: a burst (every message renamed in as fast as possible: throughput), an
/// open-loop arrival rate (`--rate`: latency under a steady load), and a backlog (`--backlog`:
/// pickup filled before the daemon starts: start-up time and memory over a large backlog).
public enum Bench {
    /// What one bench run does, parsed from the command line.
    public struct Options: Sendable, Equatable {
        /// Messages in the measured run.
        public var messages = 1000
        /// Approximate size of each generated message in bytes (header and body).
        public var size = 4096
        /// Recipients per generated message: the first `recipients` of ``users``.
        public var recipients = 1
        /// Open-loop arrival rate in messages per second; nil sends a burst.
        public var rate: Double?
        /// The pipeline file the daemon runs.
        public var pipeline = CommandLineInterface.defaultPipeline
        /// A folder of ready-made `.eml` files to drop instead of generating messages.
        public var from: String?
        /// Mailbox names the generated messages are addressed to, at the first accepted domain.
        public var users = ["alice", "bob", "carol", "postmaster"]
        /// Keep the temporary spool (and the daemon's log) after the run.
        public var keep = false
        /// Fill pickup before the daemon starts and measure the start-up over that backlog.
        public var backlog = false
        /// Give up when the deliveries take longer than this many seconds.
        public var timeout: Double = 600
        /// The recipients' domain (default: the pipeline's first accepted domain).
        public var domain: String?
        /// The Maildir an SMTP relay delivers into: watched instead of the pipeline's own
        /// mailboxes, to measure a pipeline whose last hop is an smtp connector.
        public var relayMaildir: String?

        public init() {}

        /// Parses `postroom bench` arguments; `--help` is handled by the caller.
        public init(arguments words: [String]) throws(Arguments.UsageError) {
            let arguments = try Arguments(words, options: ["--messages", "--size", "--recipients", "--rate", "--pipeline", "--from", "--users", "--timeout", "--domain", "--relay-maildir"],
                                          flags: ["--keep", "--backlog", "--help", "-h"])
            guard arguments.positional.isEmpty else {
                throw Arguments.UsageError(description: "unexpected argument \(arguments.positional[0])")
            }
            func integer(_ name: String, minimum: Int) throws(Arguments.UsageError) -> Int? {
                guard let text = arguments[name] else { return nil }
                guard let value = Int(text), value >= minimum else {
                    throw Arguments.UsageError(description: "\(name) needs a whole number of at least \(minimum), not '\(text)'")
                }
                return value
            }
            messages = try integer("--messages", minimum: 1) ?? messages
            size = try integer("--size", minimum: 256) ?? size
            recipients = try integer("--recipients", minimum: 1) ?? recipients
            if let text = arguments["--rate"] {
                guard let value = Double(text), value > 0, value.isFinite else {
                    throw Arguments.UsageError(description: "--rate needs a positive number of messages per second, not '\(text)'")
                }
                rate = value
            }
            if let text = arguments["--timeout"] {
                guard let value = Double(text), value > 0, value.isFinite else {
                    throw Arguments.UsageError(description: "--timeout needs a positive number of seconds, not '\(text)'")
                }
                timeout = value
            }
            if let list = arguments["--users"] {
                users = list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                guard !users.isEmpty else { throw Arguments.UsageError(description: "--users needs at least one mailbox name") }
            }
            guard recipients <= users.count else {
                throw Arguments.UsageError(description: "--recipients \(recipients) needs as many --users; there are \(users.count) (\(users.joined(separator: ",")))")
            }
            pipeline = arguments["--pipeline"] ?? pipeline
            domain = arguments["--domain"]
            relayMaildir = arguments["--relay-maildir"]
            from = arguments["--from"]
            keep = arguments.has("--keep")
            backlog = arguments.has("--backlog")
            if backlog, rate != nil {
                throw Arguments.UsageError(description: "--backlog and --rate exclude each other: a backlog is there before the daemon starts")
            }
        }
    }

    static let help = """
    usage: postroom bench [--messages N] [--size BYTES] [--recipients K] [--rate R] [--pipeline FILE]
                          [--from DIR] [--users a,b,c] [--backlog] [--keep] [--timeout SECONDS]

    Runs PIPELINE (default \(CommandLineInterface.defaultPipeline)) as a child `postroom run` on a
    temporary spool, drops messages into pickup/ as a producer would (write to a staging
    folder, rename in), waits until every copy is in its Maildir new/ folder, and prints
    throughput, latency percentiles and the daemon's peak RSS.

      --messages N      messages in the measured run (default 1000)
      --size BYTES      approximate size of each generated message (default 4096)
      --recipients K    recipients per message, the first K of --users (default 1: alice)
      --users LIST      mailbox names at the first accepted domain (default alice,bob,carol,postmaster)
      --rate R          open-loop arrivals at R msgs/s (latency); without it, a burst (throughput)
      --from DIR        drop the .eml files of DIR (sorted by name) instead of generating
                        messages; each needs a Message-ID, and its To/Cc count the copies to expect
      --backlog         put every message in pickup/ before the daemon starts; reports the time
                        from start to first delivery and to the last
      --keep            keep the temporary spool and the daemon's log
      --timeout S       give up after S seconds of waiting (default 600)
      --domain D        address the messages to D instead of the first accepted domain
      --relay-maildir M measure an smtp last hop: watch the Maildir M (its new/) that the
                        smart host delivers into, instead of the pipeline's mailboxes
                        (Benchmarks/compare.sh sets up Postfix for this)
    POSTROOM_BENCH_DAEMON=PATH runs PATH as the daemon instead of this executable (another
                        build, or a wrapper script that runs it under strace or perf)

    Latency of a message: from its rename into pickup/ to the rename of its last copy into
    new/, seen by the bench through inotify. Peak RSS and CPU: the daemon's own, from the
    rusage wait4 returns when it exits (CPU per message: its whole user + system time, start-up,
    probe and shutdown included, divided by the measured messages).
    The last line is machine-readable:
      RESULT postroom mode=burst messages=N deliveries=D seconds=S msgs_per_s=X p50_ms=.. p90_ms=.. p99_ms=.. max_ms=.. peak_rss_mb=..
             cpu_ms_per_msg=.. cpu_user_ms_per_msg=.. cpu_sys_ms_per_msg=.. csw_per_msg=..
    """

    /// Runs `postroom bench` with its arguments.
    public static func main(_ words: [String]) async -> ExitCode {
        if words.contains("--help") || words.contains("-h") {
            print(help)
            return .ok
        }
        let options: Options
        do {
            options = try Options(arguments: words)
        } catch {
            printError("postroom bench: \(error)\n\n\(help)")
            return .usage
        }
        do {
            return try await BenchRun(options: options).run()
        } catch let failure as BenchFailure {
            printError("postroom bench: \(failure.description)")
            return failure.exitCode
        } catch {
            printError("postroom bench: \(error)")
            return .temporaryFailure
        }
    }
}

/// Why a bench run could not finish.
struct BenchFailure: Error, CustomStringConvertible {
    let description: String
    var exitCode: ExitCode = .temporaryFailure
}

/// One execution of `postroom bench`.
struct BenchRun {
    let options: Bench.Options

    func run() async throws -> ExitCode {
        let pipelinePath = absolute(options.pipeline)
        let pipeline: PipelineFile
        do { pipeline = try PipelineFile.load(path: pipelinePath) } catch {
            throw BenchFailure(description: "\(error)", exitCode: .userError)
        }
        guard let ingest = pipeline.stages.first?.settings as? IngestSettings, let pickupName = ingest.pickup else {
            throw BenchFailure(description: "\(pipelinePath): the first stage must be ingest with a pickup directory", exitCode: .userError)
        }
        let maildir = pipeline.connectors.first(where: { $0.type == .maildir })
        guard maildir != nil || options.relayMaildir != nil else {
            throw BenchFailure(description: "\(pipelinePath): bench measures Maildir delivery and the pipeline has no maildir connector (or give --relay-maildir)", exitCode: .userError)
        }
        let domain = options.domain ?? pipeline.settings(CategorizeSettings.self)?.acceptedDomains.first ?? maildir?.domains.first ?? "example.com"

        let work = try makeWorkDirectory()
        let spool = work + "/spool"
        let staging = work + "/staging"
        let daemonLog = work + "/daemon.log"
        let pickup = resolvePath(pickupName, against: spool)
        var keep = options.keep
        defer {
            if keep { print("kept: \(work) (spool, staging, daemon.log)") } else { try? FileManager.default.removeItem(atPath: work) }
        }
        try FileSystem.createDirectory(pickup)
        try FileSystem.createDirectory(staging)

        // The delivered copies are watched where the connector will put them, so the folders
        // are made first (as the connector would, mode 0700) and the watches exist before any mail.
        let template = maildir?.path ?? "mailboxes/{user}"
        let mailboxUsers = options.relayMaildir == nil ? Set(options.users + ["postmaster"]) : []
        var newFolders: [String] = []
        if let relay = options.relayMaildir {
            // An smtp last hop: the copies arrive in the relay's Maildir (made by whoever runs the relay).
            guard FileSystem.status(of: relay + "/new", followLinks: true)?.kind == .directory else {
                throw BenchFailure(description: "--relay-maildir \(relay) has no new/ folder; create the Maildir the relay delivers into first", exitCode: .userError)
            }
            newFolders.append(relay + "/new")
        }
        for user in mailboxUsers.sorted() {
            let folder = resolvePath(template.replacingOccurrences(of: "{user}", with: user), against: spool)
            for sub in ["tmp", "new", "cur"] { try FileSystem.createDirectory(folder + "/" + sub, mode: 0o700) }
            newFolders.append(folder + "/new")
        }
        let watcher = try DeliveryWatcher(folders: newFolders)
        let watching = Task.detached { await watcher.watch() }
        defer { watcher.close() }

        let probe = try stageProbe(staging: staging, domain: domain)
        let messages = try stageMessages(staging: staging, domain: domain)
        let expected = messages.reduce(0) { $0 + $1.copies }
        // Flush the staged files now, so the daemon's fsyncs do not pay for the bench's writes.
        sync()

        // POSTROOM_BENCH_DAEMON runs another daemon (another build, or a wrapper under strace or perf).
        let executable = ProcessInfo.processInfo.environment["POSTROOM_BENCH_DAEMON"]
            ?? (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let daemonArguments = ["run", pipelinePath, "--spool", spool]
        var sent = [ContinuousClock.Instant?](repeating: nil, count: messages.count)
        var first: ContinuousClock.Instant
        let daemon: ChildDaemon
        var deliveredBefore = 0

        if options.backlog {
            for message in messages { try FileSystem.rename(message.staged, to: pickup + "/" + message.name) }
            sync()
            daemon = try ChildDaemon.spawn(executable: executable, arguments: daemonArguments, log: daemonLog)
            first = daemon.started
        } else {
            daemon = try ChildDaemon.spawn(executable: executable, arguments: daemonArguments, log: daemonLog)
            // One probe message proves the daemon is watching and warms it up; it is not counted.
            try FileSystem.rename(probe.staged, to: pickup + "/" + probe.name)
            do {
                try await waitFor(1, watcher: watcher, daemon: daemon, since: .now, log: daemonLog)
            } catch {
                keep = true
                throw error
            }
            deliveredBefore = watcher.count
            first = .now
            if let rate = options.rate {
                // Open loop: message i is due at first + i/rate whatever the daemon is doing,
                // so a slow daemon meets a growing queue instead of a politely waiting producer.
                let interval = Duration.nanoseconds(Int64(1e9 / rate))
                for (index, message) in messages.enumerated() {
                    let due = first + interval * index
                    if due > .now { try? await Task.sleep(until: due, tolerance: .microseconds(100), clock: .continuous) }
                    try FileSystem.rename(message.staged, to: pickup + "/" + message.name)
                    sent[index] = .now
                }
            } else {
                for (index, message) in messages.enumerated() {
                    try FileSystem.rename(message.staged, to: pickup + "/" + message.name)
                    sent[index] = .now
                }
            }
        }

        do {
            try await waitFor(deliveredBefore + expected, watcher: watcher, daemon: daemon, since: first, log: daemonLog)
        } catch {
            keep = true
            _ = await daemon.stop(timeout: .seconds(5))
            throw error
        }
        let stopped = await daemon.stop()
        watcher.close()
        await watching.value
        if stopped.status != 0 {
            printError("postroom bench: the daemon exited with status \(stopped.status); its log is \(daemonLog)")
            keep = true
        }

        let report = try tally(messages: messages, sent: sent, probe: probe, watcher: watcher, first: first, daemonStart: daemon.started)
        print(render(report, pipeline: pipelinePath, peakRSS: stopped.peakRSS, overflows: watcher.overflows, usage: stopped.usage))
        return .ok
    }

    // MARK: Preparation

    func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    }

    func makeWorkDirectory() throws -> String {
        let base = ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"
        do {
            return try FileSystem.makeTemporaryDirectory(in: base, prefix: "postroom-bench")
        } catch {
            throw BenchFailure(description: "cannot create a temporary directory: \(error)")
        }
    }

    func stageProbe(staging: String, domain: String) throws -> StagedMessage {
        let id = "<bench-probe.\(FileSystem.processID)@postroom.bench>"
        let bytes = MessageGenerator.message(index: -1, messageID: id, recipients: [options.users[0] + "@" + domain], size: 1024)
        let path = staging + "/bench-probe.eml"
        try FileSystem.writeAtomically(bytes, to: path, sync: false)
        return StagedMessage(staged: path, name: "bench-probe.eml", messageID: id, copies: 1)
    }

    /// Writes every message of the run into the staging folder before the clock starts.
    func stageMessages(staging: String, domain: String) throws -> [StagedMessage] {
        var staged: [StagedMessage] = []
        if let from = options.from {
            let names = try FileSystem.contents(of: from).filter { $0.hasSuffix(".eml") }.sorted()
            guard !names.isEmpty else { throw BenchFailure(description: "\(from) holds no .eml files", exitCode: .userError) }
            for name in names {
                let bytes = try FileSystem.readFile(from + "/" + name)
                let header = MessageGenerator.header(of: bytes)
                guard let id = header.messageID else {
                    throw BenchFailure(description: "\(from)/\(name) has no Message-ID; bench matches delivered copies by it", exitCode: .userError)
                }
                let path = staging + "/" + name
                try FileSystem.writeAtomically(bytes, to: path, sync: false)
                staged.append(StagedMessage(staged: path, name: name, messageID: id, copies: max(1, header.recipients)))
            }
            return staged
        }
        let recipients = options.users.prefix(options.recipients).map { $0 + "@" + domain }
        let tag = "\(FileSystem.processID).\(Int(Date().timeIntervalSince1970))"
        for index in 0..<options.messages {
            let id = "<bench.\(index).\(tag)@postroom.bench>"
            let name = String(format: "msg-%07d.eml", index)
            let path = staging + "/" + name
            try FileSystem.writeAtomically(MessageGenerator.message(index: index, messageID: id, recipients: Array(recipients), size: options.size), to: path, sync: false)
            staged.append(StagedMessage(staged: path, name: name, messageID: id, copies: recipients.count))
        }
        return staged
    }

    /// Waits until `target` copies are delivered, the daemon dies, or the timeout passes.
    func waitFor(_ target: Int, watcher: DeliveryWatcher, daemon: ChildDaemon, since start: ContinuousClock.Instant, log: String) async throws {
        let deadline = start + .milliseconds(Int64(options.timeout * 1000))
        // Polling costs the bench a wake-up every few milliseconds but never skews a figure:
        // the instants come from the watcher, not from this loop.
        while watcher.count < target {
            if let status = daemon.exitedEarly() {
                throw BenchFailure(description: "the daemon exited (status \(status)) after \(watcher.count) of \(target) deliveries; see \(log)")
            }
            if ContinuousClock.now > deadline {
                throw BenchFailure(description: "timed out after \(options.timeout) s with \(watcher.count) of \(target) deliveries; see \(log)")
            }
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    // MARK: Results

    struct Report {
        var mode: String
        var messages: Int
        var deliveries: Int
        var seconds: Double
        var latencies: [Double]
        var firstDelivery: Double?
        var unmatched: Int
    }

    /// Matches delivered copies to messages by Message-ID; a message is done at its last copy.
    func tally(messages: [StagedMessage], sent: [ContinuousClock.Instant?], probe: StagedMessage, watcher: DeliveryWatcher,
               first: ContinuousClock.Instant, daemonStart: ContinuousClock.Instant) throws -> Report {
        var index: [String: Int] = [:]
        for (position, message) in messages.enumerated() { index[message.messageID] = position }
        var last = [ContinuousClock.Instant?](repeating: nil, count: messages.count)
        var copies = [Int](repeating: 0, count: messages.count)
        var unmatched = 0
        var deliveries = 0
        var end = first
        var earliest: ContinuousClock.Instant?
        for delivery in watcher.deliveries {
            let bytes = (try? FileSystem.readFile(delivery.folder + "/" + delivery.name, limit: 16 * 1024)) ?? []
            guard let id = MessageGenerator.header(of: bytes).messageID, let position = index[id] else {
                if MessageGenerator.header(of: bytes).messageID != probe.messageID { unmatched += 1 }
                continue
            }
            deliveries += 1
            copies[position] += 1
            if last[position].map({ delivery.at > $0 }) ?? true { last[position] = delivery.at }
            if delivery.at > end { end = delivery.at }
            if earliest.map({ delivery.at < $0 }) ?? true { earliest = delivery.at }
        }
        var latencies: [Double] = []
        if !options.backlog {
            for position in messages.indices {
                guard let done = last[position], let start = sent[position] else { continue }
                latencies.append(milliseconds(done - start))
            }
        }
        let mode = options.backlog ? "backlog" : options.rate == nil ? "burst" : "rate"
        return Report(mode: mode, messages: messages.count, deliveries: deliveries, seconds: milliseconds(end - first) / 1000,
                      latencies: latencies.sorted(), firstDelivery: options.backlog ? earliest.map { milliseconds($0 - daemonStart) / 1000 } : nil,
                      unmatched: unmatched)
    }

    func milliseconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
    }

    /// Nearest-rank percentile of sorted values.
    static func percentile(_ sorted: [Double], _ fraction: Double) -> Double? {
        guard !sorted.isEmpty else { return nil }
        let rank = Int((fraction * Double(sorted.count)).rounded(.up))
        return sorted[min(max(rank, 1), sorted.count) - 1]
    }

    func render(_ report: Report, pipeline: String, peakRSS: Int, overflows: Int, usage: ResourceUsage) -> String {
        func number(_ value: Double?, _ digits: Int = 2) -> String { value.map { String(format: "%.\(digits)f", $0) } ?? "NA" }
        let throughput = report.seconds > 0 ? Double(report.messages) / report.seconds : 0
        let p50 = Self.percentile(report.latencies, 0.50), p90 = Self.percentile(report.latencies, 0.90)
        let p99 = Self.percentile(report.latencies, 0.99), max = report.latencies.last
        let rss = Double(peakRSS) / 1_048_576
        var what = options.from.map { "messages from \($0)" } ?? "\(options.recipients) recipient(s) each, ~\(options.size) bytes"
        what += ", " + (options.backlog ? "backlog in pickup before start" : options.rate.map { "open loop at \(number($0, 0)) msgs/s" } ?? "burst")
        var lines = [
            "postroom bench: \(report.messages) messages (\(what))",
            "  pipeline          \(pipeline), daemon as a child process",
            "  delivered         \(report.deliveries) copies in \(number(report.seconds, 3)) s",
            "  throughput        \(number(throughput, 1)) msgs/s",
        ]
        if let first = report.firstDelivery { lines.append("  first delivery    \(number(first, 3)) s after the daemon started") }
        if !report.latencies.isEmpty {
            lines.append("  latency (ms)      p50 \(number(p50))  p90 \(number(p90))  p99 \(number(p99))  max \(number(max))")
        }
        lines.append("  peak RSS          \(number(rss, 1)) MB (daemon ru_maxrss)")
        lines.append(Self.cpuLine(usage, messages: report.messages))
        if overflows > 0 { lines.append("  note              the bench's inotify queue overflowed \(overflows) time(s); some latencies are upper bounds") }
        if report.unmatched > 0 { lines.append("  note              \(report.unmatched) delivered file(s) matched no message (reports?)") }
        var result = "RESULT postroom mode=\(report.mode) messages=\(report.messages) deliveries=\(report.deliveries) seconds=\(number(report.seconds, 3)) msgs_per_s=\(number(throughput, 1))"
        result += " p50_ms=\(number(p50)) p90_ms=\(number(p90)) p99_ms=\(number(p99)) max_ms=\(number(max)) peak_rss_mb=\(number(rss, 1))"
        if let first = report.firstDelivery { result += " first_delivery_s=\(number(first, 3))" }
        result += Self.cpuFields(usage, messages: report.messages)
        lines.append(result)
        return lines.joined(separator: "\n")
    }
}
