import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import SealboxBase
@testable import SealboxServer
import SealboxSQLite
import SealboxTestSupport
import Testing

/// Running runs: listed (`GET /v1/runs?state=running`) and cancelled (`DELETE /v1/runs/{id}`),
/// each tenant its own.
@Suite("Running runs: list and cancel", .needsRoot)
struct RunCancelTests {
    @Test("a running run is listed for its tenant, cancelled by it (not by another), and its result says cancelled")
    func listAndCancel() async throws {
        let service = try SandboxAPITests.service()
        try await Application(router: service.api.router()).test(.live) { client in
            let started = ContinuousClock.now
            // On a connection of its own: the test client has one, which this run holds for its length.
            let port = try #require(client.port)
            let run = Task {
                try await offPool {
                    try RawHTTP.request(port: port, method: "POST", "/v1/runs", key: service.a,
                                        body: Array(#"{"command":["/bin/sh","-c","sleep 30"],"limits":{"timeout_ms":60000}}"#.utf8), timeout: 60)
                }
            }
            var id: String?
            let deadline = ContinuousClock.now + .seconds(20)
            while id == nil, ContinuousClock.now < deadline {
                let listed = try await client.call(.get, "/v1/runs?state=running", key: service.a)
                id = (try listed.object()["runs"] as? [[String: Any]])?.first?["id"] as? String
                if id == nil { try await Task.sleep(for: .milliseconds(20)) }
            }
            let runID = try #require(id, "the run never showed as running")
            #expect(try (await client.call(.get, "/v1/runs", key: service.b).object()["runs"] as? [Any])?.isEmpty == true)
            #expect(try await client.call(.delete, "/v1/runs/\(runID)", key: service.b).status == .notFound, "another tenant's run")
            let cancel = try await client.call(.delete, "/v1/runs/\(runID)", key: service.a)
            #expect(cancel.status == .accepted, "\(cancel.text)")
            let result = try await run.value
            #expect(result.status == 201, "\(result.body)")
            #expect(result.json?["status"] as? String == "cancelled", "\(result.body)")
            #expect(ContinuousClock.now - started < .seconds(25), "the sleep did not run to its end")
            #expect(try await client.call(.get, "/v1/runs/\(runID)", key: service.a).object()["status"] as? String == "cancelled")
            #expect(try (await client.call(.get, "/v1/runs?state=running", key: service.a).object()["runs"] as? [Any])?.isEmpty == true)
            #expect(try await client.call(.delete, "/v1/runs/\(runID)", key: service.a).status == .notFound, "finished: nothing to cancel")
            #expect(try await client.call(.get, "/v1/runs?state=finished", key: service.a).status == .badRequest)
        }
    }

    @Test("a finished result outlives the server: a restarted one answers GET /v1/runs/{id} for its tenant only")
    func resultsOutliveRestart() async throws {
        let service = try SandboxAPITests.service()
        let id = try await Application(router: service.api.router()).test(.live) { client in
            let ran = try await client.call(.post, "/v1/runs", key: service.a, body: #"{"language":"python","code":"print('kept')"}"#)
            return try #require(try ran.object()["id"] as? String, "\(ran.text)")
        }
        let restarted = try SealboxAPI(configuration: service.api.configuration, executor: try APITests.executor.get(),
                                       access: try SQLiteAccessStore.open(layout: service.api.configuration.layout))
        try await Application(router: restarted.router()).test(.live) { client in
            let kept = try await client.call(.get, "/v1/runs/\(id)", key: service.a)
            #expect(try kept.status == .ok && kept.object()["stdout"] as? String == "kept\n", "\(kept.text)")
            #expect(try await client.call(.get, "/v1/runs/\(id)", key: service.b).status == .notFound)
        }
    }
}
