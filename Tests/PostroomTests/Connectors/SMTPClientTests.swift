import Foundation
import PostroomSystem
import Testing
@testable import Postroom

/// The SMTP client's state machine against scripted servers on real loopback sockets.
@Suite("SMTP client")
struct SMTPClientTests {
    /// Reply deadlines of a minute unless a test is about deadlines: a starved runner can keep the
    /// scripted server's thread off a core for seconds, and a missed deadline changes the outcome.
    static func settings(_ hosts: [SmartHost], timeout: Double = 60, idle: Double = 5) -> SMTPSettings {
        var timeouts = SMTPTimeouts()
        timeouts.connect = timeout
        timeouts.greeting = timeout
        timeouts.helo = timeout
        timeouts.mail = timeout
        timeouts.rcpt = timeout
        timeouts.data = timeout
        timeouts.dataEnd = timeout
        timeouts.block = timeout
        timeouts.rset = max(timeouts.rset, timeout)
        return SMTPSettings(smartHosts: hosts, heloName: "client.test", timeouts: timeouts, idleTimeout: idle, hostBackoff: 30)
    }

    static func relay(_ hosts: [SmartHost], timeout: Double = 60, idle: Double = 5) -> SMTPRelay {
        SMTPRelay(settings: settings(hosts, timeout: timeout, idle: idle), heloName: "client.test", maxIdlePerHost: 4)
    }

    static func transaction(_ recipients: [String] = ["a@x.test"], message: String = "Subject: hi\n\nbody\n",
                            parameters: [String: [String]] = [:], senderParameters: [String] = []) -> SMTPTransaction {
        SMTPTransaction(envelope: Envelope(sender: "s@here.test",
                                           recipients: recipients.map { EnvelopeRecipient(address: $0, parameters: parameters[$0] ?? []) },
                                           parameters: senderParameters),
                        message: Array(message.utf8))
    }

    static func deliver(_ relay: SMTPRelay, _ transaction: SMTPTransaction) async -> SMTPTransactionOutcome {
        await onOwnThread { relay.deliver(transaction) }
    }

    @Test("pipelined: MAIL, RCPTs and DATA in one write; replies mapped to recipients in order")
    func pipelinedRepliesMapInOrder() async throws {
        var script = ScriptedSMTPServer.Script()
        script.rcpt = { address in
            switch address {
            case "b@x.test": return "550 5.1.1 <b@x.test>: user unknown"
            case "c@x.test": return "450 4.2.1 <c@x.test>: mailbox busy"
            default: return "250 2.1.5 Ok"
            }
        }
        let server = try ScriptedSMTPServer(script)
        defer { server.stop() }
        let outcome = await Self.deliver(Self.relay([server.host]), Self.transaction(["a@x.test", "b@x.test", "c@x.test", "d@x.test"]))
        #expect(outcome.results == [
            .delivered,
            .failed(status: "5.1.1", diagnostic: "Remote server 127.0.0.1 returned '550 5.1.1 <b@x.test>: user unknown'"),
            .deferred("Remote server 127.0.0.1 returned '450 4.2.1 <c@x.test>: mailbox busy'"),
            .delivered,
        ])
        #expect(server.pipelinedBatches == [true], "the RCPTs and DATA should have arrived with MAIL")
        #expect(server.messages.count == 1)
        #expect(server.commands.filter { $0.hasPrefix("RCPT") }.count == 4)
    }

    @Test("without PIPELINING one command at a time; EHLO refused falls back to HELO; no DSN parameters unoffered")
    func lockStepAndHeloFallback() async throws {
        var script = ScriptedSMTPServer.Script()
        script.ehlo = "502 5.5.2 EHLO not supported"
        let server = try ScriptedSMTPServer(script)
        defer { server.stop() }
        let transaction = Self.transaction(["a@x.test"], parameters: ["a@x.test": ["NOTIFY=SUCCESS"]], senderParameters: ["RET=HDRS"])
        let outcome = await Self.deliver(Self.relay([server.host]), transaction)
        #expect(outcome.results == [.delivered])
        #expect(outcome.dsnPassedOn == false)
        #expect(server.pipelinedBatches == [false])
        #expect(server.commands.contains("HELO client.test"))
        #expect(server.commands.contains("MAIL FROM:<s@here.test>"), "no SIZE, BODY or RET without EHLO: \(server.commands)")
        #expect(server.commands.contains("RCPT TO:<a@x.test>"))
    }

    @Test("ESMTP parameters: SIZE, BODY=8BITMIME, SMTPUTF8, RET, ENVID, NOTIFY, ORCPT")
    func esmtpParameters() async throws {
        let server = try ScriptedSMTPServer()
        defer { server.stop() }
        let transaction = Self.transaction(["a@x.test"], message: "Subject: caf\u{e9}\n\nna\u{ef}ve\n",
                                           parameters: ["a@x.test": ["NOTIFY=SUCCESS,FAILURE", "ORcpt=mary@contoso.com"]],
                                           senderParameters: ["RET=HDRS", "ENVID=12345ABCD", "BODY=7bit", "auth=<x>"])
        let outcome = await Self.deliver(Self.relay([server.host]), transaction)
        #expect(outcome.results == [.delivered])
        #expect(outcome.dsnPassedOn)
        let mail = server.commands.first { $0.hasPrefix("MAIL") } ?? ""
        #expect(mail == "MAIL FROM:<s@here.test> SIZE=\(transaction.size) BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=12345ABCD")
        #expect(server.commands.contains("RCPT TO:<a@x.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;mary@contoso.com"))
    }

    @Test("multi-line replies are read whole and quoted as one line")
    func multiLineReplies() async throws {
        var script = ScriptedSMTPServer.Script()
        script.rcpt = { _ in "550-5.7.1 <a@x.test>: relay denied\r\n550-5.7.1 see the policy at\r\n550 5.7.1 https://example.invalid/policy" }
        script.greeting = "220-scripted.test first line\r\n220-second\r\n220 ready"
        let server = try ScriptedSMTPServer(script)
        defer { server.stop() }
        let outcome = await Self.deliver(Self.relay([server.host]), Self.transaction())
        #expect(outcome.results == [.failed(status: "5.7.1", diagnostic:
            "Remote server 127.0.0.1 returned '550 5.7.1 <a@x.test>: relay denied 5.7.1 see the policy at 5.7.1 https://example.invalid/policy'")])
    }

    /// A step and a reply class: what the recipient's result must be.
    enum Expected: Sendable { case delivered, deferred, failed }

    static let replyMatrix: [(String, String, Expected)] = [
        ("greeting", "421 4.3.2 busy", .deferred), ("greeting", "554 5.3.2 go away", .deferred),
        ("ehlo", "451 4.3.0 later", .delivered), ("ehlo", "550 5.5.1 no", .delivered), ("ehlo", "421 4.3.2 closing", .deferred),
        ("helo", "450 4.3.0 later", .deferred), ("helo", "550 5.5.1 no", .deferred),
        ("mail", "451 4.3.0 later", .deferred), ("mail", "553 5.1.8 bad sender", .failed), ("mail", "421 4.3.2 closing", .deferred),
        ("rcpt", "450 4.2.0 later", .deferred), ("rcpt", "550 5.1.1 unknown", .failed),
        ("data", "451 4.3.0 later", .deferred), ("data", "554 5.5.0 no", .failed), ("data", "421 4.3.2 closing", .deferred),
        ("dataEnd", "451 4.3.0 later", .deferred), ("dataEnd", "552 5.3.4 too big", .failed), ("dataEnd", "421 4.3.2 closing", .deferred),
        ("dataEnd", "250 2.0.0 fine", .delivered),
    ]

    @Test("every reply class at every step", arguments: [false, true])
    func everyReplyClassAtEveryStep(pipelining: Bool) async throws {
        for (step, reply, expected) in Self.replyMatrix {
            var script = ScriptedSMTPServer.Script()
            if !pipelining { script.ehlo = "250-scripted.test\r\n250 8BITMIME" }
            switch step {
            case "greeting": script.greeting = reply
            case "ehlo": script.ehlo = reply
            case "helo": script.ehlo = "502 5.5.2 no EHLO"; script.helo = reply
            case "mail": script.mail = reply
            case "rcpt": script.rcpt = { _ in reply }
            case "data": script.data = reply
            default: script.dataEnd = reply
            }
            let server = try ScriptedSMTPServer(script)
            defer { server.stop() }
            let outcome = await Self.deliver(Self.relay([server.host]), Self.transaction())
            let result = outcome.results.first
            switch (expected, result) {
            case (.delivered, .delivered?): break
            case (.deferred, .deferred(let reason)?):
                #expect(reason.contains(String(reply.prefix(3))), "\(step) \(reply): the reason should quote the reply: \(reason)")
            case (.failed, .failed(let status, let diagnostic)?):
                #expect(status == String(reply.split(separator: " ")[1]), "\(step) \(reply)")
                #expect(diagnostic.hasPrefix("Remote server 127.0.0.1 returned '\(reply)'"), "\(step): \(diagnostic)")
            default:
                Issue.record("\(step) answered \(reply) (pipelining \(pipelining)): expected \(expected), got \(String(describing: result))")
            }
            if expected == .delivered { #expect(server.messages.count == 1, "\(step) \(reply)") }
            if expected != .delivered, step != "dataEnd" { #expect(server.messages.isEmpty, "\(step) \(reply): no message may be accepted") }
        }
    }

    @Test("a server that stops answering is given up after the step's timeout", arguments: ["MAIL", "DATA", "EHLO"])
    func hangingServer(verb: String) async throws {
        var script = ScriptedSMTPServer.Script()
        script.hangAt = verb
        let server = try ScriptedSMTPServer(script)
        defer { server.stop() }
        let started = ContinuousClock.now
        let outcome = await Self.deliver(Self.relay([server.host], timeout: 0.5), Self.transaction())
        let elapsed = ContinuousClock.now - started
        guard case .deferred(let reason)? = outcome.results.first else {
            Issue.record("expected a deferral, got \(outcome.results)")
            return
        }
        #expect(reason.contains("timed out"), "\(reason)")
        // The server would stay silent for 60 s; well under that proves the 0.5 s limit worked
        // (with room for a machine whose test runner is starved by other work).
        #expect(elapsed < .seconds(55))
    }

    @Test("a server that stops taking data is given up after the block timeout")
    func stalledData() async throws {
        var script = ScriptedSMTPServer.Script()
        script.ehlo = "250-scripted.test\r\n250 PIPELINING"
        script.stallAfterDataReply = 60
        let server = try ScriptedSMTPServer(script)
        defer { server.stop() }
        // 16 MB: far more than the socket buffers hold, so the write must wait for the server.
        let message = "Subject: big\n\n" + String(repeating: String(repeating: "y", count: 1023) + "\n", count: 16 * 1024)
        let started = ContinuousClock.now
        let outcome = await Self.deliver(Self.relay([server.host], timeout: 0.5), Self.transaction(message: message))
        guard case .deferred(let reason)? = outcome.results.first else {
            Issue.record("expected a deferral, got \(outcome.results)")
            return
        }
        #expect(reason.contains("write to") && reason.contains("timed out"), "\(reason)")
        #expect(ContinuousClock.now - started < .seconds(55), "the server stalls for 60 s")
    }

    @Test("a server that closes mid-DATA defers the message, and the next host is tried")
    func closeDuringData() async throws {
        var script = ScriptedSMTPServer.Script()
        script.closeAfterDataOctets = 10
        let broken = try ScriptedSMTPServer(script)
        let good = try ScriptedSMTPServer()
        defer { broken.stop(); good.stop() }
        let message = "Subject: long\n\n" + String(repeating: "line of text\n", count: 200)
        let alone = await Self.deliver(Self.relay([broken.host]), Self.transaction(message: message))
        guard case .deferred(let reason)? = alone.results.first else {
            Issue.record("expected a deferral, got \(alone.results)")
            return
        }
        #expect(reason.contains("closed") || reason.contains("reset") || reason.contains("Broken pipe"), "\(reason)")
        let withSecond = await Self.deliver(Self.relay([broken.host, good.host]), Self.transaction(message: message))
        #expect(withSecond.results == [.delivered])
        #expect(good.messages.count == 1)
    }

    @Test("garbage instead of a reply is a protocol error, deferred", arguments: ["greeting", "RCPT", "DATA"])
    func garbage(step: String) async throws {
        var script = ScriptedSMTPServer.Script()
        if step == "greeting" { script.greeting = "HTTP/1.1 400 Bad Request\r\n\u{1}\u{2}" } else { script.garbageAt = (step, "xyz not smtp") }
        let server = try ScriptedSMTPServer(script)
        defer { server.stop() }
        let outcome = await Self.deliver(Self.relay([server.host]), Self.transaction())
        guard case .deferred(let reason)? = outcome.results.first else {
            Issue.record("expected a deferral, got \(outcome.results)")
            return
        }
        #expect(reason.contains("protocol error"), "\(reason)")
        #expect(server.messages.isEmpty)
    }

    @Test("a message over the server's SIZE fails with 5.3.4 before MAIL FROM")
    func sizeRefusedEarly() async throws {
        var script = ScriptedSMTPServer.Script()
        script.ehlo = "250-scripted.test\r\n250 SIZE 100"
        let server = try ScriptedSMTPServer(script)
        defer { server.stop() }
        let outcome = await Self.deliver(Self.relay([server.host]), Self.transaction(message: "Subject: big\n\n" + String(repeating: "x", count: 200) + "\n"))
        guard case .failed(let status, _)? = outcome.results.first else {
            Issue.record("expected a failure, got \(outcome.results)")
            return
        }
        #expect(status == "5.3.4")
        #expect(!server.commands.contains { $0.hasPrefix("MAIL") })
    }

    @Test("a non-ASCII address needs SMTPUTF8: refused with 5.6.7 when the server lacks it")
    func smtputf8Required() async throws {
        var script = ScriptedSMTPServer.Script()
        script.ehlo = "250-scripted.test\r\n250 PIPELINING"
        let server = try ScriptedSMTPServer(script)
        defer { server.stop() }
        let outcome = await Self.deliver(Self.relay([server.host]), Self.transaction(["j\u{f6}rg@x.test"]))
        guard case .failed(let status, _)? = outcome.results.first else {
            Issue.record("expected a failure, got \(outcome.results)")
            return
        }
        #expect(status == "5.6.7")
    }

    @Test("connections are reused with RSET between messages and closed with QUIT when idle")
    func connectionReuseAndIdleClose() async throws {
        let server = try ScriptedSMTPServer()
        defer { server.stop() }
        // An idle limit no starved test runner reaches (and the suite's minute-long reply deadlines):
        // reuse must not depend on how fast the deliveries follow, nor on how soon the scripted
        // server's thread gets a core (a missed deadline drops the connection; the next message opens another).
        let relay = Self.relay([server.host], idle: 3600)
        for _ in 0..<5 {
            #expect(await Self.deliver(relay, Self.transaction()).results == [.delivered])
        }
        #expect(server.connections == 1)
        #expect(server.commands.filter { $0 == "RSET" }.count == 4)
        #expect(server.messages.count == 5)
        #expect(relay.expiredIdle().isEmpty, "idle for less than an hour")

        let quick = Self.relay([server.host], idle: 0.3)
        #expect(await Self.deliver(quick, Self.transaction()).results == [.delivered])
        #expect(server.connections == 2)
        try await Task.sleep(for: .milliseconds(400))
        let expired = quick.expiredIdle()
        #expect(expired.count == 1)
        await onOwnThread { for session in expired { session.quit() } }
        #expect(server.commands.last == "QUIT")
        // After the idle close, the next message opens a new connection.
        #expect(await Self.deliver(quick, Self.transaction()).results == [.delivered])
        #expect(server.connections == 3)
    }

    @Test("a cached connection the server closed is replaced, not reported")
    func staleCachedConnection() async throws {
        var script = ScriptedSMTPServer.Script()
        script.rset = "421 4.4.2 idle too long, closing"
        let server = try ScriptedSMTPServer(script)
        defer { server.stop() }
        let relay = Self.relay([server.host])
        #expect(await Self.deliver(relay, Self.transaction()).results == [.delivered])
        #expect(await Self.deliver(relay, Self.transaction()).results == [.delivered])
        #expect(server.connections == 2)
    }

    @Test("the first smart host down: the second takes the message, and the first is skipped while it backs off")
    func failover() async throws {
        let closedPort = try TCPListener().port  // released at once: nothing listens there
        let good = try ScriptedSMTPServer()
        defer { good.stop() }
        let relay = Self.relay([SmartHost(host: "127.0.0.1", port: closedPort), good.host])
        #expect(await Self.deliver(relay, Self.transaction()).results == [.delivered])
        #expect(await Self.deliver(relay, Self.transaction()).results == [.delivered])
        #expect(good.messages.count == 2)
        // Both down: deferred with both hosts' reasons.
        let lone = Self.relay([SmartHost(host: "127.0.0.1", port: closedPort)])
        let outcome = await Self.deliver(lone, Self.transaction())
        guard case .deferred(let reason)? = outcome.results.first else {
            Issue.record("expected a deferral, got \(outcome.results)")
            return
        }
        #expect(reason.contains("no smart host took the message") && reason.contains("refused"), "\(reason)")
        let again = await Self.deliver(lone, Self.transaction())
        guard case .deferred(let second)? = again.results.first else { return }
        #expect(second.contains("skipped"), "a host that just failed is skipped: \(second)")
    }

    @Test("spread starts each transaction at the next host")
    func spread() async throws {
        let first = try ScriptedSMTPServer()
        let second = try ScriptedSMTPServer()
        defer { first.stop(); second.stop() }
        var settings = Self.settings([first.host, second.host])
        settings.spread = true
        let relay = SMTPRelay(settings: settings, heloName: "client.test", maxIdlePerHost: 2)
        for _ in 0..<4 { _ = await Self.deliver(relay, Self.transaction()) }
        #expect(first.messages.count == 2)
        #expect(second.messages.count == 2)
    }
}
