import Foundation
import Postroom

/// Which queue entries a `postroom queue` command works on: ids and filters, like Exchange's
/// `Get-Message -Filter` and postsuper's lists of ids.
///
/// Ids (entry id, queue id or Message-ID) and filters combine: an entry is selected when it matches
/// one of the ids (or no id was given) and every filter. A named id that matches nothing is
/// reported, so a typo is never silently ignored.
public struct QueueSelection: Sendable, Equatable {
    public var ids: [String] = []
    public var connector: String?
    public var state: QueueState?
    public var sender: GlobPattern?
    public var recipient: GlobPattern?
    public var olderThan: Double?

    /// The options that select entries, for the argument parser.
    public static let options: Set<String> = ["--connector", "--state", "--sender", "--recipient", "--older-than"]

    public struct Problem: Error, Sendable, CustomStringConvertible {
        public let description: String
    }

    public init() {}

    /// Reads ids and filter options; a bad value is a usage problem.
    public init(ids: [String], arguments: Arguments) throws(Problem) {
        self.ids = ids
        connector = arguments["--connector"]
        if let name = arguments["--state"] {
            let aliases = ["held": "hold", "suspended": "hold", "retry": "deferred", "ready": "active"]
            guard let state = QueueState(rawValue: aliases[name.lowercased()] ?? name.lowercased()) else {
                throw Problem(description: "unknown --state '\(name)' (active, deferred, hold, poison)")
            }
            self.state = state
        }
        sender = arguments["--sender"].map(GlobPattern.init)
        recipient = arguments["--recipient"].map(GlobPattern.init)
        if let text = arguments["--older-than"] {
            guard let duration = ConfigDuration(parsing: text) else {
                throw Problem(description: "--older-than needs a duration such as 30m, 2h or 1d, not '\(text)'")
            }
            olderThan = duration.seconds
        }
    }

    /// True when at least one filter option is set.
    public var hasFilters: Bool {
        connector != nil || state != nil || sender != nil || recipient != nil || olderThan != nil
    }

    /// True when the entry passes every filter (ids aside).
    public func passesFilters(_ stored: StoredEntry, now: Date = Date()) -> Bool {
        let entry = stored.entry
        if let connector, entry.connector != connector { return false }
        if let state, stored.state != state { return false }
        if let sender, !sender.matches(entry.envelope.sender.isEmpty ? "<>" : entry.envelope.sender) { return false }
        if let recipient, !entry.envelope.recipients.contains(where: { recipient.matches($0.address) }) { return false }
        if let olderThan, now.timeIntervalSince(entry.arrival) < olderThan { return false }
        return true
    }

    /// The selected entries, and the named ids that matched no entry at all.
    public func select(from entries: [StoredEntry], now: Date = Date()) -> (entries: [StoredEntry], unmatched: [String]) {
        var unmatched: [String] = []
        var chosen: [StoredEntry]
        if ids.isEmpty {
            chosen = entries
        } else {
            var seen: Set<String> = []
            chosen = []
            for id in ids {
                let matches = QueueAdministration.matching(id, in: entries)
                if matches.isEmpty { unmatched.append(id) }
                for match in matches where seen.insert(match.entry.id).inserted { chosen.append(match) }
            }
        }
        return (chosen.filter { passesFilters($0, now: now) }, unmatched)
    }
}
