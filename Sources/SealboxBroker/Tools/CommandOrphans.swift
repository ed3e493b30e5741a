import Foundation
import Glibc
import Synchronization
import SealboxBase

/// Descendants of command tools that escaped their process group (`setsid`, a double fork)
/// must not outlive the call. The broker process makes itself a child subreaper, so such a
/// process, once its parent exits, becomes the broker's child instead of init's; after every
/// command, each child of the broker that is not a command still running is killed and reaped.
/// Only the `sealbox broker` process enables this: it is the only process whose children are
/// all command tools.
enum CommandOrphans {
    private static let state = Mutex<(enabled: Bool, running: Set<pid_t>)>((false, []))

    private typealias Prctl = @convention(c) (Int32, UInt, UInt, UInt, UInt) -> Int32
    /// <linux/prctl.h>
    private static let prSetChildSubreaper: Int32 = 36

    /// Makes this process a child subreaper; false (with errno) when the kernel refuses.
    static func enable() -> Bool {
        // prctl is variadic in C, so Swift cannot import it; every argument here is an integer.
        guard let prctl = cLibrarySymbol("prctl", as: Prctl.self) else { return false }
        guard prctl(prSetChildSubreaper, 1, 0, 0, 0) == 0 else { return false }
        state.withLock { $0.enabled = true }
        return true
    }

    /// Spawns under the lock the sweep takes, so a sweep never mistakes a command being born
    /// for an orphan; `spawn` returns the new pid (or nil).
    static func spawning(_ spawn: () -> pid_t?) -> pid_t? {
        state.withLock { s in
            let pid = spawn()
            if let pid { s.running.insert(pid) }
            return pid
        }
    }

    /// The command `pid` has been reaped: forget it, and kill and reap every orphan.
    static func finished(_ pid: pid_t) {
        state.withLock { s in
            s.running.remove(pid)
            guard s.enabled else { return }
            for orphan in children(of: getpid()) where !s.running.contains(orphan) {
                kill(orphan, SIGKILL)
                var status: Int32 = 0
                _ = Interrupted.retry { waitpid(orphan, &status, 0) }
            }
        }
    }

    /// Pids whose parent is `parent`, read from /proc/<pid>/stat.
    static func children(of parent: pid_t) -> [pid_t] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { name in
            guard let pid = pid_t(name), let stat = try? String(contentsOfFile: "/proc/\(name)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return nil }
            // "pid (comm) state ppid ...": comm may hold spaces and parentheses; fields follow the last ")".
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 1 && pid_t(fields[1]) == parent ? pid : nil
        }
    }
}
