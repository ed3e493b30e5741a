import Crypto
import Foundation
import SealboxBase

/// One entry of a workspace snapshot. Paths are relative to /work, '/'-separated.
public struct SnapshotEntry: Sendable, Codable, Equatable {
    public enum Kind: String, Sendable, Codable {
        case file
        case directory = "dir"
        case symlink
    }

    public var path: String
    public var kind: Kind
    /// Permission bits (07777 masked to 0777 | sticky; no setuid/setgid is ever restored).
    public var mode: UInt32
    /// Files: size and content digest ("sha256:<hex>", the blob's name).
    public var size: UInt64?
    public var digest: String?
    /// Symlinks: the link text.
    public var target: String?

    public init(path: String, kind: Kind, mode: UInt32, size: UInt64? = nil, digest: String? = nil, target: String? = nil) {
        self.path = path
        self.kind = kind
        self.mode = mode
        self.size = size
        self.digest = digest
        self.target = target
    }
}

/// A workspace at one sealed step: a sorted list of entries. Its id is the SHA-256 of its
/// canonical JSON, so identical workspaces share one snapshot and file contents are stored
/// once in the blob store however many snapshots keep them.
public struct SnapshotManifest: Sendable, Codable, Equatable {
    public var entries: [SnapshotEntry]

    public init(entries: [SnapshotEntry]) {
        self.entries = entries.sorted { $0.path.utf8.lexicographicallyPrecedes($1.path.utf8) }
    }

    public var fileCount: Int { entries.count { $0.kind == .file } }
    public var totalBytes: UInt64 { entries.reduce(0) { $0 + ($1.size ?? 0) } }

    public var canonicalJSON: Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(self)) ?? Data()
    }

    public var id: String { "sha256:" + SHA256.hex(canonicalJSON) }

    public static func decode(_ json: String) -> SnapshotManifest? {
        try? JSONDecoder().decode(SnapshotManifest.self, from: Data(json.utf8))
    }
}
