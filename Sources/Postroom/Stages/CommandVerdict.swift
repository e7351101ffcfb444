import PostroomSystem
/// What one run of a `command` stage's program means for the message, by the exit status in
/// the pipe(8) and `<sysexits.h>` habit the agent connector uses.
///
/// | the program | verdict | `result` label |
/// |---|---|---|
/// | exits 0 | pass (a filter's output is checked next) | `pass` |
/// | exits non-zero, first line `4.x.x …` | defer, reason the line | `defer` |
/// | exits non-zero, first line `5.x.x …` | reject with that code, reason the line | `reject` |
/// | exits 75 (EX_TEMPFAIL) or 71 (EX_OSERR) | defer | `defer` |
/// | exits with any other status | reject with ``defaultRejectStatus`` | `reject` |
/// | killed by a signal, exit status lost | defer | `signal` |
/// | outlives `timeout` | defer | `timeout` |
///
/// "First line" is the first non-empty line of what the program said: standard error for a
/// filter (its standard output is the message), falling back to standard output when a failing
/// filter wrote its reason there; the combined output for a check.
public enum CommandVerdict: Sendable, Equatable {
    case pass
    case `defer`(reason: String)
    case reject(status: String, reason: String)

    /// The status of a rejection whose program gave no code of its own: RFC 3463's "delivery not
    /// authorized, message refused", as Postfix's `REJECT` actions and content filters use.
    public static let defaultRejectStatus = "5.7.1"

    /// The verdict and the metrics label for one finished run; `line` is the program's first line.
    static func classify(_ termination: SubprocessOutcome.Termination, line: String?, program: String,
                         timeout: Double) -> (verdict: CommandVerdict, result: CommandMetrics.Result) {
        switch termination {
        case .timedOut:
            return (.defer(reason: "\(program) timed out after \(AgentConnector.formatSeconds(timeout))s"), .timeout)
        case .statusLost:
            return (.defer(reason: "the exit status of \(program) was lost; it is run again"), .signal)
        case .signalled(let signal):
            return (.defer(reason: "\(program) was killed by signal \(signal)" + (line.map { ": " + $0 } ?? "")), .signal)
        case .exited(0):
            return (.pass, .pass)
        case .exited(let status):
            if let line, let code = AgentConnector.enhancedStatusCode(at: line) {
                return code.hasPrefix("4") ? (.defer(reason: line), .defer) : (.reject(status: code, reason: line), .reject)
            }
            if status == AgentConnector.EX_TEMPFAIL || status == AgentConnector.EX_OSERR {
                return (.defer(reason: line ?? "\(program) exited with status \(status)"), .defer)
            }
            return (.reject(status: defaultRejectStatus, reason: line ?? "\(program) exited with status \(status)"), .reject)
        }
    }

    /// The first line a run said, by the rules above.
    static func firstLine(of outcome: SubprocessOutcome, mode: CommandSettings.Mode) -> String? {
        switch mode {
        case .check:
            return AgentConnector.firstLine(of: outcome.output)
        case .filter:
            if let line = AgentConnector.firstLine(of: outcome.errorOutput) { return line }
            // Only a failing filter's standard output is a message for people, not mail.
            if case .exited(let status) = outcome.termination, status != 0 { return AgentConnector.firstLine(of: outcome.output) }
            return nil
        }
    }
}
