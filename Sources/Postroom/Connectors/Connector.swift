import Foundation
import PostroomSystem

/// What happened to one recipient in one delivery attempt.
public enum DeliveryResult: Sendable, Equatable {
    /// Final: the message is durably where it belongs.
    case delivered
    /// Try again later (quota full, directory missing, agent exit 75).
    case deferred(String)
    /// Final: report to the sender with this enhanced status code (RFC 3463).
    case failed(status: String, diagnostic: String)
}

/// A way of handing messages on: into Maildirs, a drop directory, or a command.
///
/// A connector must be idempotent per queue entry and recipient: delivering the same entry
/// again after a crash must not create a second visible copy.
public protocol Connector: Sendable {
    var configuration: ConnectorConfiguration { get }
    /// Delivers one queue entry; returns one result per recipient, in envelope order.
    func deliver(_ entry: QueueEntry, message: [UInt8]) async -> [DeliveryResult]
    /// Creates what the connector needs at start-up (its directories); errors are logged, not fatal.
    func prepare() throws
    /// The RFC 3464 action of a success notice for a recipient of `entry` that asked for one
    /// (`NOTIFY=SUCCESS`) and was just delivered: `delivered` when this connector is the last
    /// hop, `relayed` when the message left for a system that will not report, nil when the
    /// next system got the DSN parameters and reports itself (RFC 3461 §6.2).
    func successAction(for entry: QueueEntry) -> String?
}

extension Connector {
    public var name: String { configuration.name }
    public func prepare() throws {}

    public func successAction(for entry: QueueEntry) -> String? {
        switch configuration.type {
        case .maildir: return "delivered"
        case .agent, .smtp: return "relayed"
        // The drop file carries NOTIFY on to the consumer in its X-Receiver lines.
        case .foreign: return nil
        }
    }
}

/// Builds the connector a configuration describes.
public enum ConnectorFactory {
    /// `configurationFolder` is the pipeline file's folder: agent programs given as relative paths resolve against it.
    public static func make(_ configuration: ConnectorConfiguration, spool: String, hostname: String, commit: DeliveryCommit,
                            configurationFolder: String = ".") -> any Connector {
        switch configuration.type {
        case .maildir:
            return MaildirConnector(configuration: configuration, spool: spool, hostname: hostname, commit: commit)
        case .foreign:
            return ForeignConnector(configuration: configuration, spool: spool, commit: commit)
        case .agent:
            return AgentConnector(configuration: configuration, spool: spool, configurationFolder: configurationFolder)
        case .smtp:
            return SMTPConnector(configuration: configuration, hostname: hostname)
        }
    }
}

/// A stable 64-bit FNV-1a hash, for names that must be the same after a restart.
func stableHash(_ text: String) -> String {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in text.utf8 {
        hash ^= UInt64(byte)
        hash = hash &* 0x100_0000_01b3
    }
    return String(hash, radix: 16)
}

/// The line ending a message uses, judged by its first line ("\r\n" or "\n").
public func lineEnding(of message: [UInt8]) -> String {
    guard let newline = message.prefix(8192).firstIndex(of: UInt8(ascii: "\n")) else { return "\r\n" }
    return newline > 0 && message[newline - 1] == UInt8(ascii: "\r") ? "\r\n" : "\n"
}
