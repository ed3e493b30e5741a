import Foundation
import HTTPTypes
import SealboxBase
import SealboxRuntime
import Hummingbird

/// Every error the API returns: a status and `{"error": {"code", "message", "field"?}}`.
/// `field` names the offending request field ("limits.memory_bytes") for 400s.
public struct APIError: Error, Sendable, Equatable {
    public var status: HTTPResponse.Status
    public var code: String
    public var message: String
    public var field: String?
    /// Seconds, for 429.
    public var retryAfter: Int?
    /// `WWW-Authenticate`, for 401 (RFC 9110 §11.6.1 requires it there).
    public var challenge: String?

    public init(_ status: HTTPResponse.Status, _ code: String, _ message: String, field: String? = nil, retryAfter: Int? = nil, challenge: String? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.retryAfter = retryAfter
        self.challenge = challenge
    }

    static func badRequest(_ message: String, field: String? = nil) -> APIError {
        APIError(.badRequest, "bad_request", message, field: field)
    }

    static func unauthorized(_ message: String) -> APIError {
        APIError(.unauthorized, "unauthorized", message, challenge: "Bearer")
    }

    static func notFound(_ message: String) -> APIError {
        APIError(.notFound, "not_found", message)
    }

    /// A body the strict decoder refused: 400 naming the field.
    public init(decoding error: JSONDecodingError) {
        self.init(.badRequest, "bad_request", error.syntax ? "the body is " + error.message : error.message, field: error.field)
    }

    /// 507 with Retry-After: the server's disk is full. Nothing was done; retrying later may work.
    static func storageFull(_ message: String) -> APIError {
        APIError(.init(code: 507, reasonPhrase: "Insufficient Storage"), "storage_full", message, retryAfter: 30)
    }

    struct Body: Encodable {
        struct Detail: Encodable {
            var code: String
            var message: String
            var field: String?
        }
        var error: Detail
    }

    var json: Data {
        (try? SealboxAPI.encoder.encode(Body(error: .init(code: code, message: message, field: field)))) ?? Data()
    }
}

extension APIError: HTTPResponseError {
    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let retryAfter { headers[.retryAfter] = String(retryAfter) }
        if let challenge { headers[.wwwAuthenticate] = challenge }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: json)))
    }
}

extension APIError {
    /// A run the pipeline could not carry out, with the status that tells the caller whose
    /// fault it was and what to do.
    init(_ error: RuntimeError) {
        switch error.code {
        case .badInput: self.init(.badRequest, "bad_request", error.message, field: error.field)
        case .notFound: self.init(.notFound, "not_found", error.message, field: error.field)
        case .stepConflict: self.init(.conflict, "step_conflict", error.message, field: "step")
        case .stepRunning: self.init(.conflict, "step_running", error.message, field: "step", retryAfter: 1)
        case .workspaceConflict: self.init(.conflict, "workspace_conflict", error.message, field: error.field ?? "files")
        case .brokerRefused: self.init(.badRequest, "broker_refused", error.message, field: error.field ?? "tools")
        case .brokerUnavailable: self.init(.serviceUnavailable, "broker_unavailable", error.message, retryAfter: 5)
        case .jailSetup: self.init(.internalServerError, "jail_setup", error.message)
        case .storage: self.init(.internalServerError, "storage", error.message)
        case .storageFull: self = .storageFull(error.message)
        }
    }
}
