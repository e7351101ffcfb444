import Foundation

/// One smart host: a name or address and a port (`relay.example.net:2525`, `[::1]:25`, `127.0.0.1`).
public struct SmartHost: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: UInt16

    public init(host: String, port: UInt16) {
        self.host = host
        self.port = port
    }

    /// Parses `host`, `host:port`, `[v6]` or `[v6]:port`; the port defaults to 25.
    public init?(parsing text: String) {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        var host = trimmed
        var portText: Substring?
        if trimmed.hasPrefix("[") {
            guard let close = trimmed.firstIndex(of: "]") else { return nil }
            host = String(trimmed[trimmed.index(after: trimmed.startIndex)..<close])
            let rest = trimmed[trimmed.index(after: close)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":") else { return nil }
                portText = rest.dropFirst()
            }
        } else if let colon = trimmed.lastIndex(of: ":") {
            guard trimmed.firstIndex(of: ":") == colon else { return nil }
            host = String(trimmed[..<colon])
            portText = trimmed[trimmed.index(after: colon)...]
        }
        guard !host.isEmpty, host.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || ".-_:".contains($0)) }) else { return nil }
        var port: UInt16 = 25
        if let portText {
            guard let value = UInt16(portText), value > 0 else { return nil }
            port = value
        }
        self.host = host
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// The settings only an `smtp` connector has (Exchange: a Send connector through smart hosts).
public struct SMTPSettings: Sendable, Equatable {
    /// Where mail goes, in order of preference.
    public var smartHosts: [SmartHost]
    /// `ordered`: always the first host that works; `spread`: start at the next host each
    /// transaction (round robin), falling back to the others.
    public var spread: Bool
    /// The name given in EHLO/HELO (default: this machine's name).
    public var heloName: String?
    public var timeouts: SMTPTimeouts
    /// How long an unused connection stays open for the next message (Postfix: 2 s).
    public var idleTimeout: Double
    /// How long a smart host that failed is skipped at first; doubled after each further
    /// failure, up to ``hostBackoffMax``.
    public var hostBackoff: Double
    public var hostBackoffMax: Double

    public init(smartHosts: [SmartHost], spread: Bool = false, heloName: String? = nil, timeouts: SMTPTimeouts = SMTPTimeouts(),
                idleTimeout: Double = 5, hostBackoff: Double = 10, hostBackoffMax: Double = 300) {
        self.smartHosts = smartHosts
        self.spread = spread
        self.heloName = heloName
        self.timeouts = timeouts
        self.idleTimeout = idleTimeout
        self.hostBackoff = hostBackoff
        self.hostBackoffMax = hostBackoffMax
    }

    /// The keys of a connector object that belong to these settings.
    enum Keys: String, CodingKey, CaseIterable {
        case smartHosts, smartHostOrder, heloName, timeouts, idleTimeout, hostBackoff, hostBackoffMax
    }

    private enum TimeoutKeys: String, CodingKey, CaseIterable {
        case connect, greeting, helo, mail, rcpt, data, block, dataEnd, rset, quit
    }

    /// Decodes the smtp keys of a connector object; nil when it has none and is not an smtp connector.
    /// Throws when an smtp connector lacks `smartHosts`, or another type sets one of these keys.
    static func decode(from decoder: any Decoder, isSMTP: Bool) throws -> SMTPSettings? {
        let container = try decoder.container(keyedBy: Keys.self)
        guard isSMTP else {
            if let key = Keys.allCases.first(where: { container.contains($0) }) {
                throw DecodingError.dataCorruptedError(forKey: key, in: container, debugDescription: "only smtp connectors take \(key.stringValue)")
            }
            return nil
        }
        guard container.contains(.smartHosts) else {
            throw DecodingError.keyNotFound(Keys.smartHosts, .init(codingPath: decoder.codingPath, debugDescription: "an smtp connector needs smartHosts"))
        }
        let texts = try container.decode([String].self, forKey: .smartHosts)
        guard !texts.isEmpty else {
            throw DecodingError.dataCorruptedError(forKey: .smartHosts, in: container, debugDescription: "an smtp connector needs at least one smart host")
        }
        var hosts: [SmartHost] = []
        for text in texts {
            guard let host = SmartHost(parsing: text) else {
                throw DecodingError.dataCorruptedError(forKey: .smartHosts, in: container,
                                                       debugDescription: "'\(text)' is not a smart host; write host, host:port or [IPv6]:port")
            }
            hosts.append(host)
        }
        var settings = SMTPSettings(smartHosts: hosts)
        if let order = try container.decodeIfPresent(String.self, forKey: .smartHostOrder) {
            guard order == "ordered" || order == "spread" else {
                throw DecodingError.dataCorruptedError(forKey: .smartHostOrder, in: container, debugDescription: "smartHostOrder is ordered or spread, not '\(order)'")
            }
            settings.spread = order == "spread"
        }
        if let name = try container.decodeIfPresent(String.self, forKey: .heloName) {
            guard !name.isEmpty, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || ".-[]:".contains($0)) }) else {
                throw DecodingError.dataCorruptedError(forKey: .heloName, in: container, debugDescription: "heloName must be a host name or an address literal")
            }
            settings.heloName = name
        }
        settings.idleTimeout = try container.decodeIfPresent(ConfigDuration.self, forKey: .idleTimeout)?.seconds ?? settings.idleTimeout
        settings.hostBackoff = try container.decodeIfPresent(ConfigDuration.self, forKey: .hostBackoff)?.seconds ?? settings.hostBackoff
        settings.hostBackoffMax = max(settings.hostBackoff, try container.decodeIfPresent(ConfigDuration.self, forKey: .hostBackoffMax)?.seconds ?? settings.hostBackoffMax)
        if container.contains(.timeouts) {
            let nested = try container.superDecoder(forKey: .timeouts)
            try nested.rejectUnknownKeys(TimeoutKeys.self)
            let timeouts = try nested.container(keyedBy: TimeoutKeys.self)
            func value(_ key: TimeoutKeys, _ current: Double) throws -> Double {
                guard let duration = try timeouts.decodeIfPresent(ConfigDuration.self, forKey: key) else { return current }
                guard duration.seconds > 0 else {
                    throw DecodingError.dataCorruptedError(forKey: key, in: timeouts, debugDescription: "a timeout must be longer than 0")
                }
                return duration.seconds
            }
            var t = settings.timeouts
            t.connect = try value(.connect, t.connect)
            t.greeting = try value(.greeting, t.greeting)
            t.helo = try value(.helo, t.helo)
            t.mail = try value(.mail, t.mail)
            t.rcpt = try value(.rcpt, t.rcpt)
            t.data = try value(.data, t.data)
            t.block = try value(.block, t.block)
            t.dataEnd = try value(.dataEnd, t.dataEnd)
            t.rset = try value(.rset, t.rset)
            t.quit = try value(.quit, t.quit)
            settings.timeouts = t
        }
        return settings
    }
}
