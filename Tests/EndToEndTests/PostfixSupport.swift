import Foundation
import PostroomSystem
import Testing
import Postroom

/// A real Postfix (Debian's package) run from a temporary configuration directory with
/// `postfix -c DIR`: its own queue and data directories, smtpd on a free loopback port,
/// everything for `sink.test` delivered by virtual(8) into one Maildir. The machine's own
/// Postfix configuration (/etc/postfix) is never read for settings or touched.
final class PostfixInstance: @unchecked Sendable {
    // @unchecked: an instance belongs to one test, which is the only task using it.
    let root: String
    let port: UInt16
    var running = false

    /// Whether Postfix can run here: installed, and this process is root (master(8) must be).
    static let isAvailable: Bool = {
        let installed = FileManager.default.isExecutableFile(atPath: "/usr/sbin/postfix")
            && FileManager.default.isExecutableFile(atPath: "/usr/lib/postfix/sbin/master")
        if !installed {
            print("note: Postfix end-to-end tests skipped: Postfix is not installed (apt-get install -y postfix; .ci/run does this)")
        } else if getuid() != 0 {
            print("note: Postfix end-to-end tests skipped: Postfix's master must run as root")
        }
        return installed && getuid() == 0
    }()

    /// `extraMain` lines go at the end of main.cf, `extraMaster` at the end of master.cf.
    init(access: String = "", extraMain: String = "", extraMaster: String = "") throws {
        root = NSTemporaryDirectory() + "postroom-postfix-" + UUID().uuidString
        port = try TCPListener().port  // released at once; Postfix binds it a moment later
        let fm = FileManager.default
        for folder in ["", "/queue", "/data", "/mail"] {
            try fm.createDirectory(atPath: root + folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        }
        chown(root + "/data", postfixUID, gid_t(UInt32.max))
        chown(root + "/mail", nobody.uid, nobody.gid)
        try write("vmailbox", "@sink.test sink/\n")
        try write("access", access)
        try write("main.cf", """
            compatibility_level = 3.6
            queue_directory = \(root)/queue
            data_directory = \(root)/data
            mail_owner = postfix
            setgid_group = postdrop
            myhostname = relay.test
            mydomain = relay.test
            mydestination =
            inet_interfaces = 127.0.0.1
            inet_protocols = ipv4
            mynetworks = 127.0.0.0/8
            maillog_file = \(root)/maillog
            maillog_file_prefixes = /tmp, /var
            virtual_mailbox_domains = sink.test
            virtual_mailbox_base = \(root)/mail
            virtual_mailbox_maps = texthash:\(root)/vmailbox
            virtual_minimum_uid = 1
            virtual_uid_maps = static:\(nobody.uid)
            virtual_gid_maps = static:\(nobody.gid)
            virtual_destination_concurrency_limit = 20
            smtpd_recipient_restrictions = check_recipient_access texthash:\(root)/access, permit_mynetworks, reject_unauth_destination
            smtputf8_enable = yes
            biff = no
            queue_run_delay = 1s
            minimal_backoff_time = 1s
            maximal_backoff_time = 2s
            \(extraMain)

            """)
        try write("master.cf", """
            127.0.0.1:\(port) inet n - n - 20 smtpd
            pickup    unix  n - n 60 1 pickup
            cleanup   unix  n - n - 0 cleanup
            qmgr      unix  n - n 300 1 qmgr
            rewrite   unix  - - n - - trivial-rewrite
            bounce    unix  - - n - 0 bounce
            defer     unix  - - n - 0 bounce
            trace     unix  - - n - 0 bounce
            verify    unix  - - n - 1 verify
            flush     unix  n - n 1000? 0 flush
            proxymap  unix  - - n - - proxymap
            smtp      unix  - - n - - smtp
            relay     unix  - - n - - smtp
            showq     unix  n - n - - showq
            error     unix  - - n - - error
            retry     unix  - - n - - error
            discard   unix  - - n - - discard
            local     unix  - n n - - local
            virtual   unix  - n n - - virtual
            anvil     unix  - - n - 1 anvil
            scache    unix  - - n - 1 scache
            postlog   unix-dgram n - n - 1 postlogd
            \(extraMaster)

            """)
    }

    deinit {
        // Tests stop their instances themselves (off the cooperative pool); this is the fallback.
        if running { _ = try? runPostfix("stop") }
        try? FileManager.default.removeItem(atPath: root)
    }

    private var postfixUID: uid_t { getpwnam("postfix").map { $0.pointee.pw_uid } ?? 0 }
    private var nobody: (uid: uid_t, gid: gid_t) {
        guard let entry = getpwnam("nobody") else { return (65534, 65534) }
        return (entry.pointee.pw_uid, entry.pointee.pw_gid)
    }

    func write(_ name: String, _ text: String) throws {
        try text.write(toFile: root + "/" + name, atomically: true, encoding: .utf8)
        chmod(root + "/" + name, 0o644)
    }

    var smartHost: String { "127.0.0.1:\(port)" }

    /// Runs `postfix -c ROOT ARGUMENT` on a thread of its own and returns its exit status:
    /// `postfix start` can take seconds on a loaded machine, and blocking one of the few
    /// cooperative threads for that long would stall every other test in the process.
    @discardableResult
    func postfix(_ argument: String) async throws -> Int32 {
        let root = self.root
        let result: Result<Int32, any Error> = await offThePool { Result { try PostfixInstance.run(root: root, argument) } }
        return try result.get()
    }

    private func runPostfix(_ argument: String) throws -> Int32 { try Self.run(root: root, argument) }

    private static func run(root: String, _ argument: String) throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/postfix")
        process.arguments = ["-c", root, argument]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// Starts Postfix and waits until its smtpd answers.
    func start() async throws {
        // A restart on a busy runner once failed in CI: `postfix stop` returns after signalling
        // master, whose children may still hold the lock or the listening port for a moment.
        // Start once the old master is gone, and try again a few times before giving up.
        var status: Int32 = -1
        for attempt in 0..<5 {
            // An old smtpd that still holds the listening socket makes master's bind fail.
            if attempt > 0 { try await Task.sleep(for: .seconds(1)) }
            try await waitForMasterToExit()
            status = try await postfix("start")
            if status == 0 { break }
        }
        #expect(status == 0, "postfix -c \(root) start failed: \(log.split(separator: "\n").suffix(30).joined(separator: "\n"))")
        running = true
        let port = self.port
        let deadline = ContinuousClock.now + .seconds(60)
        while await offThePool({ (try? TCPConnection.connect(host: "127.0.0.1", port: port, timeout: 1)) == nil }) {
            if ContinuousClock.now > deadline { throw WaitTimeout(what: "Postfix to listen on \(port)", seconds: 60) }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    func stop() async throws {
        try await postfix("stop")
        try await waitForMasterToExit()
        running = false
    }

    private func waitForMasterToExit() async throws {
        let root = self.root
        let deadline = ContinuousClock.now + .seconds(60)
        // `postfix status` exits 0 while this instance's master holds its pid lock.
        while try await offThePool({ Result { try PostfixInstance.run(root: root, "status") } }).get() == 0 {
            if ContinuousClock.now > deadline { throw WaitTimeout(what: "Postfix's master in \(root) to exit", seconds: 60) }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    /// Replaces the recipient access map and makes smtpd use it.
    func setAccess(_ text: String) async throws {
        try write("access", text)
        try await postfix("reload")
    }

    var log: String { (try? String(contentsOfFile: root + "/maillog", encoding: .utf8)) ?? "" }

    /// SMTP connections smtpd accepted (excluding the readiness probes of ``start()``).
    var connections: Int { log.split(separator: "\n").filter { $0.contains("postfix/smtpd[") && $0.contains("]: connect from ") }.count }

    /// The message files virtual(8) delivered into the sink Maildir.
    func delivered() -> [String] {
        let folder = root + "/mail/sink/new"
        return ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).map { folder + "/" + $0 }
    }

    /// How many delivered messages carry each X-Token.
    func tokens() -> [String: Int] {
        var counts: [String: Int] = [:]
        for path in delivered() {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { continue }
            let token = text.split(whereSeparator: \.isNewline).first { $0.hasPrefix("X-Token: ") }.map { String($0.dropFirst(9)) } ?? "none"
            counts[token, default: 0] += 1
        }
        return counts
    }
}

extension Harness {
    /// The default pipeline with the outbound connector replaced by an smtp connector to
    /// `smartHosts`, and retries after 1 s (at most 2 s) so deferrals are seen to recover.
    func usePipelineSendingTo(_ smartHosts: [String], extra: String = "") throws {
        let hosts = smartHosts.map { "\"\($0)\"" }.joined(separator: ", ")
        try useDefaultPipeline(replacing: [
            (#"{ name: "outbound", type: "foreign", addressSpaces: ["SMTP:*;10"], dropDirectory: "drop/outbound" }"#,
             #"{ name: "outbound", type: "smtp", addressSpaces: ["SMTP:*;10"], smartHosts: [\#(hosts)], heloName: "postroom.test", hostBackoff: "2s"\#(extra) }"#),
            (#"retry: { first: "1m", max: "1h" }"#, #"retry: { first: "1s", max: "2s" }"#),
        ])
    }

    /// Drops a message from a local sender to `recipients` into pickup.
    func dropOutbound(token: String, to recipients: [String], from sender: String = "alice@example.com") throws {
        try drop("From: <\(sender)>\r\nTo: \(recipients.joined(separator: ", "))\r\nSubject: out \(token)\r\nX-Token: \(token)\r\n\r\nHello from Postroom, \(token).\r\n.leading dot line\r\n",
                 named: token + ".eml")
    }
}

/// Runs blocking work (a child process, a connect) on a thread of its own, off Swift's
/// cooperative pool, which has only one thread per core and is shared by every test.
func offThePool<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        Thread { continuation.resume(returning: body()) }.start()
    }
}
