import Foundation
import PostroomSystem
import Testing

/// What LazyFS cannot show: directory entries. It passes creates, renames and unlinks straight to
/// the disk below, so they always survive its power cut, and a missing directory fsync goes
/// unnoticed there. This suite checks the directory side from a system-call trace of the real
/// daemon instead (strace), as an ordering rule:
///
/// - a file renamed into a durable place (a queue folder, a Maildir `new/`, a drop directory) was
///   fsynced after it was written and before the rename, or a `syncfs` of the whole file system
///   (group commit) started after it was closed and finished before the rename;
/// - before Postroom forgets a file (unlinks a claimed file or a queue entry), every rename that
///   carries its work on (its queue entries, its reports, its deliveries, its entry in another
///   state folder) is durable: an fsync of that directory (or a `syncfs`) started after the rename
///   and finished before the unlink;
/// - before the first copy of a message is renamed into place, its claim (the rename out of
///   `pickup/` into `queue/incoming/`) is durable: both directories fsynced (or the file system
///   synced) after the claim.
///   Otherwise a power cut could keep the copy and undo the claim, and the file would be taken
///   again under a new queue id and delivered twice.
@Suite(.serialized, .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/strace"), "needs strace (apt-get install strace)"))
struct DirectoryDurabilityTests {
    /// Runs the daemon under strace while it takes `count` messages (local, fax, outbound, unknown
    /// recipients and reports), stops it, and returns the rule violations and how much was checked.
    /// `durability` is the pipeline's key (nil: the default, `auto`).
    static func traceAndCheck(environment: [String: String] = [:], count: Int = 12, durability: String? = nil) async throws -> SyscallTraceCheck {
        let harness = try Harness()
        if let durability { try harness.useDefaultPipeline(replacing: [("  name: \"default\",", "  name: \"default\",\n  durability: \"\(durability)\",")]) }
        let trace = harness.root + "/trace"
        try await harness.start(environment: environment, wrapper: ["/usr/bin/strace", "-f", "-qq", "-y", "-s", "1024", "-o", trace,
                                                                    "-e", "trace=openat,close,rename,renameat,renameat2,fsync,fdatasync,syncfs,unlink,unlinkat"])
        for index in 0..<count {
            try harness.drop("From: <s\(index)@elsewhere.org>\r\nTo: alice@example.com, fax-desk@example.com, p\(index)@elsewhere.org, nobody\(index)@example.com\r\n"
                             + "X-Token: t\(index)\r\n\r\nbody \(index)\r\n", named: "t\(index).eml")
        }
        try await waitUntil("every delivery", timeout: 60) { harness.deliveredFiles().count >= count * 4 }
        try await waitUntil("the queue to empty", timeout: 30) { harness.queuedFiles().isEmpty }
        #expect(try await harness.stop() == 0)
        return SyscallTraceCheck(trace: try String(contentsOfFile: trace, encoding: .utf8), spool: harness.spool)
    }

    /// Both ways of making deliveries durable: an fsync per file (`file`, what `auto` picks where
    /// `syncfs` cannot be trusted, e.g. on LazyFS) and the `syncfs` group commit (`filesystem`).
    @Test(arguments: ["file", "filesystem"])
    func everyRenameIsDurableBeforeWhatDependsOnItIsForgotten(durability: String) async throws {
        if durability == "filesystem", !FileSystem.filesystemSyncIsDurable(at: NSTemporaryDirectory()) {
            print("skipped: syncfs is not a durability point on the test folder's file system")
            return
        }
        let check = try await Self.traceAndCheck(durability: durability)
        #expect(check.violations.isEmpty, "\(check.violations.prefix(10).joined(separator: "\n"))")
        // The rules were applied to real work, not to an empty trace: at least the four deliveries
        // of each message (alice, fax, outbound, the report), and the release of each claimed file
        // and of its report (however many queue entries a design writes in between).
        #expect(check.durableRenames >= 12 * 4, "only \(check.durableRenames) renames into durable places were traced")
        #expect(check.checkedUnlinks >= 12 * 2, "only \(check.checkedUnlinks) unlinks of claimed files and entries were traced")
        #expect(check.checkedClaims >= 12 * 2, "only \(check.checkedClaims) copies were checked against their message's claim")
        // The strategy asked for is the one traced: no syncfs per file, syncfs batches in the group commit.
        #expect(durability == "file" ? check.filesystemSyncs == 0 : check.filesystemSyncs > 0, "\(check.filesystemSyncs) syncfs calls")
    }

    /// Negative control: with fsync turned off the same rules must fail, on files and on directories.
    @Test func withoutFsyncTheRulesFail() async throws {
        let check = try await Self.traceAndCheck(environment: ["POSTROOM_TEST_SKIP_FSYNC": "1"], count: 4)
        #expect(check.filesystemSyncs == 0, "syncfs must be skipped with the fsyncs")
        #expect(check.violations.contains { $0.contains("directory") }, "\(check.violations.prefix(3))")
        #expect(check.violations.contains { $0.contains("without an fsync of the file") }, "\(check.violations.prefix(3))")
    }
}

/// The ordering rules of ``DirectoryDurabilityTests`` over an `strace -f -y` trace.
struct SyscallTraceCheck {
    var violations: [String] = []
    var durableRenames = 0
    var checkedUnlinks = 0
    /// Copies whose message's claim was in the trace, so the claim rule applied to them.
    var checkedClaims = 0
    /// `syncfs` calls in the trace (the group commit's).
    var filesystemSyncs = 0

    private struct Call {
        var name: String
        var arguments: String
        var result: String
        var start: Int
        var end: Int
    }

    private struct Rename {
        var directory: String
        var name: String
        var end: Int
        var durableAt: Int?
    }

    init(trace: String, spool: String) {
        let calls = Self.calls(in: trace)
        let durableFolders = ["/queue/incoming", "/queue/active", "/queue/deferred", "/queue/hold", "/queue/poison"].map { spool + $0 }
        func isDurablePlace(_ directory: String) -> Bool {
            durableFolders.contains(directory)
                || (directory.hasPrefix(spool + "/mailboxes/") && directory.hasSuffix("/new"))
                || (directory.hasPrefix(spool + "/drop/") && !directory.dropFirst(spool.count + 6).contains("/"))
        }
        var renames: [Rename] = []
        var created: [String: Int] = [:]  // path -> index of the open that created it
        var fileSynced: [String: Int] = [:]  // path -> end of the last fsync of it
        var claimedAt: [String: Int] = [:]  // queue id -> end of its claim's rename
        var directorySyncStarts: [String: [Int]] = [:]  // directory -> starts of its fsyncs
        var closedAt: [String: Int] = [:]  // path -> end of its last close
        var filesystemSyncs: [(start: Int, end: Int)] = []  // syncfs calls, in order
        for call in calls where call.result.hasPrefix("0") || (call.name == "openat" && !call.result.hasPrefix("-")) {
            let paths = Self.quoted(call.arguments)
            switch call.name {
            case "openat":
                if call.arguments.contains("O_CREAT"), let path = paths.first { created[path] = call.end }
            case "fsync", "fdatasync":
                guard let path = Self.descriptorPath(call.arguments) else { continue }
                fileSynced[path] = call.end
                directorySyncStarts[path, default: []].append(call.start)
                for index in renames.indices where renames[index].durableAt == nil && renames[index].directory == path && call.start > renames[index].end {
                    renames[index].durableAt = call.end
                }
            case "close":
                if let path = Self.descriptorPath(call.arguments) { closedAt[path] = call.end }
            case "syncfs":
                filesystemSyncs.append((call.start, call.end))
                self.filesystemSyncs += 1
                for index in renames.indices where renames[index].durableAt == nil && call.start > renames[index].end { renames[index].durableAt = call.end }
            case "rename", "renameat", "renameat2":
                guard paths.count == 2 else { continue }
                let (source, destination) = (paths[0], paths[1])
                let directory = (destination as NSString).deletingLastPathComponent
                let name = (destination as NSString).lastPathComponent
                let sourceDirectory = (source as NSString).deletingLastPathComponent
                if directory == spool + "/queue/incoming", sourceDirectory == spool + "/pickup" {
                    claimedAt[String(name.prefix { $0 != "." })] = call.end
                }
                if !directory.hasPrefix(spool + "/queue/"), !name.hasPrefix("."),
                   let (queueID, claimEnd) = claimedAt.first(where: { name.hasPrefix($0.key + ".") || name.contains("Q" + $0.key + ".") }) {
                    checkedClaims += 1
                    let claimSynced = filesystemSyncs.contains { $0.start > claimEnd && $0.end < call.start }
                    for folder in [spool + "/queue/incoming", spool + "/pickup"]
                    where !claimSynced && !(directorySyncStarts[folder] ?? []).contains(where: { $0 > claimEnd && $0 < call.start }) {
                        violations.append("\(destination) was renamed into place before the claim of \(queueID) was durable (no fsync of \(folder) in between)")
                    }
                }
                guard isDurablePlace(directory), !name.hasPrefix(".") else { continue }
                durableRenames += 1
                let syncedWithFilesystem = closedAt[source].map { closed in closed > (created[source] ?? -1) && filesystemSyncs.contains { $0.start > closed && $0.end < call.start } } ?? false
                if let made = created[source], (fileSynced[source] ?? -1) < made, !syncedWithFilesystem {
                    violations.append("\(destination) was renamed into place without an fsync of the file first (\(source))")
                }
                renames.append(Rename(directory: directory, name: name, end: call.end))
            case "unlink", "unlinkat":
                guard let path = paths.first else { continue }
                let directory = (path as NSString).deletingLastPathComponent
                let name = (path as NSString).lastPathComponent
                guard durableFolders.contains(directory), !name.hasPrefix("."), !name.hasSuffix(".reason") else { continue }
                checkedUnlinks += 1
                let parts = name.split(separator: ".")
                let queueID = String(parts[0])
                let isClaimed = directory.hasSuffix("/queue/incoming")
                // A report about this message, written into incoming/ (its own entries and deliveries come later).
                func isReport(_ rename: Rename) -> Bool { rename.directory == spool + "/queue/incoming" && rename.name.hasPrefix(queueID + "R") }
                for rename in renames where rename.durableAt.map({ $0 >= call.start }) ?? true {
                    let related: Bool
                    if isClaimed {
                        // A claimed file carries on as its entries and its reports, or as its deliveries
                        // where they are made straight from it (drop files `<qid>.<n>…`, Maildir `…Q<qid>.<n>R…`).
                        related = rename.name != name
                            && (rename.name.hasPrefix(queueID + ".") || rename.name.contains("Q" + queueID + ".") || isReport(rename))
                    } else {
                        // An entry carries on as its deliveries, its reports, or itself in another state folder.
                        related = (rename.name == name && rename.directory != directory)
                            || rename.name.contains("Q" + name + "R") || rename.name.hasPrefix(name + ".") || rename.name.hasPrefix(name + "-")
                            || isReport(rename)
                    }
                    if related {
                        violations.append("\(path) was removed before the directory entry \(rename.directory)/\(rename.name) was made durable (no directory fsync after the rename)")
                    }
                }
            default:
                continue
            }
        }
    }

    /// Calls with their start and end positions; `<unfinished ...>` and `<... resumed>` lines are joined.
    private static func calls(in trace: String) -> [Call] {
        var pending: [Substring: (name: String, arguments: String, start: Int)] = [:]
        var calls: [Call] = []
        for (index, line) in trace.split(separator: "\n").enumerated() {
            guard let space = line.firstIndex(of: " ") else { continue }
            let pid = line[..<space]
            let rest = line[line.index(after: space)...].trimmingCharacters(in: .whitespaces)
            if rest.hasPrefix("<... ") {
                guard let begun = pending.removeValue(forKey: pid), let close = rest.range(of: " resumed>") else { continue }
                let tail = String(rest[close.upperBound...])
                guard let equals = tail.range(of: " = ", options: .backwards) else { continue }
                calls.append(Call(name: begun.name, arguments: begun.arguments + tail[..<equals.lowerBound], result: String(tail[equals.upperBound...]), start: begun.start, end: index))
                continue
            }
            guard let open = rest.firstIndex(of: "(") else { continue }
            let name = String(rest[..<open])
            let body = String(rest[rest.index(after: open)...])
            if body.hasSuffix("<unfinished ...>") {
                pending[pid] = (name, String(body.dropLast("<unfinished ...>".count)), index)
            } else if let equals = body.range(of: " = ", options: .backwards) {
                calls.append(Call(name: name, arguments: String(body[..<equals.lowerBound]), result: String(body[equals.upperBound...]), start: index, end: index))
            }
        }
        return calls
    }

    /// The double-quoted strings of an argument list (paths; Postroom's contain no quotes).
    private static func quoted(_ text: String) -> [String] {
        text.split(separator: "\"", omittingEmptySubsequences: false).enumerated().filter { $0.offset % 2 == 1 }.map { String($0.element) }
    }

    /// `7</path/to/dir>` (strace -y) -> `/path/to/dir`.
    private static func descriptorPath(_ text: String) -> String? {
        guard let open = text.firstIndex(of: "<"), let close = text.lastIndex(of: ">"), open < close else { return nil }
        return String(text[text.index(after: open)..<close])
    }
}
