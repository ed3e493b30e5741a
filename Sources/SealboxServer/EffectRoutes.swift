import Foundation
import HTTPTypes
import SealboxAccess
import Hummingbird
import SealboxLedger

/// The effect log over HTTP, for agents (what did my session do) and operators (settle what
/// waits on a human):
///   GET  /v1/effects?session=&run=&tool=&state=&after=&limit=   calls, in intent-seq order
///   GET  /v1/effects/{seq}                                      one call and all its records
///   POST /v1/effects/{seq}/resolve   {"happened": bool, "note"?}  operator: settle an in-doubt call
///   POST /v1/effects/{seq}/approve   {}                           operator: let an awaiting call run
///   POST /v1/effects/{seq}/deny      {"note"?}                    operator: refuse it
/// A tenant key sees the calls of the sessions its tenant owns (`TenantDirectory`); an operator
/// key sees all. A call the caller may not see is a 404, the same as one that does not exist.
extension SealboxAPI {
    /// Calls of the log read per tenant listing at most; past it the answer stops early with
    /// `next_after`, so a tenant owning little of a large log cannot make one request scan it all.
    static let effectScanBudget = 10_000
    static let effectScanBatch = 1000
    static let maxDecisionBodyBytes = 64 << 10

    struct EffectPage: Encodable {
        var calls: [CallSummary]
        /// Pass as `after` for the next page; null when this page reached the end of the log.
        var nextAfter: Int64?

        enum CodingKeys: String, CodingKey {
            case calls
            case nextAfter = "next_after"
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(calls, forKey: .calls)
            try c.encode(nextAfter, forKey: .nextAfter)
        }
    }

    struct EffectDetail: Encodable {
        var call: CallSummary
        var records: [EffectRecord]
    }

    struct EffectDecision: Encodable {
        var call: CallSummary
        /// The approval or resolution record just appended to the chain.
        var record: EffectRecord
    }

    func listEffects(_ request: Request, _ context: SealboxRequestContext) throws(APIError) -> Response {
        let identity = try context.requireIdentity()
        let query = try EffectQuery.parse(request.uri.queryParameters)
        return try Self.jsonResponse(.ok, try effects(query, for: identity))
    }

    /// Calls matching `filter` that the caller's tenant may see (MCP's list_effects).
    public func effects(_ filter: ListFilter, for identity: APIIdentity) throws(APIError) -> [CallSummary] {
        let query = EffectQuery(session: filter.sessionID, run: filter.runID, tool: filter.tool, state: filter.state,
                                after: filter.afterSeq, limit: filter.limit)
        return try effects(query, for: identity).calls
    }

    func effects(_ query: EffectQuery, for identity: APIIdentity) throws(APIError) -> EffectPage {
        guard let ledger = try openEffectLog() else { return EffectPage(calls: [], nextAfter: nil) }
        if let session = query.session, !identity.isOperator {
            // One session: its owner decides, and the ledger's filter does the rest.
            guard identity.canSee(ownedBy: try sessionOwner(session)) else {
                return EffectPage(calls: [], nextAfter: nil)
            }
            return try Self.page(ledger, query, where: nil)
        }
        if identity.isOperator { return try Self.page(ledger, query, where: nil) }
        let tenants = access.tenants
        return try Self.page(ledger, query) { calls throws(APIError) in
            let owners = try Self.mapAccess { () throws(AccessError) in try tenants.owners(of: Set(calls.map(\.sessionID))) }
            return calls.map { identity.canSee(ownedBy: owners[$0.sessionID]) }
        }
    }

    /// One page of calls matching `query`; `visible` (nil: all visible) marks which of a batch
    /// the caller may see. Reads batches until the page is full, the log ends, or the scan budget
    /// is spent.
    static func page(_ ledger: Ledger, _ query: EffectQuery, where visible: (([CallSummary]) throws(APIError) -> [Bool])?) throws(APIError) -> EffectPage {
        guard let visible else {
            // Everything matching is visible: one read of limit + 1 tells whether more follow.
            var calls = try mapLedger { () throws(LedgerError) in try ledger.list(query.filter(after: query.after, limit: query.limit + 1)) }
            guard calls.count > query.limit else { return EffectPage(calls: calls, nextAfter: nil) }
            calls.removeLast(calls.count - query.limit)
            return EffectPage(calls: calls, nextAfter: calls.last?.intentSeq)
        }
        var found: [CallSummary] = []
        var cursor = query.after
        var scanned = 0
        while scanned < effectScanBudget {
            let batchSize = min(effectScanBatch, effectScanBudget - scanned)
            let batch = try mapLedger { () throws(LedgerError) in try ledger.list(query.filter(after: cursor, limit: batchSize)) }
            let marks = try visible(batch)
            for (call, isVisible) in zip(batch, marks) {
                cursor = call.intentSeq
                scanned += 1
                guard isVisible else { continue }
                if found.count == query.limit {
                    // A visible call beyond the page: there is more, starting after the last one shown.
                    return EffectPage(calls: found, nextAfter: found.last?.intentSeq)
                }
                found.append(call)
            }
            if batch.count < batchSize { return EffectPage(calls: found, nextAfter: nil) }
        }
        // Budget spent before the end of the log: continue from the last call read.
        return EffectPage(calls: found, nextAfter: cursor)
    }

    func getEffect(_ rawSeq: String, _ context: SealboxRequestContext) throws(APIError) -> Response {
        let identity = try context.requireIdentity()
        let seq = try Self.parseSeq(rawSeq)
        guard let ledger = try openEffectLog() else { throw Self.noCall(seq) }
        let call: CallSummary? = try Self.mapLedger { () throws(LedgerError) in
            guard let record = try ledger.record(seq: seq) else { return nil }
            return try ledger.call(intentSeq: record.intentSeq ?? record.seq)
        }
        guard let call, identity.canSee(ownedBy: try sessionOwner(call.sessionID)) else { throw Self.noCall(seq) }
        let records = try Self.mapLedger { () throws(LedgerError) in try ledger.records(forIntent: call.intentSeq) }
        return try Self.jsonResponse(.ok, EffectDetail(call: call, records: records))
    }

    /// resolve, approve, deny: operator only (`AccessPolicy.operatorOnly`), checked again here.
    /// The actor in the log is `api-key:<key id>`.
    func decideEffect(_ kind: EffectDecisionBody.Kind, _ rawSeq: String, _ request: Request, _ context: SealboxRequestContext) async throws(APIError) -> Response {
        let identity = try context.requireIdentity()
        guard identity.isOperator else {
            throw APIError(.forbidden, "forbidden", "\(kind.rawValue) needs an operator key; key \(identity.keyID) is not one")
        }
        let seq = try Self.parseSeq(rawSeq)
        var request = request
        let bytes: ByteBuffer
        do {
            bytes = try await request.collectBody(upTo: Self.maxDecisionBodyBytes)
        } catch {
            throw APIError(.contentTooLarge, "payload_too_large", "the body is larger than \(Self.maxDecisionBodyBytes) bytes")
        }
        let body = try EffectDecisionBody.parse(Data(bytes.readableBytesView), kind)
        guard let ledger = try openEffectLog(),
              try Self.mapLedger({ () throws(LedgerError) in try ledger.call(intentSeq: seq) }) != nil
        else { throw Self.noCall(seq) }
        let record: EffectRecord
        do {
            switch kind {
            case .resolve: record = try await ledger.resolve(intentSeq: seq, happened: body.happened ?? false, actor: identity.actor, note: body.note)
            case .approve: record = try await ledger.approve(intentSeq: seq, actor: identity.actor)
            case .deny: record = try await ledger.deny(intentSeq: seq, actor: identity.actor, note: body.note)
            }
        } catch {
            throw Self.apiError(error)
        }
        guard let call = try Self.mapLedger({ () throws(LedgerError) in try ledger.call(intentSeq: seq) }) else { throw Self.noCall(seq) }
        return try Self.jsonResponse(.ok, EffectDecision(call: call, record: record))
    }

    // MARK: helpers

    func openEffectLog() throws(APIError) -> Ledger? {
        do {
            return try effectLog.open()
        } catch {
            throw APIError(.internalServerError, "effect_log", "cannot open the effect log: \(error.message)")
        }
    }

    func sessionOwner(_ session: String) throws(APIError) -> String? {
        try Self.mapAccess { () throws(AccessError) in try access.tenants.owner(of: session) }
    }

    static func parseSeq(_ raw: String) throws(APIError) -> Int64 {
        guard let seq = Int64(raw), seq > 0 else { throw .badRequest("seq must be a positive whole number, not \"\(raw.prefix(32))\"", field: "seq") }
        return seq
    }

    static func noCall(_ seq: Int64) -> APIError {
        .notFound("no call at seq \(seq)")
    }

    /// Wrong state → 409 with the ledger's own words ("seq 17 is sealed, not awaiting approval").
    static func apiError(_ error: LedgerError) -> APIError {
        switch error.code {
        case .invalidTransition: APIError(.conflict, "conflict", error.message)
        case .notFound: .notFound(error.message)
        case .invalidInput: .badRequest(error.message)
        case .badPath, .notALedger, .storage: APIError(.internalServerError, "effect_log", error.message)
        case .storageFull: .storageFull(error.message)
        }
    }

    static func mapLedger<T>(_ body: () throws(LedgerError) -> T) throws(APIError) -> T {
        do { return try body() } catch { throw apiError(error) }
    }

    static func mapAccess<T>(_ body: () throws(AccessError) -> T) throws(APIError) -> T {
        do { return try body() } catch { throw APIError(.internalServerError, "key_store", error.message) }
    }

    static func jsonResponse(_ status: HTTPResponse.Status, _ value: some Encodable) throws(APIError) -> Response {
        do {
            return try json(status, value)
        } catch {
            throw APIError(.internalServerError, "internal", "cannot encode the answer: \(error)")
        }
    }
}
