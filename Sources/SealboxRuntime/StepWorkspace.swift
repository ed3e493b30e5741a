import Foundation
import Glibc
import SealboxBase
import SealboxJail
import SealboxLedger

/// The workspace side of `sealbox run --session ID --step KEY`: /work starts as the session's
/// last sealed snapshot, and what the step leaves there becomes the snapshot its seal names.
/// File contents go through the checkpoint store's blob store, so a file kept unchanged by
/// many steps is stored once.
public enum StepWorkspace {
    /// A workspace holding the session's latest snapshot (empty for a new session).
    public static func restore(store: any CheckpointStore, session: SessionInfo) throws -> Workspace {
        let manifest: SnapshotManifest?
        do {
            manifest = try store.latestSnapshot(session: session.id)
        } catch let error as CheckpointError {
            throw RuntimeError(storage: error)
        }
        return try restore(manifest, limitBytes: session.workspaceLimitBytes, blobs: store.blobs, of: "session \(session.id)")
    }

    /// A workspace of `limitBytes` holding `manifest` (empty for nil), its files read from
    /// `blobs`; `of` names whose it is in errors.
    public static func restore(_ manifest: SnapshotManifest?, limitBytes: UInt64, blobs: any BlobStore, of owner: String) throws -> Workspace {
        let workspace: Workspace
        do {
            workspace = try Workspace(limitBytes: limitBytes)
        } catch {
            throw RuntimeError(.storage, error.description)
        }
        guard let manifest else { return workspace }
        guard manifest.totalBytes <= limitBytes else {
            throw RuntimeError(.storage, "the workspace of \(owner) holds \(ByteSize.format(manifest.totalBytes)), more than its limit of \(ByteSize.format(limitBytes))")
        }
        for entry in manifest.entries {
            do {
                switch entry.kind {
                case .directory:
                    try workspace.makeDirectory(entry.path, mode: entry.mode)
                case .symlink:
                    try workspace.makeSymlink(entry.path, target: entry.target ?? "")
                case .file:
                    let blob = try blobs.open(entry.digest ?? "")
                    defer { close(blob) }
                    try workspace.writeFile(entry.path, mode: entry.mode, copyingFrom: blob)
                }
            } catch let error as JailError {
                throw RuntimeError(.storage, "cannot restore /work/\(entry.path) of \(owner): \(error.description)")
            } catch let error as CheckpointError {
                throw RuntimeError(storage: error, "cannot restore /work/\(entry.path) of \(owner): ")
            }
        }
        return workspace
    }

    /// Stores what the step left in /work; returns the manifest to seal and its summary.
    public static func capture(_ workspace: Workspace, store: any CheckpointStore) throws -> (SnapshotManifest, RunResult.WorkspaceSummary) {
        try capture(workspace, blobs: store.blobs)
    }

    /// Stores what `workspace` holds in `blobs`; returns its manifest and summary.
    public static func capture(_ workspace: Workspace, blobs: any BlobStore) throws -> (SnapshotManifest, RunResult.WorkspaceSummary) {
        do {
            let (items, skipped) = try workspace.walk()
            var entries: [SnapshotEntry] = []
            var newBlobs = 0
            for item in items {
                switch item.kind {
                case .directory:
                    entries.append(SnapshotEntry(path: item.path, kind: .directory, mode: item.mode))
                case .symlink:
                    entries.append(SnapshotEntry(path: item.path, kind: .symlink, mode: 0o777, target: item.target))
                case .file:
                    let fd = try workspace.openFile(item.path)
                    defer { close(fd) }
                    let stored = try blobs.put(fd: fd)
                    if stored.stored { newBlobs += 1 }
                    entries.append(SnapshotEntry(path: item.path, kind: .file, mode: item.mode, size: stored.size, digest: stored.digest))
                }
            }
            let manifest = SnapshotManifest(entries: entries)
            // tmpfs hands out whole pages: less than one free page left means writes fail.
            let full = workspace.usage.freeBytes < 8192
            let summary = RunResult.WorkspaceSummary(
                snapshot: manifest.id, files: manifest.fileCount, bytes: manifest.totalBytes,
                limitBytes: workspace.limitBytes, newBlobs: newBlobs, full: full, skipped: skipped)
            return (manifest, summary)
        } catch let error as JailError {
            throw RuntimeError(.storage, "the step ran but its workspace could not be saved: \(error.description)")
        } catch let error as CheckpointError {
            throw RuntimeError(storage: error, "the step ran but its workspace could not be saved: ")
        }
    }
}
