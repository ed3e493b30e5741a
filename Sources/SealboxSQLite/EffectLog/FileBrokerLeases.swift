import Foundation
import Glibc
import Synchronization
import SealboxBase
import SealboxLedger

/// The broker leases of an effect log on one machine (`BrokerLeases`): a lock file per broker,
///
///     <ledger>.brokers/<broker-id>.lock      flock(LOCK_EX) by the broker, from start to exit
///
/// The kernel drops the lock when the process dies, however it dies (kill -9 included), so "the
/// lock can be taken" means "that broker is gone".
///
/// A lock file comes into existence already locked (created under a temporary name, locked,
/// then renamed), so nobody can ever take the lock of a broker that is only starting. It is
/// created before the broker writes anything, so a record naming a broker whose lock file does
/// not exist names a broker that is gone (it removed its file when it stopped, or a later broker
/// removed it after recovering its work).
public struct FileBrokerLeases: BrokerLeases {
    /// `<ledger>.brokers`.
    public let directory: String

    /// The leases of the effect log at `ledgerPath` (absolute, as `Ledger.path`).
    public init(ledgerPath: String) {
        directory = ledgerPath + ".brokers"
    }

    public func acquire() throws(LedgerError) -> any BrokerLease {
        try FileBrokerLease.acquire(directory: directory)
    }

    public func probe(own: String?) -> any BrokerLeaseProbe {
        FileLeaseProbe(directory: directory, own: own)
    }

    /// A gone broker's lock is taken and at once released (a broker starting at that instant
    /// then leaves its recovery to the next).
    public func isRunning(_ brokerID: String) -> Bool? {
        switch FileLeaseProbe(directory: directory, own: nil).verdict(brokerID) {
        case .live: return true
        case .gone: return false
        case .unknown: return nil
        }
    }
}

/// One broker's lock file, held from `acquire` to `release` or the process's death.
public final class FileBrokerLease: BrokerLease {
    /// The id recorded in this broker's grants: "b" and 16 hex digits.
    public let brokerID: String
    /// `<ledger>.brokers`.
    public let directory: String
    /// `<ledger>.brokers/<broker-id>.lock`.
    public let path: String
    /// -1 once released.
    private let fd: Mutex<Int32>

    private init(brokerID: String, directory: String, path: String, fd: Int32) {
        self.brokerID = brokerID
        self.directory = directory
        self.path = path
        self.fd = Mutex(fd)
    }

    deinit {
        // Without unlinking: the work of this broker may still be open in the log; the next
        // broker to start finds the lock free and recovers it.
        fd.withLock { if $0 >= 0 { close($0) } }
    }

    /// Takes a new lease in `directory` under a fresh broker id. The directory is created
    /// (0700) if missing.
    static func acquire(directory: String) throws(LedgerError) -> FileBrokerLease {
        try makeDirectory(directory)
        for _ in 0..<8 {
            let id = RandomID.hex64(prefix: "b")
            let temporary = directory + "/.\(id).tmp"
            let path = directory + "/\(id).lock"
            // O_CLOEXEC: a tool process the broker starts must not inherit the lock and keep a
            // dead broker looking alive.
            let fd = open(temporary, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            if fd < 0 {
                if errno == EEXIST { continue }
                throw LedgerError(.badPath, "cannot create the broker lease \(temporary): \(String(cString: strerror(errno)))")
            }
            guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
                let reason = String(cString: strerror(errno))
                close(fd)
                unlink(temporary)
                throw LedgerError(.storage, "cannot lock the broker lease \(temporary): \(reason)")
            }
            // For an operator looking at the directory; nothing reads it back.
            let info = "broker \(id) pid \(getpid()) started \(Int64(Date().timeIntervalSince1970 * 1000)) ms\n"
            _ = info.withCString { write(fd, $0, strlen($0)) }
            // link(2) fails on an existing name where rename(2) would replace it: ids are random,
            // but a lease must never take over another broker's file.
            guard link(temporary, path) == 0 else {
                let code = errno
                close(fd)
                unlink(temporary)
                if code == EEXIST { continue }
                throw LedgerError(.badPath, "cannot create the broker lease \(path): \(String(cString: strerror(code)))")
            }
            unlink(temporary)
            return FileBrokerLease(brokerID: id, directory: directory, path: path, fd: fd)
        }
        throw LedgerError(.storage, "cannot pick an unused broker id in \(directory)")
    }

    public var isHeld: Bool { fd.withLock { $0 >= 0 } }

    /// Removes the lock file and drops the lock.
    public func release() {
        fd.withLock { fd in
            guard fd >= 0 else { return }
            unlink(path)
            close(fd)
            fd = -1
        }
    }

    /// A broker id as `acquire` makes them (also keeps a tampered note from naming a path).
    static func isBrokerID(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.count <= 64 && text.utf8.allSatisfy {
            ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || $0 == 45 || $0 == 95
        }
    }

    private static func makeDirectory(_ directory: String) throws(LedgerError) {
        if mkdir(directory, 0o700) == 0 { return }
        let code = errno
        var info = stat()
        guard code == EEXIST, stat(directory, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else {
            let reason = code == EEXIST ? "exists and is not a directory" : String(cString: strerror(code))
            throw LedgerError(.badPath, "cannot create the broker lease directory \(directory): \(reason)")
        }
    }
}

/// The probe of one recovery transaction (`BrokerLeaseProbe`). The lock of each gone broker is
/// HELD from the probe until `finish`: two brokers starting at once never both recover the same
/// one, and after the recovery committed its lock file is removed.
final class FileLeaseProbe: BrokerLeaseProbe {
    typealias Verdict = BrokerLeaseVerdict

    private struct State {
        var verdicts: [String: Verdict] = [:]
        /// Locks taken on gone brokers' files, by broker id.
        var held: [String: Int32] = [:]
    }

    let directory: String
    /// The probing broker itself: always live.
    let own: String?
    private let state = Mutex(State())

    init(directory: String, own: String?) {
        self.directory = directory
        self.own = own
    }

    deinit {
        state.withLock { s in for fd in s.held.values { close(fd) } }
    }

    func verdict(_ brokerID: String) -> Verdict {
        if brokerID == own { return .live }
        if let known = state.withLock({ $0.verdicts[brokerID] }) { return known }
        let verdict: Verdict
        var held: Int32?
        if !FileBrokerLease.isBrokerID(brokerID) {
            verdict = .gone  // no broker can hold a lease under that name
        } else {
            let path = directory + "/\(brokerID).lock"
            let fd = open(path, O_RDWR | O_CLOEXEC)
            if fd < 0 {
                verdict = errno == ENOENT ? .gone : .unknown("\(path): \(String(cString: strerror(errno)))")
            } else if flock(fd, LOCK_EX | LOCK_NB) == 0 {
                verdict = .gone
                held = fd
            } else {
                verdict = errno == EWOULDBLOCK ? .live : .unknown("flock \(path): \(String(cString: strerror(errno)))")
                close(fd)
            }
        }
        state.withLock { s in
            s.verdicts[brokerID] = verdict
            if let held { s.held[brokerID] = held }
        }
        return verdict
    }

    /// Every lease file in the directory.
    func probeAll() {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        for name in names where name.hasSuffix(".lock") && !name.hasPrefix(".") {
            _ = verdict(String(name.dropLast(5)))
        }
    }

    var verdicts: [String: Verdict] { state.withLock { $0.verdicts } }

    /// When the recovery committed, the gone brokers' lock files are removed; either way their
    /// locks are dropped.
    func finish(committed: Bool) {
        let held = state.withLock { s -> [String: Int32] in
            defer { s.held = [:] }
            return s.held
        }
        for (id, fd) in held {
            if committed {
                let path = directory + "/\(id).lock"
                var open = stat(), named = stat()
                // Only the file this lock is on (never a successor under the same name).
                if fstat(fd, &open) == 0, stat(path, &named) == 0, open.st_ino == named.st_ino, open.st_dev == named.st_dev {
                    unlink(path)
                }
            }
            close(fd)
        }
        if committed { sweepTemporaries() }
    }

    /// `.<id>.tmp` files older than a minute whose lock is free: a broker died between creating
    /// and naming its lease.
    private func sweepTemporaries() {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        let now = Date().timeIntervalSince1970
        for name in names where name.hasPrefix(".") && name.hasSuffix(".tmp") {
            let path = directory + "/" + name
            var info = stat()
            guard stat(path, &info) == 0, now - Double(info.st_mtim.tv_sec) > 60 else { continue }
            let fd = open(path, O_RDWR | O_CLOEXEC)
            guard fd >= 0 else { continue }
            if flock(fd, LOCK_EX | LOCK_NB) == 0 { unlink(path) }
            close(fd)
        }
    }
}
