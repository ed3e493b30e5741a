import Foundation
import SealboxJail
import SealboxRuntime
import SealboxServer
import Testing

/// The server's bounds as units: the result store's byte budgets and the admission's fairness.
@Suite("Result store and admission bounds")
struct BoundsTests {
    /// A result as a run's JSON says it (RunResult has no public memberwise initializer).
    static func result(_ id: String, bytes: Int) -> RunResult {
        let json = """
            {"id":"\(id)","status":"ok","exit_code":0,"signal":null,"stdout":"\(String(repeating: "x", count: bytes))","stderr":"",
             "stdout_truncated":false,"stderr_truncated":false,"stdout_bytes":\(bytes),"stderr_bytes":0,"wall_ms":1,"cpu_ms":1,
             "peak_memory_bytes":0,"violations":[],"limits":{"timeout_ms":1,"memory_bytes":1,"pids":1,"disk_bytes":1,"output_bytes":1},
             "profile":"default","cgroup":"v1"}
            """
        return try! JSONDecoder().decode(RunResult.self, from: Data(json.utf8))
    }

    static let alice = APIIdentity(keyID: "a", tenant: "alice", isOperator: false)
    static let bob = APIIdentity(keyID: "b", tenant: "bob", isOperator: false)

    @Test("memory budget: the oldest go first; a tenant over its share pays with its own oldest")
    func memoryAndShares() {
        let store = RunStore(limits: .init(count: 100, memoryBytes: 10_000, diskBytes: 0, perTenantBytes: 6_000, inlineBytes: 10_000), directory: nil)
        store.put(Self.result("b1", bytes: 1_000), tenant: "bob")
        for index in 0..<8 { store.put(Self.result("a\(index)", bytes: 1_000), tenant: "alice") }
        // alice holds at most ~6,000 bytes: her oldest went, bob's one stayed.
        #expect(store.get("b1", visibleTo: Self.bob) != nil)
        #expect(store.get("a0", visibleTo: Self.alice) == nil)
        #expect(store.get("a7", visibleTo: Self.alice)?.stdout.count == 1_000)
        #expect(store.stats.memoryBytes <= 10_000)
        #expect(store.stats.evicted >= 3)
        // Another tenant's result is invisible, as if it did not exist.
        #expect(store.get("b1", visibleTo: Self.alice) == nil)
    }

    @Test("a result that fits nowhere is kept without its output, marked output_dropped")
    func outputDropped() throws {
        let store = RunStore(limits: .init(count: 10, memoryBytes: 4_000, diskBytes: 0, perTenantBytes: 100_000, inlineBytes: 2_000), directory: nil)
        let encoded = store.put(Self.result("big", bytes: 50_000), tenant: "alice")
        #expect(encoded.count > 50_000, "the caller still gets the whole result")
        let kept = try #require(store.get("big", visibleTo: Self.alice))
        #expect(kept.stdout.isEmpty && kept.outputDropped == true && kept.stdoutBytes == 50_000)
        #expect(store.stats.outputDropped == 1)
    }

    @Test("results go to disk, bounded; a store that opens takes back what the last one kept, within its retention")
    func disk() throws {
        let dir = NSTemporaryDirectory() + "sealbox-results-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = RunStore(limits: .init(count: 100, memoryBytes: 1_000_000, diskBytes: 25_000, perTenantBytes: 1_000_000, inlineBytes: 1_000), directory: dir)
        for index in 0..<5 { store.put(Self.result("r\(index)", bytes: 10_000), tenant: "alice") }
        store.put(Self.result("small", bytes: 10), tenant: "bob")
        #expect(store.stats.diskBytes <= 25_000 && store.stats.diskBytes > 0)
        #expect(store.get("r4", visibleTo: Self.alice)?.stdout.count == 10_000)
        #expect(store.get("r0", visibleTo: Self.alice) == nil)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["r3.alice", "r4.alice", "small.bob"])
        // A restarted server: the results are there, each still its tenant's alone.
        FileManager.default.createFile(atPath: dir + "/junk", contents: Data("x".utf8))
        FileManager.default.createFile(atPath: dir + "/r9.alice.tmp-1-2", contents: Data("half".utf8))
        let reopened = RunStore(limits: .init(), directory: dir)
        #expect(reopened.get("r4", visibleTo: Self.alice)?.stdout.count == 10_000)
        #expect(reopened.get("r4", visibleTo: Self.bob) == nil)
        #expect(reopened.get("small", visibleTo: Self.bob) != nil)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["r3.alice", "r4.alice", "small.bob"], "what is not a result is removed")
        // Past the retention: forgotten at the next open, its file removed.
        let old = Date().addingTimeInterval(-3 * 86_400)
        try FileManager.default.setAttributes([.modificationDate: old], ofItemAtPath: dir + "/r3.alice")
        let later = RunStore(limits: .init(retentionMs: 2 * 86_400_000), directory: dir)
        #expect(later.get("r3", visibleTo: Self.alice) == nil && later.get("r4", visibleTo: Self.alice) != nil)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["r4.alice", "small.bob"])
    }

    @Test("a result past the retention is forgotten when the next one is put")
    func retention() throws {
        let store = RunStore(limits: .init(retentionMs: 1), directory: nil)
        store.put(Self.result("first", bytes: 10), tenant: "alice")
        usleep(5_000)  // five times the retention: time passing is what is tested
        store.put(Self.result("second", bytes: 10), tenant: "alice")
        #expect(store.get("first", visibleTo: Self.alice) == nil && store.get("second", visibleTo: Self.alice) != nil)
    }

    @Test("admission: a freed slot goes to the least recently served tenant; a tenant's queue share is capped")
    func fairness() async throws {
        let admission = RunAdmission(maxRunning: 1, maxQueued: 6, maxQueuedPerTenant: 3)
        try await admission.acquire(tenant: "a")
        let order = OrderedNames()
        var waiters: [Task<Void, Never>] = []
        for index in 0..<3 {
            waiters.append(Task {
                if (try? await admission.acquire(tenant: "a")) != nil { await order.add("a\(index)") }
            })
            try await Self.waitForQueue(admission, index + 1)
        }
        // a's share of the queue is full.
        await #expect(throws: RunAdmission.Busy.self) { try await admission.acquire(tenant: "a") }
        waiters.append(Task {
            if (try? await admission.acquire(tenant: "b")) != nil { await order.add("b") }
        })
        try await Self.waitForQueue(admission, 4)
        // Free the slot four times, each time as the tenant that holds it.
        var holder = "a"
        for step in 0..<4 {
            await admission.release(tenant: holder)
            for _ in 0..<500 where await order.names.count <= step { try await Task.sleep(for: .milliseconds(2)) }
            holder = String(try #require(await order.names.last).prefix(1))
        }
        await admission.release(tenant: holder)
        for waiter in waiters { await waiter.value }
        // b came last but had not been served: it went first.
        let names = await order.names
        #expect(names == ["b", "a0", "a1", "a2"], "\(names)")
    }

    @Test("admission: a ticket abandoned before its acquire began is refused when it comes")
    func abandonedEarly() async throws {
        let admission = RunAdmission(maxRunning: 1, maxQueued: 4)
        try await admission.acquire(tenant: "x")
        let ticket = await admission.ticket()
        await admission.abandon(ticket)
        do {
            try await admission.acquire(tenant: "y", ticket: ticket)
            Issue.record("an abandoned ticket was admitted")
        } catch {
            #expect(error.abandoned)
        }
        #expect(await admission.abandoned == 1)
        #expect(await admission.load.queued == 0)
    }

    static func waitForQueue(_ admission: RunAdmission, _ count: Int) async throws {
        for _ in 0..<500 where await admission.load.queued < count { try await Task.sleep(for: .milliseconds(2)) }
        #expect(await admission.load.queued == count)
    }
}

actor OrderedNames {
    var names: [String] = []
    func add(_ name: String) { names.append(name) }
}
