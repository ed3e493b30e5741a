import Foundation
import SealboxJail

/// docs/openapi.json as a server serves it: the document kept in the repository, with
/// `RunRequest.limits` made from `LimitTable` under the server's own maxima and defaults, so a
/// client reads what this server accepts (`serve --max-memory 8G` shows 8G), not the defaults.
/// The repository's copy shows the defaults; a test keeps it equal to the table's schema.
public enum OpenAPIDocument {
    /// The limits description in the repository's document.
    public static let documentedLimitsNote = "Each at most the operator's maximum (serve --max-*; the maxima shown are the defaults)."
    /// The limits description a server serves.
    public static let servedLimitsNote = "Each at most this server's maximum, as shown (serve --max-*)."

    /// The schema of `limits` the repository's document holds.
    public static var documentedLimits: LimitSchema {
        LimitSchema.request(defaults: Limits(), maxima: LimitTable.documentedMaxima, description: documentedLimitsNote)
    }

    /// `document` (the repository's bytes) with `RunRequest.limits` replaced by `limits`.
    public static func serving(_ document: Data, limits: LimitSchema) throws -> Data {
        guard var root = try JSONSerialization.jsonObject(with: document) as? [String: Any],
              var components = root["components"] as? [String: Any],
              var schemas = components["schemas"] as? [String: Any],
              var request = schemas["RunRequest"] as? [String: Any],
              var properties = request["properties"] as? [String: Any] else {
            throw OpenAPIDocumentError()
        }
        properties["limits"] = try JSONSerialization.jsonObject(with: Data(limits.jsonText.utf8))
        request["properties"] = properties
        schemas["RunRequest"] = request
        components["schemas"] = schemas
        root["components"] = components
        return try JSONSerialization.data(withJSONObject: root, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
    }
}

/// docs/openapi.json lacks the `RunRequest` schema whose limits a server fills in.
struct OpenAPIDocumentError: Error, CustomStringConvertible {
    var description: String { "docs/openapi.json has no components.schemas.RunRequest.properties to put the limits in" }
}
