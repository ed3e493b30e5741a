import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import SealboxJail
import SealboxServer
import Testing

/// docs/openapi.json is the API's contract: it must be valid enough to drive schemathesis
/// (scripts/api-fuzz.sh) and describe every route the server has.
@Suite("OpenAPI document")
struct OpenAPIDocumentTests {
    static func document() throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: ServerTestSupport.repoRoot + "/docs/openapi.json"))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    @Test("GET /openapi.json serves docs/openapi.json, an OpenAPI 3.1 document, with the server's own limits")
    func served() async throws {
        let api = try APITests.api()
        try await Application(router: api.router()).test(.router) { client in
            let response = try await client.execute(uri: "/openapi.json", method: .get)
            #expect(response.status == .ok)
            let served = try #require(try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any])
            #expect(served["openapi"] as? String == "3.1.0")
            // The repository's document, but RunRequest.limits: this server's maxima (LimitAPITests).
            let limits = LimitSchema.request(defaults: api.configuration.defaultLimits, maxima: api.configuration.maxLimits,
                                             description: OpenAPIDocument.servedLimitsNote)
            let expected = try OpenAPIDocument.serving(try Data(contentsOf: URL(fileURLWithPath: ServerTestSupport.repoRoot + "/docs/openapi.json")), limits: limits)
            #expect(NSDictionary(dictionary: served).isEqual(to: try #require(try JSONSerialization.jsonObject(with: expected) as? [String: Any])))
            #expect(NSDictionary(dictionary: Self.withoutLimits(served)).isEqual(to: Self.withoutLimits(try Self.document())))
        }
    }

    /// A document with RunRequest.limits taken out: what the server serves as the repository has it.
    static func withoutLimits(_ document: [String: Any]) -> [String: Any] {
        var root = document
        var components = root["components"] as? [String: Any] ?? [:]
        var schemas = components["schemas"] as? [String: Any] ?? [:]
        var request = schemas["RunRequest"] as? [String: Any] ?? [:]
        var properties = request["properties"] as? [String: Any] ?? [:]
        properties["limits"] = nil
        request["properties"] = properties
        schemas["RunRequest"] = request
        components["schemas"] = schemas
        root["components"] = components
        return root
    }

    @Test("every documented operation is a route of the server (none answers the router's own 404)")
    func everyOperationIsRouted() async throws {
        let api = try APITests.api()
        let paths = try #require(try Self.document()["paths"] as? [String: [String: Any]])
        let operations = paths.sorted { $0.key < $1.key }.flatMap { path, methods in methods.keys.sorted().map { (path, $0) } }
        #expect(operations.count >= 14)
        try await Application(router: api.router()).test(.router) { client in
            for (path, method) in operations {
                let uri = path.replacingOccurrences(of: "{id}", with: "s0").replacingOccurrences(of: "{seq}", with: "1")
                do {
                    let response = try await client.execute(uri: uri, method: HTTPRequest.Method(method.uppercased())!,
                                                            headers: [.contentType: "application/json"], body: ByteBuffer(string: "{}"))
                    // Our handlers answer every error with a JSON body; an unknown route gets the
                    // router's bare 404.
                    let routed = response.status != .notFound || response.body.readableBytes > 0
                    #expect(routed, "\(method.uppercased()) \(path) is documented but not routed")
                }
            }
        }
    }
}
