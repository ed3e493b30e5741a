import HTTPTypes
import Hummingbird
import SealboxBase

/// Under `sealbox serve --no-auth`, the only thing between a web page and the API is the
/// address: a page on `evil.example` whose name the attacker re-points at 127.0.0.1 (DNS
/// rebinding) is "same origin" to the browser and could run code and approve effects. So
/// without keys, a request is served only when
/// - its `Host` names the machine directly: an IP literal, `localhost`, or the host name
///   serve listens on (a rebinding attack always arrives under the attacker's name), and
/// - it carries no `Origin`, or an `Origin` of that same host and port (a cross-site page's
///   simple POST to http://127.0.0.1 carries the page's own origin).
/// Clients that are not browsers send no `Origin` and use the address they connect to, so
/// they pass. With keys required this guard is not installed: a page cannot send a key it
/// does not have.
struct NoAuthHostGuard: RouterMiddleware {
    typealias Context = SealboxRequestContext

    /// The host serve listens on (`--listen`), lowercased.
    let listenHost: String

    init(listenHost: String) {
        self.listenHost = listenHost.lowercased()
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if let refusal = refusal(authority: request.head.authority, origins: request.headers[values: .origin]) {
            throw APIError(.forbidden, "forbidden_host", refusal)
        }
        return try await next(request, context)
    }

    /// Why the request is refused, or nil. Never echoes the header values (tenant bytes).
    func refusal(authority: String?, origins: [String]) -> String? {
        let advice = "without API keys (--no-auth) this server answers only requests addressed to it by IP address, localhost or its --listen host"
        // HTTP/1.1 requires Host; a request without one is no browser's.
        if let authority, !allowed(host: Self.host(of: authority)) {
            return "this Host is refused: \(advice)"
        }
        guard !origins.isEmpty else { return nil }
        guard origins.count == 1, let authority, let origin = Self.authority(ofOrigin: origins[0]),
              origin.lowercased() == authority.lowercased() else {
            return "a request from another origin (a web page) is refused: \(advice)"
        }
        return nil
    }

    func allowed(host: String) -> Bool {
        var name = host.lowercased()
        if name.hasSuffix(".") { name.removeLast() }
        return name == "localhost" || name == listenHost || IPAddress.bytes(name) != nil
    }

    /// `host` of `host`, `host:port`, `[v6]` or `[v6]:port`.
    static func host(of authority: String) -> String {
        if authority.hasPrefix("["), let close = authority.firstIndex(of: "]") {
            return String(authority[authority.index(after: authority.startIndex)..<close])
        }
        if let colon = authority.lastIndex(of: ":") { return String(authority[..<colon]) }
        return authority
    }

    /// `host:port` of `http://host:port` (an origin has no path); nil for `null` and others.
    static func authority(ofOrigin origin: String) -> String? {
        for scheme in ["http://", "https://"] where origin.lowercased().hasPrefix(scheme) {
            let rest = origin.dropFirst(scheme.count)
            return rest.isEmpty || rest.contains("/") ? nil : String(rest)
        }
        return nil
    }
}
