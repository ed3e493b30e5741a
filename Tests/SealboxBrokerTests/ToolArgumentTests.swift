import Foundation
import SealboxTestSupport
import Testing
@testable import SealboxBroker
import SealboxBase
import SealboxLedger

/// Argument validation: every call is checked against the declared args before anything runs.
@Suite struct ToolArgumentTests {
    static let yaml = """
    tools:
      create_issue:
        kind: http
        method: POST
        url: "http://127.0.0.1:PORT/repos/{owner}/{repo}/issues"
        allow_hosts: [127.0.0.1]
        args:
          owner: { type: string, pattern: "^[A-Za-z0-9_.-]{1,100}$" }
          repo:  { type: string, pattern: "^[A-Za-z0-9_.-]{1,100}$" }
          title: { type: string, max_length: 10, min_length: 2 }
          labels: { type: array, optional: true, max_items: 2 }
          count: { type: integer, optional: true, minimum: 1, maximum: 5 }
          ratio: { type: number, optional: true }
          draft: { type: boolean, default: false }
          priority: { type: string, optional: true, enum: [low, high] }
          meta: { type: object, optional: true }
        effect: irreversible
    """

    static let good: [String: JSONValue] = ["owner": .string("octo"), "repo": .string("hello"), "title": .string("Bug")]

    static func with(_ changes: [String: JSONValue?]) -> [String: JSONValue] {
        var args = good
        for (k, v) in changes { args[k] = v }
        return args
    }

    static let cases: [(String, [String: JSONValue], String)] = [
        ("unknown argument", with(["owner2": .string("x")]),
         "unknown argument \"owner2\" (arguments: count, draft, labels, meta, owner, priority, ratio, repo, title)"),
        ("missing required", with(["title": nil]), "missing required argument \"title\""),
        ("null for a required argument", with(["title": .null]), "argument \"title\": expected string, got null"),
        ("number for string", with(["title": .number(5)]), "argument \"title\": expected string, got integer"),
        ("string for integer", with(["count": .string("3")]), "argument \"count\": expected integer, got string"),
        ("fraction for integer", with(["count": .number(2.5)]), "argument \"count\": expected integer, got number"),
        ("string for boolean", with(["draft": .string("true")]), "argument \"draft\": expected boolean, got string"),
        ("object for array", with(["labels": .object([:])]), "argument \"labels\": expected array, got object"),
        ("array for object", with(["meta": .array([])]), "argument \"meta\": expected object, got array"),
        ("pattern mismatch", with(["owner": .string("octo/../x")]), "argument \"owner\": value does not match pattern ^[A-Za-z0-9_.-]{1,100}$"),
        ("pattern and a trailing newline", with(["owner": .string("octo\n")]), "argument \"owner\": value does not match pattern ^[A-Za-z0-9_.-]{1,100}$"),
        ("too long", with(["title": .string("0123456789A")]), "argument \"title\": 11 characters, more than max_length 10"),
        ("too short", with(["title": .string("a")]), "argument \"title\": 1 characters, fewer than min_length 2"),
        ("below minimum", with(["count": .number(0)]), "argument \"count\": 0 is less than minimum 1"),
        ("above maximum", with(["count": .number(6)]), "argument \"count\": 6 is more than maximum 5"),
        ("too many items", with(["labels": .array([.string("a"), .string("b"), .string("c")])]), "argument \"labels\": 3 items, more than max_items 2"),
        ("not in enum", with(["priority": .string("urgent")]), "argument \"priority\": \"urgent\" is not one of \"low\", \"high\""),
    ]

    @Test(arguments: cases.indices)
    func badArgumentsAreRefusedBeforeAnythingIsSent(_ index: Int) async throws {
        let (name, args, message) = Self.cases[index]
        let server = try await WorldServer.start()
        server.setFallback { _ in .json("{}", status: 201) }
        let (runner, tool) = try ToolTestSupport.tool("create_issue", Self.yaml.replacingOccurrences(of: "PORT", with: "\(server.port)"))
        let expected = ToolError(.badRequest, message, happened: false)
        let failure = await ToolTestSupport.toolError { () async throws(ToolError) in
            try await runner.run(tool, args: args, idempotencyKey: "k")
        }
        #expect(failure == expected, "\(name)")
        #expect(throws: expected, "\(name)") { try runner.describeTarget(tool, args: args) }
        #expect(server.requests.isEmpty, "\(name)")
    }

    @Test func goodArgumentsPassWithDefaultsFilledIn() async throws {
        let server = try await WorldServer.start()
        server.setFallback { _ in .json("{}", status: 201) }
        let (runner, tool) = try ToolTestSupport.tool("create_issue", Self.yaml.replacingOccurrences(of: "PORT", with: "\(server.port)"))
        #expect(try runner.validate(tool, args: Self.good) == Self.good.merging(["draft": .bool(false)]) { a, _ in a })
        // An explicit null for an optional argument counts as leaving it out.
        let args = Self.with(["labels": .null, "count": .number(5), "ratio": .number(0.5), "priority": .string("high"),
                              "meta": .object(["k": .string("v")]), "title": .string("ünïcödé!!!")])
        let outcome = try await runner.run(tool, args: args, idempotencyKey: "k")
        #expect(ToolTestSupport.field(outcome.result, "status") == .number(201))
        let seen = try #require(server.requests.first)
        #expect(seen.bodyJSON == .object([
            "title": .string("ünïcödé!!!"), "count": .number(5), "ratio": .number(0.5), "priority": .string("high"),
            "meta": .object(["k": .string("v")]), "draft": .bool(false),
        ]))
    }

    @Test func toolsWithoutArgumentsRefuseAny() throws {
        let (runner, tool) = try ToolTestSupport.tool("ping", """
        tools:
          ping: { kind: command, argv: [/bin/true], effect: read }
        """)
        #expect(throws: ToolError(.badRequest, "unknown argument \"x\" (this tool takes no arguments)", happened: false)) {
            try runner.describeTarget(tool, args: ["x": .string("1")])
        }
        #expect(try runner.describeTarget(tool, args: [:]) == "/bin/true")
    }
}
