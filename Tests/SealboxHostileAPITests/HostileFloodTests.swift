import Foundation
import Glibc
import SealboxTestSupport
import Testing

extension HostileAPI {
    /// Floods at a bounded size: what one tenant (or one address) can make the server hold is
    /// bounded, and the others still get through.
    @Suite("Floods")
    struct Floods {
        /// Results are kept within their byte budgets: big outputs go to disk, the oldest are
        /// forgotten first, and the server's memory does not keep every run's output.
        @Test("results are bounded in bytes: memory, disk and per tenant; big ones on disk; oldest forgotten first")
        func resultStoreIsBounded() async throws {
            let target = Target(server: try await offPool {
                try ServeProcess(["--results-memory", "1M", "--results-disk", "12M", "--results-per-tenant", "8M", "--max-output", "4M"])
            })
            // 12 runs printing 3 MiB each: 36 MiB of output, three times what may be kept.
            var ids: [String] = []
            for _ in 0..<12 {
                let answer = try await target.run(python: "import sys; sys.stdout.write('x' * (3 << 20))", #""limits":{"output_bytes":4194304}"#)
                #expect(answer.status == 201, "\(answer.status) \(answer.body.prefix(200))")
                #expect((answer.json?["stdout"] as? String)?.utf8.count == 3 << 20, "the caller gets the whole output")
                if let id = answer.json?["id"] as? String { ids.append(id) }
            }
            let memory = try #require(try await target.metric("sealbox_results_bytes{place=\"memory\"}"))
            let disk = try #require(try await target.metric("sealbox_results_bytes{place=\"disk\"}"))
            let evicted = try #require(try await target.metric("sealbox_results_evicted_total"))
            #expect(memory <= Double(1 << 20), "memory \(memory)")
            #expect(disk <= Double(8 << 20), "one tenant's results stay within its 8M share: disk \(disk)")
            #expect(evicted >= 9, "the oldest went first: evicted \(evicted)")
            // The newest is kept whole (from disk); the oldest is gone.
            let newest = try await target.get("/v1/runs/\(ids.last!)")
            #expect(newest.status == 200 && (newest.json?["stdout"] as? String)?.utf8.count == 3 << 20, "\(newest.status)")
            let oldest = try await target.get("/v1/runs/\(ids.first!)")
            #expect(oldest.status == 404, "\(oldest.status)")
            // Another tenant's results are not evicted by the first one's flood.
            let other = try await CLI.run(["keys", "create", "--state-dir", target.server.stateDirectory, "--tenant", "quiet"])
            let quietKey = other.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let quiet = try await target.run(python: "print('quiet')", key: quietKey)
            let quietID = try #require(quiet.json?["id"] as? String)
            for _ in 0..<4 { _ = try await target.run(python: "import sys; sys.stdout.write('x' * (3 << 20))", #""limits":{"output_bytes":4194304}"#) }
            let kept = try await target.get("/v1/runs/\(quietID)", key: quietKey)
            #expect(kept.status == 200 && kept.json?["stdout"] as? String == "quiet\n", "\(kept.status) \(kept.body.prefix(200))")
        }

        /// Idle and slow connections cost a descriptor each: capped per address and in total
        /// (the oldest idle ones make room), and timed out. /healthz answers throughout.
        @Test("connection floods: per-peer and global caps evict idle connections, slowloris and idle ones time out, healthz answers, no spinning")
        func connectionFloods() async throws {
            let server = try await offPool {
                try ServeProcess(["--max-connections", "64", "--max-connections-per-peer", "16", "--header-timeout", "1", "--idle-timeout", "2"])
            }
            let port = server.port
            // 100 idle connections from one address: it keeps at most 16 of them. (The test process
            // holds few descriptors at a time: see CLITests.manyParentDescriptors.)
            let flood = try await offPool { try (0..<100).map { _ in try RawHTTP.connect(port: port, source: "127.0.0.2", timeout: 5) } }
            defer { for fd in flood { close(fd) } }
            let health = try await offPool { try RawHTTP.request(port: port, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout: 5) }
            #expect(health.status == 200, "\(health.status) \(health.body)")
            let closed = await (try? offPool { flood.filter { RawHTTP.closedByPeer($0, within: 0.05) }.count }) ?? 0
            #expect(closed >= 100 - 16, "closed \(closed) of 100 from one address")
            // Spread over many addresses: the global cap holds too, and healthz still answers.
            let wide = try await offPool { try (0..<100).map { index in try RawHTTP.connect(port: port, source: "127.0.1.\(index % 50 + 1)", timeout: 5) } }
            defer { for fd in wide { close(fd) } }
            let healthWide = try await offPool { try RawHTTP.request(port: port, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout: 5) }
            #expect(healthWide.status == 200, "\(healthWide.status)")
            let open = (healthWide.json?["connections"] as? Int) ?? 0
            #expect(open <= 64, "open connections \(open)")
            // Holding them costs no CPU: nothing spins on accept while the caps are reached.
            let before = Battery.cpuSeconds(server.pid)
            try await Task.sleep(for: .seconds(1))
            let spent = Battery.cpuSeconds(server.pid) - before
            #expect(spent < 0.3, "serve used \(spent) s of CPU in 1 s while holding its caps")
            // Slowloris: a head sent a byte at a time never completes; closed by the header timeout.
            let slow = try await offPool { try RawHTTP.connect(port: port, source: "127.0.2.1", timeout: 5) }
            defer { close(slow) }
            let slowClosed = try await offPool { () throws -> Bool in
                try RawHTTP.send(slow, Array("POST /v1/runs HTTP/1.1\r\nHost: x\r\n".utf8))
                for _ in 0..<40 {
                    if RawHTTP.closedByPeer(slow, within: 0.1) { return true }
                    _ = Array("X".utf8).withUnsafeBytes { Glibc.send(slow, $0.baseAddress, 1, Int32(MSG_NOSIGNAL)) }
                }
                return false
            }
            #expect(slowClosed, "a slowloris connection outlived the 1 s header timeout by 3 s")
            // A keep-alive connection left idle after its request is closed by the idle timeout.
            let idle = try await offPool { try RawHTTP.connect(port: port, source: "127.0.2.2", timeout: 5) }
            defer { close(idle) }
            let idleClosed = try await offPool { () throws -> Bool in
                try RawHTTP.send(idle, Array("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
                return RawHTTP.closedByPeer(idle, within: 6)
            }
            #expect(idleClosed, "an idle keep-alive connection outlived the 2 s idle timeout")
            #expect(try await offPool { server.stop() } == 0)
        }

        /// With a small descriptor limit the caps shrink to fit it (half for connections), so
        /// a flood never drives accept into EMFILE: healthz answers, nothing spins.
        @Test("under a 128-descriptor limit, a flood of connections never reaches EMFILE: healthz answers, runs run, no spinning")
        func smallDescriptorLimit() async throws {
            let server = try await offPool { try ServeProcess(["--max-connections", "100000"], wrapper: ["/usr/bin/prlimit", "--nofile=128:128"]) }
            let port = server.port
            let flood = try await offPool { try (0..<100).map { index in try RawHTTP.connect(port: port, source: "127.0.3.\(index % 100 + 1)", timeout: 5) } }
            defer { for fd in flood { close(fd) } }
            let health = try await offPool { try RawHTTP.request(port: port, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout: 5) }
            #expect(health.status == 200, "\(health.status) \(health.body)")
            #expect((health.json?["connections"] as? Int ?? 999) <= 64, "\(health.body)")
            let target = Target(server: server)
            let run = try await target.run(python: "print('still')")
            #expect(run.status == 201 && run.json?["stdout"] as? String == "still\n", "\(run.body.prefix(300))")
            let before = Battery.cpuSeconds(server.pid)
            try await Task.sleep(for: .seconds(1))
            let spent = Battery.cpuSeconds(server.pid) - before
            #expect(spent < 0.3, "serve used \(spent) s of CPU in 1 s holding a flood at its descriptor limit")
            #expect(!server.logLines.contains { $0.contains("Too many open files") }, "\(server.logLines.suffix(5))")
            #expect(try await offPool { server.stop() } == 0)
        }

        /// One tenant cannot take every queued slot, and the next free slot goes to the tenant
        /// that has not had one, not to the flooding tenant's backlog.
        @Test("fair admission: a tenant's share of the queue is capped and another tenant's run goes next")
        func fairAdmission() async throws {
            let target = Target(server: try await offPool { try ServeProcess(["--max-concurrent", "1", "--max-queued", "8"]) })
            let other = try await CLI.run(["keys", "create", "--state-dir", target.server.stateDirectory, "--tenant", "other"])
            let otherKey = other.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let order = OrderLog()
            let flood = Task {
                await withTaskGroup(of: Void.self) { group in
                    for index in 0..<6 {
                        group.addTask {
                            let answer = try? await target.run(python: "import time; time.sleep(0.6)")
                            order.add("A\(index):\(answer?.status ?? 0)")
                        }
                    }
                }
            }
            // Tenant A holds the slot and its whole share of the queue (4 of 8): one is refused.
            try await Battery.eventually(10, "tenant A's runs queued") { (try await target.get("/healthz").json?["queued"] as? Int ?? 0) >= 4 }
            try await Battery.eventually(10, "tenant A's sixth run refused") { order.entries.contains { $0.hasSuffix(":429") } }
            let answer = try await target.run(python: "print('B')", key: otherKey)
            order.add("B:\(answer.status)")
            await flood.value
            let entries = order.entries
            #expect(entries.filter { $0.hasSuffix(":429") }.count == 1, "\(entries)")
            // B arrived behind four of A's queued runs and finished right after A's first.
            let finished = entries.filter { $0.hasSuffix(":201") }
            #expect(finished.count == 6, "\(entries)")
            #expect(finished.firstIndex(of: "B:201") == 1, "B should have had the first free slot: \(entries)")
        }

        /// A queued run whose caller hung up is dropped before it starts; a new caller is not
        /// kept waiting behind it.
        @Test("queued runs whose callers went away are dropped before they start")
        func abandonedQueuedRuns() async throws {
            let target = Target(server: try await offPool { try ServeProcess(["--max-concurrent", "1"]) })
            let port = target.port, key = target.server.key
            let busy = Task { try await target.run(python: "import time; time.sleep(2)") }
            try await Battery.eventually(10, "the first run executing") { (try await target.get("/healthz").json?["running"] as? Int ?? 0) == 1 }
            // Eight callers send a run and hang up while it waits in the queue.
            let body = Array(#"{"language":"python","code":"print('abandoned')"}"#.utf8)
            try await offPool {
                for _ in 0..<8 {
                    let fd = try RawHTTP.connect(port: port, timeout: 5)
                    let head = "POST /v1/runs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(key)\r\nContent-Length: \(body.count)\r\n\r\n"
                    try RawHTTP.send(fd, Array(head.utf8) + body)
                    close(fd)
                }
            }
            try await Battery.eventually(10, "the abandoned runs dropped") { (try await target.metric("sealbox_requests_rejected_total{reason=\"client_closed\"}") ?? 0) == 8 }
            let first = try await busy.value
            #expect(first.status == 201)
            let fresh = try await target.run(python: "print('fresh')")
            #expect(fresh.status == 201 && ((fresh.json?["phases"] as? [String: Any])?["queue_ms"] as? Double ?? 99) < 500, "\(fresh.body.prefix(300))")
            let total = try await target.metric("sealbox_runs_total{status=\"ok\"}")
            #expect(total == 2, "only the first run and the fresh one executed: \(String(describing: total))")
        }
    }
}

/// Completion order, from several tasks.
final class OrderLog: @unchecked Sendable {  // guarded by `lock`
    private let lock = NSLock()
    private var items: [String] = []
    func add(_ item: String) { lock.withLock { items.append(item) } }
    var entries: [String] { lock.withLock { items } }
}
