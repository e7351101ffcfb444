import Foundation
import PostroomSystem

/// What an SMTP server said it can do in its EHLO reply.
public struct SMTPCapabilities: Sendable, Equatable {
    public var esmtp = false
    public var pipelining = false
    /// The SIZE limit; 0 when the server offers SIZE without a limit, nil without SIZE.
    public var size: Int?
    public var eightBitMIME = false
    public var smtpUTF8 = false
    public var dsn = false
    public var enhancedStatusCodes = false

    /// Reads the EHLO reply's keyword lines (the first line is the greeting name).
    init(ehlo reply: SMTPReply) {
        esmtp = true
        for line in reply.lines.dropFirst() {
            let words = line.uppercased().split(separator: " ")
            guard let keyword = words.first else { continue }
            switch keyword {
            case "PIPELINING": pipelining = true
            case "SIZE": size = words.count > 1 ? Int(words[1]) ?? 0 : 0
            case "8BITMIME": eightBitMIME = true
            case "SMTPUTF8": smtpUTF8 = true
            case "DSN": dsn = true
            case "ENHANCEDSTATUSCODES": enhancedStatusCodes = true
            default: break
            }
        }
    }

    init() {}
}

/// The time limits of an SMTP client, RFC 5321 §4.5.3.2 by default.
public struct SMTPTimeouts: Sendable, Equatable {
    public var connect: Double = 30
    /// The initial 220 greeting: 5 minutes.
    public var greeting: Double = 300
    public var helo: Double = 300
    /// MAIL: 5 minutes.
    public var mail: Double = 300
    /// Each RCPT: 5 minutes.
    public var rcpt: Double = 300
    /// DATA initiation (the 354): 2 minutes.
    public var data: Double = 120
    /// Each block of data written: 3 minutes.
    public var block: Double = 180
    /// DATA termination (the reply to the final dot): 10 minutes.
    public var dataEnd: Double = 600
    /// RSET before a reused connection's next transaction (Postfix: 20 s).
    public var rset: Double = 20
    public var quit: Double = 5

    public init() {}
}

/// The outcome of one transaction on one session.
struct SMTPTransactionOutcome: Sendable {
    /// One per recipient, in envelope order.
    var results: [DeliveryResult]
    /// The session can carry another transaction (it is returned to the cache).
    var reusable: Bool
    /// Nothing is final and the failure belongs to the session, not the message (network,
    /// 421, garbage): another smart host may be tried in the same attempt.
    var tryAnotherHost: Bool
    /// The server offered DSN, so the recipients' NOTIFY went on with the message.
    var dsnPassedOn: Bool
}

/// One SMTP client session (RFC 5321) to one server: greeting, EHLO (HELO fallback), then
/// any number of transactions, then QUIT.
///
/// Synchronous: every step blocks its thread for at most its timeout (``SMTPTimeouts``).
/// The connector runs sessions on threads of their own, never on Swift's cooperative pool.
/// Owned by one thread at a time (handed over through the connection cache's lock).
final class SMTPSession: @unchecked Sendable {
    // @unchecked: a session is used by one delivery at a time; the cache hands it over
    // under its mutex, so no two threads ever touch it concurrently.
    let connection: TCPConnection
    /// The host as configured, for reasons (`Remote server 127.0.0.1 returned …`).
    let hostName: String
    let timeouts: SMTPTimeouts
    private(set) var capabilities = SMTPCapabilities()
    private let reader: SMTPReplyReader
    /// Transactions completed on this session.
    var transactions = 0
    /// When the session last finished a transaction, for idle closing.
    var idleSince = ContinuousClock.now
    /// When it was opened: a connection is not reused after ``reuseTimeLimit`` (Postfix's
    /// smtp_connection_reuse_time_limit), so a relay's reloaded settings reach a busy sender.
    let opened = ContinuousClock.now
    static let reuseTimeLimit: Duration = .seconds(300)

    private init(connection: TCPConnection, hostName: String, timeouts: SMTPTimeouts) {
        self.connection = connection
        self.hostName = hostName
        self.timeouts = timeouts
        reader = SMTPReplyReader(connection: connection)
    }

    /// Why a session could not be opened: the network, or a reply that was not 2xx.
    enum OpenFailure: Error, Sendable, CustomStringConvertible {
        case error(SMTPError)
        case refused(SMTPReply, stage: String, host: String)

        var description: String {
            switch self {
            case .error(let error): return "\(error)"
            case .refused(let reply, let stage, let host): return "Remote server \(host) returned '\(reply)' (in reply to \(stage))"
            }
        }
    }

    /// Connects, reads the greeting and introduces itself (EHLO, or HELO when EHLO is refused).
    static func open(host: String, port: UInt16, heloName: String, timeouts: SMTPTimeouts) throws(OpenFailure) -> SMTPSession {
        let connection: TCPConnection
        do {
            connection = try TCPConnection.connect(host: host, port: port, timeout: timeouts.connect)
        } catch {
            throw .error(.network(error, stage: "the connection"))
        }
        let session = SMTPSession(connection: connection, hostName: host, timeouts: timeouts)
        func step(_ line: String?, timeout: Double, stage: String) throws(OpenFailure) -> SMTPReply {
            do {
                if let line { return try session.command(line, timeout: timeout, stage: stage) }
                return try session.reader.reply(timeout: timeout, stage: stage)
            } catch {
                session.connection.close()
                throw .error(error)
            }
        }
        let greeting = try step(nil, timeout: timeouts.greeting, stage: "the greeting")
        guard greeting.code == 220 else {
            session.quit()
            throw .refused(greeting, stage: "the connection", host: host)
        }
        let ehlo = try step("EHLO \(heloName)", timeout: timeouts.helo, stage: "EHLO")
        if ehlo.replyClass == 2 {
            session.capabilities = SMTPCapabilities(ehlo: ehlo)
            return session
        }
        if ehlo.code == 421 {
            session.connection.close()
            throw .refused(ehlo, stage: "EHLO", host: host)
        }
        let helo = try step("HELO \(heloName)", timeout: timeouts.helo, stage: "HELO")
        guard helo.replyClass == 2 else {
            session.quit()
            throw .refused(helo, stage: "HELO", host: host)
        }
        return session
    }

    /// Makes a cached session ready for another transaction: it must not have closed or
    /// spoken out of turn, and must answer RSET with 250.
    func reset() -> Bool {
        guard !connection.hasPendingInputOrClosed, !reader.hasBufferedBytes else { return false }
        guard let reply = try? command("RSET", timeout: timeouts.rset, stage: "RSET"), reply.replyClass == 2 else {
            return false
        }
        return true
    }

    /// Says goodbye (best effort, short timeout) and closes.
    func quit() {
        _ = try? command("QUIT", timeout: min(timeouts.quit, 5), stage: "QUIT")
        connection.close()
    }

    private func command(_ line: String, timeout: Double, stage: String) throws(SMTPError) -> SMTPReply {
        try send(line + "\r\n", stage: stage)
        return try reader.reply(timeout: timeout, stage: stage)
    }

    private func send(_ text: String, stage: String) throws(SMTPError) {
        do {
            try connection.write(Array(text.utf8), timeout: timeouts.block)
        } catch {
            throw .network(error, stage: stage)
        }
    }

    // MARK: One transaction

    /// Sends one message to all its recipients: MAIL, RCPT…, DATA, the data, the final dot.
    ///
    /// With PIPELINING, MAIL, every RCPT and DATA go in one write and the replies are read
    /// in order (RFC 2920); without it, one command at a time. Each recipient ends with a
    /// result: 2xx delivered, 4xx deferred, 5xx failed, quoting the server's reply.
    func send(_ transaction: SMTPTransaction) -> SMTPTransactionOutcome {
        let count = transaction.recipients.count
        let host = hostName
        func all(_ result: DeliveryResult, reusable: Bool, anotherHost: Bool = false) -> SMTPTransactionOutcome {
            SMTPTransactionOutcome(results: Array(repeating: result, count: count), reusable: reusable, tryAnotherHost: anotherHost, dsnPassedOn: false)
        }
        func quoted(_ reply: SMTPReply, _ stage: String?) -> String {
            "Remote server \(host) returned '\(reply)'" + (stage.map { " (in reply to \($0))" } ?? "")
        }
        func result(_ reply: SMTPReply, stage: String?) -> DeliveryResult {
            if reply.replyClass == 2 { return .delivered }
            if reply.isPermanent { return .failed(status: reply.status, diagnostic: quoted(reply, stage)) }
            return .deferred(quoted(reply, stage))
        }

        // Refusals that need no round trip.
        if transaction.needsSMTPUTF8, !capabilities.smtpUTF8 {
            return all(.failed(status: "5.6.7", diagnostic: "Remote server \(host) does not offer SMTPUTF8, which the non-ASCII envelope address needs"), reusable: true)
        }
        if let limit = capabilities.size, limit > 0, transaction.size > limit {
            return all(.failed(status: "5.3.4", diagnostic: "the message (\(transaction.size) octets) is larger than remote server \(host) accepts (SIZE \(limit))"), reusable: true)
        }

        var mail = "MAIL FROM:<\(transaction.sender)>"
        if capabilities.size != nil { mail += " SIZE=\(transaction.size)" }
        if transaction.has8bit, capabilities.eightBitMIME { mail += " BODY=8BITMIME" }
        if capabilities.smtpUTF8, transaction.needsSMTPUTF8 || transaction.headerHasUTF8 { mail += " SMTPUTF8" }
        let dsn = capabilities.dsn
        if dsn { for parameter in transaction.senderParameters { mail += " " + parameter } }
        let rcpts = transaction.recipients.map { recipient in
            "RCPT TO:<\(recipient.address)>" + (dsn ? recipient.parameters.map { " " + $0 }.joined() : "")
        }

        var results = [DeliveryResult?](repeating: nil, count: count)
        var accepted: [Int] = []
        do throws(SMTPError) {
            let mailReply: SMTPReply
            var dataReply: SMTPReply?
            if capabilities.pipelining {
                // One write, then the replies in order: MAIL, each RCPT, DATA (RFC 2920 §3.1).
                try send(([mail] + rcpts + ["DATA"]).map { $0 + "\r\n" }.joined(), stage: "MAIL FROM")
                mailReply = try reader.reply(timeout: timeouts.mail, stage: "MAIL FROM")
                if mailReply.code == 421 {
                    connection.close()
                    return all(.deferred(quoted(mailReply, "MAIL FROM")), reusable: false, anotherHost: true)
                }
                for index in 0..<count {
                    let reply = try reader.reply(timeout: timeouts.rcpt, stage: "RCPT TO")
                    if reply.code == 421 { connection.close(); return all(.deferred(quoted(reply, "RCPT TO")), reusable: false, anotherHost: true) }
                    if mailReply.replyClass == 2 {
                        results[index] = reply.replyClass == 2 ? nil : result(reply, stage: nil)
                        if reply.replyClass == 2 { accepted.append(index) }
                    }
                }
                dataReply = try reader.reply(timeout: timeouts.data, stage: "DATA")
            } else {
                mailReply = try command(mail, timeout: timeouts.mail, stage: "MAIL FROM")
                if mailReply.replyClass == 2 {
                    for (index, line) in rcpts.enumerated() {
                        let reply = try command(line, timeout: timeouts.rcpt, stage: "RCPT TO")
                        if reply.code == 421 { connection.close(); return all(.deferred(quoted(reply, "RCPT TO")), reusable: false, anotherHost: true) }
                        results[index] = reply.replyClass == 2 ? nil : result(reply, stage: nil)
                        if reply.replyClass == 2 { accepted.append(index) }
                    }
                    if !accepted.isEmpty { dataReply = try command("DATA", timeout: timeouts.data, stage: "DATA") }
                }
            }
            if mailReply.code == 421 || dataReply?.code == 421 {
                let reply = mailReply.code == 421 ? mailReply : dataReply!
                connection.close()
                return all(.deferred(quoted(reply, mailReply.code == 421 ? "MAIL FROM" : "DATA")), reusable: false, anotherHost: true)
            }
            guard mailReply.replyClass == 2 else {
                // A pipelined DATA after a refused MAIL may still have got a 354: end it empty.
                if dataReply?.code == 354 { _ = try? finishEmptyData() }
                return all(result(mailReply, stage: "MAIL FROM"), reusable: true)
            }
            guard !accepted.isEmpty else {
                if dataReply?.code == 354 { _ = try finishEmptyData() }
                return SMTPTransactionOutcome(results: results.map { $0 ?? .deferred("no reply") }, reusable: true, tryAnotherHost: false, dsnPassedOn: dsn)
            }
            guard let dataReply, dataReply.code == 354 else {
                let reply = dataReply ?? SMTPReply(code: 451, lines: ["no reply to DATA"])
                for index in accepted { results[index] = result(reply, stage: "DATA") }
                return SMTPTransactionOutcome(results: results.map { $0! }, reusable: true, tryAnotherHost: false, dsnPassedOn: dsn)
            }
            do {
                try connection.write(transaction.data, timeout: timeouts.block)
            } catch {
                // The dot has not gone: nothing is final, and another host may take it.
                connection.close()
                let reason = "\(SMTPError.network(error, stage: "the end of DATA")) — talking to \(host)"
                let anyFinal = results.contains { $0 != nil }
                return SMTPTransactionOutcome(results: results.map { $0 ?? .deferred(reason) }, reusable: false,
                                              tryAnotherHost: !anyFinal, dsnPassedOn: false)
            }
            let endReply = try reader.reply(timeout: timeouts.dataEnd, stage: "the end of DATA")
            for index in accepted { results[index] = result(endReply, stage: "the end of DATA") }
            if endReply.code == 421 { connection.close() } else { transactions += 1 }
            return SMTPTransactionOutcome(results: results.map { $0! }, reusable: endReply.code != 421, tryAnotherHost: false, dsnPassedOn: dsn)
        } catch {
            // Network failure or garbage before the final reply. Recipients a server already
            // refused stay refused; the others go to the next host now or wait for the next
            // attempt. After the dot was sent the server may have the message: sending it
            // again risks a duplicate, never a loss (and it is the same risk now or later).
            connection.close()
            let reason = "\(error) — talking to \(host)"
            let anyFinal = results.contains { $0 != nil }
            return SMTPTransactionOutcome(results: results.map { $0 ?? .deferred(reason) }, reusable: false,
                                          tryAnotherHost: !anyFinal, dsnPassedOn: false)
        }
    }

    /// Ends a DATA phase with no content, after every recipient was refused but DATA got 354.
    private func finishEmptyData() throws(SMTPError) {
        try send(".\r\n", stage: "the end of DATA")
        _ = try reader.reply(timeout: timeouts.dataEnd, stage: "the end of DATA")
    }
}
