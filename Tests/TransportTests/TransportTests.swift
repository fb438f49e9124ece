// The transport over real loopback sockets: envelopes with tensor frames (fp32 and bfloat16,
// zero-copy), invalid messages answered and skipped, connection errors with their reason.
import Foundation
import Transport
import Wire
import XCTest

final class TransportTests: XCTestCase {
    final class Owned { let values: [Float]; init(_ v: [Float]) { values = v } }

    func testEnvelopeAndTensorFramesCrossLoopback() throws {
        let context = ZMQContext()
        let router = try ZMQSocket(context, .router)
        let endpoint = try router.bind("tcp://127.0.0.1:*")
        let dealer = try ZMQSocket(context, .dealer)
        try dealer.setIdentity("worker-7")
        try dealer.connect(endpoint)
        let server = Messenger(socket: router, runID: "run", sender: "server-0", routed: true)
        let worker = Messenger(socket: dealer, runID: "run", sender: "worker-7", routed: false)

        let big = Owned((0..<1_000_000).map { Float($0) * 0.5 }), small = Owned([1, -2, 3])
        try big.values.withUnsafeBufferPointer { b in
            try small.values.withUnsafeBufferPointer { s in
                try worker.send(
                    .push(step: 1, chunks: [0, 1], shard: 7, version: 0),
                    tensors: [
                        OutgoingTensor(pointer: b.baseAddress!, count: b.count, owner: big),
                        OutgoingTensor(pointer: s.baseAddress!, count: s.count, owner: small)
                    ])
            }
        }
        let got = try XCTUnwrap(try server.receive(timeout: 5))
        XCTAssertEqual(got.identity, Array("worker-7".utf8))
        XCTAssertEqual(got.envelope.body, .push(step: 1, chunks: [0, 1], shard: 7, version: 0))
        XCTAssertEqual(got.envelope.sender, "worker-7")
        XCTAssertEqual(got.tensors.map(\.count), [4_000_000, 12])
        var back = [Float](repeating: 0, count: 3)
        got.tensors[1].copyFloats(into: &back)
        XCTAssertEqual(back, [1, -2, 3])
        got.tensors[0].withUnsafeBytes { XCTAssertEqual($0.load(fromByteOffset: 4 * 999_999, as: Float.self), 499_999.5) }

        try server.send(.pushAck(step: 1), to: got.identity)
        XCTAssertEqual(try worker.receive(timeout: 5)?.envelope.body, .pushAck(step: 1))
        XCTAssertNil(try worker.receive(timeout: 0.05))  // nothing more: a timeout, not a hang
    }

    func testInvalidMessagesAreAnsweredWithAnErrorAndSkipped() throws {
        let context = ZMQContext()
        let router = try ZMQSocket(context, .router)
        let endpoint = try router.bind("tcp://127.0.0.1:*")
        let raw = try ZMQSocket(context, .dealer)
        try raw.connect(endpoint)
        let server = Messenger(socket: router, runID: "run", sender: "coordinator", routed: true)
        let client = Messenger(socket: raw, runID: "run", sender: "w", routed: false)
        try raw.send([.bytes([0xFF, 0x01, 0x02])])  // garbage
        try Messenger(socket: raw, runID: "other-run", sender: "w", routed: false).send(.heartbeat(step: 1))
        try client.send(.heartbeat(step: 2))
        var problems: [String] = []
        let got = try XCTUnwrap(try server.receive(timeout: 5) { problems.append($0) })
        XCTAssertEqual(got.envelope.body, .heartbeat(step: 2))
        XCTAssertEqual(problems.count, 2)
        XCTAssertTrue(problems[1].contains("other-run"))
        // The sender of each bad message was told why.
        for _ in 0..<2 {
            guard case let .error(code, _)? = try client.receive(timeout: 5)?.envelope.body else { return XCTFail("expected an error reply") }
            XCTAssertEqual(code, 400)
        }
    }

    func testConnectionErrorsAreThrownWithTheirReason() throws {
        let context = ZMQContext()
        let s = try ZMQSocket(context, .router)
        XCTAssertThrowsError(try s.bind("nonsense://x")) { XCTAssertTrue("\($0)".contains("bind nonsense://x")) }
    }
}
