import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import SealboxJail
import SealboxServer
import Testing

/// Graceful shutdown: no new runs, a grace period for the running ones, then their jails are
/// killed and every caller still gets an answer.
@Suite("HTTP API shutdown", .serialized)
struct ShutdownTests {
    static func waitUntilRunning(_ api: SealboxAPI, _ count: Int) async throws {
        for _ in 0..<500 {
            if await api.admission.load.running == count { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw TestFailure("never saw \(count) runs executing")
    }

    @Test("past the grace period a running jail is killed, its caller gets a result saying why, new runs get 503")
    func killsAfterGrace() async throws {
        let api = try APITests.api { $0.shutdownGrace = .milliseconds(300) }
        try await Application(router: api.router()).test(.router) { client in
            async let long = APITests.post(client, #"{"command":["/bin/sleep","30"],"limits":{"timeout_ms":60000}}"#)
            try await Self.waitUntilRunning(api, 1)
            let started = ContinuousClock.now
            async let drained = api.drain(reason: "test")
            try await Task.sleep(for: .milliseconds(50))
            let refused = try await APITests.post(client, #"{"command":["/bin/true"]}"#)
            #expect(refused.status == .serviceUnavailable)
            #expect(refused.headers[.retryAfter] == "5")
            #expect(try APITests.object(refused)["error"].flatMap { ($0 as? [String: Any])?["code"] as? String } == "shutting_down")
            let response = try await long
            let killed = await drained
            #expect(killed == 1)
            #expect(ContinuousClock.now - started < .seconds(10))
            let result = try APITests.object(response)
            #expect(result["status"] as? String == "signaled")
            #expect(result["signal"] as? Int == 9)
            #expect((result["error"] as? String)?.contains("the service shut down (test)") == true, "\(result)")
            #expect(api.liveJails.count == 0)
        }
    }

    @Test("a run that ends within the grace period finishes normally")
    func finishesWithinGrace() async throws {
        let api = try APITests.api { $0.shutdownGrace = .seconds(20) }
        try await Application(router: api.router()).test(.router) { client in
            async let short = APITests.post(client, #"{"command":["/bin/sh","-c","sleep 0.5; echo done"]}"#)
            try await Self.waitUntilRunning(api, 1)
            let killed = await api.drain(reason: "test")
            #expect(killed == 0)
            let result = try APITests.object(try await short)
            #expect(result["status"] as? String == "ok")
            #expect(result["stdout"] as? String == "done\n")
            #expect(result["error"] == nil)
        }
    }
}
