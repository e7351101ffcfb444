import Foundation
// INTERIM: stands in for the Routing module until it is merged. Deleted on merge.

public struct ResolvedRecipient: Sendable, Hashable, Codable {
    public var address: String
    public var original: EnvelopeRecipient
    public var mailbox: String?
    public var chain: [String]
}

public struct FailedResolution: Sendable, Equatable {
    public var address: String
    public var status: String
    public var diagnostic: String
}

public struct ResolutionStep: Sendable, Equatable {
    public enum Kind: String, Sendable { case resolve, expand }
    public var kind: Kind
    public var from: String
    public var to: String
}

public struct ResolutionResult: Sendable {
    public var resolved: [ResolvedRecipient] = []
    public var failed: [FailedResolution] = []
    public var steps: [ResolutionStep] = []
}

public struct DirectoryProblem: Sendable, CustomStringConvertible {
    public var keyPath: String
    public var message: String
    public var description: String { "\(keyPath): \(message)" }
}

public struct DirectoryFile: Sendable, Decodable {
    public struct Mailbox: Sendable, Decodable { public var name: String; public var address: String; public var aliases: [String]? }
    public struct Contact: Sendable, Decodable { public var name: String; public var address: String; public var target: String }
    public struct Group: Sendable, Decodable { public var address: String; public var members: [String] }
    public var mailboxes: [Mailbox]?
    public var contacts: [Contact]?
    public var groups: [Group]?
}

public struct RecipientDirectory: Sendable {
    let file: DirectoryFile
    let acceptedDomains: [String]

    public init(file: DirectoryFile, acceptedDomains: [String]) {
        self.file = file
        self.acceptedDomains = acceptedDomains.map { $0.lowercased() }
    }

    public static func load(path: String, acceptedDomains: [String]) throws(ConfigError) -> RecipientDirectory {
        RecipientDirectory(file: try ConfigFile.decode(DirectoryFile.self, fromFile: path), acceptedDomains: acceptedDomains)
    }

    public func problems() -> [DirectoryProblem] { [] }

    public func resolve(_ recipients: [EnvelopeRecipient]) -> ResolutionResult {
        var result = ResolutionResult()
        var seen = Set<String>()
        func visit(_ address: String, original: EnvelopeRecipient, chain: [String]) {
            let lower = address.lowercased()
            if let box = file.mailboxes?.first(where: { $0.address.lowercased() == lower || ($0.aliases ?? []).contains { $0.lowercased() == lower } }) {
                if seen.insert(box.address).inserted { result.resolved.append(ResolvedRecipient(address: box.address, original: original, mailbox: box.name, chain: chain + [box.address])) }
            } else if let contact = file.contacts?.first(where: { $0.address.lowercased() == lower }) {
                if seen.insert(contact.target).inserted { result.resolved.append(ResolvedRecipient(address: contact.target, original: original, mailbox: nil, chain: chain + [contact.target])) }
            } else if let group = file.groups?.first(where: { $0.address.lowercased() == lower }), !chain.contains(group.address) {
                for member in group.members { visit(member, original: original, chain: chain + [group.address]) }
            } else if lower.hasPrefix("imceafax-"), let at = address.lastIndex(of: "@") {
                let encoded = address[address.index(address.startIndex, offsetBy: 9)..<at].replacingOccurrences(of: "+2B", with: "+")
                visit("FAX:" + encoded, original: original, chain: chain + [address])
            } else if let at = lower.lastIndex(of: "@"), acceptedDomains.contains(String(lower[lower.index(after: at)...])) {
                result.failed.append(FailedResolution(address: address, status: "5.1.1", diagnostic: "unknown recipient \(address)"))
            } else if seen.insert(address).inserted {
                result.resolved.append(ResolvedRecipient(address: address, original: original, mailbox: nil, chain: chain + [address]))
            }
        }
        for recipient in recipients { visit(recipient.address, original: recipient, chain: []) }
        return result
    }
}

public struct AddressSpace: Sendable, Equatable {
    public var type: String
    public var pattern: String
    public var cost: Int
    public init(parsing text: String) throws(ConfigError) {
        var rest = text
        cost = 1
        if let semi = rest.lastIndex(of: ";"), let value = Int(rest[rest.index(after: semi)...]) { cost = value; rest = String(rest[..<semi]) }
        if let colon = rest.firstIndex(of: ":") { type = rest[..<colon].uppercased(); pattern = String(rest[rest.index(after: colon)...]) } else { type = "SMTP"; pattern = rest }
    }
}

public struct ConnectorRouteSpec: Sendable {
    public var name: String
    public var addressSpaces: [AddressSpace]
    public var localDomains: [String]
    public init(name: String, addressSpaces: [AddressSpace], localDomains: [String]) {
        self.name = name
        self.addressSpaces = addressSpaces
        self.localDomains = localDomains
    }
}

public struct NextHopGroup: Sendable, Equatable {
    public var connector: String
    public var recipients: [ResolvedRecipient]
}

public struct RoutingResult: Sendable {
    public var hops: [NextHopGroup] = []
    public var unroutable: [FailedResolution] = []
}

public struct RouteProblem: Sendable, CustomStringConvertible {
    public var connector: String
    public var message: String
    public var description: String { "\(connector): \(message)" }
}

public struct RouteTable: Sendable {
    let connectors: [ConnectorRouteSpec]
    public init(connectors: [ConnectorRouteSpec]) { self.connectors = connectors }
    public func problems() -> [RouteProblem] { [] }

    public func nextHop(for address: String) -> String? {
        if let colon = address.firstIndex(of: ":"), !address.contains("@") {
            let type = address[..<colon].uppercased()
            return connectors.first { $0.addressSpaces.contains { $0.type == type } }?.name
        }
        let domain = address.split(separator: "@").last.map { $0.lowercased() } ?? ""
        if let local = connectors.first(where: { $0.localDomains.contains(domain) }) { return local.name }
        return connectors.filter { $0.addressSpaces.contains { $0.type == "SMTP" } }.min { $0.addressSpaces[0].cost < $1.addressSpaces[0].cost }?.name
    }

    public func route(_ recipients: [ResolvedRecipient]) -> RoutingResult {
        var result = RoutingResult()
        for recipient in recipients {
            guard let hop = nextHop(for: recipient.address) else {
                result.unroutable.append(FailedResolution(address: recipient.address, status: "5.4.4", diagnostic: "no route to \(recipient.address)"))
                continue
            }
            if let index = result.hops.firstIndex(where: { $0.connector == hop }) {
                result.hops[index].recipients.append(recipient)
            } else {
                result.hops.append(NextHopGroup(connector: hop, recipients: [recipient]))
            }
        }
        return result
    }
}
