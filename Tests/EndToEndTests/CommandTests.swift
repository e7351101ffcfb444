import Foundation
import Testing

/// Runs `postroom` with arguments and returns its exit status and output.
func runPostroom(_ arguments: [String], directory: String = Harness.packageRoot) throws -> (status: Int32, output: String, error: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: Harness.binary)
    process.arguments = arguments
    process.currentDirectoryURL = URL(fileURLWithPath: directory)
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let output = out.fileHandleForReading.readDataToEndOfFile()
    let error = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: output, as: UTF8.self), String(decoding: error, as: UTF8.self))
}

struct CommandTests {
    @Test func checkAcceptsTheDefaultPipeline() throws {
        let spool = NSTemporaryDirectory() + "postroom-check-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: spool) }
        let result = try runPostroom(["check", "pipelines/default.json5", "--spool", spool])
        #expect(result.status == 0, "\(result.error)")
        #expect(result.output.contains("→ deliver"))
        #expect(result.output.contains("fax [foreign]"))
    }

    @Test func checkRejectsABrokenFileWithFileLineAndKeyPath() throws {
        let folder = NSTemporaryDirectory() + "postroom-check-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/broken.json5"
        try """
        {
          name: "broken",
          stages: [
            { stage: "ingest" },
            { stage: "validate", maxRecipents: 10 },
            { stage: "deliver" },
          ],
          connectors: [ { name: "out", type: "foreign", addressSpaces: ["*"], dropDirectory: "drop" } ],
        }
        """.write(toFile: path, atomically: true, encoding: .utf8)
        let result = try runPostroom(["check", path])
        #expect(result.status == 1)
        let line = result.error.split(separator: "\n").first { $0.contains("maxRecipents") }.map(String.init) ?? ""
        #expect(line.hasPrefix("\(path):5: stages[1].maxRecipents: unknown key"), "\(result.error)")
    }

    @Test func checkNamesAWrongTypeWithItsKeyPath() throws {
        let folder = NSTemporaryDirectory() + "postroom-check-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/typed.json5"
        try """
        {
          name: "typed",
          stages: [ { stage: "ingest" }, { stage: "deliver", expireAfter: "forever" } ],
          connectors: [ { name: "out", type: "foreign", addressSpaces: ["*"], dropDirectory: "drop" } ],
        }
        """.write(toFile: path, atomically: true, encoding: .utf8)
        let result = try runPostroom(["check", path])
        #expect(result.status == 1)
        #expect(result.error.contains("\(path):3: stages[1].expireAfter: 'forever' is not a duration"), "\(result.error)")
    }

    @Test func versionAndHelp() throws {
        #expect(try runPostroom(["--version"]).output.hasPrefix("postroom "))
        let help = try runPostroom(["--help"])
        #expect(help.status == 0 && help.output.contains("run [PIPELINE]"))
        #expect(try runPostroom(["frobnicate"]).status == 2)
    }

    @Test func aSecondRunOnTheSameSpoolIsRefused() async throws {
        let harness = try Harness()
        try await harness.start()
        let second = try runPostroom(["run", "pipelines/default.json5", "--spool", harness.spool])
        #expect(second.status == 75)
        #expect(second.error.contains("the spool is in use by process"))
        #expect(try await harness.stop() == 0)
    }
}
