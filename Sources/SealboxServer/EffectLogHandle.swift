import Foundation
import SealboxLedger
import SealboxSQLite
import Synchronization

/// The effect log the API reads and acts on, opened on first use and kept open. The broker
/// creates the file with its first call; until then there is nothing to list, and opening it
/// here must not create it (an empty log made by the API would still be a log the broker then
/// adopts, but `sealbox log` would report it as present with nothing in it: confusing).
public final class EffectLogHandle: Sendable {
    public let path: String
    private let ledger: Mutex<Ledger?>

    public init(path: String) {
        self.path = path
        ledger = Mutex(nil)
    }

    /// Shares a ledger the server already holds open.
    public init(ledger: Ledger) {
        path = ledger.path
        self.ledger = Mutex(ledger)
    }

    /// nil while no effect log exists at `path`.
    public func open() throws(LedgerError) -> Ledger? {
        let result: Result<Ledger?, LedgerError> = ledger.withLock { held in
            if let held { return .success(held) }
            guard FileManager.default.fileExists(atPath: path) else { return .success(nil) }
            do throws(LedgerError) {
                let opened = try StateStores.effectLog(file: path)
                held = opened
                return .success(opened)
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }
}
