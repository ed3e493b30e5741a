import Foundation
import Glibc
import Testing

/// Runs the built `sealbox` binary the way a user does and checks the DESIGN.md contract:
/// flags, exit codes, the --json object.
public enum CLI {
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
    public static func run(_ arguments: [String], stdin: Data? = nil, environment: [String: String] = [:]) async throws -> Output {
        try await offPool { try runBlocking(arguments, stdin: stdin, environment: environment) }
    }

    /// `stdin`: bytes piped to sealbox (nil: /dev/null). `environment`: added to the test
    /// process's own.
    public static func runBlocking(_ arguments: [String], stdin: Data? = nil, environment: [String: String] = [:]) throws -> Output {
        let binary = Binaries.sealbox
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw CLIError("sealbox not built at \(binary): run `swift build` first (scripts/test.sh does)")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
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
        let errReader = err.fileHandleForReading
        let errData = Joinable { errReader.readDataToEndOfFile() }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Output(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errData.join(), as: UTF8.self))
    }
}

public struct CLIError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

