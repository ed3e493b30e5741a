import Foundation
import Testing
@testable import SealboxLedger

/// A fresh directory per test under NSTemporaryDirectory(), removed by `cleanup()`.
struct TempLedgerDir {
    let url: URL

    init(_ name: String = #function) {
        let safe = name.filter { $0.isLetter || $0.isNumber }
        url = URL(fileURLWithPath: NSTemporaryDirectory())
            .appendingPathComponent("sealbox-ledger-tests")
            .appendingPathComponent("\(safe)-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    var ledgerPath: String { url.appendingPathComponent("effects.sqlite").path }

    func cleanup() {
        try? FileManager.default.removeItem(at: url)
    }
}

func makeIntent(
    session: String = "sess-1", run: String = "run-1", tool: String = "send_mail",
    effect: EffectClass = .idempotent, key: String = UUID().uuidString, approval: Approval = .auto,
    fresh: Bool = false
) -> IntentInput {
    IntentInput(
        runID: run, sessionID: session, tool: tool, effectClass: effect, idempotencyKey: key,
        target: "https://api.example.com/\(tool)", argsDigest: String(repeating: "ab", count: 32),
        approval: approval, tokenID: "tok-\(run)", fresh: fresh)
}

func makeCompletion(_ seq: Int64, status: String = "ok", response: String? = #"{"id":42,"ok":true}"#,
                    irreversible: Bool = false, happened: Bool? = true) -> CompletionInput {
    CompletionInput(
        intentSeq: seq, status: status, response: response, responseDigest: String(repeating: "cd", count: 32),
        resourceVersion: "etag-1", irreversible: irreversible, happened: happened, durationMs: 12.5)
}

/// Runs `body` and returns the LedgerError it threw (nil if it did not throw; another error
/// type is a test failure).
func ledgerError<T>(_ body: () async throws -> T, sourceLocation: SourceLocation = #_sourceLocation) async -> LedgerError? {
    do {
        _ = try await body()
        return nil
    } catch let error as LedgerError {
        return error
    } catch {
        Issue.record("expected a LedgerError, got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

func ledgerError<T>(_ body: () throws -> T, sourceLocation: SourceLocation = #_sourceLocation) -> LedgerError? {
    do {
        _ = try body()
        return nil
    } catch let error as LedgerError {
        return error
    } catch {
        Issue.record("expected a LedgerError, got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}
