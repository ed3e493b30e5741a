import SealboxBroker

/// The broker's limit counters (`BrokerLimits`), asked of the server's broker over its control
/// socket at each scrape; nothing when there is no broker or it does not answer within a second.
enum BrokerMetrics {
    static let quotas = ["calls", "effect_bytes", "pending_approvals"]

    static func render(controlSocket: String?) async -> String {
        guard let controlSocket,
              let status = try? await BrokerControlClient.ask(ControlRequest(op: "status"), socket: controlSocket, timeoutSeconds: 1),
              let counters = status.limits else { return "" }
        var out = """
            # HELP sealbox_broker_throttled_total Times a run's connection was read later, or its call held back, because the run or its tenant sent faster than the broker's limits.
            # TYPE sealbox_broker_throttled_total counter
            sealbox_broker_throttled_total \(counters.throttled)
            # HELP sealbox_broker_quota_refusals_total Tool calls refused with quota_exceeded, by quota (nothing recorded or sent).
            # TYPE sealbox_broker_quota_refusals_total counter

            """
        for quota in quotas {
            out += "sealbox_broker_quota_refusals_total{quota=\"\(quota)\"} \(counters.refused[quota, default: 0])\n"
        }
        return out
    }
}
