import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import SealboxBase
import SealboxJail
@testable import SealboxServer
import SealboxSQLite
import SealboxTestSupport
import Testing

/// Live sandboxes through the HTTP API on a real server: the user story of issue 16 (files in,
/// commands, state kept, files out, end), tenants, bounds and the idle timeout.
@Suite("Sandboxes over HTTP", .needsRoot, .serialized)
struct SandboxAPITests {
    struct Service {
        var api: SealboxAPI
        var a: String
        var b: String
    }

    static func service(_ configure: (inout ServerConfiguration) -> Void = { _ in }) throws -> Service {
        var configuration = ServerConfiguration(layout: try ServerTestSupport.temporaryLayout(), maxConcurrentRuns: 4, maxQueuedRuns: 8)
        configure(&configuration)
        let api = try SealboxAPI(configuration: configuration, executor: try APITests.executor.get(),
                                 access: try SQLiteAccessStore.open(layout: configuration.layout))
        return Service(api: api, a: try api.access.keys.create(tenant: "tenant-a", isOperator: false).key,
                       b: try api.access.keys.create(tenant: "tenant-b", isOperator: false).key)
    }

    static func raw(_ client: some TestClientProtocol, _ method: HTTPRequest.Method, _ uri: String, key: String, bytes: [UInt8]) async throws -> TestResponse {
        try await client.execute(uri: uri, method: method, headers: [.authorization: "Bearer \(key)", .contentType: "application/octet-stream"],
                                 body: ByteBuffer(bytes: bytes))
    }

    /// `condition` polled until true, for at most 10 s.
    static func eventuallyAsync(_ condition: () async throws -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if try await condition() { return true }
            try await Task.sleep(for: .milliseconds(20))
        }
        return false
    }

    @Test("create, upload, commands that keep state, list, download, delete: the whole story through HTTP")
    func story() async throws {
        let service = try Self.service()
        try await Application(router: service.api.router()).test(.live) { client in
            let created = try await client.call(.post, "/v1/sandboxes", key: service.a, body: #"{"env":{"GREETING":"hi"},"limits":{"memory_bytes":268435456}}"#)
            #expect(created.status == .created, "\(created.text)")
            let id = try #require(try created.object()["id"] as? String)
            #expect(try created.object()["state"] as? String == "running")
            #expect(created.headers[.location] == "/v1/sandboxes/\(id)")

            let csv = Array("a,b\n1,2\n3,4\n".utf8)
            let put = try await Self.raw(client, .put, "/v1/sandboxes/\(id)/files/data/in.csv", key: service.a, bytes: csv)
            #expect(put.status == .created, "\(put.text)")
            #expect(try put.object()["size"] as? Int == csv.count)

            let first = try await client.call(.post, "/v1/sandboxes/\(id)/commands", key: service.a,
                                              body: #"{"shell":"wc -l < data/in.csv; echo $GREETING > out.txt; cd data && pwd > ../where.txt"}"#)
            #expect(first.status == .created, "\(first.text)")
            #expect(try first.object()["stdout"] as? String == "3\n" && first.object()["status"] as? String == "ok")
            let second = try await client.call(.post, "/v1/sandboxes/\(id)/commands", key: service.a,
                                               body: #"{"command":["cat","out.txt","where.txt"],"env":{"GREETING":"ignored"}}"#)
            #expect(try second.object()["stdout"] as? String == "hi\n/work/data\n", "\(second.text)")
            // Streamed as a run is: started, the output as it comes, the result last.
            let streamed = try await client.execute(
                uri: "/v1/sandboxes/\(id)/commands", method: .post,
                headers: [.authorization: "Bearer \(service.a)", .contentType: "application/json", .accept: "application/x-ndjson"],
                body: ByteBuffer(string: #"{"shell":"echo one; echo two >&2; cat out.txt"}"#))
            #expect(streamed.status == .ok && streamed.headers[.contentType] == "application/x-ndjson")
            let events = try streamed.text.split(separator: "\n").map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
            #expect(events.first?["event"] as? String == "started" && events.last?["event"] as? String == "result", "\(streamed.text)")
            let out = events.filter { $0["event"] as? String == "stdout" }.compactMap { $0["data"] as? String }.joined()
            let err = events.filter { $0["event"] as? String == "stderr" }.compactMap { $0["data"] as? String }.joined()
            #expect(out == "one\nhi\n" && err == "two\n", "\(streamed.text)")
            #expect((events.last?["result"] as? [String: Any])?["stdout"] as? String == "one\nhi\n")
            let failing = try await client.call(.post, "/v1/sandboxes/\(id)/commands", key: service.a, body: #"{"shell":"exit 4","cwd":"/work/data"}"#)
            #expect(try failing.object()["status"] as? String == "exit_nonzero" && failing.object()["exit_code"] as? Int == 4)

            let listing = try await client.call(.get, "/v1/sandboxes/\(id)/files?dir=", key: service.a)
            let names = try #require(try listing.object()["entries"] as? [[String: Any]]).compactMap { $0["name"] as? String }
            #expect(names == ["data", "out.txt", "where.txt"], "\(listing.text)")
            let download = try await client.call(.get, "/v1/sandboxes/\(id)/files/out.txt", key: service.a)
            #expect(download.status == .ok && download.text == "hi\n" && download.headers[.contentLength] == "3")
            let stat = try await client.call(.get, "/v1/sandboxes/\(id)/stat/data", key: service.a)
            #expect(try stat.object()["type"] as? String == "directory")
            #expect(try await client.call(.put, "/v1/sandboxes/\(id)/directories/x/y", key: service.a).status == .created)
            #expect(try await client.call(.delete, "/v1/sandboxes/\(id)/files/x", key: service.a).status == .conflict)
            #expect(try await client.call(.delete, "/v1/sandboxes/\(id)/files/x?recursive=true", key: service.a).status == .noContent)

            let shown = try await client.call(.get, "/v1/sandboxes/\(id)", key: service.a)
            #expect(try shown.object()["running_commands"] as? Int == 0 && shown.object()["usage"] != nil, "\(shown.text)")
            let all = try await client.call(.get, "/v1/sandboxes", key: service.a)
            #expect(try (all.object()["sandboxes"] as? [[String: Any]])?.compactMap { $0["id"] as? String } == [id])

            // Paused: frozen (a command in flight stops where it is), no new command; resumed, it goes on.
            _ = try await client.call(.post, "/v1/sandboxes/\(id)/commands", key: service.a, body: #"{"shell":"(while :; do echo x >> ticks; sleep 0.05; done) > /dev/null 2>&1 &"}"#)
            #expect(try await Self.eventuallyAsync { try await client.call(.get, "/v1/sandboxes/\(id)/files/ticks", key: service.a).status == .ok })
            let paused = try await client.call(.post, "/v1/sandboxes/\(id)/pause", key: service.a)
            #expect(try paused.status == .ok && paused.object()["state"] as? String == "paused", "\(paused.text)")
            let refused = try await client.call(.post, "/v1/sandboxes/\(id)/commands", key: service.a, body: #"{"shell":"true"}"#)
            #expect(try refused.status == .conflict && refused.errorCode() == "sandbox_paused")
            let frozenTicks = try await client.call(.get, "/v1/sandboxes/\(id)/files/ticks", key: service.a).text
            try await Task.sleep(for: .milliseconds(300))  // the workload: a frozen loop must not tick meanwhile
            #expect(try await client.call(.get, "/v1/sandboxes/\(id)/files/ticks", key: service.a).text == frozenTicks, "no CPU while paused")
            #expect(try await client.call(.post, "/v1/sandboxes/\(id)/resume", key: service.a).object()["state"] as? String == "running")
            #expect(try await Self.eventuallyAsync {
                try await client.call(.get, "/v1/sandboxes/\(id)/files/ticks", key: service.a).text.count > frozenTicks.count
            }, "ticking again once resumed")

            let deleted = try await client.call(.delete, "/v1/sandboxes/\(id)", key: service.a)
            #expect(try deleted.status == .ok && deleted.object()["state"] as? String == "ended", "\(deleted.text)")
            let after = try await client.call(.post, "/v1/sandboxes/\(id)/commands", key: service.a, body: #"{"shell":"true"}"#)
            #expect(try after.status == .gone && after.errorCode() == "sandbox_ended")
            let ended = try await client.call(.get, "/v1/sandboxes/\(id)", key: service.a)
            #expect((try ended.object()["end_reason"] as? String)?.hasPrefix("deleted by key ") == true, "\(ended.text)")
        }
    }

    @Test("another tenant gets 404 everywhere; bad input is a 400 naming the field; paths never leave /work")
    func tenantsAndBadInput() async throws {
        let service = try Self.service()
        try await Application(router: service.api.router()).test(.live) { client in
            let id = try #require(try await client.call(.post, "/v1/sandboxes", key: service.a).object()["id"] as? String)
            defer { _ = try? service.api.sandboxes.sandbox(id, visibleTo: .unauthenticated).end(reason: "test over") }
            let missing = try await client.call(.get, "/v1/sandboxes/sbx-none", key: service.b)
            for (method, uri, body) in [(HTTPRequest.Method.get, "/v1/sandboxes/\(id)", nil), (.delete, "/v1/sandboxes/\(id)", nil),
                                        (.post, "/v1/sandboxes/\(id)/commands", #"{"shell":"true"}"#), (.get, "/v1/sandboxes/\(id)/files/x", nil),
                                        (.put, "/v1/sandboxes/\(id)/files/x", "data"), (.get, "/v1/sandboxes/\(id)/files?dir=", nil)] as [(HTTPRequest.Method, String, String?)] {
                let response = try await client.call(method, uri, key: service.b, body: body)
                #expect(response.status == .notFound, "\(method) \(uri): \(response.text)")
                #expect(response.text.replacingOccurrences(of: id, with: "sbx-none") == missing.text)
            }
            #expect(try (await client.call(.get, "/v1/sandboxes", key: service.b).object()["sandboxes"] as? [Any])?.isEmpty == true)

            for (body, field) in [(#"{"shell":"true","shell":"x"}"#, nil), (#"{"cmd":["ls"]}"#, nil), (#"{"command":[]}"#, "command"),
                                  (#"{"command":["ls"],"shell":"ls"}"#, "command"), (#"{"shell":"ls","cwd":"/etc"}"#, "cwd"),
                                  (#"{"shell":"ls","cwd":"/work/../etc"}"#, "cwd"), (#"{"shell":"ls","timeout_ms":-5}"#, "timeout_ms"),
                                  (#"{"shell":"ls","env":{"1X":"y"}}"#, "env.1X")] as [(String, String?)] {
                let response = try await client.call(.post, "/v1/sandboxes/\(id)/commands", key: service.a, body: body)
                #expect(response.status == .badRequest, "\(body): \(response.text)")
                if let field { #expect(try response.errorField() == field, "\(body): \(response.text)") }
            }
            for body in [#"{"profile":"../../etc/x"}"#, #"{"idle_timeout_ms":5}"#, #"{"limits":{"memory_bytes":-5}}"#, #"{"files":[{"name":"../x","content":""}]}"#] {
                #expect(try await client.call(.post, "/v1/sandboxes", key: service.a, body: body).status == .badRequest, "\(body)")
            }
            _ = try await client.call(.post, "/v1/sandboxes/\(id)/commands", key: service.a, body: #"{"shell":"ln -s /etc etc; mkfifo fifo"}"#)
            for path in ["etc/passwd", "..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "a%00b", "%FF"] {
                let response = try await client.call(.get, "/v1/sandboxes/\(id)/files/\(path)", key: service.a)
                #expect(try response.status == .badRequest && response.errorField() == "path", "\(path): \(response.text)")
                #expect(!response.text.contains("root:"))
            }
            let fifo = try await client.call(.get, "/v1/sandboxes/\(id)/files/fifo", key: service.a)
            #expect(try fifo.status == .conflict && fifo.errorCode() == "not_a_file", "\(fifo.text)")
            let upward = try await Self.raw(client, .put, "/v1/sandboxes/\(id)/files/etc/evil", key: service.a, bytes: [1, 2, 3])
            #expect(upward.status == .badRequest && !FileManager.default.fileExists(atPath: "/etc/evil"))
        }
    }

    @Test("at most so many live sandboxes per tenant and per server (429); an idle one ends by itself, saying why")
    func boundsAndIdle() async throws {
        let service = try Self.service { configuration in
            configuration.sandboxes.maxLive = 3
            configuration.sandboxes.maxLivePerTenant = 2
        }
        try await Application(router: service.api.router()).test(.live) { client in
            _ = try await client.call(.post, "/v1/sandboxes", key: service.a)
            let a2 = try #require(try await client.call(.post, "/v1/sandboxes", key: service.a).object()["id"] as? String)
            let third = try await client.call(.post, "/v1/sandboxes", key: service.a)
            #expect(third.status == .tooManyRequests && third.headers[.retryAfter] != nil, "\(third.text)")
            #expect(try await client.call(.post, "/v1/sandboxes", key: service.b).status == .created)
            #expect(try await client.call(.post, "/v1/sandboxes", key: service.b).status == .tooManyRequests, "the server's maximum")
            // A place freed, taken by one that idles out: the reaper ends it within about a second.
            #expect(try await client.call(.delete, "/v1/sandboxes/\(a2)", key: service.a).status == .ok)
            let idle = try #require(try await client.call(.post, "/v1/sandboxes", key: service.a, body: #"{"idle_timeout_ms":1000}"#).object()["id"] as? String)
            #expect(try await eventually(15) { service.api.sandboxes.liveCount == 2 })
            let ended = try await client.call(.get, "/v1/sandboxes/\(idle)", key: service.a)
            #expect(try ended.object()["end_reason"] as? String == "idle for 1s", "\(ended.text)")
            #expect(try await client.call(.post, "/v1/sandboxes", key: service.b).status == .created, "its place is free again")
            service.api.sandboxes.shutdown(reason: "test over")
            #expect(service.api.sandboxes.liveCount == 0)
        }
    }

    @Test("code contexts over HTTP: a DataFrame-style session of chunks, a traceback, a timeout, an ended context")
    func contexts() async throws {
        let service = try Self.service()
        try await Application(router: service.api.router()).test(.live) { client in
            let id = try #require(try await client.call(.post, "/v1/sandboxes", key: service.a, body: #"{"env":{"KEPT":"yes"}}"#).object()["id"] as? String)
            _ = try await Self.raw(client, .put, "/v1/sandboxes/\(id)/files/data.csv", key: service.a, bytes: Array("a,b\n1,2\n3,4\n".utf8))
            let made = try await client.call(.post, "/v1/sandboxes/\(id)/contexts", key: service.a, body: #"{"language":"python"}"#)
            #expect(made.status == .created, "\(made.text)")
            let ctx = try #require(try made.object()["id"] as? String)
            let load = try await client.call(.post, "/v1/sandboxes/\(id)/contexts/\(ctx)/code", key: service.a,
                                             body: #"{"code":"import csv\nrows = list(csv.reader(open('data.csv')))\nprint(len(rows))"}"#)
            #expect(try load.status == .ok && load.object()["stdout"] as? String == "3\n", "\(load.text)")
            let sum = try await client.call(.post, "/v1/sandboxes/\(id)/contexts/\(ctx)/code", key: service.a,
                                            body: #"{"code":"sum(int(r[0]) for r in rows[1:])"}"#)
            #expect(try sum.object()["value"] as? String == "4", "\(sum.text)")
            let raised = try await client.call(.post, "/v1/sandboxes/\(id)/contexts/\(ctx)/code", key: service.a, body: #"{"code":"rows[10]"}"#)
            #expect(try (raised.object()["error"] as? [String: Any])?["name"] as? String == "IndexError", "\(raised.text)")
            let slow = try await client.call(.post, "/v1/sandboxes/\(id)/contexts/\(ctx)/code", key: service.a,
                                             body: #"{"code":"while True: pass","timeout_ms":300}"#)
            #expect(try slow.object()["timed_out"] as? Bool == true, "\(slow.text)")
            #expect(try await client.call(.post, "/v1/sandboxes/\(id)/contexts/\(ctx)/code", key: service.a, body: #"{"code":"len(rows)"}"#)
                .object()["value"] as? String == "3", "the context survived the timeout")
            let listed = try await client.call(.get, "/v1/sandboxes/\(id)/contexts", key: service.a)
            #expect(try (listed.object()["contexts"] as? [[String: Any]])?.compactMap { $0["id"] as? String } == [ctx])
            _ = try await client.call(.post, "/v1/sandboxes/\(id)/contexts/\(ctx)/code", key: service.a, body: #"{"code":"import os; os._exit(7)"}"#)
            let ended = try await client.call(.post, "/v1/sandboxes/\(id)/contexts/\(ctx)/code", key: service.a, body: #"{"code":"1"}"#)
            #expect(try ended.status == .conflict && ended.errorCode() == "context_ended", "\(ended.text)")
            #expect(ended.text.contains("exited with code 7"), "\(ended.text)")
            #expect(try await client.call(.delete, "/v1/sandboxes/\(id)/contexts/\(ctx)", key: service.a).status == .noContent)
            // node and a persistent bash beside it, in the same workspace.
            let node = try #require(try await client.call(.post, "/v1/sandboxes/\(id)/contexts", key: service.a, body: #"{"language":"node"}"#)
                .object()["id"] as? String)
            let read = try await client.call(.post, "/v1/sandboxes/\(id)/contexts/\(node)/code", key: service.a,
                                             body: #"{"code":"const lines = require('fs').readFileSync('data.csv', 'utf8').trim().split('\\n'); lines.length"}"#)
            #expect(try read.object()["value"] as? String == "3", "\(read.text)")
            let env = try await client.call(.post, "/v1/sandboxes/\(id)/contexts/\(node)/code", key: service.a, body: #"{"code":"process.env.KEPT"}"#)
            #expect(try env.object()["value"] as? String == "'yes'", "a context has the sandbox's environment: \(env.text)")
            let shell = try #require(try await client.call(.post, "/v1/sandboxes/\(id)/contexts", key: service.a, body: #"{"language":"bash"}"#)
                .object()["id"] as? String)
            _ = try await client.call(.post, "/v1/sandboxes/\(id)/contexts/\(shell)/code", key: service.a, body: #"{"code":"cd /tmp; n=$(wc -l < /work/data.csv)"}"#)
            let counted = try await client.call(.post, "/v1/sandboxes/\(id)/contexts/\(shell)/code", key: service.a, body: #"{"code":"echo $n in $PWD; false"}"#)
            #expect(try counted.object()["stdout"] as? String == "3 in /tmp\n" && counted.object()["exit_code"] as? Int == 1, "\(counted.text)")
            let nul = try await client.call(.post, "/v1/sandboxes/\(id)/contexts/\(shell)/code", key: service.a, body: #"{"code":"echo \u0000"}"#)
            #expect(try nul.status == .badRequest && nul.errorField() == "code", "\(nul.text)")
            #expect(try await client.call(.post, "/v1/sandboxes/\(id)/contexts", key: service.b).status == .notFound, "another tenant's sandbox")
            for body in [#"{"language":"cobol"}"#, #"{"cwd":"/etc"}"#, #"{"language":"python","extra":1}"#] {
                #expect(try await client.call(.post, "/v1/sandboxes/\(id)/contexts", key: service.a, body: body).status == .badRequest, "\(body)")
            }
            service.api.sandboxes.shutdown(reason: "test over")
        }
    }

    @Test("hibernate: /work into the blob store, the jail ended and the answer says what was lost; it outlives a restart; wake makes it again")
    func hibernateAndWake() async throws {
        let service = try Self.service()
        let id = try await Application(router: service.api.router()).test(.live) { client in
            let id = try #require(try await client.call(.post, "/v1/sandboxes", key: service.a, body: #"{"env":{"KEPT":"yes"}}"#).object()["id"] as? String)
            _ = try await Self.raw(client, .put, "/v1/sandboxes/\(id)/files/src/data.csv", key: service.a, bytes: Array("a,b\n1,2\n".utf8))
            _ = try await client.call(.post, "/v1/sandboxes/\(id)/commands", key: service.a, body: #"{"shell":"ln -s src/data.csv link; echo made > made.txt"}"#)
            _ = try await client.call(.post, "/v1/sandboxes/\(id)/contexts", key: service.a, body: #"{"language":"python"}"#)
            #expect(try await client.call(.post, "/v1/sandboxes/\(id)/hibernate", key: service.b).status == .notFound, "another tenant's")
            let slept = try await client.call(.post, "/v1/sandboxes/\(id)/hibernate", key: service.a)
            #expect(slept.status == .ok, "\(slept.text)")
            let view = try slept.object()
            #expect(view["state"] as? String == "hibernated", "\(slept.text)")
            let hibernated = try #require(view["hibernated"] as? [String: Any])
            #expect(hibernated["files"] as? Int == 2 && (hibernated["lost"] as? [String: Any])?["contexts"] as? Int == 1, "\(slept.text)")
            let refused = try await client.call(.post, "/v1/sandboxes/\(id)/commands", key: service.a, body: #"{"shell":"true"}"#)
            #expect(try refused.status == .conflict && refused.errorCode() == "sandbox_hibernated", "\(refused.text)")
            let listed = try await client.call(.get, "/v1/sandboxes", key: service.a).object()["sandboxes"] as? [[String: Any]]
            #expect(listed?.filter { $0["id"] as? String == id }.map { $0["state"] as? String } == ["hibernated"], "\(listed ?? [])")
            return id
        }
        // A restarted server still has it.
        let restarted = try SealboxAPI(configuration: service.api.configuration, executor: try APITests.executor.get(),
                                       access: try SQLiteAccessStore.open(layout: service.api.configuration.layout))
        try await Application(router: restarted.router()).test(.live) { client in
            #expect(try await client.call(.get, "/v1/sandboxes/\(id)", key: service.a).object()["state"] as? String == "hibernated")
            #expect(try await client.call(.post, "/v1/sandboxes/\(id)/wake", key: service.b).status == .notFound, "another tenant's")
            let woken = try await client.call(.post, "/v1/sandboxes/\(id)/wake", key: service.a)
            #expect(try woken.status == .ok && woken.object()["state"] as? String == "running", "\(woken.text)")
            let read = try await client.call(.post, "/v1/sandboxes/\(id)/commands", key: service.a,
                                             body: #"{"shell":"cat link made.txt; echo $KEPT; readlink link"}"#)
            #expect(try read.object()["stdout"] as? String == "a,b\n1,2\nmade\nyes\nsrc/data.csv\n", "\(read.text)")
            #expect(try await client.call(.post, "/v1/sandboxes/\(id)/wake", key: service.a).status == .notFound, "awake already")
            // Hibernated again, then deleted while hibernated.
            #expect(try await client.call(.post, "/v1/sandboxes/\(id)/hibernate", key: service.a).status == .ok)
            let deleted = try await client.call(.delete, "/v1/sandboxes/\(id)", key: service.a)
            #expect(try deleted.object()["state"] as? String == "ended", "\(deleted.text)")
            #expect(try await client.call(.post, "/v1/sandboxes/\(id)/wake", key: service.a).status == .notFound)
            restarted.sandboxes.shutdown(reason: "test over")
        }
    }

    /// Sandboxes that idle out, each with a background process: the reaper leaves no process,
    /// cgroup or descriptor behind. SEALBOX_IDLE_CYCLES sets the count (64 here; the issue's
    /// 1,000 with `SEALBOX_IDLE_CYCLES=1000 swift test --filter SandboxAPITests/idleCycles`).
    @Test("sandboxes ended by their idle timeout leave no process, cgroup or descriptor behind")
    func idleCycles() async throws {
        let cycles = ProcessInfo.processInfo.environment["SEALBOX_IDLE_CYCLES"].flatMap { Int($0) } ?? 64
        let service = try Self.service { configuration in
            configuration.sandboxes.maxLive = 32
            configuration.sandboxes.maxLivePerTenant = 32
        }
        let api = service.api
        let identity = APIIdentity(keyID: "idle-test", tenant: "tenant-a", isOperator: false)
        let marker = "sealbox-idle-\(UInt32.random(in: 0...UInt32.max))"
        let fdsBefore = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? 0
        var cgroups: [String] = []
        var made = 0
        while made < cycles {
            let batch = min(32, cycles - made)
            for _ in 0..<batch {
                var wire = SandboxCreateRequest.Wire()
                wire.idle_timeout_ms = 1000
                let sandbox = try await api.sandboxService.create(wire, for: identity, caller: api.caller(identity))
                cgroups += api.executor.cgroupDriver.taskParentDirectories.map { $0 + "/" + sandbox.jail.cgroupName }
                let command = try sandbox.jail.runBlocking(LiveCommand(command: ["/bin/sh", "-c", "cp /bin/sleep /tmp/\(marker); /tmp/\(marker) 600 > /dev/null 2>&1 &"]))
                #expect(command.status == .ok, "\(command.status) \(command.error ?? command.stderr)")
            }
            made += batch
            // The reaper ends them once idle for a second.
            let deadline = ContinuousClock.now + .seconds(60)
            while api.sandboxes.liveCount > 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
            #expect(api.sandboxes.liveCount == 0, "batch ending at \(made): \(api.sandboxes.liveCount) still live")
        }
        let ended = api.sandboxes.list(visibleTo: identity)
        #expect(ended.prefix(min(cycles, 256)).allSatisfy { $0.endReason == "idle for 1s" })
        let survivors = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).filter { pid in
            Int(pid) != nil && (FileManager.default.contents(atPath: "/proc/\(pid)/cmdline").map { String(decoding: $0, as: UTF8.self).contains(marker) } ?? false)
        }
        #expect(survivors.isEmpty, "no background process outlived its sandbox: \(survivors)")
        #expect(cgroups.allSatisfy { !FileManager.default.fileExists(atPath: $0) }, "every sandbox's cgroup is gone")
        let fdsAfter = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? 0
        #expect(fdsAfter - fdsBefore < 150, "fds \(fdsBefore) -> \(fdsAfter)")
    }
}
