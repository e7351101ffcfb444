import Foundation
import PostroomSystem

extension QueueStore {
    /// Claims a producer file whose name may not be valid UTF-8 (see ``RawFileName``):
    /// one `rename` from the exact bytes the kernel listed. The claimed file keeps the
    /// name's escaped display form as its original name, so a later `.bad` is readable.
    public func claim(_ path: RawPath, source: IntakeSource) throws(SystemError) -> ClaimedFile {
        let name = path.name.display
        while true {
            let queueID = QueueID.next()
            let destination = incoming + "/" + Self.claimedName(queueID: queueID, source: source, originalName: name)
            if FileSystem.exists(destination) { continue }
            try FileSystem.rename(path, to: destination)
            return ClaimedFile(queueID: queueID, source: source, originalName: name, path: destination)
        }
    }

    /// ``claim(_:source:)`` across filesystems: copy, fsync, then unlink the original.
    public func claimByCopy(_ path: RawPath, source: IntakeSource) throws(SystemError) -> ClaimedFile {
        let name = path.name.display
        let queueID = QueueID.next()
        let destination = incoming + "/" + Self.claimedName(queueID: queueID, source: source, originalName: name)
        let file = try OpenFile.open(path, flags: O_RDONLY | O_NOFOLLOW)
        let bytes = try file.read(upTo: Int.max)
        try FileSystem.writeAtomically(bytes, to: destination)
        try FileSystem.syncDirectory(incoming)
        try FileSystem.removeFile(path)
        return ClaimedFile(queueID: queueID, source: source, originalName: name, path: destination)
    }
}
