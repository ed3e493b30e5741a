import Foundation
import Synchronization

/// Runs blocking work (a child process, waits) on a thread of its own: the test pool has as
/// many threads as cores, and a blocked one stalls every other test.
public func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    let outcome: Result<T, any Error> = await withCheckedContinuation { continuation in
        Thread { continuation.resume(returning: Result { try body() }) }.start()
    }
    return try outcome.get()
}

/// Starts `body` on a thread of its own; `join()` waits for its value. For the blocking code of
/// a test that already runs off the pool (reading one pipe while another is read).
public final class Joinable<T: Sendable>: Sendable {
    private let result = OneShot<T>()

    public init(_ body: @escaping @Sendable () -> T) {
        Thread { [result] in result.set(body()) }.start()
    }

    public func join() -> T { result.wait() }
}

/// A value set once by one thread and waited for by another.
final class OneShot<T: Sendable>: Sendable {
    private let value = Mutex<T?>(nil)
    private let done = DispatchSemaphore(value: 0)

    func set(_ newValue: T) {
        value.withLock { $0 = newValue }
        done.signal()
    }

    func wait() -> T {
        done.wait()
        return value.withLock { $0! }
    }
}

/// Waits for `condition` to hold, checking every 10 ms without holding a thread of the test
/// pool; false if it still does not hold after `seconds`. For events a test cannot be told of
/// (a file appears, a process exits, a server sees a request), bounded by a deadline.
public func eventually(_ seconds: Double = 30, _ condition: () throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < deadline {
        if try condition() { return true }
        try await Task.sleep(for: .milliseconds(10))
    }
    return try condition()
}

/// `eventually` for blocking code on a thread of its own.
public func eventuallyBlocking(_ seconds: Double = 30, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < deadline {
        if try condition() { return true }
        usleep(10_000)
    }
    return try condition()
}

/// Runs tasks on threads outside the test pool (a concurrent Dispatch queue, which adds threads
/// as they block). For servers a test talks to, such as the world: the pool has as many threads
/// as cores, and while synchronous tests block them, a world served there answered nobody
/// (calls timed out after 20 s in a loaded suite).
public final class OffPoolExecutor: TaskExecutor {
    public static let shared = OffPoolExecutor()
    private let queue = DispatchQueue(label: "sealbox-test-off-pool", attributes: .concurrent)

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.async { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
