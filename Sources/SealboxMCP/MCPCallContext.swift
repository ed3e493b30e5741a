import MCP
import SealboxJail
import Synchronization

/// What a tool call knows of its request beyond the arguments: how to learn that the client
/// cancelled it, and where its progress goes (when the client asked for progress).
struct MCPCallContext: Sendable {
    let token: String
    let calls: MCPCalls
    /// Set when the request's `_meta.progressToken` is a string or an integer.
    let progressToken: ProgressToken?
    let notify: @Sendable (ProgressNotification.Parameters) async -> Void

    /// Runs `action` when the client cancels this call (at once if it already has).
    func onCancel(_ action: @escaping @Sendable () -> Void) {
        calls.onCancel(token, action)
    }

    var isCancelled: Bool { calls.isCancelled(token) }

    /// A reporter of stdout as progress notifications, or nil when the client gave no token.
    func progress() -> MCPProgress? {
        progressToken.map { MCPProgress(token: $0, notify: notify) }
    }
}

/// stdout of a running jail as MCP progress (`notifications/progress`): `progress` is the
/// number of stdout bytes so far, `message` the newest of them (at most `messageBytes`, as
/// text). Coalesced: at most one notification per `interval`, whatever the program writes, so
/// a program printing a byte at a time costs a handful of messages a second, never one per
/// write. The supervisor thread that observes the output never waits for the client.
final class MCPProgress: Sendable {
    static let interval: Duration = .milliseconds(200)
    static let messageBytes = 1024

    private struct Tally {
        var bytes = 0
        var tail: [UInt8] = []
        var dirty = false
    }

    /// The counts, shared with the sending task (a Mutex cannot be captured, a class can).
    private final class Shared: Sendable {
        let tally = Mutex(Tally())
    }

    private let shared: Shared
    private let wake: AsyncStream<Void>.Continuation
    private let sender: Task<Void, Never>

    init(token: ProgressToken, notify: @escaping @Sendable (ProgressNotification.Parameters) async -> Void) {
        let (signals, wake) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        self.wake = wake
        let shared = Shared()
        self.shared = shared
        sender = Task {
            for await _ in signals {
                let snapshot = shared.tally.withLock { tally -> (Int, [UInt8])? in
                    guard tally.dirty else { return nil }
                    tally.dirty = false
                    return (tally.bytes, tally.tail)
                }
                guard let snapshot else { continue }
                await notify(ProgressNotification.Parameters(
                    progressToken: token, progress: Double(snapshot.0), message: String(decoding: snapshot.1, as: UTF8.self)))
                // The coalescing window: what arrives meanwhile goes out in one notification.
                try? await Task.sleep(for: Self.interval)
            }
        }
    }

    /// The run's output observer (stdout only: stderr is not progress).
    var observer: OutputObserver {
        let shared = shared
        let wake = wake
        return { chunk in
            guard chunk.stream == .stdout, !chunk.bytes.isEmpty else { return }
            shared.tally.withLock { tally in
                tally.bytes += chunk.bytes.count
                tally.tail.append(contentsOf: chunk.bytes.suffix(Self.messageBytes))
                if tally.tail.count > Self.messageBytes { tally.tail.removeFirst(tally.tail.count - Self.messageBytes) }
                tally.dirty = true
            }
            wake.yield()
        }
    }

    /// Stops reporting: the result itself follows.
    func finish() async {
        wake.finish()
        sender.cancel()
        await sender.value
    }
}
