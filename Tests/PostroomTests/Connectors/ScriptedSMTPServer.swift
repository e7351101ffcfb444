import Foundation
import PostroomSystem
import Synchronization
@testable import Postroom

/// A scripted SMTP server on a real loopback socket, one thread per connection.
///
/// Its replies are set per step; it records every command line, every message it received,
/// whether commands arrived together in one read (pipelined) and how many connections it took.
final class ScriptedSMTPServer: Sendable {
    /// What the server answers; each reply may be multi-line (`250-a\r\n250 b`).
    struct Script: Sendable {
        var greeting = "220 scripted.test ESMTP"
        var ehlo = "250-scripted.test\r\n250-PIPELINING\r\n250-SIZE 100000\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-DSN\r\n250 ENHANCEDSTATUSCODES"
        var helo = "250 scripted.test"
        var mail = "250 2.1.0 Ok"
        /// The reply to `RCPT TO:<address>`, by address.
        var rcpt: @Sendable (String) -> String = { _ in "250 2.1.5 Ok" }
        var data = "354 End data with <CR><LF>.<CR><LF>"
        var dataEnd = "250 2.0.0 Ok: queued"
        var rset = "250 2.0.0 Ok"
        /// Stop answering (but keep the connection open) when this command (verb) arrives.
        var hangAt: String?
        /// Close the connection after reading this many octets of message data.
        var closeAfterDataOctets: Int?
        /// After the 354, stop reading for this many seconds (the client's writes fill the socket).
        var stallAfterDataReply: Double?
        /// Send this instead of the reply to this verb.
        var garbageAt: (verb: String, text: String)?
    }

    let listener: TCPListener
    private let script: Script
    private let record = Mutex<Record>(Record())

    struct Record: Sendable {
        var commands: [String] = []
        var messages: [[UInt8]] = []
        var connections = 0
        /// For each MAIL FROM: whether the RCPTs and DATA were already waiting in the buffer.
        var pipelinedBatches: [Bool] = []
    }

    init(_ script: Script = Script()) throws {
        listener = try TCPListener()
        self.script = script
        let thread = Thread { [self] in self.acceptLoop() }
        thread.start()
    }

    deinit { listener.shutdown() }

    /// Stops accepting connections (the accept thread ends).
    func stop() { listener.shutdown() }

    var port: UInt16 { listener.port }
    var host: SmartHost { SmartHost(host: "127.0.0.1", port: port) }
    var commands: [String] { record.withLock { $0.commands } }
    var messages: [[UInt8]] { record.withLock { $0.messages } }
    var connections: Int { record.withLock { $0.connections } }
    var pipelinedBatches: [Bool] { record.withLock { $0.pipelinedBatches } }

    private func acceptLoop() {
        while let connection = try? listener.accept(timeout: 120) {
            record.withLock { $0.connections += 1 }
            let thread = Thread { [self] in self.serve(ServerSide(connection)) }
            thread.start()
        }
    }

    private func serve(_ client: ServerSide) {
        defer { client.connection.close() }
        guard client.send(script.greeting) else { return }
        // As a real server: RCPT needs an accepted MAIL, DATA an accepted RCPT.
        var mailAccepted = false
        var recipientsAccepted = 0
        while let line = client.line(timeout: 30) {
            record.withLock { $0.commands.append(line) }
            let verb = String(line.prefix { $0 != " " && $0 != ":" }).uppercased()
            if script.hangAt == verb {
                // Read on without answering until the client gives up and closes.
                while client.line(timeout: 60) != nil {}
                return
            }
            if let garbage = script.garbageAt, garbage.verb == verb {
                _ = client.send(garbage.text)
                continue
            }
            let reply: String
            switch verb {
            case "EHLO": reply = script.ehlo
            case "HELO": reply = script.helo
            case "MAIL":
                record.withLock { $0.pipelinedBatches.append(client.hasBufferedLine) }
                reply = script.mail
                mailAccepted = reply.hasPrefix("2")
                recipientsAccepted = 0
            case "RCPT":
                let address = line.split(separator: "<", maxSplits: 1).last.map { String($0.prefix { $0 != ">" }) } ?? ""
                reply = mailAccepted ? script.rcpt(address) : "503 5.5.1 Error: need MAIL command"
                if reply.hasPrefix("2") { recipientsAccepted += 1 }
            case "DATA":
                guard recipientsAccepted > 0 else {
                    reply = "503 5.5.1 Error: need RCPT command"
                    break
                }
                mailAccepted = false
                guard client.send(script.data) else { return }
                guard script.data.hasPrefix("354") else { continue }
                if let stall = script.stallAfterDataReply {
                    Thread.sleep(forTimeInterval: stall)
                    return
                }
                var message: [UInt8] = []
                var octets = 0
                while let dataLine = client.line(timeout: 30, keepEnding: true) {
                    octets += dataLine.utf8.count
                    if let limit = script.closeAfterDataOctets, octets >= limit { return }
                    if dataLine == ".\r\n" { break }
                    message += Array(dataLine.utf8)
                }
                record.withLock { $0.messages.append(message) }
                reply = script.dataEnd
            case "RSET":
                reply = script.rset
                mailAccepted = false
                recipientsAccepted = 0
            case "QUIT":
                _ = client.send("221 2.0.0 Bye")
                return
            default: reply = "502 5.5.2 Error: command not recognized"
            }
            guard client.send(reply) else { return }
            if reply.hasPrefix("421") { return }
        }
    }
}

/// The server's end of one connection: line reading over a buffer.
final class ServerSide {
    let connection: TCPConnection
    private var buffer: [UInt8] = []

    init(_ connection: TCPConnection) { self.connection = connection }

    var hasBufferedLine: Bool { buffer.contains(UInt8(ascii: "\n")) }

    func send(_ reply: String) -> Bool {
        (try? connection.write(Array((reply + "\r\n").utf8), timeout: 10)) != nil
    }

    func line(timeout: Double, keepEnding: Bool = false) -> String? {
        while true {
            if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let bytes = Array(buffer[...newline])
                buffer.removeFirst(newline + 1)
                let text = String(decoding: bytes, as: UTF8.self)
                return keepEnding ? text : text.trimmingCharacters(in: .newlines)
            }
            guard let chunk = try? connection.read(timeout: timeout) else { return nil }
            buffer += chunk
        }
    }
}
