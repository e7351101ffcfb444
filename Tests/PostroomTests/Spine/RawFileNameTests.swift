import Foundation
import PostroomSystem
import Testing
@testable import Postroom

/// Issue 11, class 5a: file names are bytes; people see them escaped; badmail names fit.
@Suite("Raw file names")
struct RawFileNameTests {
    @Test func displayEscapesOnlyWhatIsNotReadableUTF8() {
        #expect(RawFileName("café.eml").display == "café.eml")
        #expect(RawFileName("café.eml").isPlain)
        let latin1 = RawFileName(bytes: Array("caf".utf8) + [0xE9] + Array(".eml".utf8))
        #expect(latin1.display == "caf\\xE9.eml")
        #expect(!latin1.isPlain)
        // A line break in a name would split a log line or a .bad.reason file.
        #expect(RawFileName(bytes: Array("a".utf8) + [0x0A] + Array("b.eml".utf8)).display == "a\\x0Ab.eml")
        // Truncated and overlong sequences are bytes, not characters.
        #expect(RawFileName(bytes: [0xE2, 0x82, 0x2E]).display == "\\xE2\\x82.")
        #expect(RawFileName(bytes: [0xC0, 0xAE]).display == "\\xC0\\xAE")
    }

    @Test func suffixIsMatchedOnBytesIgnoringASCIICase() {
        #expect(RawFileName(bytes: [0xFF] + Array(".EmL".utf8)).hasSuffixIgnoringCase(".eml"))
        #expect(!RawFileName("x.emlx").hasSuffixIgnoringCase(".eml"))
    }

    @Test func aFileIsReachedByItsBytes() throws {
        let folder = NSTemporaryDirectory() + "rawname-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let name = RawFileName(bytes: Array("m".utf8) + [0xFF, 0xFE] + Array(".eml".utf8))
        let path = RawPath(directory: folder, name: name)
        let file = try OpenFile.open(path, flags: O_WRONLY | O_CREAT | O_EXCL)
        try file.writeAll(Array("hello".utf8))
        #expect(try FileSystem.rawContents(of: folder) == [name])
        #expect(FileSystem.status(of: path)?.size == 5)
        try FileSystem.rename(path, to: folder + "/plain.eml")
        #expect(try FileSystem.rawContents(of: folder) == [RawFileName("plain.eml")])
    }

    @Test func badmailNamesFitWithinNameMax() {
        #expect(Badmail.fitting("short.eml") == "short.eml")
        let long = String(repeating: "é", count: 200) + ".eml"
        let fitted = Badmail.fitting(long)
        #expect(fitted.utf8.count <= 180)
        #expect(fitted.hasPrefix("éé"))
        #expect(fitted != Badmail.fitting(String(repeating: "é", count: 201) + ".eml"), "different names must stay different")
    }
}
