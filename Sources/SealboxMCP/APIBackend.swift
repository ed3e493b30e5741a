import Foundation
import Logging
import SealboxJail
import SealboxLedger
import SealboxRuntime
import SealboxServer

/// MCP at /mcp on `sealbox serve`: every tool call acts as the API key that opened the MCP
/// session, exactly as that key's HTTP requests do: its tenant's sessions and effects only, its
/// profile grant, its tenant's share of the run slots, the server's broker. A run is counted,
/// stored and logged like a POST /v1/runs.
struct APIBackend: MCPBackend {
    let api: SealboxAPI
    let identity: APIIdentity
    let logger: Logger

    var defaultLimits: Limits { api.configuration.defaultLimits }
    var sandboxes: SandboxService { api.sandboxService }
    var sandboxIdentity: APIIdentity { identity }
    var sandboxCaller: RunCaller { api.caller(identity) }
    var maxLimits: Limits { api.configuration.maxLimits }
    var hasBroker: Bool { api.broker.controlSocket != nil }
    /// The server's broker may be starting: `execute` answers for it.
    var brokerRefusal: String? { nil }

    func checkProfile(_ name: String) throws(MCPToolInputError) {
        do {
            try api.runs.checkProfile(name, for: api.caller(identity))
        } catch {
            throw MCPToolInputError(field: "profile", message: error.message)
        }
    }

    /// Also in the server's set, so a shutdown that kills what is left reaches MCP runs too.
    func liveJails() -> LiveJails { LiveJails(parent: api.liveJails) }

    func run(_ request: RunRequest, live: LiveJails, output: OutputObserver?) async -> Result<RunResult, MCPToolFailure> {
        await api.run(request, for: identity, live: live, output: output, logger: logger, stream: "mcp")
            .map { $0.0 }.mapError { MCPToolFailure($0) }
    }

    func createSession(workspaceLimitBytes limit: UInt64) -> Result<SessionInfo, MCPToolFailure> {
        do throws(APIError) {
            return .success(try api.newSession(workspaceLimitBytes: limit, for: identity))
        } catch {
            return .failure(MCPToolFailure(error))
        }
    }

    func facts(_ session: String) -> Result<SessionFacts, MCPToolFailure> {
        do throws(APIError) {
            return .success(try api.facts(of: session, for: identity))
        } catch {
            return .failure(MCPToolFailure(error))
        }
    }

    func effects(_ filter: ListFilter) -> Result<[CallSummary], MCPToolFailure> {
        do throws(APIError) {
            return .success(try api.effects(filter, for: identity))
        } catch {
            return .failure(MCPToolFailure(error))
        }
    }
}
