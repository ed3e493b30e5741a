import Foundation
import SealboxLedger

/// `sealbox_effects{class,state}`: calls in the effect log, counted at scrape time with one
/// GROUP BY (`Ledger.callCounts`), so the numbers are exact and survive restarts. Every
/// class × state pair is exported, zeros included, so a series never vanishes and reappears.
/// `sealbox_effect_log_up` is 0 when the log could not be read (then no counts are exported).
enum EffectMetrics {
    static func render(_ log: EffectLogHandle) -> String {
        var out = "# HELP sealbox_effects Calls in the effect log by effect class and state.\n# TYPE sealbox_effects gauge\n"
        let counts: [CallCount]
        do {
            counts = try log.open()?.callCounts() ?? []
        } catch {
            return out + "# HELP sealbox_effect_log_up Whether the effect log could be read for this scrape.\n# TYPE sealbox_effect_log_up gauge\nsealbox_effect_log_up 0\n"
        }
        var table: [String: [String: Int]] = [:]
        for effectClass in EffectClass.allCases {
            for state in CallState.allCases { table[effectClass.rawValue, default: [:]][state.rawValue] = 0 }
        }
        for count in counts { table[count.effectClass, default: [:]][count.state, default: 0] += count.count }
        for (effectClass, states) in table.sorted(by: { $0.key < $1.key }) {
            for (state, n) in states.sorted(by: { $0.key < $1.key }) {
                out += "sealbox_effects{class=\"\(label(effectClass))\",state=\"\(label(state))\"} \(n)\n"
            }
        }
        return out + "# HELP sealbox_effect_log_up Whether the effect log could be read for this scrape.\n# TYPE sealbox_effect_log_up gauge\nsealbox_effect_log_up 1\n"
    }

    /// Label values are escaped per the text format (backslash, quote, newline).
    static func label(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }
}
