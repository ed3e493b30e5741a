import CSealboxSpawn
import Foundation
import Glibc
import Testing
@testable import SealboxJail

/// `LimitTable` is the one declaration of the run limits. These tests walk its rows and check
/// that each reaches every place a limit must be: the request decoder and its checks, the
/// schemas, the validator, the result's echo, the pool's fit test and the rlimits. A row
/// added to the table is checked here without naming it; the CLI flags are checked from the
/// outside (SealboxCLITests `LimitFlagTests`), the served OpenAPI in SealboxServerTests.
@Suite("Limit table")
struct LimitTableTests {
    /// A valid value of `row` other than its default: the minimum, or one step above it.
    static func other(_ row: LimitRow, than current: LimitValue?) -> LimitValue {
        let minimum = row.minimum
        guard minimum == current else { return minimum }
        return row.unit.isWhole ? .whole(minimum.whole + (row.unit == .bytes ? 1 << 20 : 1)) : .cores(minimum.cores * 2)
    }

    @Test("every row's key is read from a request, within its minimum and the operator's maximum, naming limits.<key>",
          arguments: LimitTable.rows.map(\.key))
    func decoded(key: LimitKey) throws {
        let row = try #require(LimitTable.row(key))
        let value = Self.other(row, than: Limits()[key])
        let json = "{\"\(key)\": \(value)}"
        let requested = try JSONDecoder().decode(RequestedLimits.self, from: Data(json.utf8))
        #expect(requested.values[key] == value, "the decoder does not read \(key)")
        let maxima = LimitTable.defaultMaxima
        let limits = try LimitTable.resolve(requested, defaults: Limits(), maxima: maxima)
        #expect(limits[key] == value)

        if row.minimum > .whole(0) {
            let below: LimitValue = row.unit.isWhole ? .whole(row.minimum.whole - 1) : .cores(row.minimum.cores / 2)
            #expect(throws: JailError.self) { try LimitTable.resolve(RequestedLimits([key: below]), defaults: Limits(), maxima: maxima) }
            do {
                _ = try LimitTable.resolve(RequestedLimits([key: below]), defaults: Limits(), maxima: maxima)
            } catch {
                #expect(error.field == "limits.\(key)" && error.message.hasPrefix("limits.\(key) must be at least"), "\(error)")
            }
        }
        let maximum = try #require(LimitTable.maximum(of: row, in: maxima), "\(key) has no maximum at all")
        let above: LimitValue = row.unit.isWhole ? .whole(maximum.whole + 1) : .cores(maximum.cores + 1)
        do {
            _ = try LimitTable.resolve(RequestedLimits([key: above]), defaults: Limits(), maxima: maxima)
            Issue.record("\(key) above its maximum was accepted")
        } catch {
            #expect(error.field == "limits.\(key)", "\(error)")
        }
    }

    @Test("an unknown limit is refused, and the refusal lists every row")
    func unknownListsRows() {
        #expect(LimitCodingKey(stringValue: "walltime") == nil)
        #expect(LimitCodingKey.allCases.map(\.stringValue) == LimitTable.rows.map(\.key.rawValue))
    }

    @Test("every row is in the request schema with its minimum, maximum and default, and in the echo's schema")
    func schemas() throws {
        let maxima = LimitTable.defaultMaxima
        let schema = LimitSchema.request(defaults: Limits(), maxima: maxima)
        #expect(schema.keys == LimitTable.rows.map(\.key))
        #expect(LimitSchema.echo.keys == LimitTable.rows.map(\.key))
        let json = try #require(try JSONSerialization.jsonObject(with: Data(schema.jsonText.utf8)) as? [String: Any])
        #expect(json["additionalProperties"] as? Bool == false)
        let properties = try #require(json["properties"] as? [String: [String: Any]])
        for row in LimitTable.rows {
            let property = try #require(properties[row.key.rawValue])
            #expect(property["type"] as? String == (row.unit.isWhole ? "integer" : "number"))
            #expect((property["minimum"] as? NSNumber)?.doubleValue == row.minimum.cores)
            #expect((property["maximum"] as? NSNumber)?.doubleValue == LimitTable.maximum(of: row, in: maxima)?.cores)
            #expect((property["default"] as? NSNumber)?.doubleValue == row.defaultValue?.cores)
            #expect((property["description"] as? String)?.isEmpty == false)
        }
    }

    @Test("the documented maxima leave the host's CPU count out; a server's have it")
    func hostMaxima() throws {
        #expect(LimitTable.documentedMaxima.cpus == nil)
        #expect(LimitTable.defaultMaxima.cpus == Double(ProcessInfo.processInfo.activeProcessorCount))
        #expect(LimitTable.defaultMaxima.memoryBytes == 2 << 30)
        #expect(try LimitTable.maxima(fromFlags: [.memoryBytes: "8G"]).memoryBytes == 8 << 30)
        #expect(throws: JailError.self) { try LimitTable.maxima(fromFlags: [.memoryBytes: "1M"]) }
        #expect(throws: JailError.self) { try LimitTable.maxima(fromFlags: [.timeoutMs: "100000"]) }
    }

    @Test("every row is echoed with the value in force, by its key, and read back from the echo")
    func echo() throws {
        var limits = Limits()
        for row in LimitTable.rows { limits[row.key] = Self.other(row, than: limits[row.key]) }
        let applied = JailResult.AppliedLimits(limits)
        let encoded = try JSONEncoder().encode(applied)
        let json = try #require(try JSONSerialization.jsonObject(with: encoded) as? [String: Any])
        for row in LimitTable.rows {
            #expect(applied[row.key] == limits[row.key], "\(row.key) is not echoed")
            #expect(json[row.key.rawValue] != nil, "\(row.key) is not in the echo's JSON")
        }
        #expect(try JSONDecoder().decode(JailResult.AppliedLimits.self, from: encoded) == applied)
        // A result sealed before a row existed lacks it, and still reads.
        let old = try JSONDecoder().decode(JailResult.AppliedLimits.self, from: Data(#"{"timeout_ms":5,"memory_bytes":6,"pids":7,"disk_bytes":8,"output_bytes":9}"#.utf8))
        #expect(old.timeoutMs == 5 && old.pids == 7 && old.shmBytes == nil)
        // The defaults echo exactly what `sealbox run --json` always showed.
        let defaults = try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(JailResult.AppliedLimits(Limits()))) as? [String: Any])
        #expect(defaults["timeout_ms"] as? Int == 10_000 && defaults["memory_bytes"] as? Int == 256 << 20 && defaults["pids"] as? Int == 64)
        #expect(defaults["disk_bytes"] as? Int == 64 << 20 && defaults["output_bytes"] as? Int == 1 << 20 && defaults["shm_bytes"] as? Int == 64 << 20)
        #expect(defaults["cpus"] == nil)
    }

    @Test("the validator holds every row to its minimum, naming it", arguments: LimitTable.rows.filter { $0.minimum > .whole(0) }.map(\.key))
    func validated(key: LimitKey) throws {
        let row = try #require(LimitTable.row(key))
        var spec = JailSpec(command: ["/bin/true"])
        spec.limits[key] = row.unit.isWhole ? .whole(row.minimum.whole - 1) : .cores(row.minimum.cores / 2)
        do {
            try SpecValidator.validate(spec)
            Issue.record("\(key) below its minimum passed the validator")
        } catch {
            #expect(error.code == .invalidSpec && error.field == "limits.\(key)" && error.message.hasPrefix(row.title), "\(error)")
        }
    }

    @Test("a pooled jail fits a run only when every limit that shapes a jail is equal", arguments: LimitTable.rows.map(\.key))
    func poolFit(key: LimitKey) throws {
        let row = try #require(LimitTable.row(key))
        var theirs = Limits()
        theirs[key] = Self.other(row, than: Limits().inForce(row))
        #expect(LimitTable.sameJail(Limits(), Limits()))
        #expect(LimitTable.sameJail(theirs, Limits()) == !row.shapesPooledJail, "\(key)")
        // What is fixed in a prepared jail is what the jail itself enforces.
        #expect(row.shapesPooledJail == (row.enforcement != .supervisor), "\(key)")
    }

    @Test("every rlimit row is in the C request's rlimits, at most the hard limit")
    func rlimits() {
        var limits = Limits()
        for row in LimitTable.rows { limits[row.key] = Self.other(row, than: limits[row.key]) }
        let planned = RlimitPlan.make(limits)
        for row in LimitTable.rows {
            guard case .rlimit(let resource) = row.enforcement else { continue }
            let entry = planned.last { $0.resource == resource }
            let expected = min(limits[row.key]?.whole ?? 0, LimitTable.hardLimit(resource))
            #expect(entry?.soft == expected && entry?.hard == expected, "\(row.key): \(String(describing: entry))")
        }
    }

    @Test("flags read sizes, seconds, counts and cores, and name the flag when they refuse")
    func flags() throws {
        let limits = try LimitTable.limits(fromFlags: [.timeoutMs: "2.5", .memoryBytes: "128M", .pids: "16", .cpus: "0.5", .shmBytes: "3M"])
        #expect(limits.timeoutMs == 2500 && limits.memoryBytes == 128 << 20 && limits.pids == 16 && limits.cpus == 0.5 && limits.shmBytes == 3 << 20)
        #expect(limits.diskBytes == Limits().diskBytes)
        for (given, fragment) in [([LimitKey.timeoutMs: "0"], "--timeout must be between 0.001 and 86400 seconds"),
                                  ([.memoryBytes: "12Q"], "invalid size \"12Q\" for --memory"),
                                  ([.memoryBytes: "1M"], "--memory must be at least 4M"),
                                  ([.pids: "many"], "--pids expects a whole number")] {
            do {
                _ = try LimitTable.limits(fromFlags: given)
                Issue.record("\(given) was accepted")
            } catch {
                #expect(error.message.contains(fragment), "\(error)")
            }
        }
    }
}
