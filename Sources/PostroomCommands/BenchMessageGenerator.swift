import Foundation
import Postroom
import PostroomSystem

/// Deterministic test messages, and the two header facts the bench reads back.
enum MessageGenerator {
    static let words = ("transport connector pickup replay queue deliver fax gateway mailbox route "
        + "categorize validate ingest message header body report invoice order status").split(separator: " ").map(String.init)

    /// A plain-text message of about `size` bytes with CRLF line ends, like `genmail.py`'s.
    static func message(index: Int, messageID: String, recipients: [String], size: Int) -> [UInt8] {
        var text = "From: Sender \(index) <sender\(abs(index) % 97)@source.test>\r\n"
        text += "To: \(recipients.joined(separator: ", "))\r\n"
        text += "Subject: benchmark message \(index)\r\n"
        text += "Date: \(MessageDate.format(Date()))\r\n"
        text += "Message-ID: \(messageID)\r\n"
        text += "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        // A small linear congruential generator: the same index always gives the same body.
        var state = UInt64(bitPattern: Int64(index)) &* 6364136223846793005 &+ 1442695040888963407
        while text.utf8.count < size {
            var line: [String] = []
            for _ in 0..<8 {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                line.append(words[Int((state >> 33) % UInt64(words.count))])
            }
            text += line.joined(separator: " ") + "\r\n"
        }
        return Array(text.utf8)
    }

    /// The Message-ID and the number of To/Cc addresses of a message's header.
    static func header(of bytes: [UInt8]) -> (messageID: String?, recipients: Int) {
        var end = bytes.count
        if let blank = bytes.firstRange(of: [13, 10, 13, 10]) ?? bytes.firstRange(of: [10, 10]) { end = blank.lowerBound }
        let text = String(decoding: bytes[..<end], as: UTF8.self)
        // Unfold continuation lines first, so a folded To: counts every address.
        var fields: [String] = []
        for line in text.split(omittingEmptySubsequences: true, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            let line = String(line).trimmingCharacters(in: CharacterSet(charactersIn: "\r"))
            if let start = line.first, start == " " || start == "\t", !fields.isEmpty {
                fields[fields.count - 1] += " " + line.trimmingCharacters(in: .whitespaces)
            } else {
                fields.append(line)
            }
        }
        var messageID: String?
        var recipients = 0
        for field in fields {
            guard let colon = field.firstIndex(of: ":") else { continue }
            let name = field[..<colon].lowercased().trimmingCharacters(in: .whitespaces)
            let value = field[field.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            if name == "message-id", messageID == nil {
                messageID = value
            } else if name == "to" || name == "cc" {
                recipients += value.split(separator: ",").filter { $0.contains("@") }.count
            }
        }
        return (messageID, recipients)
    }
}
