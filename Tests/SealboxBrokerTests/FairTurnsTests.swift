import Foundation
import SealboxTestSupport
import Synchronization
import Testing
@testable import SealboxBroker

/// How the broker's turns are dealt between tenants (`FairTurns`). Each test waits on the
/// turns' own state (who holds, who waits), never on a fixed sleep.
@Suite("fair turns")
struct FairTurnsTests {
    /// Acquires a turn of `tenant` on a task of its own; `granted` counts it once it has it.
    final class Caller: Sendable {
        final class Flag: Sendable {
            let value = Atomic<Bool>(false)
        }
        let task: Task<Void, Never>
        private let done = Flag()
        var granted: Bool { done.value.load(ordering: .acquiring) }

        init(_ turns: FairTurns, _ tenant: String) {
            let done = done
            task = Task {
                await turns.acquire(tenant)
                done.value.store(true, ordering: .releasing)
            }
        }
    }

    /// Who got a turn, in order.
    final class Order: Sendable {
        private let names = Mutex<[String]>([])
        func append(_ name: String) { names.withLock { $0.append(name) } }
        var all: [String] { names.withLock { $0 } }
    }

    static func waiting(_ turns: FairTurns, _ tenant: String) -> Int { turns.snapshot.waiting[tenant] ?? 0 }
    static func held(_ turns: FairTurns, _ tenant: String) -> Int { turns.snapshot.held[tenant] ?? 0 }

    @Test("a tenant alone may hold every turn; a second tenant's call gets the next one however many the first has waiting")
    func aSecondTenantGetsTheNextTurn() async throws {
        let turns = FairTurns(count: 2)
        turns.enter("flood")
        await turns.acquire("flood")
        await turns.acquire("flood")
        #expect(Self.held(turns, "flood") == 2)
        // The flood queues five more calls, then the victim one.
        let flood = (0..<5).map { _ in Caller(turns, "flood") }
        #expect(try await eventually { Self.waiting(turns, "flood") == 5 })
        turns.enter("victim")
        let victim = Caller(turns, "victim")
        #expect(try await eventually { Self.waiting(turns, "victim") == 1 })
        // The flood gives one turn back: it is at its share (one of two) now, so the victim
        // gets it, although five flood calls queued first.
        turns.release("flood")
        #expect(try await eventually { victim.granted })
        #expect(Self.held(turns, "victim") == 1 && Self.held(turns, "flood") == 1)
        #expect(flood.allSatisfy { !$0.granted } && Self.waiting(turns, "flood") == 5)
        // The victim's call leaves; once its share lapses the flood may use both turns again.
        turns.release("victim")
        turns.leave("victim")
        #expect(try await eventually { Self.held(turns, "flood") == 2 })
        for _ in 0..<2 { turns.release("flood") }
        #expect(try await eventually { Self.held(turns, "flood") == 2 && Self.waiting(turns, "flood") == 2 })
        for _ in 0..<4 { turns.release("flood") }
        for caller in flood { await caller.task.value }
        turns.leave("flood")
        #expect(Self.held(turns, "flood") == 0)
    }

    @Test("a tenant whose call just left keeps its share a moment: its next call finds a turn free")
    func aLingeringTenantKeepsItsShare() async throws {
        // A long linger: the checks between a leave and the next enter must not race its lapse
        // on a loaded machine.
        let turns = FairTurns(count: 2, linger: .seconds(5))
        turns.enter("flood")
        turns.enter("victim")
        await turns.acquire("flood")
        await turns.acquire("victim")
        let flood = Caller(turns, "flood")
        #expect(try await eventually { Self.waiting(turns, "flood") == 1 })
        turns.release("victim")
        turns.leave("victim")
        // The victim's turn is free, but its share lingers: the flood's second call still waits.
        #expect(Self.held(turns, "flood") == 1 && !flood.granted)
        turns.enter("victim")
        await turns.acquire("victim")
        #expect(Self.held(turns, "victim") == 1 && !flood.granted)
        turns.release("victim")
        turns.leave("victim")
        // Nothing else happens: the lapse of the share alone hands the turn to the flood.
        #expect(try await eventually(20) { flood.granted })
        turns.release("flood")
        turns.release("flood")
        turns.leave("flood")
    }

    @Test("waiting calls are served round-robin between tenants, each tenant's oldest first")
    func roundRobin() async throws {
        let turns = FairTurns(count: 1)
        for tenant in ["a", "b"] { turns.enter(tenant) }
        await turns.acquire("a")
        let order = Order()
        var tasks: [Task<Void, Never>] = []
        for (tenant, n) in [("a", 1), ("a", 2), ("a", 3), ("b", 1), ("b", 2)] {
            tasks.append(Task {
                await turns.acquire(tenant)
                order.append("\(tenant)\(n)")
                turns.release(tenant)
            })
            // Queued in this order.
            #expect(try await eventually { Self.waiting(turns, "a") + Self.waiting(turns, "b") == tasks.count })
        }
        turns.release("a")
        for task in tasks { await task.value }
        #expect(order.all == ["a1", "b1", "a2", "b2", "a3"])
    }

    @Test("a durable write gives the turn back only while its tenant is alone")
    func commitsKeepTheTurnWhenShared() async throws {
        let turns = FairTurns(count: 1)
        turns.enter("a")
        await turns.acquire("a")
        // Alone: the turn is free during the write.
        let heldAlone = await turns.committing("a") { Self.held(turns, "a") }
        #expect(heldAlone == 0 && Self.held(turns, "a") == 1)
        turns.enter("b")
        let heldShared = await turns.committing("a") { Self.held(turns, "a") }
        #expect(heldShared == 1)
        turns.release("a")
        turns.leave("a")
        turns.leave("b")
    }

    @Test("a world call keeps its turn at most its slice, then gives it back until it ends")
    func worldCallsHoldATurnForASliceOnly() async throws {
        let turns = FairTurns(count: 1)
        for tenant in ["slow", "other"] { turns.enter(tenant) }
        await turns.acquire("slow")
        let other = Caller(turns, "other")
        #expect(try await eventually { Self.waiting(turns, "other") == 1 })
        let release = AsyncStream<Void>.makeStream()
        let slow = Task {
            await turns.holding("slow", atMost: .milliseconds(20)) {
                for await _ in release.stream { break }
            }
        }
        // The world has not answered; after the slice the other tenant computes.
        #expect(try await eventually { other.granted })
        turns.release("other")
        release.continuation.yield()
        await slow.value
        // The slow call took a turn again when its world answered.
        #expect(Self.held(turns, "slow") == 1)
        turns.release("slow")
        for tenant in ["slow", "other"] { turns.leave(tenant) }
    }
}
