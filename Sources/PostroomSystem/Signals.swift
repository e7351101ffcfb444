import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// Delivers Unix signals as calls on a dispatch queue instead of async-signal handlers.
///
/// The signals are ignored at the process level first, so only the dispatch source sees them.
public final class SignalWatcher {
    public enum Signal: Int32, Sendable {
        case terminate = 15, interrupt = 2, hangup = 1
        var raw: Int32 {
            switch self {
            case .terminate: SIGTERM
            case .interrupt: SIGINT
            case .hangup: SIGHUP
            }
        }
    }

    private let sources: [any DispatchSourceSignal]

    public init(_ signals: [Signal], handler: @escaping @Sendable (Signal) -> Void) {
        let queue = DispatchQueue(label: "postroom.signals")
        sources = signals.map { signal in
            Glibc.signal(signal.raw, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signal.raw, queue: queue)
            source.setEventHandler { handler(signal) }
            source.resume()
            return source
        }
    }

    deinit { for source in sources { source.cancel() } }
}
