import Testing
@testable import Postroom

@Suite("IMCEA encapsulation")
struct IMCEATests {
    @Test("encodes per the reference: alphanumerics, = and - kept; / to _; others +HH upper-case")
    func encodingRules() {
        #expect(IMCEA.encode(type: "FAX", address: "+15551234", domain: "example.com") == "IMCEAFAX-+2B15551234@example.com")
        #expect(IMCEA.encode(type: "EX", address: "/o=Org/ou=Site", domain: "contoso.com") == "IMCEAEX-_o=Org_ou=Site@contoso.com")
        #expect(IMCEA.encode(type: "X400", address: "c=US;a= ;p=Contoso", domain: "d.org") == "IMCEAX400-c=US+3Ba=+20+3Bp=Contoso@d.org")
        #expect(IMCEA.encode(type: "MSMAIL", address: "a.b@c", domain: "d.org") == "IMCEAMSMAIL-a+2Eb+40c@d.org")
        #expect(IMCEA.encode(type: "T", address: "under_score~", domain: "d") == "IMCEAT-under+5Fscore+7E@d")
        #expect(IMCEA.encode(type: "T", address: "a-b=c", domain: "d") == "IMCEAT-a-b=c@d")
    }

    @Test("round-trips many addresses", arguments: [
        ("FAX", "+15551234"),
        ("FAX", "+1 (555) 123-4567"),
        ("X400", "c=US;a=Fabrikam;p=Contoso;o=Sales;s=Smith;g=Jo"),
        ("EX", "/o=ExchangeLabs/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn=alice"),
        ("NOTES", "Alice Smith/Sales/Contoso@Contoso"),
        ("SMS", "+44.20.7946.0018"),
        ("CUSTOM", "tab\tand \"quotes\" and 'single' and back\\slash, semi;colon: colon"),
        ("CUSTOM", "equals=and-dash_under/slash+plus@at.dot space"),
        ("CUSTOM", "!#$%&*?^`{|}~<>[]()"),
        ("UTF8", "Zoë Ünïcödé 电话"),
        ("A", "x"),
    ])
    func roundTrip(type: String, address: String) throws {
        let encoded = IMCEA.encode(type: type, address: address, domain: "example.com")
        #expect(encoded.hasSuffix("@example.com"))
        let local = encoded.dropLast("@example.com".count)
        // Only the encoder's alphabet may appear in the local part.
        #expect(local.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "=-_+".contains($0)) })
        let decoded = try #require(IMCEA.decode(encoded))
        #expect(decoded.type == type.uppercased())
        #expect(decoded.address == address)
    }

    @Test("decodes either hex case and any case of the prefix and type")
    func decodeCase() throws {
        let upper = try #require(IMCEA.decode("IMCEAFAX-+2B15551234@example.com"))
        let lower = try #require(IMCEA.decode("imceafax-+2b15551234@EXAMPLE.COM"))
        #expect(upper.type == "FAX" && upper.address == "+15551234")
        #expect(lower.type == "FAX" && lower.address == "+15551234")
        #expect(IMCEA.decode("IMCEAX400-c=US+3ba=B@x.org")?.address == "c=US;a=B")
    }

    @Test("refuses what the encoder cannot produce", arguments: [
        "IMCEAFAX+2B1555@example.com",      // no dash after the type
        "IMCEA-+2B1555@example.com",        // empty type
        "IMCEAFAX-@example.com",            // empty address
        "IMCEAFAX-+2@example.com",          // truncated escape
        "IMCEAFAX-+2G15@example.com",       // not hex
        "IMCEAFAX-a.b@example.com",         // a literal dot is always encoded
        "IMCEAFAX-+2B1555",                 // no domain
        "IMCEAFAX-+2B1555@",                // empty domain
        "IMCEAFAX-+FF@example.com",         // not UTF-8
        "alice@example.com",                // not IMCEA at all
        "IMCEA@example.com",
    ])
    func malformed(address: String) {
        #expect(IMCEA.decode(address) == nil)
    }

    @Test("length caps: local part ≤ 315, whole address ≤ 571")
    func lengthCaps() {
        // "IMCEAFAX-" is 9 characters; 306 more makes a 315-character local part.
        let longest = "IMCEAFAX-" + String(repeating: "1", count: 306)
        #expect(IMCEA.decode(longest + "@example.com") != nil)
        #expect(IMCEA.decode(longest + "1@example.com") == nil)

        // A 315-character local part and a 255-character domain make 571 exactly.
        let label = String(repeating: "d", count: 63)
        let domain255 = [label, label, label, String(repeating: "d", count: 63)].joined(separator: ".")
        #expect(domain255.count == 255)
        #expect(IMCEA.decode(longest + "@" + domain255) != nil)
        #expect(IMCEA.decode(longest + "@" + domain255 + "x") == nil)
    }

    @Test("SMTP and X500 encapsulations decode (refusing them is the directory's job)")
    func smtpAndX500Decode() {
        #expect(IMCEA.decode("IMCEASMTP-bob+40elsewhere+2Eorg@example.com")?.type == "SMTP")
        #expect(IMCEA.decode("IMCEAX500-_o=Org@example.com")?.type == "X500")
    }
}
