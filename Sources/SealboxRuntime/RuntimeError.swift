import SealboxLedger

/// Why a run could not be carried out, in terms a caller can act on: the CLI prints the
/// message and exits 125; the HTTP API and MCP map the code to a status and name `field`.
public struct RuntimeError: Error, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable {
        /// The request itself is wrong (a bad step key, a tool that is not granted, …).
        case badInput = "bad_request"
        /// A session (or another named thing) that does not exist.
        case notFound = "not_found"
        /// The step was sealed with other code: resuming it would not be resuming.
        case stepConflict = "step_conflict"
        /// Another run of the same step is executing now: wait for it, then ask again.
        case stepRunning = "step_running"
        /// The session's /work has something in the way of the run's files.
        case workspaceConflict = "workspace_conflict"
        /// The broker said no to the run (unknown tool, a session it refuses).
        case brokerRefused = "broker_refused"
        /// The broker could not be started or reached.
        case brokerUnavailable = "broker_unavailable"
        /// The jail could not be set up (cgroups, rootfs, …): the host's fault, not the caller's.
        case jailSetup = "jail_setup"
        /// The checkpoint store or the workspace store failed.
        case storage = "storage"
        /// A store could not be written because its disk is full: retry later.
        case storageFull = "storage_full"
    }

    public var code: Code
    public var message: String
    /// The request field at fault, when there is one (`session`, `step`, `tools`).
    public var field: String?
    /// The broker's own code when the broker refused (`unknown_tool`, `bad_request`, …).
    public var brokerCode: String?

    public init(_ code: Code, _ message: String, field: String? = nil, brokerCode: String? = nil) {
        self.code = code
        self.message = message
        self.field = field
        self.brokerCode = brokerCode
    }

    /// A checkpoint store failure, as a runtime error: a full disk stays recognisable.
    public init(storage error: CheckpointError, _ context: String = "") {
        switch error.code {
        case .stepRunning: self.init(.stepRunning, error.message, field: "step")
        case .invalidInput: self.init(.badInput, error.message, field: "step")
        default:
            let full = StorageFull.isFull(message: error.message)
            self.init(full ? .storageFull : .storage, context + error.message)
        }
    }

    public var description: String { message }
}
