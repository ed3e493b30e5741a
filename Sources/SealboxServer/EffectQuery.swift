import Hummingbird
import SealboxLedger

/// `GET /v1/effects?session=&run=&tool=&state=&after=&limit=`, parsed strictly: an unknown
/// parameter, a repeated one or a bad value is a 400 naming it.
struct EffectQuery: Sendable, Equatable {
    static let defaultLimit = 100
    static let maxLimit = 1000
    static let parameters: Set = ["session", "run", "tool", "state", "after", "limit"]
    /// Longest session, run or tool accepted in a filter.
    static let maxValueBytes = 256

    var session: String?
    var run: String?
    var tool: String?
    var state: CallState?
    /// Only calls with an intent seq above this (the `next_after` of the previous page).
    var after: Int64?
    var limit = defaultLimit

    static func parse(_ query: Parameters) throws(APIError) -> EffectQuery {
        var seen = Set<String>()
        var result = EffectQuery()
        for (rawName, rawValue) in query {
            let name = String(rawName)
            let value = String(rawValue)
            guard parameters.contains(name) else {
                throw .badRequest("unknown query parameter \"\(name.prefix(64))\" (known: \(parameters.sorted().joined(separator: ", ")))", field: name)
            }
            guard seen.insert(name).inserted else { throw .badRequest("\(name) given more than once", field: name) }
            guard !value.isEmpty, value.utf8.count <= maxValueBytes, !value.utf8.contains(0) else {
                throw .badRequest("\(name) must be 1-\(maxValueBytes) bytes", field: name)
            }
            switch name {
            case "session": result.session = value
            case "run": result.run = value
            case "tool": result.tool = value
            case "state":
                guard let state = CallState(rawValue: value) else {
                    throw .badRequest("unknown state \"\(value.prefix(64))\" (known: \(CallState.allCases.map(\.rawValue).joined(separator: ", ")))", field: name)
                }
                result.state = state
            case "after":
                guard let after = Int64(value), after >= 0 else { throw .badRequest("after must be a sequence number (0 or more)", field: name) }
                result.after = after
            default:
                guard let limit = Int(value), (1...maxLimit).contains(limit) else {
                    throw .badRequest("limit must be between 1 and \(maxLimit)", field: name)
                }
                result.limit = limit
            }
        }
        return result
    }

    /// The ledger filter for one page starting after `after`, of `limit` calls.
    func filter(after: Int64?, limit: Int) -> ListFilter {
        ListFilter(sessionID: session, runID: run, tool: tool, state: state, limit: limit, afterSeq: after)
    }
}
