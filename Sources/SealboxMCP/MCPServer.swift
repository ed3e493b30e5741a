import Foundation
import Glibc
import SealboxBase
import SealboxJail
import SealboxLedger
import SealboxRuntime
import MCP
import SealboxServer
import Synchronization

/// `sealbox mcp`: a Model Context Protocol server on stdio, on the official SDK's `Server`.
/// Messages are JSON-RPC 2.0, one per line, on stdin and stdout (MCP's stdio transport,
/// `StdioLineTransport`); stdout carries nothing else, and logs go to stderr. Requests are
/// handled concurrently (up to `maxInFlightRequests` read and unanswered; runs beyond
/// `maxConcurrentRuns` wait for a slot), each response carrying its request's id. End of input
/// ends the session once every request read is answered.
public struct MCPServer: Sendable {
    public let configuration: MCPConfiguration
    let methods: MCPMethods
    /// The session's sandboxes: ended when the session ends.
    let sandboxes: SandboxRegistry

    /// `executor` is called on the first run that needs a jail (a replayed step needs none),
    /// and its executor is kept for the server's life.
    public init(configuration: MCPConfiguration, dataDirectory: String, executor: @escaping @Sendable () throws(JailError) -> Executor) {
        self.configuration = configuration
        let cache = ExecutorCache(make: executor)
        let pipeline = RunPipeline(checkpointsPath: configuration.layout.checkpointsPath, dataDirectory: dataDirectory) { () throws(JailError) in
            try cache.get()
        }
        let runs = RunService(
            admission: RunAdmission(maxRunning: configuration.maxConcurrentRuns, maxQueued: configuration.maxInFlightRequests),
            pipeline: pipeline, profilesDirectory: configuration.profilesDirectory,
            broker: .perRun(configPath: configuration.brokerConfigPath, controlSocket: configuration.brokerControlSocket,
                            ledgerPath: configuration.layout.ledgerPath))
        let sandboxes = SandboxRegistry(limits: SandboxLimits())
        self.sandboxes = sandboxes
        let service = SandboxService(registry: sandboxes, executor: { () throws(JailError) in try cache.get() }, runs: runs,
                                     defaultLimits: configuration.defaultLimits, maxLimits: configuration.maxLimits, liveJails: runs.liveJails)
        methods = MCPMethods.sealbox(backend: LocalBackend(configuration: configuration, runs: runs, sandboxes: service))
    }

    /// Serves until end of input on `input`; writes responses to `output`.
    public func run(input: Int32 = STDIN_FILENO, output: Int32 = STDOUT_FILENO) async {
        let out = MCPOutput(fd: output)
        // A slot per request read and not yet answered: the reader waits for one before reading
        // the next line, so a client that floods the server is slowed down, not buffered.
        let slots = DispatchSemaphore(value: max(1, configuration.maxInFlightRequests))
        let (changes, changed) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let calls = MCPCalls {
            slots.signal()
            changed.yield()
        }
        let gate = MCPGate(calls: calls)
        let reading = ReadingFlag()
        let transport = StdioLineTransport(input: input, maxLineBytes: configuration.maxLineBytes, gate: gate, output: out, slots: slots) {
            reading.end()
            changed.yield()
        }
        let server: Server
        do {
            server = try await MCPConnection.start(methods: methods, gate: gate, transport: transport)
        } catch {
            MCPLog.write("cannot start the MCP server: \(error)")
            out.close()
            return
        }
        transport.open()
        // End of input: wait until every request read has its answer (or was cancelled).
        var waits = changes.makeAsyncIterator()
        while reading.isReading || calls.inFlight > 0 {
            guard await waits.next() != nil else { break }
        }
        await server.stop()
        sandboxes.shutdown(reason: "the MCP session ended")
        out.close()
    }
}

/// Whether stdin is still being read.
final class ReadingFlag: Sendable {
    private let state = Mutex(true)
    var isReading: Bool { state.withLock { $0 } }
    func end() { state.withLock { $0 = false } }
}

/// The executor, made once on first use; a failure is not kept, so a host fixed later works.
final class ExecutorCache: Sendable {
    private let make: @Sendable () throws(JailError) -> Executor
    private let cached = Mutex<Executor?>(nil)

    init(make: @escaping @Sendable () throws(JailError) -> Executor) {
        self.make = make
    }

    func get() throws(JailError) -> Executor {
        let result: Result<Executor, JailError> = cached.withLock { cached in
            if let cached { return .success(cached) }
            do throws(JailError) {
                let made = try make()
                cached = made
                return .success(made)
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }
}

/// Log lines of `sealbox mcp`: stderr only, stdout is the protocol's.
enum MCPLog {
    static func write(_ message: String) {
        FileHandle.standardError.write(Data("sealbox mcp: \(message)\n".utf8))
    }
}
