import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A directory entry's name exactly as `readdir` or inotify gave it.
///
/// Linux file names are bytes, not text: a name that is not valid UTF-8 cannot survive a
/// round trip through `String`, so intake keeps the bytes from the kernel to the system
/// call and uses ``display`` only for people (logs, `.bad.reason`, tracking).
public struct RawFileName: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The name's bytes, without a terminating NUL.
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) { self.bytes = bytes }
    public init(_ name: String) { bytes = Array(name.utf8) }

    /// The name for people: valid UTF-8 as is; bytes that are not part of valid UTF-8
    /// and control characters as `\xNN`, so a log line or reason file stays one
    /// readable line and no byte is silently replaced.
    public var display: String { UTF8Validation.escaped(bytes) }

    public var description: String { display }

    /// True when ``display`` is the name itself (valid UTF-8, no control characters).
    public var isPlain: Bool { Array(display.utf8) == bytes }

    /// Whether the name ends in `suffix`, ASCII case-insensitively.
    public func hasSuffixIgnoringCase(_ suffix: String) -> Bool {
        let tail = Array(suffix.utf8)
        guard bytes.count >= tail.count else { return false }
        return zip(bytes.suffix(tail.count), tail).allSatisfy { Self.lower($0) == Self.lower($1) }
    }

    public static func < (lhs: RawFileName, rhs: RawFileName) -> Bool { lhs.bytes.lexicographicallyPrecedes(rhs.bytes) }

    private static func lower(_ byte: UInt8) -> UInt8 { byte >= 0x41 && byte <= 0x5A ? byte + 0x20 : byte }
}

/// A path whose last component is a ``RawFileName``: the directory is text (it comes
/// from the configuration), the name is whatever bytes the kernel listed.
public struct RawPath: Sendable, Hashable, CustomStringConvertible {
    public let directory: String
    public let name: RawFileName

    public init(directory: String, name: RawFileName) {
        self.directory = directory
        self.name = name
    }

    /// The path as NUL-terminated bytes for a system call.
    var cString: [CChar] {
        (Array(directory.utf8) + [0x2F] + name.bytes + [0]).map { CChar(bitPattern: $0) }
    }

    /// The path for people, with the name escaped (see ``RawFileName/display``).
    public var display: String { directory + "/" + name.display }
    public var description: String { display }
}

extension FileSystem {
    /// Names in a directory as the kernel stores them, without `.` and `..`.
    public static func rawContents(of path: String) throws(SystemError) -> [RawFileName] {
        guard let directory = opendir(path) else { throw SystemError(operation: "opendir", path: path, errno: errno) }
        defer { closedir(directory) }
        var names: [RawFileName] = []
        while let entry = readdir(directory) {
            let bytes = withUnsafeBytes(of: entry.pointee.d_name) { raw in Array(raw.prefix { $0 != 0 }) }
            if bytes != [0x2E], bytes != [0x2E, 0x2E] { names.append(RawFileName(bytes: bytes)) }
        }
        return names
    }

    /// `lstat` (or `stat`) of a path whose name may not be UTF-8.
    public static func status(of path: RawPath, followLinks: Bool = false) -> FileStatus? {
        var raw = stat()
        let result = path.cString.withUnsafeBufferPointer { name in
            followLinks ? stat(name.baseAddress!, &raw) : lstat(name.baseAddress!, &raw)
        }
        return result == 0 ? FileStatus(raw) : nil
    }

    /// Renames a file whose name may not be UTF-8 to a text path.
    public static func rename(_ source: RawPath, to destination: String) throws(SystemError) {
        let result = source.cString.withUnsafeBufferPointer { Glibc.rename($0.baseAddress!, destination) }
        guard result == 0 else {
            throw SystemError(operation: "rename", path: "\(source.display) -> \(destination)", errno: errno)
        }
    }

    /// Removes a file whose name may not be UTF-8.
    public static func removeFile(_ path: RawPath) throws(SystemError) {
        let result = path.cString.withUnsafeBufferPointer { unlink($0.baseAddress!) }
        guard result == 0 else { throw SystemError(operation: "unlink", path: path.display, errno: errno) }
    }
}

extension OpenFile {
    /// Opens a file whose name may not be UTF-8; `O_CLOEXEC` is always added.
    public static func open(_ path: RawPath, flags: Int32, mode: mode_t = 0o640) throws(SystemError) -> OpenFile {
        let fd = path.cString.withUnsafeBufferPointer { name in retrying { Glibc.open(name.baseAddress!, flags | O_CLOEXEC, mode) } }
        guard fd >= 0 else { throw SystemError(operation: "open", path: path.display, errno: errno) }
        return OpenFile(descriptor: fd, path: path.display)
    }
}

/// Strict UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF), byte by byte,
/// for the places that must tell valid UTF-8 from other bytes without transcoding anything: file
/// names from the kernel, and addresses (RFC 6532).
public enum UTF8Validation {
    /// Bytes as text for a person: valid UTF-8 as is, every other byte and every control
    /// character as `\xNN`, so nothing is transcoded or silently replaced. `keepingTabs` leaves
    /// tabs as they are; `droppingLineBreaks` leaves out CR and LF (unfolding a header value).
    public static func escaped<Bytes: RandomAccessCollection<UInt8>>(_ bytes: Bytes, keepingTabs: Bool = false,
                                                                    droppingLineBreaks: Bool = false) -> String where Bytes.Index == Int {
        var out = ""
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let byte = bytes[index]
            if byte < 0x80 {
                if droppingLineBreaks && (byte == 0x0D || byte == 0x0A) {
                    // left out
                } else if byte < 0x20 && !(keepingTabs && byte == 0x09) || byte == 0x7F {
                    out += hex(byte)
                } else {
                    out.unicodeScalars.append(Unicode.Scalar(byte))
                }
                index += 1
                continue
            }
            let length = sequenceLength(in: bytes, at: index)
            if length > 0 {
                out += String(decoding: bytes[index..<(index + length)], as: UTF8.self)
                index += length
            } else {
                out += hex(byte)
                index += 1
            }
        }
        return out
    }

    private static func hex(_ byte: UInt8) -> String {
        let digits = Array("0123456789ABCDEF".utf8)
        return "\\x" + String(decoding: [digits[Int(byte >> 4)], digits[Int(byte & 0x0F)]], as: UTF8.self)
    }

    /// The length of the valid UTF-8 sequence starting at `index`, or 0 when there is none.
    public static func sequenceLength<Bytes: RandomAccessCollection<UInt8>>(in bytes: Bytes, at index: Int) -> Int where Bytes.Index == Int {
        let lead = bytes[index]
        let length: Int
        var lower: UInt8 = 0x80
        var upper: UInt8 = 0xBF
        switch lead {
        case 0xC2...0xDF: length = 2
        case 0xE0: length = 3; lower = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: length = 3
        case 0xED: length = 3; upper = 0x9F
        case 0xF0: length = 4; lower = 0x90
        case 0xF1...0xF3: length = 4
        case 0xF4: length = 4; upper = 0x8F
        default: return 0
        }
        guard index + length <= bytes.endIndex else { return 0 }
        for offset in 1..<length {
            let byte = bytes[index + offset]
            let (low, high) = offset == 1 ? (lower, upper) : (UInt8(0x80), UInt8(0xBF))
            guard byte >= low, byte <= high else { return 0 }
        }
        return length
    }
}
