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
        /// The broker said no to the run (unknown tool, a session it refuses).
        case brokerRefused = "broker_refused"
        /// The broker could not be started or reached.
        case brokerUnavailable = "broker_unavailable"
        /// The jail could not be set up (cgroups, rootfs, …): the host's fault, not the caller's.
        case jailSetup = "jail_setup"
        /// The checkpoint store or the workspace store failed.
        case storage = "storage"
    }

    public var code: Code
    public var message: String
    /// The request field at fault, when there is one (`session`, `step`, `tools`).
    public var field: String?

    public init(_ code: Code, _ message: String, field: String? = nil) {
        self.code = code
        self.message = message
        self.field = field
    }

    public var description: String { message }
}
