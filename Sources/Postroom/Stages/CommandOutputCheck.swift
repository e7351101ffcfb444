/// What a `filter` program's output must be before it replaces the message.
///
/// Validate accepted the input; the output must stay acceptable to every later stage and to
/// the systems it is delivered to. Checked, with the reason a refusal gives:
/// - it exists and fits: not empty, at most `maxMessageSize` bytes (the capture stops there,
///   so a runaway program costs no more memory than the largest allowed message);
/// - it is a message: the header parses as validate's does (no bare CR or NUL in the header,
///   every line a field or a continuation), with no byte-order mark or mbox `From ` line;
/// - the header fits: at most `maxHeaderSize`, or the input header's size when that was already
///   larger (Replay is exempt from the limit), plus ``headerAllowance`` for what filters add
///   (spam reports, signatures);
/// - no bare CR in the body unless the input body had one (a filter must not introduce what
///   readers split differently);
/// - the fields later stages and readers depend on are intact: exactly one `Message-ID`, the
///   same as before (queue, tracking log and reports know the message by it); `From` and
///   `Date` present; and none of the fields Postroom removed or writes itself appears more
///   often than in the input (the Replay envelope lines, `Bcc`, `Return-Path`, `Delivered-To`).
///
/// Pure: the same bytes always give the same answer.
public enum CommandOutputCheck {
    /// Bytes a filter may add to a header on top of the limit.
    public static let headerAllowance = 16 << 10

    /// Fields whose count may not grow: Postroom's envelope lines, the hygiene it applied, and
    /// the fields final delivery writes.
    static let mayNotGrow = ["X-Sender", "X-Receiver", "X-EndOfInjectedXHeaders", "X-CreatedBy", "Bcc", "Return-Path", "Delivered-To"]

    /// The output as the new message, or why it cannot be (one line, for logs and reports).
    public static func check(output: [UInt8], overflowed: Bool, input: [UInt8], messageID: String,
                             maxMessageSize: Int64, maxHeaderSize: Int) -> Result<[UInt8], Refusal> {
        if overflowed || Int64(output.count) > maxMessageSize {
            return .failure(Refusal("it wrote more than \(maxMessageSize) bytes, the largest message validate accepts (maxMessageSize)"))
        }
        if output.isEmpty { return .failure(Refusal("it wrote nothing; a filter must write the whole message to standard output")) }
        let message: RFC5322Message
        do {
            message = try RFC5322Message(parsing: output)
        } catch {
            return .failure(Refusal("its output is not a message: \(error.description)"))
        }
        if message.headerOffset != 0 {
            return .failure(Refusal("its output starts with a byte-order mark or an mbox \"From \" line; write the message only"))
        }
        let original = try? RFC5322Message(parsing: input)
        let inputHeader = original?.headerByteCount ?? 0
        let headerLimit = max(maxHeaderSize, inputHeader) + headerAllowance
        if message.headerByteCount > headerLimit {
            return .failure(Refusal("its output header is \(message.headerByteCount) bytes, more than the \(headerLimit) allowed"))
        }
        if hasBareCarriageReturn(message.body), !(original.map { hasBareCarriageReturn($0.body) } ?? false) {
            return .failure(Refusal("its output body contains a carriage return (CR) not followed by a line feed (LF)"))
        }
        let ids = message.values(of: "Message-ID")
        guard ids.count == 1, ids[0] == messageID else {
            return .failure(Refusal(ids.isEmpty ? "its output has no Message-ID; the message is known by \(messageID)"
                                    : ids.count > 1 ? "its output has \(ids.count) Message-ID fields"
                                    : "its output changed the Message-ID from \(messageID) to \(ids[0])"))
        }
        for required in ["From", "Date"] where message.value(of: required) == nil {
            return .failure(Refusal("its output has no \(required) field, which every message needs (RFC 5322 §3.6)"))
        }
        for name in mayNotGrow {
            let before = original?.values(of: name).count ?? 0
            if message.values(of: name).count > before {
                return .failure(Refusal("its output adds a \(name) field, which only Postroom writes or removes"))
            }
        }
        return .success(output)
    }

    /// What the filter changed in the header, for `explain` and the notes: field names added and removed.
    static func headerChanges(from input: [UInt8], to output: [UInt8]) -> String {
        guard let before = try? RFC5322Message(parsing: input), let after = try? RFC5322Message(parsing: output) else { return "" }
        var counts: [String: Int] = [:]
        for field in before.fields { counts[field.name.lowercased(), default: 0] -= 1 }
        for field in after.fields { counts[field.name.lowercased(), default: 0] += 1 }
        var added: [String] = []
        var removed: [String] = []
        var seen = Set<String>()
        for field in after.fields + before.fields where seen.insert(field.name.lowercased()).inserted {
            let change = counts[field.name.lowercased()] ?? 0
            if change > 0 { added.append(change > 1 ? "\(field.name) ×\(change)" : field.name) }
            if change < 0 { removed.append(change < -1 ? "\(field.name) ×\(-change)" : field.name) }
        }
        var parts: [String] = []
        if !added.isEmpty { parts.append("added " + added.joined(separator: ", ")) }
        if !removed.isEmpty { parts.append("removed " + removed.joined(separator: ", ")) }
        if !before.body.elementsEqual(after.body) { parts.append("body changed") }
        return parts.isEmpty ? "no change" : parts.joined(separator: "; ")
    }

    private static func hasBareCarriageReturn(_ bytes: ArraySlice<UInt8>) -> Bool {
        var index = bytes.startIndex
        while let found = bytes[index...].firstIndex(of: 0x0D) {
            let next = bytes.index(after: found)
            if next == bytes.endIndex || bytes[next] != 0x0A { return true }
            index = next
        }
        return false
    }

    /// Why a filter's output was refused.
    public struct Refusal: Error, Sendable, Equatable, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }
}
