import Foundation
import SealboxBase
import SealboxJail
import SealboxLedger
import SealboxSQLite

/// The checkpoint side of `sealbox run --session ID --step KEY`.
public struct StepCheckpoint: Sendable {
    public let store: any CheckpointStore
    public let session: String
    public let info: SessionInfo
    public let step: String
    public let codeDigest: String

    /// What a step runs: its argv, its files, its environment and its stdin. These are every
    /// input a step's program reads that sealbox hands it; re-running a sealed step with any of
    /// them changed is `step_conflict`, never the sealed answer to another question. (Its
    /// workspace is the session's, and its tools' answers are the effect log's: those are
    /// carried by the session, not by the step's identity.) An empty stdin adds nothing, so
    /// steps sealed before stdin counted keep their digest.
    public static func digest(_ spec: JailSpec) -> String {
        var parts: [[UInt8]] = [Array("argv".utf8)] + spec.command.map { Array($0.utf8) }
        parts.append(Array("files".utf8))
        for file in spec.files.sorted(by: { $0.name < $1.name }) {
            parts.append(Array(file.name.utf8))
            parts.append(file.contents)
        }
        parts.append(Array("env".utf8))
        for (name, value) in spec.environment { parts.append(Array("\(name)=\(value)".utf8)) }
        switch spec.stdin {
        case .bytes(let bytes) where !bytes.isEmpty:
            parts.append(Array("stdin".utf8))
            parts.append(bytes)
        case .bytes, .null:
            break
        case .file, .descriptor:
            // `StepStdin.read` turns these into bytes before a step is opened.
            preconditionFailure("a step's stdin is read into bytes before its digest")
        }
        return Checkpoints.codeDigest(parts)
    }

    public static func open(path: String, session: String?, step: String, spec: JailSpec) throws -> StepCheckpoint {
        guard let session else { throw RuntimeError(.badInput, "a step needs a session id (create one with `sealbox session new` or POST /v1/sessions)", field: "session") }
        let (store, info) = try openSession(path: path, session: session)
        return try StepCheckpoint(store: store, info: info, step: step, codeDigest: digest(spec))
    }

    /// The checkpoint store at `path` and session `session` in it; `notFound` for a session it
    /// does not know.
    static func openSession(path: String, session: String) throws(RuntimeError) -> (any CheckpointStore, SessionInfo) {
        do {
            let store = try StateStores.checkpoints(file: path)
            guard let found = try store.session(session) else {
                throw RuntimeError(.notFound, "unknown session \(session) (create one with `sealbox session new` or POST /v1/sessions)", field: "session")
            }
            return (store, found)
        } catch let error as RuntimeError {
            throw error
        } catch let error as CheckpointError {
            throw RuntimeError(storage: error)
        } catch {
            throw RuntimeError(.storage, "\(error)")
        }
    }

    /// The sealed result of this step, marked replayed, if sealed with the same code;
    /// step_conflict otherwise.
    public func sealedResult() throws -> RunResult? {
        guard let (json, seq) = try sealedJSON() else { return nil }
        guard var result = try? JSONDecoder().decode(RunResult.self, from: Data(json.utf8)) else {
            throw RuntimeError(.storage, "checkpoint \(seq) holds an unreadable result")
        }
        result.replayed = true
        result.checkpoint = seq
        return result
    }

    /// The sealed result's JSON and its checkpoint, if the step was sealed with the same
    /// inputs; step_conflict when it was sealed with others.
    public func sealedJSON() throws(RuntimeError) -> (json: String, seq: Int64)? {
        let sealed: Checkpoint?
        do {
            sealed = try store.sealed(session: session, step: step)
        } catch {
            throw RuntimeError(storage: error)
        }
        guard let sealed else { return nil }
        guard sealed.codeDigest == codeDigest else {
            throw RuntimeError(.stepConflict, "step_conflict: step \"\(step)\" of session \(session) was sealed (checkpoint \(sealed.seq)) with code \(sealed.codeDigest), but this run submits \(codeDigest); a re-planned step needs a new step key (or a fork of the session)")
        }
        return (sealed.result, sealed.seq)
    }

    /// Records that the step starts, so `session facts` can name it if it never seals, and
    /// takes the step's lease. nil when the step was sealed meanwhile (answer from the seal);
    /// `step_running` when another run of it is executing now.
    public func recordStart(runID: String?) throws -> Int64? {
        do {
            return try store.recordAttempt(session: session, step: step, codeDigest: codeDigest, runID: runID).id
        } catch where error.code == .alreadySealed {
            return nil
        } catch {
            throw RuntimeError(storage: error)
        }
    }

    /// Ends an attempt that will not be sealed, so the step can run again at once (a failed
    /// end is not fatal: the attempt then ends when this process does).
    public func end(attempt: Int64, outcome: String) {
        try? store.endAttempt(attempt, outcome: outcome)
    }

    public func seal(resultJSON: String, ledgerCursor: Int64?, snapshot: SnapshotManifest?) throws -> Int64 {
        do {
            return try store.seal(session: session, step: step, codeDigest: codeDigest, result: resultJSON,
                                  ledgerCursor: ledgerCursor, snapshot: snapshot).seq
        } catch {
            throw RuntimeError(storage: error, "the step ran but could not be sealed: ")
        }
    }
}

extension StepCheckpoint {
    /// Step `step` of the session `info`, whose inputs hash to `codeDigest` (a live
    /// sandbox's command or chunk: `SandboxSession`).
    init(store: any CheckpointStore, info: SessionInfo, step: String, codeDigest: String) throws(RuntimeError) {
        if let problem = StepKey.problem(step) {
            throw RuntimeError(.badInput, "a step key \(problem)", field: "step")
        }
        self.init(store: store, session: info.id, info: info, step: step, codeDigest: codeDigest)
    }
}

/// A step's stdin, read once into bytes: so it can be part of the step's identity and still be
/// handed to the program (as the sealed memfd `.bytes` becomes).
public enum StepStdin {
    /// More than this is refused for a step (a plain run streams any size from a file or pipe).
    public static let maxBytes = 64 << 20

    /// Reads a file or descriptor source to its end on a thread of its own (a pipe may block),
    /// never on the cooperative pool; `.null` and `.bytes` are returned as they are.
    public static func read(_ source: StdinSource) async throws(RuntimeError) -> StdinSource {
        let handle: FileHandle
        switch source {
        case .null, .bytes:
            return source
        case .file(let path):
            guard let opened = FileHandle(forReadingAtPath: path) else {
                throw RuntimeError(.badInput, "cannot read the stdin file of the step", field: "stdin")
            }
            handle = opened
        case .descriptor(let fd):
            handle = FileHandle(fileDescriptor: fd, closeOnDealloc: false)
        }
        let read: Result<Data, RuntimeError> = await onOwnThread("sealbox-step-stdin") {
            defer { if case .file = source { try? handle.close() } }
            do {
                let data = try handle.read(upToCount: maxBytes + 1) ?? Data()
                guard data.count <= maxBytes else {
                    return .failure(RuntimeError(
                        .badInput, "a step's stdin is part of its identity and is at most \(maxBytes >> 20) MiB; pass larger inputs as files", field: "stdin"))
                }
                return .success(data)
            } catch {
                return .failure(RuntimeError(.badInput, "reading the step's stdin failed: \(error.localizedDescription)", field: "stdin"))
            }
        }
        return .bytes(Array(try read.get()))
    }
}
