import Foundation
import Testing

/// Issue 14: Postroom beside the tools operators already run, each the real Debian package
/// (`.ci/run` installs them): other users and Dovecot over IMAP (finding 6), node_exporter's
/// textfile collector and a Prometheus scrape (finding 5), systemd-analyze (finding 7).
/// A test whose tool cannot be found skips and says which package is missing.
@Suite struct ExternalToolsTests {
    static let dovecot = Tools.find("/usr/sbin/dovecot")
    static let nodeExporter = Tools.find("/usr/bin/prometheus-node-exporter", "/usr/bin/node_exporter")
    static let prometheus = Tools.find("/usr/bin/prometheus")
    static let systemdAnalyze = Tools.find("/usr/bin/systemd-analyze", "/bin/systemd-analyze")
    static let python = Tools.find("/usr/bin/python3")
    static let canMakeUsers = Tools.isRoot && Tools.find("/usr/sbin/useradd") != nil && Tools.find("/usr/sbin/runuser") != nil

    // MARK: Finding 6: other users and Dovecot

    @Test(.enabled(if: canMakeUsers, "needs root with useradd and runuser (package passwd, util-linux) to make real unprivileged users"))
    func producersGatewaysAndDovecotWorkAsOtherUsers() async throws {
        let accounts = TemporaryAccounts()
        let submit = try accounts.group("sub")
        let gateway = try accounts.group("gw")
        let mail = try accounts.group("mail")
        let producer = try accounts.user("prod", groups: [submit])
        let outsider = try accounts.user("out")
        let gatewayUser = try accounts.user("gwu", groups: [gateway])
        let dovecotUser = try accounts.user("dv", groups: [mail])

        let harness = try Harness()
        try harness.useDefaultPipeline(replacing: [
            ("maxMessagesPerMinute: 0 }", "maxMessagesPerMinute: 0, permissions: { group: \"\(submit)\" } }"),
            ("dropDirectory: \"drop/outbound\" }", "dropDirectory: \"drop/outbound\", permissions: { group: \"\(gateway)\" } }"),
            ("path: \"mailboxes/{user}\" }", "path: \"mailboxes/{user}\", permissions: { group: \"\(mail)\" } }"),
        ])
        try await harness.start()
        let token = UUID().uuidString
        let drop = "printf 'From: Zed <zed@elsewhere.org>\\nTo: alice@example.com, partner@elsewhere.org\\nSubject: \(token)\\n\\nfrom %s\\n' \"$(id -un)\" > spool/pickup/.m.tmp && mv spool/pickup/.m.tmp spool/pickup/m-$(id -un).eml"
        let refused = try Tools.runAs(outsider, drop, directory: harness.root)
        #expect(refused.status != 0, "a user outside the intake group must not be able to drop files")
        let dropped = try Tools.runAs(producer, drop, directory: harness.root)
        #expect(dropped.status == 0, "the producer in \(submit) could not drop a file: \(dropped.output)")

        try await waitUntil("the producer's message delivered", timeout: 30) {
            !harness.files(under: "mailboxes/alice/new").isEmpty && harness.files(under: "drop/outbound").contains { !$0.contains("/.") }
        }
        let pickupMode = try FileManager.default.attributesOfItem(atPath: harness.pickup)
        #expect((pickupMode[.posixPermissions] as? Int) == 0o2770)
        #expect((pickupMode[.groupOwnerAccountName] as? String) == submit)
        let dropFile = try #require(harness.files(under: "drop/outbound").first { !$0.contains("/.") })
        let dropAttributes = try FileManager.default.attributesOfItem(atPath: harness.spool + "/" + dropFile)
        #expect((dropAttributes[.posixPermissions] as? Int) == 0o640)
        #expect((dropAttributes[.groupOwnerAccountName] as? String) == gateway)

        // The gateway reads and deletes drop files; a stranger cannot read them.
        #expect(try Tools.runAs(outsider, "cat spool/drop/outbound/*.eml", directory: harness.root).status != 0)
        let taken = try Tools.runAs(gatewayUser, "cat spool/drop/outbound/*.eml | grep -q \(token) && rm spool/drop/outbound/*.eml", directory: harness.root)
        #expect(taken.status == 0, "the gateway in \(gateway) could not read and delete: \(taken.output)")
        #expect(!harness.files(under: "drop/outbound").contains { !$0.contains("/.") })

        // Dovecot, running the mailbox as a user of the Maildir group, serves the message over IMAP.
        guard let dovecot = Self.dovecot, let python = Self.python else {
            print("skipped: Dovecot over IMAP needs the dovecot-imapd and python3 packages (apt-get install dovecot-imapd python3)")
            #expect(try await harness.stop() == 0)
            return
        }
        let base = harness.root + "/dovecot"
        try FileManager.default.createDirectory(atPath: base + "/run", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: base + "/state", withIntermediateDirectories: true)
        try "alice:{PLAIN}secret-\(token)\n".write(toFile: base + "/passwd", atomically: true, encoding: .utf8)
        let port = Tools.freePort()
        try """
        base_dir = \(base)/run
        state_dir = \(base)/state
        log_path = \(base)/dovecot.log
        protocols = imap
        listen = 127.0.0.1
        ssl = no
        disable_plaintext_auth = no
        auth_mechanisms = plain
        mail_location = maildir:\(harness.spool)/mailboxes/%n:INDEX=MEMORY
        service imap-login {
          inet_listener imap {
            address = 127.0.0.1
            port = \(port)
          }
          inet_listener imaps {
            port = 0
          }
        }
        passdb {
          driver = passwd-file
          args = \(base)/passwd
        }
        userdb {
          driver = static
          args = uid=\(dovecotUser) gid=\(mail) home=\(base)/home/%n
        }

        """.write(toFile: base + "/dovecot.conf", atomically: true, encoding: .utf8)
        // In the foreground (-F), so the test owns the master process and stops it.
        let server = try Tools.start(dovecot, ["-F", "-c", base + "/dovecot.conf"], log: base + "/dovecot.out")
        defer { Tools.stop(server) }
        let script = """
        import imaplib, sys, time
        deadline = time.time() + 20
        while True:
            try:
                imap = imaplib.IMAP4("127.0.0.1", \(port)); break
            except OSError:
                if time.time() > deadline: raise
                time.sleep(0.05)
        imap.login("alice", "secret-\(token)")
        imap.select("INBOX")
        status, found = imap.search(None, "SUBJECT", "\(token)")
        number = found[0].split()[0]
        status, data = imap.fetch(number, "(RFC822)")
        sys.stdout.write(data[0][1].decode())
        imap.logout()
        """
        let fetched = try Tools.run(python, ["-c", script])
        #expect(fetched.status == 0, "IMAP fetch failed: \(fetched.output)\n\((try? String(contentsOfFile: base + "/dovecot.log", encoding: .utf8)) ?? "")")
        #expect(fetched.output.contains("Subject: \(token)") && fetched.output.contains("Delivered-To: alice@example.com"))
        #expect(try await harness.stop() == 0)
    }

    // MARK: Finding 5: node_exporter's textfile collector and a Prometheus scrape

    @Test(.enabled(if: nodeExporter != nil && Tools.isRoot, "needs root and the prometheus-node-exporter package (apt-get install prometheus-node-exporter)"))
    func nodeExporterReadsMetricsPromAsItsOwnUser() async throws {
        let harness = try Harness()
        try await harness.start()
        try harness.drop(Mail.message(0, token: "ne0"), named: "ne0.eml")
        try await waitUntil("a delivery", timeout: 30) { harness.census()["ne0"] != nil }
        let metrics = harness.spool + "/metrics.prom"
        try await waitUntil("metrics.prom", timeout: 15) { FileManager.default.fileExists(atPath: metrics) }
        // As contrib/install.sh does: a link in the collector's folder to the spool's file.
        let textfiles = harness.root + "/textfile"
        try FileManager.default.createDirectory(atPath: textfiles, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: textfiles + "/postroom.prom", withDestinationPath: metrics)
        let port = Tools.freePort()
        let exporter = try Tools.start("/usr/sbin/runuser", ["-u", "nobody", "--", Self.nodeExporter!,
                                                           "--web.listen-address=127.0.0.1:\(port)", "--collector.disable-defaults",
                                                           "--collector.textfile", "--collector.textfile.directory=\(textfiles)"],
                                       log: harness.root + "/node_exporter.log")
        defer { Tools.stop(exporter) }
        var page: String?
        try await waitUntil("node_exporter to answer", timeout: 20) {
            page = Tools.fetch("http://127.0.0.1:\(port)/metrics")
            return page != nil || !exporter.isRunning
        }
        let text = try #require(page, "node_exporter: \((try? String(contentsOfFile: harness.root + "/node_exporter.log", encoding: .utf8)) ?? "")")
        #expect(text.contains("node_textfile_scrape_error 0"), "node_exporter refused the file")
        #expect(text.contains("postroom_stage_received_messages_total{pipeline=\"default\",stage=\"deliver\"}"))
        #expect(text.contains("postroom_delivered_messages_total{connector=\"mailbox\",pipeline=\"default\"}"))
        #expect(text.contains("postroom_process_start_time_seconds"))
        #expect(try await harness.stop() == 0)
    }

    @Test(.enabled(if: prometheus != nil, "needs the prometheus package (apt-get install prometheus)"))
    func prometheusScrapesMetricsFromTheStart() async throws {
        let harness = try Harness()
        let metricsPort = Tools.freePort()
        try harness.useDefaultPipeline(replacing: [("metrics: { file: \"metrics.prom\", every: \"10s\" }",
                                                    "metrics: { file: \"metrics.prom\", every: \"10s\", listen: \"127.0.0.1:\(metricsPort)\" }")])
        try await harness.start()
        let base = harness.root + "/prometheus"
        try FileManager.default.createDirectory(atPath: base + "/data", withIntermediateDirectories: true)
        try """
        global:
          scrape_interval: 1s
        scrape_configs:
          - job_name: postroom
            static_configs:
              - targets: ["127.0.0.1:\(metricsPort)"]

        """.write(toFile: base + "/prometheus.yml", atomically: true, encoding: .utf8)
        let port = Tools.freePort()
        let server = try Tools.start(Self.prometheus!, ["--config.file=\(base)/prometheus.yml", "--storage.tsdb.path=\(base)/data",
                                                        "--web.listen-address=127.0.0.1:\(port)"], log: base + "/prometheus.log")
        defer { Tools.stop(server) }
        // Before any mail: every stage's counter is already there, at 0, so increase() sees the first burst.
        let query = "http://127.0.0.1:\(port)/api/v1/query?query=count(postroom_stage_received_messages_total%3D%3D0)"
        var answer = ""
        try await waitUntil("Prometheus to scrape Postroom", timeout: 40) {
            answer = Tools.fetch(query) ?? ""
            return answer.contains("\"5\"") || !server.isRunning
        }
        #expect(answer.contains("\"5\""), "\(answer)\n\((try? String(contentsOfFile: base + "/prometheus.log", encoding: .utf8))?.suffix(2000) ?? "")")
        let up = Tools.fetch("http://127.0.0.1:\(port)/api/v1/query?query=up%7Bjob%3D%22postroom%22%7D") ?? ""
        #expect(up.contains("\"1\""), "\(up)")
        let errors = Tools.fetch("http://127.0.0.1:\(port)/api/v1/query?query=count(postroom_stage_errors_total)") ?? ""
        #expect(errors.contains("\"value\""), "postroom_stage_errors_total is exported: \(errors)")
        let paused = Tools.fetch("http://127.0.0.1:\(port)/api/v1/query?query=postroom_intake_paused") ?? ""
        #expect(paused.contains("\"0\""), "postroom_intake_paused is exported: \(paused)")
        #expect(try await harness.stop() == 0)
    }

    // MARK: Finding 7: systemd

    @Test(.enabled(if: systemdAnalyze != nil && Tools.isRoot && Tools.find("/usr/bin/unshare") != nil,
                   "needs root, unshare (util-linux) and systemd-analyze (apt-get install systemd)"))
    func theInstalledUnitVerifiesAndIsHardened() throws {
        let accounts = TemporaryAccounts()
        let groups = (try accounts.group("s"), try accounts.group("g"), try accounts.group("m"))
        let stage = NSTemporaryDirectory() + "postroom-install-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: stage) }
        let install = Process()
        install.executableURL = URL(fileURLWithPath: Harness.packageRoot + "/contrib/install.sh")
        install.arguments = ["--binary", Harness.binary]
        install.environment = ProcessInfo.processInfo.environment.merging([
            "DESTDIR": stage, "POSTROOM_SUBMIT_GROUP": groups.0, "POSTROOM_GATEWAY_GROUP": groups.1, "POSTROOM_MAIL_GROUP": groups.2,
        ]) { $1 }
        try install.run()
        install.waitUntilExit()
        #expect(install.terminationStatus == 0)
        let unit = stage + "/etc/systemd/system/postroom.service"
        #expect(FileManager.default.contentsEqual(atPath: unit, andPath: Harness.packageRoot + "/contrib/postroom.service"))
        #expect(FileManager.default.isExecutableFile(atPath: stage + "/usr/local/bin/postroom"))

        // The unit names /usr/local/bin/postroom: the staged folder is bound over it in a private
        // mount namespace, so the machine's own /usr/local/bin is never touched.
        let verify = try Tools.run("/usr/bin/unshare", ["--mount", "--propagation", "private", "/bin/sh", "-c",
                                                        "mount --bind \"$0/usr/local/bin\" /usr/local/bin && \(Self.systemdAnalyze!) verify \"$1\"", stage, unit])
        #expect(verify.status == 0, "systemd-analyze verify: \(verify.output)")

        let security = try Tools.run(Self.systemdAnalyze!, ["security", "--offline=true", unit])
        let figure = security.output.split(separator: "\n").last { $0.contains("Overall exposure level") }
            .flatMap { line in line.split(separator: " ").compactMap { Double($0) }.last }
        let exposure = try #require(figure, "\(security.output)")
        let readme = try String(contentsOfFile: Harness.packageRoot + "/README.md", encoding: .utf8)
        #expect(readme.contains("`systemd-analyze security` rates it **\(String(format: "%.1f", exposure))"), "README's figure is not \(exposure)")
        #expect(exposure <= 2.0, "the unit should stay well hardened, got \(exposure)")

        // The installed pipeline is valid (its groups exist) and names the system spool.
        let check = try runPostroom(["check", stage + "/etc/postroom/default.json5", "--spool", stage + "/var/spool/postroom"])
        #expect(check.status == 0, "\(check.error)")
        let pipeline = try String(contentsOfFile: stage + "/etc/postroom/default.json5", encoding: .utf8)
        #expect(pipeline.contains("spool: \"/var/spool/postroom\"") && pipeline.contains(groups.2))
    }
}
