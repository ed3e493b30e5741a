import SealboxBase

/// What `sealbox profile check` found in one file.
public struct ProfileCheckReport: Sendable, Equatable, Codable {
    /// The file as it was named on the command line (a profile name resolved to its path).
    public var file: String
    /// In file order (line, then column).
    public var diagnostics: [ProfileDiagnostic]

    public var errorCount: Int { diagnostics.count { $0.severity == .error } }
    public var warningCount: Int { diagnostics.count { $0.severity == .warning } }

    /// 0 clean, 1 errors (or, with `strict`, warnings). Unreadable files never get a report (2).
    public func exitStatus(strict: Bool) -> Int32 {
        errorCount > 0 || (strict && warningCount > 0) ? 1 : 0
    }

    /// Compiler-style lines, `FILE:LINE:COL: error|warning: PATH: message`, then the summary.
    public func text() -> String {
        var out = ""
        for d in diagnostics { out += "\(file):\(d)\n" }
        out += "\(Self.count(errorCount, "error")), \(Self.count(warningCount, "warning"))\n"
        return out
    }

    /// The `--json` object: `{"file", "ok", "diagnostics": [{severity, line, column, path, message}]}`.
    public struct JSON: Sendable, Codable {
        public var file: String
        public var ok: Bool
        public var diagnostics: [ProfileDiagnostic]
    }

    public func json(strict: Bool) -> JSON {
        JSON(file: file, ok: exitStatus(strict: strict) == 0, diagnostics: diagnostics)
    }

    static func count(_ n: Int, _ noun: String) -> String { "\(n) \(noun)\(n == 1 ? "" : "s")" }
}

/// `sealbox profile check`: every problem of a profile, each with the line and column of the JSON
/// value it is about. The checks are the ones `sealbox run` applies (`SeccompProfile.read` and
/// `ProfileValidator.validate`, run in collecting mode), plus warnings for what loads but does
/// not do what it seems to.
public enum ProfileChecker {
    /// Reads and checks `nameOrPath` (a path, or a name in `profilesDirectory` like `sealbox run
    /// --profile`). Throws when there is nothing to check: the file is missing, unreadable, too
    /// large, or not text at all (binary data is not a profile with a syntax error in it).
    public static func check(_ nameOrPath: String, profilesDirectory: String) throws(ProfileError) -> ProfileCheckReport {
        let (path, bytes) = try ProfileLoader.readSource(nameOrPath, profilesDirectory: profilesDirectory)
        if let offset = bytes.firstIndex(of: 0) {
            throw ProfileError("profile \"\(nameOrPath)\": \(path) is not a text file (a NUL byte at offset \(offset)); a profile is OCI seccomp JSON")
        }
        if String(validating: bytes, as: UTF8.self) == nil {
            throw ProfileError("profile \"\(nameOrPath)\": \(path) is not a text file (it is not valid UTF-8); a profile is OCI seccomp JSON")
        }
        return check(bytes, file: path)
    }

    /// Checks profile JSON held in memory; `file` names it in the report.
    public static func check(_ source: [UInt8], file: String) -> ProfileCheckReport {
        var positions = JSONPositions()
        let json: JSONValue
        do {
            json = try JSONReader.parse(source, positions: &positions)
        } catch {
            // Nothing after a syntax error can be trusted; report it alone, where the reader stopped.
            let d = ProfileDiagnostic(severity: .error, line: error.line, column: error.column, path: "",
                                      message: "invalid JSON: \(error.problem)")
            return ProfileCheckReport(file: file, diagnostics: [d])
        }
        var report = DiagnosticCollector(mode: .collectAll)
        do throws(FieldError) {
            if let read = try SeccompProfile.read(json: json, nativeArchitecture: Architecture.nativeName, report: &report) {
                _ = try ProfileValidator.validate(read, report: &report)
            }
        } catch {
            preconditionFailure("a collecting report never throws: \(error.text)")
        }
        unknownKeys(json, report: &report)

        let diagnostics = report.entries.map { e in
            let at = positions.position(of: e.path, preferringKey: e.atKey)
            return ProfileDiagnostic(severity: e.severity, line: at.line, column: at.column, path: e.path, message: e.message)
        }
        // File order; a stable sort keeps validation order for one position.
        let ordered = diagnostics.enumerated().sorted { a, b in
            (a.element.line, a.element.column, a.offset) < (b.element.line, b.element.column, b.offset)
        }.map(\.element)
        return ProfileCheckReport(file: file, diagnostics: ordered)
    }

    // MARK: - Unknown keys

    /// Keys sealbox reads, plus the OCI / Docker ones it deliberately ignores (documented in
    /// profiles/README.md). Anything else is most likely a typo, and a typo is silent: a
    /// misspelt `args` turns a conditional rule into an unconditional one.
    static let topLevelKeys: Set<String> = [
        "defaultAction", "defaultErrnoRet", "architectures", "archMap", "syscalls",
        "comment", "flags", "listenerPath", "listenerMetadata",
    ]
    static let ruleKeys: Set<String> = ["names", "name", "action", "errnoRet", "args", "comment", "includes", "excludes"]
    static let argKeys: Set<String> = ["index", "value", "valueTwo", "op"]
    static let conditionKeys: Set<String> = ["caps", "arches", "minKernel"]
    static let archMapKeys: Set<String> = ["architecture", "subArchitectures"]

    static func unknownKeys(_ json: JSONValue, report: inout DiagnosticCollector) {
        func check(_ value: JSONValue, _ path: String, _ known: Set<String>, _ what: String) {
            guard case .object(let members) = value else { return }
            for member in members where !known.contains(member.key) {
                let hint = closest(member.key, in: known).map { " (did you mean \"\($0)\"?)" } ?? ""
                report.warning(JSONPositions.member(path, member.key),
                               "unknown key \"\(member.key)\" in \(what) is ignored\(hint)", atKey: true)
            }
        }
        func elements(_ value: JSONValue?) -> [JSONValue] {
            if case .array(let items)? = value { return items }
            return []
        }
        check(json, "", topLevelKeys, "the profile")
        for (i, entry) in elements(json["archMap"]).enumerated() {
            check(entry, JSONPositions.element("archMap", i), archMapKeys, "an archMap entry")
        }
        for (i, rule) in elements(json["syscalls"]).enumerated() {
            let rulePath = JSONPositions.element("syscalls", i)
            check(rule, rulePath, ruleKeys, "a rule")
            for (j, arg) in elements(rule["args"]).enumerated() {
                check(arg, JSONPositions.element(JSONPositions.member(rulePath, "args"), j), argKeys, "an argument comparison")
            }
            for key in ["includes", "excludes"] {
                if let condition = rule[key] { check(condition, JSONPositions.member(rulePath, key), conditionKeys, key) }
            }
        }
    }

    /// A known key equal but for case, or within two edits.
    static func closest(_ key: String, in known: Set<String>) -> String? {
        if let same = known.first(where: { $0.lowercased() == key.lowercased() }) { return same }
        return known.sorted()
            .map { ($0, SyscallCatalog.editDistance(Array(key.utf8), Array($0.utf8), limit: 2)) }
            .filter { $0.1 <= 2 }
            .min { $0.1 < $1.1 }?.0
    }
}
