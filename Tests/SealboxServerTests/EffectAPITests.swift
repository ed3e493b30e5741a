import SealboxBase
import Foundation
import HTTPTypes
import Hummingbird
import SealboxAccess
import HummingbirdTesting
import SealboxLedger
import SealboxSQLite
@testable import SealboxServer
import Testing

/// /v1/effects, /v1/profiles and the effects metrics over a real effect log (written with the
/// Ledger API, as the broker writes it) and a real keys.db, in temp directories.
@Suite("Effects, profiles and effects metrics over HTTP")
struct EffectAPITests {
    /// A log with calls in several states and sessions, the sessions claimed by tenants:
    ///   sa (tenant-a): sealed idempotent, awaiting_approval idempotent
    ///   sb (tenant-b): in_doubt irreversible, awaiting_approval irreversible
    ///   stray (nobody's): sealed read
    struct Fixture {
        var state: TestState
        var api: SealboxAPI
        var ledger: Ledger
        var operatorKey: CreatedAPIKey
        var a: CreatedAPIKey
        var b: CreatedAPIKey
        var sealedA: Int64
        var awaitingA: Int64
        var inDoubtB: Int64
        var awaitingB: Int64
        var stray: Int64

        static func make(_ name: String = #function) async throws -> Fixture {
            let state = TestState(name)
            let api = try state.api()
            let ledger = try Ledger(path: state.layout.ledgerPath)
            func intent(_ session: String, _ tool: String, _ effect: EffectClass, _ approval: Approval = .auto) -> IntentInput {
                IntentInput(runID: "run-\(session)", sessionID: session, tool: tool, effectClass: effect, idempotencyKey: UUID().uuidString,
                            target: "https://api.example.com/\(tool)", argsDigest: String(repeating: "ab", count: 32), approval: approval,
                            tokenID: "tok-\(session)", fresh: false)
            }
            func complete(_ seq: Int64) async throws {
                _ = try await ledger.appendCompletion(CompletionInput(
                    intentSeq: seq, status: "ok", response: #"{"ok":true}"#, responseDigest: String(repeating: "cd", count: 32),
                    resourceVersion: nil, irreversible: false, happened: true, durationMs: 1))
            }
            let sealedA = try await ledger.appendIntent(intent("sa", "create_issue", .idempotent), state: .pending).seq
            try await complete(sealedA)
            let awaitingA = try await ledger.appendIntent(intent("sa", "send_mail", .idempotent, .human), state: .awaitingApproval).seq
            let inDoubtB = try await ledger.appendIntent(intent("sb", "charge_card", .irreversible), state: .pending).seq
            let awaitingB = try await ledger.appendIntent(intent("sb", "wire_money", .irreversible, .human), state: .awaitingApproval).seq
            let stray = try await ledger.appendIntent(intent("stray", "get_weather", .read), state: .pending).seq
            try await complete(stray)
            // The broker died while charging the card: the irreversible call is in doubt.
            let moved = try await ledger.markInterrupted(actor: "test")
            #expect(moved.map(\.intentSeq) == [inDoubtB])
            try api.access.tenants.claim(session: "sa", tenant: "tenant-a")
            try api.access.tenants.claim(session: "sb", tenant: "tenant-b")
            return Fixture(
                state: state, api: api, ledger: ledger,
                operatorKey: try api.access.keys.create(tenant: "ops", isOperator: true),
                a: try api.access.keys.create(tenant: "tenant-a", isOperator: false),
                b: try api.access.keys.create(tenant: "tenant-b", isOperator: false),
                sealedA: sealedA, awaitingA: awaitingA, inDoubtB: inDoubtB, awaitingB: awaitingB, stray: stray)
        }

        func test(_ body: @escaping @Sendable (any TestClientProtocol) async throws -> Void) async throws {
            try await Application(router: api.router()).test(.router, body)
        }
    }

    static func seqs(_ response: TestResponse) throws -> [Int64] {
        let calls = try #require(try response.object()["calls"] as? [[String: Any]], "\(response.text)")
        return calls.compactMap { ($0["intent_seq"] as? NSNumber)?.int64Value }
    }

    static func nextAfter(_ response: TestResponse) throws -> Int64? {
        (try response.object()["next_after"] as? NSNumber)?.int64Value
    }

    @Test("GET /v1/effects: a tenant sees the calls of its own sessions; an operator sees all; filters and paging")
    func listing() async throws {
        let f = try await Fixture.make()
        defer { f.state.remove() }
        try await f.test { client in
            let a = try await client.call(.get, "/v1/effects", key: f.a.key)
            #expect(a.status == .ok)
            #expect(try Self.seqs(a) == [f.sealedA, f.awaitingA])
            #expect(try a.object().keys.contains("next_after"))
            #expect(try Self.nextAfter(a) == nil)
            #expect(try Self.seqs(try await client.call(.get, "/v1/effects", key: f.b.key)) == [f.inDoubtB, f.awaitingB])
            #expect(try Self.seqs(try await client.call(.get, "/v1/effects", key: f.operatorKey.key)) == [f.sealedA, f.awaitingA, f.inDoubtB, f.awaitingB, f.stray])
            // Another tenant's session, or nobody's, reads as empty.
            #expect(try Self.seqs(try await client.call(.get, "/v1/effects?session=sb", key: f.a.key)) == [])
            #expect(try Self.seqs(try await client.call(.get, "/v1/effects?session=stray", key: f.a.key)) == [])
            #expect(try Self.seqs(try await client.call(.get, "/v1/effects?session=sa", key: f.a.key)) == [f.sealedA, f.awaitingA])
            #expect(try Self.seqs(try await client.call(.get, "/v1/effects?state=awaiting_approval", key: f.operatorKey.key)) == [f.awaitingA, f.awaitingB])
            #expect(try Self.seqs(try await client.call(.get, "/v1/effects?state=awaiting_approval", key: f.b.key)) == [f.awaitingB])
            #expect(try Self.seqs(try await client.call(.get, "/v1/effects?tool=charge_card", key: f.a.key)) == [])
            #expect(try Self.seqs(try await client.call(.get, "/v1/effects?tool=charge_card&run=run-sb", key: f.b.key)) == [f.inDoubtB])
            // Paging a tenant's view: one per page, next_after chains them; the last page says null.
            let first = try await client.call(.get, "/v1/effects?limit=1", key: f.b.key)
            #expect(try Self.seqs(first) == [f.inDoubtB])
            let after = try #require(try Self.nextAfter(first))
            let second = try await client.call(.get, "/v1/effects?limit=1&after=\(after)", key: f.b.key)
            #expect(try Self.seqs(second) == [f.awaitingB])
            #expect(try Self.nextAfter(second) == nil)
            let operatorPage = try await client.call(.get, "/v1/effects?limit=2", key: f.operatorKey.key)
            #expect(try Self.seqs(operatorPage) == [f.sealedA, f.awaitingA])
            #expect(try Self.nextAfter(operatorPage) == f.awaitingA)
        }
    }

    @Test("GET /v1/effects: a bad query parameter is a 400 naming it", arguments: [
        ("limit=0", "limit"), ("limit=1001", "limit"), ("limit=x", "limit"), ("state=bogus", "state"), ("after=-1", "after"),
        ("sesion=sa", "sesion"), ("session=sa&session=sb", "session"), ("session=", "session"),
    ])
    func badQuery(query: String, field: String) async throws {
        let f = try await Fixture.make()
        defer { f.state.remove() }
        try await f.test { client in
            let response = try await client.call(.get, "/v1/effects?\(query)", key: f.a.key)
            #expect(response.status == .badRequest, "\(query): \(response.text)")
            #expect(try response.errorField() == field)
        }
    }

    @Test("a tenant listing in a large log stops at the scan budget and says where to go on")
    func scanBudget() async throws {
        let state = TestState()
        defer { state.remove() }
        let api = try state.api()
        let ledger = try Ledger(path: state.layout.ledgerPath)
        // 3 calls of tenant a, then more of nobody's than one request reads, then 1 more of a's.
        func intent(_ session: String) -> IntentInput {
            IntentInput(runID: "r", sessionID: session, tool: "t", effectClass: .read, idempotencyKey: UUID().uuidString, target: "x",
                        argsDigest: "d", approval: .auto, tokenID: "k", fresh: false)
        }
        var mine: [Int64] = []
        for _ in 0..<3 { mine.append(try await ledger.appendIntent(intent("mine"), state: .pending).seq) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<(SealboxAPI.effectScanBudget + 500) { group.addTask { _ = try await ledger.appendIntent(intent("noise"), state: .pending) } }
            try await group.waitForAll()
        }
        let last = try await ledger.appendIntent(intent("mine"), state: .pending).seq
        try api.access.tenants.claim(session: "mine", tenant: "a")
        let key = try api.access.keys.create(tenant: "a", isOperator: false).key
        try await Application(router: api.router()).test(.router) { [mine] client in
            let first = try await client.call(.get, "/v1/effects?limit=10", key: key)
            #expect(try Self.seqs(first) == mine)
            let cursor = try #require(try Self.nextAfter(first))
            #expect(cursor == Int64(SealboxAPI.effectScanBudget))
            let second = try await client.call(.get, "/v1/effects?limit=10&after=\(cursor)", key: key)
            #expect(try Self.seqs(second) == [last])
            #expect(try Self.nextAfter(second) == nil)
        }
    }

    @Test("GET /v1/effects/{seq}: the call and its records for its tenant and operators; 404 for anyone else, a missing seq or a record that is no call")
    func detail() async throws {
        let f = try await Fixture.make()
        defer { f.state.remove() }
        try await f.test { client in
            let own = try await client.call(.get, "/v1/effects/\(f.sealedA)", key: f.a.key)
            #expect(own.status == .ok, "\(own.text)")
            let body = try own.object()
            #expect((body["call"] as? [String: Any])?["state"] as? String == "sealed")
            let records = try #require(body["records"] as? [[String: Any]])
            #expect(records.map { $0["kind"] as? String } == ["intent", "completion"])
            // The completion's seq leads to the same call.
            let bySecond = try await client.call(.get, "/v1/effects/\(f.sealedA + 1)", key: f.a.key)
            #expect(((try bySecond.object()["call"] as? [String: Any])?["intent_seq"] as? NSNumber)?.int64Value == f.sealedA)
            #expect(try await client.call(.get, "/v1/effects/\(f.sealedA)", key: f.b.key).status == .notFound)
            #expect(try await client.call(.get, "/v1/effects/\(f.stray)", key: f.a.key).status == .notFound)
            #expect(try await client.call(.get, "/v1/effects/\(f.stray)", key: f.operatorKey.key).status == .ok)
            #expect(try await client.call(.get, "/v1/effects/999999", key: f.operatorKey.key).status == .notFound)
            // The interruption record of the in-doubt call is part of that call.
            let interruption = try await client.call(.get, "/v1/effects/\(f.stray + 2)", key: f.b.key)
            #expect(interruption.status == .ok, "\(interruption.text)")
            let bad = try await client.call(.get, "/v1/effects/abc", key: f.a.key)
            #expect(bad.status == .badRequest)
            #expect(try bad.errorField() == "seq")
        }
    }

    @Test("approve, deny and resolve change the log's state with the key as actor; a wrong state is 409 in the ledger's words")
    func decisions() async throws {
        let f = try await Fixture.make()
        defer { f.state.remove() }
        try await f.test { client in
            let approved = try await client.call(.post, "/v1/effects/\(f.awaitingA)/approve", key: f.operatorKey.key, body: "{}")
            #expect(approved.status == .ok, "\(approved.text)")
            #expect(try f.ledger.call(intentSeq: f.awaitingA)?.state == .approved)
            #expect(((try approved.object()["call"] as? [String: Any])?["state"] as? String) == "approved")
            let record = try #require(try approved.object()["record"] as? [String: Any])
            #expect(record["actor"] as? String == "api-key:\(f.operatorKey.info.id)")

            let again = try await client.call(.post, "/v1/effects/\(f.awaitingA)/approve", key: f.operatorKey.key)
            #expect(again.status == .conflict)
            #expect(try again.errorCode() == "conflict")
            let message = try #require((try again.object()["error"] as? [String: Any])?["message"] as? String)
            #expect(message.contains("approved"), "\(message)")

            let denied = try await client.call(.post, "/v1/effects/\(f.awaitingB)/deny", key: f.operatorKey.key, body: #"{"note":"not today"}"#)
            #expect(denied.status == .ok, "\(denied.text)")
            #expect(try f.ledger.call(intentSeq: f.awaitingB)?.state == .denied)
            #expect(try f.ledger.records(forIntent: f.awaitingB).last?.note == "not today")

            let resolved = try await client.call(.post, "/v1/effects/\(f.inDoubtB)/resolve", key: f.operatorKey.key, body: #"{"happened":true,"note":"charged, per the bank"}"#)
            #expect(resolved.status == .ok, "\(resolved.text)")
            #expect(try f.ledger.call(intentSeq: f.inDoubtB)?.state == .resolvedHappened)
            #expect(try f.ledger.verify().ok)

            // A sealed call cannot be resolved or approved.
            #expect(try await client.call(.post, "/v1/effects/\(f.sealedA)/resolve", key: f.operatorKey.key, body: #"{"happened":false}"#).status == .conflict)
            #expect(try await client.call(.post, "/v1/effects/\(f.sealedA)/approve", key: f.operatorKey.key, body: "{}").status == .conflict)
            #expect(try f.ledger.call(intentSeq: f.sealedA)?.state == .sealed)
            // Unknown seq, and a record that is not an intent.
            #expect(try await client.call(.post, "/v1/effects/424242/approve", key: f.operatorKey.key, body: "{}").status == .notFound)
            #expect(try await client.call(.post, "/v1/effects/\(f.sealedA + 1)/approve", key: f.operatorKey.key, body: "{}").status == .notFound)
            // Tenant keys may not decide, not even on their own calls.
            #expect(try await client.call(.post, "/v1/effects/\(f.sealedA)/deny", key: f.a.key, body: "{}").status == .forbidden)
        }
    }

    @Test("decision bodies are strict: unknown fields, wrong types and missing happened are 400 naming the field", arguments: [
        ("resolve", "{}", "happened"), ("resolve", "", "happened"), ("resolve", #"{"happened":1}"#, "happened"),
        ("resolve", #"{"happened":"yes"}"#, "happened"), ("resolve", #"{"happened":true,"why":"x"}"#, "why"),
        ("approve", #"{"note":"x"}"#, "note"), ("deny", #"{"note":5}"#, "note"), ("deny", #"{"happened":true}"#, "happened"),
    ])
    func strictBodies(kind: String, body: String, field: String) async throws {
        let f = try await Fixture.make()
        defer { f.state.remove() }
        try await f.test { client in
            let seq = kind == "resolve" ? f.inDoubtB : f.awaitingA
            let response = try await client.call(.post, "/v1/effects/\(seq)/\(kind)", key: f.operatorKey.key, body: body)
            #expect(response.status == .badRequest, "\(kind) \(body): \(response.text)")
            #expect(try response.errorField() == field, "\(kind) \(body): \(response.text)")
            #expect(try f.ledger.call(intentSeq: seq)?.state == (kind == "resolve" ? .inDoubt : .awaitingApproval))
        }
    }

    @Test("decision bodies: not JSON, not an object, a note too long: 400")
    func malformedBodies() async throws {
        let f = try await Fixture.make()
        defer { f.state.remove() }
        try await f.test { client in
            for body in ["nope", "[1]", #"{"note":"\#(String(repeating: "n", count: EffectDecisionBody.maxNoteBytes + 1))"}"#] {
                let response = try await client.call(.post, "/v1/effects/\(f.awaitingA)/deny", key: f.operatorKey.key, body: body)
                #expect(response.status == .badRequest, "\(body.prefix(40)): \(response.text)")
            }
            #expect(try f.ledger.call(intentSeq: f.awaitingA)?.state == .awaitingApproval)
        }
    }

    @Test("no effect log yet: empty listing, 404 for a seq, zero counts in /metrics, and the API does not create the file")
    func noLedger() async throws {
        let state = TestState()
        defer { state.remove() }
        let api = try state.api()
        let key = try api.access.keys.create(tenant: "ops", isOperator: true).key
        try await Application(router: api.router()).test(.router) { client in
            let list = try await client.call(.get, "/v1/effects", key: key)
            #expect(list.status == .ok)
            #expect(try Self.seqs(list) == [])
            #expect(try await client.call(.get, "/v1/effects/1", key: key).status == .notFound)
            #expect(try await client.call(.post, "/v1/effects/1/resolve", key: key, body: #"{"happened":true}"#).status == .notFound)
            let samples = prometheusSamples(try await client.call(.get, "/metrics", key: key).text)
            #expect(samples["sealbox_effect_log_up"] == 1)
            #expect(samples["sealbox_effects{class=\"irreversible\",state=\"in_doubt\"}"] == 0)
        }
        #expect(!FileManager.default.fileExists(atPath: state.layout.ledgerPath))
    }

    @Test("GET /metrics: sealbox_effects by class and state, counted from the log at scrape time")
    func metrics() async throws {
        let f = try await Fixture.make()
        defer { f.state.remove() }
        try await f.test { client in
            var samples = prometheusSamples(try await client.call(.get, "/metrics", key: f.operatorKey.key).text)
            #expect(samples["sealbox_effects{class=\"idempotent\",state=\"sealed\"}"] == 1)
            #expect(samples["sealbox_effects{class=\"idempotent\",state=\"awaiting_approval\"}"] == 1)
            #expect(samples["sealbox_effects{class=\"irreversible\",state=\"in_doubt\"}"] == 1)
            #expect(samples["sealbox_effects{class=\"irreversible\",state=\"awaiting_approval\"}"] == 1)
            #expect(samples["sealbox_effects{class=\"read\",state=\"sealed\"}"] == 1)
            #expect(samples["sealbox_effects{class=\"hybrid\",state=\"pending\"}"] == 0)
            #expect(samples.keys.filter { $0.hasPrefix("sealbox_effects{") }.count == EffectClass.allCases.count * CallState.allCases.count)
            // A decision through the API moves a call between series at the next scrape.
            _ = try await client.call(.post, "/v1/effects/\(f.inDoubtB)/resolve", key: f.operatorKey.key, body: #"{"happened":false}"#)
            samples = prometheusSamples(try await client.call(.get, "/metrics", key: f.operatorKey.key).text)
            #expect(samples["sealbox_effects{class=\"irreversible\",state=\"in_doubt\"}"] == 0)
            #expect(samples["sealbox_effects{class=\"irreversible\",state=\"resolved_not_happened\"}"] == 1)
            #expect(samples["sealbox_effect_log_up"] == 1)
        }
        // A new server over the same files counts the same: nothing is kept in memory.
        let restarted = try f.state.api()
        let key = try restarted.access.keys.create(tenant: "ops2", isOperator: true).key
        try await Application(router: restarted.router()).test(.router) { client in
            let samples = prometheusSamples(try await client.call(.get, "/metrics", key: key).text)
            #expect(samples["sealbox_effects{class=\"irreversible\",state=\"resolved_not_happened\"}"] == 1)
            #expect(samples["sealbox_effects{class=\"idempotent\",state=\"sealed\"}"] == 1)
        }
    }

    @Test("GET /v1/profiles: the profiles/*.json the key may use (by default all but permissive) with comment, default action and rule count")
    func profiles() async throws {
        let state = TestState()
        defer { state.remove() }
        let api = try state.api()
        let key = try api.access.keys.create(tenant: "acme", isOperator: false).key
        let source = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: APITests.repoRoot + "/profiles/default.json"))) as? [String: Any])
        let comment = try #require(source["comment"] as? String)
        let rules = try #require((source["syscalls"] as? [Any])?.count)
        try await Application(router: api.router()).test(.router) { client in
            let response = try await client.call(.get, "/v1/profiles", key: key)
            #expect(response.status == .ok)
            let body = try response.object()
            #expect(body["truncated"] as? Bool == false)
            let profiles = try #require(body["profiles"] as? [[String: Any]])
            #expect(profiles.map { $0["name"] as? String } == ["default", "node", "python", "strict"])
            let standard = profiles[0]
            #expect(standard["comment"] as? String == comment)
            #expect((standard["comment"] as? String)?.hasPrefix("sealbox default profile") == true)
            #expect(standard["default_action"] as? String == "SCMP_ACT_ERRNO")
            #expect(standard["syscall_rules"] as? Int == rules)
            #expect(standard["error"] == nil)
            // A key granted every profile sees permissive too; one granted two sees those two.
            let everything = try api.access.keys.create(tenant: "acme", isOperator: false, profiles: .all).key
            let all = try await client.call(.get, "/v1/profiles", key: everything).object()["profiles"] as? [[String: Any]]
            #expect(all?.map { $0["name"] as? String } == ["default", "node", "permissive", "python", "strict"])
            let two = try api.access.keys.create(tenant: "acme", isOperator: false, profiles: .only(["strict", "python"])).key
            let listed = try await client.call(.get, "/v1/profiles", key: two).object()["profiles"] as? [[String: Any]]
            #expect(listed?.map { $0["name"] as? String } == ["python", "strict"])
        }
    }
}
