import Foundation
import HTTPTypes
import SealboxBase
import SealboxJail
import SealboxRuntime
import SealboxServer
import Synchronization
import Testing

/// `RunService`, the one way a run goes for HTTP and MCP, on its own: what it refuses before a
/// slot is taken, and that a slot once taken is given back whatever the run's end. The
/// executor fails on purpose (no jail is needed to see the slot come back); the HTTP and MCP
/// suites run the same service with real jails.
@Suite("Run service")
struct RunServiceTests {
    static let failingSetup = "no jails in this test"

    /// One slot, one place in the queue; an executor that cannot be made.
    static func service() throws -> RunService {
        let layout = try ServerTestSupport.temporaryLayout()
        let pipeline = RunPipeline(checkpointsPath: layout.checkpointsPath, dataDirectory: ServerTestSupport.repoRoot) { () throws(JailError) -> Executor in
            throw JailError(.setup, failingSetup)
        }
        return RunService(admission: RunAdmission(maxRunning: 1, maxQueued: 1), pipeline: pipeline,
                          profilesDirectory: ServerTestSupport.repoRoot + "/profiles",
                          broker: .perRun(configPath: nil, controlSocket: nil, ledgerPath: layout.ledgerPath))
    }

    static func request(profile: String = "default") throws -> RunRequest {
        try RunRequest.parse(.object(["command": .array([.string("/bin/true")]), "profile": .string(profile)]),
                             defaultLimits: Limits(), maxLimits: Limits())
    }

    static let caller = RunCaller(tenant: "t", profiles: .only(["default"]), name: "key k_test")

    @Test("a profile outside the grant is refused with 403 before a slot is taken")
    func profileRefused() async throws {
        let service = try Self.service()
        let outcome = await service.run(try Self.request(profile: "permissive"), for: Self.caller)
        guard case .failure(.refused(let error)) = outcome else { Issue.record("not refused: \(outcome)"); return }
        #expect(error.code == "profile_not_allowed")
        #expect(error.field == "profile")
        #expect(error.message.contains("key k_test"))
        #expect(await service.admission.load == (0, 0))
    }

    @Test("a session the caller may not use is refused with the caller's answer, before a slot is taken")
    func sessionRefused() async throws {
        let service = try Self.service()
        var request = try Self.request()
        request.session = "s_other"
        let caller = RunCaller(tenant: "t", profiles: .all, name: "key k_test") { session throws(APIError) in
            throw APIError(.notFound, "not_found", "unknown session \(session)", field: "session")
        }
        let outcome = await service.run(request, for: caller)
        guard case .failure(.refused(let error)) = outcome else { Issue.record("not refused: \(outcome)"); return }
        #expect(error.code == "not_found")
        #expect(error.message == "unknown session s_other")
        #expect(await service.admission.load == (0, 0))
    }

    @Test("a run the pipeline cannot carry out gives its slot back, and says why")
    func pipelineFailureReleases() async throws {
        let service = try Self.service()
        let admitted = Flag()
        let outcome = await service.run(try Self.request(), for: Self.caller, admitted: { admitted.set() })
        guard case .failure(.pipeline(let error)) = outcome else { Issue.record("no pipeline failure: \(outcome)"); return }
        #expect(error.code == .jailSetup)
        #expect(error.message.contains(Self.failingSetup))
        #expect(admitted.isSet)
        #expect(await service.admission.load == (0, 0))
    }

    @Test("a full queue answers busy; a caller cancelled while it waits is dropped, never started")
    func busyAndCancelled() async throws {
        let service = try Self.service()
        #expect(await service.admission.tryAcquire(tenant: "t"))
        let admitted = Flag()
        let waiting = Task { await service.run(try Self.request(), for: Self.caller, admitted: { admitted.set() }) }
        for _ in 0..<1000 where await service.admission.load.queued == 0 { try await Task.sleep(for: .milliseconds(5)) }
        #expect(await service.admission.load == (1, 1))
        // The one place in the queue is taken.
        let refused = await service.run(try Self.request(), for: Self.caller)
        guard case .failure(.refused(let busy)) = refused else { Issue.record("not refused: \(refused)"); return }
        #expect(busy.code == "busy")
        #expect(busy.message == "1 runs are executing and 1 are waiting, the most this server takes; retry later")
        waiting.cancel()
        let outcome = try await waiting.value
        guard case .failure(.refused(let gone)) = outcome else { Issue.record("not dropped: \(outcome)"); return }
        #expect(gone.code == "client_closed")
        #expect(!admitted.isSet)
        #expect(await service.admission.load == (1, 0))
        await service.admission.release(tenant: "t")
        #expect(await service.admission.load == (0, 0))
    }
}

/// Set once, read from anywhere.
final class Flag: Sendable {
    private let value = Mutex(false)
    func set() { value.withLock { $0 = true } }
    var isSet: Bool { value.withLock { $0 } }
}
