import Foundation
import Glibc
import HTTPTypes
import SealboxBase
import SealboxJail
import SealboxLedger
import Synchronization

/// A hibernated sandbox: what it takes to make it again (`POST /v1/sandboxes/{id}/wake`),
/// its /work as a manifest of the blob store, and what hibernating it ended.
public struct HibernatedSandbox: Codable, Sendable {
    public struct StoredLimits: Codable, Sendable {
        var timeout_ms: Int
        var memory_bytes: UInt64
        var pids: Int
        var disk_bytes: UInt64
        var output_bytes: Int
        var cpus: Double?
        var shm_bytes: UInt64?

        init(_ limits: Limits) {
            timeout_ms = limits.timeoutMs
            memory_bytes = limits.memoryBytes
            pids = limits.pids
            disk_bytes = limits.diskBytes
            output_bytes = limits.outputBytes
            cpus = limits.cpus
            shm_bytes = limits.shmBytes
        }

        var limits: Limits {
            Limits(timeoutMs: timeout_ms, memoryBytes: memory_bytes, pids: pids, diskBytes: disk_bytes, outputBytes: output_bytes,
                   cpus: cpus, shmBytes: shm_bytes)
        }
    }

    /// What ended with the jail: processes and code contexts do not hibernate.
    public struct Lost: Codable, Sendable {
        var commands: Int
        var contexts: Int
    }

    var id: String
    var tenant: String
    var profile: String
    var limits: StoredLimits
    var env: [[String]]
    var idle_timeout_ms: Int64
    var session: String?
    var tools: [String]
    var created_at_ms: Int64
    var hibernated_at_ms: Int64
    var manifest: SnapshotManifest
    var lost: Lost

    var environment: [(name: String, value: String)] { env.compactMap { $0.count == 2 ? ($0[0], $0[1]) : nil } }

    /// What `GET /v1/sandboxes/{id}` answers for it.
    func view(nowMs: Int64) -> SandboxView {
        var view = SandboxView(
            id: id, state: "hibernated", profile: profile, createdAtMs: created_at_ms, ageMs: max(0, nowMs - created_at_ms), idleMs: 0,
            idleTimeoutMs: idle_timeout_ms, expiresAtMs: 0, runningCommands: 0, fromPool: false,
            limits: JailResult.AppliedLimits(limits.limits), usage: nil, endedAtMs: hibernated_at_ms, endReason: nil,
            session: session, tools: tools)
        view.hibernated = .init(atMs: hibernated_at_ms, files: manifest.fileCount, bytes: manifest.totalBytes, lost: lost)
        return view
    }
}

/// The hibernated sandboxes of a server: one file each in `directory` (0600, written whole or
/// not at all), so they outlive the server; their files' contents are in the checkpoint
/// store's blob store. Bounded in number, globally and per tenant.
public final class HibernatedSandboxes: Sendable {
    public let directory: String
    public let maximum: Int
    public let maximumPerTenant: Int
    private let records = Mutex<[String: HibernatedSandbox]>([:])

    /// Opens `directory` (made if missing) and reads what is there; a file that is not a
    /// record is left alone (and named in the answer, for the log).
    public init(directory: String, maximum: Int = 256, maximumPerTenant: Int = 32) throws {
        self.directory = directory
        self.maximum = maximum
        self.maximumPerTenant = maximumPerTenant
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        var found: [String: HibernatedSandbox] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: directory) where name.hasSuffix(".json") {
            guard case .success(let bytes) = SmallFile.read(directory + "/" + name, limit: 256 << 20),
                  let record = try? JSONDecoder().decode(HibernatedSandbox.self, from: Data(bytes)),
                  name == record.id + ".json" else { continue }
            found[record.id] = record
        }
        records.withLock { $0 = found }
    }

    public var count: Int { records.withLock { $0.count } }

    /// Hibernated sandbox `id`, whoever owns it.
    func record(_ id: String) -> HibernatedSandbox? { records.withLock { $0[id] } }

    /// Those `identity` may see, oldest first.
    func list(visibleTo identity: APIIdentity) -> [HibernatedSandbox] {
        records.withLock { Array($0.values) }.filter { identity.canSee(ownedBy: $0.tenant) }.sorted { ($0.created_at_ms, $0.id) < ($1.created_at_ms, $1.id) }
    }

    /// 429 when keeping one more for `tenant` would pass a bound.
    func checkRoom(tenant: String) throws(APIError) {
        let (all, own) = records.withLock { ($0.count, $0.values.count { $0.tenant == tenant }) }
        guard all < maximum else {
            throw APIError(.tooManyRequests, "busy", "\(maximum) sandboxes are hibernated, the most this server keeps; wake or delete one first", retryAfter: 5)
        }
        guard own < maximumPerTenant else {
            throw APIError(.tooManyRequests, "busy", "tenant \(tenant) has \(maximumPerTenant) hibernated sandboxes, its whole share; wake or delete one first", retryAfter: 5)
        }
    }

    /// Keeps `record` (durably, before the jail is ended).
    func keep(_ record: HibernatedSandbox) throws(APIError) {
        let bytes = (try? JSONEncoder().encode(record)).map { [UInt8]($0) } ?? []
        let failed = SmallFile.replace(path(record.id), with: bytes)
        guard failed == 0 else {
            let why = "the sandbox could not be hibernated: its record could not be written (\(ErrnoName.describe(failed))); it goes on running"
            throw failed == ENOSPC ? .storageFull(why) : APIError(.internalServerError, "storage", why)
        }
        records.withLock { $0[record.id] = record }
    }

    /// Forgets `id` (woken or deleted). True when it was there.
    @discardableResult
    func remove(_ id: String) -> Bool {
        guard records.withLock({ $0.removeValue(forKey: id) }) != nil else { return false }
        unlink(path(id))
        return true
    }

    private func path(_ id: String) -> String { directory + "/" + id + ".json" }
}
