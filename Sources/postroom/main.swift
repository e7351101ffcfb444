import Foundation
import PostroomCommands

// The CLI only parses arguments and prints; all behaviour lives in the Postroom library.
let status = await CommandLineInterface.main(Array(CommandLine.arguments.dropFirst()))
exit(status.rawValue)
