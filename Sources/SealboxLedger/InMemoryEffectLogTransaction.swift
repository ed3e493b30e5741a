/// The effect log's primitives in memory: the state machine's rules tested in microseconds,
/// with no database, and the reference a new backend is compared with (the same ops must give
/// the same records and call states on every backend).
final class InMemoryEffectLogTransaction: EffectLogTransaction {
    private(set) var records: [EffectRecord] = []
    private(set) var calls: [Int64: CallSummary] = [:]
    private var revokedTokens: Set<String> = []
    private var revokedRuns: Set<String> = []
    private var family: [String: String] = [:]
    private var grants: [(input: GrantInput, tools: String, createdAtMs: Int64, recordSeq: Int64)] = []

    var tail: ChainTail {
        records.last.map { ChainTail(seq: $0.seq, hash: $0.hash) } ?? ChainTail(seq: 0, hash: EffectHash.genesisPrevHash)
    }

    func call(intentSeq: Int64) throws -> CallSummary? { calls[intentSeq] }

    func recordKind(seq: Int64) throws -> String? { records.first(where: { $0.seq == seq })?.kind }

    func calls(in state: CallState) throws -> [CallSummary] {
        calls.values.filter { $0.state == state }.sorted { $0.intentSeq < $1.intentSeq }
    }

    func insert(_ record: EffectRecord) throws {
        precondition(record.seq == (records.last?.seq ?? 0) + 1, "records are appended in seq order")
        records.append(record)
    }

    func insertCall(_ call: CallSummary) throws { calls[call.intentSeq] = call }

    func moveCall(intentSeq: Int64, to state: CallState, completionSeq: Int64?, now: Int64) throws {
        guard var call = calls[intentSeq] else { return }
        call.state = state
        call.completionSeq = completionSeq ?? call.completionSeq
        call.updatedAtMs = now
        calls[intentSeq] = call
    }

    func insertRevocation(tokenID: String?, runID: String?, reason: String, now: Int64, recordSeq: Int64) throws {
        if let tokenID { revokedTokens.insert(tokenID) }
        if let runID { revokedRuns.insert(runID) }
    }

    func familyRoot(of sessionID: String) throws -> String? { family[sessionID] }

    func insertFamilyMember(sessionID: String, root: String, now: Int64) throws { family[sessionID] = root }

    func grantExists(tokenID: String) throws -> Bool { grants.contains { $0.input.tokenID == tokenID } }

    func insertGrant(_ input: GrantInput, tools: String, now: Int64, recordSeq: Int64) throws {
        grants.append((input, tools, now, recordSeq))
    }

    func liveGrants(now: Int64) throws -> [GrantSummary] {
        grants.filter { $0.input.expiresAtMs > now && !revokedTokens.contains($0.input.tokenID) && !revokedRuns.contains($0.input.runID) }
            .sorted { $0.recordSeq < $1.recordSeq }
            .map { summary($0) }
    }

    func ownersOfPendingCalls() throws -> [Int64: [String]] {
        var owners: [Int64: [String]] = [:]
        for call in try calls(in: .pending) {
            let token = records.first(where: { $0.seq == call.intentSeq })?.tokenID
            let byToken = grants.filter { $0.input.tokenID == token }
            let behind = byToken.isEmpty ? grants.filter { $0.input.runID == call.runID } : byToken
            for grant in behind {
                if let broker = grant.input.brokerID { owners[call.intentSeq, default: []].append(broker) }
            }
        }
        return owners
    }

    private func summary(_ g: (input: GrantInput, tools: String, createdAtMs: Int64, recordSeq: Int64)) -> GrantSummary {
        GrantSummary(tokenID: g.input.tokenID, runID: g.input.runID, sessionID: g.input.sessionID,
                     tools: g.tools.isEmpty ? [] : g.tools.split(separator: ",", omittingEmptySubsequences: false).map(String.init),
                     expiresAtMs: g.input.expiresAtMs, createdAtMs: g.createdAtMs, recordSeq: g.recordSeq, brokerID: g.input.brokerID)
    }
}
