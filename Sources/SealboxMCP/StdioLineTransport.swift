import Foundation
import Logging
import MCP

/// MCP's stdio transport as sealbox speaks it, for the SDK's `Server`: one JSON-RPC message
/// per line on a file descriptor (stdin), answers on another (stdout, through `MCPOutput`).
/// Lines come from `MCPLineReader`, bounded: a line over `maxLineBytes` is answered with an
/// error and skipped, never buffered whole. Each line passes `MCPGate` first.
///
/// Backpressure: the reader takes a slot before reading each line and a request gives it back
/// when it is answered (or cancelled), so at most `maxInFlight` requests are read and not yet
/// answered; beyond that the reader stops reading and the client's writes block.
actor StdioLineTransport: Transport {
    nonisolated let logger = MCPConnection.quietLogger

    private let input: Int32
    private let maxLineBytes: Int
    private let gate: MCPGate
    private let output: MCPOutput
    private let slots: DispatchSemaphore
    private let incoming: AsyncThrowingStream<Data, any Swift.Error>
    private let continuation: AsyncThrowingStream<Data, any Swift.Error>.Continuation
    private let ended: @Sendable () -> Void

    /// `slots`: signalled by the gate's `MCPCalls` when a request ends. `ended`: called once
    /// stdin reached its end (or failed) and every line read was handed on.
    init(input: Int32, maxLineBytes: Int, gate: MCPGate, output: MCPOutput, slots: DispatchSemaphore, ended: @escaping @Sendable () -> Void) {
        self.input = input
        self.maxLineBytes = maxLineBytes
        self.gate = gate
        self.output = output
        self.slots = slots
        self.ended = ended
        (incoming, continuation) = AsyncThrowingStream<Data, any Swift.Error>.makeStream()
    }

    func connect() async throws {}

    /// Starts reading stdin: only once the server has every handler registered.
    nonisolated func open() {
        let reader = Thread { [input, maxLineBytes, gate, output, slots, continuation, ended] in
            let lines = MCPLineReader(fd: input, maxLineBytes: maxLineBytes)
            reading: while true {
                slots.wait()
                switch lines.next() {
                case .endOfInput:
                    slots.signal()
                    break reading
                case .tooLong(let bytes):
                    MCPLog.write("a message of \(bytes) bytes was skipped: the limit is \(maxLineBytes) bytes")
                    output.sendBlocking(JSONRPCOutgoing.error(id: nil, .invalidRequest("the message is \(bytes) bytes, more than the limit of \(maxLineBytes) bytes")))
                    slots.signal()
                case .line(let line):
                    switch gate.inbound(line) {
                    case .answer(let bytes):
                        output.sendBlocking(bytes)
                        slots.signal()
                    case .ignore:
                        slots.signal()
                    case .forward(let bytes, let request):
                        continuation.yield(bytes)
                        // A request keeps its slot until it is answered (MCPCalls' onEnd).
                        if request == nil { slots.signal() }
                    }
                }
            }
            continuation.finish()
            ended()
        }
        reader.name = "sealbox-mcp-stdin"
        reader.start()
    }

    func disconnect() async {
        continuation.finish()
    }

    func send(_ data: Data) async throws {
        // The SDK's encoder escapes newlines inside strings: one message is one line.
        await gate.outbound(data) { bytes in await output.send(bytes + Data("\n".utf8)) }
    }

    func receive() -> AsyncThrowingStream<Data, any Swift.Error> {
        incoming
    }
}
