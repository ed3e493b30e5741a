import SealboxBase

/// An OCI / Docker seccomp profile (the JSON that `docker run --security-opt seccomp=...` and
/// runc's `linux.seccomp` accept), restricted to what sealbox supports. See profiles/README.md.
///
/// Reading is tolerant the way Docker is: unknown keys (`comment`, `flags`, `listenerPath`, ...)
/// are ignored; `archMap` is resolved to the entry for the native architecture and merged into
/// `architectures`; the legacy single `name` of a rule is read as `names: [name]`. `includes` and
/// `excludes` are kept and honoured at compile time (see `Condition`). Values are checked for
/// meaning (known actions, syscalls, operators, ranges) by `ProfileLoader` / `SeccompCompiler`,
/// not here.
public struct SeccompProfile: Codable, Sendable, Equatable {
    /// `SCMP_ACT_*` taken when no rule matches.
    public var defaultAction: String
    /// errno for a `SCMP_ACT_ERRNO` default action (EPERM when absent).
    public var defaultErrnoRet: Int?
    /// `SCMP_ARCH_*` names; the native architecture is always included.
    public var architectures: [String]
    public var syscalls: [Rule]

    public init(defaultAction: String, defaultErrnoRet: Int? = nil, architectures: [String] = [], syscalls: [Rule] = []) {
        self.defaultAction = defaultAction
        self.defaultErrnoRet = defaultErrnoRet
        self.architectures = architectures
        self.syscalls = syscalls
    }

    /// One entry of `syscalls`: the action for the named syscalls when all `args` comparisons hold.
    public struct Rule: Codable, Sendable, Equatable {
        public var names: [String]
        public var action: String
        /// errno for `SCMP_ACT_ERRNO` (EPERM when absent).
        public var errnoRet: Int?
        /// All must hold (AND). At most one comparison per argument index.
        public var args: [Arg]
        public var comment: String?
        public var includes: Condition?
        public var excludes: Condition?

        public init(names: [String], action: String, errnoRet: Int? = nil, args: [Arg] = [], comment: String? = nil,
                    includes: Condition? = nil, excludes: Condition? = nil) {
            self.names = names
            self.action = action
            self.errnoRet = errnoRet
            self.args = args
            self.comment = comment
            self.includes = includes
            self.excludes = excludes
        }
    }

    /// A comparison of syscall argument `index` (0...5) with `op`. For `SCMP_CMP_MASKED_EQ`,
    /// `value` is the mask and `valueTwo` the value the masked argument must equal (OCI semantics,
    /// the same as libseccomp's datum_a / datum_b).
    public struct Arg: Codable, Sendable, Equatable {
        public var index: Int
        public var value: UInt64
        public var valueTwo: UInt64
        public var op: String

        public init(index: Int, value: UInt64, valueTwo: UInt64 = 0, op: String) {
            self.index = index
            self.value = value
            self.valueTwo = valueTwo
            self.op = op
        }
    }

    /// Docker's `includes` / `excludes` of a rule. sealbox grants jailed code no capabilities, so a
    /// rule that `includes` any capability is skipped (Docker keeps those for privileged
    /// containers: mount, bpf, ptrace, ...) and a capability in `excludes` never removes a rule.
    /// `arches` (Docker names: amd64, x86, x32, arm64, arm, ...) and `minKernel` ("4.8") are
    /// compared with the host.
    public struct Condition: Codable, Sendable, Equatable {
        public var caps: [String]
        public var arches: [String]
        public var minKernel: String?

        public init(caps: [String] = [], arches: [String] = [], minKernel: String? = nil) {
            self.caps = caps
            self.arches = arches
            self.minKernel = minKernel
        }
    }
}

// MARK: - Reading from JSON

/// A profile as far as it could be read, with what validation needs to go on after a bad rule.
struct ReadProfile {
    var profile: SeccompProfile
    /// For each of `profile.syscalls`, its index in the file's `syscalls` array.
    var ruleIndices: [Int]
    /// False when `defaultAction` was missing or not a string (already reported).
    var defaultActionReadable: Bool

    /// A profile built in code or read completely: every rule is where it was.
    init(_ profile: SeccompProfile) {
        self.init(profile: profile, ruleIndices: Array(profile.syscalls.indices), defaultActionReadable: true)
    }

    init(profile: SeccompProfile, ruleIndices: [Int], defaultActionReadable: Bool) {
        self.profile = profile
        self.ruleIndices = ruleIndices
        self.defaultActionReadable = defaultActionReadable
    }
}

/// A problem at a JSON path, e.g. ("syscalls[3].args[0].value", "expected an unsigned 64-bit integer, found -1").
struct FieldError: Error {
    /// The JSON path of the problem ("" = the top level), where `profile check` looks up the
    /// line and column.
    let path: String
    /// The problem alone, as `profile check` prints it after the path.
    let problem: String
    /// The one-line message `sealbox run` shows: "<path>: <problem>" unless phrased otherwise.
    let text: String

    /// "<path>: <problem>"
    init(path: String, problem: String) {
        self.path = path
        self.problem = problem
        text = path.isEmpty ? problem : "\(path): \(problem)"
    }

    /// A message phrased freely for `sealbox run`, e.g. `unknown syscall "x" in syscalls[2].names`,
    /// with the precise path and problem kept for `profile check`.
    init(path: String, problem: String, text: String) {
        self.path = path
        self.problem = problem
        self.text = text
    }
}

private func keyPath(_ parent: String, _ key: String) -> String {
    parent.isEmpty ? key : "\(parent).\(key)"
}

/// Typed access to a JSON object with path-precise errors; JSON `null` counts as absent.
private struct ObjectReader {
    let value: JSONValue
    let path: String

    init(_ value: JSONValue, path: String) throws(FieldError) {
        guard case .object = value else {
            let problem = "expected an object, found \(value.kindDescription)"
            throw FieldError(path: path, problem: problem, text: "\(path.isEmpty ? "top level" : path): \(problem)")
        }
        self.value = value
        self.path = path
    }

    func optional(_ key: String) -> JSONValue? {
        guard let v = value[key], v != .null else { return nil }
        return v
    }

    func required(_ key: String) throws(FieldError) -> JSONValue {
        guard let v = optional(key) else { throw FieldError(path: keyPath(path, key), problem: "missing (required)") }
        return v
    }

    func string(_ key: String) throws(FieldError) -> String {
        try Self.string(try required(key), path: keyPath(path, key))
    }

    func optionalString(_ key: String) throws(FieldError) -> String? {
        guard let v = optional(key) else { return nil }
        return try Self.string(v, path: keyPath(path, key))
    }

    func optionalInt(_ key: String) throws(FieldError) -> Int? {
        guard let v = optional(key) else { return nil }
        return try Self.int(v, path: keyPath(path, key))
    }

    func int(_ key: String) throws(FieldError) -> Int {
        try Self.int(try required(key), path: keyPath(path, key))
    }

    func uint64(_ key: String) throws(FieldError) -> UInt64 {
        try Self.uint64(try required(key), path: keyPath(path, key))
    }

    func optionalUInt64(_ key: String) throws(FieldError) -> UInt64? {
        guard let v = optional(key) else { return nil }
        return try Self.uint64(v, path: keyPath(path, key))
    }

    /// An array (absent or null → []), each element read by `element`.
    func array<T>(_ key: String, _ element: (JSONValue, String) throws(FieldError) -> T) throws(FieldError) -> [T] {
        guard let v = optional(key) else { return [] }
        let p = keyPath(path, key)
        guard case .array(let items) = v else { throw FieldError(path: p, problem: "expected an array, found \(v.kindDescription)") }
        var out: [T] = []
        out.reserveCapacity(items.count)
        for (i, item) in items.enumerated() {
            out.append(try element(item, "\(p)[\(i)]"))
        }
        return out
    }

    func stringArray(_ key: String) throws(FieldError) -> [String] {
        try array(key) { (v, p) throws(FieldError) in try Self.string(v, path: p) }
    }

    static func string(_ v: JSONValue, path: String) throws(FieldError) -> String {
        guard case .string(let s) = v else { throw FieldError(path: path, problem: "expected a string, found \(v.kindDescription)") }
        return s
    }

    static func int(_ v: JSONValue, path: String) throws(FieldError) -> Int {
        guard case .number(let literal) = v else { throw FieldError(path: path, problem: "expected an integer, found \(v.kindDescription)") }
        if let i = Int(literal) { return i }
        if literal.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }) {
            throw FieldError(path: path, problem: "expected an integer, found \(literal)")
        }
        throw FieldError(path: path, problem: "\(literal) is out of range")
    }

    static func uint64(_ v: JSONValue, path: String) throws(FieldError) -> UInt64 {
        guard case .number(let literal) = v, let u = UInt64(literal) else {
            let found: String
            if case .number(let literal) = v { found = literal } else { found = v.kindDescription }
            throw FieldError(path: path, problem: "expected an unsigned 64-bit integer, found \(found)")
        }
        return u
    }
}

extension SeccompProfile {
    /// Reads a profile from parsed JSON. `nativeArchitecture` (an `SCMP_ARCH_*` name) selects the
    /// `archMap` entry. Throws the first problem.
    init(json: JSONValue, nativeArchitecture: String?) throws(FieldError) {
        var report = DiagnosticCollector(mode: .throwFirstError)
        guard let read = try Self.read(json: json, nativeArchitecture: nativeArchitecture, report: &report) else {
            preconditionFailure("read returns nil only after reporting an error, which throws in this mode")
        }
        self = read.profile
    }

    /// Reads what can be read, reporting each problem to `report` (which throws the first one,
    /// or collects them all for `profile check`). A rule that cannot be read is left out, and the
    /// others keep their index in the file (`ReadProfile.ruleIndices`), so later messages still
    /// name the right `syscalls[i]`. Nil when the top level is not even an object. The order of
    /// the checks is the order `sealbox run` has always reported the first problem in.
    static func read(json: JSONValue, nativeArchitecture: String?, report: inout DiagnosticCollector) throws(FieldError) -> ReadProfile? {
        guard let top = try report.recover({ () throws(FieldError) in try ObjectReader(json, path: "") }) else { return nil }
        let defaultAction = try report.recover { () throws(FieldError) in try top.string("defaultAction") }
        let defaultErrnoRet = try report.recover { () throws(FieldError) in try top.optionalInt("defaultErrnoRet") } ?? nil
        var arches = try report.recover { () throws(FieldError) in try top.stringArray("architectures") } ?? []
        // Docker's archMap: [{architecture, subArchitectures}]; take the native entry.
        let archMap = try report.recover { () throws(FieldError) in
            try top.array("archMap") { (v, p) throws(FieldError) -> [String] in
                let entry = try ObjectReader(v, path: p)
                return [try entry.string("architecture")] + (try entry.stringArray("subArchitectures"))
            }
        } ?? []
        if let native = nativeArchitecture, let entry = archMap.first(where: { $0.first == native }) {
            for a in entry where !arches.contains(a) { arches.append(a) }
        }
        var rules: [Rule] = []
        var indices: [Int] = []
        if let v = top.optional("syscalls") {
            if case .array(let items) = v {
                for (i, item) in items.enumerated() {
                    let rule = try report.recover { () throws(FieldError) in try Rule(json: item, path: JSONPositions.element("syscalls", i)) }
                    if let rule {
                        rules.append(rule)
                        indices.append(i)
                    }
                }
            } else {
                try report.error(FieldError(path: "syscalls", problem: "expected an array, found \(v.kindDescription)"))
            }
        }
        let profile = SeccompProfile(defaultAction: defaultAction ?? "", defaultErrnoRet: defaultErrnoRet,
                                     architectures: arches, syscalls: rules)
        return ReadProfile(profile: profile, ruleIndices: indices, defaultActionReadable: defaultAction != nil)
    }

    public init(from decoder: any Decoder) throws {
        let json = try JSONValue(from: decoder)
        do {
            try self.init(json: json, nativeArchitecture: Architecture.nativeName)
        } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.text))
        }
    }

    private enum CodingKeys: String, CodingKey {
        case defaultAction, defaultErrnoRet, architectures, syscalls
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(defaultAction, forKey: .defaultAction)
        try c.encodeIfPresent(defaultErrnoRet, forKey: .defaultErrnoRet)
        try c.encode(architectures, forKey: .architectures)
        try c.encode(syscalls, forKey: .syscalls)
    }
}

extension SeccompProfile.Rule {
    init(json: JSONValue, path: String) throws(FieldError) {
        let r = try ObjectReader(json, path: path)
        if r.optional("names") != nil {
            names = try r.stringArray("names")
        } else if let single = try r.optionalString("name") {
            names = [single]  // the pre-1.10 Docker format
        } else {
            throw FieldError(path: keyPath(path, "names"), problem: "missing (required)")
        }
        action = try r.string("action")
        errnoRet = try r.optionalInt("errnoRet")
        args = try r.array("args") { (v, p) throws(FieldError) in
            let a = try ObjectReader(v, path: p)
            return SeccompProfile.Arg(index: try a.int("index"), value: try a.uint64("value"),
                                      valueTwo: try a.optionalUInt64("valueTwo") ?? 0, op: try a.string("op"))
        }
        comment = (r.optional("comment")).flatMap { if case .string(let s) = $0 { s } else { nil } }
        includes = try r.optional("includes").map { (v) throws(FieldError) in try SeccompProfile.Condition(json: v, path: keyPath(path, "includes")) }
        excludes = try r.optional("excludes").map { (v) throws(FieldError) in try SeccompProfile.Condition(json: v, path: keyPath(path, "excludes")) }
    }

    public init(from decoder: any Decoder) throws {
        let json = try JSONValue(from: decoder)
        do {
            try self.init(json: json, path: "")
        } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.text))
        }
    }

    private enum CodingKeys: String, CodingKey {
        case names, action, errnoRet, args, comment, includes, excludes
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(names, forKey: .names)
        try c.encode(action, forKey: .action)
        try c.encodeIfPresent(errnoRet, forKey: .errnoRet)
        if !args.isEmpty { try c.encode(args, forKey: .args) }
        try c.encodeIfPresent(comment, forKey: .comment)
        try c.encodeIfPresent(includes, forKey: .includes)
        try c.encodeIfPresent(excludes, forKey: .excludes)
    }
}

extension SeccompProfile.Arg {
    private enum CodingKeys: String, CodingKey {
        case index, value, valueTwo, op
    }

    /// `valueTwo` is optional in OCI profiles (0 when absent).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        index = try c.decode(Int.self, forKey: .index)
        value = try c.decode(UInt64.self, forKey: .value)
        valueTwo = try c.decodeIfPresent(UInt64.self, forKey: .valueTwo) ?? 0
        op = try c.decode(String.self, forKey: .op)
    }
}

extension SeccompProfile.Condition {
    init(json: JSONValue, path: String) throws(FieldError) {
        let c = try ObjectReader(json, path: path)
        caps = try c.stringArray("caps")
        arches = try c.stringArray("arches")
        minKernel = try c.optionalString("minKernel")
    }

    public init(from decoder: any Decoder) throws {
        let json = try JSONValue(from: decoder)
        do {
            try self.init(json: json, path: "")
        } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.text))
        }
    }

    private enum CodingKeys: String, CodingKey {
        case caps, arches, minKernel
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        if !caps.isEmpty { try c.encode(caps, forKey: .caps) }
        if !arches.isEmpty { try c.encode(arches, forKey: .arches) }
        try c.encodeIfPresent(minKernel, forKey: .minKernel)
    }
}
