import Foundation
import SealboxBase

/// Bodies of `POST /v1/effects/{seq}/resolve|approve|deny`, strict like `RunRequest`: unknown
/// fields and wrong types are a 400 naming the field. An empty body reads as `{}`.
///   resolve  {"happened": true|false, "note": "why"?}
///   approve  {}
///   deny     {"note": "why"?}
struct EffectDecisionBody: Sendable, Equatable {
    /// Longest note kept in the log.
    static let maxNoteBytes = 4096

    var happened: Bool?
    var note: String?

    enum Kind: String {
        case resolve, approve, deny

        var fields: Set<String> {
            switch self {
            case .resolve: ["happened", "note"]
            case .approve: []
            case .deny: ["note"]
            }
        }
    }

    private struct Wire: Decodable {
        var happened: Bool?
        var note: String?
        enum CodingKeys: String, CodingKey, CaseIterable { case happened, note }
    }

    static func parse(_ body: Data, _ kind: Kind) throws(APIError) -> EffectDecisionBody {
        if body.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) {
            guard kind != .resolve else { throw .badRequest("happened is required (true or false)", field: "happened") }
            return EffectDecisionBody()
        }
        let wire: Wire
        do {
            wire = try StrictJSONDecoder.decode(Wire.self, from: [UInt8](body))
        } catch {
            throw APIError(decoding: error)
        }
        // One decoder for the three decisions; fields the decision does not take are refused.
        for (name, present) in [("happened", wire.happened != nil), ("note", wire.note != nil)] where present && !kind.fields.contains(name) {
            let known = kind.fields.isEmpty ? "none: send {}" : "known: " + kind.fields.sorted().joined(separator: ", ")
            throw .badRequest("unknown field \"\(name)\" for \(kind.rawValue) (\(known))", field: name)
        }
        if kind == .resolve, wire.happened == nil { throw .badRequest("happened is required (true or false)", field: "happened") }
        if let note = wire.note {
            guard note.utf8.count <= maxNoteBytes else { throw .badRequest("note is longer than \(maxNoteBytes) bytes", field: "note") }
            guard !note.utf8.contains(0) else { throw .badRequest("note contains a NUL character", field: "note") }
        }
        return EffectDecisionBody(happened: wire.happened, note: wire.note)
    }
}
