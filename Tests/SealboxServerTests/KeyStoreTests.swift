import SealboxBase
import Crypto
import Foundation
import Glibc
import SealboxAccess
import SealboxLedger
import SealboxSQLite
@testable import SealboxServer
import Synchronization
import Testing

/// The stores the access semantics (keys, revocation, tenants, the bootstrap key) are tested
/// on, with the same cases: keys.db on real SQLite in a temporary directory, and memory.
enum AccessBackend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite, memory

    var testDescription: String { rawValue }

    /// Access state in `state`'s directory. Each `open()` of an SQLite store is another
    /// handle on the same file, as the server's and a `sealbox keys` process's are; the memory
    /// store is one object, so its handles share it.
    struct Fixture {
        let backend: AccessBackend
        let layout: StateLayout
        let memory = InMemoryAccessStore()

        func open() throws -> AccessControl {
            switch backend {
            case .sqlite: AccessControl(store: try SQLiteAccessStore.open(layout: layout))
            case .memory: AccessControl(store: memory)
            }
        }
    }

    func fixture(_ state: TestState) -> Fixture { Fixture(backend: self, layout: state.layout) }
}

/// Keys, revocation, tenants and the bootstrap key over every `AccessBackend`; what only
/// keys.db has (its file, its durability, refusing other files) on SQLite.
@Suite("Key store and tenant directory")
struct KeyStoreTests {
    static func accessError(_ body: () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) -> AccessError? {
        do {
            try body()
            return nil
        } catch let error as AccessError {
            return error
        } catch {
            Issue.record("expected an AccessError, got \(error)", sourceLocation: sourceLocation)
            return nil
        }
    }

    @Test("a created key checks as its tenant and role; a wrong secret, an unknown id and garbage do not", arguments: AccessBackend.allCases)
    func createAndCheck(backend: AccessBackend) throws {
        let state = TestState()
        defer { state.remove() }
        let access = try backend.fixture(state).open()
        let tenantKey = try access.keys.create(tenant: "acme", name: "ci", isOperator: false)
        let operatorKey = try access.keys.create(tenant: "default", isOperator: true)
        // sbx_ + 16 hex + _ + 43 base64url characters.
        #expect(tenantKey.key.wholeMatch(of: /sbx_[0-9a-f]{16}_[A-Za-z0-9_-]{43}/) != nil, "\(tenantKey.key)")
        #expect(tenantKey.key.hasPrefix("sbx_\(tenantKey.info.id)_"))
        #expect(try access.keys.check(tenantKey.key) == .valid(APIIdentity(keyID: tenantKey.info.id, tenant: "acme", isOperator: false)))
        #expect(try access.keys.check(operatorKey.key) == .valid(APIIdentity(keyID: operatorKey.info.id, tenant: "default", isOperator: true)))

        // The last character of the secret changed: same id, wrong secret.
        var wrong = tenantKey.key
        let last = wrong.removeLast()
        wrong.append(last == "A" ? "B" : "A")
        #expect(try access.keys.check(wrong) == .unknown)
        // Right format, unknown id; then another key's secret under this key's id.
        let secret = String(tenantKey.key.dropFirst(4 + 16 + 1))
        #expect(try access.keys.check("sbx_0123456789abcdef_\(secret)") == .unknown)
        let otherSecret = String(operatorKey.key.dropFirst(4 + 16 + 1))
        #expect(try access.keys.check("sbx_\(tenantKey.info.id)_\(otherSecret)") == .unknown)
        for garbage in ["", "sbx_", "Bearer x", tenantKey.key + "x", String(tenantKey.key.dropLast()), String(repeating: "a", count: 10_000),
                        tenantKey.key.uppercased(), "sbx_\(tenantKey.info.id)"] {
            #expect(try access.keys.check(garbage) == .unknown, "\(garbage.prefix(80))")
        }
    }

    @Test("revoking: the next check says revoked, also through another handle on the file (the CLI's); revoking again changes nothing",
          arguments: AccessBackend.allCases)
    func revoke(backend: AccessBackend) throws {
        let state = TestState()
        defer { state.remove() }
        let fixture = backend.fixture(state)
        let server = try fixture.open()
        let cli = try fixture.open()
        let created = try cli.keys.create(tenant: "acme", isOperator: false)
        #expect(try server.keys.check(created.key) == .valid(APIIdentity(keyID: created.info.id, tenant: "acme", isOperator: false)))
        let first = try cli.keys.revoke(id: created.info.id)
        #expect(first.wasRevoked == false)
        #expect(first.info.revokedMs != nil)
        #expect(try server.keys.check(created.key) == .revoked(id: created.info.id))
        let again = try cli.keys.revoke(id: created.info.id)
        #expect(again.wasRevoked)
        #expect(again.info.revokedMs == first.info.revokedMs)
        #expect(Self.accessError { _ = try cli.keys.revoke(id: "0123456789abcdef") }?.code == .notFound)
        #expect(Self.accessError { _ = try cli.keys.revoke(id: "nope") }?.code == .invalidInput)
        #expect(try server.keys.list().map(\.revokedMs) == [first.info.revokedMs])
    }

    @Test("only the SHA-256 of a secret is stored; the file is 0600, WAL, synchronous=FULL; lists carry no secret")
    func storage() throws {
        let state = TestState()
        defer { state.remove() }
        let store = try SQLiteAccessStore.open(layout: state.layout)
        let access = AccessControl(store: store)
        let created = try access.keys.create(tenant: "acme", name: "ci", isOperator: true)
        let secret = String(created.key.dropFirst(4 + 16 + 1))
        let settings = try store.durabilitySettings()
        #expect(settings.journalMode == "wal")
        #expect(settings.synchronous == 2)  // FULL
        var info = stat()
        #expect(stat(state.layout.keysPath, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o600)
        // Neither the database nor its WAL holds the secret; the WAL holds its digest.
        var bytes = Data()
        for suffix in ["", "-wal"] { bytes += (FileManager.default.contents(atPath: state.layout.keysPath + suffix) ?? Data()) }
        #expect(!bytes.isEmpty)
        #expect(bytes.range(of: Data(secret.utf8)) == nil)
        #expect(bytes.range(of: Data(SHA256.hash(data: Array(secret.utf8)))) != nil)
        let listed = try access.keys.list()
        #expect(listed == [created.info])
        let json = String(decoding: try SealboxAPI.encoder.encode(listed), as: UTF8.self)
        #expect(!json.contains(secret))
        #expect(json == #"[{"created_ms":\#(created.info.createdMs),"id":"\#(created.info.id)","name":"ci","operator":true,"profiles":null,"revoked_ms":null,"tenant":"acme"}]"#)
    }

    @Test("tenant names are 1-64 of [A-Za-z0-9_-]; key names are bounded", arguments: AccessBackend.allCases, [
        ("", false), ("a", true), ("Acme_Corp-2", true), (String(repeating: "x", count: 64), true),
        (String(repeating: "x", count: 65), false), ("a b", false), ("a/b", false), ("ä", false), ("a\u{0}", false), ("../x", false),
    ])
    func tenantNames(backend: AccessBackend, example: (String, Bool)) throws {
        let (tenant, ok) = example
        let state = TestState()
        defer { state.remove() }
        let access = try backend.fixture(state).open()
        let error = Self.accessError { _ = try access.keys.create(tenant: tenant, isOperator: false) }
        #expect((error == nil) == ok, "\(tenant): \(String(describing: error))")
        if !ok { #expect(error?.code == .invalidInput) }
        #expect(Self.accessError { _ = try access.tenants.claim(session: "s", tenant: tenant) }?.code == (ok ? nil : .invalidInput))
    }

    @Test("key names: at most 128 bytes, no control characters", arguments: AccessBackend.allCases)
    func keyNames(backend: AccessBackend) throws {
        let state = TestState()
        defer { state.remove() }
        let access = try backend.fixture(state).open()
        #expect(Self.accessError { _ = try access.keys.create(tenant: "t", name: String(repeating: "n", count: 128), isOperator: false) } == nil)
        #expect(Self.accessError { _ = try access.keys.create(tenant: "t", name: String(repeating: "n", count: 129), isOperator: false) }?.code == .invalidInput)
        #expect(Self.accessError { _ = try access.keys.create(tenant: "t", name: "a\nb", isOperator: false) }?.code == .invalidInput)
        #expect(try access.keys.list(tenant: "t").count == 1)
        #expect(try access.keys.list(tenant: "other").isEmpty)
    }

    @Test("sessions: a claim is one tenant's; claiming again is harmless; another tenant is refused; owners in batches; paging",
          arguments: AccessBackend.allCases)
    func tenantDirectory(backend: AccessBackend) throws {
        let state = TestState()
        defer { state.remove() }
        let tenants = try backend.fixture(state).open().tenants
        #expect(try tenants.claim(session: "s1", tenant: "a"))
        #expect(try tenants.claim(session: "s1", tenant: "a") == false)
        #expect(Self.accessError { try tenants.claim(session: "s1", tenant: "b") }?.code == .ownedByAnotherTenant)
        #expect(try tenants.owner(of: "s1") == "a")
        #expect(try tenants.owner(of: "nobody") == nil)
        #expect(try tenants.owner(of: "") == nil)
        for index in 2...5 { try tenants.claim(session: "s\(index)", tenant: index % 2 == 0 ? "b" : "a") }
        #expect(try tenants.owners(of: ["s1", "s2", "s3", "missing"]) == ["s1": "a", "s2": "b", "s3": "a"])
        #expect(Self.accessError { _ = try tenants.owners(of: Set((0...TenantDirectory.maxBatch).map { "x\($0)" })) }?.code == .invalidInput)
        let all = try tenants.sessions(of: "a").map(\.sessionID)
        #expect(all == ["s1", "s3", "s5"])
        let first = try tenants.sessions(of: "a", limit: 2).map(\.sessionID)
        #expect(first == ["s1", "s3"])
        #expect(try tenants.sessions(of: "a", after: "s3", limit: 2).map(\.sessionID) == ["s5"])
        for bad in ["", String(repeating: "s", count: 257), "a\u{0}b"] {
            #expect(Self.accessError { try tenants.claim(session: bad, tenant: "a") }?.code == .invalidInput)
        }
    }

    @Test("the bootstrap key: made once into a 0600 file when the store is empty, never over an existing file", arguments: AccessBackend.allCases)
    func bootstrap(backend: AccessBackend) throws {
        let state = TestState()
        defer { state.remove() }
        let access = try backend.fixture(state).open()
        let path = state.layout.bootstrapKeyPath
        #expect(try BootstrapKey.ensure(keys: access.keys, path: path) == path)
        let text = try #require(FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self) })
        #expect(text.hasSuffix("\n"))
        let key = String(text.dropLast())
        guard case .valid(let identity) = try access.keys.check(key) else { Issue.record("bootstrap key does not check"); return }
        #expect(identity.tenant == "default" && identity.isOperator)
        var info = stat()
        #expect(lstat(path, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o600)
        // Second start: the store has a key; nothing is made, the file is untouched.
        #expect(try BootstrapKey.ensure(keys: access.keys, path: path) == nil)
        #expect(FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self) } == text)
        #expect(try access.keys.count() == 1)

        // An empty store beside a stale file: refused with a clear message, no key made.
        let other = TestState()
        defer { other.remove() }
        let empty = try backend.fixture(other).open()
        _ = FileManager.default.createFile(atPath: other.layout.bootstrapKeyPath, contents: Data("old\n".utf8))
        let error = Self.accessError { _ = try BootstrapKey.ensure(keys: empty.keys, path: other.layout.bootstrapKeyPath) }
        #expect(error?.code == .badPath)
        #expect(error?.message.contains("exists") == true)
        #expect(try empty.keys.count() == 0)
        // A symlink there is not followed either.
        try FileManager.default.removeItem(atPath: other.layout.bootstrapKeyPath)
        try FileManager.default.createSymbolicLink(atPath: other.layout.bootstrapKeyPath, withDestinationPath: other.path + "/elsewhere")
        #expect(Self.accessError { _ = try BootstrapKey.ensure(keys: empty.keys, path: other.layout.bootstrapKeyPath) }?.code == .badPath)
        #expect(!FileManager.default.fileExists(atPath: other.path + "/elsewhere"))
        #expect(try empty.keys.count() == 0)
    }

    @Test("the bootstrap's insert is atomic: eight handles racing on an empty store make one key between them", arguments: AccessBackend.allCases)
    func bootstrapRace(backend: AccessBackend) throws {
        let state = TestState()
        defer { state.remove() }
        let fixture = backend.fixture(state)
        let handles = try (0..<8).map { _ in try fixture.open() }
        let made = Mutex(0)
        let failures = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: handles.count) { index in
            do {
                if try handles[index].keys.createIfEmpty(tenant: "default", name: "bootstrap", isOperator: true) != nil {
                    made.withLock { $0 += 1 }
                }
            } catch {
                failures.withLock { $0.append("\(error)") }
            }
        }
        #expect(failures.withLock { $0 } == [])
        #expect(made.withLock { $0 } == 1)
        #expect(try handles[0].keys.count() == 1)
        // A store with a key (revoked or not) makes no bootstrap key.
        #expect(try handles[1].keys.createIfEmpty(tenant: "default", name: "bootstrap", isOperator: true) == nil)
    }

    @Test("a store holding maxKeys keys (revoked ones count) refuses another with `limit`, naming the count")
    func keyLimit() throws {
        // Memory only: 10,000 fsync'd commits would take minutes on SQLite; the limit is
        // KeyStore's, above the store, and the store's part is the atomic insertKey(ifFewerThan:)
        // that bootstrapRace holds both backends to.
        let access = AccessControl(store: InMemoryAccessStore())
        for index in 0..<KeyStore.maxKeys { _ = try access.keys.create(tenant: "t\(index % 7)", isOperator: false) }
        _ = try access.keys.revoke(id: try #require(access.keys.list().first).id)
        let error = Self.accessError { _ = try access.keys.create(tenant: "t", isOperator: false) }
        #expect(error?.code == .limit)
        #expect(error?.message.contains("\(KeyStore.maxKeys) keys") == true, "\(String(describing: error))")
        #expect(try access.keys.count() == KeyStore.maxKeys)
    }

    @Test("the server's bootstrap: only with auth on")
    func serverBootstrap() throws {
        let state = TestState()
        defer { state.remove() }
        let noAuth = try state.api { $0.authRequired = false }
        #expect(try noAuth.bootstrapKeyIfNeeded() == nil)
        #expect(!FileManager.default.fileExists(atPath: state.layout.bootstrapKeyPath))
        let api = try state.api()
        #expect(try api.bootstrapKeyIfNeeded() == state.layout.bootstrapKeyPath)
        #expect(try api.bootstrapKeyIfNeeded() == nil)
    }

    @Test("a file that is not a key store is refused: not SQLite, or another application's database (an effect log)")
    func notAKeyStore() async throws {
        let state = TestState()
        defer { state.remove() }
        let garbage = state.path + "/garbage.db"
        _ = FileManager.default.createFile(atPath: garbage, contents: Data(repeating: 0x41, count: 4096))
        #expect(Self.accessError { _ = try SQLiteAccessStore(path: garbage) }?.code == .notAKeyStore)
        _ = try Ledger(path: state.layout.ledgerPath)
        #expect(Self.accessError { _ = try SQLiteAccessStore(path: state.layout.ledgerPath) }?.code == .notAKeyStore)
        #expect(Self.accessError { _ = try SQLiteAccessStore(path: state.path) }?.code == .badPath)
    }
}
