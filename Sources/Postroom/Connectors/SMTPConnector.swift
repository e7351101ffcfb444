import Foundation

/// Sends mail to other systems over SMTP through smart hosts (Exchange: a Send connector
/// routed through smart hosts; Postfix: `relayhost`).
///
/// One transaction per queue entry, with all its recipients. Each recipient's result comes
/// from the server's replies: 2xx delivered, 4xx deferred (the queue retries with its
/// backoff), 5xx a non-delivery report quoting the reply
/// (`Remote server 127.0.0.1 returned '550 5.1.1 <x@y>: user unknown'`). A failure of the whole
/// session (refused, timed out, 421, lost) tries the next smart host, then defers.
///
/// No TLS and no AUTH: they need a TLS library, which Postroom does not take. The supported
/// way out to the internet is a local MTA (Postfix) as the smart host; see the README.
///
/// Delivery is at least once: when the connection breaks after the final dot was sent but
/// before the server answered, the server may have the message and it is sent again later
/// (RFC 1047; every MTA makes the same trade).
public struct SMTPConnector: Connector {
    public let configuration: ConnectorConfiguration
    let relay: SMTPRelay

    public init(configuration: ConnectorConfiguration, hostname: String) {
        self.configuration = configuration
        let settings = configuration.smtp ?? SMTPSettings(smartHosts: [SmartHost(host: "127.0.0.1", port: 25)])
        relay = SMTPRelay(settings: settings, heloName: settings.heloName ?? hostname, maxIdlePerHost: configuration.concurrency)
        Self.startClosingIdleConnections(of: relay)
    }

    public func deliver(_ entry: QueueEntry, message: [UInt8]) async -> [DeliveryResult] {
        // A typed address (FAX:…) has no SMTP form: it fails alone, the rest is sent.
        var results = [DeliveryResult?](repeating: nil, count: entry.envelope.recipients.count)
        var sendable: [EnvelopeRecipient] = []
        var positions: [Int] = []
        for (index, recipient) in entry.envelope.recipients.enumerated() {
            if ReplayEnvelope.typedAddressType(recipient.address) != nil || !recipient.address.contains("@") {
                results[index] = .failed(status: "5.1.3", diagnostic: "\(recipient.address) is not an SMTP address; connector \(name) sends SMTP only")
            } else {
                sendable.append(recipient)
                positions.append(index)
            }
        }
        guard !sendable.isEmpty else { return results.map { $0! } }
        var smtpEnvelope = entry.envelope
        smtpEnvelope.recipients = sendable
        let envelope = smtpEnvelope
        let relay = self.relay
        let outcome = await onOwnThread {
            relay.deliver(SMTPTransaction(envelope: envelope, message: message))
        }
        for (position, result) in zip(positions, outcome.results) { results[position] = result }
        relay.dsnRelayed.withLock { set in
            if outcome.dsnPassedOn { set.insert(entry.id) } else { set.remove(entry.id) }
        }
        return results.map { $0 ?? .deferred("no result") }
    }

    /// RFC 3461 §6.2.3: a server that took NOTIFY on reports success itself; one that did
    /// not offer DSN gets the message, and Postroom says "relayed".
    public func successAction(for entry: QueueEntry) -> String? {
        relay.dsnRelayed.withLock { $0.remove(entry.id) } != nil ? nil : "relayed"
    }

    /// Says QUIT to connections idle past the idle timeout, for as long as the relay exists.
    private static func startClosingIdleConnections(of relay: SMTPRelay) {
        let period = max(0.05, min(1, relay.settings.idleTimeout / 2))
        Task.detached { [weak relay] in
            while true {
                try? await Task.sleep(for: .milliseconds(Int(period * 1000)))
                guard let relay else { return }
                let expired = relay.expiredIdle()
                if !expired.isEmpty {
                    await onOwnThread { for session in expired { session.quit() } }
                }
            }
        }
    }
}
