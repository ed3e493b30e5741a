/// Secret values, held only in memory. Nothing here ever prints a value: `description`,
/// `debugDescription` and the reflection `Mirror` show secret names only.
public struct SecretStore: Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    private let storage: [String: String]

    public init(_ values: [String: String] = [:]) { storage = values }

    /// The names of the configured secrets, sorted.
    public var names: [String] { storage.keys.sorted() }

    public func contains(_ name: String) -> Bool { storage[name] != nil }

    /// The secret's value. Call only to inject it into an outgoing request or a command's
    /// environment; never log, return or store it.
    public func reveal(_ name: String) -> String? { storage[name] }

    public var description: String { "SecretStore(\(storage.count) secrets: \(names.joined(separator: ", ")), values redacted)" }
    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: ["names": names], displayStyle: .struct) }
}
