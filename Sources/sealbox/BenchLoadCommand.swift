import ArgumentParser
import Foundation
import SealboxBench
import SealboxJail

struct BenchLoadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load",
        abstract: "Fire runs at a running `sealbox serve` and report throughput and latency.",
        discussion: """
            Sends --count POST /v1/runs requests with --concurrency of them in flight
            (each worker keeps one HTTP/1.1 connection open) and reports runs/s, the
            latency of completed runs (201) as p50/p90/p99/max, how many answers had
            each HTTP status and each run status, and connection errors.

            A 429 (the server's queue was full) is counted and reported, never retried:
            the report shows what the server refused at this load. With --concurrency at
            most the server's --max-concurrent plus --max-queued nothing is refused.

            Exit status: 0 when every request was answered 201 or 429; 1 otherwise
            (connection errors, other statuses); 125 for a bad flag.

            Examples:
              sealbox bench load --key-file ./api-key --count 1000 \\
                  --concurrency 16 --lang python --code 'print(6*7)'
              sealbox bench load --url http://10.0.0.5:8080 --key-file ./api-key \\
                  --count 500 -- /bin/true
            """
    )

    @Option(name: .long, help: "The server: http://HOST[:PORT].")
    var url: String = "http://127.0.0.1:8080"

    @Option(name: .long, help: "API key, sent as Authorization: Bearer KEY.")
    var key: String?

    @Option(name: .customLong("key-file"), help: "File holding the API key (surrounding whitespace ignored).")
    var keyFile: String?

    @Option(name: [.customShort("n"), .long], help: "Number of runs to send.")
    var count: Int = 1000

    @Option(name: [.customShort("c"), .long], help: "Requests in flight at once.")
    var concurrency: Int = 16

    @Option(name: .long, help: "Snippet language: \(SnippetLanguage.names). Words after -- become its arguments.")
    var lang: String?

    @Option(name: .long, help: "Snippet source, with --lang.")
    var code: String?

    @Option(name: .customLong("request-timeout"), help: "Seconds to wait for an answer before counting a connection error.")
    var requestTimeout: Int = 120

    @Flag(name: .long, help: "Print one JSON object (runs_per_s, p50_ms, …, http_status, run_status, connection_errors).")
    var json = false

    @Argument(parsing: .postTerminator, help: "Command to run in each jail (default /bin/true), or the snippet's arguments with --lang.")
    var command: [String] = []

    func validate() throws {
        guard (1...1_000_000).contains(count) else { throw ValidationError("--count must be between 1 and 1000000") }
        guard (1...1024).contains(concurrency) else { throw ValidationError("--concurrency must be between 1 and 1024") }
        guard (1...86_400).contains(requestTimeout) else { throw ValidationError("--request-timeout must be between 1 and 86400 seconds") }
        guard (lang == nil) == (code == nil) else { throw ValidationError("--lang and --code go together") }
        if let lang, SnippetLanguage(rawValue: lang) == nil {
            throw ValidationError("unknown --lang \"\(lang)\" (use \(SnippetLanguage.names))")
        }
        guard key == nil || keyFile == nil else { throw ValidationError("give either --key or --key-file, not both") }
    }

    func run() throws {
        let target = try LoadTarget(url: url)
        let request = try LoadRequest(target: target, body: body(), key: try apiKey())
        let plan = LoadPlan(request: request, count: count, concurrency: min(concurrency, count), timeoutSeconds: requestTimeout)
        let report = LoadReport(plan.run(progress: Progress(total: count, label: "load")), plan: plan, url: url, workload: workload)
        if json {
            JSONOutput.print(report)
        } else {
            report.printText()
        }
        if report.connection_errors > 0 || report.http_status.contains(where: { $0.key != "201" && $0.key != "429" }) {
            throw ExitCode(1)
        }
    }

    func body() -> LoadRequest.Body {
        if let lang, let code {
            return LoadRequest.Body(language: lang, code: code, args: command.isEmpty ? nil : command)
        }
        return LoadRequest.Body(command: command.isEmpty ? ["/bin/true"] : command)
    }

    var workload: String {
        if let lang, let code { return "\(lang) `\(code)`" }
        return (command.isEmpty ? ["/bin/true"] : command).joined(separator: " ")
    }

    func apiKey() throws(CLIFailure) -> String? {
        var value = key
        if let keyFile {
            guard let data = FileManager.default.contents(atPath: keyFile) else {
                throw CLIFailure(message: "--key-file \(keyFile): no such readable file")
            }
            value = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        if let value {
            guard !value.isEmpty, value.utf8.count <= 4096, value.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F }) else {
                throw CLIFailure(message: "the API key must be 1-4096 printable ASCII characters without spaces")
            }
        }
        return value
    }
}
