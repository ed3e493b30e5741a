/// Bounded concurrency with a bounded queue, shared fairly between tenants: at most
/// `maxRunning` runs execute (at most `maxRunningPerTenant` of one tenant), at most
/// `maxQueued` wait (at most `maxQueuedPerTenant` of one tenant), and a request beyond those is
/// refused at once instead of piling up. When a slot frees, the waiting run of the tenant with
/// the fewest runs executing goes next (the earliest among equals), so one tenant's backlog
/// never stands between another tenant and the next free slot. A waiting run whose caller
/// went away is dropped before it starts (`abandon`).
public actor RunAdmission {
    public let maxRunning: Int
    public let maxQueued: Int
    public let maxRunningPerTenant: Int
    public let maxQueuedPerTenant: Int
    private var running = 0
    private var runningByTenant: [String: Int] = [:]
    private var waiting: [Waiter] = []
    private var nextTicket: UInt64 = 0
    /// When each tenant last had a run admitted (a counter), for round-robin among equals.
    private var lastAdmitted: [String: UInt64] = [:]
    private var admissions: UInt64 = 0
    private var abandonedCount = 0
    /// Tickets issued whose `acquire` has not begun; of those, the ones abandoned already
    /// (the client was gone before its run reached the queue).
    private var pendingTickets = Set<UInt64>()
    private var abandonedEarly = Set<UInt64>()
    /// Set when the service starts shutting down: no new run is admitted.
    public private(set) var closed = false

    private struct Waiter {
        var ticket: UInt64
        var tenant: String
        var continuation: CheckedContinuation<Outcome, Never>
    }

    private enum Outcome { case admitted, closed, abandoned }

    public init(maxRunning: Int, maxQueued: Int, maxRunningPerTenant: Int? = nil, maxQueuedPerTenant: Int? = nil) {
        self.maxRunning = max(1, maxRunning)
        self.maxQueued = max(0, maxQueued)
        self.maxRunningPerTenant = min(self.maxRunning, max(1, maxRunningPerTenant ?? maxRunning))
        self.maxQueuedPerTenant = min(self.maxQueued, max(0, maxQueuedPerTenant ?? maxQueued))
    }

    public struct Busy: Error, Sendable {
        public let running: Int
        public let queued: Int
        /// Refused because the service is shutting down, not because it is full.
        public var shuttingDown = false
        /// Refused because the caller's tenant holds its whole share of the queue.
        public var tenantShare = false
        /// The caller went away while the run waited; it never started.
        public var abandoned = false
    }

    /// A number that names one waiting request, so that `abandon` can drop it.
    /// Every ticket must be passed to `acquire` (which consumes it).
    public func ticket() -> UInt64 {
        nextTicket += 1
        pendingTickets.insert(nextTicket)
        return nextTicket
    }

    /// Takes a slot for `tenant` when one is free right now, without waiting.
    public func tryAcquire(tenant: String = "") -> Bool {
        guard !closed, running < maxRunning, runningByTenant[tenant, default: 0] < maxRunningPerTenant else { return false }
        take(tenant)
        return true
    }

    /// Takes a slot for `tenant`, waiting in the queue if need be; throws `Busy` when the
    /// queue (or the tenant's share of it) is full, the service is shutting down, or the
    /// wait was abandoned. The caller must `release(tenant:)` once its jail is gone.
    public func acquire(tenant: String = "", ticket given: UInt64? = nil) async throws(Busy) {
        if let given { pendingTickets.remove(given) }
        if let given, abandonedEarly.remove(given) != nil {
            abandonedCount += 1
            throw Busy(running: running, queued: waiting.count, abandoned: true)
        }
        guard !closed else { throw Busy(running: running, queued: waiting.count, shuttingDown: true) }
        if running < maxRunning, runningByTenant[tenant, default: 0] < maxRunningPerTenant {
            take(tenant)
            return
        }
        guard waiting.count < maxQueued else { throw Busy(running: running, queued: waiting.count) }
        guard waiting.count(where: { $0.tenant == tenant }) < maxQueuedPerTenant else {
            throw Busy(running: running, queued: waiting.count, tenantShare: true)
        }
        let ticket: UInt64
        if let given {
            ticket = given
        } else {
            nextTicket += 1
            ticket = nextTicket
        }
        // The slot is handed over by `release` (which counts it for the tenant then).
        let outcome = await withCheckedContinuation { waiting.append(Waiter(ticket: ticket, tenant: tenant, continuation: $0)) }
        switch outcome {
        case .admitted: return
        case .closed: throw Busy(running: running, queued: 0, shuttingDown: true)
        case .abandoned: throw Busy(running: running, queued: waiting.count, abandoned: true)
        }
    }

    public func release(tenant: String = "") {
        running -= 1
        runningByTenant[tenant, default: 0] -= 1
        if runningByTenant[tenant] ?? 0 <= 0 { runningByTenant[tenant] = nil }
        admitNext()
    }

    /// Drops a waiting request (its caller went away). Nothing happens when it is not waiting
    /// (it already started, or was never queued).
    public func abandon(_ ticket: UInt64) {
        guard let index = waiting.firstIndex(where: { $0.ticket == ticket }) else {
            // Not waiting yet: its acquire refuses it when it comes. A ticket whose acquire
            // already ran (it got its slot, or was refused) is not pending: nothing to do.
            if pendingTickets.contains(ticket) { abandonedEarly.insert(ticket) }
            return
        }
        let waiter = waiting.remove(at: index)
        abandonedCount += 1
        waiter.continuation.resume(returning: .abandoned)
    }

    /// Admits nothing more; runs still queued are refused (they never started).
    public func close() {
        closed = true
        let refused = waiting
        waiting.removeAll()
        for waiter in refused { waiter.continuation.resume(returning: .closed) }
    }

    public var load: (running: Int, queued: Int) { (running, waiting.count) }

    /// Waiting runs dropped because their caller went away, since the start.
    public var abandoned: Int { abandonedCount }

    private func take(_ tenant: String) {
        running += 1
        runningByTenant[tenant, default: 0] += 1
        admissions += 1
        lastAdmitted[tenant] = admissions
        // The table keeps tenants with runs or waiters only, so it stays small.
        if lastAdmitted.count > 4 * (maxRunning + maxQueued) {
            let active = Set(waiting.map(\.tenant)).union(runningByTenant.keys)
            lastAdmitted = lastAdmitted.filter { active.contains($0.key) }
        }
    }

    /// The next waiter: of the tenants below their share, the one with the fewest runs
    /// executing, then the one whose last admission is oldest (round-robin), then the
    /// earliest of that tenant's waiters.
    private func admitNext() {
        while running < maxRunning {
            var best: Int?
            for (index, waiter) in waiting.enumerated() {
                let load = runningByTenant[waiter.tenant, default: 0]
                guard load < maxRunningPerTenant else { continue }
                if let current = best {
                    let other = waiting[current].tenant
                    let otherLoad = runningByTenant[other, default: 0]
                    if otherLoad < load { continue }
                    if otherLoad == load && lastAdmitted[other, default: 0] <= lastAdmitted[waiter.tenant, default: 0] { continue }
                }
                best = index
            }
            guard let best else { return }
            let waiter = waiting.remove(at: best)
            take(waiter.tenant)
            waiter.continuation.resume(returning: .admitted)
        }
    }
}
