import Foundation
import Glibc
import Testing

/// The checkout and what `swift build` made in it: every test target finds sealbox, the probe
/// and the repository's data (profiles/, rootfs/etc, client/) here.
public enum Binaries {
    /// Tests/SealboxTestSupport/Binaries.swift -> the checkout.
    public static let repoRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// Directory of the running test binary; `swift build` puts sealbox, sealbox-spawner and
    /// sealbox-probe beside it.
    public static let buildDirectory: String = {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var url = URL(fileURLWithPath: exe).deletingLastPathComponent()
        // The .xctest bundle may be a directory on some layouts.
        while url.lastPathComponent.hasSuffix(".xctest") || url.lastPathComponent == "Contents" || url.lastPathComponent == "MacOS" {
            url.deleteLastPathComponent()
        }
        return url.path
    }()

    public static var sealbox: String { buildDirectory + "/sealbox" }

    public static var probe: String { buildDirectory + "/sealbox-probe" }

    /// The environment the end-to-end tests give sealbox: the checkout's data directory.
    public static var dataEnvironment: [String: String] { ["SEALBOX_DATA_DIR": repoRoot] }

    /// Runs `sealbox ARGS` with the checkout's data directory (stdin /dev/null), waiting on a
    /// thread of its own: a test blocking one of the pool's two threads on a sealbox whose jail
    /// calls a world served in this process stalled every world here (calls timed out after
    /// 20 s in a loaded suite).
    public static func run(_ arguments: [String], environment: [String: String] = [:]) async throws -> CLI.Output {
        try await offPool { try runBlocking(arguments, environment: environment) }
    }

    /// `run` for a caller on a thread of its own (never the test pool's: it blocks).
    public static func runBlocking(_ arguments: [String], environment: [String: String] = [:]) throws -> CLI.Output {
        try CLI.runBlocking(arguments, environment: dataEnvironment.merging(environment) { $1 })
    }
}

extension Trait where Self == ConditionTrait {
    /// Jails need root here (uid 1000 maps to host nobody, cgroups are created). CI runs as
    /// root, so these run there (scripts/test.sh refuses to skip them); a skip outside root
    /// says why.
    public static var needsRoot: Self {
        .enabled(if: geteuid() == 0, "needs root: jails map uid 1000 to host nobody and create cgroups")
    }
}
