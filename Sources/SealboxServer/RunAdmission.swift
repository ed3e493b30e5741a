/// Bounded concurrency with a bounded queue: at most `maxRunning` runs execute, at most
/// `maxQueued` wait (first come, first served), and a request beyond both is refused at once
/// instead of piling up.
public actor RunAdmission {
    public let maxRunning: Int
    public let maxQueued: Int
    private var running = 0
    private var waiting: [CheckedContinuation<Bool, Never>] = []
    /// Set when the service starts shutting down: no new run is admitted.
    public private(set) var closed = false

    public init(maxRunning: Int, maxQueued: Int) {
        self.maxRunning = max(1, maxRunning)
        self.maxQueued = max(0, maxQueued)
    }

    public struct Busy: Error, Sendable {
        public let running: Int
        public let queued: Int
        /// Refused because the service is shutting down, not because it is full.
        public var shuttingDown = false
    }

    /// Takes a slot, waiting in the queue if need be; throws `Busy` when the queue is full or
    /// the service is shutting down.
    public func acquire() async throws(Busy) {
        guard !closed else { throw Busy(running: running, queued: waiting.count, shuttingDown: true) }
        if running < maxRunning {
            running += 1
            return
        }
        guard waiting.count < maxQueued else { throw Busy(running: running, queued: waiting.count) }
        // The slot is handed over by `release`, which does not decrement `running` then.
        let admitted = await withCheckedContinuation { waiting.append($0) }
        guard admitted else { throw Busy(running: running, queued: 0, shuttingDown: true) }
    }

    public func release() {
        if waiting.isEmpty {
            running -= 1
        } else {
            waiting.removeFirst().resume(returning: true)
        }
    }

    /// Admits nothing more; runs still queued are refused (they never started).
    public func close() {
        closed = true
        let refused = waiting
        waiting.removeAll()
        for continuation in refused { continuation.resume(returning: false) }
    }

    public var load: (running: Int, queued: Int) { (running, waiting.count) }
}
