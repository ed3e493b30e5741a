import Foundation
import SealboxBase
import SealboxJail
import SealboxLedger

/// A live sandbox's place in a session (docs/sandboxes.md): its /work starts as the session's
/// last sealed workspace, and a command or code chunk given a step key is sealed like a run's
/// step (its result, a snapshot of /work, the effect log's cursor), so that a re-sent step
/// answers from its seal and a sandbox made later from the session starts where it stood.
public struct SandboxSession: Sendable {
    public let store: any CheckpointStore
    public let info: SessionInfo

    /// Session `id` of the checkpoint store at `checkpointsPath`; `notFound` when unknown.
    public static func open(checkpointsPath: String, session id: String) throws(RuntimeError) -> SandboxSession {
        let (store, info) = try StepCheckpoint.openSession(path: checkpointsPath, session: id)
        return SandboxSession(store: store, info: info)
    }

    /// A workspace holding the session's last sealed snapshot (empty for a new session).
    public func restoreWorkspace() throws(RuntimeError) -> Workspace {
        do {
            return try StepWorkspace.restore(store: store, session: info)
        } catch let error as RuntimeError {
            throw error
        } catch {
            throw RuntimeError(.storage, "\(error)")
        }
    }

    /// Step `key`, whose identity is `inputs` (`commandInputs`, `chunkInputs`): re-sent with
    /// other inputs it is `step_conflict`, as a run's step is.
    public func step(_ key: String, inputs: [[UInt8]]) throws(RuntimeError) -> StepCheckpoint {
        try StepCheckpoint(store: store, info: info, step: key, codeDigest: Checkpoints.codeDigest(inputs))
    }

    /// What a command step runs: its argv, where, its environment and its stdin.
    public static func commandInputs(_ command: LiveCommand) -> [[UInt8]] {
        var parts: [[UInt8]] = [Array("sandbox-command".utf8)] + command.command.map { Array($0.utf8) }
        parts.append(Array("cwd".utf8))
        parts.append(Array(command.workingDirectory.utf8))
        parts.append(Array("env".utf8))
        for (name, value) in command.environment { parts.append(Array("\(name)=\(value)".utf8)) }
        if case .bytes(let bytes) = command.stdin, !bytes.isEmpty {
            parts.append(Array("stdin".utf8))
            parts.append(bytes)
        }
        return parts
    }

    /// What a chunk step runs: its language and its code (the context's state, like /work, is
    /// the sandbox's, not the step's).
    public static func chunkInputs(language: String, code: String) -> [[UInt8]] {
        [Array("sandbox-chunk".utf8), Array(language.utf8), Array(code.utf8)]
    }

    /// Seals `step` with what `jail`'s /work holds now (read with the jail frozen, so the
    /// snapshot is one instant even while its commands run) and the result `resultJSON` makes
    /// of the snapshot's summary. Returns the checkpoint's seq and the summary.
    public func seal(_ step: StepCheckpoint, jail: LiveJail, ledgerCursor: Int64?,
                     resultJSON: (RunResult.WorkspaceSummary) -> String) throws(RuntimeError) -> (seq: Int64, workspace: RunResult.WorkspaceSummary) {
        let (manifest, summary) = try Self.snapshot(jail, blobs: store.blobs)
        do {
            return (try step.seal(resultJSON: resultJSON(summary), ledgerCursor: ledgerCursor, snapshot: manifest), summary)
        } catch let error as RuntimeError {
            throw error
        } catch {
            throw RuntimeError(.storage, "\(error)")
        }
    }

    /// What `jail`'s /work holds now, its files stored in `blobs`, read with the jail frozen.
    public static func snapshot(_ jail: LiveJail, blobs: any BlobStore) throws(RuntimeError) -> (SnapshotManifest, RunResult.WorkspaceSummary) {
        do {
            let view = try jail.workspaceView()
            return try jail.whileFrozen { try StepWorkspace.capture(view, blobs: blobs) }
        } catch let error as RuntimeError {
            throw error
        } catch {
            throw RuntimeError(.storage, "the sandbox's /work could not be saved: \(error)")
        }
    }
}
