import Foundation
import Synchronization

/// The messages of the power-loss suite and what each must become: mixed local, fax and outbound
/// recipients on the default pipeline, some with an unknown local recipient (a report to the sender).
enum PowerLossMail {
    static func messageID(_ index: Int) -> String { "<pl-\(index)@power.test>" }

    static func sender(_ index: Int) -> String { index % 4 == 3 ? "carol@example.com" : "sender\(index)@elsewhere.org" }

    static func recipients(_ index: Int) -> [String] {
        switch index % 6 {
        case 0: return ["alice@example.com"]
        case 1: return ["team@example.com"]
        case 2: return ["fax-desk@example.com", "bob@example.com"]
        case 3: return ["partner\(index)@elsewhere.org", "carol@example.com"]
        case 4: return ["alice@example.com", "nobody\(index)@example.com"]
        default: return ["fax-desk@example.com", "partner\(index)@elsewhere.org", "nobody@example.com"]
        }
    }

    /// Where the copies of a message land, each exactly once (`report:` is the report to its sender).
    static func expected(_ index: Int) -> Set<String> {
        var places: Set<String>
        switch index % 6 {
        case 0: places = ["mailbox:alice"]
        case 1: places = ["mailbox:alice", "mailbox:bob"]
        case 2: places = ["drop:fax", "mailbox:bob"]
        case 3: places = ["drop:outbound", "mailbox:carol"]
        case 4: places = ["mailbox:alice"]
        default: places = ["drop:fax", "drop:outbound"]
        }
        if index % 6 >= 4 { places.insert(sender(index) == "carol@example.com" ? "report:mailbox:carol" : "report:drop:outbound") }
        return places
    }

    /// A body whose every line names the message and its line, so a cut, a hole or a stray page shows.
    static func body(_ index: Int) -> String {
        let lines = index % 10 == 0 ? 800 : 8 + index % 25
        return (0..<lines).map { "message \(index) line \($0): the quick brown fox jumps over the lazy dog \(index &* 7919 &+ $0)\r\n" }.joined()
    }

    static func text(_ index: Int) -> String {
        "From: <\(sender(index))>\r\nTo: \(recipients(index).joined(separator: ", "))\r\nSubject: power \(index)\r\n"
            + "Message-ID: \(messageID(index))\r\nX-Token: pl\(index)\r\n\r\n" + body(index)
    }
}

/// A producer on the spool's file system, careful (hidden name, write, fsync, rename, directory
/// fsync) or, for a negative control, careless (no fsync at all).
struct PowerLossProducer {
    let pickup: String
    var careful = true

    struct Failure: Error, CustomStringConvertible { let description: String }

    /// Writes message `index`; when this returns (careful), the message survives a power cut.
    func drop(_ index: Int) throws {
        let temporary = pickup + "/.pl\(index).tmp"
        let bytes = Array(PowerLossMail.text(index).utf8)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw Failure(description: "open \(temporary): errno \(errno)") }
        var offset = 0
        while offset < bytes.count {
            let count = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard count > 0 else { close(fd); throw Failure(description: "write \(temporary): errno \(errno)") }
            offset += count
        }
        if careful { guard fsync(fd) == 0 else { close(fd); throw Failure(description: "fsync \(temporary): errno \(errno)") } }
        close(fd)
        guard rename(temporary, pickup + "/pl\(index).eml") == 0 else { throw Failure(description: "rename \(temporary): errno \(errno)") }
        if careful {
            let directory = open(pickup, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            defer { close(directory) }
            guard directory >= 0, fsync(directory) == 0 else { throw Failure(description: "fsync \(pickup): errno \(errno)") }
        }
    }
}

/// What the spool holds, read back file by file: every delivered copy by message and place, and
/// every violation of the guarantees (duplicates, truncated or corrupt copies, `.bad` files).
struct PowerLossCensus {
    var copies: [Int: [String: Int]] = [:]
    var violations: [String] = []

    /// Reads every delivered file (`known` caches files already verified, by path and size).
    static func take(_ harness: Harness, known: inout [String: Int64]) -> PowerLossCensus {
        var census = PowerLossCensus()
        for file in harness.deliveredFiles() {
            let path = harness.spool + "/" + file
            let parts = file.split(separator: "/")
            let place = parts[0] == "mailboxes" ? "mailbox:\(parts[1])" : "drop:\(parts[1])"
            let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int64) ?? -1
            guard let data = FileManager.default.contents(atPath: path) else {
                census.violations.append("\(file): cannot be read")
                continue
            }
            let text = String(decoding: data, as: UTF8.self)
            guard let split = text.range(of: "\r\n\r\n") else {
                census.violations.append("\(file): truncated or corrupt (\(data.count) bytes, no end of header)")
                continue
            }
            let header = text[..<split.lowerBound]
            func field(_ name: String) -> String? {
                header.split(separator: "\r\n").first { $0.lowercased().hasPrefix(name.lowercased() + ":") }
                    .map { $0.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces) }
            }
            let messageID = field("Message-ID") ?? ""
            if let index = index(in: messageID) {
                if known[path] != size {
                    let body = String(text[split.upperBound...])
                    if body != PowerLossMail.body(index) {
                        census.violations.append("\(file): the body of message \(index) is truncated or corrupt (\(body.utf8.count) of \(PowerLossMail.body(index).utf8.count) bytes)")
                        continue
                    }
                    known[path] = size
                }
                census.copies[index, default: [:]][place, default: 0] += 1
            } else if messageID.contains(".report@"), let original = field("In-Reply-To"), let index = index(in: original) {
                if known[path] != size {
                    guard text.hasSuffix("--\r\n"), text.contains("Status: 5.1.1"), text.contains("Message-ID: \(original)") else {
                        census.violations.append("\(file): the report about message \(index) is truncated or corrupt (\(data.count) bytes)")
                        continue
                    }
                    known[path] = size
                }
                census.copies[index, default: [:]]["report:" + place, default: 0] += 1
            } else {
                census.violations.append("\(file): not a copy of any message (\(data.count) bytes; Message-ID \(messageID.isEmpty ? "missing" : messageID))")
            }
        }
        for (index, places) in census.copies {
            for (place, count) in places where count > 1 { census.violations.append("message \(index): \(count) copies in \(place)") }
            for place in places.keys where !PowerLossMail.expected(index).contains(place) { census.violations.append("message \(index): unexpected copy in \(place)") }
        }
        for name in (try? FileManager.default.contentsOfDirectory(atPath: harness.pickup)) ?? [] where name.hasSuffix(".bad") {
            let reason = (try? String(contentsOfFile: harness.pickup + "/" + name + ".reason", encoding: .utf8)) ?? "?"
            census.violations.append("pickup/\(name): a message the producer made durable was renamed .bad: \(reason.trimmingCharacters(in: .newlines))")
        }
        return census
    }

    static func index(in messageID: String) -> Int? {
        guard messageID.hasPrefix("<pl-"), messageID.hasSuffix("@power.test>") else { return nil }
        return Int(messageID.dropFirst(4).dropLast(12))
    }

    /// Messages not completely delivered.
    func missing(_ messages: some Sequence<Int>) -> [Int] {
        messages.filter { index in PowerLossMail.expected(index).contains { (copies[index]?[$0] ?? 0) == 0 } }
    }

    /// Messages of `durable` that are neither completely delivered nor anywhere in pickup or the queue:
    /// lost at the power cut.
    func lost(_ durable: some Sequence<Int>, harness: Harness) -> [Int] {
        let waiting = Self.mentioned(harness)
        return missing(durable).filter { !waiting.contains($0) }
    }

    /// Messages that pickup, claimed files or queue entries still hold (by Message-ID or, for a
    /// report in the making, by the original it answers).
    static func mentioned(_ harness: Harness) -> Set<Int> {
        var found: Set<Int> = []
        let folders = ["pickup", "queue/incoming", "queue/active", "queue/deferred", "queue/hold"]
        for folder in folders {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: harness.spool + "/" + folder)) ?? [] where !name.hasPrefix(".") {
                guard let handle = FileHandle(forReadingAtPath: harness.spool + "/" + folder + "/" + name) else { continue }
                let head = String(decoding: handle.readData(ofLength: 64 * 1024), as: UTF8.self)
                try? handle.close()
                var rest = head[...]
                while let range = rest.range(of: "<pl-") {
                    let tail = rest[range.lowerBound...]
                    if let end = tail.firstIndex(of: ">"), let index = index(in: String(tail[...end])) { found.insert(index) }
                    rest = rest[range.upperBound...]
                }
            }
        }
        return found
    }
}

/// Counts messages the producer has made durable, shared between the producing task and the test.
final class ProducedMessages: Sendable {
    private let state = Mutex<(durable: [Int], stop: Bool)>(([], false))
    var durable: [Int] { state.withLock { $0.durable } }
    var shouldStop: Bool { state.withLock { $0.stop } }
    func add(_ index: Int) { state.withLock { $0.durable.append(index) } }
    func stop() { state.withLock { $0.stop = true } }
}
