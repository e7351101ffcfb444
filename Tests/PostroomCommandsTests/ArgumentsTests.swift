import Testing
@testable import PostroomCommands

@Suite struct ArgumentsTests {
    static let options: Set<String> = ["--spool", "--pipeline"]
    static let flags: Set<String> = ["--json", "--all"]

    static func parse(_ words: [String]) throws(Arguments.UsageError) -> Arguments {
        try Arguments(words, options: options, flags: flags)
    }

    @Test func positionalOptionsAndFlags() throws {
        let arguments = try Self.parse(["queue", "--spool", "/var/spool", "list", "--json"])
        #expect(arguments.positional == ["queue", "list"])
        #expect(arguments["--spool"] == "/var/spool")
        #expect(arguments.has("--json"))
        #expect(!arguments.has("--all"))
        #expect(arguments["--pipeline"] == nil)
    }

    @Test func inlineValues() throws {
        let arguments = try Self.parse(["--spool=/a=b", "--pipeline=", "x"])
        #expect(arguments["--spool"] == "/a=b", "only the first = splits")
        #expect(arguments["--pipeline"] == "")
        #expect(arguments.positional == ["x"])
    }

    @Test func theLastValueOfARepeatedOptionWins() throws {
        #expect(try Self.parse(["--spool", "a", "--spool=b"])["--spool"] == "b")
    }

    @Test func doubleDashEndsOptions() throws {
        let arguments = try Self.parse(["show", "--", "--json", "-x", "--spool"])
        #expect(arguments.positional == ["show", "--json", "-x", "--spool"])
        #expect(arguments.flags.isEmpty)
        #expect(arguments.options.isEmpty)
    }

    @Test func aLoneDashIsPositional() throws {
        #expect(try Self.parse(["-"]).positional == ["-"])
    }

    @Test func anOptionValueMayLookLikeAnOption() throws {
        let arguments = try Self.parse(["--spool", "--json"])
        #expect(arguments["--spool"] == "--json")
        #expect(!arguments.has("--json"))
    }

    @Test func usageErrors() {
        func error(_ words: [String]) -> String? {
            do { _ = try Self.parse(words); return nil } catch { return error.description }
        }
        #expect(error(["--verbose"]) == "unknown option --verbose")
        #expect(error(["-v"]) == "unknown option -v")
        #expect(error(["--colour=red"]) == "unknown option --colour")
        #expect(error(["list", "--spool"]) == "--spool needs a value")
        #expect(error(["--json=yes"]) == "--json takes no value")
    }
}
