import ArgumentParser
import SealboxBase
import SealboxServer

/// `sealbox serve`'s settings for live sandboxes (POST /v1/sandboxes).
struct SandboxOptions: ParsableArguments {
    @Option(name: .customLong("max-sandboxes"), help: "Live sandboxes at once on this server; past it, 429.")
    var maxSandboxes: Int = SandboxLimits().maxLive

    @Option(name: .customLong("max-sandboxes-per-tenant"), help: "Live sandboxes at once for one tenant; past it, 429.")
    var maxSandboxesPerTenant: Int = SandboxLimits().maxLivePerTenant

    @Option(name: .customLong("sandbox-idle-timeout"), help: "A sandbox with nothing running in it and no file transferred is ended after this long, e.g. 5m (a request may ask for another, up to --sandbox-max-idle-timeout).")
    var idleTimeout: String = "5m"

    @Option(name: .customLong("sandbox-max-idle-timeout"), help: "The longest idle timeout a request may ask for, e.g. 1h.")
    var maxIdleTimeout: String = "1h"

    @Option(name: .customLong("sandbox-max-lifetime"), help: "Every sandbox is ended this long after it was made, busy or not, e.g. 24h.")
    var maxLifetime: String = "24h"

    @Option(name: .customLong("max-sandbox-commands"), help: "Commands running at once in one sandbox; past it, 429.")
    var maxCommands: Int = SandboxLimits().maxCommandsPerSandbox

    @Option(name: .customLong("max-hibernated"), help: "Hibernated sandboxes kept on disk (STATE-DIR/hibernated); past it, 429.")
    var maxHibernated: Int = SandboxLimits().maxHibernated

    @Option(name: .customLong("max-hibernated-per-tenant"), help: "Hibernated sandboxes kept for one tenant; past it, 429.")
    var maxHibernatedPerTenant: Int = SandboxLimits().maxHibernatedPerTenant

    func limits() throws -> SandboxLimits {
        var limits = SandboxLimits()
        guard (0...4096).contains(maxSandboxes) else { throw CLIFailure(message: "--max-sandboxes must be between 0 and 4096") }
        guard (0...maxSandboxes).contains(maxSandboxesPerTenant) else {
            throw CLIFailure(message: "--max-sandboxes-per-tenant must be between 0 and --max-sandboxes (\(maxSandboxes))")
        }
        guard (1...256).contains(maxCommands) else { throw CLIFailure(message: "--max-sandbox-commands must be between 1 and 256") }
        guard (0...100_000).contains(maxHibernated) else { throw CLIFailure(message: "--max-hibernated must be between 0 and 100000") }
        guard (0...maxHibernated).contains(maxHibernatedPerTenant) else {
            throw CLIFailure(message: "--max-hibernated-per-tenant must be between 0 and --max-hibernated (\(maxHibernated))")
        }
        limits.maxHibernated = maxHibernated
        limits.maxHibernatedPerTenant = maxHibernatedPerTenant
        limits.maxLive = maxSandboxes
        limits.maxLivePerTenant = maxSandboxesPerTenant
        limits.maxCommandsPerSandbox = maxCommands
        limits.maxIdleTimeoutMs = try Self.duration(maxIdleTimeout, flag: "--sandbox-max-idle-timeout", at: 1000...86_400_000)
        limits.defaultIdleTimeoutMs = try Self.duration(idleTimeout, flag: "--sandbox-idle-timeout", at: 1000...limits.maxIdleTimeoutMs)
        limits.maxLifetimeMs = try Self.duration(maxLifetime, flag: "--sandbox-max-lifetime", at: 1000...(30 * 86_400_000))
        return limits
    }

    static func duration(_ text: String, flag: String, at range: ClosedRange<Int64>) throws -> Int64 {
        guard let ms = DurationText.milliseconds(text), range.contains(Int64(ms)) else {
            throw CLIFailure(message: "\(flag) must be a duration between \(DurationText.format(milliseconds: Int(range.lowerBound))) and \(DurationText.format(milliseconds: Int(range.upperBound))) (e.g. 90s, 5m, 2h), got \"\(Printable.text(text, limit: 32))\"")
        }
        return Int64(ms)
    }
}
