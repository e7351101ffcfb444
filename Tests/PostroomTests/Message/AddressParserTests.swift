import Testing
@testable import Postroom

@Suite("AddressParser")
struct AddressParserTests {
    private func addresses(_ value: String) -> [String] { AddressParser.parseList(value).map(\.address) }

    @Test func plainAndAngleAddresses() {
        #expect(AddressParser.parseList("alice@Example.COM") == [MailboxAddress(address: "alice@example.com")])
        #expect(AddressParser.parseList("Alice Smith <Alice@Example.com>")
            == [MailboxAddress(displayName: "Alice Smith", address: "Alice@example.com")])
        #expect(addresses("<a@b.com>, c@d.com,e@f.com") == ["a@b.com", "c@d.com", "e@f.com"])
    }

    @Test func quotedDisplayNamesWithCommasAndEscapes() {
        let list = AddressParser.parseList(#""Smith, John" <john@x.com>, "O\"Brien" <ob@x.com>, "a@b.com" <real@x.com>"#)
        #expect(list.map(\.displayName) == ["Smith, John", "O\"Brien", "a@b.com"])
        #expect(list.map(\.address) == ["john@x.com", "ob@x.com", "real@x.com"])
    }

    @Test func commentsAreSkippedAndUsedAsNameForBareAddresses() {
        let list = AddressParser.parseList("john@x.com (John Doe), (leading) jane@x.com, Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>")
        #expect(list.map(\.address) == ["john@x.com", "jane@x.com", "pete@silly.test"])
        #expect(list[0].displayName == "John Doe")
        #expect(list[2].displayName == "Pete")
    }

    @Test func groups() {
        #expect(addresses("undisclosed-recipients:;").isEmpty)
        #expect(addresses("team: a@b.com, \"C D\" <c@d.com>; e@f.com") == ["a@b.com", "c@d.com", "e@f.com"])
        #expect(addresses("A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;, Mary <mary@x.test>")
            == ["c@a.test", "joe@where.test", "jdoe@one.test", "mary@x.test"])
    }

    @Test func obsoleteSyntax() {
        #expect(addresses("Mary Smith <@node.test,@node2.test:mary@example.net>") == ["mary@example.net"])
        #expect(addresses("<@route:a@b.com>") == ["a@b.com"])
        #expect(addresses("john . doe @ example . com") == ["john.doe@example.com"])
        #expect(addresses("Joe Q. Public <john.q.public@example.com>").count == 1)
        #expect(AddressParser.parseList("Joe Q. Public <jqp@example.com>").first?.displayName == "Joe Q. Public")
    }

    @Test func emptyElementsAndJunkAreSkipped() {
        #expect(addresses(",, a@b.com ,, ,") == ["a@b.com"])
        #expect(addresses("not an address, b@c.com") == ["b@c.com"])
        #expect(addresses("a@@b.com, x@, @y.com, c@d..com, <>, e@f.com") == ["e@f.com"])
        // Text after an angle address or a missing ">" makes the element unusable (issue 11):
        // "<a@b.com> c@d.com" may be two recipients with a lost comma.
        #expect(addresses("<a@b.com> trailing junk, c@d.com") == ["c@d.com"])
        #expect(addresses("Unclosed <a@b.com, c@d.com") == ["c@d.com"])
        #expect(addresses("\"unterminated <a@b.com>").isEmpty)
        #expect(addresses("(unterminated comment a@b.com").isEmpty)
        #expect(addresses(")]>;:,@").isEmpty)
    }

    @Test func quotedLocalPartsStayQuotedWhenNeeded() {
        #expect(addresses("\"john doe\"@Example.com") == ["\"john doe\"@example.com"])
        #expect(addresses("\"john\"@example.com") == ["john@example.com"])
        #expect(addresses("<\"a,b\"@x.com>") == ["\"a,b\"@x.com"])
    }

    @Test func domainLiteralsAndInternationalAddresses() {
        #expect(addresses("postmaster@[192.0.2.1]") == ["postmaster@[192.0.2.1]"])
        #expect(addresses("Jörg <jörg@Bücher.example>") == ["jörg@bücher.example"])
    }

    @Test func encodedWordDisplayNames() {
        let list = AddressParser.parseList("=?ISO-8859-1?Q?Andr=E9?= Pirard <PIRARD@vm1.ulg.ac.be>, =?UTF-8?B?5bGx55Sw?= <yamada@example.jp>")
        #expect(list.map(\.displayName) == ["André Pirard", "山田"])
        #expect(list[0].address == "PIRARD@vm1.ulg.ac.be")
    }

    @Test func singleAddress() {
        #expect(AddressParser.parseAddress("<a@B.com>") == "a@b.com")
        #expect(AddressParser.parseAddress("Name <a@b.com>") == "a@b.com")
        #expect(AddressParser.parseAddress("a@b.com") == "a@b.com")
        #expect(AddressParser.parseAddress("a@b.com, c@d.com") == nil)
        #expect(AddressParser.parseAddress("nobody") == nil)
        #expect(AddressParser.parseAddress("") == nil)
    }

    @Test func localPartAndDomainAccessors() {
        let mailbox = MailboxAddress(address: "\"a@b\"@example.com")
        #expect(mailbox.localPart == "\"a@b\"")
        #expect(mailbox.domain == "example.com")
    }
}
