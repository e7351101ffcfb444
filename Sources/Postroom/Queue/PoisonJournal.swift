import Foundation
import PostroomSystem
import Synchronization

/// Remembers which messages were being worked on when the process died, so a message that
/// crashes Postroom is parked as poison instead of crashing it forever (Exchange's PoisonCount).
///
/// Work on a key is marked open in `queue/inflight.slots` before it starts and unmarked when it
/// ends: a file of fixed slots mapped into memory (``SharedMemoryFile``), so marking is a few
/// stores, not a system call (this happens twice per stage per message). A slot is its state
/// byte, the key's length, the key and a checksum; one torn by a death in the middle of a store
/// fails its checksum and is ignored (at worst a crash goes uncounted, never one blamed on the
/// wrong message, since ending a slot clears its checksum too). Where no slot is free, the key is
/// too long for one, or the file cannot be mapped, `queue/inflight.journal` takes the mark as a
/// `B <key>` line and its end as an `E <key>` line instead; `X <key>` lines there record
/// unexpected failures. Neither file is fsynced: they must survive the death of the process
/// (`kill -9`, a crash), which the page cache guarantees, not the loss of the machine.
/// At start-up, a key open in a slot or with a `B` but no `E` crashed the previous run: once,
/// however many of its marks are open, since one death of the process is one crash for each
/// message. A stage ends its mark before it hands the message on, so a message waiting between
/// stages is not open and is not blamed for a crash elsewhere.
///
/// The file is compacted while the daemon runs, whenever `compactAfter` bytes were appended since
/// the last compaction: it is rewritten with only the lines still meaningful (a `B` per key open
/// now, every `X`), which the journal also keeps in memory (a few entries: the messages in
/// flight), so a daemon that runs for years keeps a small journal and never reads it back.
public final class PoisonJournal: Sendable {
    public let path: String
    /// The slot file beside the journal.
    public let slotsPath: String
    /// Appended bytes after which the journal is compacted.
    public let compactAfter: Int
    /// Slots in `inflight.slots` (each ``slotSize`` bytes); 0 keeps every mark in the journal.
    public let slotCount: Int
    private struct State {
        var file: AppendOnlyFile?
        var appended = 0
        /// What the file says, kept in step with it: keys begun (by a line) and not ended, and failures.
        var open: [String: Int] = [:]
        var failures: [String: Int] = [:]
        var slots: SharedMemoryFile?
        var freeSlots: [Int] = []
    }
    // Appends happen under the lock, so none can land in a file that compaction is replacing.
    private let state = Mutex(State())

    public init(queue: QueueStore, compactAfter: Int = 1 << 20, slotCount: Int = 2048) {
        path = queue.root + "/inflight.journal"
        slotsPath = queue.root + "/inflight.slots"
        self.compactAfter = compactAfter
        self.slotCount = slotCount
    }

    /// Reads what earlier runs left: failures (crashes and unexpected errors) per key.
    public func failureCounts() -> [String: Int] {
        let bytes = (try? FileSystem.readFile(path)) ?? []
        var (open, failures) = Self.tally(bytes)
        for key in Self.openSlots((try? FileSystem.readFile(slotsPath)) ?? []) { open[key, default: 0] += 1 }
        return open.keys.reduce(into: failures) { counts, key in counts[key, default: 0] += 1 }
    }

    /// A slot: state byte (1 open), key length, key, then a checksum of the length and the key.
    static let slotSize = 128
    static let slotKeyCapacity = slotSize - 6

    /// The keys of the slots that are open and whole in a slot file's bytes.
    static func openSlots(_ bytes: [UInt8]) -> [String] {
        stride(from: 0, to: bytes.count - slotSize + 1, by: slotSize).compactMap { start -> String? in
            let length = Int(bytes[start + 1])
            guard bytes[start] == 1, length <= slotKeyCapacity else { return nil }
            let key = bytes[(start + 2)..<(start + 2 + length)]
            let stored = bytes[(start + slotSize - 4)..<(start + slotSize)].reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            guard stored == checksum(length: length, key: key) else { return nil }
            return String(decoding: key, as: UTF8.self)
        }
    }

    /// FNV-1a over the length byte and the key; never 0, so a cleared slot never checks out.
    static func checksum(length: Int, key: some Sequence<UInt8>) -> UInt32 {
        var hash = (2_166_136_261 ^ UInt32(UInt8(length))) &* 16_777_619
        for byte in key {
            hash = (hash ^ UInt32(byte)) &* 16_777_619
        }
        return hash == 0 ? 1 : hash
    }

    /// Keys with more `B` than `E` lines (and how many more), and the `X` lines per key.
    static func tally(_ bytes: [UInt8]) -> (open: [String: Int], failures: [String: Int]) {
        var open: [String: Int] = [:]
        var failures: [String: Int] = [:]
        for line in bytes.split(separator: UInt8(ascii: "\n")) {
            guard line.count > 2 else { continue }
            let key = String(decoding: line.dropFirst(2), as: UTF8.self)
            switch line.first {
            case UInt8(ascii: "B"): open[key, default: 0] += 1
            case UInt8(ascii: "E"): open[key, default: 0] -= 1
            case UInt8(ascii: "X"): failures[key, default: 0] += 1
            default: continue
            }
        }
        return (open.filter { $0.value > 0 }, failures)
    }

    /// Rewrites the journal to hold only the failure counts still relevant, clears the slots, and
    /// opens both for this run. The slots are cleared first: a death between the two forgets the
    /// previous run's crashes rather than counting them twice.
    public func reset(keeping counts: [String: Int]) throws(SystemError) {
        try state.withLock { state throws(SystemError) in
            // Unmapped before the file is made again: it is truncated first, and a store into a
            // mapping past the end of its file is a SIGBUS.
            state.slots = nil
            // Without a slot file (say, a file system that cannot map it) every mark is a journal line.
            state.slots = slotCount > 0 ? try? SharedMemoryFile(creating: slotsPath, count: slotCount * Self.slotSize) : nil
            state.freeSlots = state.slots == nil ? [] : Array((0..<slotCount).reversed())
            state.file = try Self.rewrite(path, open: [:], failures: counts)
            state.appended = 0
            state.open = [:]
            state.failures = counts.filter { $0.value > 0 }
        }
    }

    /// Writes a journal holding `open` and `failures` and opens it for appending.
    private static func rewrite(_ path: String, open: [String: Int], failures: [String: Int]) throws(SystemError) -> AppendOnlyFile {
        var text = ""
        for (key, count) in failures.sorted(by: { $0.key < $1.key }) where count > 0 {
            text += String(repeating: "X \(key)\n", count: count)
        }
        for (key, count) in open.sorted(by: { $0.key < $1.key }) {
            text += String(repeating: "B \(key)\n", count: count)
        }
        try FileSystem.writeAtomically(Array(text.utf8), to: path)
        return try AppendOnlyFile(path: path)
    }

    /// An open mark, handed back to ``end(_:)``: the slot it holds, or none when it is a journal line.
    public struct Mark: Sendable {
        public let key: String
        let slot: Int?
    }

    /// Marks work on `key` as started.
    public func begin(_ key: String) -> Mark {
        let slot = state.withLock { state -> Int? in
            guard let slots = state.slots, key.utf8.count <= Self.slotKeyCapacity, let slot = state.freeSlots.popLast() else { return nil }
            let stored = key.utf8.withContiguousStorageIfAvailable { utf8 -> Bool in
                let start = slot * Self.slotSize
                // The state byte last; should the compiler or a death reorder or cut the stores, the
                // checksum still refuses a slot whose key is not whole.
                slots[start + 1] = UInt8(utf8.count)
                slots.store(UnsafeRawBufferPointer(utf8), at: start + 2)
                slots.store(Self.checksum(length: utf8.count, key: utf8), at: start + Self.slotSize - 4)
                slots[start] = 1
                return true
            }
            guard stored == true else {
                state.freeSlots.append(slot)
                return nil
            }
            return slot
        }
        if slot == nil { append("B", key) }
        return Mark(key: key, slot: slot)
    }

    /// Marks the work `mark` began as ended.
    public func end(_ mark: Mark) {
        guard let slot = mark.slot else { return append("E", mark.key) }
        state.withLock { state in
            guard let slots = state.slots else { return }
            let start = slot * Self.slotSize
            slots[start] = 0
            slots.store(UInt32(0), at: start + Self.slotSize - 4)
            state.freeSlots.append(slot)
        }
    }

    /// Records an unexpected failure of the work on `key`.
    public func failed(_ key: String) { append("X", key) }

    /// One `write(2)` of `<tag> <key>\n`, built as bytes.
    private func append(_ tag: Unicode.Scalar, _ key: String) {
        var line: [UInt8] = []
        line.reserveCapacity(key.utf8.count + 3)
        line.append(UInt8(ascii: tag))
        line.append(UInt8(ascii: " "))
        line.append(contentsOf: key.utf8)
        line.append(UInt8(ascii: "\n"))
        state.withLock { state in
            guard let file = state.file else { return }
            file.append(line)
            state.appended += line.count
            switch tag {
            case "B": state.open[key, default: 0] += 1
            case "E":
                let left = (state.open[key] ?? 0) - 1
                state.open[key] = left > 0 ? left : nil
            default: state.failures[key, default: 0] += 1
            }
            if state.appended >= compactAfter { compact(&state) }
        }
    }

    /// Replaces the journal by its meaning: the keys open now and the failures. On any error the
    /// old file stays in use and the next append tries again; nothing it says is lost.
    private func compact(_ state: inout State) {
        guard let file = try? Self.rewrite(path, open: state.open, failures: state.failures) else { return }
        state.file = file
        state.appended = 0
    }

    /// Journal keys: claimed files and queue entries live in different name spaces.
    public static func key(claimed queueID: String) -> String { "C:" + queueID }
    public static func key(entry id: String) -> String { "Q:" + id }
}
