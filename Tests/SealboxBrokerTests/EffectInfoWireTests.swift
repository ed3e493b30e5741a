import Foundation
import Testing
@testable import SealboxBroker

/// The family fields of an effect and of open_run, as the jail and the executor read them
/// (moved from the end-to-end SessionFamilyTests: it needs no broker).
@Suite("Session families on the wire")
struct EffectInfoWireTests {
    @Test("from_session is on the wire only when set")
    func effectInfoJSON() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let plain = String(decoding: try encoder.encode(EffectInfo(seq: 3, replayed: false)), as: UTF8.self)
        #expect(plain == #"{"replayed":false,"seq":3}"#)
        let family = String(decoding: try encoder.encode(EffectInfo(seq: 3, replayed: true, completionSeq: 4, fromSession: "s")), as: UTF8.self)
        #expect(family == #"{"completion_seq":4,"from_session":"s","replayed":true,"seq":3}"#)
        let control = String(decoding: try encoder.encode(ControlRequest(op: "open_run", sessionID: "f", sessionRoot: "s")), as: UTF8.self)
        #expect(control == #"{"op":"open_run","session_id":"f","session_root":"s"}"#)
    }
}
