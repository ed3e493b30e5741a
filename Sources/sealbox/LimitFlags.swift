import ArgumentParser
import SealboxJail

/// The limit flags, one per row of `LimitTable`: nothing here names a limit.
///
/// ArgumentParser finds a type's options by reflecting an instance (`Mirror`) and reads them
/// back by decoding it with the same names. These types reflect the table's rows as
/// `Option`s, and decode by the same keys, so a new row is a new flag, with its help.
/// Values arrive as text and are read by `LimitTable` (sizes with the one `ByteSize` parser,
/// seconds for milliseconds), which names the flag in every error.
private struct RowKey: CodingKey {
    let stringValue: String
    var intValue: Int? { nil }
    init(_ key: LimitKey) { stringValue = key.rawValue }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

private func decodeGiven(_ decoder: any Decoder, rows: [LimitRow]) throws -> [LimitKey: String] {
    let container = try decoder.container(keyedBy: RowKey.self)
    var given: [LimitKey: String] = [:]
    for row in rows {
        if let text = try container.decode(Option<String?>.self, forKey: RowKey(row.key)).wrappedValue { given[row.key] = text }
    }
    return given
}

/// `sealbox run`'s limits (and `profile learn`'s, `profile test`'s): `--timeout`, `--memory`, ….
struct RunLimitFlags: ParsableArguments, CustomReflectable {
    /// The text of each flag given, by row key.
    private(set) var given: [LimitKey: String] = [:]

    init() {}

    init(from decoder: any Decoder) throws {
        given = try decodeGiven(decoder, rows: LimitTable.rows)
    }

    var customMirror: Mirror {
        Mirror(self, children: LimitTable.rows.map { row in
            (label: row.key.rawValue,
             value: Option<String?>(name: .customLong(row.flag), help: ArgumentHelp(LimitTable.flagHelp(row), valueName: row.unit.flagValueName)) as Any)
        })
    }

    /// The limits the flags ask for, over the defaults.
    func limits() throws -> Limits {
        do {
            return try LimitTable.limits(fromFlags: given)
        } catch {
            throw CLIFailure(message: error.description)
        }
    }
}

/// The most a request may ask for, set by the operator of `serve` and `mcp`: `--max-timeout`,
/// `--max-memory`, …, one per row with an operator maximum. A request above one of them is
/// refused with an error naming the field, not clamped.
struct OperatorLimitOptions: ParsableArguments, CustomReflectable {
    private static var rows: [LimitRow] { LimitTable.rows.filter { $0.operatorFlag != nil } }

    /// The text of each flag given, by row key.
    private(set) var given: [LimitKey: String] = [:]

    init() {}

    init(from decoder: any Decoder) throws {
        given = try decodeGiven(decoder, rows: Self.rows)
    }

    var customMirror: Mirror {
        Mirror(self, children: Self.rows.map { row in
            (label: row.key.rawValue,
             value: Option<String?>(name: .customLong(row.operatorFlag ?? row.flag),
                                    help: ArgumentHelp(LimitTable.operatorFlagHelp(row), valueName: row.unit.flagValueName)) as Any)
        })
    }

    /// The operator's maxima on this host (see `LimitTable.operatorMaxima`).
    func limits() throws -> Limits {
        do {
            return try LimitTable.maxima(fromFlags: given)
        } catch {
            throw CLIFailure(message: error.description)
        }
    }
}
