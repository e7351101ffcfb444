import Glibc

/// Group ownership and modes of the folders and files Postroom shares with other users: producers
/// writing into `pickup/`, a gateway reading and deleting drop files, Dovecot reading Maildirs.
///
/// Modes are applied with `chmod`/`fchmod`, so they are exact whatever the daemon's umask (the
/// systemd unit sets `UMask=0027`). A folder given a group also gets the set-group-ID bit, so
/// files other users create in it (a producer's `.eml`) belong to the group too. Changing a
/// file's group to one the daemon's user is not a member of fails with `EPERM`: the daemon's user
/// must belong to every group the pipeline names.
public enum Ownership {
    /// The set-group-ID bit on a directory: new entries inherit the directory's group.
    public static let setGroupID: mode_t = 0o2000

    /// The id of the group `name` (a number is taken as an id), or an error naming the group.
    public static func groupID(named name: String) throws(SystemError) -> gid_t {
        if let number = gid_t(name) { return number }
        var group = group()
        var result: UnsafeMutablePointer<group>?
        var buffer = [CChar](repeating: 0, count: 16384)
        let status = getgrnam_r(name, &group, &buffer, buffer.count, &result)
        guard status == 0, result != nil else {
            throw SystemError(operation: "getgrnam (no such group)", path: name, errno: status == 0 ? ENOENT : status)
        }
        return group.gr_gid
    }

    /// Creates `path` and any missing parents, and gives `path` itself `mode` and `group`; an
    /// existing directory whose mode or group differ is corrected. Parents created here get
    /// `parentMode` (e.g. 0711, so any user can reach `path`) and keep the daemon's group.
    public static func prepareDirectory(_ path: String, mode: mode_t, group: gid_t?, parentMode: mode_t) throws(SystemError) {
        let wanted = group == nil ? mode : mode | setGroupID
        if let existing = FileSystem.status(of: path, followLinks: true), existing.kind == .directory {
            try correct(path, mode: wanted, group: group)
            return
        }
        let parent = FileSystem.parentPath(path)
        if !parent.isEmpty, parent != path, parent != "/", FileSystem.status(of: parent, followLinks: true) == nil {
            try prepareDirectory(parent, mode: parentMode, group: nil, parentMode: parentMode)
        }
        if mkdir(path, 0o700) != 0, errno != EEXIST { throw SystemError(operation: "mkdir", path: path, errno: errno) }
        try correct(path, mode: wanted, group: group)
    }

    /// Sets the group (when given) and the mode of an existing path, only when they differ.
    public static func correct(_ path: String, mode: mode_t, group: gid_t?) throws(SystemError) {
        var info = stat()
        guard stat(path, &info) == 0 else { throw SystemError(operation: "stat", path: path, errno: errno) }
        if let group, info.st_gid != group {
            guard chown(path, uid_t.max, group) == 0 else { throw SystemError(operation: "chown", path: path, errno: errno) }
            // chown clears the set-group-ID bit on some filesystems: the mode is set after it.
            info.st_mode = 0
        }
        if info.st_mode & 0o7777 != mode {
            guard chmod(path, mode) == 0 else { throw SystemError(operation: "chmod", path: path, errno: errno) }
        }
    }

    /// Gives an open file its group (when given) and then exactly `mode`, before it is renamed into
    /// sight, so a reader never meets it with the wrong owner or mode.
    public static func apply(to file: OpenFile, mode: mode_t, group: gid_t?) throws(SystemError) {
        if let group, fchown(file.descriptor, uid_t.max, group) != 0 {
            throw SystemError(operation: "fchown", path: file.path, errno: errno)
        }
        guard fchmod(file.descriptor, mode) == 0 else { throw SystemError(operation: "fchmod", path: file.path, errno: errno) }
    }

    /// Adds the search bit for group and others (`chmod go+x`) to every folder strictly between
    /// `root` and `path`, so users of a shared folder can reach it through Postroom's own folders
    /// (`drop/`, made 0750 by a connector without permissions). Nothing becomes listable.
    public static func makeSearchable(ancestorsOf path: String, below root: String) throws(SystemError) {
        let base = root.hasSuffix("/") ? String(root.dropLast()) : root
        guard path.hasPrefix(base + "/") else { return }
        var current = FileSystem.parentPath(path)
        while current.count > base.count, current.hasPrefix(base + "/") {
            var info = stat()
            if stat(current, &info) == 0, info.st_mode & 0o011 != 0o011 {
                guard chmod(current, (info.st_mode & 0o7777) | 0o011) == 0 else { throw SystemError(operation: "chmod", path: current, errno: errno) }
            }
            current = FileSystem.parentPath(current)
        }
    }
}
