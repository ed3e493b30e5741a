import Glibc

/// A full disk is not a bad request: it says "try again later" (HTTP 507 with Retry-After),
/// and /healthz reports the state directory as unwritable. One test for every store; the
/// test of an SQLite error is `StorageFull.isFull(_: DatabaseError)` in SealboxSQLite.
public enum StorageFull {
    /// For errors that crossed a process or module boundary as text.
    public static func isFull(message: String) -> Bool {
        let text = message.lowercased()
        return text.contains("database or disk is full") || text.contains("no space left on device") || text.contains("disk quota exceeded")
    }

    public static func isFull(errno code: Int32) -> Bool {
        code == ENOSPC || code == EDQUOT
    }
}
