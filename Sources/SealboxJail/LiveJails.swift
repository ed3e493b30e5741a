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

    /// `parent`: a set every jail of this one is also registered in, so a service draining
    /// its own set still reaches jails that a narrower owner (one MCP call) can kill alone.
    public init(parent: LiveJails? = nil) {
        self.parent = parent
    }

    private let parent: LiveJails?
    private let lock = NSLock()
    private var pidfds: [UInt64: Int32] = [:]
    private var reasons: [UInt64: String] = [:]
    private var parentTokens: [UInt64: UInt64] = [:]
    private var next: UInt64 = 0
    /// Set by `close`: a jail registered afterwards is killed at once.
    private var closedBecause: String?

    /// Called right after the spawn; the pidfd stays open until `unregister`.
    func register(pidfd: Int32) -> UInt64 {
        let parentToken = parent?.register(pidfd: pidfd)
        return lock.withLock {
            next += 1
            pidfds[next] = pidfd
            if let parentToken { parentTokens[next] = parentToken }
            // A jail whose owner gave up while it was being spawned must not run on: this is
            // the only place that sees it between the clone and its first instruction's effects.
            if let reason = closedBecause, sbx_pidfd_kill(pidfd, SIGKILL) == 0 { reasons[next] = reason }
            return next
        }
    }

    /// Called before the pidfd is closed; returns why the jail was killed, if `killAll` did.
    func unregister(_ token: UInt64) -> String? {
        let (own, parentToken) = lock.withLock {
            pidfds[token] = nil
            return (reasons.removeValue(forKey: token), parentTokens.removeValue(forKey: token))
        }
        let inherited = parentToken.flatMap { parent?.unregister($0) }
        return own ?? inherited
    }

    /// Kills every live jail and every one registered from now on: the owner is gone (an MCP
    /// client cancelled its call). Returns how many were killed now.
    @discardableResult
    public func close(reason: String) -> Int {
        lock.withLock { closedBecause = closedBecause ?? reason }
        return killAll(reason: reason)
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
