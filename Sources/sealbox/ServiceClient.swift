import ArgumentParser
import AsyncHTTPClient
import Foundation
import Glibc
import NIOCore
import NIOHTTP1
import SealboxBase

/// Where `sealbox sandbox` finds the server: `--url`, `--key`, or the environment.
struct ServiceOptions: ParsableArguments {
    @Option(name: .customLong("url"), help: ArgumentHelp(
        "The sealbox server (default: $SEALBOX_URL, else http://127.0.0.1:8080).", valueName: "url"))
    var url: String?

    @Option(name: .customLong("key"), help: ArgumentHelp(
        "The API key (default: $SEALBOX_API_KEY, else the local server's bootstrap key file, STATE-DIR/api-key, when readable).",
        valueName: "key"))
    var key: String?

    @Option(name: .customLong("state-dir"), help: ArgumentHelp("Where the local server keeps its bootstrap key (with no --key).", valueName: "dir"))
    var stateDir: String?

    func client() throws -> ServiceClient {
        let environment = ProcessInfo.processInfo.environment
        let base = url ?? environment["SEALBOX_URL"] ?? "http://127.0.0.1:8080"
        guard let parsed = URL(string: base), let scheme = parsed.scheme?.lowercased(), ["http", "https"].contains(scheme), parsed.host != nil,
              parsed.query == nil, parsed.fragment == nil else {
            throw CLIFailure(message: "--url expects http(s)://HOST[:PORT][/PREFIX], got \"\(Printable.text(base, limit: 128))\"")
        }
        var resolved = key ?? environment["SEALBOX_API_KEY"]
        if resolved == nil, case .success(let bytes) = SmallFile.read(StateLayout(stateDirectory: stateDir).bootstrapKeyPath, limit: 4096) {
            resolved = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        var trimmed = base
        while trimmed.hasSuffix("/") { trimmed.removeLast() }
        return ServiceClient(base: trimmed, key: resolved)
    }
}

/// A small client of sealbox's HTTP API for the CLI: JSON calls, streamed bodies both ways.
/// An error the server answers becomes a `CLIFailure` with its code and message.
struct ServiceClient: Sendable {
    let base: String
    let key: String?

    /// One HTTP client for the process: a server that is not there is said at once (no
    /// retrying to connect until the request's deadline), and the process exits without a
    /// shutdown, so it is never deinitialized.
    static let http: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.timeout.connect = .seconds(10)
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()

    /// A reply's status and body (at most `limit` bytes).
    struct Reply {
        var status: Int
        var body: Data

        func object() throws -> [String: Any] {
            guard let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any] else {
                throw CLIFailure(message: "the server answered \(status) with a body that is not a JSON object")
            }
            return object
        }
    }

    func request(_ method: HTTPMethod, _ path: String, json: Any? = nil, accept: String? = nil) throws -> HTTPClientRequest {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        if let key { request.headers.add(name: "Authorization", value: "Bearer \(key)") }
        if let accept { request.headers.add(name: "Accept", value: accept) }
        if let json {
            let data = try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: data))
        }
        return request
    }

    /// Sends `request` and answers the response, its body still to read (a stream, a
    /// download); a status of 400 or more is thrown as the server's error.
    func open(_ request: HTTPClientRequest, timeout: TimeAmount = .hours(24)) async throws -> HTTPClientResponse {
        let response: HTTPClientResponse
        do {
            response = try await Self.http.execute(request, timeout: timeout)
        } catch {
            throw CLIFailure(message: "cannot reach the sealbox server at \(base): \(error) (is `sealbox serve` running? --url or SEALBOX_URL say where)")
        }
        guard response.status.code < 400 else {
            let body = try await response.body.collect(upTo: 1 << 20)
            throw Self.failure(Reply(status: Int(response.status.code), body: Data(body.readableBytesView)))
        }
        return response
    }

    /// Sends `request`; its whole reply (at most `limit` bytes), or the server's error.
    func send(_ request: HTTPClientRequest, limit: Int = 64 << 20) async throws -> Reply {
        let response = try await open(request)
        let body = try await response.body.collect(upTo: limit)
        return Reply(status: Int(response.status.code), body: Data(body.readableBytesView))
    }

    /// A JSON call: the reply's object.
    func call(_ method: HTTPMethod, _ path: String, json: Any? = nil) async throws -> [String: Any] {
        try await send(try request(method, path, json: json)).object()
    }

    static func failure(_ reply: Reply) -> CLIFailure {
        if let object = try? JSONSerialization.jsonObject(with: reply.body) as? [String: Any], let error = object["error"] as? [String: Any] {
            let code = error["code"] as? String ?? "error"
            let field = (error["field"] as? String).map { " (field \($0))" } ?? ""
            return CLIFailure(message: "\(code): \(error["message"] as? String ?? "")\(field)")
        }
        return CLIFailure(message: "the server answered \(reply.status): \(Printable.text(String(decoding: reply.body.prefix(512), as: UTF8.self), limit: 300))")
    }

    /// `text` percent-encoded as one path: each part of a relative path.
    static func pathPart(_ text: String) -> String {
        text.split(separator: "/", omittingEmptySubsequences: false).map {
            String($0).addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/?#"))) ?? String($0)
        }.joined(separator: "/")
    }

    static func query(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed.subtracting(CharacterSet(charactersIn: "&=+#"))) ?? text
    }
}

/// Writes all of `bytes` to `fd` (stdout or stderr of the CLI); a failed write is dropped.
func writeAll(_ fd: Int32, _ bytes: some Sequence<UInt8>) {
    _ = Array(bytes).withUnsafeBytes { Interrupted.writeAll(fd, $0) }
}
