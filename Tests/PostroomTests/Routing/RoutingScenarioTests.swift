import Testing
@testable import Postroom

/// The default pipeline's routing, end to end in memory: the scenario the end-to-end test checks
/// with real files.
@Suite("Default pipeline routing scenario")
struct RoutingScenarioTests {
    static let defaultRoutes = RouteTable(connectors: [
        ConnectorRouteSpec(name: "mailbox", localDomains: ["example.com"]),
        ConnectorRouteSpec(name: "fax", addressSpaces: [try! AddressSpace(parsing: "FAX:*;1")]),
        ConnectorRouteSpec(name: "outbound", addressSpaces: [try! AddressSpace(parsing: "SMTP:*;10")]),
    ])

    @Test("team, contact, IMCEA fax, unknown and outside recipients")
    func scenario() throws {
        let path = RecipientDirectoryTests.pipelinesDirectory.appendingPathComponent("directory.json5").path
        let directory = try RecipientDirectory.load(path: path, acceptedDomains: ["example.com"])
        let recipients = ["team@example.com", "fax-desk@example.com", "IMCEAFAX-+2B15559876@example.com", "nobody@example.com", "someone@elsewhere.org"]
            .map { EnvelopeRecipient(address: $0, parameters: ["NOTIFY=FAILURE"]) }

        let resolution = directory.resolve(recipients)
        #expect(resolution.failed.map(\.address) == ["nobody@example.com"])
        #expect(resolution.failed.map(\.status) == ["5.1.1"])
        #expect(resolution.failed.first?.diagnostic == "unknown recipient nobody@example.com")

        let routing = Self.defaultRoutes.route(resolution.resolved)
        #expect(routing.unroutable.isEmpty)
        let hops = Dictionary(uniqueKeysWithValues: routing.hops.map { ($0.connector, $0.recipients) })
        #expect(routing.hops.map(\.connector) == ["mailbox", "fax", "outbound"])
        #expect(hops["mailbox"]?.map(\.address) == ["alice@example.com", "bob@example.com"])
        #expect(hops["mailbox"]?.map(\.mailbox) == ["alice", "bob"])
        #expect(hops["fax"]?.map(\.address) == ["FAX:+15551234", "FAX:+15559876"])
        #expect(hops["outbound"]?.map(\.address) == ["someone@elsewhere.org"])

        // The steps explain each rewrite, in order, for the tracking log and `postroom explain`.
        #expect(resolution.steps.map(\.description) == [
            "expand team@example.com → alice@example.com (member of group team@example.com)",
            "expand team@example.com → bob@example.com (member of group team@example.com)",
            "resolve fax-desk@example.com → FAX:+15551234 (contact fax-desk)",
            "resolve IMCEAFAX-+2B15559876@example.com → FAX:+15559876 (IMCEA decapsulation)",
        ])
        // Parameters travel with every copy.
        #expect(resolution.resolved.allSatisfy { $0.original.parameters == ["NOTIFY=FAILURE"] })
        #expect(hops["fax"]?.first?.envelopeRecipient.parameters == ["NOTIFY=FAILURE", "ORCPT=rfc822;fax-desk@example.com"])
    }

    @Test("a FAX recipient with no fax connector is unroutable with 5.4.4")
    func noFaxConnector() throws {
        let routes = RouteTable(connectors: [
            ConnectorRouteSpec(name: "mailbox", localDomains: ["example.com"]),
            ConnectorRouteSpec(name: "outbound", addressSpaces: [try AddressSpace(parsing: "SMTP:*;10")]),
        ])
        let recipient = ResolvedRecipient(address: "FAX:+15551234", original: EnvelopeRecipient(address: "fax-desk@example.com"), chain: ["fax-desk@example.com", "FAX:+15551234"])
        let result = routes.route([recipient])
        #expect(result.hops.isEmpty)
        #expect(result.unroutable.map(\.status) == ["5.4.4"])
        #expect(result.unroutable.first?.diagnostic == "no route to FAX:+15551234: no connector has a FAX address space matching it")
        #expect(result.unroutable.first?.original.address == "fax-desk@example.com")
    }
}
