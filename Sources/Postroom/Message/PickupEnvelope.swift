/// The Pickup envelope: who a message in `pickup/` is from and for, read from its
/// `From`/`Sender` and `To`/`Cc`/`Bcc` fields by the rules README "Messages" documents.
extension SubmissionValidator {
    struct Problem: Error {
        var text: String
    }

    /// The envelope sender by Exchange's Pickup rules: the From: mailbox when From: holds
    /// exactly one element (every From: field counted), otherwise the single Sender: mailbox.
    /// An unusable From: element counts as an author: `From: a@b.example, junk` names two
    /// authors, so it needs a Sender: like any other list of authors.
    static func pickupSender(_ fields: [HeaderField]) -> Result<String, Problem> {
        let fromFields = fields.filter { $0.hasName("From") }
        let senderFields = fields.filter { $0.hasName("Sender") }
        let fromLists = fromFields.map { AddressParser.parse($0.rawValue) }
        let senderLists = senderFields.map { AddressParser.parse($0.rawValue) }
        let from = fromLists.flatMap(\.mailboxes)
        let fromInvalid = fromLists.flatMap(\.invalid)
        let senderList = senderLists.flatMap(\.mailboxes)
        let senderInvalid = senderLists.flatMap(\.invalid)
        let authors = from.count + fromInvalid.count
        if authors == 1, from.count == 1 { return .success(from[0].address) }
        let singleSender = senderList.count == 1 && senderInvalid.isEmpty ? senderList[0].address : nil
        if authors > 1 {
            if let singleSender { return .success(singleSender) }
            return .failure(Problem(text: "From: lists \(authors) addresses, so Sender: must hold exactly one "
                + "address, but it holds \(senderList.count)\(senderInvalid.isEmpty ? "" : " and \(senderInvalid.count) unusable element(s)")"))
        }
        if let singleSender { return .success(singleSender) }
        if let bad = fromInvalid.first {
            return .failure(Problem(text: "From: \"\(ReplayEnvelope.excerpt(bad.text))\" holds no valid address: it \(bad.reason)"))
        }
        if let field = fromFields.first {
            return .failure(Problem(text: "From: \"\(ReplayEnvelope.excerpt(field.value))\" holds no valid address"))
        }
        return .failure(Problem(text: "the message has no From: field"))
    }

    /// The union of To, Cc and Bcc (deduplicated: domains compare case-insensitively
    /// because they are lowercased; local parts compare exactly), how many of them
    /// come from To/Cc, i.e. are visible, and every unusable element (5.1.3, quoted as
    /// written, once per distinct text).
    static func pickupRecipients(_ fields: [HeaderField]) -> ([String], Int, [FailedRecipient]) {
        var seen = Set<String>()
        var recipients: [String] = []
        var invalid: [FailedRecipient] = []
        var seenInvalid = Set<String>()
        func add(_ field: HeaderField) {
            let list = AddressParser.parse(field.rawValue)
            for mailbox in list.mailboxes where seen.insert(mailbox.address).inserted {
                recipients.append(mailbox.address)
            }
            for element in list.invalid where seenInvalid.insert(element.text).inserted {
                invalid.append(FailedRecipient(
                    address: element.text, status: "5.1.3",
                    diagnostic: "The \(field.name): element \"\(element.text)\" is not a valid address: it \(element.reason)."))
            }
        }
        for field in fields where field.hasName("To") || field.hasName("Cc") { add(field) }
        let visible = recipients.count
        for field in fields where field.hasName("Bcc") { add(field) }
        return (recipients, visible, invalid)
    }
}
