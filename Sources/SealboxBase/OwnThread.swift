import Foundation

/// Runs blocking work (a spawn, a wait, a socket round trip, a pipe read) on a thread of its
/// own and awaits its answer, so the cooperative pool's few threads never block: on a 2-core
/// machine it has two, and one blocked call there stalls every other task.
public func onOwnThread<T: Sendable>(_ name: String, _ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        let thread = Thread { continuation.resume(returning: body()) }
        thread.name = name
        thread.start()
    }
}
