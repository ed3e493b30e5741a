import Foundation
import Glibc
import SealboxBase
import Synchronization

/// Writes protocol messages to a file descriptor (stdout) from one dedicated thread, in the
/// order they were handed over, each message whole. `send` returns once its message is
/// written, so a client that stops reading holds back new requests instead of growing a
/// queue. SIGPIPE is blocked on that thread only: a client that closed its end makes writes
/// fail with EPIPE instead of killing sealbox (ignoring SIGPIPE process-wide would leak into
/// every jail and tool process, which inherit ignored dispositions across execve).
final class MCPOutput: Sendable {
    private struct Pending {
        var bytes: Data
        var done: @Sendable () -> Void
    }

    private struct State {
        var queue: [Pending] = []
        var closed = false
        var broken = false
    }

    private let fd: Int32
    private let state = Mutex(State())
    private let wake = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)

    init(fd: Int32) {
        self.fd = fd
        let thread = Thread { [self] in self.writeLoop() }
        thread.name = "sealbox-mcp-stdout"
        thread.start()
    }

    /// Writes one message; returns when it is written (or the client is gone).
    func send(_ bytes: Data) async {
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            enqueue(bytes) { done.resume() }
        }
    }

    /// The same from a thread of its own (the stdin reader), which waits for the write.
    func sendBlocking(_ bytes: Data) {
        let written = DispatchSemaphore(value: 0)
        enqueue(bytes) { written.signal() }
        written.wait()
    }

    private func enqueue(_ bytes: Data, done: @escaping @Sendable () -> Void) {
        let accepted = state.withLock { state -> Bool in
            guard !state.closed, !state.broken else { return false }
            state.queue.append(Pending(bytes: bytes, done: done))
            return true
        }
        if accepted { wake.signal() } else { done() }
    }

    /// Writes what is queued, then stops the thread.
    func close() {
        state.withLock { $0.closed = true }
        wake.signal()
        finished.wait()
    }

    private func writeLoop() {
        var block = sigset_t()
        sigemptyset(&block)
        sigaddset(&block, SIGPIPE)
        pthread_sigmask(SIG_BLOCK, &block, nil)
        while true {
            wake.wait()
            while let next = state.withLock({ $0.queue.isEmpty ? nil : $0.queue.removeFirst() }) {
                if !state.withLock({ $0.broken }) && !writeAll(next.bytes) {
                    state.withLock { $0.broken = true }
                    FileHandle.standardError.write(Data("sealbox mcp: stdout is closed (\(String(cString: strerror(errno)))); responses are dropped\n".utf8))
                }
                next.done()
            }
            if state.withLock({ $0.closed && $0.queue.isEmpty }) { break }
        }
        finished.signal()
    }

    private func writeAll(_ data: Data) -> Bool {
        data.withUnsafeBytes { raw -> Bool in
            guard var pointer = raw.baseAddress else { return true }
            var left = raw.count
            while left > 0 {
                let n = Interrupted.retry { write(fd, pointer, left) }
                if n < 0 { return false }
                pointer += n
                left -= n
            }
            return true
        }
    }
}
