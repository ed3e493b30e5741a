import SealboxBase
import Crypto
import Foundation
import Glibc
import SealboxLedger
import SealboxSQLite
@testable import SealboxServer
import Testing

/// keys.db on real SQLite in temp directories: keys, revocation, tenants, the bootstrap key.
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

    @Test("a created key checks as its tenant and role; a wrong secret, an unknown id and garbage do not")
    func createAndCheck() throws {
        let state = TestState()
        defer { state.remove() }
        let access = try AccessControl(path: state.layout.keysPath)
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

    @Test("revoking: the next check says revoked, also through another handle on the file (the CLI's); revoking again changes nothing")
    func revoke() throws {
        let state = TestState()
        defer { state.remove() }
        let server = try AccessControl(path: state.layout.keysPath)
        let cli = try AccessControl(path: state.layout.keysPath)
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
        let access = try AccessControl(path: state.layout.keysPath)
        let created = try access.keys.create(tenant: "acme", name: "ci", isOperator: true)
        let secret = String(created.key.dropFirst(4 + 16 + 1))
        let settings = try access.keys.database.durabilitySettings()
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

    @Test("tenant names are 1-64 of [A-Za-z0-9_-]; key names are bounded", arguments: [
        ("", false), ("a", true), ("Acme_Corp-2", true), (String(repeating: "x", count: 64), true),
        (String(repeating: "x", count: 65), false), ("a b", false), ("a/b", false), ("ä", false), ("a\u{0}", false), ("../x", false),
    ])
    func tenantNames(tenant: String, ok: Bool) throws {
        let state = TestState()
        defer { state.remove() }
        let access = try AccessControl(path: state.layout.keysPath)
        let error = Self.accessError { _ = try access.keys.create(tenant: tenant, isOperator: false) }
        #expect((error == nil) == ok, "\(tenant): \(String(describing: error))")
        if !ok { #expect(error?.code == .invalidInput) }
        #expect(Self.accessError { _ = try access.tenants.claim(session: "s", tenant: tenant) }?.code == (ok ? nil : .invalidInput))
    }

    @Test("key names: at most 128 bytes, no control characters")
    func keyNames() throws {
        let state = TestState()
        defer { state.remove() }
        let access = try AccessControl(path: state.layout.keysPath)
        #expect(Self.accessError { _ = try access.keys.create(tenant: "t", name: String(repeating: "n", count: 128), isOperator: false) } == nil)
        #expect(Self.accessError { _ = try access.keys.create(tenant: "t", name: String(repeating: "n", count: 129), isOperator: false) }?.code == .invalidInput)
        #expect(Self.accessError { _ = try access.keys.create(tenant: "t", name: "a\nb", isOperator: false) }?.code == .invalidInput)
        #expect(try access.keys.list(tenant: "t").count == 1)
        #expect(try access.keys.list(tenant: "other").isEmpty)
    }

    @Test("sessions: a claim is one tenant's; claiming again is harmless; another tenant is refused; owners in batches; paging")
    func tenantDirectory() throws {
        let state = TestState()
        defer { state.remove() }
        let tenants = try AccessControl(path: state.layout.keysPath).tenants
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

    @Test("the bootstrap key: made once into a 0600 file when the store is empty, never over an existing file")
    func bootstrap() throws {
        let state = TestState()
        defer { state.remove() }
        let access = try AccessControl(path: state.layout.keysPath)
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
        let empty = try AccessControl(path: other.layout.keysPath)
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
        #expect(Self.accessError { _ = try AccessControl(path: garbage) }?.code == .notAKeyStore)
        _ = try Ledger(path: state.layout.ledgerPath)
        #expect(Self.accessError { _ = try AccessControl(path: state.layout.ledgerPath) }?.code == .notAKeyStore)
        #expect(Self.accessError { _ = try AccessControl(path: state.path) }?.code == .badPath)
    }
}
