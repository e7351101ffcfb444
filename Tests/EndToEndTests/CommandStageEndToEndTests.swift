import Foundation
import Testing

/// Real programs as `command` stages, through the real binary: SpamAssassin, DKIM and the
/// disclaimer script, each with its example pipeline from `pipelines/`.
enum ExternalTools {
    static let spamAssassin = FileManager.default.isExecutableFile(atPath: "/usr/sbin/spamd")
        && FileManager.default.isExecutableFile(atPath: "/usr/bin/spamc")
    static let dkim = FileManager.default.isExecutableFile(atPath: "/usr/bin/dkimsign")
        && FileManager.default.isExecutableFile(atPath: "/usr/bin/dknewkey") && run("/usr/bin/python3", ["-c", "import dkim"]).status == 0
    static let python = FileManager.default.isExecutableFile(atPath: "/usr/bin/python3")

    /// Runs a program to completion; standard input from `input`.
    @discardableResult
    static func run(_ program: String, _ arguments: [String], input: Data? = nil, directory: String? = nil) -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: program)
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let out = Pipe()
        let inPipe = Pipe()
        process.standardOutput = out
        process.standardError = out
        process.standardInput = inPipe
        guard (try? process.run()) != nil else { return (-1, "cannot run \(program)") }
        if let input { inPipe.fileHandleForWriting.write(input) }
        try? inPipe.fileHandleForWriting.close()
        let output = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }

    /// True when something accepts TCP connections on 127.0.0.1:`port`.
    static func canConnect(port: UInt16) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    /// A TCP port on 127.0.0.1 that nothing listens on now (the kernel's choice for port 0).
    static func freeLoopbackPort() -> UInt16? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        return bound ? UInt16(bigEndian: address.sin_port) : nil
    }
}

/// A harness running a copy of `pipelines/<name>` (with the directory file and the examples
/// beside it), text replaced.
func exampleHarness(_ name: String, replacing replacements: [(String, String)]) throws -> Harness {
    let harness = try Harness()
    let source = Harness.packageRoot + "/pipelines"
    let folder = harness.root + "/pipelines"
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    try FileManager.default.copyItem(atPath: source + "/directory.json5", toPath: folder + "/directory.json5")
    try FileManager.default.copyItem(atPath: source + "/examples", toPath: folder + "/examples")
    var text = try String(contentsOfFile: source + "/" + name, encoding: .utf8)
    for (old, new) in replacements {
        #expect(text.contains(old), "pipelines/\(name) no longer contains \(old); update this test")
        text = text.replacingOccurrences(of: old, with: new)
    }
    try text.write(toFile: folder + "/" + name, atomically: true, encoding: .utf8)
    harness.pipeline = folder + "/" + name
    return harness
}

func maildirNew(_ harness: Harness, _ user: String) -> [String] {
    harness.files(under: "mailboxes/\(user)").filter { $0.contains("/new/") }
}

@Suite(.serialized) struct CommandStageEndToEndTests {
    static let gtube = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

    @Test(.enabled(if: ExternalTools.spamAssassin, "SpamAssassin is not installed (apt-get install spamassassin spamd spamc); skipped"))
    func spamAssassinFlagsGTUBEWhichIsHeldAndLetsACleanMessageThrough() async throws {
        // spamd from a temporary directory on a free loopback port, local tests only (-L: no DNS).
        let work = NSTemporaryDirectory() + "postroom-spamd-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        defer { try? FileManager.default.removeItem(atPath: work) }
        let port = try #require(ExternalTools.freeLoopbackPort())
        let spamd = Process()
        spamd.executableURL = URL(fileURLWithPath: "/usr/sbin/spamd")
        spamd.arguments = ["-L", "-x", "-i", "127.0.0.1:\(port)", "-A", "127.0.0.1", "-m", "2", "--min-spare=1", "--max-spare=2",
                           "-r", work + "/spamd.pid", "-s", "stderr", "-H", work]
        spamd.currentDirectoryURL = URL(fileURLWithPath: work)
        let spamdLog = FileManager.default.createFile(atPath: work + "/spamd.log", contents: nil) ? try FileHandle(forWritingTo: URL(fileURLWithPath: work + "/spamd.log")) : nil
        spamd.standardOutput = spamdLog
        spamd.standardError = spamdLog
        try spamd.run()
        defer {
            // SIGKILL to the whole group (Foundation starts the child in a group of its own): spamd
            // inherits the test runner's blocked SIGTERM, and its children must go too.
            kill(-spamd.processIdentifier, SIGKILL)
            spamd.waitUntilExit()
        }
        try await waitUntil("spamd to listen on port \(port)", timeout: 40) { !spamd.isRunning || ExternalTools.canConnect(port: port) }
        #expect(spamd.isRunning, "spamd exited: \((try? String(contentsOfFile: work + "/spamd.log", encoding: .utf8)) ?? "")")

        let harness = try exampleHarness("spamassassin.json5", replacing: [(#""-p", "783""#, #""-p", "\#(port)""#)])
        try await harness.start()
        try harness.drop("From: Alice <alice@example.com>\r\nTo: bob@example.com\r\nSubject: you won\r\nX-Spam-Flag: NO\r\n\r\n\(Self.gtube)\r\n",
                         named: "spam.eml")
        try harness.drop("From: Alice <alice@example.com>\r\nTo: carol@example.com\r\nSubject: lunch\r\n\r\nShall we have lunch at noon tomorrow?\r\n",
                         named: "clean.eml")
        try await waitUntil("the clean message in carol's Maildir", timeout: 60) { maildirNew(harness, "carol").count == 1 }
        try await waitUntil("the spam held in queue/hold", timeout: 60) { harness.queued("hold").count == 1 }
        let clean = try String(contentsOfFile: harness.spool + "/" + maildirNew(harness, "carol")[0], encoding: .utf8)
        #expect(clean.contains("X-Spam-Flag: NO") || clean.contains("X-Spam-Status: No"), "spamc scored it: \(clean)")
        #expect(clean.contains("Shall we have lunch"))
        #expect(maildirNew(harness, "bob").isEmpty, "spam is quarantined, not delivered")
        let hold = harness.trackingLines("HOLD")
        #expect(hold.count == 1 && hold[0].contains("quarantined: SpamAssassin flagged it as spam"), "\(hold)")
        #expect(harness.trackingLines("AGENTINFO").filter { $0.contains("spamc: pass") }.count == 2)
        // The held copy carries spamc's verdict, not the producer's forged X-Spam-Flag: NO.
        let held = try String(decoding: Data(contentsOf: URL(fileURLWithPath: harness.spool + "/queue/hold/" + harness.queued("hold")[0])), as: UTF8.self)
        #expect(held.contains("X-Spam-Flag: YES"))
        #expect(!held.contains("X-Spam-Flag: NO"), "the headers stage removed the producer's own X-Spam-* fields")
        #expect(held.contains("GTUBE"))
        #expect(try await harness.stop() == 0)
        let metrics = try String(contentsOfFile: harness.spool + "/metrics.prom", encoding: .utf8)
        #expect(metrics.contains(#"postroom_command_exits_total{pipeline="spamassassin",result="pass",stage="spamc"} 2"#), "\(metrics)")
        if let promtool = ObservabilityEndToEndTests.promtool {
            let check = ExternalTools.run(promtool, ["check", "metrics"], input: Data(metrics.utf8))
            #expect(check.status == 0, "promtool rejects metrics.prom: \(check.output)")
        }
    }

    @Test(.enabled(if: ExternalTools.dkim, "python3-dkim is not installed (apt-get install python3-dkim); skipped"))
    func dkimSignedMailWithADisclaimerVerifiesInTheMaildir() async throws {
        let harness = try exampleHarness("dkim.json5", replacing: [("/etc/postroom/dkim/postroom.key", "KEYDIR/postroom.key")])
        let keys = harness.root + "/dkim"
        try FileManager.default.createDirectory(atPath: keys, withIntermediateDirectories: true)
        let made = ExternalTools.run("/usr/bin/dknewkey", ["postroom"], directory: keys)
        #expect(made.status == 0, "dknewkey: \(made.output)")
        let pipelineText = try String(contentsOfFile: harness.pipeline, encoding: .utf8).replacingOccurrences(of: "KEYDIR", with: keys)
        try pipelineText.write(toFile: harness.pipeline, atomically: true, encoding: .utf8)
        // dkimverify as shipped, with the DNS lookup answered from the generated postroom.dns record.
        let verifier = harness.root + "/verify.py"
        try """
            import sys, dkim, dkim.dkimverify
            record = open(sys.argv[1], 'rb').read().strip()
            def lookup(name, timeout=5):
                return record if name == b'postroom._domainkey.example.com.' else None
            dkim.DKIM.verify.__defaults__ = (0, lookup)
            sys.argv = ['dkimverify']
            dkim.dkimverify.main()
            """.write(toFile: verifier, atomically: true, encoding: .utf8)

        try await harness.start()
        try harness.drop("From: Alice <alice@example.com>\r\nTo: bob@example.com\r\nSubject: signed\r\n\r\nPlease sign this.\r\n", named: "plain.eml")
        try harness.drop("""
            From: Alice <alice@example.com>\r
            To: carol@example.com\r
            Subject: with attachment\r
            MIME-Version: 1.0\r
            Content-Type: multipart/mixed; boundary="b1"\r
            \r
            --b1\r
            Content-Type: text/plain\r
            \r
            See the attachment.\r
            --b1\r
            Content-Type: application/octet-stream\r
            Content-Transfer-Encoding: base64\r
            \r
            AAECAwQ=\r
            --b1--\r

            """, named: "mixed.eml")
        try await waitUntil("both messages delivered", timeout: 60) { maildirNew(harness, "bob").count == 1 && maildirNew(harness, "carol").count == 1 }
        #expect(try await harness.stop() == 0)

        for user in ["bob", "carol"] {
            let path = harness.spool + "/" + maildirNew(harness, user)[0]
            let delivered = try Data(contentsOf: URL(fileURLWithPath: path))
            let text = String(decoding: delivered, as: UTF8.self)
            #expect(text.hasPrefix("Return-Path: <alice@example.com>"), "Maildir delivery prepends its fields")
            #expect(text.contains("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com"))
            #expect(text.contains("X-Disclaimer: added"))
            #expect(text.contains("If it reached you by mistake"))
            let verified = ExternalTools.run("/usr/bin/python3", [verifier, keys + "/postroom.dns"], input: delivered)
            #expect(verified.status == 0 && verified.output.contains("signature ok"), "\(user): \(verified.output)")
            // The check is real: one changed body byte fails it.
            let tampered = Data(text.replacingOccurrences(of: "mistake", with: "mistakes").utf8)
            #expect(ExternalTools.run("/usr/bin/python3", [verifier, keys + "/postroom.dns"], input: tampered).status != 0)
        }
        // MIME respected: the footer is a new part before the closing boundary; the attachment is untouched.
        let mixed = try String(contentsOfFile: harness.spool + "/" + maildirNew(harness, "carol")[0], encoding: .utf8)
        let parts = mixed.components(separatedBy: "--b1\r\n")
        #expect(parts.count == 4, "three parts: text, attachment, footer")
        #expect(parts.last?.hasPrefix("Content-Type: text/plain; charset=utf-8\r\n") == true)
        #expect(mixed.contains("AAECAwQ=\r\n--b1\r\nContent-Type: text/plain; charset=utf-8"))
        #expect(mixed.hasSuffix("--b1--\r\n"))
        let plain = try String(contentsOfFile: harness.spool + "/" + maildirNew(harness, "bob")[0], encoding: .utf8)
        #expect(plain.contains("Please sign this.\r\n\r\n-- \r\nThis message comes from example.com."))
        #expect(harness.trackingLines("AGENTINFO").count == 4, "two stages, two messages")
    }

    @Test func explainRunsTheFilterAndCheckFindsAMissingProgram() throws {
        let harness = try Harness()
        let pipeline = try harness.useDefaultPipeline(replacing: [
            (#"{ stage: "route" },"#, #"{ stage: "route" }, { stage: "command", name: "scan", command: ["./scan.sh"], mode: "filter" },"#),
        ])
        let script = harness.root + "/scan.sh"
        try "#!/bin/sh\nprintf 'X-Scanned: %s\\r\\n' \"${POSTROOM_DRY_RUN:-no}\"\ncat\n".write(toFile: script, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: script)
        let message = harness.root + "/m.eml"
        try "From: Alice <alice@example.com>\r\nTo: bob@example.com\r\nSubject: x\r\n\r\nHi.\r\n".write(toFile: message, atomically: true, encoding: .utf8)
        let explained = try runPostroom(["explain", pipeline, message])
        #expect(explained.status == 0, "\(explained.error)")
        #expect(explained.output.contains("command scan: filtered (added X-Scanned)"), "\(explained.output)")
        #expect(explained.output.contains("bob@example.com => mailbox"))
        #expect(harness.files(under: "").isEmpty, "explain writes nothing")

        let checked = try harness.command(["check", pipeline])
        #expect(checked.status == 0, "\(checked.output)\(checked.error)")
        try FileManager.default.removeItem(atPath: script)
        let missing = try harness.command(["check", pipeline])
        #expect(missing.status == 1)
        #expect(missing.error.contains("stages[4].command[0]: command program \(harness.root)/./scan.sh does not exist"), "\(missing.error)")
    }

    @Test func aDeferredMessageSurvivesKillNineAndIsDeliveredWhenTheProgramRecovers() async throws {
        // A check that defers (exit 75) while a flag file exists, as a scanner whose daemon is down would.
        let harness = try Harness()
        try harness.useDefaultPipeline(replacing: [
            (#"{ stage: "route" },"#, #"{ stage: "route" }, { stage: "command", name: "gate", command: ["./gate.sh"], mode: "check", timeout: "5s" },"#),
            (#"retry: { first: "1m", max: "1h" }"#, #"retry: { first: "1s", max: "2s" }"#),
        ])
        let script = harness.root + "/gate.sh"
        try "#!/bin/sh\ncat >/dev/null\nif [ -e \"$PWD/down\" ]; then echo '4.3.0 scanner down'; exit 75; fi\nexit 0\n"
            .write(toFile: script, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: script)
        #expect(FileManager.default.createFile(atPath: harness.spool + "/down", contents: nil))
        try await harness.start()
        try harness.drop("From: Alice <alice@example.com>\r\nTo: bob@example.com\r\nSubject: waits\r\nX-Token: gate-1\r\n\r\nHi.\r\n", named: "g.eml")
        try await waitUntil("two deferrals (a retry after the backoff)", timeout: 30) { harness.trackingLines("DEFER").count >= 2 }
        #expect(harness.trackingLines("DEFER")[0].contains("gate: 4.3.0 scanner down"))
        #expect(harness.files(under: "queue/incoming").count == 1, "the claimed file waits in queue/incoming")
        try await harness.crash()
        try FileManager.default.removeItem(atPath: harness.spool + "/down")
        try await harness.start()
        try await waitUntil("the message in bob's Maildir", timeout: 30) { maildirNew(harness, "bob").count == 1 }
        try await waitUntil("the queue to empty", timeout: 30) { harness.queuedFiles().isEmpty }
        #expect(harness.census() == ["gate-1": ["mailbox:bob": 1]])
        #expect(try await harness.stop() == 0)
    }
}
