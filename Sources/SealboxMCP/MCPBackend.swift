import Foundation
import SealboxBase
import SealboxJail
import SealboxLedger
import SealboxProfiles
import SealboxRuntime
import SealboxSQLite
import SealboxServer

/// A tool call that could not be made, as the text a model reads ("not_found: unknown session x").
struct MCPToolFailure: Error, Sendable {
    var text: String
}

extension MCPToolFailure {
    /// "not_found: unknown session x": the code, the field at fault, the message.
    init(_ error: APIError) {
        self.init(code: error.code, field: error.field, message: error.message)
    }

    /// Arguments the tool refused: "invalid arguments: …", as every tool says it.
    init(_ error: MCPToolInputError) {
        text = "invalid arguments: " + error.message
    }

    init(code: String, field: String?, message: String) {
        text = "\(code)\(field.map { " (\($0))" } ?? ""): \(message)"
    }
}

/// Where the tools' work is done: the state directory of `sealbox mcp` (stdio, one operator),
/// or a `sealbox serve` on behalf of one API key (Streamable HTTP at /mcp, that key's tenant).
/// The tools read and check their arguments the same way for both; what a caller may see and
/// use (sessions, profiles, effects, run slots) is the backend's.
protocol MCPBackend: Sendable {
    var defaultLimits: Limits { get }
    var maxLimits: Limits { get }
    /// Whether runs can be granted broker tools (the run_code description says so).
    var hasBroker: Bool { get }
    /// Why a run that asks for tools is refused before it is admitted; nil to let it go on.
    var brokerRefusal: String? { get }

    func checkProfile(_ name: String) throws(MCPToolInputError)
    /// The jails of one call, killable on their own (the call's cancellation closes the set).
    func liveJails() -> LiveJails
    func run(_ request: RunRequest, live: LiveJails, output: OutputObserver?) async -> Result<RunResult, MCPToolFailure>
    func createSession(workspaceLimitBytes: UInt64) -> Result<SessionInfo, MCPToolFailure>
    func facts(_ session: String) -> Result<SessionFacts, MCPToolFailure>
    func effects(_ filter: ListFilter) -> Result<[CallSummary], MCPToolFailure>
    /// Sandboxes, made and commanded as over HTTP (`SandboxService`), and who the caller is to them.
    var sandboxes: SandboxService { get }
    var sandboxIdentity: APIIdentity { get }
    var sandboxCaller: RunCaller { get }
}

/// `sealbox mcp`: the operator's own state directory; whoever speaks on stdio is the operator.
struct LocalBackend: MCPBackend {
    let configuration: MCPConfiguration
    let runs: RunService
    let sandboxes: SandboxService
    /// The operator on stdio, as the sandbox registry knows them.
    var sandboxIdentity: APIIdentity { APIIdentity(keyID: "mcp-stdio", tenant: "default", isOperator: true) }
    var sandboxCaller: RunCaller { caller }

    var defaultLimits: Limits { configuration.defaultLimits }
    var maxLimits: Limits { configuration.maxLimits }
    var hasBroker: Bool { configuration.hasBroker }
    var brokerRefusal: String? {
        configuration.hasBroker ? nil : "this server has no broker, so no tool can be granted (start `sealbox mcp` with --tools FILE or --broker SOCKET)"
    }
    var layout: StateLayout { configuration.layout }
    /// Whoever speaks on stdio: the operator, every session theirs, the server's profile grant.
    var caller: RunCaller { RunCaller(tenant: nil, profiles: configuration.profiles, name: "this MCP server") }

    func checkProfile(_ name: String) throws(MCPToolInputError) {
        do {
            try runs.checkProfile(name, for: caller)
        } catch {
            throw MCPToolInputError(field: "profile", message: error.message)
        }
    }

    func liveJails() -> LiveJails { LiveJails(parent: runs.liveJails) }

    func run(_ request: RunRequest, live: LiveJails, output: OutputObserver?) async -> Result<RunResult, MCPToolFailure> {
        switch await runs.run(request, for: caller, live: live, output: output) {
        case .success(let outcome): .success(outcome.result)
        case .failure(.refused(let error)): .failure(MCPToolFailure(error))
        // The operator's own host: paths are not hidden from them.
        case .failure(.pipeline(let error)): .failure(MCPToolFailure(code: error.code.rawValue, field: error.field, message: error.message))
        }
    }

    func createSession(workspaceLimitBytes limit: UInt64) -> Result<SessionInfo, MCPToolFailure> {
        do {
            let store = try StateStores(layout: layout).checkpoints()
            let id = try store.createSession(workspaceLimitBytes: limit)
            guard let created = try store.session(id) else { return .failure(MCPToolFailure(text: "storage: session \(id) vanished right after it was created")) }
            return .success(created)
        } catch {
            return .failure(MCPToolFailure(text: "storage: " + error.message))
        }
    }

    func facts(_ session: String) -> Result<SessionFacts, MCPToolFailure> {
        guard FileManager.default.fileExists(atPath: layout.checkpointsPath) else {
            return .failure(MCPToolFailure(text: "not_found: unknown session \(session) (no session was created in \(layout.stateDirectory) yet; use create_session)"))
        }
        do {
            let stores = StateStores(layout: layout)
            let store = try stores.checkpoints()
            let ledger = try stores.existingEffectLog()
            return .success(try SessionFacts.gather(store: store, ledger: ledger, session: session))
        } catch let error as CheckpointError {
            return .failure(MCPToolFailure(text: (error.code == .unknownSession ? "not_found: " : "storage: ") + error.message))
        } catch let error as LedgerError {
            return .failure(MCPToolFailure(text: "storage: " + error.message))
        } catch {
            return .failure(MCPToolFailure(text: "storage: \(error)"))
        }
    }

    func effects(_ filter: ListFilter) -> Result<[CallSummary], MCPToolFailure> {
        // No effect log yet means no tool was ever called: an empty list, not an error.
        guard FileManager.default.fileExists(atPath: layout.ledgerPath) else { return .success([]) }
        do {
            return .success(try StateStores(layout: layout).effectLog().list(filter))
        } catch {
            return .failure(MCPToolFailure(text: "storage: " + error.message))
        }
    }
}
