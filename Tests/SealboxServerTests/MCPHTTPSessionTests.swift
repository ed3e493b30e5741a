import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
@testable import SealboxMCP
@testable import SealboxServer
import Testing

/// /mcp's sessions are bounded in number and expire (the end-to-end protocol checks, with the
/// official Python SDK, are in SealboxCLITests' MCPClientTests).
@Suite("MCP at /mcp: sessions bounded and expiring")
struct MCPHTTPSessionTests {
    static let initialize = #"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}"#

    static func post(_ client: some TestClientProtocol, key: String, session: String? = nil, body: String) async throws -> TestResponse {
        var headers: HTTPFields = [.authorization: "Bearer \(key)", .contentType: "application/json", .accept: "application/json, text/event-stream"]
        if let session { headers[HTTPField.Name("Mcp-Session-Id")!] = session }
        return try await client.execute(uri: "/mcp", method: .post, headers: headers, body: ByteBuffer(string: body))
    }

    @Test("at most maxSessions live sessions (503 beyond); idle ones expire; a session answers only the key that opened it")
    func bounded() async throws {
        let state = TestState()
        defer { state.remove() }
        let api = try state.api()
        let keys = try AuthAPITests.keys(api)
        var limits = MCPHTTPEndpoint.Configuration()
        limits.maxSessions = 2
        limits.idleTimeout = .seconds(60)
        let endpoint = MCPHTTPEndpoint(api: api, configuration: limits)
        try await Application(router: api.router(mounting: { endpoint.mount(on: $0) })).test(.router) { client in
            var opened: [String] = []
            for _ in 0..<2 {
                let response = try await Self.post(client, key: keys.a.key, body: Self.initialize)
                #expect(response.status == .ok, "\(response.text)")
                #expect(response.text.contains(#""protocolVersion":"2025-11-25""#), "\(response.text)")
                opened.append(try #require(response.headers[HTTPField.Name("Mcp-Session-Id")!]))
            }
            #expect(Set(opened).count == 2)
            #expect(endpoint.sessionCount == 2)
            let refused = try await Self.post(client, key: keys.a.key, body: Self.initialize)
            #expect(refused.status == .serviceUnavailable, "\(refused.text)")
            #expect(refused.headers[.retryAfter] != nil)
            #expect(endpoint.sessionCount == 2)

            // Another key's request on a's session: as if it did not exist.
            let ping = #"{"jsonrpc":"2.0","id":2,"method":"ping"}"#
            let foreign = try await Self.post(client, key: keys.b.key, session: opened[0], body: ping)
            #expect(foreign.status == .notFound, "\(foreign.text)")
            let own = try await Self.post(client, key: keys.a.key, session: opened[0], body: ping)
            #expect(own.status == .ok && own.text.contains(#""result":{}"#), "\(own.text)")

            // Idle past the timeout: both end, and a new one opens.
            endpoint.sweep(now: .now + .seconds(61))
            #expect(endpoint.sessionCount == 0)
            let gone = try await Self.post(client, key: keys.a.key, session: opened[0], body: ping)
            #expect(gone.status == .notFound, "\(gone.text)")
            let again = try await Self.post(client, key: keys.a.key, body: Self.initialize)
            #expect(again.status == .ok, "\(again.text)")
            #expect(endpoint.sessionCount == 1)

            // Without a session, only initialize is taken; a body the strict reader refuses is 400.
            let stray = try await Self.post(client, key: keys.a.key, body: ping)
            #expect(stray.status == .badRequest && stray.text.contains("initialize first"), "\(stray.text)")
            let duplicate = try await Self.post(client, key: keys.a.key, body: #"{"jsonrpc":"2.0","id":1,"id":2,"method":"initialize"}"#)
            #expect(duplicate.status == .badRequest && duplicate.text.contains("duplicate member name"), "\(duplicate.text)")
            #expect(endpoint.sessionCount == 1)
        }
    }

    @Test("a session that has sent its byte budget takes no new request and ends")
    func byteBudget() async throws {
        let state = TestState()
        defer { state.remove() }
        let api = try state.api()
        let keys = try AuthAPITests.keys(api)
        var limits = MCPHTTPEndpoint.Configuration()
        limits.maxSessionBytes = 1
        let endpoint = MCPHTTPEndpoint(api: api, configuration: limits)
        try await Application(router: api.router(mounting: { endpoint.mount(on: $0) })).test(.router) { client in
            let opened = try await Self.post(client, key: keys.a.key, body: Self.initialize)
            #expect(opened.status == .ok, "\(opened.text)")
            let session = try #require(opened.headers[HTTPField.Name("Mcp-Session-Id")!])
            let ping = #"{"jsonrpc":"2.0","id":2,"method":"ping"}"#
            let refused = try await Self.post(client, key: keys.a.key, session: session, body: ping)
            #expect(refused.status == .notFound && refused.text.contains("initialize a new one"), "\(refused.text)")
            endpoint.sweep()
            #expect(endpoint.sessionCount == 0)
        }
    }
}
