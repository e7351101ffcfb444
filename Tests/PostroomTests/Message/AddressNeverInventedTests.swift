import Testing
@testable import Postroom

/// Issue 11, classes 1-3: an address is taken as written or reported as unusable;
/// characters are never joined, removed or transcoded to make an element parse.
@Suite("Addresses are never invented")
struct AddressNeverInventedTests {
    private func parse(_ text: String) -> AddressList { AddressParser.parse(Array(text.utf8)) }
    private func parse(bytes: [UInt8]) -> AddressList { AddressParser.parse(bytes) }
    private func addresses(_ text: String) -> [String] { parse(text).mailboxes.map(\.address) }
    private func invalid(_ text: String) -> [String] { parse(text).invalid.map(\.text) }

    // MARK: Class 1: no gluing, no deleting

    @Test func wordsAreNeverGluedIntoALocalPart() {
        let list = parse("Mary Ann Smith mas@example.org")
        #expect(list.mailboxes.isEmpty)
        #expect(list.invalid == [InvalidAddress(
            text: "Mary Ann Smith mas@example.org",
            reason: "has words before the @ that are not joined by dots (a display name goes before <angle brackets>)")])
    }

    @Test func wordsAfterTheDomainAreNeverGlued() {
        #expect(addresses("<a@example.org plus words>").isEmpty)
        #expect(invalid("<a@example.org plus words>, b@example.org") == ["<a@example.org plus words>"])
        #expect(addresses("<a@example.org plus words>, b@example.org") == ["b@example.org"])
        #expect(invalid("a@exa mple.org") == ["a@exa mple.org"])
    }

    @Test func noCharacterIsDroppedToMakeAnAddress() {
        // Each of these was, or could be, "repaired" by deleting something.
        for text in ["a b@c.example", "a@b@c.example", "<a@b.example> c@d.example", "a\\b@c.example",
                     "a@[1.2.3.4", "a@b.example]", "a@b..example", "a@.b.example", "a@b.example.",
                     "\"a\" \"b\"@c.example", "a@\"b\".example", "a(b@c.example", "<<a@b.example>>",
                     "a@b.example>", "<a@b.example", "a@[1.2 .3.4]"] {
            let list = parse(text)
            #expect(list.mailboxes.isEmpty, "\(text) gave \(list.mailboxes.map(\.address))")
            #expect(!list.invalid.isEmpty, "\(text) vanished without a report")
        }
    }

    @Test func obsoleteSyntaxOfRFC5322SectionFourIsAccepted() {
        // CFWS around the dots of a local part or domain (§4.4).
        #expect(addresses("john . doe @ example . com") == ["john.doe@example.com"])
        #expect(addresses("john(comment).doe@(c)example.com") == ["john.doe@example.com"])
        #expect(addresses("john.\r\n doe@example.com") == ["john.doe@example.com"])
        // Quoted words in a local part (obs-local-part = word *("." word)).
        #expect(addresses("\"john\".doe@example.com") == ["john.doe@example.com"])
        #expect(addresses("\"john smith\".jr@example.com") == ["\"john smith.jr\"@example.com"])
        // Source routes, empty list elements, a group without its ";".
        #expect(addresses("<@a.example,@b.example:c@d.example>") == ["c@d.example"])
        #expect(addresses(", ,a@b.example,,") == ["a@b.example"])
        #expect(addresses("Team: a@b.example, c@d.example") == ["a@b.example", "c@d.example"])
        #expect(parse("Team: a@b.example, c@d.example").invalid.isEmpty)
    }

    @Test func quotedLocalPartsStayQuoted() {
        #expect(addresses("\"john doe\"@example.com") == ["\"john doe\"@example.com"])
        #expect(addresses("\"a,b\"@example.com") == ["\"a,b\"@example.com"])
        #expect(addresses("\"a\\\"b\"@example.com") == ["\"a\\\"b\"@example.com"])
        #expect(addresses("\"a@b\"@example.com") == ["\"a@b\"@example.com"])
    }

    @Test func displayNamesMayHoldWhatAddressesMayNot() {
        // The display name is never the address, so an unusual one costs nothing.
        #expect(addresses("\"a@b.example\" <real@x.example>") == ["real@x.example"])
        // Unquoted, "a@b.example <c@d.example>" may be two recipients with a lost comma.
        #expect(invalid("a@b.example <real@x.example>") == ["a@b.example <real@x.example>"])
        #expect(parse("Joe Q. Public <jqp@example.com>").mailboxes.first?.displayName == "Joe Q. Public")
        #expect(invalid("Bad \\ name <a@b.example>") == ["Bad \\ name <a@b.example>"])
    }

    // MARK: Class 2: every unusable element is reported as written

    @Test func bareLocalPartsAndGarbageAreReportedNotDropped() {
        let list = parse("a@b.example, jsmith, ,(only a comment), Mr. Nobody, <>, @x.example")
        #expect(list.mailboxes.map(\.address) == ["a@b.example"])
        #expect(list.invalid.map(\.text) == ["jsmith", "Mr. Nobody", "<>", "@x.example"])
        #expect(list.invalid[0].reason == "has no @domain (a bare local part is not an address)")
        #expect(list.invalid[2].reason == "is an empty address <>")
    }

    @Test func unterminatedPartsAreReported() {
        #expect(parse("\"unterminated <a@b.example>").invalid.first?.reason == "has a quoted string without its closing quote")
        #expect(parse("(unterminated a@b.example").invalid.first?.reason == "has a comment without its closing parenthesis")
        #expect(parse("a@[1.2.3.4").invalid.first?.reason == "has a domain literal without its closing ]")
    }

    @Test func elementTextIsUnfoldedAndTrimmed() {
        #expect(invalid("  one\r\n two  , c@d.example") == ["one two"])
    }

    // MARK: Class 3: ASCII or UTF-8, never transcoded

    @Test func latin1BytesMakeAnElementUnusable() {
        // "jörg" in Latin-1: 0xF6 alone is not UTF-8; it must never become "jörg" in UTF-8.
        let list = parse(bytes: Array("j".utf8) + [0xF6] + Array("rg@example.org, b@example.org".utf8))
        #expect(list.mailboxes.map(\.address) == ["b@example.org"])
        #expect(list.invalid.map(\.text) == ["j\\xF6rg@example.org"])
        #expect(list.invalid.first?.reason == "has bytes before the @ that are neither ASCII nor UTF-8")
        let domain = parse(bytes: Array("a@b".utf8) + [0xFC] + Array("cher.example".utf8))
        #expect(domain.mailboxes.isEmpty)
        #expect(domain.invalid.first?.reason == "has bytes after the @ that are neither ASCII nor UTF-8")
        let quoted = parse(bytes: Array("\"j".utf8) + [0xF6, 0x20] + Array("x\"@example.org".utf8))
        #expect(quoted.mailboxes.isEmpty)
    }

    @Test func overlongAndSurrogateUTF8AreNotUTF8() {
        for bad: [UInt8] in [[0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xE2, 0x82]] {
            let list = parse(bytes: Array("a".utf8) + bad + Array("@example.org".utf8))
            #expect(list.mailboxes.isEmpty, "\(bad)")
            #expect(list.invalid.count == 1, "\(bad)")
        }
    }

    @Test func validUTF8AddressesAreKept() {
        #expect(addresses("Jörg <jörg@Bücher.example>") == ["jörg@bücher.example"])
        #expect(addresses("用户@例子.广告") == ["用户@例子.广告"])
    }

    @Test func controlCharactersAreNeverPartOfAnAddress() {
        #expect(parse(bytes: Array("\"a".utf8) + [0x00] + Array("b\"@x.example".utf8)).mailboxes.isEmpty)
        #expect(parse(bytes: Array("a".utf8) + [0x01] + Array("b@x.example".utf8)).invalid.map(\.text) == ["a\\x01b@x.example"])
    }

    @Test func singleAddressRejectsAnyUnusableElement() {
        #expect(AddressParser.parseAddress("a@b.example, junk") == nil)
        #expect(AddressParser.parseAddress("<a@b.example> junk") == nil)
        #expect(AddressParser.parseAddress("<a@b.example>") == "a@b.example")
    }
}
