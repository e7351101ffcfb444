import Foundation
import Postroom
import PostroomSystem

/// How `postroom queue list` and `show` present what is not an ordinary queue entry: claimed
/// files parked as poison before routing, and damaged files moved aside.
extension QueueCommand {
    static func printListLine(_ parked: ParkedClaimedFile, now: Date) {
        let line = [
            pad(parked.claimed.queueID, 18), pad("poison", 9), pad(age(parked.parkedAt, now: now), 7),
            pad(String(parked.size), 5, right: true), pad("-", 11), pad("-", 5, right: true), pad("-", 9),
            "\(parked.sender.isEmpty ? "?" : parked.sender) -> \(parked.recipients.isEmpty ? "?" : parked.recipients.joined(separator: ", "))",
        ].joined(separator: " ")
        print(line)
        print(String(repeating: " ", count: 19) + "(claimed \(parked.claimed.source.rawValue) file \(parked.claimed.originalName), not yet routed: "
              + (parked.reason ?? "reason not recorded") + ")")
    }

    static func printDetails(_ parked: ParkedClaimedFile) {
        print("""
        id:          \(parked.claimed.queueID)
        state:       poison (a claimed \(parked.claimed.source.rawValue) file, parked before routing)
        file:        \(parked.claimed.path)
        name:        \(parked.claimed.originalName)
        message-id:  \(parked.messageID.isEmpty ? "-" : parked.messageID)
        sender:      \(parked.sender.isEmpty ? "-" : parked.sender)
        recipients:  \(parked.recipients.isEmpty ? "-" : parked.recipients.joined(separator: ", "))
        parked:      \(ISO8601DateFormatter().string(from: parked.parkedAt))
        size:        \(parked.size) bytes
        reason:      \(parked.reason ?? "not recorded")
        release:     postroom queue release \(parked.claimed.queueID)  (runs it through the pipeline again)
        """)
        if let head = try? FileSystem.readFile(parked.claimed.path, limit: 64 * 1024) {
            print("header:")
            print(String(decoding: DeliveryService.headerBlock(of: head), as: UTF8.self).split(whereSeparator: \.isNewline).map { "  " + $0 }.joined(separator: "\n"))
        }
        print("")
    }

    /// Damaged files are listed on standard error after the queue: they need an operator.
    static func printDamaged(_ paths: [String]) {
        guard !paths.isEmpty else { return }
        printError("-- \(paths.count) damaged queue file(s), not delivered; inspect each (and its .reason), then remove it or rebuild the message:")
        for path in paths { printError("   \(path)") }
    }
}

extension QueueListing {
    init(parked: ParkedClaimedFile) {
        id = parked.claimed.queueID
        queueID = parked.claimed.queueID
        state = QueueState.poison.rawValue
        connector = ""
        messageID = parked.messageID
        sender = parked.sender
        recipients = parked.recipients
        arrival = parked.parkedAt
        size = parked.size
        attempts = 0
        nextAttempt = nil
        lastError = parked.reason
        kind = "claimed"
    }
}
