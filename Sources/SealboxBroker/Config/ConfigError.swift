/// A problem with the operator's broker config file. The message is complete and precise
/// (`broker.yaml:12: tools.create_issue.url: placeholder {repoo} is not a declared argument`)
/// and never contains a secret value.
public struct ConfigError: Error, CustomStringConvertible, Sendable, Equatable {
    public let message: String

    public init(_ message: String) { self.message = message }

    public var description: String { message }
}
