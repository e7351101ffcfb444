import PostroomSystem
/// Configuration errors of the observability module (the metrics endpoint's listen address).
///
/// Metrics updates themselves never fail; file and socket failures are ``SystemError``s.
public enum ObservabilityError: Error, Equatable, CustomStringConvertible {
    /// A `host:port` listen string could not be parsed.
    case invalidListenAddress(String, reason: String)
    /// The metrics endpoint may only listen on a loopback address (it has no authentication).
    case nonLoopbackAddress(String)

    public var description: String {
        switch self {
        case let .invalidListenAddress(address, reason):
            return "invalid listen address \"\(address)\": \(reason)"
        case let .nonLoopbackAddress(address):
            return "refusing to listen on \"\(address)\": the metrics endpoint is unauthenticated, use a loopback address (127.0.0.1, ::1 or localhost)"
        }
    }
}
