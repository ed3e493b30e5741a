import Glibc

/// Owns the C copies (strings, arrays) handed to `sbx_spawn`; everything is freed when the
/// arena goes away, after the spawn call returned. Not shared across threads.
final class CArena {
    private var allocations: [UnsafeMutableRawPointer] = []

    deinit {
        for pointer in allocations { free(pointer) }
    }

    func string(_ text: String) -> UnsafePointer<CChar> {
        let copy = strdup(text)!
        allocations.append(UnsafeMutableRawPointer(copy))
        return UnsafePointer(copy)
    }

    func bytes(_ data: [UInt8]) -> UnsafePointer<CChar> {
        let raw = malloc(max(data.count, 1))!
        allocations.append(raw)
        data.withUnsafeBytes { if let base = $0.baseAddress { raw.copyMemory(from: base, byteCount: data.count) } }
        return UnsafePointer(raw.assumingMemoryBound(to: CChar.self))
    }

    func array<T>(_ items: [T]) -> UnsafePointer<T> {
        let raw = malloc(max(MemoryLayout<T>.stride * items.count, 1))!
        allocations.append(raw)
        let typed = raw.bindMemory(to: T.self, capacity: max(items.count, 1))
        for (i, item) in items.enumerated() { (typed + i).initialize(to: item) }
        return UnsafePointer(typed)
    }

    /// A NULL-terminated `char *[]`.
    func stringList(_ items: [String]) -> UnsafePointer<UnsafePointer<CChar>?> {
        array(items.map { Optional(string($0)) } + [nil])
    }
}
