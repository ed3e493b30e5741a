import Foundation
import Glibc
import SealboxLedger
import SealboxSQLite
import SealboxTestSupport
import Testing
import SealboxBase
@testable import SealboxBroker

/// A real broker (service, control socket, run socket, effect log on disk) in front of a real
/// loopback HTTP server standing for "the world".
final class BrokerHarness: @unchecked Sendable {  // set up once in init, then read only
    static let secret = "sk-live-harness-\(UUID().uuidString)"
    let dir: String
    let world: WorldServer
    let service: BrokerServer
    let ledgerPath: String
    let configPath: String

    /// One tool per effect class, plus approval and failure variants, all pointing at `world`.
    static func configYAML(port: Int, ledger: String) -> String {
        func http(_ name: String, _ effect: String, approval: String = "auto", path: String? = nil) -> String {
            """
              \(name):
                kind: http
                method: POST
                url: "http://127.0.0.1:\(port)/\(path ?? name)"
                allow_hosts: ["127.0.0.1"]
                headers: { Authorization: "Bearer {secret:api}" }
                args: { n: { type: number, optional: true }, note: { type: string, optional: true } }
                effect: \(effect)
                approval: \(approval)
                timeout: 20s

            """
        }
        return """
            ledger: \(ledger)
            secrets:
              api: { env: HARNESS_API_TOKEN }
            tools:
            \(http("lookup", "read"))\(http("upsert", "idempotent"))\(http("charge", "irreversible"))\(http("decide", "hybrid"))\(http("deploy", "irreversible", approval: "human"))\(http("flaky", "idempotent"))\(http("explode", "irreversible"))
            """
    }

    init(label: String) async throws {
        dir = try TemporaryDirectory.make("broker-\(label)", subdirectories: ["state"])
        world = try await WorldServer.start()
        for path in ["/lookup", "/upsert", "/charge", "/decide", "/deploy"] {
            world.route(path, .json("{\"path\":\"\(path)\",\"version\":1}", headers: [("ETag", "\"e1\"")]))
        }
        world.route("/flaky", .json("{\"error\":\"busy\"}", status: 503))
        world.route("/explode", .json("{\"error\":\"boom\"}", status: 500))
        ledgerPath = dir + "/ledger.sqlite"
        configPath = dir + "/broker.yaml"
        try Self.configYAML(port: world.port, ledger: ledgerPath).write(toFile: configPath, atomically: true, encoding: .utf8)
        service = try BrokerServer(.init(configPath: configPath, stateDirectory: dir + "/state", ledgerPath: nil,
                                          environment: ["HARNESS_API_TOKEN": Self.secret]))
        _ = try await service.start()
    }

    func shutdown() {
        service.stop()
        world.stop()
        TemporaryDirectory.remove(dir)
    }

    struct Run {
        let id: String
        let token: String
        let tokenID: String
        let socket: String
    }

    /// `root`: the session's family root when the session is a fork (`session_root`).
    func openRun(session: String, root: String? = nil, tools: [String], ttlMs: Int64 = 60_000) async throws -> Run {
        try await Self.openRun(controlSocket: service.controlSocketPath, session: session, root: root, tools: tools, ttlMs: ttlMs)
    }

    /// open_run on any broker's control socket (in this process or a `sealbox broker` process).
    static func openRun(controlSocket: String, session: String, root: String? = nil, tools: [String], ttlMs: Int64 = 60_000) async throws -> Run {
        let id = "run\(UUID().uuidString.prefix(8).lowercased())"
        let request = ControlRequest(op: "open_run", runID: id, sessionID: session, sessionRoot: root, tools: tools, ttlMs: ttlMs)
        let r = try await offPool { try BrokerControlClient.send(request, socket: controlSocket) }
        guard r.ok, let token = r.token, let tokenID = r.tokenID, let socket = r.socket else {
            throw FixtureFailure("open_run refused: \(r.error?.message ?? "?")")
        }
        return Run(id: id, token: token, tokenID: tokenID, socket: socket)
    }

    /// One request on the control socket, as the executor or an operator sends it.
    func control(_ request: ControlRequest) async throws -> ControlResponse {
        let socket = service.controlSocketPath
        return try await offPool { try BrokerControlClient.send(request, socket: socket) }
    }

    /// One call over the run's socket, exactly as the jail's client makes it.
    static func call(_ run: Run, _ tool: String, _ args: [String: JSONValue] = [:], key: String? = nil, fresh: Bool = false,
                     token: String? = nil, socket: String? = nil) async throws -> CallResponse {
        var request: [String: JSONValue] = ["token": .string(token ?? run.token), "op": .string("call"), "tool": .string(tool), "args": .object(args)]
        if let key { request["key"] = .string(key) }
        if fresh { request["fresh"] = .bool(true) }
        return try await rawCall(socket: socket ?? run.socket, line: Data(CanonicalJSON.v1.bytes(.object(request))))
    }

    /// The blocking socket I/O runs on a thread of its own: the broker answers on the
    /// cooperative pool, which a blocked test thread would starve (2 threads on 2 cores).
    static func rawCall(socket: String, line: Data) async throws -> CallResponse {
        try await offPool {
            let fd = try UnixSocket.connect(path: socket)
            defer { close(fd) }
            guard UnixSocket.writeLine(fd, line), case .line(let reply) = LineReader(fd: fd).next() else {
                throw FixtureFailure("no answer from \(socket)")
            }
            return try JSONDecoder().decode(CallResponse.self, from: reply)
        }
    }

    func ledger() throws -> Ledger { try Ledger(path: ledgerPath) }
}

struct FixtureFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
