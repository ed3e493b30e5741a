/// `sealbox profile explain`: what a profile allows and denies, by category.
public struct ProfileExplanation: Sendable, Codable {
    public struct Counts: Sendable, Codable, Equatable {
        public var allowed = 0
        public var conditional = 0
        public var denied = 0
    }

    public struct Denied: Sendable, Codable, Equatable {
        public var syscall: String
        public var action: String
        /// No rule names it: the default action applies.
        public var byDefault: Bool
    }

    public struct Conditional: Sendable, Codable, Equatable {
        public var syscall: String
        public var rules: [ConditionalRule]
        /// The action when no rule matches.
        public var otherwise: String
    }

    public struct Category: Sendable, Codable {
        public var name: SyscallCategory
        /// Allowed unconditionally (SCMP_ACT_ALLOW, or SCMP_ACT_LOG: allowed and audited).
        public var allowed: [String]
        public var conditional: [Conditional]
        public var denied: [Denied]
        public var counts: Counts
    }

    public struct Dangerous: Sendable, Codable, Equatable {
        public var syscall: String
        public var category: SyscallCategory
        public var reason: String
        /// `allowed`, or the conditions under which it runs.
        public var how: String
    }

    /// A rule that does nothing on this host, and why.
    public struct SkippedRule: Sendable, Codable, Equatable {
        public var rule: Int
        public var syscalls: [String]
        public var reason: String
    }

    public var profile: String
    public var file: String?
    public var defaultAction: String
    public var architectures: [String]
    /// The architecture the categories describe (the native one: explain reads libseccomp's table
    /// for it).
    public var nativeArchitecture: String
    public var totals: Counts
    public var categories: [Category]
    /// Dangerous syscalls every call of which runs.
    public var dangerousAllowed: [Dangerous]
    /// Dangerous syscalls that run when their argument conditions hold.
    public var dangerousConditional: [Dangerous]
    /// Names in the profile that do not exist on the native architecture (they apply only to
    /// other architectures the profile lists, if any).
    public var otherArchitectureNames: [String]
    public var skippedRules: [SkippedRule]

    enum CodingKeys: String, CodingKey {
        case profile, file, architectures, totals, categories
        case defaultAction = "default_action"
        case nativeArchitecture = "native_architecture"
        case dangerousAllowed = "dangerous_allowed"
        case dangerousConditional = "dangerous_conditional"
        case otherArchitectureNames = "other_architecture_names"
        case skippedRules = "skipped_rules"
    }
}

extension ProfileAnalysis {
    /// Explains a loaded (valid) profile. `file` is the path it was read from, for the header.
    public static func explain(_ loaded: LoadedProfile, file: String? = nil) throws(ProfileError) -> ProfileExplanation {
        let plan = try ProfileValidator.plan(loaded.profile, name: loaded.name)
        let named = loaded.profile.syscalls.flatMap(\.names)
        let behaviors = behaviors(plan, extraNames: named)
        let native = Set(SyscallCatalog.nativeSyscalls())

        var categories: [SyscallCategory: ProfileExplanation.Category] = [:]
        var totals = ProfileExplanation.Counts()
        var dangerousAllowed: [ProfileExplanation.Dangerous] = []
        var dangerousConditional: [ProfileExplanation.Dangerous] = []
        for b in behaviors.values.sorted(by: { $0.syscall < $1.syscall }) where native.contains(b.syscall) {
            var c = categories[b.category] ?? .init(name: b.category, allowed: [], conditional: [], denied: [], counts: .init())
            switch b.verdict {
            case .allowed:
                c.allowed.append(b.syscall)
                c.counts.allowed += 1
                totals.allowed += 1
            case .conditional:
                c.conditional.append(.init(syscall: b.syscall, rules: b.rules, otherwise: b.action))
                c.counts.conditional += 1
                totals.conditional += 1
            case .denied:
                c.denied.append(.init(syscall: b.syscall, action: b.action, byDefault: b.byDefault))
                c.counts.denied += 1
                totals.denied += 1
            }
            categories[b.category] = c
            if b.dangerous, let reason = SyscallCatalog.dangerReason(b.syscall) {
                if b.verdict == .allowed {
                    dangerousAllowed.append(.init(syscall: b.syscall, category: b.category, reason: reason, how: "allowed"))
                } else if b.allowsSome {
                    dangerousConditional.append(.init(syscall: b.syscall, category: b.category, reason: reason, how: b.summary))
                }
            }
        }
        let skipped = loaded.profile.syscalls.enumerated().compactMap { (i, rule) -> ProfileExplanation.SkippedRule? in
            guard !plan.rules.contains(where: { $0.index == i }) else { return nil }
            return .init(rule: i, syscalls: rule.names, reason: skipReason(rule))
        }
        return ProfileExplanation(
            profile: loaded.name, file: file, defaultAction: plan.defaultAction.description,
            architectures: plan.architectures.map(\.name), nativeArchitecture: Architecture.nativeName ?? "unknown",
            totals: totals, categories: categories.values.sorted { $0.name < $1.name },
            dangerousAllowed: dangerousAllowed, dangerousConditional: dangerousConditional,
            otherArchitectureNames: Array(Set(named).subtracting(native)).sorted(), skippedRules: skipped)
    }

    /// Why `ProfileValidator` left a rule out of the plan (it validated, so this is includes /
    /// excludes).
    static func skipReason(_ rule: SeccompProfile.Rule) -> String {
        if let caps = rule.includes?.caps, !caps.isEmpty {
            return "needs \(caps.joined(separator: ", ")); sealbox grants no capabilities"
        }
        if let arches = rule.includes?.arches, !arches.isEmpty {
            return "only for \(arches.joined(separator: ", "))"
        }
        if let k = rule.includes?.minKernel { return "needs kernel \(k) (running \(KernelVersion.runningRelease))" }
        if let arches = rule.excludes?.arches, !arches.isEmpty { return "excluded on \(arches.joined(separator: ", "))" }
        if let k = rule.excludes?.minKernel { return "excluded from kernel \(k) on (running \(KernelVersion.runningRelease))" }
        return "does not apply on this host"
    }
}

extension ProfileExplanation {
    /// The human-readable form, lines wrapped at `width` columns.
    public func text(width: Int = 100) -> String {
        var out = "profile: \(profile)\(file.map { $0 == profile ? "" : " (\($0))" } ?? "")\n"
        out += "default action: \(ProfileAnalysis.short(defaultAction))\n"
        let implied = architectures.contains(nativeArchitecture) ? [] : ["\(nativeArchitecture) (native, always in the filter)"]
        out += "architectures: \((architectures + implied).joined(separator: ", "))\n"
        out += "\(nativeArchitecture) syscalls: \(totals.allowed) allowed, \(totals.conditional) allowed with conditions, \(totals.denied) denied\n"
        for c in categories {
            out += "\n\(c.name.rawValue): \(c.counts.allowed) allowed, \(c.counts.conditional) conditional, \(c.counts.denied) denied\n"
            if !c.allowed.isEmpty { out += Self.wrap("allowed: ", c.allowed, width: width) }
            for cond in c.conditional {
                let shown = cond.rules.prefix(Self.maxRulesShown)
                out += "  conditional \(cond.syscall):\n"
                for r in shown {
                    let verb = r.action == "SCMP_ACT_ALLOW" ? "allowed" : ProfileAnalysis.short(r.action)
                    out += "    \(verb) if \(r.conditions.map(\.text).joined(separator: " && "))   [syscalls[\(r.rule)]]\n"
                }
                if cond.rules.count > shown.count {
                    let hidden = cond.rules.count - shown.count
                    out += "    ... \(hidden) more rule\(hidden == 1 ? "" : "s") (--json lists all)\n"
                }
                out += "    otherwise \(cond.otherwise == "SCMP_ACT_ALLOW" ? "allowed" : ProfileAnalysis.short(cond.otherwise))\n"
            }
            // Denied, grouped by action, the default action first.
            var groups: [(key: String, names: [String])] = []
            for d in c.denied {
                let key = ProfileAnalysis.short(d.action) + (d.byDefault ? ", the default" : "")
                if let i = groups.firstIndex(where: { $0.key == key }) { groups[i].names.append(d.syscall) } else { groups.append((key, [d.syscall])) }
            }
            for g in groups.sorted(by: { ($0.key.hasSuffix("default") ? 0 : 1, $0.key) < ($1.key.hasSuffix("default") ? 0 : 1, $1.key) }) {
                out += Self.wrap("denied (\(g.key)): ", g.names, width: width)
            }
        }
        out += "\n"
        if dangerousAllowed.isEmpty {
            out += "dangerous syscalls allowed: none\n"
        } else {
            out += "WARNING: \(dangerousAllowed.count) dangerous syscall\(dangerousAllowed.count == 1 ? " is" : "s are") allowed:\n"
            for d in dangerousAllowed { out += "  \(d.syscall) (\(d.category.rawValue)): \(d.reason)\n" }
        }
        if !dangerousConditional.isEmpty {
            out += "dangerous syscalls allowed when their arguments match (check the conditions):\n"
            for d in dangerousConditional { out += "  \(d.syscall) (\(d.category.rawValue)): \(d.how)\n    why it matters: \(d.reason)\n" }
        }
        if !otherArchitectureNames.isEmpty {
            out += Self.wrap("not on \(nativeArchitecture) (apply only to other architectures): ", otherArchitectureNames, width: width, indent: "")
        }
        for s in skippedRules {
            out += "rule syscalls[\(s.rule)] (\(s.syscalls.joined(separator: ", "))) is not applied: \(s.reason)\n"
        }
        return out
    }

    /// ioctl in default.json has 32 rules; the text shows the first few.
    static let maxRulesShown = 6

    /// `head` then the items, comma-separated, continuation lines indented.
    static func wrap(_ head: String, _ items: [String], width: Int, indent: String = "  ") -> String {
        let continuation = String(repeating: " ", count: indent.count + 4)
        var out = ""
        var line = indent + head
        var lineHasItem = false
        for (i, item) in items.enumerated() {
            let piece = item + (i == items.count - 1 ? "" : ",")
            if lineHasItem && line.count + 1 + piece.count > width {
                out += line + "\n"
                line = continuation + piece
            } else {
                line += (lineHasItem ? " " : "") + piece
            }
            lineHasItem = true
        }
        return out + line + "\n"
    }
}
