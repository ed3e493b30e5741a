import Foundation
import Glibc
import Testing

/// Runs the built `sealbox` binary the way a user does and checks the DESIGN.md contract:
/// flags, exit codes, the --json object.
public enum CLI {
    public static let buildDirectory: String = {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var url = URL(fileURLWithPath: exe).deletingLastPathComponent()
        while url.lastPathComponent.hasSuffix(".xctest") { url.deleteLastPathComponent() }
        return url.path
    }()

    public struct Output: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
        public init(status: Int32, stdout: String, stderr: String) {
            self.status = status
            self.stdout = stdout
            self.stderr = stderr
        }
        public func json() throws -> [String: Any] {
            try #require(JSONSerialization.jsonObject(with: Data(stdout.utf8)) as? [String: Any])
        }
    }

    /// Async, on a thread of its own (`offPool`): a test waiting for a child process must not
    /// hold one of the test pool's few threads.
    public static func run(_ arguments: [String], stdin: Data? = nil) async throws -> Output {
        try await offPool { try runBlocking(arguments, stdin: stdin) }
    }

    /// `stdin`: bytes piped to sealbox (nil: /dev/null).
    public static func runBlocking(_ arguments: [String], stdin: Data? = nil) throws -> Output {
        let binary = buildDirectory + "/sealbox"
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw CLIError("sealbox not built at \(binary): run `swift build` first (scripts/test.sh does)")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        // sealbox run passes a piped stdin through (`echo hi | sealbox run`): a test's runs
        // read /dev/null, whatever the test runner's own stdin is.
        let input = Pipe()
        process.standardInput = stdin == nil ? FileHandle.nullDevice : input
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        if let stdin {
            let writer = input.fileHandleForWriting
            Thread {
                writer.write(stdin)
                try? writer.close()
            }.start()
        }
        // Read both before waiting so a full pipe cannot stall the child.
        let errData = LockedData()
        let errReader = Thread { errData.set(err.fileHandleForReading.readDataToEndOfFile()) }
        errReader.start()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        while errData.get() == nil { usleep(1000) }
        return Output(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errData.get()!, as: UTF8.self))
    }
}

public final class LockedData: @unchecked Sendable {  // value guarded by lock
    private let lock = NSLock()
    private var value: Data?
    public init() {}
    public func set(_ data: Data) { lock.withLock { value = data } }
    public func get() -> Data? { lock.withLock { value } }
}

public struct CLIError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

extension Trait where Self == ConditionTrait {
    public static var needsRoot: Self {
        .enabled(if: geteuid() == 0, "needs root: jails map uid 1000 to host nobody and create cgroups")
    }
}

