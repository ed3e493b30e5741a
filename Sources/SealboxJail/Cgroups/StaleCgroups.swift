import Foundation
import Glibc

/// Task cgroups a sealbox process left behind when it was killed (SIGKILL, OOM, power cut):
/// its jail died with it (PDEATHSIG, pid namespace), but nobody removed the directories.
/// Task cgroups are named `run-<id>-p<owner pid>`; one is stale when its owner is gone, it has
/// no process, and it is older than a grace period. Only sealbox's own `run-*` directories
/// under `<hierarchy>/sealbox` are ever touched.
public enum StaleCgroups {
    public static func taskName(runID: String, owner: pid_t = getpid()) -> String {
        "run-\(runID)-p\(owner)"
    }

    static func owner(ofTaskName name: String) -> pid_t? {
        guard name.hasPrefix("run-"), let marker = name.range(of: "-p", options: .backwards) else { return nil }
        return pid_t(name[marker.upperBound...])
    }

    /// Removes stale task cgroups; returns the directories removed.
    @discardableResult
    public static func sweep(_ driver: any CgroupDriver, graceSeconds: Double = 60, now: Date = Date()) -> [String] {
        var removed: [String] = []
        for parent in driver.taskParentDirectories {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? []
            for name in names where name.hasPrefix("run-") {
                guard let owner = owner(ofTaskName: name), owner != getpid(), kill(owner, 0) != 0, errno == ESRCH else { continue }
                let path = parent + "/" + name
                var st = stat()
                guard stat(path, &st) == 0, now.timeIntervalSince1970 - Double(st.st_mtim.tv_sec) >= graceSeconds else { continue }
                let procs = (try? CgroupFS.read(path + "/cgroup.procs")) ?? "x"
                guard procs.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { continue }
                if rmdir(path) == 0 { removed.append(path) }
            }
        }
        return removed
    }
}

extension V1CgroupDriver {
    public var taskParentDirectories: [String] {
        var seen = Set<String>()
        return hierarchies.map { $0.mountPoint + "/" + Cgroups.parentName }.filter { seen.insert($0).inserted }
    }
}

extension V2CgroupDriver {
    public var taskParentDirectories: [String] { [parent] }
}
