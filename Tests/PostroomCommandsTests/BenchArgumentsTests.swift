import Foundation
import Testing
@testable import PostroomCommands

// Parsing and header reading only: bench figures depend on the machine, so nothing here is timed.
@Suite("postroom bench arguments")
struct BenchArgumentsTests {
    @Test("defaults: a burst of 1000 messages to alice on the default pipeline")
    func defaults() throws {
        let options = try Bench.Options(arguments: [])
        #expect(options.messages == 1000)
        #expect(options.recipients == 1)
        #expect(options.users.first == "alice")
        #expect(options.rate == nil)
        #expect(options.pipeline == "pipelines/default.json5")
        #expect(!options.backlog && !options.keep && options.from == nil)
    }

    @Test("every option and flag")
    func everything() throws {
        let options = try Bench.Options(arguments: ["--messages", "2000", "--size=8192", "--recipients", "3", "--rate", "100",
                                                    "--pipeline", "p.json5", "--from", "/tmp/m", "--keep", "--timeout", "30"])
        #expect(options.messages == 2000)
        #expect(options.size == 8192)
        #expect(options.recipients == 3)
        #expect(options.rate == 100)
        #expect(options.pipeline == "p.json5")
        #expect(options.from == "/tmp/m")
        #expect(options.keep)
        #expect(options.timeout == 30)
    }

    @Test("usage errors", arguments: [
        ["--messages", "0"], ["--messages", "many"], ["--size", "10"], ["--rate", "-1"], ["--rate", "fast"],
        ["--recipients", "5"], ["--recipients", "2", "--users", "alice"], ["--backlog", "--rate", "10"],
        ["--bogus"], ["extra"], ["--messages"],
    ])
    func rejects(_ words: [String]) {
        #expect(throws: Arguments.UsageError.self) { try Bench.Options(arguments: words) }
    }

    @Test("generated messages carry their Message-ID and recipients, at about the asked size")
    func generatedMessage() {
        let bytes = MessageGenerator.message(index: 7, messageID: "<m.7@bench>", recipients: ["alice@example.com", "bob@example.com"], size: 4096)
        #expect(bytes.count >= 4096 && bytes.count < 4096 + 200)
        let header = MessageGenerator.header(of: bytes)
        #expect(header.messageID == "<m.7@bench>")
        #expect(header.recipients == 2)
        #expect(MessageGenerator.message(index: 7, messageID: "<m.7@bench>", recipients: ["alice@example.com"], size: 1024).suffix(200)
            == MessageGenerator.message(index: 7, messageID: "<m.7@bench>", recipients: ["alice@example.com"], size: 1024).suffix(200))
    }

    @Test("header reading unfolds To and finds the Message-ID after prepended delivery lines")
    func deliveredHeader() {
        let text = "Return-Path: <a@b.test>\r\nDelivered-To: alice@example.com\r\nTo: alice@example.com,\r\n bob@example.com\r\nCc: carol@example.com\r\nmessage-id:  <x@y> \r\n\r\nTo: not@counted.test\r\n"
        let header = MessageGenerator.header(of: Array(text.utf8))
        #expect(header.messageID == "<x@y>")
        #expect(header.recipients == 3)
    }

    @Test("nearest-rank percentiles")
    func percentiles() {
        let values = (1...100).map(Double.init)
        #expect(BenchRun.percentile(values, 0.50) == 50)
        #expect(BenchRun.percentile(values, 0.99) == 99)
        #expect(BenchRun.percentile(values, 1.0) == 100)
        #expect(BenchRun.percentile([], 0.5) == nil)
    }
}
