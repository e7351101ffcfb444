import Foundation
import Testing
@testable import Postroom

@Suite("Recipient directory")
struct RecipientDirectoryTests {
    static let file = DirectoryFile(
        mailboxes: [
            .init(name: "alice", address: "alice@example.com", aliases: ["alice.smith@example.com", "al@example.com"]),
            .init(name: "bob", address: "bob@example.com", aliases: ["robert@example.net"]),
            .init(name: "carol", address: "Carol@Example.com"),
        ],
        contacts: [
            .init(name: "fax-desk", address: "fax-desk@example.com", target: "FAX:+15551234"),
            .init(name: "partner", address: "partner@example.com", target: "pat@elsewhere.org"),
            .init(address: "x400-desk@example.com", target: "X400:c=US;a=Fabrikam;p=Contoso;s=Desk"),
            .init(address: "imcea-desk@example.com", target: "IMCEAFAX-+2B15550000@example.com"),
        ],
        groups: [
            .init(address: "team@example.com", members: ["alice@example.com", "bob@example.com"]),
            .init(address: "all@example.com", members: ["team@example.com", "al@example.com", "carol@example.com", "fax-desk@example.com", "outside@elsewhere.org"]),
            .init(address: "ring-a@example.com", members: ["ring-b@example.com", "alice@example.com"]),
            .init(address: "ring-b@example.com", members: ["ring-a@example.com", "carol@example.com"]),
        ])
    static let directory = RecipientDirectory(file: file, acceptedDomains: ["Example.com", "example.net"])

    static func resolve(_ addresses: String...) -> ResolutionResult {
        directory.resolve(addresses.map { EnvelopeRecipient(address: $0) })
    }

    // MARK: Resolution

    @Test("an alias resolves to the primary address, keeping the original recipient and its parameters")
    func alias() throws {
        let original = EnvelopeRecipient(address: "Alice.Smith@EXAMPLE.com", parameters: ["NOTIFY=FAILURE"])
        let result = Self.directory.resolve([original])
        let resolved = try #require(result.resolved.first)
        #expect(result.resolved.count == 1 && result.failed.isEmpty)
        #expect(resolved.address == "alice@example.com")
        #expect(resolved.mailbox == "alice")
        #expect(resolved.original == original)
        #expect(resolved.chain == ["Alice.Smith@EXAMPLE.com", "alice@example.com"])
        #expect(result.steps == [ResolutionStep(kind: .resolve, from: "Alice.Smith@EXAMPLE.com", to: "alice@example.com", detail: "alias of mailbox alice")])
        // The outgoing envelope names the primary address and keeps the used address in ORCPT.
        #expect(resolved.envelopeRecipient == EnvelopeRecipient(address: "alice@example.com", parameters: ["NOTIFY=FAILURE", "ORCPT=rfc822;Alice.Smith@EXAMPLE.com"]))
    }

    @Test("an existing ORCPT is preserved, never replaced")
    func orcptPreserved() throws {
        let original = EnvelopeRecipient(address: "al@example.com", parameters: ["ORCPT=rfc822;first@elsewhere.org"])
        let resolved = try #require(Self.directory.resolve([original]).resolved.first)
        #expect(resolved.envelopeRecipient.parameters == ["ORCPT=rfc822;first@elsewhere.org"])
        #expect(resolved.original == original)
    }

    @Test("a primary address in another case is delivered as the directory spells it, with no step")
    func primaryAnyCase() throws {
        let result = Self.resolve("CAROL@example.COM", "bob@EXAMPLE.com")
        #expect(result.resolved.map(\.address) == ["Carol@Example.com", "bob@example.com"])
        #expect(result.resolved.map(\.mailbox) == ["carol", "bob"])
        #expect(result.steps.isEmpty)
        #expect(result.resolved[0].envelopeRecipient.address == "Carol@Example.com")
    }

    @Test("aliases in a second accepted domain")
    func secondDomain() {
        #expect(Self.resolve("Robert@Example.NET").resolved.map(\.address) == ["bob@example.com"])
        #expect(Self.resolve("nobody@example.net").failed.map(\.status) == ["5.1.1"])
    }

    @Test("contacts resolve to their targets: SMTP, FAX, X400, and an IMCEA target decoded in turn")
    func contacts() {
        let result = Self.resolve("fax-desk@example.com", "partner@example.com", "x400-desk@example.com", "imcea-desk@example.com")
        #expect(result.resolved.map(\.address) == ["FAX:+15551234", "pat@elsewhere.org", "X400:c=US;a=Fabrikam;p=Contoso;s=Desk", "FAX:+15550000"])
        #expect(result.resolved.allSatisfy { $0.mailbox == nil })
        #expect(result.resolved[0].chain == ["fax-desk@example.com", "FAX:+15551234"])
        #expect(result.resolved[3].chain == ["imcea-desk@example.com", "IMCEAFAX-+2B15550000@example.com", "FAX:+15550000"])
        #expect(result.steps.contains(ResolutionStep(kind: .resolve, from: "fax-desk@example.com", to: "FAX:+15551234", detail: "contact fax-desk")))
        #expect(result.failed.isEmpty)
    }

    @Test("an unknown address in an accepted domain fails 5.1.1 for that recipient only")
    func unknownRecipient() throws {
        let result = Self.resolve("alice@example.com", "alice2@example.com", "bob@example.com")
        #expect(result.resolved.map(\.address) == ["alice@example.com", "bob@example.com"])
        let failure = try #require(result.failed.first)
        #expect(result.failed.count == 1)
        #expect(failure.address == "alice2@example.com")
        #expect(failure.status == "5.1.1")
        #expect(failure.diagnostic == "unknown recipient alice2@example.com")
        #expect(failure.original == EnvelopeRecipient(address: "alice2@example.com"))
    }

    @Test("outside and typed addresses pass through unchanged")
    func passThrough() {
        let result = Self.resolve("Someone@Elsewhere.ORG", "FAX:+15559999", "X400:c=US;a=B;p=C", "SMTP:other@elsewhere.org", "IMCEAFAX-+2B1555@elsewhere.org")
        #expect(result.resolved.map(\.address) == ["Someone@Elsewhere.ORG", "FAX:+15559999", "X400:c=US;a=B;p=C", "other@elsewhere.org", "IMCEAFAX-+2B1555@elsewhere.org"])
        #expect(result.steps.isEmpty)
        #expect(result.failed.isEmpty)
    }

    @Test("malformed addresses fail 5.1.3")
    func malformed() {
        let result = Self.resolve("no-at-sign", "@example.com", "a@", "a b@example.com", "a@exa..mple.com", "ok@example.com")
        #expect(result.failed.map(\.status) == ["5.1.3", "5.1.3", "5.1.3", "5.1.3", "5.1.3", "5.1.1"])
        #expect(result.failed[0].diagnostic.hasPrefix("bad address syntax: 'no-at-sign'"))
    }

    @Test("IMCEA addresses in accepted domains are decapsulated and resolved again")
    func imcea() {
        let result = Self.resolve("IMCEAFAX-+2B15559876@example.com", "imceafax-+2b15550001@EXAMPLE.NET", "IMCEASMS-+2B1555@example.com")
        #expect(result.resolved.map(\.address) == ["FAX:+15559876", "FAX:+15550001", "SMS:+1555"])
        #expect(result.steps[0] == ResolutionStep(kind: .resolve, from: "IMCEAFAX-+2B15559876@example.com", to: "FAX:+15559876", detail: "IMCEA decapsulation"))
    }

    @Test("IMCEA-encapsulated SMTP and X500 are refused with 5.1.1; malformed IMCEA is unknown")
    func imceaRefused() {
        let result = Self.resolve("IMCEASMTP-victim+40elsewhere+2Eorg@example.com", "IMCEAX500-_o=Org_cn=alice@example.com", "IMCEAFAX-+ZZ@example.com")
        #expect(result.resolved.isEmpty)
        #expect(result.failed.map(\.status) == ["5.1.1", "5.1.1", "5.1.1"])
        #expect(result.failed[0].diagnostic.contains("IMCEA-encapsulated SMTP addresses are not accepted"))
        #expect(result.failed[1].diagnostic.contains("IMCEA-encapsulated X500"))
        #expect(result.failed[2].diagnostic == "unknown recipient IMCEAFAX-+ZZ@example.com")
    }

    @Test("an IMCEA address and a contact reaching the same number give one copy")
    func imceaSameAsContact() {
        // IMCEA may carry any non-SMTP type; an encapsulated FAX address reaching the same number
        // as a contact is simply that FAX address (deduplicated with the contact's copy).
        let result = Self.resolve("fax-desk@example.com", "IMCEAFAX-+2B15551234@example.com")
        #expect(result.resolved.map(\.address) == ["FAX:+15551234"])
    }

    // MARK: Expansion

    @Test("groups expand recursively; a person reached twice gets one copy")
    func nestedExpansion() {
        let result = Self.resolve("all@example.com", "alice@example.com")
        #expect(result.resolved.map(\.address) == ["alice@example.com", "bob@example.com", "Carol@Example.com", "FAX:+15551234", "outside@elsewhere.org"])
        #expect(result.resolved[0].chain == ["all@example.com", "team@example.com", "alice@example.com"])
        #expect(result.resolved.allSatisfy { $0.original.address == "all@example.com" })
        #expect(result.steps.filter { $0.kind == .expand }.count == 7)
        #expect(result.steps.contains(ResolutionStep(kind: .expand, from: "all@example.com", to: "team@example.com", detail: "member of group all@example.com")))
        #expect(result.failed.isEmpty)
    }

    @Test("a group named twice, directly and nested, expands once")
    func groupTwice() {
        let result = Self.resolve("team@example.com", "all@example.com")
        #expect(result.resolved.map(\.address) == ["alice@example.com", "bob@example.com", "Carol@Example.com", "FAX:+15551234", "outside@elsewhere.org"])
        #expect(result.resolved[0].chain == ["team@example.com", "alice@example.com"])
        #expect(result.steps.filter { $0.from == "team@example.com" }.count == 2)
    }

    @Test("cyclic groups terminate and deliver each member once")
    func cycle() {
        let result = Self.resolve("ring-a@example.com")
        #expect(result.resolved.map(\.address) == ["Carol@Example.com", "alice@example.com"])
        #expect(result.failed.isEmpty)
        let fromB = Self.resolve("ring-b@example.com", "ring-a@example.com")
        #expect(fromB.resolved.map(\.address) == ["alice@example.com", "Carol@Example.com"])
    }

    @Test("a contact loop with no way out fails 5.4.6; a group with only itself too")
    func forwardOnlyLoop() {
        let file = DirectoryFile(
            contacts: [.init(address: "a@example.com", target: "b@example.com"), .init(address: "b@example.com", target: "a@example.com")],
            groups: [.init(address: "self@example.com", members: ["self@example.com"]), .init(address: "empty@example.com", members: [])])
        let directory = RecipientDirectory(file: file, acceptedDomains: ["example.com"])
        let result = directory.resolve([EnvelopeRecipient(address: "a@example.com"), EnvelopeRecipient(address: "self@example.com"), EnvelopeRecipient(address: "empty@example.com")])
        #expect(result.resolved.isEmpty)
        #expect(result.failed.map(\.status) == ["5.4.6", "5.4.6"])
        #expect(result.failed[0].diagnostic.hasPrefix("forwarding loop: a@example.com → b@example.com → a@example.com"))
        let problems = directory.problems().map(\.description)
        #expect(problems.contains("contacts[1].target: forwarding loop: a@example.com → b@example.com → a@example.com; mail to these addresses fails with 5.4.6"))
        #expect(problems.contains { $0.hasPrefix("groups[0].members[0]: group cycle: self@example.com → self@example.com") })
    }

    @Test("a long chain of nested groups resolves without trouble")
    func deepNesting() {
        let depth = 60
        let groups = (0..<depth).map { i in
            DirectoryFile.Group(address: "g\(i)@example.com", members: i + 1 < depth ? ["g\(i + 1)@example.com", "m\(i)@example.com"] : ["g0@example.com"])
        }
        let mailboxes = (0..<depth).map { DirectoryFile.Mailbox(name: "m\($0)", address: "m\($0)@example.com") }
        let directory = RecipientDirectory(file: DirectoryFile(mailboxes: mailboxes, groups: groups), acceptedDomains: ["example.com"])
        let result = directory.resolve([EnvelopeRecipient(address: "g0@example.com")])
        #expect(result.resolved.count == depth - 1)
        #expect(result.failed.isEmpty)
    }

    // MARK: Problems

    @Test("the test directory's only problem is the ring cycle")
    func fixtureProblems() {
        let problems = Self.directory.problems()
        #expect(problems.map(\.description) == ["groups[3].members[0]: group cycle: ring-a@example.com → ring-b@example.com → ring-a@example.com; each member still gets one copy, but the loop is almost certainly a mistake"])
    }

    @Test("problems name each fault with its key path")
    func problemList() {
        let file = DirectoryFile(
            mailboxes: [
                .init(name: "alice", address: "alice@example.com", aliases: ["al@elsewhere.org", "not an address"]),
                .init(name: "Alice", address: "alice2@example.com", aliases: ["AL@example.com"]),
                .init(name: "../etc", address: "FAX:+1"),
                .init(name: "dup", address: "ALICE@example.com"),
            ],
            contacts: [.init(address: "c@example.com", target: "ghost@example.com"), .init(address: "d@example.com", target: "FAX")],
            groups: [.init(address: "g@example.com", members: ["alice@example.com", "IMCEAFAX-+2B1@example.com", "IMCEASMTP-x+40y@example.com", "missing@example.com", "x@elsewhere.org", "b@@"])])
        let problems = RecipientDirectory(file: file, acceptedDomains: ["example.com"]).problems()
        let text = problems.map(\.description)
        let expected = [
            "mailboxes[0].aliases[0]: alias address al@elsewhere.org is not in an accepted domain (example.com)",
            "mailboxes[0].aliases[1]: malformed address: 'not an address' has no @domain (write local@domain or TYPE:address)",
            "mailboxes[1].name: mailbox name 'Alice' is already used by mailboxes[0] (names are folders and compared case-insensitively)",
            "mailboxes[2].name: mailbox name '../etc' must not start with '.' (it names a folder)",
            "mailboxes[2].address: mailbox address FAX:+1 is a FAX address; it must be an SMTP address in an accepted domain",
            "mailboxes[3].address: address ALICE@example.com is already used by mailboxes[0].address; each address may belong to one entry only",
            "contacts[0].target: unknown contact target ghost@example.com: no mailbox, alias, contact or group has this address in accepted domain example.com",
            "contacts[1].target: malformed contact target: 'FAX' has no @domain (write local@domain or TYPE:address)",
            "groups[0].members[2]: unknown member IMCEASMTP-x+40y@example.com: no mailbox, alias, contact or group has this address in accepted domain example.com",
            "groups[0].members[3]: unknown member missing@example.com: no mailbox, alias, contact or group has this address in accepted domain example.com",
            "groups[0].members[5]: malformed member: 'b@@': the local part contains a character that must be quoted",
        ]
        for line in expected {
            #expect(text.contains(line), "missing: \(line)\nall: \(text.joined(separator: "\n"))")
        }
        #expect(text.count == expected.count, "\(text.joined(separator: "\n"))")
    }

    // MARK: Files

    static let pipelinesDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("pipelines")

    @Test("the shipped pipelines/directory.json5 loads with zero problems")
    func shippedDirectory() throws {
        let path = Self.pipelinesDirectory.appendingPathComponent("directory.json5").path
        let directory = try RecipientDirectory.load(path: path, acceptedDomains: ["example.com"])
        #expect(directory.problems().isEmpty, "\(directory.problems())")
        #expect(Set(directory.file.mailboxes.map(\.name)) == ["alice", "bob", "carol", "postmaster"])
        #expect(directory.file.mailboxes.allSatisfy { !$0.aliases.isEmpty })
        let result = directory.resolve([EnvelopeRecipient(address: "team@example.com"), EnvelopeRecipient(address: "fax-desk@example.com")])
        #expect(result.resolved.map(\.address) == ["alice@example.com", "bob@example.com", "FAX:+15551234"])
    }

    static func writeTemporary(_ text: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("directory-\(UUID().uuidString).json5").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test("a bad directory file gives a ConfigError naming file, line and key path")
    func badFile() throws {
        let path = try Self.writeTemporary("""
        // a directory with a misspelt key
        {
          mailboxes: [
            { name: "alice", address: "alice@example.com" },
            { name: "bob", address: "bob@example.com",
              alias: ["robert@example.com"] },
          ],
        }
        """)
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            _ = try RecipientDirectory.load(path: path, acceptedDomains: ["example.com"])
            Issue.record("the file loaded")
        } catch {
            #expect(error.file == path)
            #expect(error.line == 6)
            #expect(error.keyPath == "mailboxes[1].alias")
            #expect(error.problem.contains("unknown key"))
            #expect(error.description.hasPrefix("\(path):6: mailboxes[1].alias: "))
        }
    }

    @Test("a missing required key and a wrong type are ConfigErrors too")
    func missingKey() throws {
        let path = try Self.writeTemporary("{ groups: [ { address: \"team@example.com\" } ] }")
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(throws: ConfigError.self) { try RecipientDirectory.load(path: path, acceptedDomains: ["example.com"]) }
        do {
            _ = try RecipientDirectory.load(path: path, acceptedDomains: ["example.com"])
        } catch {
            #expect(error.keyPath == "groups[0].members")
            #expect(error.problem == "required key is missing")
        }
        do {
            _ = try RecipientDirectory.load(path: "/nonexistent/directory.json5", acceptedDomains: [])
        } catch {
            #expect(error.file == "/nonexistent/directory.json5")
        }
    }

    @Test("problems in a loaded file carry their lines, in file order")
    func problemLines() throws {
        let path = try Self.writeTemporary("""
        {
          mailboxes: [
            { name: "alice", address: "alice@example.com" },
          ],
          /* groups follow */
          groups: [
            { address: "team@example.com", members: ["alice@example.com", 'ghost@example.com'] },
            {
              address: "outer@example.com",
              members: [
                "team@example.com",
                "ghost2@example.com", // not there either
              ],
            },
          ],
        }
        """)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let directory = try RecipientDirectory.load(path: path, acceptedDomains: ["example.com"])
        let errors = directory.configErrors(file: path)
        #expect(errors.map(\.description) == [
            "\(path):7: groups[0].members[1]: unknown member ghost@example.com: no mailbox, alias, contact or group has this address in accepted domain example.com",
            "\(path):12: groups[1].members[1]: unknown member ghost2@example.com: no mailbox, alias, contact or group has this address in accepted domain example.com",
        ])
    }

    @Test("the JSON5 line walker skips a BOM and non-breaking spaces")
    func lineWalkerUnicodeSpace() {
        let lines = JSON5Lines.lines(in: "\u{FEFF}{\u{00A0}a: 1,\n\u{00A0}b:\u{00A0}[2] }")
        #expect(lines["a"] == 1)
        #expect(lines["b"] == 2)
        #expect(lines["b[0]"] == 2)
    }

    @Test("the JSON5 line walker survives every truncation of the shipped directory file")
    func lineWalkerTruncation() throws {
        let text = try String(contentsOf: Self.pipelinesDirectory.appendingPathComponent("directory.json5"), encoding: .utf8)
        let full = JSON5Lines.lines(in: text)
        #expect(full["groups[0].members[1]"] != nil)
        var prefix = ""
        for character in text {
            prefix.append(character)
            let partial = JSON5Lines.lines(in: prefix)
            // Cut at a line end, a prefix never invents a place: what it finds, the full text has at
            // the same line. (Cut inside `//`, a lone `/` cannot be known to start a comment.)
            guard character == "\n" else { continue }
            for (path, line) in partial where full[path] != nil {
                #expect(full[path] == line, "\(path)")
            }
        }
    }

    @Test("the JSON5 line walker follows comments, quotes, nesting and trailing commas")
    func lineWalker() {
        let lines = JSON5Lines.lines(in: """
        { // comment with [brackets] and "quotes"
          'a': [1, 2,
            { "b": "x]y}", c: [ /* [ */ true, ], },
          ],
          d: { e: "multi\\
        line" },
          f: 3,
        }
        """)
        #expect(lines["a"] == 2)
        #expect(lines["a[0]"] == 2)
        #expect(lines["a[2]"] == 3)
        #expect(lines["a[2].b"] == 3)
        #expect(lines["a[2].c[0]"] == 3)
        #expect(lines["d.e"] == 5)
        #expect(lines["f"] == 7)
    }
}
