// The transport over real loopback sockets: envelopes with tensor frames (fp32 and bfloat16,
// zero-copy), invalid messages answered and skipped, connection errors with their reason.
import Foundation
import Numerics
import Transport
import Wire
import XCTest

/// A ROUTER messenger ("server-0") and a DEALER messenger named `name` connected over TCP
/// loopback for run "run", both sealing under `secret` when one is given; and the DEALER's
/// socket, for sending frames by hand.
func loopbackPair(worker name: String, sealedWith secret: [UInt8]? = nil) throws -> (server: Messenger, worker: Messenger, dealer: ZMQSocket) {
    let context = ZMQContext()
    let router = try ZMQSocket(context, .router)
    let endpoint = try router.bind("tcp://127.0.0.1:*")
    let dealer = try ZMQSocket(context, .dealer)
    try dealer.setIdentity(name)
    try dealer.connect(endpoint)
    func sealing() -> FrameSealing? { secret.map { FrameSealing(runSecret: $0, runID: "run") } }
    return (
        Messenger(socket: router, runID: "run", sender: "server-0", routed: true, sealing: sealing()),
        Messenger(socket: dealer, runID: "run", sender: name, routed: false, sealing: sealing()), dealer
    )
}

final class TransportTests: XCTestCase {
    final class Owned { let values: [Float]; init(_ v: [Float]) { values = v } }

    func testEnvelopeAndTensorFramesCrossLoopback() throws {
        let (server, worker, _) = try loopbackPair(worker: "worker-7")

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

/// The sealed data plane: frames cross as ciphertext and arrive intact; a frame tampered with,
/// moved, dropped, turned around, replayed or sealed under another run's key is refused, and
/// the next good message still arrives.
final class FrameSealingTests: XCTestCase {
    let secret = [UInt8](repeating: 7, count: 32)

    func testSealedFramesArriveIntactBothWaysAndAreNotPlaintextOnTheWire() throws {
        let (server, worker, _) = try loopbackPair(worker: "worker-3", sealedWith: secret)
        let values = (0..<700_000).map { Float($0) * 0.25 - 7 }  // 2.7 MB: three segments, sealed in parallel
        let buffer = FloatBuffer(count: values.count)
        for (i, v) in values.enumerated() { buffer[i] = v }
        try worker.send(.push(step: 2, chunks: [0], shard: 3, version: 1), tensors: [OutgoingTensor(buffer)])
        let got = try XCTUnwrap(try server.receive(timeout: 5))
        XCTAssertEqual(got.envelope.body, .push(step: 2, chunks: [0], shard: 3, version: 1))
        XCTAssertEqual(got.tensors.map(\.count), [values.count * 4])
        var back = [Float](repeating: 0, count: values.count)
        got.tensors[0].copyFloats(into: &back)
        XCTAssertEqual(back, values)
        try server.send(.pushAck(step: 2), to: got.identity, tensors: [OutgoingTensor(buffer, range: 10..<20)])
        let reply = try XCTUnwrap(try worker.receive(timeout: 5))
        XCTAssertEqual(reply.envelope.body, .pushAck(step: 2))
        XCTAssertEqual(reply.tensors[0].floats.map { $0 }, Array(values[10..<20]))

        // What travels: the envelope's and the values' bytes appear nowhere in the frames.
        let sealing = FrameSealing(runSecret: secret, runID: "run")
        let context = ZMQContext()
        let sink = try ZMQSocket(context, .pull), source = try ZMQSocket(context, .push)
        try source.connect(try sink.bind("tcp://127.0.0.1:*"))
        let plain = Array("a readable envelope".utf8)
        try values.withUnsafeBytes { v in
            try source.send(sealing.seal(.toServer, worker: Array("worker-3".utf8), envelope: plain, tensors: [(v.baseAddress!, 64)]))
        }
        let wire = try XCTUnwrap(try sink.receive(timeout: 5))
        XCTAssertEqual(wire.map(\.count), [plain.count + 28, 64 + 28])  // a nonce and one tag each
        XCTAssertNil(wire[0].bytes.firstRange(of: plain.prefix(8)))
        let first = values.prefix(16).withUnsafeBytes { Array($0) }
        XCTAssertNil(wire[1].bytes.firstRange(of: first.prefix(8)))
    }

    /// Each hostile message below is refused with its reason; the good one after it arrives.
    func testTamperedMovedDroppedReflectedReplayedOrForeignFramesAreRefused() throws {
        let (server, worker, raw) = try loopbackPair(worker: "worker-3", sealedWith: secret)
        let attacker = FrameSealing(runSecret: secret, runID: "run")  // a sealer with the key, for the misplacement cases
        let me = Array("worker-3".utf8)
        let values = [Float](repeating: 1.5, count: 1000)
        func envelope(_ step: Int) -> [UInt8] { Wire.encode(Envelope(runID: "run", sender: "worker-3", seq: UInt64(step), body: .heartbeat(step: step))) }
        func frames(_ direction: FrameSealing.Direction = .toServer, worker: [UInt8]? = nil, step: Int = 1, tensors: Int = 2) -> [OutgoingFrame] {
            values.withUnsafeBytes { v in
                attacker.seal(direction, worker: worker ?? me, envelope: envelope(step), tensors: Array(repeating: (v.baseAddress!, v.count), count: tensors))
            }
        }
        func refused(_ send: () throws -> Void, _ reason: String, file: StaticString = #filePath, line: UInt = #line) throws {
            try send()
            try worker.send(.heartbeat(step: 99))
            var problems: [String] = []
            let got = try XCTUnwrap(try server.receive(timeout: 5) { problems.append($0) }, file: file, line: line)
            XCTAssertEqual(got.envelope.body, .heartbeat(step: 99), file: file, line: line)
            XCTAssertEqual(problems.count, 1, "\(problems)", file: file, line: line)
            XCTAssertTrue(problems.first?.contains(reason) == true, "\(problems) should say \(reason)", file: file, line: line)
            _ = try worker.receive(timeout: 0.2)  // the error reply, sealed for this worker
        }
        // A flipped byte in a tensor frame.
        func altered(_ frames: [OutgoingFrame], at index: Int, _ change: @escaping (UnsafeMutableRawBufferPointer) -> Void, count: Int? = nil) -> [OutgoingFrame] {
            var out = frames
            guard case let .filled(full, fill) = out[index] else { preconditionFailure("a sealed frame is filled in place") }
            out[index] = .filled(count: count ?? full) { o in
                let whole = UnsafeMutableRawBufferPointer.allocate(byteCount: full, alignment: 16)
                defer { whole.deallocate() }
                guard fill(whole) else { return false }
                change(whole)
                o.copyMemory(from: UnsafeRawBufferPointer(rebasing: whole[..<o.count]))
                return true
            }
            return out
        }
        try refused({ try raw.send(altered(frames(), at: 2, { $0[100] ^= 1 })) }, "frame 2 does not open")
        // A byte of the third 1 MiB segment of a big frame, or the frame cut short by a segment.
        let big = [Float](repeating: 2, count: 700_000)
        func bigFrames() -> [OutgoingFrame] {
            big.withUnsafeBytes { attacker.seal(.toServer, worker: me, envelope: envelope(4), tensors: [($0.baseAddress!, $0.count)]) }
        }
        try refused({ try raw.send(altered(bigFrames(), at: 1, { $0[12 + 2_500_000] ^= 0x80 })) }, "frame 1 does not open")
        try refused({ try raw.send(altered(bigFrames(), at: 1, { _ in }, count: FrameSealing.sealedCount(2 << 20))) }, "frame 1 does not open")
        try refused({ try raw.send(altered(bigFrames(), at: 1, { _ in }, count: FrameSealing.segmentBytes + 29)) }, "whole segments")
        // The same frames untouched open (so the refusal above was the flipped byte).
        try raw.send(frames(step: 3))
        XCTAssertEqual(try server.receive(timeout: 5)?.envelope.body, .heartbeat(step: 3))
        // Tensor frames swapped, or the last one dropped (the envelope counts the frames).
        let swapped = frames()
        try refused({ try raw.send([swapped[0], swapped[2], swapped[1]]) }, "frame 1 does not open")
        try refused({ try raw.send(Array(frames().prefix(2))) }, "frame 0 does not open")
        // Sealed for another worker's connection, or the other way (a server's frame sent back).
        try refused({ try raw.send(frames(worker: Array("worker-4".utf8))) }, "frame 0 does not open")
        try refused({ try raw.send(frames(.toWorker)) }, "frame 0 does not open")
        // Under another run's key, or not sealed at all.
        let other = FrameSealing(runSecret: secret, runID: "another-run")
        try refused({ try raw.send(other.seal(.toServer, worker: me, envelope: envelope(1), tensors: [])) }, "frame 0 does not open")
        try refused({ try raw.send([.bytes(envelope(1) + envelope(2))]) }, "frame 0 does not open")
        try refused({ try raw.send([.bytes([1, 2, 3])]) }, "not a nonce, whole segments and their tags")
        // The same sealed message twice: the second is a replay.
        let once = frames(step: 5)
        try raw.send(once)
        XCTAssertEqual(try server.receive(timeout: 5)?.envelope.body, .heartbeat(step: 5))
        try refused({ try raw.send(once) }, "replayed")
    }
}
