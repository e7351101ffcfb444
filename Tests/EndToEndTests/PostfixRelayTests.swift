import Foundation
import Testing

/// The smtp connector against a real Postfix as its smart host (see ``PostfixInstance``).
@Suite(.serialized, .enabled(if: PostfixInstance.isAvailable, "Postfix is not installed or not runnable (needs root); apt-get install -y postfix"))
struct PostfixRelayTests {
    @Test func thousandMessagesThroughPostfixExactlyOnceOverFewConnections() async throws {
        let postfix = try PostfixInstance()
        try await postfix.start()
        let harness = try Harness()
        try harness.usePipelineSendingTo([postfix.smartHost])
        try await harness.start()
        let started = ContinuousClock.now
        let count = 1000
        for index in 0..<count {
            try harness.dropOutbound(token: "pf-\(index)", to: ["user\(index % 7)@sink.test"])
        }
        try await waitUntil("\(count) messages in the Postfix sink", timeout: 120) { postfix.delivered().count >= count }
        let elapsed = ContinuousClock.now - started
        try await waitUntil("Postroom's queue to empty", timeout: 30) { harness.queuedFiles().isEmpty }
        let tokens = postfix.tokens()
        #expect(tokens.count == count)
        #expect(tokens.values.allSatisfy { $0 == 1 }, "duplicates: \(tokens.filter { $0.value != 1 }.prefix(5))")
        #expect(Set(tokens.keys) == Set((0..<count).map { "pf-\($0)" }))
        #expect(harness.trackingLines("SEND").count == count)
        // Leading dots survive the dot-stuffing round trip.
        let sample = try String(contentsOfFile: try #require(postfix.delivered().first), encoding: .utf8)
        #expect(sample.contains("\n.leading dot line"))
        // Connection reuse: at most `concurrency` (8) connections at a time, reused with RSET.
        let connections = postfix.connections
        print("Postfix relay: \(count) messages in \(elapsed), over \(connections) SMTP connections")
        #expect(connections <= count / 20, "Postfix's log shows \(connections) connections for \(count) messages")
        #expect(try await harness.stop() == 0)
        try await postfix.stop()
    }

    @Test func aRecipientPostfixRejectsBecomesAReportQuotingItsReply() async throws {
        let postfix = try PostfixInstance(access: "reject@sink.test 550 5.1.1 user unknown\n")
        try await postfix.start()
        let harness = try Harness()
        try harness.usePipelineSendingTo([postfix.smartHost])
        try await harness.start()
        try harness.dropOutbound(token: "pf-rej", to: ["reject@sink.test", "fine@sink.test"])
        let reports = { harness.files(under: "mailboxes/alice").filter { $0.contains("/new/") } }
        try await waitUntil("the report in alice's Maildir", timeout: 30) { !reports().isEmpty }
        try await waitUntil("the good copy in the sink", timeout: 30) { postfix.tokens()["pf-rej"] == 1 }
        let report = try String(contentsOfFile: harness.spool + "/" + reports()[0], encoding: .utf8)
        #expect(report.contains("Remote server 127.0.0.1 returned '550 5.1.1 <reject@sink.test>: Recipient address rejected: user unknown'"))
        #expect(report.contains("Status: 5.1.1"))
        #expect(report.contains("Final-Recipient: rfc822; reject@sink.test"))
        #expect(!report.contains("Final-Recipient: rfc822; fine@sink.test"), "only the rejected recipient is reported")
        try await waitUntil("Postroom's queue to empty", timeout: 30) { harness.queuedFiles().isEmpty }
        #expect(reports().count == 1)
        #expect(try await harness.stop() == 0)
        try await postfix.stop()
    }

    @Test func aTemporaryRejectionIsRetriedAndThenDelivered() async throws {
        let postfix = try PostfixInstance(access: "later@sink.test 450 4.2.0 try again later\n")
        try await postfix.start()
        let harness = try Harness()
        // Connections idle for less than the 1 s retry, so the retry meets an smtpd that read the new map.
        try harness.usePipelineSendingTo([postfix.smartHost], extra: #", idleTimeout: "300ms""#)
        try await harness.start()
        try harness.dropOutbound(token: "pf-later", to: ["later@sink.test"])
        try await waitUntil("the deferral", timeout: 30) {
            harness.trackingLines("DEFER").contains { $0.contains("450 4.2.0 <later@sink.test>") }
        }
        #expect(postfix.delivered().isEmpty)
        try await postfix.setAccess("")
        try await waitUntil("the retried message in the sink", timeout: 30) { postfix.tokens()["pf-later"] == 1 }
        try await waitUntil("Postroom's queue to empty", timeout: 30) { harness.queuedFiles().isEmpty }
        #expect(harness.files(under: "mailboxes/alice").filter { $0.contains("/new/") }.isEmpty, "no report for a deferral")
        #expect(try await harness.stop() == 0)
        try await postfix.stop()
    }

    @Test func theFirstSmartHostDownFailsOverToTheSecond() async throws {
        let second = try PostfixInstance()
        try await second.start()
        let down = try PostfixInstance()  // configured, never started: its port refuses
        let harness = try Harness()
        try harness.usePipelineSendingTo([down.smartHost, second.smartHost])
        try await harness.start()
        for index in 0..<20 { try harness.dropOutbound(token: "pf-fo-\(index)", to: ["someone@sink.test"]) }
        try await waitUntil("20 messages through the second host", timeout: 60) { second.delivered().count >= 20 }
        try await waitUntil("Postroom's queue to empty", timeout: 30) { harness.queuedFiles().isEmpty }
        #expect(second.tokens().count == 20)
        #expect(harness.trackingLines("DEFER").isEmpty, "failover happens within the attempt, without a deferral")
        #expect(try await harness.stop() == 0)
        try await second.stop()
    }

    /// Scaling out: two Postroom instances (two spools) sending through two relays; one relay
    /// stops in the middle of the run. Every message arrives (at least once: a relay stopped
    /// between taking a message and acknowledging it gets it again from the other).
    @Test func twoInstancesTwoRelaysOneStopsMidRunNothingLost() async throws {
        let relays = [try PostfixInstance(), try PostfixInstance()]
        for relay in relays { try await relay.start() }
        let instances = [try Harness(), try Harness()]
        for instance in instances {
            try instance.usePipelineSendingTo(relays.map(\.smartHost), extra: #", smartHostOrder: "spread""#)
            try await instance.start()
        }
        let perInstance = 300
        let started = ContinuousClock.now
        for index in 0..<perInstance {
            for (number, instance) in instances.enumerated() {
                try instance.dropOutbound(token: "so-\(number)-\(index)", to: ["fleet@sink.test"])
            }
            if index == perInstance / 3 { try await relays[0].stop() }
        }
        let total = perInstance * instances.count
        for instance in instances {
            try await waitUntil("the instance's queue to empty", timeout: 120) { instance.queuedFiles().isEmpty }
        }
        let elapsed = ContinuousClock.now - started
        // What the stopped relay had accepted waits in its own queue; it delivers when it is back.
        try await relays[0].start()
        let arrived = { Set(relays.flatMap { $0.tokens().keys }) }
        try await waitUntil("\(total) messages across the relays", timeout: 60) { arrived().count >= total }
        let counts = relays.map { $0.delivered().count }
        let expected = Set((0..<perInstance).flatMap { index in (0..<instances.count).map { "so-\($0)-\(index)" } })
        #expect(arrived() == expected)
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        print("scale-out: \(total) messages from 2 instances handed to 2 relays (one stopped after a third) in \(elapsed): \(Int(Double(total) / seconds)) msgs/s; per relay \(counts), duplicates \(counts.reduce(0, +) - total)")
        for instance in instances { #expect(try await instance.stop() == 0) }
        for relay in relays { try await relay.stop() }
    }
}

/// contrib/postfix (b): Postfix returns mail for Postroom's domains through a pipe transport
/// running `postroom submit` into replay. Here, a bounce Postfix generates itself.
@Suite(.serialized, .enabled(if: PostfixInstance.isAvailable, "Postfix is not installed or not runnable (needs root); apt-get install -y postfix"))
struct PostfixPipeBackTests {
    @Test func postfixBouncesComeBackThroughPostroomSubmit() async throws {
        let harness = try Harness()
        let postfix = try PostfixInstance(
            extraMain: "relay_domains = example.com\ntransport_maps = texthash:TRANSPORT\npostroom_destination_recipient_limit = 50",
            extraMaster: "postroom unix - n n - - pipe\n  null_sender= user=nobody argv=\(Harness.binary) submit --spool \(harness.spool) -f <${sender}> -- ${recipient}\n"
                + "gone unix - n n - - pipe\n  user=nobody argv=GONE")
        // gone@sink.test is accepted over SMTP, then fails at delivery (EX_NOUSER): Postfix bounces it.
        try postfix.write("gone.sh", "#!/bin/sh\necho 'mailbox gone'\nexit 67\n")
        chmod(postfix.root + "/gone.sh", 0o755)
        let masterCF = try String(contentsOfFile: postfix.root + "/master.cf", encoding: .utf8)
        try postfix.write("master.cf", masterCF.replacingOccurrences(of: "GONE", with: postfix.root + "/gone.sh"))
        try postfix.write("transport", "gone@sink.test gone:\nexample.com postroom:\n")
        let mainCF = try String(contentsOfFile: postfix.root + "/main.cf", encoding: .utf8)
        try postfix.write("main.cf", mainCF.replacingOccurrences(of: "TRANSPORT", with: postfix.root + "/transport"))
        try await postfix.start()
        try harness.usePipelineSendingTo([postfix.smartHost])
        try await harness.start()
        // The pipe runs as nobody: it must be able to write into replay/.
        chmod(harness.replay, 0o777)

        try harness.dropOutbound(token: "pf-back", to: ["gone@sink.test"])
        let inbox = { harness.files(under: "mailboxes/alice").filter { $0.contains("/new/") } }
        try await waitUntil("Postfix's bounce in alice's Maildir", timeout: 60) { !inbox().isEmpty }
        let bounce = try String(contentsOfFile: harness.spool + "/" + inbox()[0], encoding: .utf8)
        #expect(bounce.contains("Return-Path: <>"), "a bounce keeps its null sender")
        #expect(bounce.contains("mailbox gone"))
        #expect(bounce.contains("X-Token: pf-back"))
        #expect(harness.trackingLines("RECEIVE").contains { $0.contains("\"source\":\"ADMIN\"") && $0.contains("submit-") }, "\(harness.trackingLines("RECEIVE"))")
        try await waitUntil("Postroom's queue to empty", timeout: 30) { harness.queuedFiles().isEmpty }
        #expect(inbox().count == 1, "no report about a report")
        #expect(try await harness.stop() == 0)
        try await postfix.stop()
    }
}
