import ArgumentParser
import Foundation
import SealboxAccess
import SealboxBase
import SealboxSQLite
import SealboxServer

struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Manage the API keys of `sealbox serve`: create, list, revoke.",
        discussion: """
            A key looks like sbx_<id>_<secret>. The id is public (lists, logs,
            revoke); only the SHA-256 of the secret is stored, so a key is shown
            once, when it is created. Each key belongs to a tenant: it sees only
            its tenant's runs, sessions and effects. An operator key also reads
            /metrics, sees every tenant's effects and may resolve, approve and
            deny them.

            Examples:
              sealbox keys create --tenant acme --name ci
              KEY=$(sealbox keys create --tenant acme)
              sealbox keys create --tenant default --operator --json
              sealbox keys list
              sealbox keys revoke 3f9c0a1b2c3d4e5f

            The server checks keys.db on every request: a revoked key is refused
            from its next request on, without a restart.
            """,
        subcommands: [KeysCreate.self, KeysList.self, KeysRevoke.self]
    )
}

struct KeyStoreOptions: ParsableArguments {
    @Option(name: .customLong("state-dir"), help: ArgumentHelp("sealbox serve's state directory (keys.db is in it).", valueName: "DIR"))
    var stateDirectory: String = StateLayout.defaultStateDirectory

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    var layout: StateLayout { StateLayout(stateDirectory: stateDirectory) }

    /// `create` makes keys.db (and the directory) when missing; list and revoke only read what
    /// exists, so a mistyped --state-dir is an error, not a new empty store.
    func open(create: Bool) throws -> AccessControl {
        if !create, !FileManager.default.fileExists(atPath: layout.keysPath) {
            throw CLIFailure(message: "no key store at \(layout.keysPath) (use --state-dir DIR; `sealbox keys create` or `sealbox serve` makes it)")
        }
        do {
            return AccessControl(store: try SQLiteAccessStore.open(layout: layout))
        } catch {
            throw CLIFailure(message: error.message)
        }
    }
}

struct KeysCreate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Create a key; print it once (stdout), with a notice on stderr.",
        discussion: """
            Without --json, stdout holds the key alone, so KEY=$(sealbox keys create
            --tenant T) works. With --json: {"created_ms", "id", "key", "name",
            "operator", "profiles", "revoked_ms", "tenant"}.

            --profiles: the seccomp profiles the key's runs may name: a list
            (default,python), all, or all-but:permissive. Without it, the key
            follows the server's --profiles (default: every profile but
            permissive). A profile the key may not use is 403 naming it.
            """)

    @OptionGroup var options: KeyStoreOptions
    @Option(name: .long, help: "Tenant of the key: 1-64 of A-Z a-z 0-9 _ -.") var tenant: String
    @Flag(name: .long, help: "Operator rights: /metrics, every tenant's effects, resolve/approve/deny.") var `operator` = false
    @Option(name: .long, help: "A label for people (at most 128 bytes).") var name: String = ""
    @Option(name: .long, help: "Profiles the key's runs may name: NAME,NAME, all, or all-but:NAME,NAME (default: the server's --profiles).") var profiles: String?

    func run() throws {
        var grant: ProfileGrant?
        if let profiles {
            guard let parsed = ProfileGrant(text: profiles) else {
                throw CLIFailure(message: "--profiles expects NAME,NAME (letters, digits, _ -), all, or all-but:NAME,NAME; got \"\(profiles)\"")
            }
            grant = parsed
        }
        let access = try options.open(create: true)
        let created: CreatedAPIKey
        do {
            created = try access.keys.create(tenant: tenant, name: name, isOperator: `operator`, profiles: grant)
        } catch {
            throw CLIFailure(message: error.message)
        }
        if options.json {
            JSONOutput.print(CreatedKeyJSON(info: created.info, key: created.key))
        } else {
            print(created.key)
        }
        let role = `operator` ? "operator key" : "key"
        writeStderr("sealbox keys: created \(role) \(created.info.id) for tenant \(tenant) in \(access.keys.location). It cannot be shown again: store it now.\n")
    }

    struct CreatedKeyJSON: Encodable {
        var info: APIKeyInfo
        var key: String

        enum CodingKeys: String, CodingKey { case key }

        func encode(to encoder: any Encoder) throws {
            try info.encode(to: encoder)
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(key, forKey: .key)
        }
    }
}

struct KeysList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List keys (ids, tenants, roles; never secrets), oldest first.")

    @OptionGroup var options: KeyStoreOptions
    @Option(name: .long, help: "Only this tenant's keys.") var tenant: String?

    func run() throws {
        let access = try options.open(create: false)
        let keys: [APIKeyInfo]
        do {
            keys = try access.keys.list(tenant: tenant)
        } catch {
            throw CLIFailure(message: error.message)
        }
        if options.json { return JSONOutput.print(keys) }
        let rows = [["ID", "TENANT", "ROLE", "CREATED", "REVOKED", "PROFILES", "NAME"]] + keys.map {
            [$0.id, $0.tenant, $0.isOperator ? "operator" : "tenant", Self.time($0.createdMs), $0.revokedMs.map(Self.time) ?? "-",
             $0.profiles ?? "(server)", Printable.text($0.name)]
        }
        let widths = (0..<6).map { column in rows.map { $0[column].count }.max() ?? 0 }
        for row in rows {
            print((0..<6).map { row[$0].padding(toLength: widths[$0] + 2, withPad: " ", startingAt: 0) }.joined() + row[6])
        }
    }

    static func time(_ ms: Int64) -> String {
        let formatter = ISO8601DateFormatter()
        return formatter.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
    }
}

struct KeysRevoke: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revoke",
        abstract: "Revoke a key for good: its next request gets 401.",
        discussion: "Revoking a key that is already revoked changes nothing and says so.")

    @OptionGroup var options: KeyStoreOptions
    @Argument(help: "Key id, as `sealbox keys list` prints it (16 hex digits).") var id: String

    func run() throws {
        let access = try options.open(create: false)
        let outcome: (info: APIKeyInfo, wasRevoked: Bool)
        do {
            outcome = try access.keys.revoke(id: id)
        } catch {
            throw CLIFailure(message: error.message)
        }
        if options.json { return JSONOutput.print(outcome.info) }
        if outcome.wasRevoked {
            print("key \(id) (tenant \(outcome.info.tenant)) was already revoked at \(KeysList.time(outcome.info.revokedMs ?? 0))")
        } else {
            print("revoked key \(id) (tenant \(outcome.info.tenant)); requests with it get 401 from now on")
        }
    }
}
