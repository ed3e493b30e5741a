import Foundation
import Glibc
import Logging
import Synchronization
import SealboxBase

/// swift-log handler for `sealbox serve`: one JSON object per line, keys sorted, so log
/// shippers and `jq` read it without a parser of their own:
///
///     {"level":"info","method":"POST","msg":"request","path":"/v1/runs","status":201,"ts":"2025-05-01T09:30:12.345Z",…}
///
/// `ts` is RFC 3339 UTC with milliseconds; metadata is flattened into the object (the
/// handler's, the provider's, then the call's, later ones winning), with keys made
/// snake_case (`hb.request.id` → `hb_request_id`) and never replacing `ts`, `level` or
/// `msg`. Numbers and booleans given as `.stringConvertible` stay numbers and booleans.
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let sink: LogSink

    /// The longest string value kept (message or metadata); longer ones are cut, so one
    /// huge value cannot make a line megabytes long.
    static let maxStringBytes = 4096

    public init(level: Logger.Level = .info, sink: LogSink = .standardError, metadataProvider: Logger.MetadataProvider? = nil) {
        logLevel = level
        self.sink = sink
        self.metadataProvider = metadataProvider
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields: [String: JSONLogValue] = [:]
        let provided = metadataProvider?.get() ?? [:]
        for source in [metadata, provided, event.metadata ?? [:]] {
            for (key, value) in source {
                fields[Self.fieldName(key)] = JSONLogValue(value)
            }
        }
        if let error = event.error, fields["error"] == nil { fields["error"] = .string("\(error)") }
        for reserved in ["ts", "level", "msg"] {
            if let clash = fields.removeValue(forKey: reserved) { fields["meta_" + reserved] = clash }
        }
        fields["ts"] = .string(Self.timestamp())
        fields["level"] = .string(event.level.rawValue)
        fields["msg"] = .string(event.message.description)
        var line = JSONLogValue.object(fields).encoded()
        line.append(UInt8(ascii: "\n"))
        sink.write(line)
    }

    /// snake_case: letters lowered, anything but [a-z0-9_] becomes `_`.
    static func fieldName(_ key: String) -> String {
        String(String.UnicodeScalarView(key.unicodeScalars.map { scalar -> Unicode.Scalar in
            let lower = scalar.properties.lowercaseMapping.unicodeScalars.first ?? scalar
            return ("a"..."z").contains(lower) || ("0"..."9").contains(lower) || lower == "_" ? lower : "_"
        }))
    }

    /// Now as RFC 3339 UTC with milliseconds: 2025-05-01T09:30:12.345Z.
    static func timestamp() -> String {
        timestamp(millisecondsSinceEpoch: Int64((Date().timeIntervalSince1970 * 1000).rounded(.down)))
    }

    /// The civil date in pure arithmetic (Howard Hinnant's days-to-civil), so no C time
    /// struct or shared formatter is involved.
    static func timestamp(millisecondsSinceEpoch ms: Int64) -> String {
        let (seconds, millis) = ms.quotientAndRemainder(dividingBy: 1000)
        let days = Int64((Double(seconds) / 86_400).rounded(.down))
        let secondOfDay = seconds - days * 86_400
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        func pad(_ value: Int64, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(secondOfDay / 3600, 2)):\(pad(secondOfDay / 60 % 60, 2)):"
            + "\(pad(secondOfDay % 60, 2)).\(pad(millis, 3))Z"
    }
}

/// Where log lines go. Each line is one `write(2)` under a lock, so lines from concurrent
/// requests never interleave.
public final class LogSink: Sendable {
    /// nil: keep lines in `captured` instead.
    private let fd: Int32?
    /// The captured lines; for a descriptor sink, only the lock that keeps lines whole.
    private let captured = Mutex<[UInt8]>([])

    private init(fd: Int32?) { self.fd = fd }

    public static let standardError = LogSink(fd: STDERR_FILENO)

    /// Keeps every line in memory, for tests that read back what was logged.
    public static func capture() -> LogSink { LogSink(fd: nil) }

    /// The captured lines (empty for a descriptor sink).
    public var lines: [String] {
        let text = captured.withLock { String(decoding: $0, as: UTF8.self) }
        return text.split(separator: "\n").map(String.init)
    }

    func write(_ line: [UInt8]) {
        captured.withLock { buffer in
            guard let fd else { return buffer.append(contentsOf: line) }
            var offset = 0
            while offset < line.count {
                let n = Interrupted.retry { line.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) } }
                if n <= 0 { return }  // stderr gone: logging must never take the server down
                offset += n
            }
        }
    }
}

/// A metadata value as JSON.
enum JSONLogValue {
    case string(String)
    case number(String)
    case bool(Bool)
    case object([String: JSONLogValue])
    case array([JSONLogValue])

    init(_ value: Logger.Metadata.Value) {
        switch value {
        case .string(let text):
            self = .string(text)
        case .stringConvertible(let convertible):
            switch convertible {
            case let flag as Bool: self = .bool(flag)
            case let number as Double: self = number.isFinite ? .number("\(number)") : .string("\(number)")
            case let number as any BinaryInteger: self = .number("\(number)")
            default: self = .string(convertible.description)
            }
        case .dictionary(let dictionary):
            self = .object(dictionary.reduce(into: [:]) { $0[JSONLogHandler.fieldName($1.key)] = JSONLogValue($1.value) })
        case .array(let values):
            self = .array(values.map(JSONLogValue.init))
        }
    }

    func encoded() -> [UInt8] {
        var out: [UInt8] = []
        encode(into: &out)
        return out
    }

    private func encode(into out: inout [UInt8]) {
        switch self {
        case .string(let text): Self.encodeString(text, into: &out)
        case .number(let text): out.append(contentsOf: text.utf8)
        case .bool(let flag): out.append(contentsOf: (flag ? "true" : "false").utf8)
        case .array(let values):
            out.append(UInt8(ascii: "["))
            for (index, value) in values.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                value.encode(into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let fields):
            out.append(UInt8(ascii: "{"))
            for (index, key) in fields.keys.sorted().enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                Self.encodeString(key, into: &out)
                out.append(UInt8(ascii: ":"))
                fields[key]!.encode(into: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// A JSON string literal; values beyond `maxStringBytes` are cut on a character boundary.
    static func encodeString(_ text: String, into out: inout [UInt8]) {
        var text = Substring(text)
        var cut = false
        if text.utf8.count > JSONLogHandler.maxStringBytes {
            var end = text.utf8.index(text.startIndex, offsetBy: JSONLogHandler.maxStringBytes)
            // Back off continuation bytes (10xxxxxx) to the start of a character.
            while end > text.startIndex && text.utf8[end] & 0xC0 == 0x80 { end = text.utf8.index(before: end) }
            text = text[..<end]
            cut = true
        }
        let hex: [UInt8] = Array("0123456789abcdef".utf8)
        out.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: [0x5C, 0x22])
            case UInt8(ascii: "\\"): out.append(contentsOf: [0x5C, 0x5C])
            case 0x0A: out.append(contentsOf: [0x5C, UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [0x5C, UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [0x5C, UInt8(ascii: "t")])
            case 0..<0x20, 0x7F:
                out.append(contentsOf: Array("\\u00".utf8))
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0xF)])
            default: out.append(byte)
            }
        }
        if cut { out.append(contentsOf: Array("…(truncated)".utf8)) }
        out.append(UInt8(ascii: "\""))
    }
}
