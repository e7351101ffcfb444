import Foundation
// INTERIM: stands in for the Message module's validator until it is merged. Deleted on merge.

public enum MessageSource: String, Sendable, Codable { case pickup, replay }

public struct SubmissionLimits: Sendable, Equatable {
    public var maxHeaderSize: Int = 65_536
    public var maxRecipients: Int = 100
    public var maxMessageSize: Int64 = 36_700_160
    public init(maxHeaderSize: Int = 65_536, maxRecipients: Int = 100, maxMessageSize: Int64 = 36_700_160) {
        self.maxHeaderSize = maxHeaderSize
        self.maxRecipients = maxRecipients
        self.maxMessageSize = maxMessageSize
    }
}

public struct SubmissionContext: Sendable {
    public var hostname: String
    public var defaultDomain: String
    public var now: Date
    public init(hostname: String, defaultDomain: String, now: Date) {
        self.hostname = hostname
        self.defaultDomain = defaultDomain
        self.now = now
    }
}

public struct AcceptedSubmission: Sendable {
    public var envelope: Envelope
    public var message: [UInt8]
    public var messageID: String
    public var headerChanges: [String]
}

public struct SubmissionReport: Sendable {
    public var envelope: Envelope
    public var status: String
    public var diagnostic: String
    public var headerBytes: [UInt8]
}

public enum SubmissionVerdict: Sendable {
    case accepted(AcceptedSubmission)
    case report(SubmissionReport)
    case badmail(reason: String)
}

public enum SubmissionValidator {
    public static func validate(_ bytes: [UInt8], totalSize: Int64, source: MessageSource, limits: SubmissionLimits, context: SubmissionContext) -> SubmissionVerdict {
        let text = String(decoding: bytes, as: UTF8.self)
        guard let end = text.range(of: "\n\n") ?? text.range(of: "\r\n\r\n") else { return .badmail(reason: "no blank line after the header") }
        var fields: [(String, String)] = []
        for line in text[..<end.lowerBound].split(separator: "\n") {
            let line = line.trimmingCharacters(in: .init(charactersIn: "\r"))
            if line.first == " " || line.first == "\t" {
                if !fields.isEmpty { fields[fields.count - 1].1 += " " + line.trimmingCharacters(in: .whitespaces) }
            } else if let colon = line.firstIndex(of: ":") {
                fields.append((line[..<colon].lowercased(), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
            }
        }
        func addresses(_ value: String) -> [String] {
            value.split(separator: ",").compactMap { part in
                var s = String(part)
                if let l = s.firstIndex(of: "<"), let r = s.lastIndex(of: ">"), l < r { s = String(s[s.index(after: l)..<r]) }
                s = s.trimmingCharacters(in: .whitespaces)
                return s.contains("@") || s.contains(":") ? s : nil
            }
        }
        var envelope = Envelope(sender: "", recipients: [])
        var body = bytes
        if source == .replay {
            guard let sender = fields.first(where: { $0.0 == "x-sender" }) else { return .badmail(reason: "no X-Sender") }
            envelope.sender = addresses(sender.1.components(separatedBy: " ").first ?? "").first ?? ""
            envelope.recipients = fields.filter { $0.0 == "x-receiver" }.compactMap { addresses($0.1.components(separatedBy: " ").first ?? "").first }.map { EnvelopeRecipient(address: $0) }
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
            let kept = lines.drop { $0.lowercased().hasPrefix("x-sender:") || $0.lowercased().hasPrefix("x-receiver:") }
            body = Array(kept.joined(separator: "\n").utf8)
        } else {
            guard let from = fields.first(where: { $0.0 == "from" }), let sender = addresses(from.1).first else { return .badmail(reason: "no sender") }
            envelope.sender = sender
            var seen = Set<String>()
            for field in fields where ["to", "cc", "bcc"].contains(field.0) {
                for address in addresses(field.1) where seen.insert(address.lowercased()).inserted {
                    envelope.recipients.append(EnvelopeRecipient(address: address))
                }
            }
        }
        guard !envelope.recipients.isEmpty else { return .report(SubmissionReport(envelope: envelope, status: "5.1.3", diagnostic: "no valid recipients", headerBytes: [])) }
        var messageID = fields.first { $0.0 == "message-id" }?.1 ?? ""
        var prefix = "Received: from localhost by \(context.hostname) (Postroom) with \(source.rawValue)\n"
        if messageID.isEmpty {
            messageID = "<\(UUID().uuidString)@\(context.defaultDomain)>"
            prefix += "Message-ID: \(messageID)\n"
        }
        return .accepted(AcceptedSubmission(envelope: envelope, message: Array(prefix.utf8) + body, messageID: messageID, headerChanges: []))
    }
}

public struct FailedRecipient: Sendable, Codable, Equatable {
    public var address: String
    public var status: String
    public var diagnostic: String
    public var action: String = "failed"
    public init(address: String, status: String, diagnostic: String, action: String = "failed") {
        self.address = address
        self.status = status
        self.diagnostic = diagnostic
        self.action = action
    }
}

public enum DeliveryStatusNotification {
    public static func build(about original: Envelope, originalMessage: [UInt8], originalMessageID: String?, failed: [FailedRecipient],
                             reportingDomain: String, reportingHost: String, now: Date, messageID: String) -> (envelope: Envelope, message: [UInt8])? {
        guard !original.hasNullSender else { return nil }
        var text = "From: postmaster@\(reportingDomain)\nTo: \(original.sender)\nSubject: Undeliverable\nMessage-ID: \(messageID)\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\n\n--b\n\n"
        for failure in failed { text += "\(failure.address): \(failure.status) \(failure.diagnostic)\n" }
        text += "--b--\n"
        return (Envelope(sender: "", recipients: [EnvelopeRecipient(address: original.sender)]), Array(text.utf8))
    }
}

public enum ReplayFormat {
    public static func encode(envelope: Envelope, message: [UInt8], lineEnding: String = "\r\n") -> [UInt8] {
        var head = "X-Sender: <\(envelope.sender)>\(lineEnding)"
        for recipient in envelope.recipients {
            head += "X-Receiver: <\(recipient.address)>" + recipient.parameters.map { " " + $0 }.joined() + lineEnding
        }
        return Array(head.utf8) + message
    }
}
