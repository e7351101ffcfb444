import Foundation
import PostroomSystem
import Synchronization

/// `permissions: { group, directoryMode, fileMode }` on the `ingest` stage (for `pickup/` and
/// `replay/`), a `foreign` connector (its drop directory and drop files) or a `maildir` connector
/// (the mailbox folders and message files): who else may use them.
///
/// Modes are octal strings (`"2770"`, `"0640"`). With a `group`, folders get it and the
/// set-group-ID bit (files other users create there join the group), folder mode defaults to
/// `0770` and file mode to `0640`: a producer in the group can drop files, a gateway can read and
/// delete drop files, Dovecot (as a user in the group) can read the Maildirs and move mail to
/// `cur/`. Without `permissions`, folders are private to the daemon's user as before (0750 for
/// intake and drop folders, 0700 for Maildirs; files 0640 and 0600). Parent folders Postroom
/// creates on the way (`drop/`, `mailboxes/`) get `0711`: searchable, not listable.
public struct PermissionSettings: Sendable, Equatable, Decodable {
    /// Group name (or number) given to the folders and files.
    public var group: String?
    public var directoryMode: mode_t?
    public var fileMode: mode_t?

    enum CodingKeys: String, CodingKey, CaseIterable { case group, directoryMode, fileMode }

    public init(group: String? = nil, directoryMode: mode_t? = nil, fileMode: mode_t? = nil) {
        self.group = group
        self.directoryMode = directoryMode
        self.fileMode = fileMode
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        group = try container.decodeIfPresent(String.self, forKey: .group)
        if let group, group.isEmpty || group.contains(where: { $0.isWhitespace || $0 == ":" }) {
            throw DecodingError.dataCorruptedError(forKey: .group, in: container, debugDescription: "'\(group)' is not a group name")
        }
        func mode(_ key: CodingKeys) throws -> mode_t? {
            guard let text = try container.decodeIfPresent(String.self, forKey: key) else { return nil }
            guard let value = mode_t(text, radix: 8), value <= 0o7777 else {
                throw DecodingError.dataCorruptedError(forKey: key, in: container, debugDescription: "'\(text)' is not an octal mode such as \"0770\"")
            }
            return value
        }
        directoryMode = try mode(.directoryMode)
        fileMode = try mode(.fileMode)
        if let fileMode, fileMode & 0o7000 != 0 {
            throw DecodingError.dataCorruptedError(forKey: .fileMode, in: container, debugDescription: "file modes take no set-ID or sticky bits")
        }
    }

    /// Folder mode: the configured one, else 0770 with a group, else `privateMode`.
    public func folderMode(private privateMode: mode_t) -> mode_t { directoryMode ?? (group == nil ? privateMode : 0o770) }

    /// File mode: the configured one, else 0640 with a group, else `privateMode`.
    public func fileMode(private privateMode: mode_t) -> mode_t { fileMode ?? (group == nil ? privateMode : 0o640) }

    /// The group's id; nil without a group or when it does not exist (`check` reports that).
    /// Looked up once per name: deliveries ask for it every time.
    public var groupID: gid_t? {
        guard let group else { return nil }
        if let known = Self.knownGroups.withLock({ $0[group] }) { return known }
        guard let id = try? Ownership.groupID(named: group) else { return nil }
        Self.knownGroups.withLock { $0[group] = id }
        return id
    }

    private static let knownGroups = Mutex<[String: gid_t]>([:])

    /// Mode for parent folders created on the way: searchable by everyone, listable by the owner only.
    public static let parentMode: mode_t = 0o711

    /// Creates (or corrects) a shared folder with these permissions; with `spool`, the folders between
    /// the spool and it are made searchable (not listable) so the group can reach it.
    public func prepare(_ path: String, privateMode: mode_t, spool: String? = nil) throws(SystemError) {
        try Ownership.prepareDirectory(path, mode: folderMode(private: privateMode), group: groupID, parentMode: Self.parentMode)
        if let spool { try Ownership.makeSearchable(ancestorsOf: path, below: spool) }
    }
}

extension IngestSettings {
    /// Creates `pickup/` or `replay/` with the stage's `permissions` (0750 without).
    func prepareDirectory(_ path: String) throws {
        if let permissions {
            try permissions.prepare(path, privateMode: 0o750)
        } else {
            try FileSystem.createDirectory(path)
        }
    }
}
