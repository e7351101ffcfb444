import Foundation
import PostroomSystem

/// One SMTP reply (RFC 5321 §4.2): a three-digit code and one or more lines of text.
///
/// A multi-line reply (`250-…` lines, then `250 …`) is one value; its ``text`` joins the
/// lines with spaces, so a reason quoted in a report reads as one line.
public struct SMTPReply: Sendable, Equatable, CustomStringConvertible {
    public var code: Int
    /// The text of each line, after the code and its separator.
    public var lines: [String]

    public init(code: Int, lines: [String]) {
        self.code = code
        self.lines = lines
    }

    /// 2: done, 3: go on (354), 4: transient failure, 5: permanent failure.
    public var replyClass: Int { code / 100 }
    public var isPositive: Bool { replyClass == 2 || replyClass == 3 }
    public var isTransient: Bool { replyClass == 4 }
    public var isPermanent: Bool { replyClass == 5 }

    /// The lines' text joined with spaces.
    public var text: String { lines.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.joined(separator: " ") }

    /// The reply as a person would quote it: `550 5.1.1 <x@y>: user unknown`.
    public var description: String { text.isEmpty ? "\(code)" : "\(code) \(text)" }

    /// The RFC 3463 code at the start of the first line (`5.1.1`), when the server sent one
    /// whose class agrees with the reply code.
    public var enhancedStatus: String? {
        guard let first = lines.first,
              let code = AgentConnector.enhancedStatusCode(at: first.trimmingCharacters(in: .whitespaces)),
              code.hasPrefix(String(replyClass)) else { return nil }
        return code
    }

    /// The enhanced status to report: the server's own, else the class default (`4.0.0`, `5.0.0`).
    public var status: String { enhancedStatus ?? "\(replyClass).0.0" }
}

/// Why an SMTP exchange could not go on.
public enum SMTPError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The network failed (refused, reset, timed out, closed) during `stage`.
    case network(NetworkError, stage: String)
    /// The server sent something that is not an SMTP reply.
    case garbage(String, stage: String)

    public var description: String {
        switch self {
        case .network(let error, let stage): return "\(error) (while waiting for \(stage))"
        case .garbage(let what, let stage): return "protocol error in the reply to \(stage): \(what)"
        }
    }
}

/// Reads replies from a connection: buffers bytes, splits lines, joins multi-line replies.
///
/// Tolerates a bare LF as line end (some servers send one). Refuses lines over 4,096
/// octets and replies over 100 lines: such a peer is not speaking SMTP, and reading on
/// would let it make the client buffer without bound.
final class SMTPReplyReader {
    private let connection: TCPConnection
    private var buffer: [UInt8] = []
    private var start = 0
    static let maximumLine = 4096
    static let maximumLines = 100

    init(connection: TCPConnection) { self.connection = connection }

    /// Whether bytes the server sent are already buffered (it spoke out of turn, or a pipelined reply arrived early).
    var hasBufferedBytes: Bool { start < buffer.count }

    /// Reads one whole reply, waiting up to `timeout` seconds in total.
    func reply(timeout: Double, stage: String) throws(SMTPError) -> SMTPReply {
        let deadline = Date().addingTimeInterval(timeout)
        var code: Int?
        var lines: [String] = []
        while true {
            let line = try self.line(deadline: deadline, stage: stage)
            let bytes = Array(line.utf8)
            guard bytes.count >= 3, bytes[0] >= UInt8(ascii: "2"), bytes[0] <= UInt8(ascii: "5"),
                  bytes[1...2].allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
                  bytes.count == 3 || bytes[3] == UInt8(ascii: " ") || bytes[3] == UInt8(ascii: "-"),
                  let lineCode = Int(String(decoding: bytes[0..<3], as: UTF8.self)) else {
                throw .garbage("'\(Self.excerpt(line))' is not an SMTP reply line", stage: stage)
            }
            if let code, code != lineCode {
                throw .garbage("a multi-line reply changed its code from \(code) to \(lineCode)", stage: stage)
            }
            code = lineCode
            lines.append(bytes.count > 4 ? String(decoding: bytes[4...], as: UTF8.self) : "")
            if bytes.count == 3 || bytes[3] == UInt8(ascii: " ") { return SMTPReply(code: lineCode, lines: lines) }
            if lines.count >= Self.maximumLines { throw .garbage("a reply of more than \(Self.maximumLines) lines", stage: stage) }
        }
    }

    private func line(deadline: Date, stage: String) throws(SMTPError) -> String {
        while true {
            if let newline = buffer[start...].firstIndex(of: UInt8(ascii: "\n")) {
                var end = newline
                if end > start, buffer[end - 1] == UInt8(ascii: "\r") { end -= 1 }
                let line = String(decoding: buffer[start..<end], as: UTF8.self)
                start = newline + 1
                if start == buffer.count {
                    buffer.removeAll(keepingCapacity: true)
                    start = 0
                }
                return line
            }
            if buffer.count - start > Self.maximumLine {
                throw .garbage("a reply line longer than \(Self.maximumLine) octets", stage: stage)
            }
            let remaining = deadline.timeIntervalSinceNow
            guard remaining > 0 else {
                throw .network(NetworkError(operation: "read from", peer: connection.peer, kind: .timedOut), stage: stage)
            }
            do {
                let chunk = try connection.read(limit: 16384, timeout: remaining)
                if start > 0 {
                    buffer.removeFirst(start)
                    start = 0
                }
                buffer.append(contentsOf: chunk)
            } catch {
                throw .network(error, stage: stage)
            }
        }
    }

    static func excerpt(_ line: String) -> String {
        let cleaned = String(String.UnicodeScalarView(line.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? " " : $0 }))
        return cleaned.count > 80 ? String(cleaned.prefix(80)) + "…" : cleaned
    }
}
