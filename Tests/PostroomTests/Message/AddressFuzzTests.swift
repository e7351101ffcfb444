import Foundation
import Testing
@testable import Postroom

/// Issue 11: the address parser, fed 100,000 seeded random and mutated address lists,
/// never returns an address that is not written, in order and contiguously, in its
/// input, ignoring comments, quoting and folding (and the white space RFC 5322's
/// obsolete syntax allows around the dots and the @ of an addr-spec).
@Suite("Address parser fuzz")
struct AddressFuzzTests {
    typealias S = MessageTestSupport

    static let casesPerSeed = 25_000
    static let seeds: [UInt64] = [11, 12, 13, 14]

    /// Building blocks: realistic pieces, specials, folding, UTF-8 and broken bytes.
    static let pieces: [[UInt8]] = [
        "a", "bob", "x1", "Mary", "Smith", "jörg", "用户", "example", "org", "Example", "COM", "b-c", "d_e",
        "@", "@", ".", ".", ",", ",", ";", ":", "<", ">", "<", ">", " ", " ", "  ", "\t", "\r\n ", "\r\n\t",
        "\"q s\"", "\"a\\\"b\"", "\"x\"", "\"\"", "\"", "(c)", "(n(e)st)", "(", ")", "[1.2.3.4]", "[", "]", "\\",
        "a@b.example", "<c@d.example>", "@r.example:", "=?utf-8?q?x?=", "+tag", "'", "!#$%&*/=?^`{|}~",
    ].map { Array($0.utf8) } + [[0xF6], [0xC3, 0xA4], [0x00], [0xE2, 0x82], [0xED, 0xA0, 0x80], [0x7F], [0xFF]]

    static let seedsForMutation: [[UInt8]] = [
        "Mary Ann Smith mas@example.org", "<a@example.org plus words>", "a@b.example, jsmith",
        "\"John Smith\" <john.smith@example.com>, jane@example.com (Jane)", "Team: a@b.example, c@d.example;",
        "<@r1.example,@r2.example:x@y.example>", "john . doe @ example . com", "\"j s\".jr@example.org",
        "a(b)c@d.example", "Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>",
    ].map { Array($0.utf8) }

    @Test func addressesAreAlwaysWrittenInTheInput() async {
        // CPU-bound: the seeds run one after another on one thread of its own, not on the
        // cooperative pool (one thread per core), so the suite's time-bounded async tests
        // are neither starved nor crowded meanwhile.
        let results = await withCheckedContinuation { continuation in
            Thread {
                // Lowest priority (on Linux the nice value is per thread, and 0 is this thread): it uses idle
                // CPU and never slows the suite's time-bounded tests on a busy machine.
                _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 19)
                continuation.resume(returning: Self.seeds.map(Self.run(seed:)))
            }.start()
        }
        for (seed, (failures, produced)) in zip(Self.seeds, results) {
            #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
            // The generator must reach the interesting cases, not only garbage.
            #expect(produced > Self.casesPerSeed / 10, "seed \(seed): only \(produced) addresses produced")
        }
    }

    /// The failures (at most a few) and how many addresses were produced, for one seed.
    static func run(seed: UInt64) -> ([String], Int) {
        var generator = S.SplitMix64(seed: seed)
        var failures: [String] = []
        var produced = 0
        for iteration in 0..<Self.casesPerSeed {
            let input = iteration % 2 == 0 ? Self.randomList(&generator) : Self.mutatedList(&generator)
            let list = AddressParser.parse(input)
            produced += list.mailboxes.count
            let stream = Self.significant(input)
            for mailbox in list.mailboxes {
                let target = Self.lowerASCII(Self.unquoted(mailbox.address))
                if !Self.contains(stream, target) || !AddressTokenizer.isValidUTF8(Array(mailbox.address.utf8)) {
                    failures.append("seed \(seed) case \(iteration): \(AddressTokenizer.escapedText(input[...])) -> \(mailbox.address)")
                }
            }
            if failures.count > 5 { break }
        }
        return (failures, produced)
    }

    static func randomList(_ generator: inout S.SplitMix64) -> [UInt8] {
        var out: [UInt8] = []
        let count = 1 + Int(generator.next() % 14)
        for _ in 0..<count {
            out += pieces[Int(generator.next() % UInt64(pieces.count))]
        }
        return out
    }

    static func mutatedList(_ generator: inout S.SplitMix64) -> [UInt8] {
        var bytes = seedsForMutation[Int(generator.next() % UInt64(seedsForMutation.count))]
        let mutations = 1 + Int(generator.next() % 4)
        for _ in 0..<mutations where !bytes.isEmpty {
            let position = Int(generator.next() % UInt64(bytes.count))
            switch generator.next() % 5 {
            case 0: bytes.remove(at: position)
            case 1: bytes.insert(contentsOf: pieces[Int(generator.next() % UInt64(pieces.count))], at: position)
            case 2: bytes[position] = UInt8(truncatingIfNeeded: generator.next())
            case 3: bytes.insert(0x20, at: position)
            default:
                let other = Int(generator.next() % UInt64(bytes.count))
                bytes.swapAt(position, other)
            }
        }
        return bytes
    }

    /// The input as an addr-spec would read it: comments removed, quote marks and
    /// backslash escapes removed, folding line breaks removed, white space outside quotes
    /// dropped next to `.` and `@` (obsolete CFWS) and kept as one space elsewhere, so
    /// that words separated by a space can never match a glued address.
    static func significant(_ input: [UInt8]) -> [UInt8] {
        // (byte, is white space outside quotes); a comment counts as white space.
        var items: [(UInt8, Bool)] = []
        var index = 0
        var quoted = false
        while index < input.count {
            let byte = input[index]
            if byte == 0x0D || byte == 0x0A {
                index += 1
                continue
            }
            if quoted {
                if byte == 0x5C, index + 1 < input.count {
                    items.append((input[index + 1], false))
                    index += 2
                } else {
                    if byte == 0x22 { quoted = false } else { items.append((byte, false)) }
                    index += 1
                }
                continue
            }
            switch byte {
            case 0x22:
                quoted = true
                index += 1
            case 0x28:
                var depth = 0
                while index < input.count {
                    let current = input[index]
                    if current == 0x5C { index += 2; continue }
                    index += 1
                    if current == 0x28 { depth += 1 } else if current == 0x29 { depth -= 1; if depth == 0 { break } }
                }
                items.append((0x20, true))
            case 0x20, 0x09:
                items.append((0x20, true))
                index += 1
            default:
                items.append((byte, false))
                index += 1
            }
        }
        var out: [UInt8] = []
        var position = 0
        while position < items.count {
            if !items[position].1 {
                out.append(items[position].0)
                position += 1
                continue
            }
            var end = position
            while end < items.count, items[end].1 { end += 1 }
            let before = out.last
            let after = end < items.count ? items[end].0 : nil
            if before != 0x2E, before != 0x40, after != 0x2E, after != 0x40 { out.append(0x20) }
            position = end
        }
        return lowerASCII(out)
    }

    /// `local@domain` with a quoted local part unquoted and unescaped.
    static func unquoted(_ address: String) -> [UInt8] {
        let bytes = Array(address.utf8)
        guard bytes.first == 0x22, let at = bytes.lastIndex(of: 0x40), at > 1, bytes[at - 1] == 0x22 else { return bytes }
        var local: [UInt8] = []
        var index = 1
        while index < at - 1 {
            if bytes[index] == 0x5C, index + 1 < at - 1 { index += 1 }
            local.append(bytes[index])
            index += 1
        }
        return local + bytes[at...]
    }

    static func lowerASCII(_ bytes: [UInt8]) -> [UInt8] { bytes.map { $0 >= 0x41 && $0 <= 0x5A ? $0 + 0x20 : $0 } }

    static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, needle.count <= haystack.count else { return needle.isEmpty }
        for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
            if haystack[start..<(start + needle.count)].elementsEqual(needle) { return true }
        }
        return false
    }
}
