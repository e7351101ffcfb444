import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What `lstat`/`fstat` says about a file, reduced to what Postroom decides on.
public struct FileStatus: Sendable, Equatable {
    public enum Kind: String, Sendable { case regular, directory, symbolicLink, fifo, socket, characterDevice, blockDevice, unknown }
    public let kind: Kind
    public let size: Int64
    public let linkCount: Int
    public let device: UInt64
    public let inode: UInt64
    public let modified: Date

    init(_ raw: stat) {
        switch raw.st_mode & S_IFMT {
        case S_IFREG: kind = .regular
        case S_IFDIR: kind = .directory
        case S_IFLNK: kind = .symbolicLink
        case S_IFIFO: kind = .fifo
        case S_IFSOCK: kind = .socket
        case S_IFCHR: kind = .characterDevice
        case S_IFBLK: kind = .blockDevice
        default: kind = .unknown
        }
        size = Int64(raw.st_size)
        linkCount = Int(raw.st_nlink)
        device = UInt64(raw.st_dev)
        inode = UInt64(raw.st_ino)
        modified = Date(timeIntervalSince1970: Double(raw.st_mtim.tv_sec) + Double(raw.st_mtim.tv_nsec) / 1e9)
    }
}

/// The file-system operations Postroom needs, each a thin wrapper over one system call.
///
/// Glibc stays inside this file and ``OpenFile``; the rest of the code speaks in paths,
/// bytes and ``SystemError``s.
public enum FileSystem {
    /// `POSTROOM_TEST_SKIP_FSYNC=1` (tests only; never set it in production): every ``OpenFile/sync()``
    /// returns at once without calling fsync. The power-loss suite uses it as a negative control:
    /// with it, a power cut must lose or corrupt mail, proving the suite can see that.
    public static let skipsSyncForTests = ProcessInfo.processInfo.environment["POSTROOM_TEST_SKIP_FSYNC"] == "1"

    public static func status(of path: String, followLinks: Bool = false) -> FileStatus? {
        var raw = stat()
        let result = followLinks ? stat(path, &raw) : lstat(path, &raw)
        return result == 0 ? FileStatus(raw) : nil
    }

    public static func exists(_ path: String) -> Bool { status(of: path) != nil }

    /// True when this process may execute `path` (`access(2)` with `X_OK`).
    public static func isExecutable(_ path: String) -> Bool { access(path, X_OK) == 0 }

    /// Creates a directory and any missing parents; an existing directory is fine.
    public static func createDirectory(_ path: String, mode: mode_t = 0o750) throws(SystemError) {
        if status(of: path, followLinks: true)?.kind == .directory { return }
        let parent = (path as NSString).deletingLastPathComponent
        if !parent.isEmpty, parent != path, parent != "/" { try createDirectory(parent, mode: mode) }
        if mkdir(path, mode) != 0, errno != EEXIST {
            throw SystemError(operation: "mkdir", path: path, errno: errno)
        }
    }

    /// Creates a new, private directory `<folder>/<prefix>.XXXXXX` (`mkdtemp`) and returns its path.
    public static func makeTemporaryDirectory(in folder: String, prefix: String) throws(SystemError) -> String {
        var template = Array("\(folder)/\(prefix).XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw SystemError(operation: "mkdtemp", path: folder, errno: errno) }
        return String(cString: made)
    }

    /// Names in a directory, without `.` and `..`.
    public static func contents(of path: String) throws(SystemError) -> [String] {
        guard let directory = opendir(path) else { throw SystemError(operation: "opendir", path: path, errno: errno) }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != ".", name != ".." { names.append(name) }
        }
        return names
    }

    public static func rename(_ source: String, to destination: String) throws(SystemError) {
        guard Glibc.rename(source, destination) == 0 else {
            throw SystemError(operation: "rename", path: "\(source) -> \(destination)", errno: errno)
        }
    }

    public static func removeFile(_ path: String) throws(SystemError) {
        guard unlink(path) == 0 else { throw SystemError(operation: "unlink", path: path, errno: errno) }
    }

    /// Removes a file if it is there; a missing file is not an error.
    public static func removeFileIfPresent(_ path: String) throws(SystemError) {
        if unlink(path) != 0, errno != ENOENT { throw SystemError(operation: "unlink", path: path, errno: errno) }
    }

    /// Makes the directory's entries (creations, renames, removals) durable.
    public static func syncDirectory(_ path: String) throws(SystemError) {
        let directory = try OpenFile.open(path, flags: O_RDONLY | O_DIRECTORY)
        try directory.sync()
    }

    /// True when one `syncfs(2)` on the file system holding `path` makes durable everything written
    /// there before it, and reports a failed write-back: a local file system that implements it
    /// (ext2/3/4, XFS, Btrfs) on Linux 5.8 or later. False elsewhere (FUSE file systems may
    /// ignore it, network file systems and overlays vary), and then only per-file fsyncs count.
    public static func filesystemSyncIsDurable(at path: String) -> Bool {
        guard let type = filesystemType(at: path) else { return false }
        let ext4 = 0xEF53, xfs = 0x5846_5342, btrfs = 0x9123_683E
        guard [ext4, xfs, btrfs].contains(type) else { return false }
        // syncfs reports write-back errors from 5.8 on (errseq on the superblock).
        var names = utsname()
        guard uname(&names) == 0 else { return false }
        let release = withUnsafeBytes(of: names.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let numbers = release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
        guard numbers.count == 2 else { return false }
        return numbers[0] > 5 || (numbers[0] == 5 && numbers[1] >= 8)
    }

    /// The folder part of `path` (`""` when it has none, `/` for a file at the root): a scan for the
    /// last slash, cheaper than Foundation's path calls on a hot path.
    public static func parentPath(_ path: String) -> String {
        guard let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) else { return "" }
        return slash == path.utf8.startIndex ? "/" : String(path[..<slash])
    }

    /// The hidden name beside `path` that a file is written under before it is renamed to `path`:
    /// `.<name>.<pid>.tmp`, skipped by consumers (dot file) and by other processes (pid), and
    /// removed at start-up where Postroom owns the folder.
    public static func temporaryPath(for path: String) -> String {
        guard let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) else { return ".\(path).\(getpid()).tmp" }
        let name = path.utf8.index(after: slash)
        return "\(path[..<name]).\(path[name...]).\(getpid()).tmp"
    }

    /// The `f_type` magic number `statfs(2)` gives for the file system holding `path`.
    public static func filesystemType(at path: String) -> Int? {
        // Glibc's module map leaves out <sys/vfs.h>; f_type is the first field of struct statfs
        // (a long) on every Linux ABI, and the buffer is larger than the whole struct (120 bytes on 64-bit).
        guard let statfs = LibC.statfs else { return nil }
        var buffer = [Int](repeating: 0, count: 64)
        let result = buffer.withUnsafeMutableBytes { statfs(path, $0.baseAddress!) }
        return result == 0 ? buffer[0] : nil
    }

    /// Writes `bytes` to a hidden temporary name beside `path`, fsyncs it and renames it into place.
    ///
    /// The directory entry is not synced here; callers batch that with ``DirectorySync``.
    /// A reader never sees a partial file under `path`.
    /// With `exactMode`, the file's mode is set to `mode` (`fchmod`), not `mode` less the umask.
    public static func writeAtomically(_ bytes: some Collection<UInt8>, to path: String, sync: Bool = true, mode: mode_t = 0o640,
                                       exactMode: Bool = false) throws(SystemError) {
        let temporary = temporaryPath(for: path)
        do {
            let file = try OpenFile.open(temporary, flags: O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, mode: mode)
            if exactMode { try file.setMode(mode) }
            try file.writeAll(bytes)
            if sync { try file.sync() }
            try rename(temporary, to: path)
        } catch {
            try? removeFileIfPresent(temporary)
            throw error
        }
    }

    /// ``writeAtomically(_:to:sync:mode:)`` followed by a sync of the directory: when it returns, the
    /// new content is durably in place under `path` (node_exporter's textfile-collector convention).
    /// The file gets exactly `mode`, whatever the process's umask (a collector running as another user reads it).
    public static func writeDurably(_ bytes: some Collection<UInt8>, to path: String, mode: mode_t = 0o640) throws(SystemError) {
        try writeAtomically(bytes, to: path, mode: mode, exactMode: true)
        let directory = (path as NSString).deletingLastPathComponent
        try syncDirectory(directory.isEmpty ? "." : directory)
    }

    public static func readFile(_ path: String, limit: Int = Int.max) throws(SystemError) -> [UInt8] {
        let file = try OpenFile.open(path, flags: O_RDONLY | O_NOFOLLOW)
        return try file.read(upTo: limit)
    }

    /// The total size of regular files directly inside `path` and their count.
    public static func usage(of path: String) throws(SystemError) -> (bytes: Int64, files: Int) {
        var bytes: Int64 = 0
        var files = 0
        for name in try contents(of: path) {
            if let status = status(of: path + "/" + name), status.kind == .regular {
                bytes += status.size
                files += 1
            }
        }
        return (bytes, files)
    }

    /// True when both paths are on the same filesystem (so `rename` between them is atomic).
    public static func sameFilesystem(_ first: String, _ second: String) -> Bool {
        guard let a = status(of: first, followLinks: true), let b = status(of: second, followLinks: true) else { return false }
        return a.device == b.device
    }

    /// Bytes an unprivileged writer can still use on the filesystem holding `path`.
    public static func availableBytes(at path: String) -> Int64? {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else { return nil }
        return Int64(info.f_bavail) * Int64(info.f_frsize)
    }

    public static func hostname() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return "localhost" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public static var processID: Int32 { getpid() }

    /// Bytes per memory page (procfs reports memory in pages).
    public static var pageSize: Int { Int(sysconf(Int32(_SC_PAGESIZE))) }

    /// Clock ticks per second (procfs reports process times in ticks).
    public static var clockTicksPerSecond: Int { Int(sysconf(Int32(_SC_CLK_TCK))) }

    /// SIGKILL to this process: no clean-up of any kind (fault injection).
    public static func killSelf() { kill(getpid(), SIGKILL) }
}

/// C library functions Glibc's module map does not import (they sit behind `_GNU_SOURCE` or in
/// headers it leaves out), looked up once by name.
enum LibC {
    static let syncfs: (@convention(c) (Int32) -> Int32)? = function("syncfs")
    static let statfs: (@convention(c) (UnsafePointer<CChar>, UnsafeMutableRawPointer) -> Int32)? = function("statfs")

    private static func function<Function>(_ name: String) -> Function? {
        dlsym(dlopen(nil, RTLD_NOW), name).map { unsafeBitCast($0, to: Function.self) }
    }
}
