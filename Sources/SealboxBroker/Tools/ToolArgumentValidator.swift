import Foundation
import SealboxBase
import SealboxLedger

/// Checks call arguments against a tool's declared `args`.
enum ToolArgumentValidator {
    /// The arguments to use (defaults filled in), or a bad_request error naming the problem.
    static func validate(_ tool: ToolDefinition, _ args: [String: JSONValue]) throws(ToolError) -> [String: JSONValue] {
        for name in args.keys.sorted() where tool.args[name] == nil {
            let declared = tool.args.keys.sorted()
            let list = declared.isEmpty ? "this tool takes no arguments" : "arguments: \(declared.joined(separator: ", "))"
            throw .badRequest("unknown argument \"\(name)\" (\(list))")
        }
        var out: [String: JSONValue] = [:]
        for name in tool.args.keys.sorted() {
            let spec = tool.args[name]!
            // An explicit null for an optional argument counts as leaving it out.
            guard let value = args[name], !(value == .null && spec.optional) else {
                if let d = spec.defaultValue { out[name] = d; continue }
                if spec.optional { continue }
                throw .badRequest("missing required argument \"\(name)\"")
            }
            if let problem = check(spec, value) { throw .badRequest("argument \"\(name)\": \(problem)") }
            out[name] = value
        }
        return out
    }

    static func typeName(_ v: JSONValue) -> String {
        switch v {
        case .null: return "null"
        case .bool: return "boolean"
        case .number: return v.isWholeNumber ? "integer" : "number"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        }
    }

    static func render(_ v: JSONValue) -> String {
        switch v {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .number: return text(v)
        case .string(let s): return "\"\(s.count > 40 ? String(s.prefix(40)) + "…" : s)\""
        case .array: return "[…]"
        case .object: return "{…}"
        }
    }

    /// The problem with `value` for `spec`, or nil when it is acceptable.
    static func check(_ spec: ArgumentSpec, _ value: JSONValue, checkEnum: Bool = true) -> String? {
        let typeOK: Bool
        switch (spec.type, value) {
        case (.string, .string), (.boolean, .bool), (.number, .number), (.array, .array), (.object, .object): typeOK = true
        case (.integer, .number): typeOK = value.isWholeNumber
        default: typeOK = false
        }
        guard typeOK else { return "expected \(spec.type.rawValue), got \(typeName(value))" }
        switch value {
        case .string(let s):
            let length = s.unicodeScalars.count
            if let max = spec.maxLength, length > max {
                return "\(length) characters, more than max_length \(max)"
            }
            if let min = spec.minLength, length < min {
                return "\(length) characters, fewer than min_length \(min)"
            }
            if let p = spec.pattern {
                guard let regex = try? Regex(p) else { return "invalid pattern" }
                let matched = (try? regex.firstMatch(in: s)) != nil
                if !matched { return "value does not match pattern \(p)" }
            }
        case .number:
            // Compared as doubles, as the bounds are declared. Rounding is monotonic, so a
            // value past 2^53 can land on a bound it exceeds by less than a double's step,
            // never across it; a literal beyond any double counts as infinite.
            let n = value.doubleValue ?? (value.numberLiteral?.hasPrefix("-") == true ? -.infinity : .infinity)
            if let min = spec.minimum, n < min { return "\(render(value)) is less than minimum \(render(.number(min)))" }
            if let max = spec.maximum, n > max { return "\(render(value)) is more than maximum \(render(.number(max)))" }
        case .array(let items):
            if let max = spec.maxItems, items.count > max { return "\(items.count) items, more than max_items \(max)" }
        default:
            break
        }
        if checkEnum, let allowed = spec.allowedValues, !allowed.contains(where: { $0.sameValue(as: value) }) {
            return "\(render(value)) is not one of \(allowed.map(render).joined(separator: ", "))"
        }
        return nil
    }

    /// A scalar argument as template text.
    static func text(_ v: JSONValue) -> String {
        switch v {
        case .string(let s): return s
        case .bool(let b): return b ? "true" : "false"
        case .number(let literal): return numberText(literal)
        case .null: return ""
        case .array, .object: return CanonicalJSON.v1.string(v)
        }
    }

    /// A number as template text: a whole number in plain digits, exactly however large
    /// (`1e3` → `1000`, `18446744073709551615` as it is), any other in Swift's shortest form.
    static func numberText(_ literal: String) -> String {
        if JSONNumber.isPlainInteger(literal) { return literal == "-0" ? "0" : literal }
        guard let n = Double(literal), n.isFinite else { return literal }
        if n.rounded() == n, abs(n) <= 9_007_199_254_740_992 { return String(Int64(n)) }
        return String(n)
    }
}
