import SealboxBase
import Foundation
import Glibc
import SealboxBase
import SealboxJail
import SealboxLedger
import SealboxRuntime
import Synchronization

/// `sealbox mcp`: a Model Context Protocol server on stdio. Messages are JSON-RPC 2.0, one
/// per line, on stdin and stdout (MCP's stdio transport); stdout carries nothing else, and
/// logs go to stderr. Requests are handled concurrently (up to `maxInFlightRequests` read
/// and unanswered; runs beyond `maxConcurrentRuns` wait for a slot), each response carrying
/// its request's id. End of input ends the session once every request read is answered.
public struct MCPServer: Sendable {
    public let configuration: MCPConfiguration
    let methods: MCPMethods
    let cancellations = MCPCancellations()

    /// `executor` is called on the first run that needs a jail (a replayed step needs none),
    /// and its executor is kept for the server's life.
    public init(configuration: MCPConfiguration, dataDirectory: String, executor: @escaping @Sendable () throws(JailError) -> Executor) {
        self.configuration = configuration
        let cache = ExecutorCache(make: executor)
        let pipeline = RunPipeline(checkpointsPath: configuration.layout.checkpointsPath, dataDirectory: dataDirectory) { () throws(JailError) in
            try cache.get()
        }
        let admission = RunAdmission(maxRunning: configuration.maxConcurrentRuns, maxQueued: configuration.maxInFlightRequests)
        methods = MCPMethods(
            tools: [
                RunCodeTool(configuration: configuration, pipeline: pipeline, admission: admission),
                CreateSessionTool(layout: configuration.layout),
                SessionFactsTool(layout: configuration.layout),
                ListEffectsTool(layout: configuration.layout),
            ],
            instructions: """
                sealbox runs code in ephemeral, isolated Linux jails. Use run_code to execute python, node, bash or sh. \
                For a multi-step task, call create_session once and give every run_code its session and a step key: \
                /work carries over between steps, and a step already sealed is answered from its checkpoint instead of running again, \
                so after a crash re-run the plan from the top. session_facts tells what a session has already done and what is unresolved; \
                list_effects lists the tool calls recorded in the effect log.
                """)
    }

    /// Serves until end of input on `input`; writes responses to `output`.
    public func run(input: Int32 = STDIN_FILENO, output: Int32 = STDOUT_FILENO) async {
        let out = MCPOutput(fd: output)
        // A slot per request read and not yet answered: the reader waits for one before reading
        // the next line, so a client that floods the server is slowed down, not buffered.
        let slots = DispatchSemaphore(value: max(1, configuration.maxInFlightRequests))
        let (lines, continuation) = AsyncStream<MCPLineReader.Item>.makeStream()
        let maxLineBytes = configuration.maxLineBytes
        let reader = Thread {
            let reader = MCPLineReader(fd: input, maxLineBytes: maxLineBytes)
            while true {
                slots.wait()
                let item = reader.next()
                continuation.yield(item)
                if case .endOfInput = item { break }
            }
            continuation.finish()
        }
        reader.name = "sealbox-mcp-stdin"
        reader.start()
        await withDiscardingTaskGroup { group in
            for await item in lines {
                switch item {
                case .endOfInput:
                    slots.signal()
                case .tooLong(let bytes):
                    group.addTask {
                        MCPLog.write("a message of \(bytes) bytes was skipped: the limit is \(maxLineBytes) bytes")
                        await out.send(JSONRPCOutgoing.error(id: nil, .invalidRequest("the message is \(bytes) bytes, more than the limit of \(maxLineBytes) bytes")))
                        slots.signal()
                    }
                case .line(let line):
                    // Parsed here, in arrival order, so a request is known to be in flight
                    // before a cancellation of it that arrives later is looked at.
                    let message = JSONRPCIncoming.parse(line)
                    if case .request(let id, _, _) = message { cancellations.begin(id) }
                    group.addTask {
                        if let response = await handle(message) { await out.send(response) }
                        slots.signal()
                    }
                }
            }
        }
        out.close()
    }

    /// The response to one message, or nil for a notification (or a response of the client's).
    func handle(_ message: JSONRPCIncoming) async -> Data? {
        switch message {
        case .invalid(let error, let id):
            return JSONRPCOutgoing.error(id: id, error)
        case .response(let id):
            MCPLog.write("ignoring a response (id \(id.map { "\($0)" } ?? "none")): this server sends no requests")
            return nil
        case .notification(let method, let params):
            // notifications/initialized needs no answer and no state (requests are served
            // before it too, which lets a person try the server with `echo ... | sealbox mcp`).
            if method == "notifications/cancelled", let raw = params?.objectValue?["requestId"], let id = JSONRPCID(raw) {
                cancellations.cancel(id)
            }
            return nil
        case .request(let id, let method, let params):
            let outcome = await methods.handle(method: method, params: params)
            if cancellations.end(id) {
                MCPLog.write("request \(id) (\(method)) was cancelled by the client: its answer is dropped")
                return nil
            }
            switch outcome {
            case .success(let result): return JSONRPCOutgoing.result(id: id, result)
            case .failure(let error): return JSONRPCOutgoing.error(id: id, error)
            }
        }
    }
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
