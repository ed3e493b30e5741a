/// The one error type of SealboxProfiles: a complete, human-readable sentence that names the
/// profile and the exact place of the problem, e.g.
/// `profile "x.json": syscalls[3].action: unknown action "SCMP_ACT_FOO"`.
public struct ProfileError: Error, CustomStringConvertible, Sendable, Equatable {
    public let message: String
    public var description: String { message }

    public init(_ message: String) {
        self.message = message
    }

    /// `profile "<name>": <detail>`
    static func profile(_ name: String, _ detail: String) -> ProfileError {
        ProfileError("profile \"\(name)\": \(detail)")
    }
}
