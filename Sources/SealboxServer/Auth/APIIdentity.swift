import Foundation
import SealboxProfiles

/// Who sent a request: the key that authenticated it, its tenant, and whether it may act as
/// an operator (metrics; resolving, approving and denying effects; seeing every tenant's).
public struct APIIdentity: Sendable, Equatable, Hashable {
    public var keyID: String
    public var tenant: String
    public var isOperator: Bool
    /// The seccomp profiles the key may name; nil: the server's policy.
    public var profiles: ProfileGrant?

    public init(keyID: String, tenant: String, isOperator: Bool, profiles: ProfileGrant? = nil) {
        self.keyID = keyID
        self.tenant = tenant
        self.isOperator = isOperator
        self.profiles = profiles
    }

    /// Every request of `sealbox serve --no-auth`: tenant `default`, operator rights.
    public static let unauthenticated = APIIdentity(keyID: "no-auth", tenant: "default", isOperator: true)

    /// The one visibility rule of the API: a tenant sees what it owns; an operator sees all.
    public func canSee(ownedBy tenant: String?) -> Bool {
        isOperator || tenant == self.tenant
    }

    /// How the effect log records a decision made with this key.
    public var actor: String { "api-key:\(keyID)" }
}

/// Which catalog profiles a key (or, as the server's default, every key without its own
/// grant) may name in a run. The default is every profile but `permissive`, whose own
/// comment says it is for debugging: it allows everything but a short deny-list.
public enum ProfileGrant: Sendable, Hashable, CustomStringConvertible {
    /// Every profile of the catalog.
    case all
    /// Every profile of the catalog but these.
    case allBut(Set<String>)
    /// These profiles only.
    case only(Set<String>)

    public static let serverDefault = ProfileGrant.allBut(["permissive"])

    public func allows(_ name: String) -> Bool {
        switch self {
        case .all: true
        case .allBut(let excluded): !excluded.contains(name)
        case .only(let names): names.contains(name)
        }
    }

    /// `all`, `all-but:a,b` or `a,b`: how keys.db stores it and how flags take it.
    public init?(text: String) {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        func names(_ list: Substring) -> Set<String>? {
            let items = list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            guard !items.isEmpty, items.allSatisfy({ ProfileCatalog.isValidName($0) }) else { return nil }
            return Set(items)
        }
        if trimmed == "all" || trimmed == "*" {
            self = .all
        } else if trimmed.hasPrefix("all-but:") {
            guard let excluded = names(trimmed.dropFirst("all-but:".count)) else { return nil }
            self = .allBut(excluded)
        } else {
            guard let only = names(Substring(trimmed)) else { return nil }
            self = .only(only)
        }
    }

    public var description: String {
        switch self {
        case .all: "all"
        case .allBut(let excluded): "all-but:" + excluded.sorted().joined(separator: ",")
        case .only(let names): names.sorted().joined(separator: ",")
        }
    }
}

/// Why a run may not use the profile it names.
public struct ProfileRefusal: Error, Sendable {
    /// false: not in the catalog at all (400); true: in it, but not granted (403).
    public var forbidden: Bool
    public var message: String
}

extension ProfileGrant {
    /// Checks `name` against the catalog and this grant. `who` names the holder in messages
    /// ("key 3f9c…"). The catalog is looked up by name: never a path.
    public func check(_ name: String, catalog: ProfileCatalog, who: String) throws(ProfileRefusal) {
        let names = catalog.names()
        let usable = names.filter(allows)
        guard names.contains(name) else {
            throw ProfileRefusal(forbidden: false, message: "unknown profile \"\(name)\" (offered: \(usable.joined(separator: ", ")))")
        }
        guard allows(name) else {
            throw ProfileRefusal(forbidden: true, message: "\(who) may not use profile \"\(name)\" (it may use: \(usable.isEmpty ? "none" : usable.joined(separator: ", ")))")
        }
    }
}
