import SealboxBase
import SealboxLedger

/// One declared tool argument. Calls may pass only declared arguments; each is checked against
/// its spec before anything runs.
public struct ArgumentSpec: Sendable, Equatable {
    public enum ValueType: String, Sendable, CaseIterable {
        case string, integer, number, boolean, array, object

        /// Whether a value of this type can be placed in a URL, header, argv element or env value.
        public var isScalar: Bool { self != .array && self != .object }
    }

    public let name: String
    public let type: ValueType
    /// Optional arguments may be left out (then `defaultValue`, if any, is used).
    public let optional: Bool
    public let defaultValue: JSONValue?
    /// For strings: a regular expression (Swift Regex syntax) that must match somewhere in the
    /// value; anchor it with ^…$ to match the whole value (`$` matches only at the very end).
    public let pattern: String?
    /// For strings, in Unicode scalars.
    public let minLength: Int?
    public let maxLength: Int?
    /// For numbers and integers.
    public let minimum: Double?
    public let maximum: Double?
    /// For arrays.
    public let maxItems: Int?
    /// The allowed values (any type).
    public let allowedValues: [JSONValue]?
    public let description: String?
    /// command tools: an operand, never an option. The broker puts `--` before the first
    /// argv element that holds a positional argument, so a value like `--output=/etc/x` is
    /// data to the program. A non-positional argument that would start an argv element with
    /// `-` is refused instead.
    public let positional: Bool

    public init(
        name: String, type: ValueType, optional: Bool = false, defaultValue: JSONValue? = nil,
        pattern: String? = nil, minLength: Int? = nil, maxLength: Int? = nil,
        minimum: Double? = nil, maximum: Double? = nil, maxItems: Int? = nil,
        allowedValues: [JSONValue]? = nil, description: String? = nil, positional: Bool = false
    ) {
        self.name = name
        self.type = type
        self.optional = optional
        self.defaultValue = defaultValue
        self.pattern = pattern
        self.minLength = minLength
        self.maxLength = maxLength
        self.minimum = minimum
        self.maximum = maximum
        self.maxItems = maxItems
        self.allowedValues = allowedValues
        self.description = description
        self.positional = positional
    }

    /// Present in every validated call: required, or optional with a default.
    public var alwaysPresent: Bool { !optional || defaultValue != nil }
}
