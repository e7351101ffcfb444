import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import PostroomSystem
import TestSupport

enum SystemLayer {
    @Suite struct FileSystemTests {
        /// The folder of a path, and the hidden name a file is written under beside it (what the
        /// queue's start-up clean-up removes: a dot file ending in `.tmp`).
        @Test func parentAndTemporaryPaths() {
            #expect(FileSystem.parentPath("/spool/drop/fax/1.eml") == "/spool/drop/fax")
            #expect(FileSystem.parentPath("/file") == "/")
            #expect(FileSystem.parentPath("file") == "")
            let pid = ProcessInfo.processInfo.processIdentifier
            #expect(FileSystem.temporaryPath(for: "/spool/drop/fax/1.eml") == "/spool/drop/fax/.1.eml.\(pid).tmp")
            #expect(FileSystem.temporaryPath(for: "/file") == "/.file.\(pid).tmp")
            #expect(FileSystem.temporaryPath(for: "file") == ".file.\(pid).tmp")
        }

        @Test func writeAtomicallyReplacesContentAndLeavesNoTemporaryFile() throws {
            let folder = try TemporaryFolder("fs")
            let path = folder.sub("file")
            try FileSystem.writeAtomically(Array("first version, longer".utf8), to: path)
            try FileSystem.writeAtomically(Array("second".utf8), to: path, mode: 0o600)
            #expect(try FileSystem.readFile(path) == Array("second".utf8))
            #expect(folder.names() == ["file"])
            #expect(FileSystem.status(of: path)?.kind == .regular)
            let mode = (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int) ?? -1
            #expect(mode == 0o600)
        }

        @Test func writeAtomicallyIntoAMissingFolderThrowsAndLeavesNothing() throws {
            let folder = try TemporaryFolder("fs")
            do {
                try FileSystem.writeAtomically(Array("x".utf8), to: folder.sub("missing/file"))
                Issue.record("wrote into a missing folder")
            } catch {
                #expect(error.isNotFound)
                #expect(error.isTransient)
            }
            #expect(folder.names().isEmpty)
        }

        @Test func readFileHonoursTheLimit() throws {
            let folder = try TemporaryFolder("fs")
            let path = try folder.write("f", "0123456789")
            #expect(try FileSystem.readFile(path, limit: 4) == Array("0123".utf8))
            #expect(try FileSystem.readFile(path).count == 10)
            #expect(throws: SystemError.self) { try FileSystem.readFile(folder.sub("nope")) }
        }

        @Test func aRegularFileIsReadWholeInOneCallAtAnySize() throws {
            let folder = try TemporaryFolder("fs")
            for size in [0, 1, 4095, 4096, 70_000, 2_000_000] {
                let bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31) }
                let path = folder.sub("f\(size)")
                try FileSystem.writeAtomically(bytes, to: path, sync: false)
                #expect(try OpenFile.open(path, flags: O_RDONLY).read(upTo: size + 1, regularFile: true) == bytes)
                // A limit below the size stops at the limit, and a limit of nothing reads nothing.
                #expect(try OpenFile.open(path, flags: O_RDONLY).read(upTo: size / 2, regularFile: true) == Array(bytes.prefix(size / 2)))
                #expect(try OpenFile.open(path, flags: O_RDONLY).read(upTo: 0, regularFile: true).isEmpty)
            }
        }

        @Test(.enabled(if: getuid() == 0, "leases need root or file ownership"))
        func isClosedByWritersSeesAnOpenWriter() throws {
            let folder = try TemporaryFolder("fs")
            let path = try folder.write("growing.eml", "partial")
            let writer = try #require(FileHandle(forWritingAtPath: path))
            let reader = try OpenFile.open(path, flags: O_RDONLY)
            #expect(reader.isClosedByWriters() == false, "a writer still has the file open")
            try writer.close()
            #expect(reader.isClosedByWriters() == true)
            #expect(reader.isClosedByWriters() == true, "asking releases the lease it took")
        }

        static let python = "/usr/bin/python3"

        /// Runs python with `script`; returns its first line of output and the process, still running until stdin closes.
        static func startLocker(_ script: String) throws -> (Process, Pipe, String) {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: python)
            process.arguments = ["-c", script]
            let output = Pipe()
            let input = Pipe()
            process.standardOutput = output
            process.standardInput = input
            try process.run()
            var line = Data()
            while !line.contains(UInt8(ascii: "\n")) {
                let chunk = output.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                line += chunk
            }
            return (process, input, String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
        }

        /// Whether another process can take the lock now (fcntl locks are per process).
        static func otherProcessCanLock(_ path: String) throws -> Bool {
            let script = """
            import fcntl, sys
            f = open(sys.argv[1], "r+")
            try:
                fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                print("free")
            except OSError:
                print("held")
            """
            let process = Process()
            process.executableURL = URL(fileURLWithPath: python)
            process.arguments = ["-c", script, path]
            let output = Pipe()
            process.standardOutput = output
            try process.run()
            let data = output.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) == "free"
        }

        @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: python), "needs python3"))
        func exclusiveLockKeepsOtherProcessesOut() throws {
            let folder = try TemporaryFolder("fs")
            let path = folder.sub("postroom.lock")
            do {
                let lock = try ExclusiveLock(path: path)
                #expect(lock.path == path)
                #expect(try Self.otherProcessCanLock(path) == false)
            }
            // Read only now: closing any descriptor of the file in this process drops an fcntl lock.
            #expect(try String(contentsOfFile: path, encoding: .utf8) == "\(getpid())\n")
            #expect(try Self.otherProcessCanLock(path) == true, "released when the lock value goes away")
        }

        @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: python), "needs python3"))
        func aLockHeldByAnotherProcessIsSeenAndRefused() throws {
            let folder = try TemporaryFolder("fs")
            let path = folder.sub("postroom.lock")
            #expect(ExclusiveLock.isHeld(path: path) == false, "no lock file yet")
            let script = """
            import fcntl, os, sys
            f = open("\(path)", "a+")
            fcntl.lockf(f, fcntl.LOCK_EX)
            print("locked", flush=True)
            sys.stdin.read()
            """
            let (process, input, line) = try Self.startLocker(script)
            defer { if process.isRunning { process.terminate() } }
            try #require(line == "locked")
            #expect(ExclusiveLock.isHeld(path: path))
            do {
                _ = try ExclusiveLock(path: path)
                Issue.record("took a lock another process holds")
            } catch {
                guard case .held(let heldPath, let pid) = error else {
                    Issue.record("unexpected \(error)")
                    return
                }
                #expect(heldPath == path)
                #expect(pid == process.processIdentifier)
                #expect(error.description.contains("process \(process.processIdentifier)"))
            }
            try input.fileHandleForWriting.close()
            process.waitUntilExit()
            #expect(ExclusiveLock.isHeld(path: path) == false, "the kernel drops the lock when the holder exits")
            let lock = try ExclusiveLock(path: path)
            _ = lock
        }

        @Test func usageCountsOnlyRegularFilesDirectlyInside() throws {
            let folder = try TemporaryFolder("fs")
            try folder.write("a", String(repeating: "x", count: 10))
            try folder.write("b", String(repeating: "y", count: 20))
            try folder.write("sub/c", String(repeating: "z", count: 1000))
            try FileManager.default.createSymbolicLink(atPath: folder.sub("link"), withDestinationPath: folder.sub("sub/c"))
            #expect(mkfifo(folder.sub("fifo"), 0o600) == 0)
            let usage = try FileSystem.usage(of: folder.path)
            #expect(usage.bytes == 30)
            #expect(usage.files == 2)
            #expect(throws: SystemError.self) { try FileSystem.usage(of: folder.sub("missing")) }
        }

        @Test func sameFilesystem() throws {
            let folder = try TemporaryFolder("fs")
            try folder.write("sub/file", "x")
            #expect(FileSystem.sameFilesystem(folder.path, folder.sub("sub")))
            #expect(FileSystem.sameFilesystem(folder.sub("sub/file"), folder.path))
            #expect(!FileSystem.sameFilesystem(folder.path, "/proc"))
            #expect(!FileSystem.sameFilesystem(folder.path, folder.sub("missing")), "a missing path is never the same filesystem")
        }

        @Test func createDirectoryMakesParentsAndToleratesExisting() throws {
            let folder = try TemporaryFolder("fs")
            let deep = folder.sub("a/b/c")
            try FileSystem.createDirectory(deep)
            try FileSystem.createDirectory(deep)
            #expect(FileSystem.status(of: deep)?.kind == .directory)
            try folder.write("file", "x")
            #expect(throws: SystemError.self) { try FileSystem.createDirectory(folder.sub("file/child")) }
        }
    }
}
