import Foundation

/// A pipeline file (`pipelines/*.json5`): the stages in order, the connectors, and outputs.
///
/// Unknown keys anywhere are errors. Paths to data (pickup, drop directories, mailboxes)
/// resolve against the spool; paths to other configuration files (the directory) resolve
/// against the folder of the pipeline file.
public struct PipelineFile: Sendable {
    public var name: String
    public var spool: String?
    public var stages: [StageDeclaration]
    public var connectors: [ConnectorConfiguration]
    public var metrics: MetricsConfiguration?
    public var tracking: TrackingConfiguration?
    /// How long SIGTERM waits for in-flight deliveries before exiting (default 30 s).
    public var shutdownTimeout: ConfigDuration
    /// The fully qualified name Postroom gives itself in headers it writes (default: the machine's
    /// FQDN, else the first accepted domain).
    public var hostname: String?
    /// How delivered files are made durable (``DeliveryCommit``).
    public var durability: Durability = .auto
    /// The file it was read from.
    public var path: String = ""
    /// The stage kinds its `stages` were decoded with; the runner and `check` build stages from it.
    public var registry: StageRegistry = .standard

    /// Reads and decodes a pipeline file; structural checks are ``PipelineCheck``'s job.
    /// `registry` names the stage kinds the file may use (a program embedding Postroom adds its own).
    public static func load(path: String, registry: StageRegistry = .standard) throws(ConfigError) -> PipelineFile {
        var file = try ConfigFile.decode(PipelineFile.self, fromFile: path, userInfo: [.stageRegistry: registry])
        file.path = path
        file.registry = registry
        return file
    }

    /// The environment variable that names the spool when `--spool` does not (the systemd unit sets it,
    /// so the operator commands find the daemon's spool).
    public static let spoolEnvironmentVariable = "POSTROOM_SPOOL"

    /// The spool this pipeline runs on, absolute: `override` (`--spool`), else `POSTROOM_SPOOL`, else
    /// the file's `spool`, else `./spool`, relative to the working directory.
    public func spoolPath(override: String?) -> String {
        let environment = ProcessInfo.processInfo.environment[Self.spoolEnvironmentVariable].flatMap { $0.isEmpty ? nil : $0 }
        let chosen = override ?? environment ?? spool ?? "spool"
        let absolute = chosen.hasPrefix("/") ? chosen : FileManager.default.currentDirectoryPath + "/" + chosen
        return URL(fileURLWithPath: absolute).standardizedFileURL.path
    }

    /// The folder of the pipeline file, against which configuration references resolve.
    public var folder: String {
        let directory = (path as NSString).deletingLastPathComponent
        return directory.isEmpty ? "." : directory
    }

    /// The settings of the first stage of a kind, if the pipeline has one.
    public func settings<Settings: StageSettings>(_ type: Settings.Type) -> Settings? {
        stages.lazy.compactMap { (declaration: StageDeclaration) in declaration.settings as? Settings }.first
    }
}

extension PipelineFile: Decodable {
    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, spool, stages, connectors, metrics, tracking, shutdownTimeout, hostname, durability
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        spool = try container.decodeIfPresent(String.self, forKey: .spool)
        stages = try container.decode([StageDeclaration].self, forKey: .stages)
        connectors = try container.decodeIfPresent([ConnectorConfiguration].self, forKey: .connectors) ?? []
        metrics = try container.decodeIfPresent(MetricsConfiguration.self, forKey: .metrics)
        tracking = try container.decodeIfPresent(TrackingConfiguration.self, forKey: .tracking)
        shutdownTimeout = try container.decodeIfPresent(ConfigDuration.self, forKey: .shutdownTimeout) ?? ConfigDuration(seconds: 30)
        hostname = try container.decodeIfPresent(String.self, forKey: .hostname)
        durability = try container.decodeIfPresent(Durability.self, forKey: .durability) ?? .auto
        if let hostname, !hostname.contains("."), !hostname.isEmpty {
            throw DecodingError.dataCorruptedError(forKey: .hostname, in: container, debugDescription: "hostname must be fully qualified (e.g. mail.example.com), not '\(hostname)'")
        }
    }
}

/// The pipeline's `durability`: how the file connectors make a delivered file durable.
public enum Durability: String, Sendable, Decodable {
    /// `syncfs` group commit where the spool's file system honours it, else per-file fsync.
    case auto
    /// One fsync per file, the folders' fsyncs shared (any file system).
    case file
    /// `syncfs` group commit, even where Postroom cannot tell that the file system honours it.
    case filesystem

    /// The strategy this asks for; nil lets ``DeliveryCommit`` choose.
    public var strategy: DeliveryCommit.Strategy? {
        switch self {
        case .auto: nil
        case .file: .eachFile
        case .filesystem: .filesystem
        }
    }
}

/// One entry of `stages`: its kind (the `stage` key) and the kind's own settings.
public struct StageDeclaration: Sendable {
    public var kind: String
    public var settings: any StageSettings
}

extension StageDeclaration: Decodable {
    private enum KindKey: String, CodingKey { case stage }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: KindKey.self)
        kind = try container.decode(String.self, forKey: .stage)
        let registry = decoder.userInfo[.stageRegistry] as? StageRegistry ?? .standard
        guard let stageKind = registry.kind(named: kind) else {
            let known = registry.kinds.map(\.name).joined(separator: ", ")
            throw DecodingError.dataCorruptedError(forKey: .stage, in: container, debugDescription: "unknown stage kind '\(kind)' (known: \(known))")
        }
        settings = try stageKind.decodeSettings(decoder)
    }
}

/// The kind of a connector: how it hands messages on.
public enum ConnectorType: String, Sendable, Codable, CaseIterable {
    /// Local delivery into Maildir folders.
    case maildir
    /// A file hand-off into a drop directory (Exchange's foreign connector).
    case foreign
    /// A command run per recipient with the message on standard input (a delivery agent).
    case agent
    /// SMTP to smart hosts (Exchange: a Send connector routed through smart hosts).
    case smtp
}

/// One entry of `connectors`.
public struct ConnectorConfiguration: Sendable, Decodable {
    public var name: String
    public var type: ConnectorType
    /// Local domains this connector delivers (maildir).
    public var domains: [String]
    /// Address spaces `TYPE:pattern;cost` this connector serves.
    public var addressSpaces: [String]
    /// Maildir path template with `{user}`, relative to the spool.
    public var path: String?
    /// Foreign connector drop directory, relative to the spool.
    public var dropDirectory: String?
    /// Most bytes the drop directory (or one mailbox) may hold before deliveries wait.
    public var quota: ByteSize?
    /// Most files the drop directory may hold before deliveries wait.
    public var quotaFiles: Int?
    /// Agent command as argv; placeholders `{recipient}`, `{sender}`, `{queueid}`.
    public var command: [String]?
    /// Agent time limit per run (default 60 s).
    public var timeout: ConfigDuration?
    /// Deliveries in parallel for this connector (default 8).
    public var concurrency: Int
    /// Largest message this connector takes.
    public var maxMessageSize: ByteSize?
    /// Foreign: one drop file per recipient instead of one per message (a fax gateway sends one fax per number).
    public var filePerRecipient: Bool
    /// smtp: smart hosts, EHLO name, timeouts, connection reuse (nil for the other types).
    public var smtp: SMTPSettings?
    /// Foreign and maildir: group and modes of the drop directory or mailbox folders and their files.
    public var permissions: PermissionSettings?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, type, domains, addressSpaces, path, dropDirectory, quota, quotaFiles, command, timeout, concurrency, maxMessageSize, filePerRecipient
        case permissions
        // smtp (SMTPSettings.Keys)
        case smartHosts, smartHostOrder, heloName, timeouts, idleTimeout, hostBackoff, hostBackoffMax
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
            throw DecodingError.dataCorruptedError(forKey: .name, in: container, debugDescription: "a connector name uses letters, digits, - and _ only")
        }
        let typeName = try container.decode(String.self, forKey: .type)
        guard let type = ConnectorType(rawValue: typeName) else {
            throw DecodingError.dataCorruptedError(forKey: .type, in: container, debugDescription: "unknown connector type '\(typeName)' (known: maildir, foreign, agent, smtp)")
        }
        self.type = type
        domains = try container.decodeIfPresent([String].self, forKey: .domains) ?? []
        addressSpaces = try container.decodeIfPresent([String].self, forKey: .addressSpaces) ?? []
        path = try container.decodeIfPresent(String.self, forKey: .path)
        dropDirectory = try container.decodeIfPresent(String.self, forKey: .dropDirectory)
        quota = try container.decodeIfPresent(ByteSize.self, forKey: .quota)
        quotaFiles = try container.decodeIfPresent(Int.self, forKey: .quotaFiles)
        command = try container.decodeIfPresent([String].self, forKey: .command)
        timeout = try container.decodeIfPresent(ConfigDuration.self, forKey: .timeout)
        concurrency = try container.decodeIfPresent(Int.self, forKey: .concurrency) ?? 8
        maxMessageSize = try container.decodeIfPresent(ByteSize.self, forKey: .maxMessageSize)
        filePerRecipient = try container.decodeIfPresent(Bool.self, forKey: .filePerRecipient) ?? false
        permissions = try container.decodeIfPresent(PermissionSettings.self, forKey: .permissions)
        smtp = try SMTPSettings.decode(from: decoder, isSMTP: type == .smtp)
        switch type {
        case .maildir where path == nil:
            throw DecodingError.keyNotFound(CodingKeys.path, .init(codingPath: decoder.codingPath, debugDescription: "a maildir connector needs path"))
        case .foreign where dropDirectory == nil:
            throw DecodingError.keyNotFound(CodingKeys.dropDirectory, .init(codingPath: decoder.codingPath, debugDescription: "a foreign connector needs dropDirectory"))
        case .agent where (command ?? []).isEmpty:
            throw DecodingError.keyNotFound(CodingKeys.command, .init(codingPath: decoder.codingPath, debugDescription: "an agent connector needs command"))
        default: break
        }
        guard (1...256).contains(concurrency) else {
            throw DecodingError.dataCorruptedError(forKey: .concurrency, in: container, debugDescription: "concurrency must be between 1 and 256")
        }
    }
}

/// `metrics`: where stage metrics go.
public struct MetricsConfiguration: Sendable, Decodable {
    public var file: String?
    public var every: ConfigDuration
    public var listen: String?

    enum CodingKeys: String, CodingKey, CaseIterable { case file, every, listen }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        file = try container.decodeIfPresent(String.self, forKey: .file)
        every = try container.decodeIfPresent(ConfigDuration.self, forKey: .every) ?? ConfigDuration(seconds: 10)
        listen = try container.decodeIfPresent(String.self, forKey: .listen)
    }
}

/// `tracking`: the message tracking log.
public struct TrackingConfiguration: Sendable, Decodable {
    public var file: String
    public var maxSize: ByteSize
    public var keep: Int

    enum CodingKeys: String, CodingKey, CaseIterable { case file, maxSize, keep }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        file = try container.decodeIfPresent(String.self, forKey: .file) ?? "tracking.log"
        maxSize = try container.decodeIfPresent(ByteSize.self, forKey: .maxSize) ?? ByteSize(bytes: 64 << 20)
        keep = try container.decodeIfPresent(Int.self, forKey: .keep) ?? 10
    }
}

/// Resolves a path from a pipeline file against a base folder (absolute paths stay as they are).
public func resolvePath(_ path: String, against base: String) -> String {
    if path.hasPrefix("/") { return path }
    if path == "." { return base }
    return base + "/" + path
}
