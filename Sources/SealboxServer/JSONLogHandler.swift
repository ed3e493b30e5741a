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
        var fields: [String: JSONValue] = [:]
        let provided = metadataProvider?.get() ?? [:]
        for source in [metadata, provided, event.metadata ?? [:]] {
            for (key, value) in source {
                fields[Self.fieldName(key)] = LogJSON.value(value)
            }
        }
        if let error = event.error, fields["error"] == nil { fields["error"] = LogJSON.string("\(error)") }
        for reserved in ["ts", "level", "msg"] {
            if let clash = fields.removeValue(forKey: reserved) { fields["meta_" + reserved] = clash }
        }
        fields["ts"] = .string(Self.timestamp())
        fields["level"] = .string(event.level.rawValue)
        fields["msg"] = LogJSON.string(event.message.description)
        var line = LogJSON.writer.bytes(.object(fields))
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

/// Log metadata as the one JSON value type, written by the one writer: compact, names in code
/// point order, and every control character escaped (DEL too), so a value cannot end the line
/// or move a terminal's cursor.
enum LogJSON {
    static let writer = JSONWriter(keyOrder: .codePoint, strings: .utf8EscapingDelete, numbers: .literal, layout: .compact)

    static func value(_ value: Logger.Metadata.Value) -> JSONValue {
        switch value {
        case .string(let text):
            return string(text)
        case .stringConvertible(let convertible):
            switch convertible {
            case let flag as Bool: return .bool(flag)
            case let number as Double: return number.isFinite ? .number("\(number)") : .string("\(number)")
            case let number as any BinaryInteger: return .number("\(number)")
            default: return string(convertible.description)
            }
        case .dictionary(let dictionary):
            return .object(dictionary.reduce(into: [String: JSONValue]()) { $0[JSONLogHandler.fieldName($1.key)] = Self.value($1.value) })
        case .array(let values):
            return .array(values.map(Self.value))
        }
    }

    /// A string value; one beyond `maxStringBytes` is cut on a character boundary and says so.
    static func string(_ text: String) -> JSONValue {
        guard text.utf8.count > JSONLogHandler.maxStringBytes else { return .string(text) }
        var end = text.utf8.index(text.startIndex, offsetBy: JSONLogHandler.maxStringBytes)
        // Back off continuation bytes (10xxxxxx) to the start of a character.
        while end > text.startIndex && text.utf8[end] & 0xC0 == 0x80 { end = text.utf8.index(before: end) }
        return .string(String(text[..<end]) + "…(truncated)")
    }
}
