import Foundation
import Logging
import OTel
import ServiceLifecycle
import Synchronization
import Tracing

/// OTLP trace export for one sealbox process (`serve`, `mcp`, `run`, `broker`), on swift-otel.
///
/// Off unless the standard variables ask for it: `OTEL_TRACES_EXPORTER` (anything but `none`),
/// `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`; `OTEL_SDK_DISABLED=true`
/// turns it off again. Off means no bootstrap at all: the tracer stays swift-distributed-tracing's
/// no-op one, so every span in sealbox costs a call that does nothing. On, swift-otel reads the
/// rest of the `OTEL_*` variables itself (protocol, sampler, batch delay, service name,
/// resource attributes). Only traces: logs and metrics keep their own backends (the JSON log
/// lines, Prometheus at /metrics), and swift-log and swift-metrics allow one bootstrap each.
public enum TracingExport {
    /// Whether the environment asks for trace export.
    public static func isRequested(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        if let disabled = environment["OTEL_SDK_DISABLED"], disabled.lowercased() == "true" { return false }
        if let exporter = environment["OTEL_TRACES_EXPORTER"], !exporter.isEmpty { return exporter.lowercased() != "none" }
        return [environment["OTEL_EXPORTER_OTLP_ENDPOINT"], environment["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]]
            .contains { $0.map { !$0.isEmpty } ?? false }
    }

    /// swift-distributed-tracing takes one bootstrap per process.
    private static let bootstrapped = Mutex(false)

    /// Bootstraps tracing when the environment asks for it and returns the exporter's service,
    /// to run in the process's `ServiceGroup` (it exports in batches and flushes what is left
    /// on graceful shutdown). nil: export is off, or the configuration was refused (said to
    /// `diagnostics`, and the process goes on untraced: telemetry never stops the service).
    /// `serviceName`: the default of `OTEL_SERVICE_NAME`.
    public static func bootstrap(serviceName: String, diagnostics: Logger,
                                 environment: [String: String] = ProcessInfo.processInfo.environment) -> (any Service)? {
        guard isRequested(environment) else { return nil }
        guard bootstrapped.withLock({ done in defer { done = true }; return !done }) else { return nil }
        var configuration = OTel.Configuration.default
        configuration.serviceName = serviceName
        configuration.logs.enabled = false
        configuration.metrics.enabled = false
        // Warnings and errors only (OTEL_LOG_LEVEL may lower it), through a handler that drops
        // the "carrier" swift-otel attaches when a traceparent is malformed: for an API request
        // that carrier is the request's headers, Authorization included.
        configuration.diagnosticLogLevel = .warning
        configuration.diagnosticLogger = .custom(Logger(label: "swift-otel") { _ in CarrierDroppingLogHandler(base: diagnostics.handler) })
        do {
            return try OTel.bootstrap(configuration: configuration, environment: environment)
        } catch {
            diagnostics.error("tracing is off: the OTEL_* configuration was refused: \(error)")
            return nil
        }
    }

    /// For a command that is not a long-lived service (`sealbox run`, `mcp`, `broker`): exports
    /// while `body` runs, then flushes and stops before returning. Without export, just `body`.
    public static func whileRunning<T>(serviceName: String, diagnostics: Logger = stderrDiagnostics,
                                       _ body: () async throws -> T) async throws -> T {
        guard let service = bootstrap(serviceName: serviceName, diagnostics: diagnostics) else { return try await body() }
        let group = ServiceGroup(configuration: .init(services: [service], gracefulShutdownSignals: [], logger: diagnostics))
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let outcome: Result<T, any Error>
            do {
                outcome = .success(try await body())
            } catch {
                outcome = .failure(error)
            }
            // Flushes the spans still batched (swift-otel's processor does on shutdown).
            await group.triggerGracefulShutdown()
            try? await tasks.waitForAll()
            return try outcome.get()
        }
    }
}

extension TracingExport {
    /// Diagnostics of a command whose stderr is for people (`sealbox run`, `mcp`, `broker`).
    public static var stderrDiagnostics: Logger {
        Logger(label: "sealbox-tracing") { label in StreamLogHandler.standardError(label: label) }
    }
}

/// Forwards swift-otel's diagnostics to `base` without the "carrier" metadata (see `bootstrap`).
struct CarrierDroppingLogHandler: LogHandler {
    var base: any LogHandler

    var metadataProvider: Logger.MetadataProvider? {
        get { base.metadataProvider }
        set { base.metadataProvider = newValue }
    }
    var metadata: Logger.Metadata {
        get { base.metadata }
        set { base.metadata = newValue }
    }
    var logLevel: Logger.Level {
        get { base.logLevel }
        set { base.logLevel = newValue }
    }
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { base[metadataKey: key] }
        set { base[metadataKey: key] = newValue }
    }

    func log(event: LogEvent) {
        var event = event
        event.metadata?["carrier"] = nil
        base.log(event: event)
    }
}
