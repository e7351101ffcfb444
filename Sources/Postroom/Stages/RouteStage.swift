import Foundation

/// Settings of the `route` stage (none yet; routing comes from the connectors).
public struct RouteSettings: StageSettings, Decodable {
    enum CodingKeys: String, CodingKey, CaseIterable { case stage }
    public init(from decoder: any Decoder) throws { try decoder.rejectUnknownKeys(CodingKeys.self) }
}

/// Picks the next hop (connector) of every recipient and splits the message into one
/// copy per hop; a recipient with no route fails with a report.
public actor RouteStage: MessageStage {
    private let table: RouteTable
    private let telemetry: Telemetry

    public init(context: StageContext) throws {
        telemetry = context.telemetry
        table = try RouteStage.table(for: context.pipeline)
    }

    /// The route table the connectors of a pipeline declare.
    public static func table(for pipeline: PipelineFile) throws -> RouteTable {
        var specs: [ConnectorRouteSpec] = []
        for (index, connector) in pipeline.connectors.enumerated() {
            var spaces: [AddressSpace] = []
            for (spaceIndex, text) in connector.addressSpaces.enumerated() {
                do {
                    spaces.append(try AddressSpace(parsing: text))
                } catch {
                    throw ConfigError(file: pipeline.path, keyPath: "connectors[\(index)].addressSpaces[\(spaceIndex)]", problem: "\(error)")
                }
            }
            specs.append(ConnectorRouteSpec(name: connector.name, addressSpaces: spaces, localDomains: connector.domains))
        }
        return RouteTable(connectors: specs)
    }

    static let kind = StageKind.make("route", summary: "pick each recipient's connector; one copy per next hop", settings: RouteSettings.self) { _, context in
        try RouteStage(context: context)
    }

    public func process(_ item: PipelineItem) async throws -> StageResult {
        var item = item
        let result = table.route(item.resolved)
        item.hops = result.hops
        item.failures += result.unroutable.map { FailedRecipient(address: $0.address, status: $0.status, diagnostic: $0.diagnostic) }
        for hop in result.hops {
            item.notes.append("route: \(hop.recipients.map(\.address).joined(separator: ", ")) -> \(hop.connector)")
            telemetry.track(TrackingEvent(event: .route, source: .routing, queueID: item.queueID, messageID: item.messageID,
                                          sender: item.envelope.sender, recipients: hop.recipients.map(\.address), connector: hop.connector))
        }
        for failure in result.unroutable {
            telemetry.track(TrackingEvent(event: .fail, source: .routing, queueID: item.queueID, messageID: item.messageID,
                                          sender: item.envelope.sender, recipients: [failure.address], status: failure.status, reason: failure.diagnostic))
        }
        return .forward(item)
    }
}
