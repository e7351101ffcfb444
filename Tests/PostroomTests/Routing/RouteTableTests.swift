import Foundation
import Testing
@testable import Postroom

@Suite("Route table")
struct RouteTableTests {
    static func spaces(_ texts: String...) -> [AddressSpace] {
        texts.map { try! AddressSpace(parsing: $0) }
    }

    @Test("most specific space wins over a cheaper, less specific one")
    func specificityFirst() throws {
        let table = RouteTable(connectors: [
            ConnectorRouteSpec(name: "internet", addressSpaces: Self.spaces("SMTP:*;1")),
            ConnectorRouteSpec(name: "partners", addressSpaces: Self.spaces("SMTP:*.contoso.com;50")),
            ConnectorRouteSpec(name: "marketing", addressSpaces: Self.spaces("SMTP:marketing.contoso.com;100")),
        ])
        #expect(table.nextHop(for: "a@marketing.contoso.com")?.connector == "marketing")
        #expect(table.nextHop(for: "a@sales.contoso.com")?.connector == "partners")
        #expect(table.nextHop(for: "a@contoso.com")?.connector == "partners")
        #expect(table.nextHop(for: "a@fabrikam.com")?.connector == "internet")
        let decision = try #require(table.nextHop(for: "a@Sales.Contoso.com"))
        #expect(decision.addressSpace.space == "*.contoso.com")
        #expect(decision.cost == 50)
        #expect(!decision.isLocalDelivery)
    }

    @Test("equal specificity: lowest cost, then alphanumerically lowest name, whatever the order")
    func tieBreaks() {
        let cheap = ConnectorRouteSpec(name: "zeta", addressSpaces: Self.spaces("FAX:*;1"))
        let dear = ConnectorRouteSpec(name: "alpha", addressSpaces: Self.spaces("FAX:*;5"))
        #expect(RouteTable(connectors: [dear, cheap]).nextHop(for: "FAX:+1")?.connector == "zeta")
        #expect(RouteTable(connectors: [cheap, dear]).nextHop(for: "FAX:+1")?.connector == "zeta")

        let b = ConnectorRouteSpec(name: "fax-b", addressSpaces: Self.spaces("FAX:*;3"))
        let a = ConnectorRouteSpec(name: "fax-a", addressSpaces: Self.spaces("FAX:*;3"))
        #expect(RouteTable(connectors: [b, a]).nextHop(for: "FAX:+1")?.connector == "fax-a")
        #expect(RouteTable(connectors: [a, b]).nextHop(for: "FAX:+1")?.connector == "fax-a")
    }

    @Test("a connector's best space counts; types never cross")
    func typesAndMultipleSpaces() {
        let table = RouteTable(connectors: [
            ConnectorRouteSpec(name: "gateway", addressSpaces: Self.spaces("FAX:*;10", "SMS:*;1")),
            ConnectorRouteSpec(name: "us-fax", addressSpaces: Self.spaces("FAX:+1*;10")),
        ])
        #expect(table.nextHop(for: "FAX:+15551234")?.connector == "us-fax")
        #expect(table.nextHop(for: "FAX:+4420")?.connector == "gateway")
        #expect(table.nextHop(for: "SMS:+15551234")?.connector == "gateway")
        #expect(table.nextHop(for: "X400:c=US") == nil)
        #expect(table.nextHop(for: "alice@example.com") == nil)
    }

    @Test("typed addresses route whatever the case of their type")
    func typedCase() {
        let table = RouteTable(connectors: [ConnectorRouteSpec(name: "fax", addressSpaces: Self.spaces("fax:*"))])
        #expect(table.nextHop(for: "Fax:+15551234")?.connector == "fax")
        #expect(table.nextHop(for: "FAX:+15551234")?.addressSpace.description == "FAX:*;1")
    }

    @Test("routing results survive a JSON round trip (for the queue and explain --json)")
    func codable() throws {
        let table = RouteTable(connectors: [ConnectorRouteSpec(name: "mailbox", localDomains: ["example.com"])])
        let recipient = ResolvedRecipient(address: "alice@example.com", original: EnvelopeRecipient(address: "al@example.com", parameters: ["NOTIFY=NEVER"]), mailbox: "alice", chain: ["al@example.com", "alice@example.com"])
        let result = table.route([recipient, ResolvedRecipient(address: "FAX:+1", original: EnvelopeRecipient(address: "FAX:+1"), chain: ["FAX:+1"])])
        let data = try JSONEncoder().encode(result)
        #expect(try JSONDecoder().decode(RoutingResult.self, from: data) == result)
        let decision = try #require(table.nextHop(for: "alice@example.com"))
        #expect(try JSONDecoder().decode(RouteDecision.self, from: JSONEncoder().encode(decision)) == decision)
    }

    @Test("local domains win over any address space, case-insensitively")
    func localDomains() throws {
        let table = RouteTable(connectors: [
            ConnectorRouteSpec(name: "outbound", addressSpaces: Self.spaces("SMTP:*;10", "SMTP:example.com;1")),
            ConnectorRouteSpec(name: "mailbox", localDomains: ["Example.com"]),
        ])
        let decision = try #require(table.nextHop(for: "alice@EXAMPLE.COM"))
        #expect(decision.connector == "mailbox")
        #expect(decision.isLocalDelivery)
        #expect(decision.addressSpace.description == "SMTP:example.com;1")
        #expect(table.nextHop(for: "alice@sub.example.com")?.connector == "outbound", "local domains are exact")
    }

    @Test("route bifurcates by connector, keeps order, and reports 5.4.4 for no route")
    func bifurcation() {
        let table = RouteTable(connectors: [
            ConnectorRouteSpec(name: "mailbox", localDomains: ["example.com"]),
            ConnectorRouteSpec(name: "outbound", addressSpaces: Self.spaces("SMTP:*;10")),
        ])
        func recipient(_ address: String) -> ResolvedRecipient {
            ResolvedRecipient(address: address, original: EnvelopeRecipient(address: address), chain: [address])
        }
        let result = table.route(["x@elsewhere.org", "alice@example.com", "FAX:+1555", "bob@example.com", "y@other.net", "bad address"].map(recipient))
        #expect(result.hops.map(\.connector) == ["outbound", "mailbox"])
        #expect(result.hops[0].recipients.map(\.address) == ["x@elsewhere.org", "y@other.net"])
        #expect(result.hops[1].recipients.map(\.address) == ["alice@example.com", "bob@example.com"])
        #expect(result.unroutable.map(\.address) == ["FAX:+1555", "bad address"])
        #expect(result.unroutable.map(\.status) == ["5.4.4", "5.1.3"])
        #expect(result.unroutable[0].diagnostic.hasPrefix("no route to FAX:+1555"))
    }

    @Test("problems: empty connector, ambiguous space, shared local domain, unreachable, duplicate name")
    func problems() {
        let table = RouteTable(connectors: [
            ConnectorRouteSpec(name: "mailbox", localDomains: ["example.com"]),
            ConnectorRouteSpec(name: "idle"),
            ConnectorRouteSpec(name: "fax-b", addressSpaces: Self.spaces("FAX:*;1")),
            ConnectorRouteSpec(name: "fax-a", addressSpaces: Self.spaces("FAX:*;1")),
            ConnectorRouteSpec(name: "backup", addressSpaces: Self.spaces("SMTP:*;20")),
            ConnectorRouteSpec(name: "outbound", addressSpaces: Self.spaces("SMTP:*;10")),
            ConnectorRouteSpec(name: "mailbox2", localDomains: ["EXAMPLE.com", "bad..domain"]),
            ConnectorRouteSpec(name: "local-smtp", addressSpaces: Self.spaces("SMTP:example.com;1")),
            ConnectorRouteSpec(name: "outbound", addressSpaces: Self.spaces("SMTP:*.org;10")),
        ])
        let problems = table.problems()
        func has(_ keyPath: String, _ fragment: String) -> Bool {
            problems.contains { $0.keyPath == keyPath && $0.message.contains(fragment) }
        }
        #expect(has("connectors[1]", "no address space and no local domain"))
        #expect(has("connectors[3].addressSpaces[0]", "ambiguous; 'fax-a' (alphanumerically lowest) always wins"))
        #expect(has("connectors[2]", "connector 'fax-b' is unreachable"))
        #expect(has("connectors[4]", "connector 'backup' is unreachable"))
        #expect(has("connectors[6].localDomains[0]", "also delivered by connector 'mailbox'"))
        #expect(has("connectors[6].localDomains[1]", "empty label"))
        #expect(has("connectors[7]", "connector 'local-smtp' is unreachable"))
        #expect(has("connectors[8].name", "already used by connectors[5]"))
        #expect(!problems.contains { $0.connector == "outbound" && $0.message.contains("unreachable") })
        #expect(problems.count == 8, "\(problems)")
    }

    @Test("the default pipeline's connectors have no problems")
    func defaultConnectorsAreSound() {
        #expect(RoutingScenarioTests.defaultRoutes.problems().isEmpty)
    }
}
