import Foundation
import Postroom

/// The `postroom` command: dispatches to the verbs of the contract.
public enum CommandLineInterface {
    public static let version = PostroomVersion.current

    static let usage = """
    usage: postroom <command> [options]

    commands:
      run [PIPELINE] [--spool DIR]     watch pickup/ and replay/ and deliver (default pipelines/default.json5)
      check PIPELINE [--spool DIR]     validate a pipeline file and print its stage graph
      explain [PIPELINE] FILE.eml      dry run: verdict, envelope, resolution and next hops
      queue list|show|retry|hold|release|remove [ID...] [FILTERS] [--spool DIR]
                                       operator queue commands (safe while run is running)
      stats [--spool DIR] [--watch]    stage-level metrics as a table
      trace ID [--spool DIR] [--csv]   the history of one message from the tracking log
      bench [--messages N] [--rate R]  measure throughput, latency and memory on a temporary spool
      submit [-f SENDER RCPT...]       put the message on standard input into pickup/ (or replay/) safely
      --help                           this text;  postroom <command> --help for one command
      --version                        print the version

    the spool of queue, stats and trace: --spool DIR, else $POSTROOM_SPOOL, else ./spool,
    else /var/spool/postroom
    exit codes: 0 ok, 1 user error, 2 usage error, 75 temporary failure
    """

    static let defaultPipeline = "pipelines/default.json5"

    public static func main(_ arguments: [String]) async -> ExitCode {
        guard let command = arguments.first else {
            printError(usage)
            return .usage
        }
        let rest = Array(arguments.dropFirst())
        switch command {
        case "--help", "-h", "help":
            print(usage)
            return .ok
        case "--version", "-V", "version":
            print("postroom \(version)")
            return .ok
        case "run":
            return await run(rest)
        case "check":
            return check(rest)
        case "explain":
            return await OperatorCommands.explain(rest)
        case "queue":
            return await QueueCommand.main(rest)
        case "stats":
            return await OperatorCommands.stats(rest)
        case "trace":
            return OperatorCommands.trace(rest)
        case "bench":
            return await Bench.main(rest)
        case "submit":
            return await SubmitCommand.main(rest)
        default:
            printError("postroom: unknown command '\(command)'\n\n\(usage)")
            return .usage
        }
    }

    static func parse(_ words: [String], options: Set<String> = [], flags: Set<String> = [], help: String) -> Arguments? {
        do {
            let arguments = try Arguments(words, options: options, flags: flags.union(["--help", "-h"]))
            if arguments.has("--help") || arguments.has("-h") {
                print(help)
                return nil
            }
            return arguments
        } catch {
            printError("postroom: \(error)\n\n\(help)")
            return nil
        }
    }

    /// The exit code after `parse` returned nil: 0 when help was asked for, else a usage error.
    static func helpOrUsage(_ words: [String]) -> ExitCode {
        words.contains("--help") || words.contains("-h") ? .ok : .usage
    }

    /// The spool for commands that work on one: `--spool`, else `./spool`.
    static func spool(_ override: String?) -> String {
        let chosen = override ?? "spool"
        return chosen.hasPrefix("/") ? chosen : FileManager.default.currentDirectoryPath + "/" + chosen
    }

    static func run(_ words: [String]) async -> ExitCode {
        let help = """
        usage: postroom run [PIPELINE] [--spool DIR] [--log-level LEVEL]

        Runs the pipeline (default \(defaultPipeline)) as a long-running watcher.
        SIGTERM/SIGINT stop intake and finish or park in-flight work; exit 0.
        """
        guard let arguments = parse(words, options: ["--spool", "--log-level"], help: help) else {
            return helpOrUsage(words)
        }
        guard arguments.positional.count <= 1 else {
            printError("postroom run: takes one pipeline file at most\n\n\(help)")
            return .usage
        }
        var log = Logger()
        if let level = arguments["--log-level"] {
            guard let parsed = Logger.Level(name: level) else {
                printError("postroom run: unknown log level '\(level)' (debug, info, notice, warning, error)")
                return .usage
            }
            log.minimum = parsed
        }
        return await Daemon.run(pipelinePath: arguments.positional.first ?? defaultPipeline, spoolOverride: arguments["--spool"], log: log)
    }

    static func check(_ words: [String]) -> ExitCode {
        let help = """
        usage: postroom check PIPELINE [--spool DIR]

        Validates a pipeline file without running it and prints the stage graph.
        Errors are printed as file:line: key.path: what is wrong (exit 1).
        """
        guard let arguments = parse(words, options: ["--spool"], help: help) else {
            return helpOrUsage(words)
        }
        guard arguments.positional.count == 1, let path = arguments.positional.first else {
            printError("postroom check: needs exactly one pipeline file\n\n\(help)")
            return .usage
        }
        let result = PipelineCheck.run(path: path, spoolOverride: arguments["--spool"])
        for warning in result.warnings { printError("warning: \(warning)") }
        guard result.isValid else {
            for error in result.errors { printError("\(error)") }
            return .userError
        }
        print(result.graph)
        print("ok: \(path) is valid")
        return .ok
    }
}

/// Prints a line on standard error.
public func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}
