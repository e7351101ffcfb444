import Foundation
import PostroomSystem
import Testing
import TestSupport
@testable import Postroom

@Suite struct DeliveryCommitTests {
    /// Writes `text` to `temporary` the way the connectors do, and hands the open file back.
    static func writing(_ text: String, to temporary: String) -> @Sendable () throws(SystemError) -> OpenFile? {
        { () throws(SystemError) -> OpenFile? in
            let file = try OpenFile.open(temporary, flags: O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, mode: 0o600)
            try file.writeAll(Array(text.utf8))
            return file
        }
    }

    static func folders(_ label: String) throws -> TemporaryFolder {
        let root = try TemporaryFolder(label)
        for sub in ["tmp", "new"] { try FileSystem.createDirectory(root.sub(sub)) }
        return root
    }

    /// Many deliveries at once (group commit batches them): each file arrives whole under its
    /// final name, exactly once, and no temporary file is left; written on a pool thread or,
    /// `quick`, on the caller's.
    @Test(arguments: DeliveryCommit.Strategy.allCases, [false, true])
    func concurrentDeliveriesAllArriveWholeAndLeaveNoTemporary(strategy: DeliveryCommit.Strategy, quick: Bool) async throws {
        let root = try Self.folders("commit")
        let path = root.path
        let commit = DeliveryCommit(spool: path, directorySync: DirectorySync(), strategy: strategy)
        let results = await withTaskGroup(of: Bool.self) { group in
            for index in 0..<64 {
                group.addTask {
                    (try? await commit.deliver(temporary: path + "/tmp/m\(index)", final: path + "/new/m\(index)", quick: quick,
                                               write: Self.writing("message \(index)\n", to: path + "/tmp/m\(index)"))) ?? false
                }
            }
            return await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(results.count == 64 && results.allSatisfy { $0 })
        #expect(try FileSystem.contents(of: root.sub("tmp")).isEmpty)
        for index in 0..<64 {
            #expect(try String(contentsOfFile: root.sub("new/m\(index)"), encoding: .utf8) == "message \(index)\n")
        }
    }

    /// `write` finding the delivery made already: nothing is written or renamed.
    @Test(arguments: DeliveryCommit.Strategy.allCases, [false, true])
    func aDeliveryFoundMadeIsNotMadeAgain(strategy: DeliveryCommit.Strategy, quick: Bool) async throws {
        let root = try Self.folders("commit-found")
        let commit = DeliveryCommit(spool: root.path, directorySync: DirectorySync(), strategy: strategy)
        let wrote = try await commit.deliver(temporary: root.sub("tmp/m"), final: root.sub("new/m"), quick: quick) { () throws(SystemError) -> OpenFile? in nil }
        #expect(!wrote)
        #expect(try FileSystem.contents(of: root.sub("new")).isEmpty && FileSystem.contents(of: root.sub("tmp")).isEmpty)
    }

    /// A write that fails half-way leaves no temporary file, and says why.
    @Test(arguments: DeliveryCommit.Strategy.allCases, [false, true])
    func aFailedWriteLeavesNoTemporary(strategy: DeliveryCommit.Strategy, quick: Bool) async throws {
        let root = try Self.folders("commit-fail")
        let commit = DeliveryCommit(spool: root.path, directorySync: DirectorySync(), strategy: strategy)
        let temporary = root.sub("tmp/m"), final = root.sub("new/m")
        await #expect(throws: SystemError.self) {
            _ = try await commit.deliver(temporary: temporary, final: final, quick: quick) { () throws(SystemError) -> OpenFile? in
                _ = try Self.writing("half", to: temporary)()
                throw SystemError.overQuota(operation: "quota", path: temporary)
            }
        }
        #expect(!FileSystem.exists(temporary) && !FileSystem.exists(root.sub("new/m")))
    }

    /// In a batch, a rename that fails (its folder is gone) fails only its own delivery.
    @Test(arguments: DeliveryCommit.Strategy.allCases, [false, true])
    func aFailedRenameFailsOnlyItsOwnDelivery(strategy: DeliveryCommit.Strategy, quick: Bool) async throws {
        let root = try Self.folders("commit-rename")
        let commit = DeliveryCommit(spool: root.path, directorySync: DirectorySync(), strategy: strategy)
        let path = root.path
        async let good = commit.deliver(temporary: path + "/tmp/good", final: path + "/new/good", quick: quick, write: Self.writing("good", to: path + "/tmp/good"))
        async let bad = commit.deliver(temporary: path + "/tmp/bad", final: path + "/missing/bad", quick: quick, write: Self.writing("bad", to: path + "/tmp/bad"))
        #expect(try await good)
        do {
            _ = try await bad
            Issue.record("a rename into a missing folder must fail")
        } catch {
            #expect((error as? SystemError)?.isNotFound == true, "\(error)")
        }
        #expect(!FileSystem.exists(root.sub("tmp/bad")) && FileSystem.exists(root.sub("new/good")))
    }

    /// Group commit only where `syncfs` is a real durability point: never on tmpfs or procfs (or
    /// FUSE, where LazyFS ignores it), and `auto` follows the spool's file system.
    @Test func autoChoosesGroupCommitOnlyWhereSyncfsIsDurable() throws {
        #expect(FileSystem.filesystemType(at: "/proc") == 0x9FA0)
        #expect(!FileSystem.filesystemSyncIsDurable(at: "/proc"))
        if FileSystem.filesystemType(at: "/dev/shm") == 0x0102_1994 { #expect(!FileSystem.filesystemSyncIsDurable(at: "/dev/shm")) }
        #expect(FileSystem.filesystemType(at: "/no/such/folder") == nil && !FileSystem.filesystemSyncIsDurable(at: "/no/such/folder"))
        let root = try Self.folders("commit-auto")
        let expected: DeliveryCommit.Strategy = FileSystem.filesystemSyncIsDurable(at: root.path) ? .filesystem : .eachFile
        #expect(DeliveryCommit(spool: root.path, directorySync: DirectorySync()).strategy == expected)
        #expect(DeliveryCommit(spool: root.path, directorySync: DirectorySync(), strategy: .eachFile).strategy == .eachFile)
        #expect(!DeliveryCommit(spool: root.path, directorySync: DirectorySync(), strategy: .eachFile).coversEarlierRenames)
        #expect(DeliveryCommit(spool: root.path, directorySync: DirectorySync(), strategy: .filesystem).coversEarlierRenames)
    }

    /// A target on another file system than the spool (a mailbox on tmpfs here) is fsynced on its
    /// own inside the batch: the spool's syncfs would not reach it.
    @Test func aTargetOnAnotherFilesystemIsDelivered() async throws {
        guard FileSystem.filesystemType(at: "/dev/shm") == 0x0102_1994 else { return }
        let spool = try TemporaryFolder("commit-spool")
        let other = "/dev/shm/postroom-commit-" + UUID().uuidString
        try FileSystem.createDirectory(other + "/tmp")
        try FileSystem.createDirectory(other + "/new")
        defer { try? FileManager.default.removeItem(atPath: other) }
        let commit = DeliveryCommit(spool: spool.path, directorySync: DirectorySync(), strategy: .filesystem)
        #expect(try await commit.deliver(temporary: other + "/tmp/m", final: other + "/new/m", write: Self.writing("far", to: other + "/tmp/m")))
        #expect(try String(contentsOfFile: other + "/new/m", encoding: .utf8) == "far")
    }
}
