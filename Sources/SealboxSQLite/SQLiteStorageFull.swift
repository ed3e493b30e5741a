import GRDB
import SealboxLedger

extension StorageFull {
    /// SQLITE_FULL, or an I/O error whose cause was ENOSPC / EDQUOT.
    public static func isFull(_ error: DatabaseError) -> Bool {
        if error.resultCode == .SQLITE_FULL { return true }
        let text = (error.message ?? "").lowercased()
        return text.contains("disk is full") || text.contains("no space left") || text.contains("quota exceeded")
    }
}
