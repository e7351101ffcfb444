import Foundation
import Testing
@testable import Postroom

@Suite("Address spaces")
struct AddressSpaceTests {
    @Test("the four Exchange spellings of one SMTP space are equal")
    func equivalentSpellings() throws {
        let spellings = ["SMTP:contoso.com;1", "contoso.com;1", "SMTP:contoso.com", "contoso.com", "smtp:Contoso.COM", " contoso.com ; 1 "]
        let spaces = try spellings.map { text throws(AddressSpaceError) in try AddressSpace(parsing: text) }
        for space in spaces {
            #expect(space == spaces[0])
            #expect(space.type == "SMTP" && space.space == "contoso.com" && space.cost == 1)
        }
        #expect(spaces[0].description == "SMTP:contoso.com;1")
        #expect(try AddressSpace(parsing: spaces[0].description) == spaces[0])
    }

    @Test("valid spaces", arguments: [
        ("*", "SMTP", "*", 1),
        ("SMTP:*;10", "SMTP", "*", 10),
        ("*.com", "SMTP", "*.com", 1),
        ("*.contoso.com;5", "SMTP", "*.contoso.com", 5),
        ("sub-1.contoso.com;100", "SMTP", "sub-1.contoso.com", 100),
        ("FAX:*", "FAX", "*", 1),
        ("FAX:*;1", "FAX", "*", 1),
        ("fax:+1555*;3", "FAX", "+1555*", 3),
        ("X400:c=US;a=Fabrikam;p=Contoso;5", "X400", "c=US;a=Fabrikam;p=Contoso", 5),
        ("X400:c=US;a=Fabrikam;P=Contoso;1", "X400", "c=US;a=Fabrikam;P=Contoso", 1),
        ("SMS:*;+7", "SMS", "*", 7),
        ("NOTES:Contoso/Sales", "NOTES", "Contoso/Sales", 1),
    ])
    func valid(text: String, type: String, space: String, cost: Int) throws {
        let parsed = try AddressSpace(parsing: text)
        #expect(parsed.type == type)
        #expect(parsed.space == space)
        #expect(parsed.cost == cost)
    }

    @Test("invalid spaces say what is wrong", arguments: [
        ("*contoso.com", "'*' may only stand alone or start '*.domain'"),
        ("con*toso.com", "'*' may only stand alone"),
        ("*.*.com", "'*' may only stand alone"),
        ("contoso..com", "empty label"),
        ("contoso.com.", "empty label"),
        ("-contoso.com", "starts or ends with '-'"),
        ("con toso.com", "only letters, digits"),
        ("contoso.com;0", "out of range; it must be 1 to 100"),
        ("contoso.com;101", "out of range"),
        ("contoso.com;-3", "out of range"),
        ("contoso.com;cheap", "'cheap' is not a cost"),
        ("X400:c=US;a=Fabrikam;p=Contoso", "must end with ';COST'"),
        ("FAX:;1", "the FAX space is empty"),
        ("FAX:", "the FAX space is empty"),
        (":contoso.com", "the type before ':' is empty"),
        ("F@X:*", "may hold only letters"),
        ("", "the address space is empty"),
        ("SMTP:;1", "the SMTP space is empty"),
    ])
    func invalid(text: String, fragment: String) {
        do {
            let space = try AddressSpace(parsing: text)
            Issue.record("\"\(text)\" parsed as \(space)")
        } catch {
            #expect(error.problem.contains(fragment), "\(error)")
            #expect(error.description.hasPrefix("address space \"\(text)\": "))
        }
    }

    @Test("SMTP matching and specificity: exact > *.sub.domain > *.domain > *")
    func smtpMatching() throws {
        let exact = try AddressSpace(parsing: "marketing.contoso.com")
        let sub = try AddressSpace(parsing: "*.marketing.contoso.com")
        let domain = try AddressSpace(parsing: "*.contoso.com")
        let any = try AddressSpace(parsing: "*")

        let address = "Jo@Marketing.Contoso.com"
        let matches = try [exact, sub, domain, any].map { try #require($0.matches(address)) }
        #expect(matches[0] > matches[1])
        #expect(matches[1] > matches[2])
        #expect(matches[2] > matches[3])
        #expect(matches[0].isExact && !matches[3].isExact)

        #expect(exact.matches("jo@contoso.com") == nil)
        #expect(exact.matches("jo@x.marketing.contoso.com") == nil)
        #expect(domain.matches("jo@contoso.com") != nil, "*.domain includes the domain itself")
        #expect(domain.matches("jo@notcontoso.com") == nil)
        #expect(domain.matches("jo@a.b.contoso.com") != nil)
        #expect(any.matches("SMTP:jo@anything.example") != nil)
        #expect(any.matches("FAX:+1555") == nil, "an SMTP space never matches another type")
        #expect(any.matches("not an address") == nil)
    }

    @Test("other types: exact beats wildcard, then the longer literal prefix")
    func typedMatching() throws {
        let all = try AddressSpace(parsing: "FAX:*")
        let us = try AddressSpace(parsing: "FAX:+1*")
        let area = try AddressSpace(parsing: "FAX:+1555*")
        let one = try AddressSpace(parsing: "FAX:+15551234")

        let m = try [all, us, area, one].map { try #require($0.matches("fax:+15551234")) }
        #expect(m[3] > m[2] && m[2] > m[1] && m[1] > m[0])
        #expect(area.matches("FAX:+4420") == nil)
        #expect(all.matches("alice@example.com") == nil)
        #expect(all.matches("SMS:+15551234") == nil)

        let x400 = try AddressSpace(parsing: "X400:c=US;a=Fabrikam;p=Contoso;5")
        #expect(x400.matches("X400:C=us;A=fabrikam;P=contoso") != nil, "X.400 compares case-insensitively")
        #expect(x400.matches("X400:c=US;a=Fabrikam;p=Contoso;s=Smith") == nil)
        #expect(try AddressSpace(parsing: "X400:c=US;a=Fabrikam;*;5").matches("X400:c=US;a=Fabrikam;p=Contoso;s=Smith") != nil)
    }

    @Test("glob matching")
    func glob() {
        #expect(AddressSpace.glob("*", matches: ""))
        #expect(AddressSpace.glob("a*c", matches: "abbbc"))
        #expect(AddressSpace.glob("a*c*", matches: "ac"))
        #expect(!AddressSpace.glob("a*c", matches: "abcd"))
        #expect(AddressSpace.glob("*b*", matches: "aaabaaa"))
    }
}

@Suite("Address spaces in configuration files")
struct AddressSpaceDecodingTests {
    struct Connector: Decodable {
        var addressSpaces: [AddressSpace]
    }

    @Test("address spaces decode from their text form and encode back to it")
    func decodes() throws {
        let text = "{ addressSpaces: ['FAX:*;1', 'contoso.com', \"X400:c=US;a=B;p=C;5\"] }"
        let connector = try ConfigFile.decode(Connector.self, from: Data(text.utf8), file: "p.json5")
        #expect(connector.addressSpaces.map(\.description) == ["FAX:*;1", "SMTP:contoso.com;1", "X400:c=US;a=B;p=C;5"])
        let encoded = try JSONEncoder().encode(connector.addressSpaces)
        #expect(try JSONDecoder().decode([AddressSpace].self, from: encoded) == connector.addressSpaces)
    }

    @Test("a bad address space is a ConfigError at its key path and line")
    func badSpace() {
        let text = """
        {
          addressSpaces: [
            "FAX:*;1",
            "*contoso.com",
          ],
        }
        """
        do {
            _ = try ConfigFile.decode(Connector.self, from: Data(text.utf8), file: "p.json5")
            Issue.record("decoded")
        } catch {
            #expect(error.keyPath == "addressSpaces[1]")
            #expect(error.line == 4)
            #expect(error.problem.contains("'*' may only stand alone or start '*.domain'"), "\(error)")
        }
    }
}
