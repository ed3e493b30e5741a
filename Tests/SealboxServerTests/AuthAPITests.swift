import SealboxBase
import Foundation
import HTTPTypes
import Hummingbird
import SealboxAccess
import HummingbirdTesting
@testable import SealboxServer
import SealboxSQLite
import Testing

/// API keys over HTTP: 401 without a good key, 403 without operator rights, one tenant's runs
/// invisible to another. Real keys.db in temp directories, real jails for the runs.
@Suite("API keys and tenancy over HTTP")
struct AuthAPITests {
    struct Keys {
        var operatorKey: CreatedAPIKey
        var a: CreatedAPIKey
        var b: CreatedAPIKey
    }

    static func keys(_ api: SealboxAPI) throws -> Keys {
        Keys(operatorKey: try api.access.keys.create(tenant: "ops", isOperator: true),
             a: try api.access.keys.create(tenant: "tenant-a", isOperator: false),
             b: try api.access.keys.create(tenant: "tenant-b", isOperator: false))
    }

    @Test("no key, a bad scheme, a malformed, unknown or wrong key: 401 unauthorized with WWW-Authenticate: Bearer; /healthz needs none")
    func unauthorized() async throws {
        let state = TestState()
        defer { state.remove() }
        let api = try state.api()
        let keys = try Self.keys(api)
        let secret = String(keys.a.key.dropFirst(4 + 16 + 1))
        try await Application(router: api.router()).test(.router) { client in
            #expect(try await client.call(.get, "/healthz", key: nil).status == .ok)
            var attempts: [(String, HTTPFields)] = [
                ("none", [:]),
                ("basic", [.authorization: "Basic dXNlcjpwYXNz"]),
                ("bare key", [.authorization: keys.a.key]),
                ("empty bearer", [.authorization: "Bearer "]),
                ("malformed", [.authorization: "Bearer sbx_nope"]),
                ("unknown id", [.authorization: "Bearer sbx_0123456789abcdef_\(secret)"]),
                ("wrong secret", [.authorization: "Bearer sbx_\(keys.a.info.id)_\(String(repeating: "A", count: 43))"]),
            ]
            var twoHeaders = HTTPFields()
            twoHeaders.append(HTTPField(name: .authorization, value: "Bearer \(keys.a.key)"))
            twoHeaders.append(HTTPField(name: .authorization, value: "Bearer \(keys.b.key)"))
            attempts.append(("two headers", twoHeaders))
            for (what, headers) in attempts {
                for (method, uri) in [(HTTPRequest.Method.get, "/v1/runs/r1"), (.post, "/v1/runs"), (.get, "/v1/effects"), (.get, "/v1/profiles"),
                                      (.get, "/metrics"), (.get, "/no/such/route")] {
                    let response = try await client.execute(uri: uri, method: method, headers: headers, body: ByteBuffer(string: #"{"command":["/bin/true"]}"#))
                    #expect(response.status == .unauthorized, "\(what) \(method) \(uri): \(response.status) \(response.text)")
                    #expect(response.headers[.wwwAuthenticate] == "Bearer", "\(what) \(uri)")
                    #expect(try response.errorCode() == "unauthorized", "\(what) \(uri)")
                }
            }
            // The scheme is case-insensitive (RFC 9110); a route that does not exist is a 404 once authenticated.
            let lower = try await client.execute(uri: "/v1/profiles", method: .get, headers: [.authorization: "bearer \(keys.a.key)"])
            #expect(lower.status == .ok)
            #expect(try await client.call(.get, "/no/such/route", key: keys.a.key).status == .notFound)
        }
    }

    @Test("a revoked key is refused on its next request, revoked from another handle on keys.db (as `sealbox keys revoke` does)")
    func revokedKey() async throws {
        let state = TestState()
        defer { state.remove() }
        let api = try state.api()
        let keys = try Self.keys(api)
        let cli = AccessControl(store: try SQLiteAccessStore.open(layout: state.layout))
        try await Application(router: api.router()).test(.router) { client in
            #expect(try await client.call(.get, "/v1/profiles", key: keys.a.key).status == .ok)
            _ = try cli.keys.revoke(id: keys.a.info.id)
            let refused = try await client.call(.get, "/v1/profiles", key: keys.a.key)
            #expect(refused.status == .unauthorized)
            #expect(refused.text.contains("revoked"))
            #expect(try await client.call(.get, "/v1/profiles", key: keys.b.key).status == .ok)
        }
    }

    @Test("operator-only routes are 403 forbidden for a tenant key and open to an operator key")
    func forbidden() async throws {
        let state = TestState()
        defer { state.remove() }
        let api = try state.api()
        let keys = try Self.keys(api)
        try await Application(router: api.router()).test(.router) { client in
            for (method, uri) in [(HTTPRequest.Method.get, "/metrics"), (.post, "/v1/effects/1/resolve"), (.post, "/v1/effects/1/approve"), (.post, "/v1/effects/1/deny")] {
                let response = try await client.call(method, uri, key: keys.a.key, body: "{}")
                #expect(response.status == .forbidden, "\(uri): \(response.text)")
                #expect(try response.errorCode() == "forbidden")
            }
            let metrics = try await client.call(.get, "/metrics", key: keys.operatorKey.key)
            #expect(metrics.status == .ok)
            // No effect log yet: the operator's approve is a 404, not a 403.
            #expect(try await client.call(.post, "/v1/effects/1/approve", key: keys.operatorKey.key, body: "{}").status == .notFound)
        }
    }

    @Test("a run is its tenant's: another tenant's GET is 404 as for a missing run; an operator sees it")
    func runsPerTenant() async throws {
        let state = TestState()
        defer { state.remove() }
        let api = try state.api()
        let keys = try Self.keys(api)
        try await Application(router: api.router()).test(.router) { client in
            let created = try await client.call(.post, "/v1/runs", key: keys.a.key, body: #"{"language":"sh","code":"echo mine"}"#)
            #expect(created.status == .created, "\(created.text)")
            let id = try #require(try created.object()["id"] as? String)
            #expect(api.store.tenant(of: id) == "tenant-a")
            let own = try await client.call(.get, "/v1/runs/\(id)", key: keys.a.key)
            #expect(own.status == .ok)
            #expect(try own.object()["stdout"] as? String == "mine\n")
            let other = try await client.call(.get, "/v1/runs/\(id)", key: keys.b.key)
            let missing = try await client.call(.get, "/v1/runs/r-missing", key: keys.b.key)
            #expect(other.status == .notFound)
            #expect(missing.status == .notFound)
            #expect(try other.errorCode() == "not_found")
            #expect(!other.text.contains("tenant-a"))
            #expect(try await client.call(.get, "/v1/runs/\(id)", key: keys.operatorKey.key).status == .ok)
        }
    }

    @Test("--no-auth: no key needed; every request is tenant default with operator rights")
    func noAuth() async throws {
        let state = TestState()
        defer { state.remove() }
        let api = try state.api { $0.authRequired = false }
        try await Application(router: api.router()).test(.router) { client in
            #expect(try await client.call(.get, "/metrics", key: nil).status == .ok)
            let created = try await client.call(.post, "/v1/runs", key: nil, body: #"{"command":["/bin/true"]}"#)
            #expect(created.status == .created)
            let id = try #require(try created.object()["id"] as? String)
            #expect(api.store.tenant(of: id) == "default")
            #expect(try await client.call(.get, "/v1/runs/\(id)", key: nil).status == .ok)
        }
    }

    @Test("a live server on a real socket: 401 without the key, the run with it")
    func live() async throws {
        let state = TestState()
        defer { state.remove() }
        let api = try state.api { $0.port = 0 }
        let path = try #require(try api.bootstrapKeyIfNeeded())
        let key = try #require(FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .newlines) })
        let app = Application(router: api.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in
            #expect(try await client.call(.get, "/healthz", key: nil).status == .ok)
            let refused = try await client.call(.post, "/v1/runs", key: nil, body: #"{"language":"sh","code":"echo live"}"#)
            #expect(refused.status == .unauthorized)
            #expect(refused.headers[.wwwAuthenticate] == "Bearer")
            let run = try await client.call(.post, "/v1/runs", key: key, body: #"{"language":"sh","code":"echo live"}"#)
            #expect(run.status == .created)
            #expect(try run.object()["stdout"] as? String == "live\n")
        }
    }
}
