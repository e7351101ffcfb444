import Dispatch
import Foundation
import PostroomSystem
import Synchronization

/// A minimal HTTP/1.1 endpoint serving `GET /metrics` on a loopback address, for Prometheus to scrape.
///
/// Guarantees:
/// - Listens only on loopback (`127.0.0.0/8`, `::1`, `localhost`): the endpoint has no authentication.
///   Anything else is refused at ``init(listen:registry:)`` with ``ObservabilityError/nonLoopbackAddress(_:)``.
/// - Binds in `init`, so a port conflict is reported at startup and ``port`` is known (ask for port 0 to
///   get an ephemeral one).
/// - Runs on its own thread with blocking `accept`, one connection at a time: it never occupies a Swift
///   concurrency thread, so it cannot slow the pipeline. A client gets 5 s in total to send its request
///   (at most 8 KB, else 431), and every response closes the connection.
/// - ``stop()`` closes the listener and any open connection and returns once the thread has finished.
public final class MetricsHTTPServer: Sendable {
    /// The address as given, e.g. `127.0.0.1:9465`.
    public let listenAddress: String
    /// The TCP port actually bound (differs from the requested one when that was 0).
    public let port: Int

    /// Largest request head accepted; a scrape request is a few hundred bytes.
    static let maxRequestBytes = 8192
    /// Time a client has to send its whole request.
    static let requestTimeout: Double = 5

    private struct State {
        var started = false
        var stopped = false
        var client: SocketDescriptor?
    }

    private let registry: MetricsRegistry
    private let listener: SocketDescriptor
    private let state = Mutex(State())
    private let finished = DispatchSemaphore(value: 0)

    /// Parses `host:port`, checks it is loopback, binds and listens. Call ``start()`` to serve.
    public init(listen address: String, registry: MetricsRegistry) throws {
        let parsed = try Self.parse(address)
        let (listener, port) = try SocketDescriptor.listen(address: parsed.bytes, port: parsed.port)
        self.listenAddress = address
        self.registry = registry
        self.listener = listener
        self.port = port
    }

    deinit {
        stop()
    }

    /// Starts the accept loop on a dedicated thread. Calling it again does nothing.
    public func start() {
        let shouldStart = state.withLock { s -> Bool in
            guard !s.started, !s.stopped else { return false }
            s.started = true
            return true
        }
        guard shouldStart else { return }
        let thread = Thread { [self] in
            acceptLoop()
            finished.signal()
        }
        thread.name = "postroom-metrics-http"
        thread.start()
    }

    /// Stops serving: shuts the listener and any open connection down, waits (at most 2 s) for the thread
    /// to finish, then closes the listening socket. Idempotent.
    public func stop() {
        let (wasStarted, client, first) = state.withLock { s -> (Bool, SocketDescriptor?, Bool) in
            let first = !s.stopped
            s.stopped = true
            return (s.started, s.client, first)
        }
        guard first else { return }
        // shutdown() makes a blocked accept()/recv() on another thread return at once on Linux, without
        // the fd-reuse race that close() from this thread would have.
        listener.shutdown()
        client?.shutdown()
        if wasStarted { _ = finished.wait(timeout: .now() + 2) }
        listener.close()
    }

    // MARK: Serving

    private func acceptLoop() {
        while !state.withLock({ $0.stopped }) {
            let client: SocketDescriptor
            do {
                guard let accepted = try listener.accept() else { continue }
                client = accepted
            } catch where error.isOutOfResources {
                Thread.sleep(forTimeInterval: 0.1)  // out of descriptors or memory: back off instead of spinning
                continue
            } catch {
                return  // listener shut down by stop()
            }
            let admitted = state.withLock { s -> Bool in
                guard !s.stopped else { return false }
                s.client = client
                return true
            }
            if admitted { serve(client) }
            state.withLock { $0.client = nil }
            client.close()
        }
    }

    /// Reads one request head, answers it, and lets the connection close.
    private func serve(_ client: SocketDescriptor) {
        client.setTimeouts(seconds: Self.requestTimeout)
        let deadline = ContinuousClock.now + .seconds(Self.requestTimeout)
        var request: [UInt8] = []
        var response: Response
        readLoop: while true {
            if let end = Self.headEnd(request) {
                response = respond(to: Array(request[0 ..< end]))
                break readLoop
            }
            if request.count >= Self.maxRequestBytes {
                response = .text(431, "Request Header Fields Too Large", "request too large\n")
                break readLoop
            }
            if ContinuousClock.now >= deadline {
                response = .text(408, "Request Timeout", "request timeout\n")
                break readLoop
            }
            do {
                let n = try client.receive(into: &request, max: Self.maxRequestBytes - request.count)
                if n == 0 {
                    if request.isEmpty { return }  // connected and left: nothing to answer
                    response = .text(400, "Bad Request", "incomplete request\n")
                    break readLoop
                }
            } catch {
                // Timeout (EAGAIN) or reset: answer if the peer may still listen, then close.
                response = .text(408, "Request Timeout", "request timeout\n")
                break readLoop
            }
        }
        try? client.sendAll(response.bytes)
        // Half-close, then drain what the client is still sending (briefly): closing a socket with unread
        // input makes the kernel send RST, which can destroy the response before the client reads it.
        client.shutdown(.write)
        client.setTimeouts(seconds: 0.2)
        var sink: [UInt8] = []
        var drained = 0
        while drained < 1 << 16, let n = try? client.receive(into: &sink, max: 4096), n > 0 {
            drained += n
            sink.removeAll(keepingCapacity: true)
        }
    }

    /// Index just past the blank line ending the request head (`\r\n\r\n`, or bare `\n\n`), if present.
    static func headEnd(_ bytes: [UInt8]) -> Int? {
        var i = 0
        while i < bytes.count {
            if bytes[i] == 10 {
                if i + 1 < bytes.count, bytes[i + 1] == 10 { return i + 2 }
                if i + 2 < bytes.count, bytes[i + 1] == 13, bytes[i + 2] == 10 { return i + 3 }
            }
            i += 1
        }
        return nil
    }

    private func respond(to head: [UInt8]) -> Response {
        guard let text = String(validating: head, as: UTF8.self) else {
            return .text(400, "Bad Request", "bad request\n")
        }
        let requestLine = text.prefix { !$0.isNewline }  // "\r\n" is one Character
        let parts = requestLine.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 3,
              !parts[0].isEmpty, parts[0].allSatisfy({ $0.isASCII && $0.isUppercase }),
              parts[1].hasPrefix("/") || parts[1] == "*",
              parts[2] == "HTTP/1.1" || parts[2] == "HTTP/1.0"
        else {
            return .text(400, "Bad Request", "bad request\n")
        }
        let method = parts[0]
        guard method == "GET" || method == "HEAD" else {
            return Response(status: 405, reason: "Method Not Allowed", extraHeaders: ["Allow: GET, HEAD"],
                            contentType: "text/plain; charset=utf-8", body: Array("method not allowed\n".utf8), includeBody: true)
        }
        let path = parts[1].prefix { $0 != "?" }
        guard path == "/metrics" else {
            return .text(404, "Not Found", "not found; metrics are at /metrics\n", includeBody: method == "GET")
        }
        return Response(status: 200, reason: "OK", extraHeaders: [],
                        contentType: "text/plain; version=0.0.4; charset=utf-8",
                        body: Array(registry.exposition().utf8), includeBody: method == "GET")
    }

    private struct Response {
        var status: Int
        var reason: String
        var extraHeaders: [String]
        var contentType: String
        var body: [UInt8]
        var includeBody: Bool

        static func text(_ status: Int, _ reason: String, _ body: String, includeBody: Bool = true) -> Response {
            Response(status: status, reason: reason, extraHeaders: [], contentType: "text/plain; charset=utf-8",
                     body: Array(body.utf8), includeBody: includeBody)
        }

        var bytes: [UInt8] {
            var head = "HTTP/1.1 \(status) \(reason)\r\n"
            head += "Content-Type: \(contentType)\r\n"
            head += "Content-Length: \(body.count)\r\n"
            for header in extraHeaders { head += "\(header)\r\n" }
            head += "Connection: close\r\n\r\n"
            return Array(head.utf8) + (includeBody ? body : [])
        }
    }

    // MARK: Address parsing

    struct ParsedAddress: Equatable {
        var ipv6: Bool
        var bytes: [UInt8]
        var port: Int
    }

    /// `127.0.0.1:9465`, `[::1]:9465`, `localhost:9465` (→ 127.0.0.1). Only loopback is accepted.
    static func parse(_ address: String) throws -> ParsedAddress {
        let host: Substring
        let portText: Substring
        if address.hasPrefix("[") {
            guard let close = address.firstIndex(of: "]"),
                  address[address.index(after: close)...].hasPrefix(":")
            else { throw ObservabilityError.invalidListenAddress(address, reason: "expected [ipv6]:port") }
            host = address[address.index(after: address.startIndex) ..< close]
            portText = address[address.index(close, offsetBy: 2)...]
        } else {
            guard let colon = address.lastIndex(of: ":") else {
                throw ObservabilityError.invalidListenAddress(address, reason: "expected host:port")
            }
            host = address[..<colon]
            portText = address[address.index(after: colon)...]
            if host.contains(":") {
                throw ObservabilityError.invalidListenAddress(address, reason: "write IPv6 addresses as [addr]:port")
            }
        }
        guard let port = Int(portText), (0 ... 65535).contains(port) else {
            throw ObservabilityError.invalidListenAddress(address, reason: "port must be a number from 0 to 65535")
        }
        if host == "localhost" { return ParsedAddress(ipv6: false, bytes: [127, 0, 0, 1], port: port) }
        var v4 = in_addr()
        if inet_pton(AF_INET, String(host), &v4) == 1 {
            let bytes = withUnsafeBytes(of: v4) { Array($0) }
            guard bytes[0] == 127 else { throw ObservabilityError.nonLoopbackAddress(address) }
            return ParsedAddress(ipv6: false, bytes: bytes, port: port)
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, String(host), &v6) == 1 {
            let bytes = withUnsafeBytes(of: v6) { Array($0) }
            guard bytes == Array(repeating: 0, count: 15) + [1] else { throw ObservabilityError.nonLoopbackAddress(address) }
            return ParsedAddress(ipv6: true, bytes: bytes, port: port)
        }
        if host.isEmpty {
            throw ObservabilityError.nonLoopbackAddress(address)  // ":9465" would mean all interfaces
        }
        throw ObservabilityError.invalidListenAddress(address, reason: "host must be an IP address or localhost")
    }
}
