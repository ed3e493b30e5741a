import SealboxBase
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import SealboxLedger
@testable import SealboxServer
import SealboxSQLite
import Testing

/// Sessions, their runs and their effects are their tenant's, with the service's real broker
/// process writing the effect log: another tenant gets 404 (or an empty listing) everywhere.
@Suite("Tenants over sessions and effects", .serialized)
struct SessionTenancyTests {
    struct Service {
        var api: SealboxAPI
        var broker: ManagedBroker
        var a: String
        var b: String
        var operatorKey: String
    }

    /// A broker with one idempotent command tool, `note`, and keys of two tenants and an operator.
    static func service() async throws -> Service {
        let layout = try ServerTestSupport.temporaryLayout()
        let config = layout.stateDirectory + "/tools.yaml"
        try """
            tools:
              note:
                kind: command
                argv: ["/bin/true"]
                effect: idempotent
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let broker = try await ManagedBroker.start(executable: try ServerTestSupport.sealboxBinary, layout: layout, toolsConfig: config)
        let api = try SealboxAPI(configuration: ServerConfiguration(layout: layout, maxConcurrentRuns: 2, maxQueuedRuns: 4),
                                 executor: try APITests.executor.get(), access: try SQLiteAccessStore.open(layout: layout),
                                 brokerControlSocket: broker.controlSocket)
        return Service(api: api, broker: broker,
                       a: try api.access.keys.create(tenant: "tenant-a", isOperator: false).key,
                       b: try api.access.keys.create(tenant: "tenant-b", isOperator: false).key,
                       operatorKey: try api.access.keys.create(tenant: "ops", isOperator: true).key)
    }

    static func step(session: String?, step: String?, code: String, tools: [String]) -> String {
        var body: [String: Any] = ["language": "python", "code": code, "tools": tools]
        if let session { body["session"] = session }
        if let step { body["step"] = step }
        return String(decoding: try! JSONSerialization.data(withJSONObject: body), as: UTF8.self)
    }

    static func tools(_ response: TestResponse) throws -> [String] {
        try #require(try response.object()["calls"] as? [[String: Any]], "\(response.text)").compactMap { $0["tool"] as? String }
    }

    @Test("a session is its creator's: another tenant's GET, facts, fork and runs in it are 404; its effects are listed for its tenant only")
    func sessions() async throws {
        let service = try await Self.service()
        defer { service.broker.stop() }
        try await Application(router: service.api.router()).test(.router) { client in
            let created = try await client.call(.post, "/v1/sessions", key: service.a)
            #expect(created.status == .created, "\(created.text)")
            let id = try #require(try created.object()["id"] as? String)
            #expect(try service.api.access.tenants.owner(of: id) == "tenant-a")

            let code = "import sealbox; sealbox.call('note', {}, key='n1'); print('ok')"
            let run = try await client.call(.post, "/v1/runs", key: service.a, body: Self.step(session: id, step: "one", code: code, tools: ["note"]))
            #expect(run.status == .created, "\(run.text)")
            #expect(try run.object()["stdout"] as? String == "ok\n")

            // Tenant b: the session does not exist for it, whatever it tries.
            let unknown = try await client.call(.get, "/v1/sessions/s-none", key: service.b)
            for (method, uri, body) in [(HTTPRequest.Method.get, "/v1/sessions/\(id)", nil), (.get, "/v1/sessions/\(id)/facts", nil),
                                        (.post, "/v1/sessions/\(id)/fork", #"{"at":"one"}"#),
                                        (.post, "/v1/runs", Self.step(session: id, step: "two", code: "print(1)", tools: []))] as [(HTTPRequest.Method, String, String?)] {
                let response = try await client.call(method, uri, key: service.b, body: body)
                #expect(response.status == .notFound, "\(method) \(uri): \(response.text)")
                #expect(try response.errorCode() == "not_found")
                #expect(response.text.replacingOccurrences(of: id, with: "s-none") == unknown.text, "the answer must not tell an existing session from a missing one")
            }
            #expect(try Self.tools(try await client.call(.get, "/v1/effects", key: service.b)) == [])
            #expect(try Self.tools(try await client.call(.get, "/v1/effects?session=\(id)", key: service.b)) == [])
            #expect(try Self.tools(try await client.call(.get, "/v1/effects", key: service.a)) == ["note"])
            #expect(try Self.tools(try await client.call(.get, "/v1/effects", key: service.operatorKey)) == ["note"])

            // Its owner reads and forks it; the fork is the owner's too.
            #expect(try await client.call(.get, "/v1/sessions/\(id)/facts", key: service.a).status == .ok)
            let fork = try await client.call(.post, "/v1/sessions/\(id)/fork", key: service.a, body: #"{"at":"one"}"#)
            #expect(fork.status == .created, "\(fork.text)")
            let forkID = try #require(try fork.object()["id"] as? String)
            #expect(try service.api.access.tenants.owner(of: forkID) == "tenant-a")
            #expect(try await client.call(.get, "/v1/sessions/\(forkID)", key: service.b).status == .notFound)
            // An operator sees any session.
            #expect(try await client.call(.get, "/v1/sessions/\(id)", key: service.operatorKey).status == .ok)
        }
    }

    @Test("a one-shot run with tools: its calls (under its run id as session) are its tenant's")
    func oneShot() async throws {
        let service = try await Self.service()
        defer { service.broker.stop() }
        try await Application(router: service.api.router()).test(.router) { client in
            let code = "import sealbox; sealbox.call('note', {}); print('ok')"
            let run = try await client.call(.post, "/v1/runs", key: service.b, body: Self.step(session: nil, step: nil, code: code, tools: ["note"]))
            #expect(run.status == .created, "\(run.text)")
            let id = try #require(try run.object()["id"] as? String)
            #expect(try service.api.access.tenants.owner(of: id) == "tenant-b")
            let mine = try await client.call(.get, "/v1/effects?run=\(id)", key: service.b)
            #expect(try Self.tools(mine) == ["note"])
            #expect(try Self.tools(try await client.call(.get, "/v1/effects?run=\(id)", key: service.a)) == [])
            let seq = try #require(((try mine.object()["calls"] as? [[String: Any]])?.first?["intent_seq"] as? NSNumber)?.int64Value)
            #expect(try await client.call(.get, "/v1/effects/\(seq)", key: service.b).status == .ok)
            #expect(try await client.call(.get, "/v1/effects/\(seq)", key: service.a).status == .notFound)
            // A run without tools makes no effects and claims nothing.
            let plain = try await client.call(.post, "/v1/runs", key: service.b, body: #"{"command":["/bin/true"]}"#)
            let plainID = try #require(try plain.object()["id"] as? String)
            #expect(try service.api.access.tenants.owner(of: plainID) == nil)
        }
    }
}
