/// What routing needs to know about one connector: its name, the address spaces it serves and,
/// for a maildir connector, the domains it delivers locally.
public struct ConnectorRouteSpec: Sendable, Hashable {
    /// The connector name from the pipeline file (`mailbox`, `fax`, `outbound`).
    public var name: String
    /// Address spaces the connector serves (foreign and agent connectors).
    public var addressSpaces: [AddressSpace]
    /// Domains whose mailboxes this connector delivers locally (maildir connectors). An address in
    /// one of them always goes to this connector, whatever address spaces other connectors have.
    public var localDomains: [String]

    public init(name: String, addressSpaces: [AddressSpace] = [], localDomains: [String] = []) {
        self.name = name
        self.addressSpaces = addressSpaces
        self.localDomains = localDomains
    }
}

/// The next hop chosen for one address.
public struct RouteDecision: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The connector to hand the recipient to.
    public var connector: String
    /// The address space that matched; for local delivery, the local domain as `SMTP:domain;1`.
    public var addressSpace: AddressSpace
    /// The address-space cost (1 for local delivery).
    public var cost: Int
    /// How specifically the space matched.
    public var match: AddressSpace.Match
    /// True when the address is in one of the connector's local domains.
    public var isLocalDelivery: Bool

    public init(connector: String, addressSpace: AddressSpace, cost: Int, match: AddressSpace.Match, isLocalDelivery: Bool) {
        self.connector = connector
        self.addressSpace = addressSpace
        self.cost = cost
        self.match = match
        self.isLocalDelivery = isLocalDelivery
    }

    public var description: String {
        isLocalDelivery
            ? "\(connector) (local domain \(addressSpace.space))"
            : "\(connector) (address space \(addressSpace), \(match))"
    }
}

/// The recipients of one message that go to one connector: one bifurcated copy.
public struct NextHopGroup: Sendable, Hashable, Codable {
    public var connector: String
    /// In the order they were given to ``RouteTable/route(_:)``.
    public var recipients: [ResolvedRecipient]

    public init(connector: String, recipients: [ResolvedRecipient]) {
        self.connector = connector
        self.recipients = recipients
    }
}

/// A message's recipients split by next hop (bifurcation), plus those with no route.
public struct RoutingResult: Sendable, Hashable, Codable {
    /// One group per connector, in the order each connector was first chosen.
    public var hops: [NextHopGroup]
    /// Recipients no connector serves: status 5.4.4 (5.1.3 when the address cannot be parsed).
    public var unroutable: [FailedResolution]

    public init(hops: [NextHopGroup] = [], unroutable: [FailedResolution] = []) {
        self.hops = hops
        self.unroutable = unroutable
    }
}

/// Something wrong with the connectors' routes, found by ``RouteTable/problems()``.
public struct RouteProblem: Sendable, Hashable, CustomStringConvertible {
    /// The index of the connector in the list given to ``RouteTable/init(connectors:)``.
    public var connectorIndex: Int
    /// The connector's name.
    public var connector: String
    /// Where, using ``ConnectorRouteSpec``'s field names: `connectors[1].addressSpaces[0]`,
    /// `connectors[0].localDomains[1]`, or `connectors[2]` for the whole connector.
    public var keyPath: String
    /// What is wrong and what follows from it.
    public var message: String

    public init(connectorIndex: Int, connector: String, keyPath: String, message: String) {
        self.connectorIndex = connectorIndex
        self.connector = connector
        self.keyPath = keyPath
        self.message = message
    }

    public var description: String { "\(keyPath): \(message)" }
}

/// Chooses the next hop (connector) for each resolved recipient, as Exchange's connector
/// selection does ([CS], reference/exchange-transport.md §6):
///
/// 1. An SMTP address in a connector's local domain goes to that connector (local delivery is
///    authoritative: a mailbox at an accepted domain is never sent out by an `SMTP:*` connector).
/// 2. Otherwise the **most specific** matching address space wins (exact > `*.sub.domain` >
///    `*.domain` > `*`; for other types the longer literal prefix), then the **lowest cost**,
///    then the **alphanumerically lowest connector name** (byte order), so the choice never
///    depends on the order connectors are listed.
/// 3. No match: the recipient is unroutable with **5.4.4** (RFC 3463 "unable to route"). Exchange
///    NDRs non-SMTP recipients at once but parks SMTP ones in its Unreachable queue; Postroom
///    NDRs both, because its routes change only when the operator edits the pipeline file, and
///    holding mail for two days behind a configuration error only delays the report that would
///    tell the sender (the default pipeline's `SMTP:*` connector means it never happens there).
///
/// The table is immutable, performs no I/O and is safe to share.
public struct RouteTable: Sendable {
    /// The connectors, in the order given.
    public let connectors: [ConnectorRouteSpec]
    /// Local domain (lower-cased) → connector indices, best (lowest name) first.
    private let localDomainIndex: [String: [Int]]

    public init(connectors: [ConnectorRouteSpec]) {
        self.connectors = connectors
        var index: [String: [Int]] = [:]
        for (i, connector) in connectors.enumerated() {
            for domain in Set(connector.localDomains.map { $0.lowercased() }) {
                index[domain, default: []].append(i)
            }
        }
        self.localDomainIndex = index.mapValues { indices in
            indices.sorted { (connectors[$0].name, $0) < (connectors[$1].name, $1) }
        }
    }

    /// The connector for `address` (`local@domain`, `TYPE:value`), or nil when none serves it.
    public func nextHop(for address: String) -> RouteDecision? {
        guard let parsed = RoutingAddress.parse(address) else { return nil }
        if let domain = parsed.domain, let local = localDomainIndex[domain]?.first {
            return RouteDecision(connector: connectors[local].name,
                                 addressSpace: AddressSpace(validatedType: "SMTP", space: domain, cost: 1),
                                 cost: 1, match: AddressSpace.Match(isExact: true, literalLength: domain.split(separator: ".").count),
                                 isLocalDelivery: true)
        }
        var best: RouteDecision?
        for connector in connectors {
            for space in connector.addressSpaces {
                guard let match = space.matches(address) else { continue }
                let candidate = RouteDecision(connector: connector.name, addressSpace: space, cost: space.cost, match: match, isLocalDelivery: false)
                if let current = best, !Self.isBetter(candidate, than: current) { continue }
                best = candidate
            }
        }
        return best
    }

    /// Most specific, then cheapest, then lowest name.
    private static func isBetter(_ a: RouteDecision, than b: RouteDecision) -> Bool {
        if a.match != b.match { return a.match > b.match }
        if a.cost != b.cost { return a.cost < b.cost }
        return a.connector < b.connector
    }

    /// Splits resolved recipients by next hop (bifurcation). Each recipient lands in exactly one
    /// group or in `unroutable`; order is kept within groups and among groups.
    public func route(_ recipients: [ResolvedRecipient]) -> RoutingResult {
        var result = RoutingResult()
        var groupIndex: [String: Int] = [:]
        for recipient in recipients {
            guard let decision = nextHop(for: recipient.address) else {
                result.unroutable.append(unroutable(recipient))
                continue
            }
            if let index = groupIndex[decision.connector] {
                result.hops[index].recipients.append(recipient)
            } else {
                groupIndex[decision.connector] = result.hops.count
                result.hops.append(NextHopGroup(connector: decision.connector, recipients: [recipient]))
            }
        }
        return result
    }

    private func unroutable(_ recipient: ResolvedRecipient) -> FailedResolution {
        let diagnostic: String
        let status: String
        switch RoutingAddress.parseWithReason(recipient.address) {
        case .failure(let error):
            status = "5.1.3"
            diagnostic = "bad address syntax: \(error.message)"
        case .success(.smtp(_, let domain)):
            status = "5.4.4"
            diagnostic = "no route to \(recipient.address): no connector has a local domain or an SMTP address space matching \(domain)"
        case .success(.typed(let type, _)):
            status = "5.4.4"
            diagnostic = "no route to \(recipient.address): no connector has a \(type) address space matching it"
        }
        return FailedResolution(address: recipient.address, original: recipient.original, status: status, diagnostic: diagnostic)
    }

    /// Configuration faults, in connector order: duplicate names, connectors with nothing to
    /// serve, malformed local domains, a local domain claimed twice, two connectors with the same
    /// space and cost (ambiguous: the lowest name always wins), and connectors every one of whose
    /// spaces is won by another connector (unreachable). An empty list means routing is sound.
    public func problems() -> [RouteProblem] {
        var problems: [RouteProblem] = []
        func report(_ i: Int, _ suffix: String, _ message: String) {
            problems.append(RouteProblem(connectorIndex: i, connector: connectors[i].name, keyPath: "connectors[\(i)]\(suffix)", message: message))
        }
        var names: [String: Int] = [:]
        var localOwner: [String: Int] = [:]
        var spaceOwners: [AddressSpace: [Int]] = [:]
        for (i, connector) in connectors.enumerated() {
            if let earlier = names[connector.name] {
                report(i, ".name", "connector name '\(connector.name)' is already used by connectors[\(earlier)]")
            } else {
                names[connector.name] = i
            }
            if connector.addressSpaces.isEmpty && connector.localDomains.isEmpty {
                report(i, "", "connector '\(connector.name)' has no address space and no local domain: no mail can ever reach it")
            }
            for (j, domain) in connector.localDomains.enumerated() {
                let key = domain.lowercased()
                if let problem = RoutingAddress.domainProblem(key) {
                    report(i, ".localDomains[\(j)]", "local domain '\(domain)': \(problem)")
                } else if let owner = localOwner[key], owner != i {
                    let winner = localDomainIndex[key]?.first.map { connectors[$0].name } ?? connectors[owner].name
                    report(i, ".localDomains[\(j)]", "local domain \(key) is also delivered by connector '\(connectors[owner].name)'; '\(winner)' (alphanumerically lowest) always wins")
                } else {
                    localOwner[key] = i
                }
            }
            for (j, space) in connector.addressSpaces.enumerated() {
                var owners = spaceOwners[space, default: []]
                if let other = owners.first(where: { $0 != i }), !owners.contains(i) {
                    let winner = min(connectors[other].name, connector.name)
                    report(i, ".addressSpaces[\(j)]", "address space \(space) is also on connector '\(connectors[other].name)' at the same cost: ambiguous; '\(winner)' (alphanumerically lowest) always wins")
                }
                if !owners.contains(i) { owners.append(i) }
                spaceOwners[space] = owners
            }
        }
        // Unreachable: every space is won by another connector with the same space, or is an
        // exact SMTP domain that another connector delivers locally.
        for (i, connector) in connectors.enumerated() where connector.localDomains.isEmpty && !connector.addressSpaces.isEmpty {
            var winners: [String] = []
            let allShadowed = connector.addressSpaces.allSatisfy { space in
                if space.type == "SMTP", !space.space.hasPrefix("*"), let local = localDomainIndex[space.space]?.first, local != i {
                    winners.append(connectors[local].name)
                    return true
                }
                for (k, other) in connectors.enumerated() where k != i {
                    for candidate in other.addressSpaces where candidate.type == space.type && candidate.space == space.space {
                        if candidate.cost < space.cost || (candidate.cost == space.cost && other.name < connector.name) {
                            winners.append(other.name)
                            return true
                        }
                    }
                }
                return false
            }
            if allShadowed {
                let others = Array(Set(winners)).sorted().map { "'\($0)'" }.joined(separator: ", ")
                report(i, "", "connector '\(connector.name)' is unreachable: each of its address spaces is won by \(others) (same space, lower cost or lower name)")
            }
        }
        return problems
    }
}
