import SealboxBase
import Foundation
import Glibc
import SealboxServer

enum ServerTestSupport {
    static let repoRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// The built `sealbox` binary (scripts/test.sh builds it before the tests): the service's
    /// broker is a separate process.
    static var sealboxBinary: String {
        get throws {
            let path = repoRoot + "/.build/debug/sealbox"
            guard FileManager.default.isExecutableFile(atPath: path) else {
                throw TestFailure("sealbox not built at \(path): run `swift build` first (scripts/test.sh does)")
            }
            return path
        }
    }

    /// Every test server's state directory lives under one directory per test process; those
    /// of test processes that are gone are removed on first use.
    static let stateRoot: String = {
        let fm = FileManager.default
        let tmp = fm.temporaryDirectory.path
        for name in (try? fm.contentsOfDirectory(atPath: tmp)) ?? [] where name.hasPrefix("sealbox-api-tests.") {
            if let pid = Int32(name.dropFirst("sealbox-api-tests.".count)), kill(pid, 0) != 0 && errno == ESRCH {
                try? fm.removeItem(atPath: tmp + "/" + name)
            }
        }
        return tmp + "/sealbox-api-tests.\(getpid())"
    }()

    /// A fresh state directory of its own for one test's server.
    static func temporaryLayout() throws -> StateLayout {
        let dir = stateRoot + "/" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        return StateLayout(stateDirectory: dir)
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
