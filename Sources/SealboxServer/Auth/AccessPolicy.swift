import HTTPTypes

/// Which endpoints need no key and which need an operator key, by method and route pattern
/// (Hummingbird's endpoint path: "/v1/effects/{seq}/resolve"). Anything not listed here needs
/// a key of any tenant: a new route is protected by default, and so is a path that matches no
/// route (401 before 404, so the route table is not probed without a key).
public enum AccessPolicy {
    public static let open: Set<String> = [
        "GET /healthz",
        "GET /openapi.json",
    ]

    public static let operatorOnly: Set<String> = [
        "GET /metrics",
        "POST /v1/effects/{seq}/resolve",
        "POST /v1/effects/{seq}/approve",
        "POST /v1/effects/{seq}/deny",
    ]

    static func endpoint(_ method: HTTPRequest.Method, _ path: String?) -> String {
        "\(method.rawValue) \(path ?? "")"
    }
}
