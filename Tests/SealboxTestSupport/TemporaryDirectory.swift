import Foundation
import Glibc

/// Test directories: made unique and short under /tmp (broker sockets live in them, and a
/// socket path has 108 bytes), removed by the test that made them.
///
///     let dir = try TemporaryDirectory.make("crash", subdirectories: ["state"])
///     defer { TemporaryDirectory.remove(dir) }
public enum TemporaryDirectory {
    static let prefix = "/tmp/sealbox-"

    /// A new directory /tmp/sealbox-LABEL-XXXXXX (mode 0755: jailed and dropped-privilege
    /// processes read what the test put there), with the given subdirectories.
    public static func make(_ label: String, subdirectories: [String] = []) throws -> String {
        var template = Array((prefix + label + "-XXXXXX").utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard made != nil else { throw CLIError("mkdtemp \(prefix)\(label)-XXXXXX: \(String(cString: strerror(errno)))") }
        let path = String(cString: template)
        guard chmod(path, 0o755) == 0 else { throw CLIError("chmod \(path): \(String(cString: strerror(errno)))") }
        for sub in subdirectories {
            try FileManager.default.createDirectory(atPath: path + "/" + sub, withIntermediateDirectories: true)
        }
        return path
    }

    /// Removes a directory `make` made (anything else is left alone).
    public static func remove(_ path: String) {
        guard path.hasPrefix(prefix), !path.dropFirst(prefix.count).contains("/") else { return }
        try? FileManager.default.removeItem(atPath: path)
    }
}
