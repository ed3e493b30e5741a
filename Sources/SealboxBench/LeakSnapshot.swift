import Foundation
import Glibc
import SealboxJail

/// What a long run of jails could leave behind, counted before and after (`bench spawn
/// --leak-check`): this process's descriptors, mounts and children, sealbox's task cgroups, and
/// the kernel's memory cgroups including dying ones (removed but still pinned by charged pages;
/// the kernel frees them lazily, so they are reported, not failed on).
struct LeakSnapshot: Equatable {
    var openFDs: Int
    var mounts: Int
    var childProcesses: Int
    var taskCgroups: Int
    /// /proc/cgroups num_cgroups of the memory controller (v1; includes dying cgroups), or -1.
    var memoryCgroups: Int

    static func take(taskParents: [String]) -> LeakSnapshot {
        let fm = FileManager.default
        let fds = (try? fm.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
        let mounts = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8))?.split(separator: "\n").count ?? -1
        // Every thread's direct children (a jail's init is a child of the thread that cloned it).
        let tasks = (try? fm.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        let children = tasks.reduce(0) { sum, tid in
            sum + ((try? String(contentsOfFile: "/proc/self/task/\(tid)/children", encoding: .utf8))?.split(separator: " ").count ?? 0)
        }
        let cgroups = taskParents.reduce(0) { sum, parent in
            sum + ((try? fm.contentsOfDirectory(atPath: parent))?.filter { $0.hasPrefix("run-") }.count ?? 0)
        }
        var memory = -1
        if let text = try? String(contentsOfFile: "/proc/cgroups", encoding: .utf8) {
            for line in text.split(separator: "\n") {
                let fields = line.split(whereSeparator: { $0 == "\t" || $0 == " " })
                if fields.count >= 3, fields[0] == "memory", fields[1] != "0" { memory = Int(fields[2]) ?? -1 }
            }
        }
        return LeakSnapshot(openFDs: fds, mounts: mounts, childProcesses: children, taskCgroups: cgroups, memoryCgroups: memory)
    }

    struct Row: Encodable {
        var before: Int
        var after: Int
    }

    /// The counts by report name, in the report's order; the last may grow (see the type).
    static let counts: [(name: String, value: any KeyPath<LeakSnapshot, Int> & Sendable)] = [
        ("open_fds", \.openFDs), ("mounts", \.mounts), ("child_processes", \.childProcesses),
        ("task_cgroups", \.taskCgroups), ("memory_cgroups_incl_dying", \.memoryCgroups),
    ]

    /// name → before/after, in the report's order.
    static func rows(_ before: LeakSnapshot, _ after: LeakSnapshot) -> [(String, Row)] {
        counts.map { ($0.name, Row(before: before[keyPath: $0.value], after: after[keyPath: $0.value])) }
    }

    /// The counts that must not grow (memory cgroups may, while the kernel frees dying ones).
    static func leaked(_ before: LeakSnapshot, _ after: LeakSnapshot) -> [String] {
        rows(before, after).dropLast().filter { $0.1.after > $0.1.before }.map { $0.0 }
    }
}
