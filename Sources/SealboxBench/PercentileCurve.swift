import Foundation

/// A latency distribution drawn as a percentile curve (latency against percentile, the x axis
/// stretched towards the tail the way HdrHistogram plots are: position = log10(1 / (1 - p))),
/// as a self-contained SVG a person can open in a browser.
struct PercentileCurve {
    let title: String
    let latenciesMs: [Double]

    /// Percentiles marked on the x axis.
    static let ticks: [Double] = [0, 50, 90, 99, 99.9, 99.99]

    func svg(width: Double = 800, height: Double = 480) -> String {
        let sorted = latenciesMs.sorted()
        let left = 70.0, right = 20.0, top = 40.0, bottom = 50.0
        let plotW = width - left - right, plotH = height - top - bottom
        // The tail the data can show: 1/n is the finest percentile step n samples resolve.
        let n = Double(max(sorted.count, 1))
        let maxX = log10(max(n, 10))
        let xOf = { (p: Double) -> Double in left + plotW * min(log10(1 / max(1 - p / 100, 1 / n)) / maxX, 1) }
        let maxY = Self.niceCeiling(sorted.last ?? 1)
        let yOf = { (ms: Double) -> Double in top + plotH * (1 - min(ms / maxY, 1)) }

        var points: [String] = []
        for (i, value) in sorted.enumerated() {
            let p = Double(i) / n * 100
            points.append(String(format: "%.1f,%.1f", xOf(p), yOf(value)))
        }
        if let last = sorted.last { points.append(String(format: "%.1f,%.1f", left + plotW, yOf(last))) }

        var svg = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="sans-serif" font-size="12">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(Int(width / 2))" y="22" text-anchor="middle" font-size="14">\(Self.escape(title))</text>

            """
        // y grid and labels
        for i in 0...5 {
            let ms = maxY * Double(i) / 5
            let y = yOf(ms)
            svg += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", left, y, left + plotW, y)
            svg += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%@</text>\n", left - 6, y + 4, Self.format(ms))
        }
        // x ticks
        for p in Self.ticks where p == 0 || 1 / (1 - p / 100) <= n {
            let x = xOf(p)
            svg += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", x, top, x, top + plotH)
            svg += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">p%@</text>\n", x, top + plotH + 18, Self.format(p))
        }
        svg += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">percentile</text>\n", left + plotW / 2, height - 8)
        svg += String(format: "<text x=\"16\" y=\"%.1f\" text-anchor=\"middle\" transform=\"rotate(-90 16 %.1f)\">latency (ms)</text>\n", top + plotH / 2, top + plotH / 2)
        svg += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#888\"/>\n", left, top, plotW, plotH)
        svg += "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" points=\"\(points.joined(separator: " "))\"/>\n"
        svg += "</svg>\n"
        return svg
    }

    /// A round number (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of ten) at or above `value`.
    static func niceCeiling(_ value: Double) -> Double {
        guard value > 0 else { return 1 }
        let magnitude = pow(10, floor(log10(value)))
        for step in [1.0, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10] where step * magnitude >= value { return step * magnitude }
        return 10 * magnitude
    }

    static func format(_ v: Double) -> String {
        v == v.rounded() ? String(Int(v)) : String(format: "%g", v)
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}
