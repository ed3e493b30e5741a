import Hummingbird
import NIOCore

/// The request context of every route: Hummingbird's core storage plus who sent the request.
public struct SealboxRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// Set by `AuthMiddleware` (the key's identity, or `.unauthenticated` with `--no-auth`);
    /// nil only on the open endpoints (`AccessPolicy.open`).
    public var identity: APIIdentity?
    /// The connection the request came on: a run waiting in the queue is dropped when it
    /// closes (the caller went away).
    public let connection: (any Channel)?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        identity = nil
        connection = source.channel
    }

    /// The caller, or 401: a route that somehow ran without the middleware refuses rather
    /// than guesses a tenant.
    public func requireIdentity() throws(APIError) -> APIIdentity {
        guard let identity else { throw APIError.unauthorized("this endpoint needs an API key: send Authorization: Bearer <key>") }
        return identity
    }
}
