import CSealboxSpawn
import Foundation
import Glibc
import Synchronization

/// Where jails are cloned: by the sealbox-spawner helper when it runs (a small process, so
/// the clone copies a small address space instead of sealbox's large one; see
/// `sbx_spawner_start`), else in this process. Either way the jail is this process's child.
public final class JailCloner: Sendable {
    public enum Choice: Sendable, Equatable {
        /// The helper next to this executable (`sealbox-spawner`), or in-process without it.
        case automatic
        /// Always in this process.
        case inProcess
        /// This helper; the executor does not start if it cannot run.
        case helper(path: String)
    }

    /// The helper's path when it is in use, else nil.
    public let helperPath: String?
    private let idle = Mutex<[Int32]>([])
    private static let maximumIdleConnections = 64

    init(_ choice: Choice) throws(JailError) {
        let path: String?
        switch choice {
        case .inProcess:
            path = nil
        case .automatic:
            let candidate = Self.besideExecutable()
            path = access(candidate, X_OK) == 0 ? candidate : nil
        case .helper(let given):
            guard access(given, X_OK) == 0 else {
                throw JailError(.setup, "spawner \(given): \(ErrnoName.describe(errno))")
            }
            path = given
        }
        if let path {
            let rc = sbx_spawner_start(path)
            if rc < 0 {
                if case .helper = choice { throw JailError(.setup, "cannot start the spawner \(path): \(ErrnoName.describe(-rc))") }
                helperPath = nil
                return
            }
        }
        helperPath = path
    }

    deinit {
        for fd in idle.withLock({ $0 }) { close(fd) }
    }

    /// `sealbox-spawner` in the directory of the running executable (the build directory for
    /// `swift build` products and the test runner alike).
    static func besideExecutable() -> String {
        let exe = (try? FilesystemPlan.readLink("/proc/self/exe")) ?? CommandLine.arguments[0]
        var url = URL(fileURLWithPath: exe).deletingLastPathComponent()
        while url.lastPathComponent.hasSuffix(".xctest") { url.deleteLastPathComponent() }
        return url.path + "/sealbox-spawner"
    }

    /// Whether jails are being cloned by the helper right now.
    public var usesHelper: Bool { helperPath != nil && sbx_spawner_alive() != 0 }

    func spawn(_ req: UnsafePointer<sbx_spawn_req>, _ result: inout sbx_spawn_result) -> Int32 {
        guard usesHelper, let conn = checkout() else { return sbx_spawn(req, &result) }
        let rc = sbx_remote_spawn(conn, req, &result)
        return finish(conn, rc: rc, result: result) ? sbx_spawn(req, &result) : rc
    }

    func prepare(_ req: UnsafePointer<sbx_spawn_req>, _ jail: inout sbx_prepared, _ result: inout sbx_spawn_result) -> Int32 {
        guard usesHelper, let conn = checkout() else { return sbx_prepare(req, &jail, &result) }
        let rc = sbx_remote_prepare(conn, req, &jail, &result)
        return finish(conn, rc: rc, result: result) ? sbx_prepare(req, &jail, &result) : rc
    }

    /// Returns the connection, or closes it when it broke; true when the helper is gone, so
    /// the caller should clone in-process instead (nothing was cloned).
    private func finish(_ conn: Int32, rc: Int32, result: sbx_spawn_result) -> Bool {
        let broken = rc != 0 && result.failed_stage == Int32(SBX_STAGE_PIPE.rawValue) && result.pid <= 0
        if broken {
            close(conn)
            return sbx_spawner_alive() == 0
        }
        let kept = idle.withLock { idle in
            guard idle.count < Self.maximumIdleConnections else { return false }
            idle.append(conn)
            return true
        }
        if !kept { close(conn) }
        return false
    }

    private func checkout() -> Int32? {
        if let fd = idle.withLock({ $0.popLast() }) { return fd }
        let fd = sbx_spawner_connect()
        return fd >= 0 ? fd : nil
    }
}
