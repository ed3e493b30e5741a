import Foundation

/// A request's stdin bytes in a private temporary file: the jail reads stdin from a file
/// descriptor, and a file is the simplest source. The caller removes it after the run.
struct StagedStdin {
    let path: String

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    init(_ bytes: [UInt8]) throws {
        path = NSTemporaryDirectory() + "sealbox-stdin-\(UUID().uuidString)"
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes), attributes: [.posixPermissions: 0o600]) else {
            throw Failure(description: "cannot stage stdin in \(NSTemporaryDirectory())")
        }
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}
