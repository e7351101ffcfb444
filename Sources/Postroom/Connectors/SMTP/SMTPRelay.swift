import Foundation
import PostroomSystem
import Synchronization

/// The smart hosts of one smtp connector: which are up, and their idle connections.
///
/// - Hosts are tried in order (or from a rotating start with `spread`). A host whose
///   connection or greeting fails is skipped for ``SMTPSettings/hostBackoff``, doubled after
///   each further failure up to ``SMTPSettings/hostBackoffMax``; the next host takes the message
///   in the same attempt. When every host is down the entry is deferred with each host's reason.
/// - Connections are cached per host, at most `concurrency` idle ones each. A cached
///   connection is checked (not closed, nothing unread) and reset with RSET before its next
///   transaction; one idle for longer than ``SMTPSettings/idleTimeout`` is closed with QUIT.
///
/// All methods block; they run on the delivery's own thread (see ``SMTPConnector``).
final class SMTPRelay: Sendable {
    let settings: SMTPSettings
    let heloName: String
    let maxIdlePerHost: Int

    private struct HostState {
        var idle: [SMTPSession] = []
        var failures = 0
        var downUntil: ContinuousClock.Instant?
        var lastError = ""
    }

    private struct State {
        var hosts: [HostState]
        var rotation = 0
    }

    private let state: Mutex<State>
    /// Entry ids whose last delivery went to a server that took the DSN parameters on.
    let dsnRelayed = Mutex<Set<String>>([])

    init(settings: SMTPSettings, heloName: String, maxIdlePerHost: Int) {
        self.settings = settings
        self.heloName = heloName
        self.maxIdlePerHost = max(1, maxIdlePerHost)
        state = Mutex(State(hosts: Array(repeating: HostState(), count: settings.smartHosts.count)))
    }

    /// Sends one transaction through the first smart host that takes it.
    func deliver(_ transaction: SMTPTransaction) -> SMTPTransactionOutcome {
        var reasons: [String] = []
        for index in order() {
            let host = settings.smartHosts[index]
            if let reason = skipReason(index) {
                reasons.append("\(host) \(reason)")
                continue
            }
            let session: SMTPSession
            if let cached = takeIdle(index) {
                session = cached
            } else {
                do {
                    session = try SMTPSession.open(host: host.host, port: host.port, heloName: heloName, timeouts: settings.timeouts)
                } catch {
                    markDown(index, reason: "\(error)")
                    reasons.append("\(host): \(error)")
                    continue
                }
            }
            let outcome = session.send(transaction)
            if outcome.reusable { putIdle(index, session) } else { session.connection.close() }
            if outcome.tryAnotherHost {
                let reason = outcome.results.first.map { result -> String in
                    if case .deferred(let text) = result { return text }
                    return "failed"
                } ?? "failed"
                markDown(index, reason: reason)
                reasons.append("\(host): \(reason)")
                continue
            }
            markUp(index)
            return outcome
        }
        let reason = "no smart host took the message: " + reasons.joined(separator: "; ")
        return SMTPTransactionOutcome(results: Array(repeating: .deferred(reason), count: transaction.recipients.count),
                                      reusable: false, tryAnotherHost: false, dsnPassedOn: false)
    }

    /// Host indices in the order to try them for this transaction.
    private func order() -> [Int] {
        let count = settings.smartHosts.count
        guard settings.spread, count > 1 else { return Array(0..<count) }
        let start = state.withLock { state -> Int in
            defer { state.rotation &+= 1 }
            return state.rotation % count
        }
        return (0..<count).map { (start + $0) % count }
    }

    private func skipReason(_ index: Int) -> String? {
        state.withLock { state -> String? in
            guard let until = state.hosts[index].downUntil else { return nil }
            let now = ContinuousClock.now
            guard until > now else { return nil }
            let seconds = Int((until - now) / .seconds(1)) + 1
            return "is skipped for \(seconds)s more after: \(state.hosts[index].lastError)"
        }
    }

    private func markDown(_ index: Int, reason: String) {
        state.withLock { state in
            state.hosts[index].failures += 1
            let exponent = min(state.hosts[index].failures - 1, 20)
            let delay = min(settings.hostBackoffMax, settings.hostBackoff * pow(2, Double(exponent)))
            state.hosts[index].downUntil = ContinuousClock.now + .milliseconds(Int(delay * 1000))
            state.hosts[index].lastError = reason
        }
    }

    private func markUp(_ index: Int) {
        state.withLock { state in
            state.hosts[index].failures = 0
            state.hosts[index].downUntil = nil
        }
    }

    /// The most recently used idle connection that still works (checked and reset), or nil.
    private func takeIdle(_ index: Int) -> SMTPSession? {
        while let session = state.withLock({ $0.hosts[index].idle.popLast() }) {
            let now = ContinuousClock.now
            if now - session.idleSince < .milliseconds(Int(settings.idleTimeout * 1000)),
               now - session.opened < SMTPSession.reuseTimeLimit, session.reset() {
                return session
            }
            session.connection.close()
        }
        return nil
    }

    private func putIdle(_ index: Int, _ session: SMTPSession) {
        session.idleSince = .now
        let young = ContinuousClock.now - session.opened < SMTPSession.reuseTimeLimit
        let kept = young && state.withLock { state -> Bool in
            guard state.hosts[index].idle.count < maxIdlePerHost else { return false }
            state.hosts[index].idle.append(session)
            return true
        }
        if !kept { session.quit() }
    }

    /// Takes the connections idle longer than the idle timeout (the caller says QUIT to them).
    func expiredIdle(all: Bool = false) -> [SMTPSession] {
        let limit = Duration.milliseconds(Int(settings.idleTimeout * 1000))
        let now = ContinuousClock.now
        return state.withLock { state in
            var expired: [SMTPSession] = []
            for index in state.hosts.indices {
                let (old, fresh) = state.hosts[index].idle.reduce(into: ([SMTPSession](), [SMTPSession]())) { split, session in
                    if all || now - session.idleSince >= limit { split.0.append(session) } else { split.1.append(session) }
                }
                state.hosts[index].idle = fresh
                expired += old
            }
            return expired
        }
    }

    /// How many idle connections are cached now (for tests and logs).
    var idleCount: Int { state.withLock { $0.hosts.reduce(0) { $0 + $1.idle.count } } }
}

/// Runs blocking work on a thread of its own and returns its result.
///
/// SMTP sessions wait on the network for minutes at worst; on Swift's cooperative pool
/// (one thread per core) that would stall every actor, and on the shared ``BlockingPool`` it
/// would hold up the queue's fsyncs. A thread per delivery costs microseconds next to a
/// network round trip, and the connector's `concurrency` bounds how many exist.
func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        let thread = Thread { continuation.resume(returning: body()) }
        thread.stackSize = 1 << 20
        thread.start()
    }
}
