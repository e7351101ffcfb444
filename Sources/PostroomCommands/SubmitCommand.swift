import Foundation
import Postroom
import PostroomSystem

/// `postroom submit`: a safe producer, as Postfix's `sendmail` is for Postfix.
///
/// Reads one message on standard input and puts it into the spool's `pickup/` (envelope
/// from the header) or, with `-f SENDER` and recipients, `replay/` (envelope as
/// `X-Sender`/`X-Receiver` lines). The file is written under a hidden name, fsynced, renamed
/// to `<name>.eml` and the directory fsynced: the daemon never sees a partial file, and once
/// the command exits 0 the message survives a power loss. Exit 75 (EX_TEMPFAIL) when the
/// spool is missing, full or not writable, so a cron job or an MTA's pipe transport keeps the
/// message and tries again later.
public enum SubmitCommand {
    static let help = """
    usage: postroom submit [--spool DIR] [--directory DIR] [--min-free SIZE] < MESSAGE
           postroom submit [--spool DIR] -f SENDER [-N NOTIFY] [-R RET] [-V ENVID] [--] RECIPIENT... < MESSAGE

    Puts the message on standard input into <spool>/pickup/ (envelope from From/Sender and
    To/Cc/Bcc), or with -f and recipients into <spool>/replay/ (envelope as X-Sender and
    X-Receiver lines; the header's own To/Cc are not used). Written safely: hidden name,
    fsync, rename, directory fsync. Prints the path of the new file.

      --spool DIR       the spool (default ./spool)
      --directory DIR   write here instead of <spool>/pickup or <spool>/replay
      --min-free SIZE   refuse (exit 75) when the filesystem would have less free (default 64MB)
      -f SENDER         envelope sender; "" or "<>" is the null sender (a bounce)
      -N NOTIFY         DSN NOTIFY for every recipient: NEVER, or SUCCESS,FAILURE,DELAY
      -R RET            DSN RET: FULL or HDRS
      -V ENVID          DSN envelope id

    exit: 0 queued, 1 bad input, 2 usage, 75 spool missing, full or not writable (try later)
    """

    public static func main(_ words: [String]) async -> ExitCode {
        guard let arguments = CommandLineInterface.parse(
            words, options: ["--spool", "--directory", "--min-free", "-f", "-N", "-R", "-V"], help: help) else {
            return CommandLineInterface.helpOrUsage(words)
        }
        let replay = arguments["-f"] != nil
        guard replay == !arguments.positional.isEmpty else {
            printError(replay ? "postroom submit: -f needs at least one recipient\n\n\(help)"
                : "postroom submit: recipients need -f SENDER (pickup takes the envelope from the header)\n\n\(help)")
            return .usage
        }
        var minimumFree: Int64 = 64 << 20
        if let text = arguments["--min-free"] {
            guard let size = ByteSize(parsing: text) else {
                printError("postroom submit: --min-free needs a size such as 64MB, not '\(text)'")
                return .usage
            }
            minimumFree = size.bytes
        }
        var envelope: Envelope?
        if let senderText = arguments["-f"] {
            switch makeEnvelope(sender: senderText, recipients: arguments.positional,
                                notify: arguments["-N"], ret: arguments["-R"], envid: arguments["-V"]) {
            case .success(let made): envelope = made
            case .failure(let problem):
                printError("postroom submit: \(problem.text)")
                return .usage
            }
        }
        let spool = CommandLineInterface.spool(arguments["--spool"])
        let directory = arguments["--directory"].map { resolvePath($0, against: FileManager.default.currentDirectoryPath) }
            ?? spool + (replay ? "/replay" : "/pickup")
        guard FileSystem.status(of: directory, followLinks: true)?.kind == .directory else {
            printError("postroom submit: \(directory) does not exist; check --spool (postroom run creates it), then try again")
            return .temporaryFailure
        }
        let input = FileHandle.standardInput.readDataToEndOfFile()
        guard !input.isEmpty else {
            printError("postroom submit: no message on standard input")
            return .userError
        }
        let message = [UInt8](input)
        let bytes = envelope.map { ReplayFormat.encode(envelope: $0, message: message, lineEnding: lineEnding(of: message)) } ?? message
        if let free = FileSystem.availableBytes(at: directory), free - Int64(bytes.count) < minimumFree {
            printError("postroom submit: the spool filesystem of \(directory) is full (\(ByteSize(bytes: free)) free, \(ByteSize(bytes: minimumFree)) must stay free); try again later")
            return .temporaryFailure
        }
        let path = directory + "/" + fileName()
        do {
            try FileSystem.writeAtomically(bytes, to: path)
            try FileSystem.syncDirectory(directory)
        } catch {
            printError("postroom submit: cannot write \(path): \(error); the message was not queued, try again later")
            return .temporaryFailure
        }
        print(path)
        return .ok
    }

    struct Problem: Error {
        let text: String
    }

    /// The replay envelope from the command line (every recipient gets the same NOTIFY).
    static func makeEnvelope(sender: String, recipients: [String], notify: String?, ret: String?, envid: String?) -> Result<Envelope, Problem> {
        func bare(_ address: String) -> String {
            let trimmed = address.trimmingCharacters(in: .whitespaces)
            return trimmed.hasPrefix("<") && trimmed.hasSuffix(">") ? String(trimmed.dropFirst().dropLast()) : trimmed
        }
        func isClean(_ address: String) -> Bool {
            !address.unicodeScalars.contains { $0.properties.isWhitespace || $0 == "<" || $0 == ">" || $0.value < 0x20 }
        }
        let from = bare(sender)
        guard isClean(from) else { return .failure(Problem(text: "the sender '\(sender)' is not one address")) }
        var parameters: [String] = []
        if let ret {
            guard ["FULL", "HDRS"].contains(ret.uppercased()) else { return .failure(Problem(text: "-R takes FULL or HDRS, not '\(ret)'")) }
            parameters.append("RET=" + ret.uppercased())
        }
        if let envid {
            guard !envid.isEmpty, isClean(envid) else { return .failure(Problem(text: "-V needs an envelope id without spaces")) }
            parameters.append("ENVID=" + Envelope.xtext(envid))
        }
        var recipientParameters: [String] = []
        if let notify {
            let kinds = notify.uppercased().split(separator: ",").map(String.init)
            guard !kinds.isEmpty, kinds.allSatisfy({ ["NEVER", "SUCCESS", "FAILURE", "DELAY"].contains($0) }),
                  !kinds.contains("NEVER") || kinds.count == 1 else {
                return .failure(Problem(text: "-N takes NEVER, or a list of SUCCESS, FAILURE, DELAY, not '\(notify)'"))
            }
            recipientParameters.append("NOTIFY=" + kinds.joined(separator: ","))
        }
        var list: [EnvelopeRecipient] = []
        for recipient in recipients {
            let address = bare(recipient)
            guard !address.isEmpty, isClean(address) else { return .failure(Problem(text: "the recipient '\(recipient)' is not one address")) }
            if !list.contains(where: { $0.address == address }) {
                list.append(EnvelopeRecipient(address: address, parameters: recipientParameters))
            }
        }
        return .success(Envelope(sender: from, recipients: list, parameters: parameters))
    }

    /// `<time>-<pid>-<random>.eml`: unique without coordination between producers.
    static func fileName() -> String {
        "submit-\(QueueID.next())-\(FileSystem.processID)-\(String(UInt32.random(in: 0...UInt32.max), radix: 16)).eml"
    }
}
