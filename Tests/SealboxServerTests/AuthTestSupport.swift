import SealboxBase
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import SealboxJail
@testable import SealboxServer
import SealboxSQLite
import Testing

/// A fresh state directory per test (keys.db, effects.db, api-key), removed by `remove()`.
struct TestState {
    let path: String

    init(_ name: String = #function) {
        let safe = name.filter { $0.isLetter || $0.isNumber }
        path = NSTemporaryDirectory() + "sealbox-server-tests/\(safe)-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    var layout: StateLayout { StateLayout(stateDirectory: path) }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }

    /// An API over this state directory, auth on unless `configure` says otherwise.
    func api(_ configure: (inout ServerConfiguration) -> Void = { _ in }) throws -> SealboxAPI {
        var configuration = ServerConfiguration(layout: layout, maxConcurrentRuns: 2, maxQueuedRuns: 4)
        configure(&configuration)
        return try SealboxAPI(configuration: configuration, executor: try APITests.executor.get(),
                              access: try SQLiteAccessStore.open(layout: configuration.layout))
    }
}

extension TestResponse {
    var text: String { String(buffer: body) }

    func object() throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any], "not a JSON object: \(text)")
    }

    /// `error.code` of an API error body.
    func errorCode() throws -> String? {
        (try object()["error"] as? [String: Any])?["code"] as? String
    }

    func errorField() throws -> String? {
        (try object()["error"] as? [String: Any])?["field"] as? String
    }
}

extension TestClientProtocol {
    /// A request with `Authorization: Bearer key` (none when key is nil).
    func call(_ method: HTTPRequest.Method, _ uri: String, key: String?, body: String? = nil) async throws -> TestResponse {
        var headers: HTTPFields = [:]
        if let key { headers[.authorization] = "Bearer \(key)" }
        if body != nil { headers[.contentType] = "application/json" }
        return try await execute(uri: uri, method: method, headers: headers, body: body.map { ByteBuffer(string: $0) })
    }
}

/// Prometheus text → sample name with labels → value.
func prometheusSamples(_ text: String) -> [String: Double] {
    var samples: [String: Double] = [:]
    for line in text.split(separator: "\n") where !line.hasPrefix("#") {
        let parts = line.split(separator: " ")
        if parts.count == 2 { samples[String(parts[0])] = Double(parts[1]) }
    }
    return samples
}
