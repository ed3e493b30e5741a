import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import SealboxJail
import SealboxServer
import Testing

/// The run limits at the API: decoded and checked from `LimitTable`, refused by field, and
/// documented with the server's own maxima.
@Suite("HTTP API limits")
struct LimitAPITests {
    /// `RunRequest.limits` of an OpenAPI document.
    static func limitsSchema(_ document: [String: Any]) throws -> [String: Any] {
        let components = try #require(document["components"] as? [String: Any])
        let schemas = try #require(components["schemas"] as? [String: Any])
        let request = try #require(schemas["RunRequest"] as? [String: Any])
        return try #require((request["properties"] as? [String: Any])?["limits"] as? [String: Any])
    }

    static func object(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    @Test("a negative number for a size is a 400 naming limits.memory_bytes, not a body that is not JSON", arguments: [
        (#"{"language":"python","code":"1","limits":{"memory_bytes":-5}}"#, "limits.memory_bytes", "limits.memory_bytes must not be negative"),
        (#"{"language":"python","code":"1","limits":{"disk_bytes":-1}}"#, "limits.disk_bytes", "limits.disk_bytes must not be negative"),
        (#"{"language":"python","code":"1","limits":{"pids":-5}}"#, "limits.pids", "limits.pids must not be negative"),
        (#"{"language":"python","code":"1","limits":{"cpus":-1}}"#, "limits.cpus", "limits.cpus must be at least 0.01"),
        (#"{"language":"python","code":"1","limits":{"memory_bytes":1024}}"#, "limits.memory_bytes", "limits.memory_bytes must be at least 4194304"),
    ])
    func negative(body: String, field: String, message: String) async throws {
        try await APITests.app(APITests.api()).test(.router) { client in
            let response = try await APITests.post(client, body)
            #expect(response.status == .badRequest)
            let error = try #require(try APITests.object(response)["error"] as? [String: Any])
            #expect(error["field"] as? String == field, "\(error)")
            #expect(error["message"] as? String == message, "\(error)")
        }
    }

    @Test("docs/openapi.json's limits are the table's, with the documented maxima")
    func documented() throws {
        let document = try OpenAPIDocumentTests.document()
        // Both read and written back the same way, so only a difference in content shows.
        func canonical(_ object: [String: Any]) throws -> String {
            String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]), as: UTF8.self)
        }
        let expected = try canonical(try Self.object(OpenAPIDocument.documentedLimits.jsonText))
        let documented = try canonical(try Self.limitsSchema(document))
        #expect(documented == expected, "docs/openapi.json's RunRequest.limits differs from LimitTable's; replace it with: \(OpenAPIDocument.documentedLimits.jsonText)")
    }

    @Test("GET /openapi.json shows the operator's maxima (--max-memory 8G) and the host's CPU count")
    func served() async throws {
        let api = try APITests.api { $0.maxLimits = try! LimitTable.maxima(fromFlags: [.memoryBytes: "8G", .outputBytes: "1M"]) }
        try await APITests.app(api).test(.router) { client in
            let response = try await client.execute(uri: "/openapi.json", method: .get)
            #expect(response.status == .ok)
            let served = try #require(try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any])
            let limits = try Self.limitsSchema(served)
            let properties = try #require(limits["properties"] as? [String: [String: Any]])
            #expect((properties["memory_bytes"]?["maximum"] as? NSNumber)?.int64Value == 8 << 30)
            #expect((properties["shm_bytes"]?["maximum"] as? NSNumber)?.int64Value == 8 << 30)
            #expect((properties["output_bytes"]?["maximum"] as? NSNumber)?.int64Value == 1 << 20)
            #expect((properties["cpus"]?["maximum"] as? NSNumber)?.doubleValue == Double(ProcessInfo.processInfo.activeProcessorCount))
            #expect(limits["description"] as? String == OpenAPIDocument.servedLimitsNote)

            // What the server says it takes, it takes: 8G is accepted, one byte more is not.
            let body = { (memory: Int) in #"{"command":["/bin/true"],"limits":{"memory_bytes":\#(memory)}}"# }
            let taken = try await APITests.post(client, body(8 << 30))
            #expect(taken.status == .created, "\(String(buffer: taken.body))")
            let refused = try await APITests.post(client, body((8 << 30) + 1))
            #expect(refused.status == .badRequest)
            #expect((try APITests.object(refused)["error"] as? [String: Any])?["field"] as? String == "limits.memory_bytes")
        }
    }
}
