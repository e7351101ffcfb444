import Foundation

/// What a `filter` rule tests. Every condition given must hold (AND); at least one is required.
public struct FilterCondition: Sendable {
    /// The envelope sender; the null sender is matched as `<>`.
    public var sender: GlobPattern?
    /// Any recipient, as the sender addressed it or as resolved so far (after categorize: a
    /// group's members too), so a rule works wherever the stage is placed.
    public var recipient: GlobPattern?
    /// Any field of that name whose value (unfolded; raw or with encoded words decoded) matches.
    public var header: HeaderCondition?
    /// The message is larger than this.
    public var sizeOver: ByteSize?

    /// A header field test.
    public struct HeaderCondition: Sendable {
        public var name: String
        public var matches: GlobPattern
    }

    /// True when every condition given holds for `item`; `message` is its parsed header (nil when unparsable).
    func holds(for item: PipelineItem, message: RFC5322Message?) -> Bool {
        if let sender, !sender.matches(item.envelope.hasNullSender ? "<>" : item.envelope.sender) { return false }
        if let recipient {
            let matched = item.envelope.recipients.contains { recipient.matches($0.address) }
                || item.resolved.contains { recipient.matches($0.address) }
                || item.hops.contains { $0.recipients.contains { recipient.matches($0.address) } }
            guard matched else { return false }
        }
        if let header {
            let fields = message?.fields.filter { $0.hasName(header.name) } ?? []
            guard fields.contains(where: { header.matches.matches($0.value) || header.matches.matches(EncodedWords.decode($0.value)) }) else { return false }
        }
        if let sizeOver {
            // After validate the bytes are the whole message; a truncated read knows only the file size.
            let size = item.isTruncated ? item.size : Int64(item.bytes.count)
            guard size > sizeOver.bytes else { return false }
        }
        return true
    }
}

/// One `filter` rule: a name, a condition and what to do when it holds.
public struct FilterRule: Sendable {
    /// What happens to a message a rule matches.
    public enum Action: String, Sendable, CaseIterable {
        /// Refuse it: one non-delivery report to the sender for every recipient, nothing delivered.
        case reject
        /// Queue it durably in `queue/hold/` until an operator releases it.
        case hold
        /// Let it through untouched and stop looking at later rules (an exception list).
        case `continue`
        /// Discard it silently: no delivery, no report (only the log and the tracking log know).
        case drop
    }

    public var name: String
    public var when: FilterCondition
    public var action: Action
    /// The enhanced status code of a rejection (RFC 3463, class 5).
    public var status: String
    /// Words for the report (reject), the queue (hold) and the logs; nil for the default.
    public var reason: String?

    /// The text a rejected sender reads; the rule's name stays internal.
    var rejectionText: String { reason ?? "delivery not authorized, message refused" }
    var holdText: String { reason ?? "held by filter rule '\(name)'" }
}

/// Settings of the `filter` stage: transport rules, tried in order; the first that matches decides.
public struct FilterSettings: StageSettings, Decodable {
    public var rules: [FilterRule]

    enum CodingKeys: String, CodingKey, CaseIterable { case stage, rules }
    enum RuleKeys: String, CodingKey, CaseIterable { case name, when, action, status, reason }
    enum ConditionKeys: String, CodingKey, CaseIterable { case sender, recipient, header, sizeOver }
    enum HeaderKeys: String, CodingKey, CaseIterable { case name, matches }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        var list = try container.nestedUnkeyedContainer(forKey: .rules)
        rules = []
        while !list.isAtEnd {
            let rule = try Self.rule(from: try list.superDecoder())
            if rules.contains(where: { $0.name == rule.name }) {
                throw DecodingError.dataCorrupted(.init(codingPath: container.codingPath + [CodingKeys.rules, AnyCodingKey(intValue: list.currentIndex - 1), RuleKeys.name],
                                                        debugDescription: "another rule is already named '\(rule.name)'"))
            }
            rules.append(rule)
        }
        guard !rules.isEmpty else {
            throw DecodingError.dataCorruptedError(forKey: .rules, in: container, debugDescription: "a filter needs at least one rule")
        }
    }

    private static func rule(from decoder: any Decoder) throws -> FilterRule {
        try decoder.rejectUnknownKeys(RuleKeys.self)
        let container = try decoder.container(keyedBy: RuleKeys.self)
        let name = try container.decode(String.self, forKey: .name)
        guard !name.isEmpty, !containsControl(name) else {
            throw DecodingError.dataCorruptedError(forKey: .name, in: container, debugDescription: "a rule name is one line of text, not empty")
        }
        let when = try condition(from: try container.superDecoder(forKey: .when))
        let actionName = try container.decode(String.self, forKey: .action)
        guard let action = FilterRule.Action(rawValue: actionName) else {
            let known = FilterRule.Action.allCases.map(\.rawValue).joined(separator: ", ")
            throw DecodingError.dataCorruptedError(forKey: .action, in: container, debugDescription: "unknown action '\(actionName)' (known: \(known))")
        }
        let status = try container.decodeIfPresent(String.self, forKey: .status)
        if let status {
            guard action == .reject else {
                throw DecodingError.dataCorruptedError(forKey: .status, in: container, debugDescription: "status applies to reject only")
            }
            guard isPermanentStatus(status) else {
                throw DecodingError.dataCorruptedError(forKey: .status, in: container,
                                                       debugDescription: "'\(status)' is not a permanent enhanced status code; write 5.x.y, e.g. \"5.7.1\" (RFC 3463)")
            }
        }
        let reason = try container.decodeIfPresent(String.self, forKey: .reason)
        if let reason, reason.isEmpty || containsControl(reason) {
            throw DecodingError.dataCorruptedError(forKey: .reason, in: container, debugDescription: "a reason is one line of text, not empty")
        }
        return FilterRule(name: name, when: when, action: action, status: status ?? "5.7.1", reason: reason)
    }

    private static func condition(from decoder: any Decoder) throws -> FilterCondition {
        try decoder.rejectUnknownKeys(ConditionKeys.self)
        let container = try decoder.container(keyedBy: ConditionKeys.self)
        var condition = FilterCondition()
        condition.sender = try container.decodeIfPresent(GlobPattern.self, forKey: .sender)
        condition.recipient = try container.decodeIfPresent(GlobPattern.self, forKey: .recipient)
        condition.sizeOver = try container.decodeIfPresent(ByteSize.self, forKey: .sizeOver)
        if container.contains(.header) {
            let headerDecoder = try container.superDecoder(forKey: .header)
            try headerDecoder.rejectUnknownKeys(HeaderKeys.self)
            let header = try headerDecoder.container(keyedBy: HeaderKeys.self)
            let name = try header.decode(String.self, forKey: .name)
            guard FieldName.isValid(name) else {
                throw DecodingError.dataCorruptedError(forKey: .name, in: header, debugDescription: "'\(name)' is not a valid field name: \(FieldName.rule)")
            }
            condition.header = .init(name: name, matches: try header.decode(GlobPattern.self, forKey: .matches))
        }
        guard condition.sender != nil || condition.recipient != nil || condition.header != nil || condition.sizeOver != nil else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                    debugDescription: "a rule needs at least one condition (sender, recipient, header, sizeOver); write sender: \"*\" to match every message"))
        }
        return condition
    }

    /// `5.x.y` with one to three digits in each part (RFC 3463 §2).
    static func isPermanentStatus(_ text: String) -> Bool {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 3 && parts[0] == "5"
            && parts.dropFirst().allSatisfy { (1...3).contains($0.count) && $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }
    }

    private static func containsControl(_ text: String) -> Bool {
        text.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F }
    }
}

/// Transport rules between ingest and deliver: reject, hold, drop or pass messages by sender,
/// recipient, a header field or size (Exchange's transport rules, Postfix's access checks).
///
/// Rules are tried in order and the first whose conditions all hold decides; a message no
/// rule matches goes on unchanged. A rejection sends one non-delivery report that also
/// carries any recipient already failed, and finishes the message here, so no later stage
/// can deliver it. A held message is marked and goes on: the deliver stage queues it into
/// `queue/hold/`. In a dry run nothing is sent, released or queued; the notes say what would be.
public actor FilterStage: MessageStage {
    private let settings: FilterSettings
    private let context: StageContext
    private let reports: ReportSender
    private let needsHeader: Bool

    public init(settings: FilterSettings, context: StageContext) throws {
        try context.requireAfterValidate("filter")
        self.settings = settings
        self.context = context
        reports = ReportSender(context: context)
        needsHeader = settings.rules.contains { $0.when.header != nil }
    }

    static let kind = StageKind.make("filter", summary: "transport rules: reject, hold, drop or pass by sender, recipient, header, size",
                                     settings: FilterSettings.self) {
        try FilterStage(settings: $0, context: $1)
    }

    public func process(_ item: PipelineItem) async throws -> StageResult {
        var item = item
        // Parsed once per message and only when some rule looks at the header.
        let message = needsHeader ? try? RFC5322Message(parsing: item.bytes) : nil
        guard let rule = settings.rules.first(where: { $0.when.holds(for: item, message: message) }) else {
            item.notes.append("filter: no rule matched")
            return .forward(item)
        }
        switch rule.action {
        case .continue:
            item.notes.append("filter: rule '\(rule.name)' matched: continue")
            return .forward(item)
        case .hold:
            item.notes.append("filter: rule '\(rule.name)' matched: hold (\(rule.holdText))")
            // A message held twice keeps the first reason: that is the rule an operator must look at.
            if item.holdReason == nil { item.holdReason = rule.holdText }
            if !context.dryRun {
                track(.hold, item, rule: rule, reason: rule.holdText)
            }
            return .forward(item)
        case .reject:
            return try await reject(item, rule: rule)
        case .drop:
            item.notes.append("filter: rule '\(rule.name)' matched: drop (no delivery, no report)")
            guard !context.dryRun else { return .finished(.dropped) }
            try await context.queue.release(item.claimed)
            let reason = "dropped by filter rule '\(rule.name)'" + (rule.reason.map { ": \($0)" } ?? "")
            context.log.notice("\(item.queueID) from \(item.envelope.hasNullSender ? "<>" : item.envelope.sender): \(reason)")
            track(.drop, item, rule: rule, reason: reason)
            return .finished(.dropped)
        }
    }

    /// Reports every recipient not already failed as failed with the rule's status, in one
    /// report together with those already failed, then forgets the claimed file.
    ///
    /// The report is sent from here, with the original envelope, rather than left to the
    /// deliver stage: the envelope recipients carry the NOTIFY and ORCPT parameters the report
    /// must honour, and finishing here means no later stage can route or deliver a copy.
    private func reject(_ item: PipelineItem, rule: FilterRule) async throws -> StageResult {
        var item = item
        let alreadyFailed = Set(item.failures.map(\.address))
        let rejected = item.envelope.recipients.filter { !alreadyFailed.contains($0.address) }.map {
            FailedRecipient(address: $0.address, status: rule.status, diagnostic: rule.rejectionText)
        }
        item.failures += rejected
        item.resolved = []
        item.hops = []
        item.notes.append("filter: rule '\(rule.name)' matched: reject \(rule.status) \(rule.rejectionText)"
                          + (item.envelope.hasNullSender ? " (no report: null sender)" : ""))
        guard !context.dryRun else { return .finished(.reported) }
        track(.fail, item, rule: rule, status: rule.status, reason: rule.rejectionText)
        try await reports.send(about: item.envelope, message: DeliveryService.headerBlock(of: item.bytes),
                               messageID: item.messageID, failed: item.failures, cause: ReportCause(queueID: item.queueID, event: "filter"))
        try await context.queue.release(item.claimed)
        return .finished(.reported)
    }

    private func track(_ kind: TrackingEvent.Kind, _ item: PipelineItem, rule: FilterRule, status: String? = nil, reason: String) {
        context.telemetry.track(TrackingEvent(event: kind, source: .routing, queueID: item.queueID, messageID: item.messageID,
                                              sender: item.envelope.sender, recipients: item.envelope.recipients.map(\.address),
                                              status: status, reason: "rule '\(rule.name)': \(reason)", size: Int(item.size)))
    }
}
