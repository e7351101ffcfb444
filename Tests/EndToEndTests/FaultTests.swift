import Foundation
import PostroomSystem
import Testing

/// A fixed-seed generator, so a failing fault schedule can be replayed.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The faults operators actually hit: nothing is lost, nothing is delivered twice.
@Suite(.serialized) struct FaultTests {
    static let canMount: Bool = getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/bin/mount")

    @Test func twentyKillsDuringTenThousandMessages() async throws {
        let harness = try Harness()
        // Every kill interrupts the messages in flight; a high threshold keeps them from counting as poison.
        try harness.useDefaultPipeline(replacing: [("poisonThreshold: 2", "poisonThreshold: 10")])
        var random = SplitMix(state: 20261123)
        let count = 10_000
        // One message in ten also has an unknown recipient: its report must be sent exactly once too.
        let reported = { (index: Int) in index % 10 == 9 }
        for index in 0..<count / 2 { try harness.drop(Mail.message(index, token: "c\(index)", reported: reported(index)), named: "c\(index).eml") }
        let points = ["claim", "store", "rename", "remove"]
        var injected = 0
        var external = 0
        for round in 0..<24 {
            if round == 6 {
                for index in count / 2..<count { try harness.drop(Mail.message(index, token: "c\(index)", reported: reported(index)), named: "c\(index).eml") }
            }
            if round % 2 == 0 {
                // A kill at a chosen instant: after a claim, between queueing and release, after a Maildir rename, before a queue entry is removed.
                let point = points[(round / 2) % points.count]
                try await harness.start(environment: ["POSTROOM_TEST_KILL_AT": "\(point):\(Int.random(in: 1...150, using: &random))"], expectRunning: false)
                let process = harness.process!
                try? await waitUntil("the injected kill", timeout: 60) { !process.isRunning }
                if !process.isRunning {
                    if process.terminationReason == .uncaughtSignal && process.terminationStatus == SIGKILL { injected += 1 }
                    harness.process = nil
                } else {
                    try await harness.crash()
                    external += 1
                }
            } else {
                // A kill at a random instant.
                try await harness.start()
                try await Task.sleep(for: .milliseconds(Int.random(in: 50...600, using: &random)))
                try await harness.crash()
                external += 1
            }
        }
        #expect(injected + external >= 20)
        #expect(injected >= 8, "the injected kill points were reached only \(injected) times")
        try await harness.start()
        let expected = Mail.expectedCensus(0..<count, prefix: "c", reported: reported)
        let expectedFiles = expected.values.reduce(0) { $0 + $1.values.reduce(0, +) }
        try await waitUntil("every delivery", timeout: 400) { harness.deliveredFiles().count >= expectedFiles }
        try await waitUntil("the queue to empty", timeout: 60) { harness.queuedFiles().isEmpty }
        #expect(censusDifferences(harness.census(), expected) == [])
        #expect(harness.deliveredFiles().count == expectedFiles)
        #expect(harness.queued("poison").isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: harness.pickup).isEmpty)
        // No half-written file is visible anywhere: every delivery ends with its body's last line.
        for file in harness.deliveredFiles().prefix(2000) {
            let text = try String(contentsOfFile: harness.spool + "/" + file, encoding: .utf8)
            let isReport = text.contains("Content-Type: multipart/report")
            #expect(text.hasSuffix(isReport ? "--\r\n" : ".\r\n"), "\(file) is incomplete")
        }
        #expect(try await harness.stop() == 0)
    }

    /// One kill is at most one crash for any message: with the default poisonThreshold (2) nothing is parked.
    @Test func singleKillsNeverParkAHealthyMessageAndSendEachReportOnce() async throws {
        let harness = try Harness()
        var random = SplitMix(state: 131)
        let reported = { (index: Int) in index % 10 == 9 }
        var next = 0
        for round in 0..<3 {
            try await harness.start()
            for index in next..<next + 200 { try harness.drop(Mail.message(index, token: "s\(index)", reported: reported(index)), named: "s\(index).eml") }
            next += 200
            try await Task.sleep(for: .milliseconds(Int.random(in: 100...600, using: &random)))
            try await harness.crash()
            try await harness.start()
            let expected = Mail.expectedCensus(0..<next, prefix: "s", reported: reported)
            let expectedFiles = expected.values.reduce(0) { $0 + $1.values.reduce(0, +) }
            try await waitUntil("round \(round): every delivery", timeout: 120) {
                harness.deliveredFiles().count >= expectedFiles || !harness.queued("poison").isEmpty
            }
            #expect(harness.queued("poison").isEmpty, "round \(round): a single kill parked \(harness.queued("poison")) as poison")
            try await waitUntil("round \(round): the queue to empty", timeout: 60) { harness.queuedFiles().isEmpty }
            #expect(censusDifferences(harness.census(), expected) == [], "round \(round)")
            #expect(try await harness.stop() == 0)
        }
    }

    @Test func sighupAppliesANewPipelineAndKeepsTheOldOneWhenBroken() async throws {
        let harness = try Harness()
        let path = try harness.useDefaultPipeline(replacing: [])
        try await harness.start()
        for index in 0..<300 { try harness.drop(Mail.message(index, token: "r\(index)"), named: "r\(index).eml") }
        // Reload mid-flow: other domains now go to a new connector.
        var text = try String(contentsOfFile: path, encoding: .utf8)
        text = text.replacingOccurrences(of: "dropDirectory: \"drop/outbound\" }", with: "dropDirectory: \"drop/outbound2\" }")
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        harness.signal(SIGHUP)
        try await waitUntil("the reload", timeout: 30) { harness.log.contains("reloaded") }
        for index in 300..<400 { try harness.drop(Mail.message(index, token: "r\(index)"), named: "r\(index).eml") }
        try await waitUntil("message r399", timeout: 60) { harness.census()["r399"] != nil }
        #expect(harness.census()["r399"] == ["drop:outbound2": 1, "mailbox:carol": 1])
        // A broken file is refused; the running pipeline keeps delivering.
        try "{ name: \"broken\", stages: [ { stage: \"ingest\", bogus: 1 } ] }".write(toFile: path, atomically: true, encoding: .utf8)
        harness.signal(SIGHUP)
        try await waitUntil("the refusal", timeout: 30) { harness.log.contains("reload failed") }
        #expect(harness.log.contains("bogus"))
        for index in 400..<450 { try harness.drop(Mail.message(index, token: "r\(index)"), named: "r\(index).eml") }
        // Everything arrives once; copies for other domains went to whichever connector was live at routing time.
        try await waitUntil("all messages", timeout: 120) { (0..<450).allSatisfy { harness.census()["r\($0)"] != nil } }
        try await waitUntil("the queue to empty", timeout: 60) { harness.queuedFiles().isEmpty }
        let census = harness.census()
        for index in 0..<450 {
            let copies = census["r\(index)"] ?? [:]
            var merged = copies
            if let moved = merged.removeValue(forKey: "drop:outbound2") { merged["drop:outbound", default: 0] += moved }
            #expect(merged == Mail.plan(index).locations, "r\(index): \(copies)")
        }
        #expect(harness.process?.isRunning == true)
        #expect(try await harness.stop() == 0)
    }

    @Test func sigtermUnderLoadDrainsInBoundedTimeAndLosesNothing() async throws {
        let harness = try Harness()
        try harness.useDefaultPipeline(replacing: [("tracking: { file: \"tracking.log\" },", "tracking: { file: \"tracking.log\" },\n  shutdownTimeout: \"5s\",")])
        try await harness.start()
        let count = 3_000
        for index in 0..<count { try harness.drop(Mail.message(index, token: "d\(index)"), named: "d\(index).eml") }
        try await waitUntil("the first deliveries", timeout: 60) { harness.deliveredFiles().count >= 100 }
        let start = ContinuousClock.now
        #expect(try await harness.stop() == 0)
        #expect(ContinuousClock.now - start < .seconds(10), "SIGTERM took \(ContinuousClock.now - start)")
        try await harness.start()
        let expected = Mail.expectedCensus(0..<count, prefix: "d")
        let expectedFiles = expected.values.reduce(0) { $0 + $1.values.reduce(0, +) }
        try await waitUntil("every delivery", timeout: 240) { harness.deliveredFiles().count >= expectedFiles }
        try await waitUntil("the queue to empty", timeout: 60) { harness.queuedFiles().isEmpty }
        #expect(censusDifferences(harness.census(), expected) == [])
        #expect(try await harness.stop() == 0)
    }

    @Test(.enabled(if: FaultTests.canMount, "needs root to mount a small tmpfs")) func aFullDiskPausesIntakeAndFlowResumes() async throws {
        let harness = try Harness()
        #expect(harness.mountTmpfs(at: harness.spool, size: "8m"))
        try harness.useDefaultPipeline(replacing: [("maxMessagesPerMinute: 0 }", "maxMessagesPerMinute: 0, minFreeSpace: \"2MB\" }")])
        try await harness.start()
        try harness.drop(Mail.message(0, token: "before"), named: "before.eml")
        try await waitUntil("the first message", timeout: 30) { harness.census()["before"] != nil }
        // Leave about 1 MB free: below minFreeSpace, so intake must pause rather than fail half-way.
        let ballast = harness.spool + "/ballast"
        let free = FileSystemProbe.available(harness.spool)
        #expect(FileManager.default.createFile(atPath: ballast, contents: Data(count: max(0, free - (1 << 20)))))
        for index in 1..<60 { try harness.drop(Mail.message(index, token: "full\(index)"), named: "full\(index).eml") }
        try await waitUntil("intake to pause", timeout: 30) { harness.log.contains("intake paused") }
        #expect(harness.census().keys.filter { $0.hasPrefix("full") }.isEmpty)
        try FileManager.default.removeItem(atPath: ballast)
        try await waitUntil("intake to resume", timeout: 30) { harness.log.contains("intake resumed") }
        let expected = Mail.expectedCensus(1..<60, prefix: "full")
        try await waitUntil("every message", timeout: 60) { expected.keys.allSatisfy { harness.census()[$0] != nil } }
        try await waitUntil("the queue to empty", timeout: 30) { harness.queuedFiles().isEmpty }
        #expect(censusDifferences(harness.census().filter { $0.key.hasPrefix("full") }, expected) == [])
        #expect(try await harness.stop() == 0)
    }

    @Test(.enabled(if: FaultTests.canMount, "needs root to mount a small tmpfs")) func outOfSpaceWhileDeliveringDefersAndRetries() async throws {
        let harness = try Harness()
        let mailboxes = harness.spool + "/mailboxes"
        #expect(harness.mountTmpfs(at: mailboxes, size: "1m"))
        try harness.useDefaultPipeline(replacing: [("retry: { first: \"1m\", max: \"1h\" }", "retry: { first: \"1s\", max: \"2s\" }")])
        try await harness.start()
        let ballast = mailboxes + "/ballast"
        #expect(FileManager.default.createFile(atPath: ballast, contents: Data(count: FileSystemProbe.available(mailboxes))))
        for index in 0..<20 { try harness.drop(Mail.message(0, token: "enospc\(index)"), named: "e\(index).eml") }
        try await waitUntil("deferred deliveries", timeout: 30) { !harness.queued("deferred").isEmpty }
        try FileManager.default.removeItem(atPath: ballast)
        try await waitUntil("every message", timeout: 60) { (0..<20).allSatisfy { harness.census()["enospc\($0)"] == ["mailbox:alice": 1] } }
        try await waitUntil("the queue to empty", timeout: 30) { harness.queuedFiles().isEmpty }
        #expect(harness.files(under: "mailboxes/alice/tmp").isEmpty)
        #expect(try await harness.stop() == 0)
    }

    @Test(.enabled(if: FaultTests.canMount, "needs root to remount a drop directory read-only")) func anUnwritableDropDirectoryDefersUntilWritable() async throws {
        let harness = try Harness()
        let outbound = harness.spool + "/drop/outbound"
        #expect(harness.mountTmpfs(at: outbound, size: "16m"))
        try harness.useDefaultPipeline(replacing: [("retry: { first: \"1m\", max: \"1h\" }", "retry: { first: \"1s\", max: \"2s\" }")])
        try await harness.start()
        #expect(harness.remount(outbound, options: "ro"))
        for index in 0..<50 {
            try harness.drop("From: carol@example.com\r\nTo: someone@elsewhere.org\r\nX-Token: ro\(index)\r\n\r\nbody.\r\n", named: "ro\(index).eml")
        }
        try await waitUntil("deferred entries", timeout: 30) { harness.queued("deferred").count == 50 }
        #expect(harness.census().isEmpty)
        #expect(harness.remount(outbound, options: "rw"))
        try await waitUntil("every message", timeout: 60) { (0..<50).allSatisfy { harness.census()["ro\($0)"] == ["drop:outbound": 1] } }
        try await waitUntil("the queue to empty", timeout: 30) { harness.queuedFiles().isEmpty }
        #expect(try await harness.stop() == 0)
    }

    @Test func pickupDeletedAndRecreatedKeepsWorking() async throws {
        let harness = try Harness()
        try await harness.start()
        try harness.drop(Mail.message(0, token: "v0"), named: "v0.eml")
        try await waitUntil("the first message", timeout: 30) { harness.census()["v0"] != nil }
        try FileManager.default.removeItem(atPath: harness.pickup)
        try await waitUntil("the rescan", timeout: 30) { FileManager.default.fileExists(atPath: harness.pickup) }
        try harness.drop(Mail.message(1, token: "v1"), named: "v1.eml")
        try await waitUntil("the message after re-creation", timeout: 30) { harness.census()["v1"] != nil }
        #expect(try await harness.stop() == 0)
    }

    @Test(.enabled(if: FaultTests.canMount, "needs root to mount a second filesystem")) func pickupOnAnotherFilesystemIsClaimedByCopy() async throws {
        let harness = try Harness()
        let elsewhere = harness.root + "/other-fs"
        #expect(harness.mountTmpfs(at: elsewhere, size: "16m"))
        let path = try harness.useDefaultPipeline(replacing: [("pickup: \"pickup\"", "pickup: \"\(elsewhere)\"")])
        let check = try runPostroom(["check", path, "--spool", harness.spool])
        #expect(check.status == 0)
        #expect(check.error.contains("another filesystem"), "\(check.error)")
        try await harness.start()
        for index in 0..<30 { try harness.drop(Mail.message(index, token: "x\(index)"), named: "x\(index).eml", into: elsewhere) }
        let expected = Mail.expectedCensus(0..<30, prefix: "x")
        try await waitUntil("every message", timeout: 60) { expected.keys.allSatisfy { harness.census()[$0] != nil } }
        try await waitUntil("the queue to empty", timeout: 30) { harness.queuedFiles().isEmpty }
        #expect(censusDifferences(harness.census(), expected) == [])
        #expect(try FileManager.default.contentsOfDirectory(atPath: elsewhere).isEmpty)
        #expect(try await harness.stop() == 0)
    }

    @Test func thousandsOfMalformedFilesNeverCrashOrHang() async throws {
        let harness = try Harness()
        try harness.useDefaultPipeline(replacing: [("maxMessageSize: \"35MB\"", "maxMessageSize: \"64KB\"")])
        try await harness.start()
        var random = SplitMix(state: 7)
        let count = 3_000
        for index in 0..<count {
            // Only intact copies carry an "h" token: a mutated or truncated one must not pass for another message.
            let valid = Mail.message(index, token: index % 6 == 0 ? "h\(index)" : "junk\(index)")
            var bytes: [UInt8]
            switch index % 6 {
            case 0: bytes = Array(valid.utf8)
            case 1: bytes = (0..<Int.random(in: 0...2000, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            case 2: bytes = Array(valid.utf8.prefix(Int.random(in: 0...valid.utf8.count, using: &random)))
            case 3: bytes = Array(valid.utf8) + (0..<70_000).map { _ in UInt8(ascii: "a") }
            case 4:
                bytes = Array(valid.utf8)
                for _ in 0..<20 { bytes[Int.random(in: 0..<bytes.count, using: &random)] = UInt8.random(in: 0...255, using: &random) }
            default: bytes = Array("From: \(String(repeating: "<", count: 5000))\nTo: \(String(repeating: "a@b,", count: 3000))\n\n".utf8)
            }
            let temporary = harness.pickup + "/.h\(index).tmp"
            #expect(FileManager.default.createFile(atPath: temporary, contents: Data(bytes)))
            #expect(rename(temporary, harness.pickup + "/h\(index).eml") == 0)
        }
        // Every file leaves pickup: queued and delivered, reported, or renamed .bad with a reason.
        try await waitUntil("pickup to hold only .bad files", timeout: 300) {
            ((try? FileManager.default.contentsOfDirectory(atPath: harness.pickup)) ?? []).allSatisfy { $0.hasSuffix(".bad") || $0.hasSuffix(".bad.reason") }
        }
        try await waitUntil("the queue to empty", timeout: 120) { harness.queuedFiles().isEmpty }
        let names = try FileManager.default.contentsOfDirectory(atPath: harness.pickup)
        let bad = names.filter { $0.hasSuffix(".bad") }
        #expect(Set(bad.map { $0 + ".reason" }) == Set(names.filter { $0.hasSuffix(".bad.reason") }))
        // Every well-formed message arrived exactly as planned.
        let census = harness.census()
        for index in stride(from: 0, to: count, by: 6) {
            #expect(census["h\(index)"] == Mail.plan(index).locations, "h\(index): \(census["h\(index)"] ?? [:])")
        }
        #expect(harness.process?.isRunning == true)
        let peak = harness.peakMemory() ?? 0
        #expect(peak < 256 << 20, "peak memory \(peak >> 20) MB")
        #expect(try await harness.stop() == 0)
    }
}

enum FileSystemProbe {
    static func available(_ path: String) -> Int {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else { return 0 }
        return Int(info.f_bavail) * Int(info.f_frsize)
    }
}
