import Foundation
import Glibc
import SealboxProfiles
import SealboxTestSupport
import Testing
@testable import SealboxJail

/// Shared fixture: one Executor over the checkout's profiles/ and rootfs/, plus the build
/// products the tests copy into jails.
enum Fixture {
    static let executor: Result<Executor, JailError> = Result { () throws(JailError) in
        try Executor(configuration: .init(dataDirectory: Binaries.repoRoot))
    }

    static func jail() throws -> Executor { try executor.get() }

    /// The try-syscall probe binary, to seed into /work.
    static func probe() throws -> SeedFile {
        let path = Binaries.probe
        guard let data = FileManager.default.contents(atPath: path) else {
            throw FixtureError("sealbox-probe not found at \(path): run `swift build` before `swift test` (scripts/test.sh does)")
        }
        return SeedFile(name: "probe", contents: [UInt8](data), executable: true)
    }

    static func run(_ command: [String], limits: Limits = Limits(), files: [SeedFile] = [],
                    environment: [(name: String, value: String)] = [], profile: ProfileReference = "default",
                    stdin: StdinSource = .null, rootfs: RootfsSource = .host, binds: [BindMount] = []) async throws -> JailResult {
        // Executor.run blocks a thread of its own, never the test pool's few threads.
        try await jail().run(JailSpec(command: command, environment: environment, files: files, stdin: stdin,
                                        limits: limits, profile: profile, rootfs: rootfs, binds: binds))
    }

    static func python(_ code: String, limits: Limits = Limits(), files: [SeedFile] = []) async throws -> JailResult {
        try await run(["python3", "/work/main.py"], limits: limits, files: files + [SeedFile(name: "main.py", contents: Array(code.utf8))])
    }

    static func sh(_ script: String, limits: Limits = Limits()) async throws -> JailResult {
        try await run(["/bin/sh", "-c", script], limits: limits)
    }

    /// Host processes whose command line contains `marker`.
    static func hostProcesses(containing marker: String) -> [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { pid -> String? in
            guard Int(pid) != nil, let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return nil }
            let cmdline = String(decoding: data.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
            return cmdline.contains(marker) ? "\(pid): \(cmdline)" : nil
        }
    }
}

struct FixtureError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
