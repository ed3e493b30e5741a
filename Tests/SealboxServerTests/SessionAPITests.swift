import SealboxBase
import SealboxBroker
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import SealboxJail
import SealboxServer
import SealboxSQLite
import Testing

/// Sessions through the API with the service's real broker process: steps seal and replay,
/// /work carries over, an irreversible tool call reaches the world once across a replay and
/// a fork, facts tell what is true.
@Suite("HTTP API sessions", .serialized)
struct SessionAPITests {
    struct Service {
        var api: SealboxAPI
        var broker: ManagedBroker
        var world: String
    }

    /// A service whose broker has one irreversible command tool, `cutover`, that appends a
    /// line to the world file.
    static func service() async throws -> Service {
        let layout = try ServerTestSupport.temporaryLayout()
        let world = layout.stateDirectory + "/world.log"
        let config = layout.stateDirectory + "/tools.yaml"
        try """
            tools:
              cutover:
                kind: command
                argv: ["/bin/sh", "-c", "echo cutover >> \(world)"]
                effect: irreversible
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let broker = try await ManagedBroker.start(executable: try ServerTestSupport.sealboxBinary, layout: layout, toolsConfig: config)
        var configuration = ServerConfiguration(layout: layout, maxConcurrentRuns: 2, maxQueuedRuns: 4)
        configuration.authRequired = false  // keys and tenants: SessionTenancyTests
        let api = try SealboxAPI(configuration: configuration, executor: try APITests.executor.get(), access: try SQLiteAccessStore.open(layout: layout),
                                 brokerControlSocket: broker.controlSocket)
        return Service(api: api, broker: broker, world: world)
    }

    static func send(_ client: some TestClientProtocol, _ method: HTTPRequest.Method, _ uri: String, _ json: String? = nil) async throws -> (HTTPResponse.Status, [String: Any]) {
        let response = try await client.execute(uri: uri, method: method, headers: [.contentType: "application/json"],
                                                body: json.map { ByteBuffer(string: $0) })
        let object = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any] ?? [:]
        return (response.status, object)
    }

    static func step(_ session: String, _ key: String, _ code: String, tools: [String] = []) -> String {
        let body: [String: Any] = ["language": "python", "code": code, "session": session, "step": key, "tools": tools]
        return String(decoding: try! JSONSerialization.data(withJSONObject: body), as: UTF8.self)
    }

    static func worldLines(_ service: Service) -> Int {
        ((try? String(contentsOfFile: service.world, encoding: .utf8)) ?? "").split(separator: "\n").count
    }

    /// stdin is an input of a step like its code: the same step key with other stdin is
    /// another question, not a replay of the sealed answer.
    @Test("a sealed step re-run with different stdin is step_conflict; the same stdin replays")
    func stdinIsPartOfAStep() async throws {
        let service = try await Self.service()
        defer { service.broker.stop() }
        try await Application(router: service.api.router()).test(.router) { client in
            let (_, session) = try await Self.send(client, .post, "/v1/sessions", "")
            let id = try #require(session["id"] as? String)
            func step(_ stdin: String?) -> String {
                var body: [String: Any] = ["language": "python", "code": "import sys; print(sys.stdin.read().upper())", "session": id, "step": "shout"]
                if let stdin { body["stdin"] = stdin }
                return String(decoding: try! JSONSerialization.data(withJSONObject: body), as: UTF8.self)
            }
            let (firstStatus, first) = try await Self.send(client, .post, "/v1/runs", step("hello"))
            #expect(firstStatus == .created && first["stdout"] as? String == "HELLO\n" && first["replayed"] as? Bool == false, "\(first)")
            let (_, same) = try await Self.send(client, .post, "/v1/runs", step("hello"))
            #expect(same["replayed"] as? Bool == true && same["stdout"] as? String == "HELLO\n", "\(same)")
            let (otherStatus, other) = try await Self.send(client, .post, "/v1/runs", step("goodbye"))
            #expect(otherStatus == .conflict && (other["error"] as? [String: Any])?["code"] as? String == "step_conflict", "\(otherStatus) \(other)")
            let (noneStatus, none) = try await Self.send(client, .post, "/v1/runs", step(nil))
            #expect(noneStatus == .conflict && (none["error"] as? [String: Any])?["code"] as? String == "step_conflict", "\(noneStatus) \(none)")
        }
    }

    @Test("a session's steps seal, replay without re-running, carry /work, and its irreversible call reaches the world once; a fork shares it")
    func stepsReplayAndFork() async throws {
        let service = try await Self.service()
        defer { service.broker.stop() }
        try await Application(router: service.api.router()).test(.router) { client in
            let (created, session) = try await Self.send(client, .post, "/v1/sessions", #"{"workspace_limit_bytes": 8388608}"#)
            #expect(created == .created)
            let id = try #require(session["id"] as? String)
            #expect(session["workspace_limit_bytes"] as? Int == 8 << 20)

            let cut = "import sealbox; sealbox.call('cutover', {}, key='dns-1'); open('/work/state', 'w').write('cut'); print('done')"
            let (status1, first) = try await Self.send(client, .post, "/v1/runs", Self.step(id, "cut", cut, tools: ["cutover"]))
            #expect(status1 == .created)
            #expect(first["status"] as? String == "ok", "\(first)")
            #expect(first["replayed"] as? Bool == false)
            #expect(first["checkpoint"] is Int)
            #expect(Self.worldLines(service) == 1)

            // The agent crashed and re-runs its plan: the sealed step is answered, not re-run.
            let (_, again) = try await Self.send(client, .post, "/v1/runs", Self.step(id, "cut", cut, tools: ["cutover"]))
            #expect(again["replayed"] as? Bool == true)
            #expect(again["stdout"] as? String == "done\n")
            #expect(Self.worldLines(service) == 1)

            // /work carries to the next step.
            let (_, check) = try await Self.send(client, .post, "/v1/runs", Self.step(id, "check", "print(open('/work/state').read())"))
            #expect(check["stdout"] as? String == "cut\n")

            // Re-planned code under a sealed key is a conflict, not a silent replay.
            let (conflict, body) = try await Self.send(client, .post, "/v1/runs", Self.step(id, "check", "print('other')"))
            #expect(conflict == .conflict)
            #expect((body["error"] as? [String: Any])?["code"] as? String == "step_conflict")

            let (factsStatus, facts) = try await Self.send(client, .get, "/v1/sessions/\(id)/facts")
            #expect(factsStatus == .ok)
            #expect(facts["clean"] as? Bool == true, "\(facts)")
            let truth = try #require(facts["true"] as? [String: Any])
            #expect((truth["steps"] as? [Any])?.count == 2)
            let effects = try #require(truth["effects"] as? [[String: Any]])
            #expect(effects.map { $0["tool"] as? String } == ["cutover"])

            let (viewStatus, view) = try await Self.send(client, .get, "/v1/sessions/\(id)")
            #expect(viewStatus == .ok)
            #expect((view["steps"] as? [[String: Any]])?.compactMap { $0["step_key"] as? String } == ["cut", "check"])

            // A fork at "cut": the world does not fork, so the same call there is answered
            // from the effect log.
            let (forked, fork) = try await Self.send(client, .post, "/v1/sessions/\(id)/fork", #"{"at":"cut"}"#)
            #expect(forked == .created)
            let forkID = try #require(fork["id"] as? String)
            #expect(fork["forked_from"] as? String == id)
            let recut = "import sealbox; r = sealbox.call('cutover', {}, key='dns-1'); print(open('/work/state').read())"
            let (_, inFork) = try await Self.send(client, .post, "/v1/runs", Self.step(forkID, "recut", recut, tools: ["cutover"]))
            #expect(inFork["status"] as? String == "ok", "\(inFork)")
            #expect(inFork["stdout"] as? String == "cut\n")
            #expect(Self.worldLines(service) == 1)
        }
    }

    @Test("bad session requests: unknown session 404, fork at an unsealed step 409, unknown fields and bad limits 400, step without session 400")
    func badSessionRequests() async throws {
        let service = try await Self.service()
        defer { service.broker.stop() }
        try await Application(router: service.api.router()).test(.router) { client in
            let (missing, _) = try await Self.send(client, .post, "/v1/runs", Self.step("s0", "a", "print(1)"))
            #expect(missing == .notFound)
            #expect(try await Self.send(client, .get, "/v1/sessions/s0/facts").0 == .notFound)
            #expect(try await Self.send(client, .get, "/v1/sessions/s0").0 == .notFound)
            let (_, session) = try await Self.send(client, .post, "/v1/sessions")
            let id = try #require(session["id"] as? String)
            let (notSealed, body) = try await Self.send(client, .post, "/v1/sessions/\(id)/fork", #"{"at":"nope"}"#)
            #expect(notSealed == .conflict)
            #expect((body["error"] as? [String: Any])?["field"] as? String == "at")
            for (json, field) in [(#"{"workspace_limit":1}"#, "workspace_limit"), (#"{"workspace_limit_bytes":"big"}"#, "workspace_limit_bytes"),
                                  (#"{"workspace_limit_bytes":1}"#, "workspace_limit_bytes")] {
                let (status, error) = try await Self.send(client, .post, "/v1/sessions", json)
                #expect(status == .badRequest)
                #expect((error["error"] as? [String: Any])?["field"] as? String == field, "\(json)")
            }
            let (noSession, error) = try await Self.send(client, .post, "/v1/runs", #"{"language":"python","code":"print(1)","step":"a"}"#)
            #expect(noSession == .badRequest)
            #expect((error["error"] as? [String: Any])?["field"] as? String == "session")
            let (unknownTool, refusal) = try await Self.send(client, .post, "/v1/runs", #"{"language":"python","code":"print(1)","tools":["nope"]}"#)
            #expect(unknownTool == .badRequest)
            #expect((refusal["error"] as? [String: Any])?["code"] as? String == "broker_refused", "\(refusal)")
        }
    }

    @Test("a server without a broker refuses tools with 400 naming the field")
    func toolsWithoutBroker() async throws {
        let api = try APITests.api()
        try await Application(router: api.router()).test(.router) { client in
            let (status, body) = try await Self.send(client, .post, "/v1/runs", #"{"language":"python","code":"print(1)","tools":["x"]}"#)
            #expect(status == .badRequest)
            #expect((body["error"] as? [String: Any])?["field"] as? String == "tools")
        }
    }

    /// A live sandbox in a session (docs/sandboxes.md): steps of commands and chunks seal and
    /// replay, its granted tool reaches the world once, its token ends with it, and a new
    /// sandbox of the session starts from the last seal.
    @Test("a sandbox in a session: command and chunk steps seal and replay, its tool is called once, a new sandbox starts from the last seal")
    func sandboxSteps() async throws {
        let service = try await Self.service()
        defer { service.broker.stop() }
        try await Application(router: service.api.router()).test(.router) { client in
            let (made, box) = try await Self.send(client, .post, "/v1/sandboxes", #"{"new_session": true, "tools": ["cutover"]}"#)
            #expect(made == .created, "\(box)")
            let id = try #require(box["id"] as? String)
            let session = try #require(box["session"] as? String)
            #expect(box["tools"] as? [String] == ["cutover"])

            let cut = #"{"command": ["python3", "-c", "import sealbox; sealbox.call('cutover', {}, key='dns-1'); open('log', 'a').write('cut\\n'); print('done')"], "step": "cut"}"#
            let (ran, first) = try await Self.send(client, .post, "/v1/sandboxes/\(id)/commands", cut)
            #expect(ran == .created && first["status"] as? String == "ok" && first["stdout"] as? String == "done\n", "\(first)")
            #expect(first["replayed"] as? Bool == false && first["checkpoint"] is Int, "\(first)")
            #expect((first["workspace"] as? [String: Any])?["files"] as? Int == 1, "\(first)")
            #expect(Self.worldLines(service) == 1)
            // Sent again (the agent lost the answer): the seal answers; nothing runs.
            let (_, again) = try await Self.send(client, .post, "/v1/sandboxes/\(id)/commands", cut)
            #expect(again["replayed"] as? Bool == true && again["checkpoint"] as? Int == first["checkpoint"] as? Int, "\(again)")
            #expect(Self.worldLines(service) == 1)
            let (_, log) = try await Self.send(client, .post, "/v1/sandboxes/\(id)/commands", #"{"shell": "cat log"}"#)
            #expect(log["stdout"] as? String == "cut\n", "the command did not run again: \(log)")
            let (conflict, body) = try await Self.send(client, .post, "/v1/sandboxes/\(id)/commands", #"{"shell": "true", "step": "cut"}"#)
            #expect(conflict == .conflict && (body["error"] as? [String: Any])?["code"] as? String == "step_conflict", "\(body)")

            // A chunk step in a code context.
            let (_, context) = try await Self.send(client, .post, "/v1/sandboxes/\(id)/contexts", #"{"language": "python"}"#)
            let ctx = try #require(context["id"] as? String)
            let chunk = #"{"code": "n = len(open('log').read()); open('n', 'w').write(str(n)); n", "step": "count"}"#
            let (_, counted) = try await Self.send(client, .post, "/v1/sandboxes/\(id)/contexts/\(ctx)/code", chunk)
            #expect(counted["value"] as? String == "4" && counted["replayed"] as? Bool == false && counted["checkpoint"] is Int, "\(counted)")
            let (_, recounted) = try await Self.send(client, .post, "/v1/sandboxes/\(id)/contexts/\(ctx)/code", chunk)
            #expect(recounted["value"] as? String == "4" && recounted["replayed"] as? Bool == true, "\(recounted)")

            // The sandbox ends: its broker run is closed, so its token is dead.
            let (deleted, _) = try await Self.send(client, .delete, "/v1/sandboxes/\(id)")
            #expect(deleted == .ok)
            let closed = try await SandboxAPITests.eventuallyAsync {
                let answer = try await BrokerControlClient.ask(ControlRequest(op: "run_cursor", runID: id), socket: service.broker.controlSocket)
                return !answer.ok
            }
            #expect(closed, "the sandbox's broker run is closed once it ended")

            // A new sandbox of the session starts from the last seal.
            let (_, next) = try await Self.send(client, .post, "/v1/sandboxes", #"{"session": "\#(session)"}"#)
            let nextID = try #require(next["id"] as? String, "\(next)")
            let (_, files) = try await Self.send(client, .post, "/v1/sandboxes/\(nextID)/commands", #"{"shell": "cat log n"}"#)
            #expect(files["stdout"] as? String == "cut\n4", "\(files)")
            let (_, view) = try await Self.send(client, .get, "/v1/sessions/\(session)")
            #expect((view["steps"] as? [[String: Any]])?.compactMap { $0["step_key"] as? String } == ["cut", "count"], "\(view)")

            // A step needs a sandbox in a session; a session is looked up, never made up.
            let (_, plain) = try await Self.send(client, .post, "/v1/sandboxes", "")
            let plainID = try #require(plain["id"] as? String)
            let (refused, why) = try await Self.send(client, .post, "/v1/sandboxes/\(plainID)/commands", #"{"shell": "true", "step": "x"}"#)
            #expect(refused == .badRequest && (why["error"] as? [String: Any])?["field"] as? String == "step", "\(why)")
            let (unknown, _) = try await Self.send(client, .post, "/v1/sandboxes", #"{"session": "no-such-session"}"#)
            #expect(unknown == .notFound)
            let (both, _) = try await Self.send(client, .post, "/v1/sandboxes", #"{"session": "\#(session)", "new_session": true}"#)
            #expect(both == .badRequest)
            service.api.sandboxes.shutdown(reason: "test over")
        }
    }
}
