import Foundation
import Testing
@testable import Postroom

/// Seeded random and mutated inputs: nothing may crash, hang or go quadratic.
/// A failure prints the seed and iteration, which reproduce the input exactly.
@Suite("Message fuzzing")
struct FuzzTests {
    typealias S = MessageTestSupport
    typealias Generator = MessageTestSupport.SplitMix64

    /// Pieces that make random bytes look like headers, so the fuzzer reaches deep code.
    static let tokens: [[UInt8]] = [
        "From: ", "To: ", "Cc: ", "Bcc: ", "Sender: ", "Subject: ", "Date: ", "Message-ID: ", "Received: ",
        "Resent-From: ", "X-Sender: ", "X-Receiver: ", "X-EndOfInjectedXHeaders: ", "From ", "X-", ":",
        "<", ">", "@", ",", ";", "\"", "(", ")", "\\", "[", "]", ".", " ", "\t", "\r\n", "\n", "\r", "\r\n ",
        "\n\t", "\r\n\r\n", "\n\n", "=?", "?=", "?Q?", "?B?", "?q?", "utf-8", "iso-8859-1", "windows-1252",
        "=C3=BC", "_", "R3LDvMOfZQ==", "=", "alice", "example.com", "FAX:+15551234", "<>", "NOTIFY=NEVER",
        "ORCPT=rfc822;a@b.c", "group:", "undisclosed-recipients:;", "Mon, 23 Nov 2026 09:36:18 +0000", "\u{FEFF}",
        "Ünïcödé", "@route:", "a@b.com", "<a@b.com>", "\"x y\"", "(comment)",
    ].map { Array($0.utf8) } + [[0x00], [0xFF], [0xC3], [0xE9], [0x80], [0xEF, 0xBB, 0xBF], [0x7F]]

    static let seeds: [[UInt8]] = [
        "From: Alice <alice@example.com>\r\nTo: bob@example.com, \"C, D\" <c@d.com>\r\nCc: team: x@y.com;\r\nBcc: z@y.com\r\nSubject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\nDate: Mon, 23 Nov 2026 09:36:18 +0000\r\n\r\nbody\r\n",
        "X-Sender: <bob@fabrikam.com> BODY=7bit RET=HDRS\nX-Receiver: <mary@contoso.com> NOTIFY=NEVER ORcpt=rfc822;mary@contoso.com\nX-Receiver: FAX:+15551234\nX-EndOfInjectedXHeaders: 99\nFrom: bob@fabrikam.com\nSubject: x\n\nbody\n",
        "From MAILER-DAEMON Mon Nov 23 09:36:18 2026\nReceived: from a\n\tby b; Mon, 23 Nov 2026 09:36:18 +0000\nFrom: a@b.com, c@d.com\nSender: s@b.com\nTo: <@route:r@b.com>\nResent-To: q@b.com\n\n",
        "From: =?iso-8859-1?q?Andr=E9?= <andre@example.fr>\r\nTo: (comment) pete(his account)@silly.test(his host)\r\nMessage-ID:\r\nSubject: a\r\n b\r\n\r\n",
    ].map { Array($0.utf8) }

    /// A block of random tokens and bytes.
    static func randomHeader(_ generator: inout Generator, maxPieces: Int) -> [UInt8] {
        var out: [UInt8] = []
        let pieces = Int(generator.next() % UInt64(maxPieces)) + 1
        for _ in 0..<pieces {
            if generator.next() % 4 == 0 {
                out.append(UInt8(truncatingIfNeeded: generator.next()))
            } else {
                out.append(contentsOf: tokens[Int(generator.next() % UInt64(tokens.count))])
            }
        }
        return out
    }

    /// A seed with a few random edits: byte flips, token insertions, deletions, duplications, truncation.
    static func mutated(_ seed: [UInt8], _ generator: inout Generator) -> [UInt8] {
        var bytes = seed
        let edits = Int(generator.next() % 6) + 1
        for _ in 0..<edits {
            let position = bytes.isEmpty ? 0 : Int(generator.next() % UInt64(bytes.count))
            switch generator.next() % 5 {
            case 0:
                if !bytes.isEmpty { bytes[position] = UInt8(truncatingIfNeeded: generator.next()) }
            case 1:
                bytes.insert(contentsOf: tokens[Int(generator.next() % UInt64(tokens.count))], at: position)
            case 2:
                let end = min(bytes.count, position + Int(generator.next() % 16))
                bytes.removeSubrange(position..<end)
            case 3:
                let end = min(bytes.count, position + Int(generator.next() % 32))
                bytes.insert(contentsOf: bytes[position..<end], at: position)
            default:
                bytes.removeSubrange(position..<bytes.count)
            }
        }
        return bytes
    }

    /// Everything the daemon would do with an input, plus invariants that must always hold.
    static func exercise(_ bytes: [UInt8], iteration: Int) {
        if let message = try? RFC5322Message(parsing: bytes) {
            for field in message.fields {
                let value = field.value
                _ = AddressParser.parseList(value)
                _ = EncodedWords.decode(value)
                _ = MessageDate.parse(value)
            }
            _ = try? ReplayEnvelope.parse(message)
            // Serializing and parsing again gives the same fields.
            let again = try? RFC5322Message(parsing: message.serialized())
            #expect(again?.fields.map(\.name) == message.fields.map(\.name), "iteration \(iteration)")
            #expect(again?.fields.map(\.value) == message.fields.map(\.value), "iteration \(iteration)")
        }
        let source: MessageSource = iteration % 2 == 0 ? .pickup : .replay
        let limits = SubmissionLimits(maxHeaderSize: 4_096, maxRecipients: 20, maxMessageSize: 100_000)
        switch SubmissionValidator.validate(bytes, totalSize: Int64(bytes.count), source: source, limits: limits, context: S.context) {
        case .accepted(let accepted):
            #expect(!accepted.envelope.recipients.isEmpty, "iteration \(iteration)")
            #expect((try? RFC5322Message(parsing: accepted.message)) != nil, "iteration \(iteration)")
        case .report(let report):
            #expect(!report.envelope.sender.isEmpty, "iteration \(iteration)")
            if iteration % 16 == 0 {
                let dsn = DeliveryStatusNotification.build(
                    about: report.envelope, originalMessage: report.headerBytes, originalMessageID: nil,
                    failed: [FailedRecipient(address: "x@y.com", status: report.status, diagnostic: report.diagnostic)],
                    reportingDomain: "example.com", reportingHost: "mx1", now: S.now, messageID: "<n@x>")
                #expect(dsn.flatMap { try? RFC5322Message(parsing: $0.message) } != nil, "iteration \(iteration)")
            }
        case .badmail(let reason):
            #expect(!reason.contains("\n") && !reason.contains("\r"), "iteration \(iteration)")
        }
    }

    // Four slices so Swift Testing can run them in parallel: 4 × 30,000 random blocks.
    @Test(arguments: [1, 2, 3, 4] as [UInt64])
    func randomHeaderBlocks(seed: UInt64) {
        var generator = Generator(seed: seed)
        for iteration in 0..<30_000 {
            Self.exercise(Self.randomHeader(&generator, maxPieces: 60), iteration: iteration)
        }
    }

    @Test(arguments: [11, 12] as [UInt64])
    func mutatedRealisticMessages(seed: UInt64) throws {
        var generator = Generator(seed: seed)
        var seeds = Self.seeds
        // Corpus files are realistic seeds too (the small ones, to keep the test quick).
        for url in CorpusTests.files() {
            if let data = try? Data(contentsOf: url), data.count < 4_000 { seeds.append([UInt8](data)) }
        }
        for iteration in 0..<15_000 {
            let seed = seeds[Int(generator.next() % UInt64(seeds.count))]
            Self.exercise(Self.mutated(seed, &generator), iteration: iteration)
        }
    }

    @Test func randomStringsForAddressesAndEncodedWords() {
        var generator = Generator(seed: 99)
        for _ in 0..<20_000 {
            let text = String(decoding: Self.randomHeader(&generator, maxPieces: 40), as: UTF8.self)
            for mailbox in AddressParser.parseList(text) {
                // Every address found is itself a parseable single address.
                #expect(AddressParser.parseAddress("<\(mailbox.address)>") == mailbox.address, "\(text)")
            }
            _ = EncodedWords.decode(text)
            _ = ReplayEnvelope.split(text)
        }
    }

    // MARK: - Size and linearity

    /// Pathological inputs of about `size` bytes, each built to stress one code path.
    static func pathological(_ size: Int) -> [(String, [UInt8])] {
        func field(_ name: String, _ unit: String) -> [UInt8] {
            let repeated = String(repeating: unit, count: max(1, size / unit.utf8.count))
            return Array("From: a@b.com\r\n\(name): \(repeated)\r\n\r\nbody".utf8)
        }
        return [
            ("many fields", Array(("From: a@b.com\r\n" + String(repeating: "X-A: b\r\n", count: size / 8) + "\r\n").utf8)),
            ("long folded field", field("Subject", "x\r\n ")),
            ("address list", field("To", "\"q\" <u@d.com>, (c) v@d.com, ")),
            ("unbalanced brackets", field("To", "<<((\"")),
            ("stray encoded-word starts", field("Subject", "=?a?q?=?")),
            ("long encoded words", field("Subject", "=?utf-8?q?=C3=BC?= ")),
            ("routes", field("To", "<@a,@b,@c:")),
            ("nested comments", field("To", "((a@b.c ")),
            ("unterminated quoted strings", field("To", "\"\\")),
            ("groups", field("To", "g: a@b.c, ; ")),
            ("many receivers", Array(("X-Sender: <a@b.com>\r\n" + String(repeating: "X-Receiver: <r@d.com>\r\n", count: size / 23) + "\r\n").utf8)),
        ]
    }

    static func measure(_ bytes: [UInt8]) -> Duration {
        let clock = ContinuousClock()
        return clock.measure {
            let message = try? RFC5322Message(parsing: bytes)
            for field in message?.fields.prefix(3) ?? [] {
                _ = AddressParser.parseList(field.value)
                _ = EncodedWords.decode(field.value)
            }
            _ = message.flatMap { try? ReplayEnvelope.parse($0) }
            for source in [MessageSource.pickup, .replay] {
                _ = SubmissionValidator.validate(
                    bytes, totalSize: Int64(bytes.count), source: source, limits: SubmissionLimits(), context: S.context)
            }
        }
    }

    @Test func oneMegabyteHeadersAreHandledInLinearTime() {
        let small = Self.pathological(100_000)
        let large = Self.pathological(1_000_000)
        for ((name, smallInput), (_, largeInput)) in zip(small, large) {
            // Warm up (first-touch allocations), then take the best of two runs to damp noise.
            _ = Self.measure(smallInput)
            let smallTime = min(Self.measure(smallInput), Self.measure(smallInput))
            let largeTime = min(Self.measure(largeInput), Self.measure(largeInput))
            #expect(largeTime < .seconds(60), "\(name): 1 MB took \(largeTime)")
            // Linear work grows 10×; allow 30× (plus slack for tiny timings) so it never flakes.
            #expect(largeTime <= smallTime * 30 + .milliseconds(100), "\(name): 100 KB \(smallTime), 1 MB \(largeTime)")
        }
    }
}
