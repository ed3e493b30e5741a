import Foundation
import Synchronization

/// Turns at the broker's processor, shared fairly between tenants.
///
/// Rate limits bound how many calls a run may start per second, but not how they share the
/// processor once started: every connection's call is a task on the same small cooperative
/// pool, served in arrival order, so one tenant with 64 calls in flight put another tenant's
/// single call behind all 64 (a victim's median went from 16 ms to 750 ms on a loaded machine,
/// its tail to 1.4 s, with the flood well inside its rate). A call now holds a turn while it
/// computes — verifying its token, deciding, reading the log, a fast world call — and gives it
/// back while it waits on something else: a slow world, and the effect log's durable write
/// while its tenant is alone (`committing`). Decoding the request line comes before: the
/// connection's byte and line rates bound it.
///
/// At most `count` calls compute at once, and while several tenants have calls in the engine
/// (`enter`/`leave`) none holds more than its share, `count` divided by the number of those
/// tenants, rounded up: a tenant with one call in flight finds a turn free for it however many
/// calls another tenant has. Waiting calls are served round-robin between tenants, each
/// tenant's oldest first.
///
/// A turn is never held while waiting for another turn or for a call's key lock (the holder
/// of that lock may be waiting for a turn itself).
public final class FairTurns: Sendable {
    private struct State {
        var free: Int
        let linger: Duration
        /// Turns held, per tenant.
        var held: [String: Int] = [:]
        /// Calls in the engine, per tenant: who shares the turns.
        var active: [String: Int] = [:]
        /// When tenants without calls in the engine had their last one leave: they still share
        /// the turns for `linger`.
        var lingering: [String: ContinuousClock.Instant] = [:]
        /// Waiting calls per tenant, oldest first.
        var waiting: [String: [CheckedContinuation<Void, Never>]] = [:]
        /// Tenants with waiting calls, in the order they are served next.
        var rotation: [String] = []
        /// A wake-up is set for when the oldest lingering share ends.
        var expiryScheduled = false

        /// Turns one tenant may hold while `active.count` tenants have calls in the engine
        /// (or had, within `linger`).
        mutating func share(of count: Int) -> Int {
            let tenants = max(1, tenantsSharing)
            return (count + tenants - 1) / tenants
        }

        /// Tenants with calls in the engine or lingering.
        var tenantsSharing: Int {
            mutating get {
                if !lingering.isEmpty {
                    let now = ContinuousClock.now
                    lingering = lingering.filter { now - $0.value < linger }
                }
                return active.count + lingering.count
            }
        }

        /// Hands free turns to waiting calls of tenants below their share; returns the calls
        /// to resume (outside the lock).
        mutating func dispatch(count: Int) -> [CheckedContinuation<Void, Never>] {
            var granted: [CheckedContinuation<Void, Never>] = []
            let limit = share(of: count)
            while free > 0, let index = rotation.firstIndex(where: { held[$0, default: 0] < limit }) {
                let tenant = rotation.remove(at: index)
                var queue = waiting[tenant] ?? []
                granted.append(queue.removeFirst())
                if queue.isEmpty {
                    waiting[tenant] = nil
                } else {
                    waiting[tenant] = queue
                    rotation.append(tenant)
                }
                held[tenant, default: 0] += 1
                free -= 1
            }
            return granted
        }

        /// When a turn is free and calls wait only because a tenant still lingers: the instant
        /// that tenant's share ends (once; nil when no wake-up is needed or one is set).
        mutating func expiryToSchedule() -> ContinuousClock.Instant? {
            guard free > 0, !rotation.isEmpty, !expiryScheduled, let first = lingering.values.min() else { return nil }
            expiryScheduled = true
            return first + linger
        }
    }

    private let state: Mutex<State>
    public let count: Int

    /// `count`: calls computing at once; by default the processors this process may use.
    /// `linger`: how long a tenant whose last call left still keeps its share. A jail calling
    /// in a loop sends its next call a moment after the last answer; without it, another
    /// tenant's calls would take every turn in that moment, and each call would first wait for
    /// one of them to finish.
    public init(count: Int = ProcessInfo.processInfo.activeProcessorCount, linger: Duration = .milliseconds(50)) {
        self.count = max(1, count)
        state = Mutex(State(free: max(1, count), linger: linger))
    }

    /// A call of `tenant` entered the engine: the tenant shares the turns until its last call
    /// leaves.
    public func enter(_ tenant: String) {
        state.withLock { s in
            s.active[tenant, default: 0] += 1
            s.lingering[tenant] = nil
        }
    }

    /// A call of `tenant` left the engine; when it was the tenant's last, the others' shares
    /// grow.
    public func leave(_ tenant: String) {
        let granted = state.withLock { s -> ([CheckedContinuation<Void, Never>], ContinuousClock.Instant?) in
            let left = s.active[tenant, default: 1] - 1
            s.active[tenant] = left > 0 ? left : nil
            if left <= 0 { s.lingering[tenant] = .now }
            return (s.dispatch(count: count), s.expiryToSchedule())
        }
        resume(granted)
    }

    /// Waits for a turn of `tenant`'s.
    public func acquire(_ tenant: String) async {
        let granted = state.withLock { s -> Bool in
            guard s.free > 0, s.rotation.isEmpty, s.held[tenant, default: 0] < s.share(of: count) else { return false }
            s.free -= 1
            s.held[tenant, default: 0] += 1
            return true
        }
        if granted { return }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let granted = state.withLock { s -> ([CheckedContinuation<Void, Never>], ContinuousClock.Instant?) in
                if s.waiting[tenant] == nil { s.rotation.append(tenant) }
                s.waiting[tenant, default: []].append(continuation)
                // A turn may have come back between the two looks.
                return (s.dispatch(count: count), s.expiryToSchedule())
            }
            resume(granted)
        }
    }

    /// Gives `tenant`'s turn back: to the oldest waiting call of the next tenant in the
    /// rotation that is below its share, which then goes to the back of the rotation.
    public func release(_ tenant: String) {
        let granted = state.withLock { s -> ([CheckedContinuation<Void, Never>], ContinuousClock.Instant?) in
            let held = s.held[tenant, default: 1] - 1
            s.held[tenant] = held > 0 ? held : nil
            s.free = min(s.free + 1, count)
            return (s.dispatch(count: count), s.expiryToSchedule())
        }
        resume(granted)
    }

    /// Resumes the calls a dispatch granted turns to; sets the wake-up it asked for.
    private func resume(_ granted: ([CheckedContinuation<Void, Never>], ContinuousClock.Instant?)) {
        for call in granted.0 { call.resume() }
        guard let expiry = granted.1 else { return }
        Task { [self] in
            try? await Task.sleep(until: expiry)
            let more = state.withLock { s -> ([CheckedContinuation<Void, Never>], ContinuousClock.Instant?) in
                s.expiryScheduled = false
                return (s.dispatch(count: count), s.expiryToSchedule())
            }
            resume(more)
        }
    }

    /// Runs `body` with `tenant`'s turn given back, and takes a turn again after it: for waits
    /// that use no processor here.
    public func outside<T, E: Error>(_ tenant: String, _ body: () async throws(E) -> T) async throws(E) -> T {
        release(tenant)
        let result = await Self.outcome(of: body)
        await acquire(tenant)
        return try result.get()
    }

    /// Runs `body`, a wait on the effect log's durable write, giving `tenant`'s turn back for
    /// it only while no other tenant shares the turns. Alone, a tenant's concurrent calls all
    /// reach the writer and share one commit (group commit: 32 callers doubled the effects a
    /// second of one); with others around, what a tenant adds to each commit is bounded by its
    /// share, so another tenant's write does not wait behind a commit of 64 of its records.
    public func committing<T, E: Error>(_ tenant: String, _ body: () async throws(E) -> T) async throws(E) -> T {
        let alone = state.withLock { s in s.tenantsSharing <= 1 }
        if alone { return try await outside(tenant, body) }
        return try await body()
    }

    /// Runs `body` keeping `tenant`'s turn for at most `slice`, then gives it back while `body`
    /// goes on, and takes a turn again after it: for a world call, whose exchange is this
    /// process's work (connection, request, response) while the world answers fast, and only
    /// waiting once it answers slowly. A fast world's call thus computes in its turn like the
    /// rest, and a slow one holds a turn no longer than `slice`.
    public func holding<T, E: Error>(_ tenant: String, atMost slice: Duration, _ body: () async throws(E) -> T) async throws(E) -> T {
        // 0: the call holds the turn; 1: the timer gave it back; 2: the call finished first.
        let handoff = Atomic<Int>(0)
        let timer = Task { [self] in
            guard (try? await Task.sleep(for: slice)) != nil else { return }
            if handoff.compareExchange(expected: 0, desired: 1, ordering: .acquiringAndReleasing).exchanged { release(tenant) }
        }
        let result = await Self.outcome(of: body)
        timer.cancel()
        if !handoff.compareExchange(expected: 0, desired: 2, ordering: .acquiringAndReleasing).exchanged {
            await acquire(tenant)
        }
        return try result.get()
    }

    /// `body`'s value or error, so the turn is taken again before either reaches the caller.
    private static func outcome<T, E: Error>(of body: () async throws(E) -> T) async -> Result<T, E> {
        do throws(E) {
            return .success(try await body())
        } catch {
            return .failure(error)
        }
    }

    /// Calls waiting for a turn, and turns held, per tenant (for tests and metrics).
    public var snapshot: (waiting: [String: Int], held: [String: Int]) {
        state.withLock { s in (s.waiting.mapValues(\.count), s.held) }
    }
}
