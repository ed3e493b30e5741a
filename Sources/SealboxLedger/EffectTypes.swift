/// Effect classes, declared per tool by the operator (DESIGN.md, "Effect classes").
public enum EffectClass: String, Codable, Sendable, CaseIterable {
    /// Re-executed on retry (or the sealed snapshot, inside a hybrid decision).
    case read
    /// Sealed completion returned; with only an intent, re-executed with the same key.
    case idempotent
    /// Sealed completion returned; with only an intent the call is in doubt until an operator
    /// resolves it. Never replayed blindly.
    case irreversible
    /// Read-then-write: the read is sealed as a snapshot and returned on resume; a fresh read
    /// must be asked for explicitly and is recorded as such.
    case hybrid
}

/// Who lets a call through.
public enum Approval: String, Codable, Sendable, CaseIterable {
    case auto
    case human
}
