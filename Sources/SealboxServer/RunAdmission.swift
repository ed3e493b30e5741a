/// Bounded concurrency with a bounded queue: at most `maxRunning` runs execute, at most
/// `maxQueued` wait (first come, first served), and a request beyond both is refused at once
/// instead of piling up.
public actor RunAdmission {
    public let maxRunning: Int
    public let maxQueued: Int
    private var running = 0
    private var waiting: [CheckedContinuation<Void, Never>] = []

    public init(maxRunning: Int, maxQueued: Int) {
        self.maxRunning = max(1, maxRunning)
        self.maxQueued = max(0, maxQueued)
    }

    public struct Busy: Error, Sendable {
        public let running: Int
        public let queued: Int
    }

    /// Takes a slot, waiting in the queue if need be; throws `Busy` when the queue is full.
    public func acquire() async throws(Busy) {
        if running < maxRunning {
            running += 1
            return
        }
        guard waiting.count < maxQueued else { throw Busy(running: running, queued: waiting.count) }
        // The slot is handed over by `release`, which does not decrement `running` then.
        await withCheckedContinuation { waiting.append($0) }
    }

    public func release() {
        if waiting.isEmpty {
            running -= 1
        } else {
            waiting.removeFirst().resume()
        }
    }

    public var load: (running: Int, queued: Int) { (running, waiting.count) }
}
