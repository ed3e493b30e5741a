/// The effect log's primitives in memory: the state machine's rules tested in microseconds,
/// with no database, and the reference a new backend is compared with (the same ops must give
/// the same records and call states on every backend).
final class InMemoryEffectLogTransaction: EffectLogTransaction {
    /// Everything the primitives write: one value, so a savepoint is a copy of it.
    private struct Contents {
        var records: [EffectRecord] = []
        var calls: [Int64: CallSummary] = [:]
        var revokedTokens: Set<String> = []
        var revokedRuns: Set<String> = []
        var family: [String: String] = [:]
        var grants: [(input: GrantInput, tools: String, createdAtMs: Int64, recordSeq: Int64)] = []
    }

    private var contents = Contents()

    var records: [EffectRecord] { contents.records }
    var calls: [Int64: CallSummary] { contents.calls }

    var tail: ChainTail {
        records.last.map { ChainTail(seq: $0.seq, hash: $0.hash) } ?? .empty
    }

    func chainTail() throws -> ChainTail { tail }

    func savepoint(_ body: () throws -> Void) throws {
        let saved = contents
        do {
            try body()
        } catch {
            contents = saved
            throw error
        }
    }

    func call(intentSeq: Int64) throws -> CallSummary? { calls[intentSeq] }

    func recordKind(seq: Int64) throws -> String? { records.first(where: { $0.seq == seq })?.kind }

    func calls(in state: CallState) throws -> [CallSummary] {
        calls.values.filter { $0.state == state }.sorted { $0.intentSeq < $1.intentSeq }
    }

    func insert(_ record: EffectRecord) throws {
        precondition(record.seq == (records.last?.seq ?? 0) + 1, "records are appended in seq order")
        contents.records.append(record)
    }

    func insertCall(_ call: CallSummary) throws { contents.calls[call.intentSeq] = call }

    func moveCall(intentSeq: Int64, to state: CallState, completionSeq: Int64?, now: Int64) throws {
        guard var call = calls[intentSeq] else { return }
        call.state = state
        call.completionSeq = completionSeq ?? call.completionSeq
        call.updatedAtMs = now
        contents.calls[intentSeq] = call
    }

    func insertRevocation(tokenID: String?, runID: String?, reason: String, now: Int64, recordSeq: Int64) throws {
        if let tokenID { contents.revokedTokens.insert(tokenID) }
        if let runID { contents.revokedRuns.insert(runID) }
    }

    func familyRoot(of sessionID: String) throws -> String? { contents.family[sessionID] }

    func insertFamilyMember(sessionID: String, root: String, now: Int64) throws { contents.family[sessionID] = root }

    func grantExists(tokenID: String) throws -> Bool { contents.grants.contains { $0.input.tokenID == tokenID } }

    func insertGrant(_ input: GrantInput, tools: String, now: Int64, recordSeq: Int64) throws {
        contents.grants.append((input, tools, now, recordSeq))
    }

    func liveGrants(now: Int64) throws -> [GrantSummary] {
        contents.grants.filter { $0.input.expiresAtMs > now && !contents.revokedTokens.contains($0.input.tokenID) && !contents.revokedRuns.contains($0.input.runID) }
            .sorted { $0.recordSeq < $1.recordSeq }
            .map { summary($0) }
    }

    func ownersOfPendingCalls() throws -> [Int64: [String]] {
        var owners: [Int64: [String]] = [:]
        for call in try calls(in: .pending) {
            let token = records.first(where: { $0.seq == call.intentSeq })?.tokenID
            let byToken = contents.grants.filter { $0.input.tokenID == token }
            let behind = byToken.isEmpty ? contents.grants.filter { $0.input.runID == call.runID } : byToken
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
