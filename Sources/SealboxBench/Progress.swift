import Foundation
import Glibc
import Synchronization

/// "spawn 57/200" on stderr: redrawn in place on a terminal, every 10% otherwise. Safe to
/// update from several threads: a count lower than one already shown is not printed, so the
/// lines stay in order.
public final class Progress: Sendable {
    let total: Int
    let label: String
    let interactive = isatty(STDERR_FILENO) == 1
    private let shown = Mutex<(done: Int, decile: Int)>((0, -1))

    public init(total: Int, label: String = "spawn") {
        self.total = total
        self.label = label
    }

    func update(_ done: Int) {
        shown.withLock { last in
            guard done > last.done else { return }
            last.done = done
            if interactive {
                if done == total || done % max(total / 100, 1) == 0 {
                    FileHandle.standardError.write(Data("\r\(label) \(done)/\(total)".utf8))
                }
            } else {
                let decile = done * 10 / max(total, 1)
                if decile != last.decile {
                    last.decile = decile
                    FileHandle.standardError.write(Data("\(label) \(done)/\(total)\n".utf8))
                }
            }
        }
    }

    func finish() {
        if interactive { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
