import HTTPTypes
import Hummingbird
import SealboxAccess

/// `Authorization: Bearer sbx_…` on every request but `AccessPolicy.open`; 401 (with
/// `WWW-Authenticate: Bearer`) when the key is missing, malformed, unknown or revoked; 403 on
/// `AccessPolicy.operatorOnly` for a key without operator rights. The key is checked against
/// keys.db on every request (no cache), so a revocation holds from the next request on.
///
/// Route middleware in Hummingbird 2 wraps the routes registered after it: `SealboxAPI.router()`
/// adds this first.
public struct AuthMiddleware: RouterMiddleware {
    public typealias Context = SealboxRequestContext

    let keys: KeyStore
    /// false: `sealbox serve --no-auth`; every request acts as `APIIdentity.unauthenticated`.
    let required: Bool

    public init(keys: KeyStore, required: Bool) {
        self.keys = keys
        self.required = required
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let endpoint = AccessPolicy.endpoint(request.method, context.endpointPath)
        if AccessPolicy.open.contains(endpoint) { return try await next(request, context) }
        let identity = required ? try authenticate(request) : .unauthenticated
        if AccessPolicy.operatorOnly.contains(endpoint), !identity.isOperator {
            throw APIError(.forbidden, "forbidden", "\(endpoint) needs an operator key; key \(identity.keyID) of tenant \(identity.tenant) is not one")
        }
        var context = context
        context.identity = identity
        return try await next(request, context)
    }

    func authenticate(_ request: Request) throws(APIError) -> APIIdentity {
        let values = request.headers[values: .authorization]
        guard !values.isEmpty else {
            throw APIError.unauthorized("missing API key: send Authorization: Bearer <key>")
        }
        guard values.count == 1 else { throw APIError.unauthorized("send one Authorization header, not \(values.count)") }
        // RFC 9110 §11.1: the scheme is case-insensitive; one or more spaces before the token.
        let value = values[0]
        guard let space = value.firstIndex(of: " "), value[..<space].lowercased() == "bearer" else {
            throw APIError.unauthorized("Authorization must be \"Bearer <key>\"")
        }
        let key = value[space...].drop(while: { $0 == " " })
        let check: KeyCheck
        do {
            check = try keys.check(String(key))
        } catch {
            throw APIError(.internalServerError, "internal", "cannot check the API key: \(error.message)")
        }
        switch check {
        case .valid(let identity):
            return identity
        case .unknown:
            throw APIError.unauthorized("unknown API key")
        case .revoked(let id):
            throw APIError.unauthorized("API key \(id) was revoked")
        }
    }
}
