import Foundation
import Testing

/// End-to-end: the real binary, real inotify, real files.
@Suite(.serialized) struct DeliveryFlowTests {
    @Test func thousandMessagesArriveExactlyOnce() async throws {
        let harness = try Harness()
        try await harness.start()
        let count = 1_000
        let expected = Mail.expectedCensus(0..<count, prefix: "t")
        let expectedFiles = expected.values.reduce(0) { $0 + $1.values.reduce(0, +) }
        for index in 0..<count {
            let text = Mail.message(index, token: "t\(index)")
            if index % 50 == 7 {
                try await harness.dropSlowly(text, named: "slow-\(index).eml")
            } else {
                try harness.drop(text, named: "m-\(index).eml")
            }
        }
        try await waitUntil("\(expectedFiles) deliveries", timeout: 240) { harness.deliveredFiles().count >= expectedFiles }
        try await waitUntil("the queue to empty", timeout: 60) { harness.queuedFiles().isEmpty }
        #expect(censusDifferences(harness.census(), expected) == [])
        #expect(try FileManager.default.contentsOfDirectory(atPath: harness.pickup).isEmpty)
        #expect(try await harness.stop() == 0)
    }

    @Test func filesPresentBeforeStartAreDelivered() async throws {
        let harness = try Harness()
        for index in 0..<50 { try harness.drop(Mail.message(index, token: "pre\(index)"), named: "pre-\(index).eml") }
        try await harness.start()
        let expected = Mail.expectedCensus(0..<50, prefix: "pre")
        let expectedFiles = expected.values.reduce(0) { $0 + $1.values.reduce(0, +) }
        try await waitUntil("deliveries", timeout: 60) { harness.deliveredFiles().count >= expectedFiles }
        try await waitUntil("the queue to empty", timeout: 30) { harness.queuedFiles().isEmpty }
        #expect(censusDifferences(harness.census(), expected) == [])
        #expect(try await harness.stop() == 0)
    }

    @Test func inotifyOverflowIsRescannedAndEverythingDelivered() async throws {
        let harness = try Harness()
        // A small kernel queue for this daemon's inotify instance (root only), plus a reader paused on
        // purpose: the burst below cannot fit, so the kernel must report IN_Q_OVERFLOW.
        let limitPath = "/proc/sys/fs/inotify/max_queued_events"
        let original = try? String(contentsOfFile: limitPath, encoding: .utf8)
        let canLower = FileManager.default.isWritableFile(atPath: limitPath)
        if canLower { try "64\n".write(toFile: limitPath, atomically: false, encoding: .utf8) }
        let count = canLower ? 400 : 17_000
        do {
            try await harness.start(environment: ["POSTROOM_TEST_PAUSE_EVENTS_MS": "1500"])
        } catch {
            if canLower, let original { try? original.write(toFile: limitPath, atomically: false, encoding: .utf8) }
            throw error
        }
        if canLower, let original { try original.write(toFile: limitPath, atomically: false, encoding: .utf8) }
        for index in 0..<count { try harness.drop(Mail.message(index, token: "o\(index)"), named: "o-\(index).eml") }
        let expected = Mail.expectedCensus(0..<count, prefix: "o")
        let expectedFiles = expected.values.reduce(0) { $0 + $1.values.reduce(0, +) }
        try await waitUntil("deliveries", timeout: 600) { harness.deliveredFiles().count >= expectedFiles }
        try await waitUntil("the queue to empty", timeout: 60) { harness.queuedFiles().isEmpty }
        #expect(harness.log.contains("inotify queue overflowed"))
        #expect(censusDifferences(harness.census(), expected) == [])
        #expect(try await harness.stop() == 0)
    }

    @Test func killNineMidFlowLosesAndDuplicatesNothing() async throws {
        let harness = try Harness()
        try await harness.start()
        let count = 2_000
        let expected = Mail.expectedCensus(0..<count, prefix: "k")
        let expectedFiles = expected.values.reduce(0) { $0 + $1.values.reduce(0, +) }
        for index in 0..<count / 2 { try harness.drop(Mail.message(index, token: "k\(index)"), named: "k-\(index).eml") }
        // Kill while work is certainly in flight: some deliveries done, many not yet.
        try await waitUntil("the first deliveries", timeout: 60) { harness.deliveredFiles().count >= 200 }
        try await harness.crash()
        #expect(harness.deliveredFiles().count < expectedFiles)
        for index in count / 2..<count { try harness.drop(Mail.message(index, token: "k\(index)"), named: "k-\(index).eml") }
        try await harness.start()
        try await waitUntil("deliveries", timeout: 300) { harness.deliveredFiles().count >= expectedFiles }
        try await waitUntil("the queue to empty", timeout: 60) { harness.queuedFiles().isEmpty }
        #expect(censusDifferences(harness.census(), expected) == [])
        #expect(harness.deliveredFiles().count == expectedFiles)
        #expect(try FileManager.default.contentsOfDirectory(atPath: harness.pickup).isEmpty)
        #expect(try await harness.stop() == 0)
    }
}
