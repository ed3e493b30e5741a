import Foundation
import Glibc
import SealboxJail
import SealboxRuntime
import Synchronization
import SealboxBase

/// Finished runs by id for GET /v1/runs/{id}, bounded in count and in bytes, in total and per
/// tenant, so no tenant can grow the server without limit (a run may print 16 MiB to each
/// stream; ten thousand of those would not fit in any machine's memory).
///
/// Each result is kept once, as the JSON bytes the API answers with (never also as a struct).
/// A small one stays in memory; one larger than `inlineBytes` is written to a file in
/// `directory` (0600, in the 0700 state directory) and read back when asked for. When a new
/// result would pass a budget, the oldest results go first: the tenant's own when the tenant
/// is over its share, else anyone's. A result that cannot be written to disk (full disk) is
/// kept in memory without its output, marked `"output_dropped": true`. The directory is
/// emptied when the store opens: results do not outlive the server.
///
/// Each entry remembers its tenant: another tenant asking for it gets nothing, as if it did
/// not exist.
public final class RunStore: Sendable {
    public struct Limits: Sendable, Equatable {
        /// Results kept at most, whatever their size.
        public var count: Int
        /// Bytes of results held in memory.
        public var memoryBytes: Int
        /// Bytes of results written to `directory`.
        public var diskBytes: Int
        /// Bytes (memory and disk together) one tenant's results may hold.
        public var perTenantBytes: Int
        /// Results larger than this go to disk.
        public var inlineBytes: Int

        public init(count: Int = 10_000, memoryBytes: Int = 64 << 20, diskBytes: Int = 1 << 30, perTenantBytes: Int = 256 << 20,
                    inlineBytes: Int = 256 << 10) {
            self.count = count
            self.memoryBytes = memoryBytes
            self.diskBytes = diskBytes
            self.perTenantBytes = perTenantBytes
            self.inlineBytes = inlineBytes
        }
    }

    private enum Place {
        case memory(Data)
        case disk(String)
    }

    private struct Entry {
        var tenant: String
        var bytes: Int
        var place: Place
    }

    private struct State {
        var entries: [String: Entry] = [:]
        /// Ids, oldest first (an id put again keeps its first place).
        var order: [String] = []
        /// Ids before this index are known to be gone.
        var head = 0
        var memoryBytes = 0
        var diskBytes = 0
        var tenantBytes: [String: Int] = [:]
        var evicted = 0
        var outputDropped = 0
    }

    public let limits: Limits
    /// Where large results go; nil keeps every result in memory (within `memoryBytes`).
    public let directory: String?
    private let state = Mutex(State())

    public init(limits: Limits, directory: String?) {
        var limits = limits
        limits.count = max(1, limits.count)
        self.limits = limits
        self.directory = directory
        if let directory {
            // Results of an earlier server (one killed mid-write included) are not ours to serve.
            try? FileManager.default.removeItem(atPath: directory)
            try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
    }

    /// The old interface: `capacity` results in memory.
    public convenience init(capacity: Int) {
        self.init(limits: Limits(count: capacity), directory: nil)
    }

    public struct Stats: Sendable, Equatable {
        public var stored: Int
        public var memoryBytes: Int
        public var diskBytes: Int
        public var evicted: Int
        public var outputDropped: Int
    }

    public var stats: Stats {
        state.withLock { Stats(stored: $0.entries.count, memoryBytes: $0.memoryBytes, diskBytes: $0.diskBytes, evicted: $0.evicted, outputDropped: $0.outputDropped) }
    }

    public var count: Int { state.withLock { $0.entries.count } }

    /// Keeps `result` (encoded as the API answers it). Returns those bytes, so the caller
    /// answers with the same bytes it stored, encoded once.
    @discardableResult
    public func put(_ result: RunResult, tenant: String) -> Data {
        let encoded = (try? SealboxAPI.encoder.encode(result)) ?? Data()
        put(encoded, id: result.id, tenant: tenant, dropOutput: { Self.withoutOutput(result) })
        return encoded
    }

    private func put(_ encoded: Data, id: String, tenant: String, dropOutput: () -> Data) {
        let size = encoded.count
        var place: Place = .memory(encoded)
        var stored = size
        if size > limits.inlineBytes || size > limits.memoryBytes {
            if let directory, size <= limits.diskBytes, size <= limits.perTenantBytes, Self.write(encoded, to: directory + "/" + id) {
                place = .disk(directory + "/" + id)
            } else {
                // No room on disk (or no disk): keep the verdict, not the output.
                let reduced = dropOutput()
                place = .memory(reduced)
                stored = reduced.count
                state.withLock { $0.outputDropped += 1 }
            }
        }
        let removed: [String] = state.withLock { s in
            var removed: [String] = []
            let old = s.entries.removeValue(forKey: id)
            if let old { removed += Self.forget(old, &s) }
            s.entries[id] = Entry(tenant: tenant, bytes: stored, place: place)
            if case .disk = place { s.diskBytes += stored } else { s.memoryBytes += stored }
            s.tenantBytes[tenant, default: 0] += stored
            if old == nil { s.order.append(id) }
            removed += evict(&s, keeping: id, tenant: tenant)
            return removed
        }
        for path in removed { unlink(path) }
    }

    /// The result when `identity` may see it (its own tenant's, or any for an operator).
    public func get(_ id: String, visibleTo identity: APIIdentity) -> RunResult? {
        guard let data = encoded(id, visibleTo: identity) else { return nil }
        return try? JSONDecoder().decode(RunResult.self, from: data)
    }

    /// The stored JSON bytes, when `identity` may see them.
    public func encoded(_ id: String, visibleTo identity: APIIdentity) -> Data? {
        guard let entry = state.withLock({ $0.entries[id] }), identity.canSee(ownedBy: entry.tenant) else { return nil }
        switch entry.place {
        case .memory(let data): return data
        case .disk(let path): return FileManager.default.contents(atPath: path)
        }
    }

    public func tenant(of id: String) -> String? {
        state.withLock { $0.entries[id]?.tenant }
    }

    /// Oldest first: the tenant's own while it is over its share, then anyone's while a
    /// budget is passed. Never the entry just put (unless it alone passes a budget: then it
    /// was kept without its output, or on disk within budget, by `put`). Returns the files
    /// to unlink (outside the lock).
    private func evict(_ s: inout State, keeping newest: String, tenant: String) -> [String] {
        var removed: [String] = []
        func overall() -> Bool {
            s.entries.count > limits.count || s.memoryBytes > limits.memoryBytes || s.diskBytes > limits.diskBytes
        }
        // The tenant over its share pays first, with its own oldest results.
        if s.tenantBytes[tenant, default: 0] > limits.perTenantBytes {
            var index = 0
            while s.tenantBytes[tenant, default: 0] > limits.perTenantBytes, index < s.order.count {
                let id = s.order[index]
                index += 1
                guard id != newest, let entry = s.entries[id], entry.tenant == tenant else { continue }
                s.entries[id] = nil
                removed += Self.forget(entry, &s)
                s.evicted += 1
            }
        }
        var index = s.head
        while overall(), index < s.order.count {
            let id = s.order[index]
            index += 1
            guard id != newest, let entry = s.entries[id] else { continue }
            s.entries[id] = nil
            removed += Self.forget(entry, &s)
            s.evicted += 1
        }
        // Ids whose entries are gone are dropped now and then, so `order` stays about as
        // long as the store.
        if s.order.count > 2 * s.entries.count + 64 {
            s.order = s.order.filter { s.entries[$0] != nil }
            s.head = 0
        }
        return removed
    }

    private static func forget(_ entry: Entry, _ s: inout State) -> [String] {
        s.tenantBytes[entry.tenant, default: 0] -= entry.bytes
        if s.tenantBytes[entry.tenant] ?? 0 <= 0 { s.tenantBytes[entry.tenant] = nil }
        switch entry.place {
        case .memory:
            s.memoryBytes -= entry.bytes
            return []
        case .disk(let path):
            s.diskBytes -= entry.bytes
            return [path]
        }
    }

    private static func write(_ data: Data, to path: String) -> Bool {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let ok = data.withUnsafeBytes { raw -> Bool in
            var offset = 0
            while offset < raw.count {
                let n = Interrupted.retry { Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset) }
                if n < 0 { return false }
                offset += n
            }
            return true
        }
        if !ok { unlink(path) }
        return ok
    }

    /// The result with its output left out, marked so.
    static func withoutOutput(_ result: RunResult) -> Data {
        var reduced = result
        reduced.stdout = ""
        reduced.stderr = ""
        reduced.outputDropped = true
        return (try? SealboxAPI.encoder.encode(reduced)) ?? Data()
    }
}
