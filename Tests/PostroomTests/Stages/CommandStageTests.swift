import Foundation
import PostroomSystem
import Testing
@testable import Postroom

/// The `command` stage with real programs (small shell scripts) on a real spool.
@Suite("command stage")
struct CommandStageTests {
    /// A fixture whose pipeline runs `script` (written beside the pipeline file as `t.sh`) as one command stage.
    static func fixture(_ script: String, mode: String = "check", extra: String = "", validate: String? = nil,
                        deliver: String? = nil, dryRun: Bool = false) throws -> StageFixture {
        let stages = #"{ stage: "command", name: "t", command: ["./t.sh", "{sender}", "{recipient}", "{queueid}"], mode: "\#(mode)", "#
            + #"timeout: "5s", \#(extra) },"#
        let fixture = try StageFixture(stages: stages, dryRun: dryRun, validate: validate, deliver: deliver)
        try writeScript(script, to: fixture.root + "/t.sh")
        return fixture
    }

    static func writeScript(_ body: String, to path: String) throws {
        try ("#!/bin/sh\n" + body + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: path)
    }

    static func exits(_ fixture: StageFixture, _ result: CommandMetrics.Result) -> Int {
        CommandMetrics(registry: fixture.runner.telemetry.registry, pipeline: "test", stage: "t").exits(result).value
    }

    /// Files in queue/incoming: the claimed file while the message waits, reports once one is sent.
    static func incoming(_ fixture: StageFixture) -> [String] { fixture.files(in: "queue/incoming").filter { !$0.hasPrefix(".") } }

    // MARK: Exit classes

    @Test(arguments: [
        // script, outcome (nil: forwarded), status of the report, metrics result
        ("exit 0", nil, nil, CommandMetrics.Result.pass),
        ("cat >/dev/null; echo '4.7.1 greylisted, try later'; exit 1", StageResult.Outcome.deferred, nil, .defer),
        ("exit 75", .deferred, nil, .defer),
        ("echo 'scanner busy' >&2; exit 71", .deferred, nil, .defer),
        ("echo '5.7.0 virus found: Eicar-Test-Signature'; exit 1", .reported, "5.7.0", .reject),
        ("echo 'not for us'; exit 3", .reported, "5.7.1", .reject),
        ("exit 64", .reported, "5.7.1", .reject),
        ("kill -9 $$", .deferred, nil, .signal),
    ] as [(String, StageResult.Outcome?, String?, CommandMetrics.Result)])
    func exitStatusDecides(script: String, outcome: StageResult.Outcome?, status: String?, result: CommandMetrics.Result) async throws {
        let fixture = try Self.fixture(script)
        defer { fixture.remove() }
        let message = testMessage()
        let last = try await fixture.run(message, through: "command")
        #expect(last.outcome == outcome)
        #expect(Self.exits(fixture, result) == 1, "postroom_command_exits_total{result=\(result.rawValue)}")
        let info = try #require(fixture.trackingEvents.first { $0.event == .agentInfo })
        #expect(info.source == .agent)
        #expect(info.reason?.hasPrefix("t: \(result.rawValue)") == true)
        let claimed = Self.incoming(fixture).filter { $0.contains(".pickup.") }
        switch outcome {
        case nil:
            let item = try #require(last.forwarded())
            #expect(item.bytes.count > message.utf8.count, "the validated message goes on")
            #expect(item.notes.last == "command t: passed")
        case .deferred:
            #expect(claimed.count == 1, "a deferred message stays claimed in queue/incoming")
            let deferral = try #require(fixture.trackingEvents.first { $0.event == .defer })
            if script.contains("4.7.1") { #expect(deferral.reason == "t: 4.7.1 greylisted, try later") }
            if script.contains("busy") { #expect(deferral.reason == "t: scanner busy", "standard error's first line is the reason") }
        case .reported:
            #expect(claimed.isEmpty, "a rejected message is released")
            #expect(Self.incoming(fixture).filter { $0.contains(".report.") }.count == 1, "one report to the sender")
            let failure = try #require(fixture.trackingEvents.first { $0.event == .fail })
            #expect(failure.status == status)
            if script.contains("virus") { #expect(failure.reason == "t: 5.7.0 virus found: Eicar-Test-Signature") }
            if script.contains("exit 64") { #expect(failure.reason == "t: t exited with status 64") }
        default:
            Issue.record("unexpected outcome")
        }
    }

    @Test func aMissingProgramDefersAndCheckSaysSo() async throws {
        let fixture = try Self.fixture("exit 0")
        defer { fixture.remove() }
        try FileManager.default.removeItem(atPath: fixture.root + "/t.sh")
        #expect(try await fixture.run(testMessage(), through: "command").outcome == .deferred)
        #expect(Self.exits(fixture, .unavailable) == 1)
        #expect(Self.incoming(fixture).count == 1, "the message waits for the program")
        let check = PipelineCheck.run(path: fixture.root + "/pipeline.json5", spoolOverride: fixture.spool)
        #expect(check.errors.map(\.description).contains { $0.contains("stages[2].command[0]: command program \(fixture.root)/./t.sh does not exist") },
                "\(check.errors)")
    }

    @Test func timeoutKillsTheProgramGroupAndDefers() async throws {
        let fixture = try StageFixture(stages: #"{ stage: "command", name: "t", command: ["./t.sh"], mode: "check", timeout: "1s" },"#)
        defer { fixture.remove() }
        try Self.writeScript("sleep 30 & echo $! > \"$PWD/sleep.pid\"; wait", to: fixture.root + "/t.sh")
        #expect(try await fixture.run(testMessage(), through: "command").outcome == .deferred)
        #expect(Self.exits(fixture, .timeout) == 1, "killed at its time limit, not ended by the 30 s sleep")
        // The whole group went: the background sleep too (reaped by init once killed).
        let pid = try fixture.read("sleep.pid").trimmingCharacters(in: .whitespacesAndNewlines)
        let deadline = ContinuousClock.now + .seconds(10)
        while FileManager.default.fileExists(atPath: "/proc/\(pid)/cmdline"),
              (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8))?.hasPrefix("sleep") == true, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect((try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8))?.hasPrefix("sleep") != true, "the background sleep was killed")
        #expect(fixture.trackingEvents.first { $0.event == .defer }?.reason == "t: t timed out after 1s")
    }

    @Test func onErrorPassLetsTheMessageThroughButARejectionStillRejects() async throws {
        let fixture = try Self.fixture("exit 75", extra: #"onError: "pass","#)
        defer { fixture.remove() }
        let item = try #require(try await fixture.run(testMessage(), through: "command").forwarded())
        #expect(item.notes.last == "command t: t exited with status 75; passed unchanged (onError: pass)")
        try Self.writeScript("echo '5.7.1 no'; exit 1", to: fixture.root + "/t.sh")
        #expect(try await fixture.run(testMessage(), name: "second.eml", through: "command").outcome == .reported)
    }

    // MARK: Filters

    @Test func aFilterAddsHeadersAndTheEnvelopeAndPlaceholdersReachIt() async throws {
        let fixture = try Self.fixture(#"""
            printf 'X-Args: %s\r\n' "$*"
            printf 'X-Env: %s %s %s\r\n' "$POSTROOM_SENDER" "$POSTROOM_RECIPIENTS" "$POSTROOM_STAGE"
            cat
            """#, mode: "filter")
        defer { fixture.remove() }
        let item = try #require(try await fixture.run(testMessage(to: "alice@example.com, bob@example.com"), through: "command").forwarded())
        let text = String(decoding: item.bytes, as: UTF8.self)
        #expect(text.hasPrefix("X-Args: sender@elsewhere.org alice@example.com bob@example.com \(item.queueID)\r\n"),
                "{recipient} is repeated once per recipient, as pipe(8) does")
        #expect(text.contains("X-Env: sender@elsewhere.org alice@example.com bob@example.com t\r\n"))
        #expect(item.size == Int64(item.bytes.count))
        #expect(item.notes.last == "command t: filtered")
        #expect(Self.exits(fixture, .pass) == 1)
    }

    @Test(arguments: [
        ("cat >/dev/null", "it wrote nothing"),
        ("true", "it wrote nothing"),
        ("cat >/dev/null; printf 'this is not a header\\r\\n\\r\\nbody\\r\\n'", "its output is not a message: header line 1 is not a header field"),
        ("cat >/dev/null; head -c 3000 /dev/urandom", "its output is not a message"),
        ("sed 's/^Message-ID:.*/Message-ID: <other@example.com>/'", "its output changed the Message-ID"),
        ("printf 'Bcc: hidden@example.com\\r\\n'; cat", "its output adds a Bcc field"),
        ("grep -v '^From:'", "its output has no From field"),
        ("printf 'X-Sender: <evil@example.com>\\r\\n'; cat", "its output adds a X-Sender field"),
        ("cat; printf 'bare\\rCR\\r\\n'", "its output body contains a carriage return (CR) not followed by a line feed"),
    ])
    func unusableFilterOutputIsRefusedAndDeferred(script: String, problem: String) async throws {
        let fixture = try Self.fixture(script, mode: "filter")
        defer { fixture.remove() }
        #expect(try await fixture.run(testMessage(), through: "command").outcome == .deferred)
        #expect(Self.exits(fixture, .invalidOutput) == 1)
        let reason = try #require(fixture.trackingEvents.first { $0.event == .defer }?.reason)
        #expect(reason.hasPrefix("t: t exited 0 but "))
        #expect(reason.contains(problem), "\(reason)")
        #expect(Self.incoming(fixture).count == 1, "the original stays queued")
    }

    @Test func aFailingFilterIsJudgedByItsFirstLineOnStandardErrorOrElseStandardOutput() async throws {
        let fixture = try Self.fixture("cat >/dev/null; echo '4.4.1 scanner unreachable' >&2; echo 'ignored'; exit 1", mode: "filter")
        defer { fixture.remove() }
        #expect(try await fixture.run(testMessage(), through: "command").outcome == .deferred)
        #expect(fixture.trackingEvents.first { $0.event == .defer }?.reason == "t: 4.4.1 scanner unreachable")
        try Self.writeScript("cat >/dev/null; echo '5.7.1 refused by policy'; exit 1", to: fixture.root + "/t.sh")
        #expect(try await fixture.run(testMessage(), name: "second.eml", through: "command").outcome == .reported)
        #expect(fixture.trackingEvents.first { $0.event == .fail }?.reason == "t: 5.7.1 refused by policy")
    }

    @Test func outputHeaderLimits() {
        let input = Array("From: a@example.com\r\nDate: Mon, 30 Nov 2026 09:00:00 +0000\r\nMessage-ID: <m@x>\r\n\r\nbody\r\n".utf8)
        func check(_ output: [UInt8]) -> String? {
            switch CommandOutputCheck.check(output: output, overflowed: false, input: input, messageID: "<m@x>", maxMessageSize: 1 << 20, maxHeaderSize: 1024) {
            case .success: return nil
            case .failure(let refusal): return refusal.description
            }
        }
        #expect(check(input) == nil)
        let grown = Array("X-Report: \(String(repeating: "x", count: 10_000))\r\n".utf8) + input
        #expect(check(grown) == nil, "16 KB of room for what a filter adds")
        let huge = Array("X-Report: \(String(repeating: "x", count: 20_000))\r\n".utf8) + input
        #expect(check(huge)?.hasPrefix("its output header is ") == true)
        #expect(check(Array("From sender Mon Nov 30 09:00:00 2026\r\n".utf8) + input)?.contains("mbox") == true)
        #expect(check(Array("Message-ID: <m@x>\r\n".utf8) + input) == "its output has 2 Message-ID fields")
    }

    @Test func aHugeOutputIsCutAtTheLimitAndRefused() async throws {
        // 64 MB written against a 1 MB maxMessageSize: the capture keeps 1 MB + 1 byte and drops the rest.
        let fixture = try Self.fixture("cat; head -c 67108864 /dev/zero | tr '\\0' 'x'", mode: "filter",
                                       validate: #"{ stage: "validate", maxMessageSize: "1MB" },"#)
        defer { fixture.remove() }
        #expect(try await fixture.run(testMessage(), through: "command").outcome == .deferred)
        let reason = try #require(fixture.trackingEvents.first { $0.event == .defer }?.reason)
        #expect(reason.contains("it wrote more than 1048576 bytes"), "\(reason)")
        // The bound itself, on the subprocess: what is kept never exceeds the limit.
        var request = SubprocessRequest(executable: "/bin/sh", arguments: ["sh", "-c", "head -c 67108864 /dev/zero; echo oops >&2"],
                                        environment: [], input: [], timeLimit: 30)
        request.separateErrorOutput = true
        request.outputLimit = 1 << 20
        let outcome = try await Subprocess.run(request).get()
        #expect(outcome.output.count == 1 << 20)
        #expect(outcome.outputOverflowed)
        #expect(outcome.errorOutput == Array("oops\n".utf8), "standard error is captured apart")
        #expect(outcome.termination == .exited(0))
    }

    @Test func aProgramThatReadsNothingAndExitsIsFine() async throws {
        // A 2 MB body the program never reads: the write ends with EPIPE, the exit status decides.
        let body = String(repeating: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n", count: 32 << 10)
        let fixture = try Self.fixture("exit 0")
        defer { fixture.remove() }
        let item = try #require(try await fixture.run(testMessage(body: body), through: "command").forwarded())
        #expect(item.bytes.count > body.utf8.count)
        try Self.writeScript("echo '5.7.1 refused unread'; exit 1", to: fixture.root + "/t.sh")
        #expect(try await fixture.run(testMessage(body: body), name: "second.eml", through: "command").outcome == .reported)
    }

    @Test func concurrencyRunsSeveralMessagesThroughTheProgramAtOnce() async throws {
        // Each run waits until three runs have started; with fewer at once it gives up with exit 75.
        let fixture = try Self.fixture("""
            cat >/dev/null
            mkdir -p "$HOME_DIR/started" && : > "$HOME_DIR/started/$POSTROOM_QUEUE_ID"
            i=0
            while [ "$(ls "$HOME_DIR/started" | wc -l)" -lt 3 ]; do i=$((i+1)); [ $i -gt 100 ] && exit 75; sleep 0.05; done
            exit 0
            """.replacingOccurrences(of: "$HOME_DIR", with: "$PWD"), extra: "concurrency: 3,")
        defer { fixture.remove() }
        var items: [PipelineItem] = []
        for index in 0..<3 { items.append(try #require(try await fixture.run(testMessage(), name: "m\(index).eml", through: "validate").forwarded())) }
        let stage = try #require(fixture.runner.stages.first { $0.name == "command" }?.stage)
        let outcomes = await withTaskGroup(of: Bool.self) { group in
            for item in items { group.addTask { (try? await stage.process(item))?.forwardedQuietly != nil } }
            return await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(outcomes == [true, true, true])
    }

    // MARK: The example script

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/python3"), "python3 is not installed; skipped"),
          arguments: [
        // header lines, body, whether the footer is added
        (["Content-Type: text/plain; charset=utf-8"], "Hi.\r\n", true),
        ([String](), "No MIME fields at all.\r\n", true),
        (["Content-Type: text/html"], "<p>Hi.</p>\r\n", false),
        (["Content-Type: text/plain", "Content-Transfer-Encoding: base64"], "SGku\r\n", false),
        (["X-Disclaimer: added"], "Came round again.\r\n", false),
        (["Content-Type: multipart/alternative; boundary=\"a\""], "--a\r\nContent-Type: text/plain\r\n\r\nHi.\r\n--a--\r\n", false),
    ])
    func disclaimerScriptAddsTheFooterOnlyWhereMIMEAllows(headers: [String], body: String, added: Bool) async throws {
        let script = StageFixture.packageRoot + "/pipelines/examples/disclaimer.py"
        let fixture = try StageFixture(stages: #"{ stage: "command", name: "t", command: ["\#(script)", "footer.txt"], mode: "filter" },"#)
        defer { fixture.remove() }
        try "Sent by a test.\n".write(toFile: fixture.spool + "/footer.txt", atomically: true, encoding: .utf8)
        let validated = try #require(try await fixture.run(testMessage(headers: headers, body: body), through: "validate").forwarded())
        let stage = try #require(fixture.runner.stages.first { $0.name == "command" }?.stage)
        let item = try #require(try await stage.process(validated).forwarded())
        let text = String(decoding: item.bytes, as: UTF8.self)
        if added {
            #expect(text.hasSuffix(body + "\r\n-- \r\nSent by a test.\r\n"), "\(text)")
            #expect(text.contains("\r\nX-Disclaimer: added\r\n\r\n"))
        } else {
            #expect(item.bytes == validated.bytes, "passed unchanged")
        }
    }

    // MARK: Deferral over time

    @Test func backoffIsTheAgeBoundedByTheRetrySettings() {
        #expect(CommandStage.backoff(age: 0, first: 60, max: 3600) == 60)
        #expect(CommandStage.backoff(age: 300, first: 60, max: 3600) == 300)
        #expect(CommandStage.backoff(age: 86400, first: 60, max: 3600) == 3600)
        let id = QueueID.next()
        #expect(CommandStage.age(ofQueueID: id, now: Date()) < 5)
        #expect(abs(CommandStage.age(ofQueueID: id, now: Date(timeIntervalSinceNow: 600)) - 600) < 5)
        #expect(CommandStage.age(ofQueueID: "EXPLAIN", now: Date()) == 0)
    }

    @Test func aMessageDeferredPastExpireAfterIsReportedWith447() async throws {
        let fixture = try Self.fixture("exit 75", deliver: #"{ stage: "deliver", expireAfter: "1h" },"#)
        defer { fixture.remove() }
        var item = try #require(try await fixture.run(testMessage(), through: "validate").forwarded())
        // A queue id is the claim time in microseconds: this one was claimed two hours ago.
        item.claimed.queueID = String(UInt64((Date().timeIntervalSince1970 - 7200) * 1_000_000), radix: 16, uppercase: true)
        let stage = try #require(fixture.runner.stages.first { $0.name == "command" }?.stage)
        #expect(try await stage.process(item).outcome == .reported)
        let failure = try #require(fixture.trackingEvents.first { $0.event == .fail })
        #expect(failure.status == "4.4.7")
        #expect(failure.reason?.contains("message expired after 3600s in command stage t: t exited with status 75") == true)
    }

    // MARK: Dry run and configuration

    @Test func explainRunsTheFilterOnACopyAndWritesNothing() async throws {
        let fixture = try Self.fixture(#"printf 'X-Dry: %s\r\n' "$POSTROOM_DRY_RUN"; cat"#, mode: "filter", dryRun: true)
        defer { fixture.remove() }
        let item = try #require(try await fixture.run(testMessage(), through: "command").forwarded())
        #expect(String(decoding: item.bytes, as: UTF8.self).hasPrefix("X-Dry: 1\r\n"))
        #expect(item.notes.last == "command t: filtered (added X-Dry)", "explain shows what the filter changed")
        #expect(!fixture.trackingEvents.contains { $0.source == .agent }, "no AGENTINFO in a dry run")
        #expect(Self.exits(fixture, .pass) == 0, "a dry run counts nothing")
    }

    @Test(arguments: [
        (#"{ stage: "command", command: [], mode: "check" },"#, "stages[2].command: command is the program and its arguments"),
        (#"{ stage: "command", command: ["x"], mode: "rewrite" },"#, "stages[2].mode: unknown mode 'rewrite' (known: filter, check)"),
        (#"{ stage: "command", command: ["x"] },"#, "stages[2].mode: required key is missing"),
        (#"{ stage: "command", command: ["x"], mode: "check", concurrency: 0 },"#, "stages[2].concurrency: must be from 1 to 32"),
        (#"{ stage: "command", command: ["x"], mode: "check", onError: "ignore" },"#, "stages[2].onError: unknown onError 'ignore' (known: defer, pass)"),
        (#"{ stage: "command", command: ["x"], mode: "check", timeout: 0 },"#, "stages[2].timeout: the time limit must be more than 0"),
        (#"{ stage: "command", command: ["x"], mode: "check", name: "two words" },"#, "stages[2].name: a stage name is one word"),
        (#"{ stage: "command", command: ["x"], mode: "check", shell: true },"#, "stages[2].shell: unknown key"),
    ])
    func configurationErrors(stages: String, expected: String) {
        let error = StageFixture.decodeError(stages: stages)
        #expect(error?.contains(expected) == true, "\(error ?? "no error")")
    }

    @Test func aCommandStageBeforeValidateIsRefused() throws {
        let before = StageFixture.pipelineText(stages: "").replacingOccurrences(
            of: #"{ stage: "validate" },"#, with: #"{ stage: "command", command: ["cat"], mode: "filter" }, { stage: "validate" },"#)
        let root = NSTemporaryDirectory() + "postroom-cmd-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/spool", withIntermediateDirectories: true)
        try before.write(toFile: root + "/p.json5", atomically: true, encoding: .utf8)
        #expect(throws: ConfigError.self) {
            _ = try PipelineRunner(pipeline: try PipelineFile.load(path: root + "/p.json5"), spool: root + "/spool", log: Logger(minimum: .error))
        }
    }
}

extension StageResult {
    /// The forwarded item, or nil without recording an issue.
    var forwardedQuietly: PipelineItem? {
        if case .forward(let item) = self { return item }
        return nil
    }
}
