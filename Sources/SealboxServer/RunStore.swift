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
/// Each result is kept as the JSON bytes the API answers with (never also as a struct). With a
/// `directory`, every result is written there (`ID.TENANT`, 0600, in the 0700 state
/// directory), so results outlive the server: a store that opens reads back what an earlier
/// one kept, minus what is older than `retentionMs` or past the budgets. A small result is
/// also kept in memory; one larger than `inlineBytes` is read back from its file when asked
/// for. When a new result would pass a budget, the oldest results go first: the tenant's own
/// when the tenant is over its share, else anyone's; a result past `retentionMs` goes when the
/// next one is put. A result that cannot be written to disk (full disk) is kept in memory,
/// without its output when it is large, marked `"output_dropped": true`. Files are written
/// without fsync: a result survives a restart of the server, not a crash of the machine.
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

        /// A result older than this is forgotten (its file removed).
        public var retentionMs: Int64

        public init(count: Int = 10_000, memoryBytes: Int = 64 << 20, diskBytes: Int = 1 << 30, perTenantBytes: Int = 256 << 20,
                    inlineBytes: Int = 256 << 10, retentionMs: Int64 = 86_400_000) {
            self.count = count
            self.memoryBytes = memoryBytes
            self.diskBytes = diskBytes
            self.perTenantBytes = perTenantBytes
            self.inlineBytes = inlineBytes
            self.retentionMs = retentionMs
        }
    }

    private struct Entry {
        var tenant: String
        var bytes: Int
        /// Kept in memory (small results, or any when there is no directory).
        var memory: Data?
        /// Its file in `directory`.
        var file: String?
        var storedAtMs: Int64
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
            try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            reload(directory)
        }
    }

    /// Takes back what an earlier store kept in `directory`, oldest first, within the
    /// retention and the budgets; removes the rest, and anything that is not a result's file
    /// (a write cut short, a file of an older sealbox).
    private func reload(_ directory: String) {
        let now = Self.nowMs()
        var found: [(id: String, tenant: String, bytes: Int, atMs: Int64, path: String)] = []
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
            let path = directory + "/" + name
            let parts = name.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            let attributes = try? FileManager.default.attributesOfItem(atPath: path)
            guard parts.count == 2, RunRequest.isIdentifier(parts[0]), parts[1].isEmpty || RunRequest.isIdentifier(parts[1]),
                  attributes?[.type] as? FileAttributeType == .typeRegular, let size = attributes?[.size] as? Int,
                  let modified = attributes?[.modificationDate] as? Date else {
                unlink(path)
                continue
            }
            let atMs = Int64(modified.timeIntervalSince1970 * 1000)
            guard now - atMs < limits.retentionMs else {
                unlink(path)
                continue
            }
            found.append((parts[0], parts[1], size, atMs, path))
        }
        found.sort { ($0.atMs, $0.id) < ($1.atMs, $1.id) }
        let removed: [String] = state.withLock { s in
            var removed: [String] = []
            for item in found {
                if let old = s.entries.removeValue(forKey: item.id) { removed += Self.forget(old, &s) }
                s.entries[item.id] = Entry(tenant: item.tenant, bytes: item.bytes, memory: nil, file: item.path, storedAtMs: item.atMs)
                s.diskBytes += item.bytes
                s.tenantBytes[item.tenant, default: 0] += item.bytes
                s.order.append(item.id)
                removed += evict(&s, keeping: item.id, tenant: item.tenant, nowMs: now)
            }
            return removed
        }
        for path in removed { unlink(path) }
    }

    static func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

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
        let now = Self.nowMs()
        var entry = Entry(tenant: tenant, bytes: size, memory: nil, file: nil, storedAtMs: now)
        if let directory, size <= limits.diskBytes, size <= limits.perTenantBytes,
           SmallFile.replace(directory + "/" + id + "." + tenant, with: [UInt8](encoded), durable: false) == 0 {
            entry.file = directory + "/" + id + "." + tenant
            if size <= limits.inlineBytes && size <= limits.memoryBytes { entry.memory = encoded }
        } else if size > limits.inlineBytes || size > limits.memoryBytes {
            // No room on disk (or no disk): keep the verdict, not the output.
            let reduced = dropOutput()
            entry.memory = reduced
            entry.bytes = reduced.count
            state.withLock { $0.outputDropped += 1 }
        } else {
            entry.memory = encoded
        }
        let removed: [String] = state.withLock { s in
            var removed: [String] = []
            let old = s.entries.removeValue(forKey: id)
            if let old { removed += Self.forget(old, &s).filter { $0 != entry.file } }
            s.entries[id] = entry
            if entry.file != nil { s.diskBytes += entry.bytes }
            if let memory = entry.memory { s.memoryBytes += memory.count }
            s.tenantBytes[tenant, default: 0] += entry.bytes
            if old == nil { s.order.append(id) }
            removed += evict(&s, keeping: id, tenant: tenant, nowMs: now)
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
        if let memory = entry.memory { return memory }
        return entry.file.flatMap { FileManager.default.contents(atPath: $0) }
    }

    public func tenant(of id: String) -> String? {
        state.withLock { $0.entries[id]?.tenant }
    }

    /// Oldest first: the tenant's own while it is over its share, then anyone's while a
    /// budget is passed. Never the entry just put (unless it alone passes a budget: then it
    /// was kept without its output, or on disk within budget, by `put`). Returns the files
    /// to unlink (outside the lock).
    private func evict(_ s: inout State, keeping newest: String, tenant: String, nowMs: Int64) -> [String] {
        var removed: [String] = []
        func overall() -> Bool {
            s.entries.count > limits.count || s.memoryBytes > limits.memoryBytes || s.diskBytes > limits.diskBytes
        }
        // Past their retention, oldest first (results are put in time order).
        while s.head < s.order.count {
            let id = s.order[s.head]
            if let entry = s.entries[id] {
                guard id != newest, nowMs - entry.storedAtMs >= limits.retentionMs else { break }
                s.entries[id] = nil
                removed += Self.forget(entry, &s)
                s.evicted += 1
            }
            s.head += 1
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
        if let memory = entry.memory { s.memoryBytes -= memory.count }
        guard let file = entry.file else { return [] }
        s.diskBytes -= entry.bytes
        return [file]
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
