import Foundation
import PostroomSystem
import Testing
@testable import Postroom

@Suite("Tracking log")
struct TrackingLogTests {
    static func event(_ queueID: String, _ kind: TrackingEvent.Kind = .receive, at millis: Int64 = 1_795_427_129_123,
                      messageID: String = "<m1@example.com>", recipients: [String] = ["bob@example.com"]) -> TrackingEvent {
        TrackingEvent(
            timestamp: Date(timeIntervalSince1970: Double(millis) / 1000), event: kind, source: .pickup,
            queueID: queueID, messageID: messageID, sender: "alice@example.com", recipients: recipients)
    }

    @Test func eventEncodesAsOneJSONLineWithMillisecondUTC() throws {
        var e = Self.event("Q1")
        e.reason = "line one\nline two"
        e.size = 42
        let line = String(decoding: e.jsonLine(), as: UTF8.self)
        #expect(line.hasSuffix("\n"))
        #expect(line.dropLast().contains("\n") == false)
        #expect(line == #"{"timestamp":"2026-11-23T09:45:29.123Z","event":"RECEIVE","source":"PICKUP","queueID":"Q1","#
            + #""messageID":"<m1@example.com>","sender":"alice@example.com","recipients":["bob@example.com"],"#
            + #""reason":"line one\nline two","size":42}"# + "\n")
        let decoded = try JSONDecoder().decode(TrackingEvent.self, from: Data(line.utf8))
        #expect(decoded == e)
    }

    @Test func awkwardStringsStayValidJSON() throws {
        var e = Self.event("Q\"1\\", recipients: ["FAX:+1555", "tab\there", "ctl\u{01}\u{1f}", "ünï/cødé ✉️"])
        e.connector = "c\r\n"
        let decoded = try JSONDecoder().decode(TrackingEvent.self, from: Data(e.jsonLine()))
        #expect(decoded == e)
        // Codable round trip too (for callers using JSONEncoder directly).
        #expect(try JSONDecoder().decode(TrackingEvent.self, from: JSONEncoder().encode(e)) == e)
    }

    @Test(arguments: [
        ("1970-01-01T00:00:00.000Z", 0.0),
        ("2026-11-23T09:45:29.123Z", 1_795_427_129.123),
        ("2026-11-23T09:45:29Z", 1_795_427_129.0),
        ("1969-12-31T23:59:59.999Z", -0.001),
        ("0001-01-01T00:00:00.000Z", -62_135_596_800.0),
        ("9999-12-31T23:59:59.999Z", 253_402_300_799.999),
        ("2000-02-29T08:07:06.005Z", 951_811_626.005),
    ])
    func timestampsRoundTrip(_ case_: (String, Double)) throws {
        let date = try #require(TrackingTimestamp.parse(case_.0))
        #expect(abs(date.timeIntervalSince1970 - case_.1) < 0.0005)
        if case_.0.count == 24 { #expect(TrackingTimestamp.format(date) == case_.0) }
    }

    @Test(arguments: ["2026-11-24 06:25:29Z", "2026-13-24T06:25:29Z", "2026-11-23T09:45:29.Z", "2026-11-23T09:45:29+01:00", ""])
    func badTimestampsAreRejected(_ text: String) {
        #expect(TrackingTimestamp.parse(text) == nil)
    }

    @Test func appendsAndReadsBack() throws {
        let dir = try ObservabilityTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = try TrackingLog(path: "\(dir)/tracking.log")
        for i in 0 ..< 10 { try log.append(Self.event("Q\(i)")) }
        try log.close()
        #expect(throws: SystemError.self) { try log.append(Self.event("late")) }
        // Reopening appends, never truncates.
        let again = try TrackingLog(path: "\(dir)/tracking.log")
        try again.append(Self.event("Q10"))
        try again.close()
        let events = TrackingLogReader.events(in: dir)
        #expect(events.map(\.queueID) == (0 ... 10).map { "Q\($0)" })
    }

    @Test func readerSkipsMalformedLinesAndOrdersGenerations() throws {
        let dir = try ObservabilityTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func line(_ id: String) throws -> String { String(decoding: Self.event(id).jsonLine(), as: UTF8.self) }
        try (try line("A") + "not json\n").write(toFile: "\(dir)/tracking.log.2", atomically: false, encoding: .utf8)
        try (try line("B") + "{\"event\":\"RECEIVE\"}\n").write(toFile: "\(dir)/tracking.log.1", atomically: false, encoding: .utf8)
        try (try line("C") + #"{"timestamp":"2026-11"# ).write(toFile: "\(dir)/tracking.log", atomically: false, encoding: .utf8)
        try "ignored".write(toFile: "\(dir)/tracking.log.old", atomically: false, encoding: .utf8)
        #expect(TrackingLogReader.events(in: dir).map(\.queueID) == ["A", "B", "C"])
        #expect(TrackingLogReader.events(in: "\(dir)/tracking.log").map(\.queueID) == ["A", "B", "C"])
        #expect(TrackingLogReader.events(in: "\(dir)/missing").isEmpty)
    }

    /// Many concurrent writers with a tiny rotation size: every line lands exactly once, whole, in order per writer.
    @Test(arguments: [0, 4096])
    func concurrentAppendsWithRotationLoseNothing(bufferBytes: Int) async throws {
        let dir = try ObservabilityTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let writers = 16
        let perWriter = 300
        let log = try TrackingLog(path: "\(dir)/tracking.log", maxBytes: 16 * 1024, maxFiles: 1000, bufferBytes: bufferBytes)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for w in 0 ..< writers {
                group.addTask {
                    for i in 0 ..< perWriter {
                        try log.append(Self.event("W\(w)-\(i)", messageID: "<w\(w)@x>"))
                        if i % 100 == 0 { try log.flush() }
                    }
                }
            }
            try await group.waitForAll()
        }
        try log.close()

        let files = try FileManager.default.contentsOfDirectory(atPath: dir)
        #expect(files.count > 10, "expected many rotations, got \(files.count) files")
        var lines = 0
        for file in files {
            let data = try #require(FileManager.default.contents(atPath: "\(dir)/\(file)"))
            #expect(data.count <= 16 * 1024)
            #expect(data.last == UInt8(ascii: "\n"))
            for raw in data.split(separator: UInt8(ascii: "\n")) {
                lines += 1
                _ = try JSONDecoder().decode(TrackingEvent.self, from: Data(raw))  // every line valid JSON
            }
        }
        #expect(lines == writers * perWriter)

        let events = TrackingLogReader.events(in: dir)
        #expect(events.count == writers * perWriter)
        #expect(Set(events.map(\.queueID)).count == writers * perWriter)  // no duplicates
        // Oldest-first reading keeps each writer's own order.
        for w in 0 ..< writers {
            let mine = events.filter { $0.messageID == "<w\(w)@x>" }.map(\.queueID)
            #expect(mine == (0 ..< perWriter).map { "W\(w)-\($0)" })
        }
    }

    @Test func rotationKeepsOnlyMaxFilesGenerations() throws {
        let dir = try ObservabilityTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let lineSize = Self.event("Q000").jsonLine().count
        let log = try TrackingLog(path: "\(dir)/tracking.log", maxBytes: lineSize * 2, maxFiles: 3)
        for i in 0 ..< 20 { try log.append(Self.event(String(format: "Q%03d", i))) }
        try log.close()
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: dir))
            == ["tracking.log", "tracking.log.1", "tracking.log.2", "tracking.log.3"])
        // Two lines per file: the newest 8 survive, in order.
        #expect(TrackingLogReader.events(in: dir).map(\.queueID) == (12 ..< 20).map { String(format: "Q%03d", $0) })
    }

    @Test func bufferedLinesWaitForFlush() throws {
        let dir = try ObservabilityTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = try TrackingLog(path: "\(dir)/tracking.log", bufferBytes: 1 << 20)
        try log.append(Self.event("Q1"))
        #expect(TrackingLogReader.events(in: dir).isEmpty)
        try log.flush()
        #expect(TrackingLogReader.events(in: dir).map(\.queueID) == ["Q1"])
    }
}
