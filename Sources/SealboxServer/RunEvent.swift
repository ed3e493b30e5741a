import Foundation
import HTTPTypes
import Hummingbird
import SealboxJail
import SealboxRuntime

/// One event of a streamed run, as one JSON object (sorted keys, like every API body):
///
///     {"event":"started","id":"9f1c…"}
///     {"data":"first line\n","event":"stdout"}
///     {"data_base64":"/w==","event":"stderr"}      bytes that are not UTF-8
///     {"event":"result","result":{…the 201 body of a plain POST /v1/runs…}}
///     {"error":{"code":"jail_setup","message":"…"},"event":"error"}   instead of a result
enum RunEvent: Sendable {
    case started(id: String)
    case output(OutputChunk.Stream, [UInt8])
    case result(RunResult)
    case failed(APIError)

    var name: String {
        switch self {
        case .started: "started"
        case .output(let stream, _): stream.rawValue
        case .result: "result"
        case .failed: "error"
        }
    }

    private struct Started: Encodable { var event = "started"; var id: String }
    private struct Text: Encodable { var event: String; var data: String }
    private struct Binary: Encodable {
        var event: String
        var dataBase64: String
        enum CodingKeys: String, CodingKey { case event, dataBase64 = "data_base64" }
    }
    private struct Result: Encodable { var event = "result"; var result: RunResult }
    private struct Failed: Encodable { var event = "error"; var error: APIError.Body.Detail }

    /// The event's JSON object; never contains a raw newline (JSON escapes them in strings).
    func json() -> Data {
        let encoder = SealboxAPI.encoder
        let encoded: Data?
        switch self {
        case .started(let id):
            encoded = try? encoder.encode(Started(id: id))
        case .output(let stream, let bytes):
            if let text = String(validating: bytes, as: UTF8.self) {
                encoded = try? encoder.encode(Text(event: stream.rawValue, data: text))
            } else {
                encoded = try? encoder.encode(Binary(event: stream.rawValue, dataBase64: Data(bytes).base64EncodedString()))
            }
        case .result(let result):
            encoded = try? encoder.encode(Result(result: result))
        case .failed(let error):
            encoded = try? encoder.encode(Failed(error: .init(code: error.code, message: error.message, field: error.field)))
        }
        // These types always encode; the fallback keeps the stream well-formed regardless.
        return encoded ?? Data(#"{"error":{"code":"internal","message":"cannot encode an event"},"event":"error"}"#.utf8)
    }
}

/// How a client asked to receive a run's events: `Accept: application/x-ndjson` (one JSON
/// object per line) or `Accept: text/event-stream` (Server-Sent Events, the same objects as
/// `data:` with the event's name as `event:`). Anything else gets the plain 201.
enum RunStreamFormat: Sendable {
    case ndjson
    case serverSentEvents

    /// The first streaming type the Accept header lists (case ignored), unless its quality is
    /// 0, which RFC 9110 §12.4.2 makes "not acceptable".
    init?(accept: String?) {
        guard let accept else { return nil }
        for range in accept.split(separator: ",") {
            let parts = range.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            let type = parts.first ?? ""
            let refused = parts.dropFirst().contains { parameter in
                guard parameter.hasPrefix("q=") else { return false }
                return Double(parameter.dropFirst(2)) == 0
            }
            if refused { continue }
            switch type {
            case "application/x-ndjson": self = .ndjson; return
            case "text/event-stream": self = .serverSentEvents; return
            default: continue
            }
        }
        return nil
    }

    var contentType: String {
        switch self {
        case .ndjson: "application/x-ndjson"
        case .serverSentEvents: "text/event-stream"
        }
    }

    func frame(_ event: RunEvent) -> ByteBuffer {
        var buffer = ByteBuffer()
        switch self {
        case .ndjson:
            buffer.writeBytes(event.json())
            buffer.writeString("\n")
        case .serverSentEvents:
            buffer.writeString("event: \(event.name)\ndata: ")
            buffer.writeBytes(event.json())
            buffer.writeString("\n\n")
        }
        return buffer
    }
}

/// Keeps a multi-byte character split across two reads in one piece: the incomplete tail of
/// a chunk (at most 3 bytes) waits for the next chunk of the same stream, so text output
/// stays `data` rather than falling back to `data_base64` at a read boundary.
struct UTF8ChunkJoiner {
    private var pending: [UInt8] = []

    /// The bytes to send now (maybe empty).
    mutating func take(_ bytes: [UInt8]) -> [UInt8] {
        var all = pending + bytes
        pending = []
        let tail = Self.incompleteTail(all)
        if tail > 0 {
            pending = Array(all.suffix(tail))
            all.removeLast(tail)
        }
        return all
    }

    /// What is left at the end of the stream: an unfinished character, sent as it is.
    mutating func flush() -> [UInt8] {
        defer { pending = [] }
        return pending
    }

    /// How many trailing bytes start a character that needs more bytes than follow it.
    static func incompleteTail(_ bytes: [UInt8]) -> Int {
        // Look back at most 3 bytes for the lead byte of the last character.
        guard !bytes.isEmpty else { return 0 }
        for back in 1...min(3, bytes.count) {
            let byte = bytes[bytes.count - back]
            if byte & 0xC0 == 0x80 { continue }  // continuation byte
            // Lead bytes of 2, 3 and 4 byte characters; anything else cannot start one.
            let length = (0xC2...0xDF).contains(byte) ? 2 : (0xE0...0xEF).contains(byte) ? 3 : (0xF0...0xF4).contains(byte) ? 4 : 1
            return length > back ? back : 0
        }
        return 0
    }
}
