/// `sealbox profile diff A B`: how B treats syscalls differently from A. Compared by effect,
/// not by text: two profiles that compile to the same decisions are equivalent even if their
/// rules are ordered or grouped differently.
public struct ProfileDiff: Sendable, Codable {
    public struct Change: Sendable, Codable, Equatable {
        public var syscall: String
        /// What A and B do with it, one line each (see `SyscallBehavior.summary`).
        public var from: String
        public var to: String
        /// A dangerous syscall (`SyscallCatalog.dangerReason`) that B lets run, at least in some case.
        public var dangerous: Bool
    }

    public struct Category: Sendable, Codable {
        public var name: SyscallCategory
        /// Denied by A, allowed by B (unconditionally).
        public var newlyAllowed: [Change]
        /// Allowed by A (unconditionally), denied by B.
        public var newlyDenied: [Change]
        /// Stopped (or allowed) by both, with another action: ERRNO(1) → KILL_PROCESS.
        public var actionChanged: [Change]
        /// Conditional in A or B (or both) with different conditions.
        public var conditionsChanged: [Change]

        enum CodingKeys: String, CodingKey {
            case name
            case newlyAllowed = "newly_allowed"
            case newlyDenied = "newly_denied"
            case actionChanged = "action_changed"
            case conditionsChanged = "conditions_changed"
        }
    }

    public struct ValueChange: Sendable, Codable, Equatable {
        public var from: String
        public var to: String
    }

    public var a: String
    public var b: String
    public var defaultAction: ValueChange?
    public var architecturesAdded: [String]
    public var architecturesRemoved: [String]
    public var categories: [Category]
    /// Dangerous syscalls B lets run (at all, or with fewer conditions) where A did not.
    public var dangerousNewlyAllowed: [Change]

    public var equivalent: Bool {
        defaultAction == nil && architecturesAdded.isEmpty && architecturesRemoved.isEmpty && categories.isEmpty
    }

    enum CodingKeys: String, CodingKey {
        case a, b, equivalent, categories
        case defaultAction = "default_action"
        case architecturesAdded = "architectures_added"
        case architecturesRemoved = "architectures_removed"
        case dangerousNewlyAllowed = "dangerous_newly_allowed"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(a, forKey: .a)
        try c.encode(b, forKey: .b)
        try c.encode(equivalent, forKey: .equivalent)
        try c.encode(defaultAction, forKey: .defaultAction)
        try c.encode(architecturesAdded, forKey: .architecturesAdded)
        try c.encode(architecturesRemoved, forKey: .architecturesRemoved)
        try c.encode(categories, forKey: .categories)
        try c.encode(dangerousNewlyAllowed, forKey: .dangerousNewlyAllowed)
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        a = try c.decode(String.self, forKey: .a)
        b = try c.decode(String.self, forKey: .b)
        defaultAction = try c.decodeIfPresent(ValueChange.self, forKey: .defaultAction)
        architecturesAdded = try c.decode([String].self, forKey: .architecturesAdded)
        architecturesRemoved = try c.decode([String].self, forKey: .architecturesRemoved)
        categories = try c.decode([Category].self, forKey: .categories)
        dangerousNewlyAllowed = try c.decode([Change].self, forKey: .dangerousNewlyAllowed)
    }

    init(a: String, b: String, defaultAction: ValueChange?, architecturesAdded: [String], architecturesRemoved: [String],
         categories: [Category], dangerousNewlyAllowed: [Change]) {
        self.a = a
        self.b = b
        self.defaultAction = defaultAction
        self.architecturesAdded = architecturesAdded
        self.architecturesRemoved = architecturesRemoved
        self.categories = categories
        self.dangerousNewlyAllowed = dangerousNewlyAllowed
    }
}

extension ProfileAnalysis {
    /// Compares two loaded (valid) profiles on the native architecture, plus every name either
    /// profile mentions (names of other architectures are compared by name).
    public static func diff(_ a: LoadedProfile, _ b: LoadedProfile) throws(ProfileError) -> ProfileDiff {
        let planA = try ProfileValidator.plan(a.profile, name: a.name)
        let planB = try ProfileValidator.plan(b.profile, name: b.name)
        let named = a.profile.syscalls.flatMap(\.names) + b.profile.syscalls.flatMap(\.names)
        let before = behaviors(planA, extraNames: named)
        let after = behaviors(planB, extraNames: named)

        var categories: [SyscallCategory: ProfileDiff.Category] = [:]
        var dangerous: [ProfileDiff.Change] = []
        for name in Set(before.keys).union(after.keys).sorted() {
            guard let x = before[name], let y = after[name], !x.sameEffect(as: y) else { continue }
            // "dangerous" marks a dangerous syscall that B lets run (in some case), not any change to one.
            let change = ProfileDiff.Change(syscall: name, from: x.summary, to: y.summary, dangerous: y.dangerous && y.allowsSome)
            var c = categories[y.category] ?? .init(name: y.category, newlyAllowed: [], newlyDenied: [], actionChanged: [], conditionsChanged: [])
            switch (x.verdict, y.verdict) {
            case (.denied, .allowed): c.newlyAllowed.append(change)
            case (.allowed, .denied): c.newlyDenied.append(change)
            case (.denied, .denied), (.allowed, .allowed): c.actionChanged.append(change)
            default: c.conditionsChanged.append(change)
            }
            categories[y.category] = c
            // Dangerous and B runs it where A never did, or B dropped A's conditions.
            if y.dangerous && y.allowsSome && (!x.allowsSome || (x.verdict == .conditional && y.verdict == .allowed)) {
                dangerous.append(change)
            }
        }
        // The native architecture is in every filter, listed or not.
        func effective(_ plan: CompilePlan) -> [String] {
            let listed = plan.architectures.filter { $0.token != Architecture.nativeToken }.map(\.name)
            return Architecture.nativeName.map { [$0] + listed } ?? listed
        }
        let archA = effective(planA), archB = effective(planB)
        return ProfileDiff(
            a: a.name, b: b.name,
            defaultAction: planA.defaultAction == planB.defaultAction
                ? nil : .init(from: planA.defaultAction.description, to: planB.defaultAction.description),
            architecturesAdded: archB.filter { !archA.contains($0) }, architecturesRemoved: archA.filter { !archB.contains($0) },
            categories: categories.values.sorted { $0.name < $1.name }, dangerousNewlyAllowed: dangerous)
    }
}

extension ProfileDiff {
    /// The human-readable form: `+` newly allowed, `-` newly denied, `~` changed.
    public func text() -> String {
        if equivalent { return "\(a) and \(b) are equivalent\n" }
        var out = "--- \(a)\n+++ \(b)\n"
        if let d = defaultAction {
            out += "default action: \(ProfileAnalysis.short(d.from)) -> \(ProfileAnalysis.short(d.to))\n"
        }
        if !architecturesAdded.isEmpty { out += "architectures added: \(architecturesAdded.joined(separator: ", "))\n" }
        if !architecturesRemoved.isEmpty { out += "architectures removed: \(architecturesRemoved.joined(separator: ", "))\n" }
        for c in categories {
            let n = c.newlyAllowed.count + c.newlyDenied.count + c.actionChanged.count + c.conditionsChanged.count
            out += "\n\(c.name.rawValue): \(n) changed\n"
            func flag(_ ch: Change) -> String { ch.dangerous ? "  [dangerous]" : "" }
            for ch in c.newlyAllowed { out += "  + \(ch.syscall): newly allowed (was \(ProfileAnalysis.short(ch.from)))\(flag(ch))\n" }
            for ch in c.newlyDenied { out += "  - \(ch.syscall): newly denied: \(ch.to)\(flag(ch))\n" }
            for ch in c.actionChanged { out += "  ~ \(ch.syscall): \(ch.from) -> \(ch.to)\(flag(ch))\n" }
            for ch in c.conditionsChanged {
                out += "  ~ \(ch.syscall): conditions changed\(flag(ch))\n      \(a): \(ch.from)\n      \(b): \(ch.to)\n"
            }
        }
        out += "\n"
        if dangerousNewlyAllowed.isEmpty {
            out += "dangerous syscalls newly allowed: none\n"
        } else {
            out += "WARNING: dangerous syscalls newly allowed by \(b): \(dangerousNewlyAllowed.map(\.syscall).joined(separator: ", "))\n"
        }
        let counts = categories.reduce(into: (0, 0, 0)) { acc, c in
            acc.0 += c.newlyAllowed.count
            acc.1 += c.newlyDenied.count
            acc.2 += c.actionChanged.count + c.conditionsChanged.count
        }
        out += "\(counts.0) newly allowed, \(counts.1) newly denied, \(counts.2) changed\n"
        return out
    }
}
