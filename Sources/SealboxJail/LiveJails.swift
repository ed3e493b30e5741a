import CSealboxSpawn
import Foundation
import Glibc

/// A set of jails supervised right now (by default every jail of this process), by pidfd, so a service shutting down
/// can kill the ones still running once its grace period is over. Killing pid 1 of a jail
/// kills its whole pid namespace; the run's own supervision then reaps it and tears down as
/// after any other kill, so the caller still gets a result (status signaled, with `error`
/// saying why).
public final class LiveJails: @unchecked Sendable {  // every field is guarded by `lock`
    /// Where jails go unless their spec names another set.
    public static let shared = LiveJails()

    public init() {}

    private let lock = NSLock()
    private var pidfds: [UInt64: Int32] = [:]
    private var reasons: [UInt64: String] = [:]
    private var next: UInt64 = 0

    /// Called right after the spawn; the pidfd stays open until `unregister`.
    func register(pidfd: Int32) -> UInt64 {
        lock.withLock {
            next += 1
            pidfds[next] = pidfd
            return next
        }
    }

    /// Called before the pidfd is closed; returns why the jail was killed, if `killAll` did.
    func unregister(_ token: UInt64) -> String? {
        lock.withLock {
            pidfds[token] = nil
            return reasons.removeValue(forKey: token)
        }
    }

    public var count: Int { lock.withLock { pidfds.count } }

    /// SIGKILLs every live jail; returns how many. Under the lock, so no pidfd is closed
    /// (and its number reused) while it is being signalled.
    @discardableResult
    public func killAll(reason: String) -> Int {
        lock.withLock {
            for (token, pidfd) in pidfds where reasons[token] == nil {
                if sbx_pidfd_kill(pidfd, SIGKILL) == 0 { reasons[token] = reason }
            }
            return reasons.count
        }
    }
}
