import Foundation
import PostroomSystem
import Testing
@testable import Postroom

@Suite("Metrics file writer")
struct MetricsFileWriterTests {
    @Test func writesAtomicallyAndLeavesNoTempFiles() async throws {
        let dir = try ObservabilityTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let registry = MetricsRegistry(processMetrics: false)
        let counter = registry.counter("w_total", help: "w")
        let writer = MetricsFileWriter(registry: registry, path: "\(dir)/metrics.prom")
        for i in 1 ... 20 {
            counter.increment()
            try await writer.writeNow()
            let text = try String(contentsOfFile: "\(dir)/metrics.prom", encoding: .utf8)
            #expect(text == registry.exposition())
            #expect(text.contains("w_total \(i)\n"))
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["metrics.prom"])
    }

    @Test func readersNeverSeeAPartialFile() async throws {
        let dir = try ObservabilityTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let registry = sampleRegistry()
        let path = "\(dir)/metrics.prom"
        let writer = MetricsFileWriter(registry: registry, path: path)
        try await writer.writeNow()
        let writing = Task {
            for _ in 0 ..< 100 { try await writer.writeNow() }
        }
        for _ in 0 ..< 200 {
            let text = try String(contentsOfFile: path, encoding: .utf8)
            _ = try PrometheusTextParser.parse(text)  // whole file every time
        }
        try await writing.value
    }

    @Test func failedWriteThrowsAndCleansUp() async throws {
        let registry = MetricsRegistry(processMetrics: false)
        let writer = MetricsFileWriter(registry: registry, path: "/nonexistent-dir-\(UUID())/metrics.prom")
        await #expect(throws: SystemError.self) { try await writer.writeNow() }
    }

    @Test(.timeLimit(.minutes(1))) func periodicRunWritesUntilCancelledThenOnceMore() async throws {
        let dir = try ObservabilityTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let registry = MetricsRegistry(processMetrics: false)
        let counter = registry.counter("p_total", help: "p")
        let path = "\(dir)/metrics.prom"
        let writer = MetricsFileWriter(registry: registry, path: path)
        let (written, signal) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let running = Task { await writer.run(every: .milliseconds(20), onWritten: { signal.yield() }) }
        var writes = written.makeAsyncIterator()
        _ = await writes.next()
        #expect(FileManager.default.fileExists(atPath: path))
        // A value set right before shutdown must reach the file through the final write.
        counter.increment(by: 12345)
        running.cancel()
        await running.value
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.contains("p_total 12345\n"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["metrics.prom"])
    }
}

@Suite("Metrics HTTP server")
struct MetricsHTTPServerTests {
    private func withServer(_ body: (MetricsHTTPServer, MetricsRegistry) throws -> Void) throws {
        let registry = sampleRegistry()
        let server = try MetricsHTTPServer(listen: "127.0.0.1:0", registry: registry)
        server.start()
        defer { server.stop() }
        try body(server, registry)
    }

    /// Splits a raw response into status line, headers (lowercased names) and body.
    private func split(_ response: String) -> (status: String, headers: [String: String], body: String) {
        guard let range = response.range(of: "\r\n\r\n") else { return (response, [:], "") }
        let head = response[..<range.lowerBound].components(separatedBy: "\r\n")
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            if let colon = line.firstIndex(of: ":") {
                headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
        }
        return (head[0], headers, String(response[range.upperBound...]))
    }

    @Test func servesMetrics() throws {
        try withServer { server, registry in
            #expect(server.port > 0)
            let response = try ObservabilityTestSupport.rawHTTP(port: server.port, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
            let (status, headers, body) = split(response)
            #expect(status == "HTTP/1.1 200 OK")
            #expect(headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8")
            #expect(headers["connection"] == "close")
            #expect(headers["content-length"] == String(body.utf8.count))
            // Process RSS may change between the two renderings; compare everything else.
            let withoutRSS = { (text: String) in text.split(separator: "\n").filter { !$0.hasPrefix("process_resident_memory_bytes ") } }
            #expect(withoutRSS(body) == withoutRSS(registry.exposition()))
            _ = try PrometheusTextParser.parse(body)
        }
    }

    @Test func queryStringAndHeadWork() throws {
        try withServer { server, _ in
            #expect(try ObservabilityTestSupport.rawHTTP(port: server.port, "GET /metrics?x=1 HTTP/1.0\r\n\r\n").hasPrefix("HTTP/1.1 200 OK\r\n"))
            let head = split(try ObservabilityTestSupport.rawHTTP(port: server.port, "HEAD /metrics HTTP/1.1\r\n\r\n"))
            #expect(head.status == "HTTP/1.1 200 OK")
            #expect(head.body.isEmpty)
            #expect(Int(head.headers["content-length"] ?? "") ?? 0 > 0)
        }
    }

    @Test func errorStatuses() throws {
        try withServer { server, _ in
            let port = server.port
            #expect(split(try ObservabilityTestSupport.rawHTTP(port: port, "GET / HTTP/1.1\r\n\r\n")).status == "HTTP/1.1 404 Not Found")
            #expect(split(try ObservabilityTestSupport.rawHTTP(port: port, "GET /metricsx HTTP/1.1\r\n\r\n")).status == "HTTP/1.1 404 Not Found")
            let post = split(try ObservabilityTestSupport.rawHTTP(port: port, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n"))
            #expect(post.status == "HTTP/1.1 405 Method Not Allowed")
            #expect(post.headers["allow"] == "GET, HEAD")
            #expect(split(try ObservabilityTestSupport.rawHTTP(port: port, "hello there\r\n\r\n")).status == "HTTP/1.1 400 Bad Request")
            #expect(split(try ObservabilityTestSupport.rawHTTP(port: port, "GET /metrics SPDY/3\r\n\r\n")).status == "HTTP/1.1 400 Bad Request")
            #expect(split(try ObservabilityTestSupport.rawHTTP(port: port, [0xff, 0xfe, 0x0d, 0x0a, 0x0d, 0x0a])).status == "HTTP/1.1 400 Bad Request")
            // Closed before the head was complete.
            #expect(split(try ObservabilityTestSupport.rawHTTP(port: port, Array("GET /metrics HTTP/1.1\r\n".utf8), halfClose: true)).status == "HTTP/1.1 400 Bad Request")
            // Oversize head: 20 KB of headers.
            let big = "GET /metrics HTTP/1.1\r\nX-Pad: " + String(repeating: "a", count: 20_000) + "\r\n\r\n"
            #expect(split(try ObservabilityTestSupport.rawHTTP(port: port, big)).status == "HTTP/1.1 431 Request Header Fields Too Large")
            // Still serving after all that.
            #expect(split(try ObservabilityTestSupport.rawHTTP(port: port, "GET /metrics HTTP/1.1\r\n\r\n")).status == "HTTP/1.1 200 OK")
        }
    }

    /// curl, when installed, as an independent HTTP client.
    @Test(.enabled(if: ObservabilityTestSupport.which("curl") != nil, "curl not installed"))
    func curlScrapes() throws {
        try withServer { server, _ in
            let result = try ObservabilityTestSupport.run(
                ObservabilityTestSupport.which("curl")!, ["-sS", "--fail", "--max-time", "10", "http://127.0.0.1:\(server.port)/metrics"])
            #expect(result.status == 0)
            #expect(result.output.contains("# TYPE postroom_stage_received_messages_total counter"))
        }
    }

    @Test func stopReturnsPromptlyAndClosesTheListener() throws {
        let server = try MetricsHTTPServer(listen: "127.0.0.1:0", registry: MetricsRegistry(processMetrics: false))
        server.start()
        let port = server.port
        #expect(try ObservabilityTestSupport.rawHTTP(port: port, "GET /metrics HTTP/1.1\r\n\r\n").hasPrefix("HTTP/1.1 200"))
        let clock = ContinuousClock()
        let elapsed = clock.measure { server.stop() }
        #expect(elapsed < .seconds(3), "stop() must not wait for the 5 s receive timeout")
        #expect(throws: (any Error).self) { try ObservabilityTestSupport.rawHTTP(port: port, "GET /metrics HTTP/1.1\r\n\r\n") }
        server.stop()  // idempotent
    }

    @Test func stopInterruptsASlowClient() throws {
        let server = try MetricsHTTPServer(listen: "127.0.0.1:0", registry: MetricsRegistry(processMetrics: false))
        server.start()
        let port = server.port
        // A client that connects and says nothing: the server sits in recv() for it.
        let client = Thread {
            _ = try? ObservabilityTestSupport.rawHTTP(port: port, Array("GET".utf8))
        }
        client.start()
        Thread.sleep(forTimeInterval: 0.2)
        let elapsed = ContinuousClock().measure { server.stop() }
        #expect(elapsed < .seconds(3), "stop() must not wait for the 5 s receive timeout")
    }

    @Test func bindsIPv6LoopbackAndLocalhost() throws {
        let v6 = try MetricsHTTPServer(listen: "[::1]:0", registry: MetricsRegistry(processMetrics: false))
        #expect(v6.port > 0)
        v6.stop()
        let local = try MetricsHTTPServer(listen: "localhost:0", registry: MetricsRegistry(processMetrics: false))
        local.start()
        #expect(try ObservabilityTestSupport.rawHTTP(port: local.port, "GET /metrics HTTP/1.1\r\n\r\n").hasPrefix("HTTP/1.1 200"))
        local.stop()
    }

    @Test(arguments: ["0.0.0.0:9465", "192.168.1.10:9465", "[::]:9465", ":9465", "10.0.0.1:0"])
    func rejectsNonLoopback(_ address: String) {
        #expect(throws: ObservabilityError.nonLoopbackAddress(address)) {
            _ = try MetricsHTTPServer(listen: address, registry: MetricsRegistry(processMetrics: false))
        }
    }

    @Test(arguments: ["127.0.0.1", "127.0.0.1:99999", "127.0.0.1:http", "::1:9465", "example.com:9465", "[::1]9465"])
    func rejectsMalformedAddresses(_ address: String) {
        #expect {
            _ = try MetricsHTTPServer(listen: address, registry: MetricsRegistry(processMetrics: false))
        } throws: { error in
            guard case ObservabilityError.invalidListenAddress = error else { return false }
            return true
        }
    }

    @Test func portInUseIsReported() throws {
        let first = try MetricsHTTPServer(listen: "127.0.0.1:0", registry: MetricsRegistry(processMetrics: false))
        defer { first.stop() }
        #expect {
            _ = try MetricsHTTPServer(listen: "127.0.0.1:\(first.port)", registry: MetricsRegistry(processMetrics: false))
        } throws: { error in
            guard let error = error as? SystemError else { return false }
            return error.operation == "bind" && error.errno == EADDRINUSE
        }
    }
}
