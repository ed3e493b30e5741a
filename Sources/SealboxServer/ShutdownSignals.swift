import Dispatch
import Foundation
import Glibc

/// SIGTERM and SIGINT, delivered once to `handler` (the signal's name), through dispatch
/// sources rather than a C signal handler. The default action is turned off while watched, so
/// the process is not killed before it has drained; a second signal while draining is ignored.
final class ShutdownSignals: @unchecked Sendable {  // sources are set up in init, only cancelled after
    private var sources: [any DispatchSourceSignal] = []
    private let queue = DispatchQueue(label: "sealbox-shutdown-signals")

    init(handler: @escaping @Sendable (String) -> Void) {
        let fired = OnceFlag()
        for (number, name) in [(SIGTERM, "SIGTERM"), (SIGINT, "SIGINT")] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler { if fired.claim() { handler(name) } }
            source.resume()
            sources.append(source)
        }
    }

    func cancel() {
        for source in sources { source.cancel() }
    }
}

/// True exactly once.
final class OnceFlag: @unchecked Sendable {  // guarded by lock
    private var done = false
    private let lock = NSLock()
    func claim() -> Bool { lock.withLock { defer { done = true }; return !done } }
}
