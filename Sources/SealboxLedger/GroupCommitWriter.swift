import Dispatch
import Foundation
import Synchronization

/// One queued append: what to write, and who waits for it.
enum LedgerOp: Sendable {
    case intent(IntentInput, CallState)
    case completion(CompletionInput)
    case approve(intentSeq: Int64, actor: String)
    case deny(intentSeq: Int64, actor: String, note: String?)
    case resolve(intentSeq: Int64, happened: Bool, actor: String, note: String?)
    case markInterrupted(actor: String)
    case revocation(tokenID: String?, runID: String?, reason: String)
    case session(sessionID: String, root: String)
    case grant(GrantInput)
    /// `brokerID`: only the grants that broker recorded; nil: every live grant.
    case revokeLiveGrants(reason: String, brokerID: String?)
    /// At broker start: the open work of brokers that are gone (see `Ledger.recoverAbandonedWork`).
    case recover(actor: String, probe: any BrokerLeaseProbe)
}

/// What one op wrote: its records (in seq order), the calls `markInterrupted` moved, the family
/// root `session`/`grant` recorded, the grants `revokeLiveGrants` ended; for `recover`, the
/// open calls and live grants it left alone (their broker is live).
struct OpOutcome: Sendable {
    var records: [EffectRecord] = []
    var calls: [CallSummary] = []
    var familyRoot: String?
    var grants: [GrantSummary] = []
    var callsLeftAlone = 0
    var grantsLeftAlone = 0
}

/// Group commit: callers queue ops; one dedicated thread takes everything queued (at most
/// `maxBatch`), writes it in ONE store transaction (`EffectLogStore.write`: the tail lock taken
/// once per batch, one fsync), and only after COMMIT returned resumes every caller of the batch.
///
/// Why a dedicated thread: a durable commit blocks on fsync for milliseconds; blocking a thread of
/// the cooperative pool (2 threads on this machine) for that long would stall every task. Callers
/// only ever suspend on continuations.
///
/// Back-pressure: at most `queueLimit` ops wait in the queue; further callers suspend until the
/// writer takes a batch and hands its slots over to them (FIFO). Nothing is ever dropped, and
/// cancellation of a caller's task does not cancel its write: an intent that may be acted upon is
/// never skipped.
final class GroupCommitWriter: Sendable {
    typealias Answer = Result<OpOutcome, LedgerError>

    private struct Job {
        let op: LedgerOp
        let continuation: CheckedContinuation<Answer, Never>
    }

    private struct State {
        var queue: [Job] = []
        /// Queue slots held by queued ops and by callers that were granted a slot but have not queued yet.
        var slotsInUse = 0
        var slotWaiters: [CheckedContinuation<Void, Never>] = []
        var closed = false
        var stats = WriterStats(commits: 0, jobs: 0, records: 0, largestBatch: 0, failedTransactions: 0)
    }

    let maxBatch: Int
    let queueLimit: Int
    private let store: any EffectLogStore
    private let state = Mutex(State())
    /// Signalled once per queued op and once by `close`; the thread takes everything per wake,
    /// so there are always at least as many signals as queued ops (extra wakes find an empty queue).
    private let wakeup = DispatchSemaphore(value: 0)

    init(store: any EffectLogStore, maxBatch: Int, queueLimit: Int) {
        precondition(maxBatch >= 1 && queueLimit >= 1)
        self.store = store
        self.maxBatch = maxBatch
        self.queueLimit = queueLimit
        let thread = Thread { [self] in self.run() }
        thread.name = "sealbox-ledger-writer"
        thread.start()
    }

    var stats: WriterStats { state.withLock { $0.stats } }

    /// Stops the thread once the queue is empty. Called from `Ledger.deinit`, when no caller can be
    /// waiting any more (each waiting caller holds the Ledger).
    func close() {
        state.withLock { $0.closed = true }
        wakeup.signal()
    }

    /// Queues `op` and returns after the transaction that wrote it committed (or failed).
    func submit(_ op: LedgerOp) async -> Answer {
        await acquireSlot()
        return await withCheckedContinuation { (continuation: CheckedContinuation<Answer, Never>) in
            let closed = state.withLock { s -> Bool in
                if s.closed { return true }
                s.queue.append(Job(op: op, continuation: continuation))
                return false
            }
            if closed {
                continuation.resume(returning: .failure(LedgerError(.storage, "the effect log is closed")))
            } else {
                wakeup.signal()
            }
        }
    }

    private func acquireSlot() async {
        let granted = state.withLock { s -> Bool in
            guard s.slotsInUse < queueLimit else { return false }
            s.slotsInUse += 1
            return true
        }
        if granted { return }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let grantedNow = state.withLock { s -> Bool in
                if s.slotsInUse < queueLimit {
                    s.slotsInUse += 1
                    return true
                }
                s.slotWaiters.append(continuation)
                return false
            }
            if grantedNow { continuation.resume() }
        }
    }

    private func run() {
        while true {
            wakeup.wait()
            let (batch, admitted, closed) = state.withLock { s -> ([Job], [CheckedContinuation<Void, Never>], Bool) in
                let n = min(maxBatch, s.queue.count)
                let batch = Array(s.queue.prefix(n))
                s.queue.removeFirst(n)
                // The n slots just freed go to waiting callers first (FIFO), the rest are released.
                let handedOver = min(n, s.slotWaiters.count)
                let admitted = Array(s.slotWaiters.prefix(handedOver))
                s.slotWaiters.removeFirst(handedOver)
                s.slotsInUse -= n - handedOver
                return (batch, admitted, s.closed)
            }
            for waiter in admitted { waiter.resume() }
            if batch.isEmpty {
                if closed { return }
                continue
            }
            let (answers, committed) = commit(batch.map(\.op))
            state.withLock { s in
                s.stats.jobs += batch.count
                s.stats.largestBatch = max(s.stats.largestBatch, batch.count)
                if !committed {
                    s.stats.failedTransactions += 1
                } else {
                    s.stats.commits += 1
                    s.stats.records += answers.reduce(0) { n, a in
                        if case .success(let o) = a { n + o.records.count } else { n }
                    }
                }
            }
            // Only now, after COMMIT returned, does any caller see its record.
            for (job, answer) in zip(batch, answers) {
                job.continuation.resume(returning: answer)
            }
        }
    }

    /// Writes `ops` in one transaction. An op refused with a LedgerError (invalid transition,
    /// unknown seq) gets its own error and writes nothing (its savepoint is rolled back); the
    /// others go on. Any storage error (busy timeout, I/O, disk full, a failed COMMIT) aborts the
    /// whole transaction, and every op of the batch gets it.
    private func commit(_ ops: [LedgerOp]) -> (answers: [Answer], committed: Bool) {
        do {
            let answers = try store.write { tx -> [Answer] in
                var answers: [Answer] = []
                answers.reserveCapacity(ops.count)
                // Inside the transaction's tail lock: no other writer appends between this read and COMMIT.
                var tail = try tx.chainTail()
                let now = Ledger.nowMs()
                for op in ops {
                    var attempt = tail
                    var outcome = OpOutcome()
                    do {
                        try tx.savepoint {
                            outcome = try LedgerApply.apply(tx, op, tail: &attempt, now: now)
                        }
                        tail = attempt
                        answers.append(.success(outcome))
                    } catch let error as LedgerError {
                        // Refused by the ledger's own rules (or an unreadable calls row): this op
                        // only. Storage errors are not LedgerErrors here and abort the whole batch.
                        answers.append(.failure(error))
                    }
                }
                return answers
            }
            return (answers, true)
        } catch {
            let message = "effect log write failed, nothing of this batch was recorded: \(error.message)"
            return (ops.map { _ in .failure(LedgerError(error.code, message)) }, false)
        }
    }
}
