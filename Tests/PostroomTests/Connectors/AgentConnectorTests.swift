import Foundation
import PostroomSystem
import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import Postroom

/// A temporary folder with generated agent scripts, removed at the end of the test.
final class AgentSandbox {
    let folder: String

    init() throws {
        folder = NSTemporaryDirectory() + "postroom-agent-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: folder) }

    /// Writes an executable `/bin/sh` script and returns its path.
    @discardableResult
    func script(_ name: String, _ body: String, executable: Bool = true) throws -> String {
        let path = folder + "/" + name
        try Data(("#!/bin/sh\n" + body + "\n").utf8).write(to: URL(fileURLWithPath: path))
        chmod(path, executable ? 0o755 : 0o644)
        return path
    }

    /// A connector running `command` with the sandbox as spool (working directory) and configuration folder.
    func connector(_ command: [String], timeout: String? = nil) throws -> AgentConnector {
        var object: [String: Any] = ["name": "sms", "type": "agent", "addressSpaces": ["SMS:*;1"], "command": command]
        if let timeout { object["timeout"] = timeout }
        let data = try JSONSerialization.data(withJSONObject: object)
        let configuration = try ConfigFile.decode(ConnectorConfiguration.self, from: data, file: "test.json5")
        return AgentConnector(configuration: configuration, spool: folder, configurationFolder: folder)
    }

    func read(_ name: String) -> String {
        (try? String(contentsOfFile: folder + "/" + name, encoding: .utf8)) ?? ""
    }
}

func agentEntry(sender: String = "alice@example.com", recipients: [String] = ["SMS:+15551230"]) -> QueueEntry {
    QueueEntry(id: "0000000001A.1", queueID: "0000000001A", connector: "sms",
               envelope: Envelope(sender: sender, recipients: recipients.map { EnvelopeRecipient(address: $0) }),
               mailboxes: [:], messageID: "<m1@example.com>", source: .replay, arrival: Date(), size: 0)
}

let sampleMessage = Array("Subject: hello\r\n\r\nCall me.\r\n".utf8)

/// The state letter of a process from /proc (R, S, Z, ...), or nil when it no longer exists.
func processState(_ pid: pid_t) -> Character? {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return nil }
    return stat[stat.index(close, offsetBy: 2)...].first
}

@Suite("Agent connector")
struct AgentConnectorTests {
    struct ExitCase: Sendable, CustomTestStringConvertible {
        let status: Int32
        let output: String
        let expected: DeliveryResult
        var testDescription: String { "exit \(status) \"\(output)\"" }
    }

    @Test("exit status and first output line decide, as pipe(8) and sysexits", arguments: [
        ExitCase(status: 0, output: "", expected: .delivered),
        ExitCase(status: 0, output: "5.1.1 ignored when the command succeeds", expected: .delivered),
        ExitCase(status: 75, output: "gateway busy", expected: .deferred("gateway busy")),
        ExitCase(status: 75, output: "", expected: .deferred("exit 75")),
        ExitCase(status: 71, output: "fork failed", expected: .deferred("fork failed")),
        ExitCase(status: 64, output: "bad number", expected: .failed(status: "5.3.0", diagnostic: "bad number")),
        ExitCase(status: 64, output: "", expected: .failed(status: "5.3.0", diagnostic: "agent exited with status 64")),
        ExitCase(status: 64, output: "5.1.3 invalid SMS number", expected: .failed(status: "5.1.3", diagnostic: "5.1.3 invalid SMS number")),
        ExitCase(status: 1, output: "4.2.2 phone memory full", expected: .deferred("4.2.2 phone memory full")),
        ExitCase(status: 75, output: "5.1.1 no such subscriber", expected: .failed(status: "5.1.1", diagnostic: "5.1.1 no such subscriber")),
        ExitCase(status: 64, output: "5.1 not a code", expected: .failed(status: "5.3.0", diagnostic: "5.1 not a code")),
    ])
    func exitStatus(_ exitCase: ExitCase) async throws {
        let sandbox = try AgentSandbox()
        let script = try sandbox.script("agent.sh", "printf '%s\\n' \"$1\"\nexit \(exitCase.status)")
        let connector = try sandbox.connector([script, exitCase.output])
        let results = await connector.deliver(agentEntry(), message: sampleMessage)
        #expect(results == [exitCase.expected])
    }

    @Test("a command killed by a signal is deferred")
    func killedBySignal() async throws {
        let sandbox = try AgentSandbox()
        let script = try sandbox.script("agent.sh", "echo dying >&2\nkill -KILL $$")
        let results = try await sandbox.connector([script]).deliver(agentEntry(), message: sampleMessage)
        #expect(results == [.deferred("agent killed by signal 9: dying")])
    }

    @Test("an agent that times out shows what it printed in the deferral reason")
    func timeoutShowsOutput() async throws {
        let sandbox = try AgentSandbox()
        // What Postfix's sendmail prints when NoNewPrivileges keeps postdrop from its setgid group.
        let script = try sandbox.script("hang.sh", "echo 'postdrop: warning: mail_queue_enter: create file maildrop/1234: Permission denied' >&2\necho 'second line'\nexec sleep 30")
        let results = await (try sandbox.connector([script], timeout: "300ms")).deliver(agentEntry(), message: sampleMessage)
        #expect(results == [.deferred("agent timed out after 0.3s; its output: postdrop: warning: mail_queue_enter: create file maildrop/1234: Permission denied | second line")])
    }

    @Test("a command over its time limit is deferred and its whole process group is gone, even when it ignores SIGTERM")
    func timeout() async throws {
        let sandbox = try AgentSandbox()
        // `trap '' TERM` makes the shell and its `sleep` ignore SIGTERM: only SIGKILL ends them.
        let script = try sandbox.script("slow.sh", "trap '' TERM\necho $$ > shell.pid\nsleep 600 &\necho $! > sleep.pid\nwait")
        let connector = try sandbox.connector([script], timeout: "500ms")
        let started = ContinuousClock.now
        let results = await connector.deliver(agentEntry(), message: sampleMessage)
        #expect(results == [.deferred("agent timed out after 0.5s without output")])
        // Without the time limit the script would run its full 600 s; anything well short proves the kill
        // (the bound is generous: under a full parallel suite the test's own tasks wait for two cores).
        #expect(ContinuousClock.now - started < .seconds(300))
        for file in ["shell.pid", "sleep.pid"] {
            let pid = try #require(pid_t(sandbox.read(file).trimmingCharacters(in: .whitespacesAndNewlines)))
            // The killed `sleep` is re-parented; a reaper may not have collected it yet, but it no longer runs.
            try await waitForState(pid, file)
        }
    }

    private func waitForState(_ pid: pid_t, _ what: String) async throws {
        let deadline = ContinuousClock.now + .seconds(5)
        while let state = processState(pid), state != "Z" {
            if ContinuousClock.now > deadline { Issue.record("\(what) \(pid) still runs (state \(state))"); return }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    @Test("the message arrives on stdin; placeholders, environment and working directory are as documented")
    func stdinPlaceholdersEnvironment() async throws {
        let sandbox = try AgentSandbox()
        let script = try sandbox.script("agent.sh", """
            cat > stdin.out
            for argument in "$@"; do printf '%s\\n' "$argument"; done > args.out
            env > env.out
            pwd > pwd.out
            """)
        let connector = try sandbox.connector([script, "{recipient}", "{sender}", "{queueid}", "{messageid}", "to={recipient};id={queueid}", "{unknown}", "{sender"])
        let entry = agentEntry(sender: "{recipient}@example.com")
        let results = await connector.deliver(entry, message: sampleMessage)
        #expect(results == [.delivered])
        #expect(Array(sandbox.read("stdin.out").utf8) == sampleMessage)
        #expect(sandbox.read("args.out") == """
            SMS:+15551230
            {recipient}@example.com
            0000000001A.1
            <m1@example.com>
            to=SMS:+15551230;id=0000000001A.1
            {unknown}
            {sender

            """)
        let environment = Set(sandbox.read("env.out").split(separator: "\n").map(String.init))
        for expected in ["PATH=\(AgentConnector.searchPath)", "HOME=/", "POSTROOM_SENDER={recipient}@example.com",
                         "POSTROOM_RECIPIENT=SMS:+15551230", "POSTROOM_QUEUE_ID=0000000001A.1"] {
            #expect(environment.contains(expected))
        }
        // Nothing of the daemon's own environment leaks; the shell itself may add PWD, SHLVL, OLDPWD or _.
        let names = Set(environment.compactMap { $0.split(separator: "=", maxSplits: 1).first.map(String.init) })
        #expect(names.subtracting(["PATH", "HOME", "POSTROOM_SENDER", "POSTROOM_RECIPIENT", "POSTROOM_QUEUE_ID", "PWD", "SHLVL", "OLDPWD", "_"]).isEmpty)
        #expect(sandbox.read("pwd.out").trimmingCharacters(in: .newlines) == URL(fileURLWithPath: sandbox.folder).resolvingSymlinksInPath().path)
    }

    @Test("the null sender is an empty argument; each recipient gets a run of its own")
    func nullSenderAndRecipients() async throws {
        let sandbox = try AgentSandbox()
        let script = try sandbox.script("agent.sh", "printf '[%s] %s\\n' \"$1\" \"$2\" >> runs.out\n[ \"$2\" = bad ] && exit 64\nexit 0")
        let connector = try sandbox.connector([script, "{sender}", "{recipient}"])
        let results = await connector.deliver(agentEntry(sender: "", recipients: ["one", "bad", "three"]), message: sampleMessage)
        #expect(results == [.delivered, .failed(status: "5.3.0", diagnostic: "agent exited with status 64"), .delivered])
        #expect(sandbox.read("runs.out") == "[] one\n[] bad\n[] three\n")
    }

    @Test("a missing, non-executable or unknown program defers with a reason the operator can act on")
    func missingProgram() async throws {
        let sandbox = try AgentSandbox()
        try sandbox.script("plain.sh", "exit 0", executable: false)
        let cases: [([String], String)] = [
            ([sandbox.folder + "/absent.sh"], "agent program \(sandbox.folder)/absent.sh does not exist"),
            (["plain.sh"], "is not in PATH"),
            (["./plain.sh"], "agent program \(sandbox.folder)/./plain.sh is not executable"),
            ([sandbox.folder], "is not a regular file"),
        ]
        for (command, reason) in cases {
            let results = try await sandbox.connector(command).deliver(agentEntry(), message: sampleMessage)
            guard case .deferred(let text)? = results.first else { Issue.record("\(command): \(results)"); continue }
            #expect(text.contains(reason), "\(command): \(text)")
        }
    }

    @Test("a relative program path resolves against the pipeline file's folder")
    func relativeProgram() async throws {
        let sandbox = try AgentSandbox()
        try FileManager.default.createDirectory(atPath: sandbox.folder + "/examples", withIntermediateDirectories: true)
        try sandbox.script("examples/agent.sh", "exit 0")
        let results = try await sandbox.connector(["examples/agent.sh"]).deliver(agentEntry(), message: sampleMessage)
        #expect(results == [.delivered])
    }

    // A deadlock would hang here; the time limit turns that into a failure (it is not a speed check).
    @Test("a command that never reads stdin does not deadlock on a large message", .timeLimit(.minutes(1)))
    func neverReadsStdin() async throws {
        let sandbox = try AgentSandbox()
        let message = Array(repeating: UInt8(ascii: "x"), count: 8 << 20)
        let quick = try sandbox.script("quick.sh", "echo ignoring input\nexit 0")
        let lingering = try sandbox.script("lingering.sh", "sleep 0.3\nexit 75")
        #expect(try await sandbox.connector([quick], timeout: "20s").deliver(agentEntry(), message: message) == [.delivered])
        #expect(try await sandbox.connector([lingering], timeout: "20s").deliver(agentEntry(), message: message) == [.deferred("exit 75")])
    }

    @Test("output is captured from stdout and stderr, bounded, and a chatty command still finishes")
    func boundedOutput() async throws {
        let outcome = try await Subprocess.run(SubprocessRequest(
            executable: "/bin/sh", arguments: ["sh", "-c", "echo first >&2; head -c 1000000 /dev/zero; exit 3"],
            environment: ["PATH=/usr/bin:/bin"], input: [], timeLimit: 20)).get()
        #expect(outcome.termination == .exited(3))
        #expect(outcome.output.count == 4096)
        #expect(AgentConnector.firstLine(of: outcome.output) == "first")
    }

    @Test("the child inherits only descriptors 0, 1 and 2")
    func noDescriptorLeak() async throws {
        // Deliberately without O_CLOEXEC: posix_spawn must still not pass it on.
        let leaky = open("/dev/null", O_RDONLY)
        defer { close(leaky) }
        let outcome = try await Subprocess.run(SubprocessRequest(
            executable: "/bin/sh", arguments: ["sh", "-c", "exec ls /proc/self/fd"],
            environment: ["PATH=/usr/bin:/bin"], input: [], timeLimit: 20)).get()
        let descriptors = Set(String(decoding: outcome.output, as: UTF8.self).split(separator: "\n").compactMap { Int32($0) })
        // `ls` itself holds one descriptor open for the listing.
        #expect(descriptors.subtracting([0, 1, 2]).count <= 1)
        #expect(!descriptors.contains(leaky) || leaky <= 3)
    }

    @Test("RFC 3463 codes at the start of a line are recognised, other text is not")
    func enhancedStatusCodes() {
        #expect(AgentConnector.enhancedStatusCode(at: "5.1.1 user unknown") == "5.1.1")
        #expect(AgentConnector.enhancedStatusCode(at: "4.2.2") == "4.2.2")
        #expect(AgentConnector.enhancedStatusCode(at: "5.7.123 policy") == "5.7.123")
        #expect(AgentConnector.enhancedStatusCode(at: "2.0.0 ok") == nil)
        #expect(AgentConnector.enhancedStatusCode(at: "5.1.1234 too long") == nil)
        #expect(AgentConnector.enhancedStatusCode(at: "5.1.1: glued") == nil)
        #expect(AgentConnector.enhancedStatusCode(at: "error 5.1.1") == nil)
    }

    @Test("placeholders are replaced in one pass")
    func substitution() {
        let values = ["recipient": "{sender}", "sender": "s"]
        #expect(AgentConnector.substitute("{recipient}/{sender}", values) == "{sender}/s")
        #expect(AgentConnector.substitute("{}{{sender}}", values) == "{}{s}")
    }
}
