import Foundation
import Testing

/// Issue 14, finding 1: the README's Quickstart works when pasted in one go. The shell blocks are
/// read from README.md at test time, so the test and the README cannot drift apart.
@Suite struct QuickstartTests {
    /// The ```sh blocks of the README's `## Quickstart` section, in order.
    static func quickstartBlocks() throws -> [String] {
        let readme = try String(contentsOfFile: Harness.packageRoot + "/README.md", encoding: .utf8)
        guard let start = readme.range(of: "\n## Quickstart\n") else { return [] }
        let rest = readme[start.upperBound...]
        let section = rest.range(of: "\n## ").map { rest[..<$0.lowerBound] } ?? rest
        var blocks: [String] = []
        var current: [Substring]?
        for line in section.split(separator: "\n", omittingEmptySubsequences: false) {
            if current == nil, line == "```sh" {
                current = []
            } else if current != nil, line == "```" {
                blocks.append(current!.joined(separator: "\n") + "\n")
                current = nil
            } else {
                current?.append(line)
            }
        }
        return blocks
    }

    @Test func theQuickstartWorksPastedAsItIs() async throws {
        let blocks = try Self.quickstartBlocks()
        #expect(!blocks.isEmpty, "README.md has no ```sh block under ## Quickstart")
        // A fresh folder standing in for a fresh clone: the pipelines, and the binary `swift build`
        // would produce at .build/debug/postroom. `swift` on PATH is a stand-in that only accepts
        // `swift build` (the test runner has just built the product; a nested build would wait on
        // the runner's own build lock).
        let root = NSTemporaryDirectory() + "postroom-quickstart-" + UUID().uuidString
        let fm = FileManager.default
        try fm.createDirectory(atPath: root + "/.build/debug", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: root + "/bin", withIntermediateDirectories: true)
        defer { try? fm.removeItem(atPath: root) }
        try fm.copyItem(atPath: Harness.packageRoot + "/pipelines", toPath: root + "/pipelines")
        try fm.createSymbolicLink(atPath: root + "/.build/debug/postroom", withDestinationPath: Harness.binary)
        try """
        #!/bin/sh
        [ "$1" = build ] && [ $# -eq 1 ] && exit 0
        echo "quickstart test: only 'swift build' is stood in for, not: swift $*" >&2
        exit 1

        """.write(toFile: root + "/bin/swift", atomically: true, encoding: .utf8)
        try fm.setAttributes([.posixPermissions: 0o755], ofItemAtPath: root + "/bin/swift")

        // Pasted in one go into an interactive-like shell: no `set -e`, so every error is visible
        // on standard error, and the daemon's pid is recorded so the test can stop it.
        let script = blocks.joined() + "echo \"$!\" > daemon.pid\n"
        let shell = Process()
        shell.executableURL = URL(fileURLWithPath: "/bin/bash")
        shell.arguments = ["-c", script]
        shell.currentDirectoryURL = URL(fileURLWithPath: root)
        shell.environment = ["PATH": root + "/bin:/usr/local/bin:/usr/bin:/bin", "HOME": root]
        // A file, not a pipe: the daemon inherits it and keeps it open after the shell exits.
        _ = fm.createFile(atPath: root + "/stderr", contents: nil)
        shell.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: root + "/stderr"))
        shell.standardOutput = FileHandle.nullDevice
        try shell.run()
        // Reaped here with waitpid: Foundation's waitUntilExit does not return while the shell's
        // background child (the daemon) lives on.
        var status: Int32 = 0
        let shellDeadline = Date().addingTimeInterval(60)
        while waitpid(shell.processIdentifier, &status, WNOHANG) == 0, Date() < shellDeadline {
            try await Task.sleep(for: .milliseconds(25))
        }
        // The daemon's own log lines start with postroom[pid]; the rest is the shell's.
        let shellErrors = ((try? String(contentsOfFile: root + "/stderr", encoding: .utf8)) ?? "")
            .split(separator: "\n").filter { !$0.hasPrefix("postroom[") }.joined(separator: "\n")
        let pid = Int32((try? String(contentsOfFile: root + "/daemon.pid", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 0
        defer {
            if pid > 0 {
                kill(pid, SIGTERM)
                let deadline = Date().addingTimeInterval(30)
                while kill(pid, 0) == 0, Date() < deadline { usleep(50_000) }
            }
        }
        #expect(pid > 0, "the Quickstart did not start the daemon in the background")
        #expect(!shellErrors.contains("No such file or directory"), "the Quickstart failed as pasted: \(shellErrors)")

        // "A moment later", the table's outcomes.
        func files(_ relative: String) -> [String] {
            ((try? fm.contentsOfDirectory(atPath: root + "/spool/" + relative)) ?? []).filter { !$0.hasPrefix(".") }
        }
        try await waitUntil("the Quickstart's deliveries", timeout: 30) {
            !files("mailboxes/alice/new").isEmpty && !files("mailboxes/bob/new").isEmpty
                && files("drop/fax").count == 1 && files("drop/outbound").count == 2
        }
        #expect(files("pickup").isEmpty)
        let outbound = try files("drop/outbound").map { try String(contentsOfFile: root + "/spool/drop/outbound/" + $0, encoding: .utf8) }
        #expect(outbound.contains { $0.contains("5.1.1") && $0.contains("nobody@example.com") }, "the report for nobody@")
        let tracking = try String(contentsOfFile: root + "/spool/tracking.log", encoding: .utf8)
        for event in ["RECEIVE", "EXPAND", "ROUTE", "SUBMIT", "DELIVER", "SEND", "DSN"] {
            #expect(tracking.contains("\"event\":\"\(event)\""), "tracking.log has no \(event)")
        }
    }
}
