// Protocol messages over ZeroMQ: [routing id (ROUTER only)] + one envelope frame + raw
// little-endian fp32 (or, between workers and servers with a bf16 wire, bfloat16) tensor
// frames, each sealed on the sealed data plane (`FrameSealing`). Validation happens here,
// before any role sees a message.
import Foundation
import Numerics
import Wire

/// A message as received: who sent it (ROUTER identity), the envelope, and its tensor frames.
public struct Incoming {
    public let identity: [UInt8]?
    public let envelope: Envelope
    public let tensors: [ReceivedFrame]
    /// The user id the ZAP handler admitted the sender's key under ("" without CURVE).
    public let userID: String
}

/// A tensor to send without copying; `owner` keeps the memory alive until libzmq is done.
public struct OutgoingTensor {
    public let bytes: UnsafeRawPointer
    public let byteCount: Int
    public let owner: AnyObject
    /// `count` fp32 values.
    public init(pointer: UnsafePointer<Float>, count: Int, owner: AnyObject) {
        bytes = UnsafeRawPointer(pointer); byteCount = count * 4; self.owner = owner
    }
    /// A received frame sent on as it came, without a copy (it lives until libzmq is done).
    public init(forwarding frame: ReceivedFrame) {
        bytes = frame.data; byteCount = frame.count; owner = frame
    }
    /// `count` bfloat16 values.
    public init(bf16 pointer: UnsafePointer<UInt16>, count: Int, owner: AnyObject) {
        bytes = UnsafeRawPointer(pointer); byteCount = count * 2; self.owner = owner
    }
    /// `range` of a buffer (all of it by default), which stays alive until libzmq is done.
    public init(_ buffer: FloatBuffer, range: Range<Int>? = nil) {
        let r = range ?? 0..<buffer.count
        precondition(r.lowerBound >= 0 && r.upperBound <= buffer.count)
        self.init(pointer: buffer.baseAddress + r.lowerBound, count: r.count, owner: buffer)
    }
    /// `range` of a bfloat16 buffer (all of it by default).
    public init(_ buffer: BFloat16Buffer, range: Range<Int>? = nil) {
        let r = range ?? 0..<buffer.count
        precondition(r.lowerBound >= 0 && r.upperBound <= buffer.count)
        self.init(bf16: buffer.baseAddress + r.lowerBound, count: r.count, owner: buffer)
    }

    /// Σx² of the values as they go on the wire (fp32, or bfloat16 with `bf16`).
    public func sumOfSquares(bf16: Bool) -> Double { Transport.sumOfSquares(UnsafeRawBufferPointer(start: bytes, count: byteCount), bf16: bf16) }
}

/// Sends and receives envelopes on one socket for one run and one sender name.
public final class Messenger {
    public let socket: ZMQSocket
    public let runID: String
    public let sender: String
    let routed: Bool
    /// Seals every frame sent and opens every frame received (the sealed data plane), or nil.
    let sealing: FrameSealing?
    private var seq: UInt64 = 0

    /// - Parameters:
    ///   - routed: true for ROUTER sockets, whose messages start with a peer identity frame.
    ///   - sealing: for the sealed data plane: a server's ROUTER, or a worker's DEALER whose
    ///     socket identity is `sender` (the worker's identity is part of what each frame's tag covers).
    public init(socket: ZMQSocket, runID: String, sender: String, routed: Bool, sealing: FrameSealing? = nil) {
        self.socket = socket; self.runID = runID; self.sender = sender; self.routed = routed; self.sealing = sealing
    }

    public func send(_ body: Body, to identity: [UInt8]? = nil, tensors: [OutgoingTensor] = []) throws {
        try send(body, to: identity, tensors: tensors, runID: runID)
    }

    private func send(_ body: Body, to identity: [UInt8]?, tensors: [OutgoingTensor], runID: String) throws {
        precondition(routed == (identity != nil), "ROUTER sockets need a destination identity; others must not have one")
        seq += 1
        var frames: [OutgoingFrame] = identity.map { [.bytes($0)] } ?? []
        let envelope = Wire.encode(Envelope(runID: runID, sender: sender, seq: seq, body: body))
        if let sealing {
            let (direction, worker): (FrameSealing.Direction, [UInt8]) = identity.map { (.toWorker, $0) } ?? (.toServer, Array(sender.utf8))
            frames += sealing.seal(direction, worker: worker, envelope: envelope, tensors: tensors.map { ($0.bytes, $0.byteCount) })
        } else {
            frames.append(.bytes(envelope))
            for t in tensors { frames.append(.borrowed(t.bytes, count: t.byteCount, owner: t.owner)) }
        }
        // Sealed frames read the tensors while libzmq builds its messages, inside `send`.
        try withExtendedLifetime(tensors) { try socket.send(frames) }
    }

    /// Receives the next valid message, or nil on timeout.
    ///
    /// Invalid messages (undecodable, wrong run id, missing frames) are answered with an
    /// error (which does not carry the run id) when the sender can be addressed, reported
    /// through `onInvalid`, and skipped.
    public func receive(timeout: Double?, onInvalid: (String) -> Void = { _ in }) throws -> Incoming? {
        let deadline = timeout.map { Date().addingTimeInterval($0) }
        while true {
            let remaining = deadline.map { max(0, $0.timeIntervalSinceNow) }
            guard let frames = try socket.receive(timeout: remaining) else { return nil }
            let identity = routed ? frames.first?.bytes : nil
            let rest = routed ? Array(frames.dropFirst()) : frames
            do {
                if let sealing {
                    if routed, identity == nil { throw WireError("message without a peer identity") }
                    try sealing.open(routed ? .toServer : .toWorker, worker: identity ?? Array(sender.utf8), frames: rest)
                }
                guard let head = rest.first else { throw WireError("message without an envelope frame") }
                let envelope = try head.envelope()
                // A process joining a run learns its id from the Welcome, so its Hello carries none.
                // Error replies to a message that failed validation carry no run id (they must not leak it).
                var joining = false
                if envelope.runID.isEmpty {
                    switch envelope.body {
                    case .hello, .error: joining = true;
                    default: break
                    }
                }
                guard envelope.runID == runID || joining else { throw WireError("message for run \"\(envelope.runID)\", this is run \"\(runID)\"") }
                let tensors = Array(rest.dropFirst())
                guard tensors.count <= Wire.maximumTensorFrames else { throw WireError("\(tensors.count) tensor frames in one message") }
                // Whole fp32 or bfloat16 values; each role checks the exact size its plan expects.
                for (i, t) in tensors.enumerated() where t.count % 2 != 0 || t.count > Wire.maximumChunkBytes {
                    throw WireError("tensor frame \(i) has \(t.count) bytes, not a whole number of values within the chunk limit")
                }
                return Incoming(identity: identity, envelope: envelope, tensors: tensors, userID: head.userID)
            } catch let error as WireError {
                onInvalid(error.description)
                if let identity, routed {
                    try? send(.error(code: 400, message: error.description), to: identity, tensors: [], runID: "")
                }
            }
        }
    }
}

extension ReceivedFrame {
    /// The frame as fp32 values (copied into `destination`, which must hold `count / 4` floats;
    /// check the size with `holds` first).
    public func copyFloats(into destination: UnsafeMutablePointer<Float>) {
        withUnsafeBytes { if $0.count > 0 { UnsafeMutableRawPointer(destination).copyMemory(from: $0.baseAddress!, byteCount: $0.count) } }
    }

    /// The frame's fp32 values, read in place: valid while the frame lives (check the size with `holds` first).
    public var floats: UnsafeBufferPointer<Float> { UnsafeBufferPointer(start: data.assumingMemoryBound(to: Float.self), count: count / 4) }

    /// Whether the frame holds exactly `values` values in the given wire format.
    public func holds(_ values: Int, bf16: Bool) -> Bool { count == values * (bf16 ? 2 : 4) }

    /// Adds the frame's values (fp32, or bfloat16 widened) to `destination` elementwise.
    public func addValues(into destination: UnsafeMutablePointer<Float>, bf16: Bool) {
        withUnsafeBytes { raw in
            guard raw.count > 0 else { return }
            if bf16 {
                let b = raw.baseAddress!.assumingMemoryBound(to: UInt16.self)
                for i in 0..<(raw.count / 2) { destination[i] += float(fromBFloat16: b[i]) }
            } else if Int(bitPattern: raw.baseAddress!) % MemoryLayout<Float>.alignment == 0 {
                let x = raw.baseAddress!.assumingMemoryBound(to: Float.self)
                for i in 0..<(raw.count / 4) { destination[i] += x[i] }
            } else {
                for i in 0..<(raw.count / 4) { destination[i] += raw.loadUnaligned(fromByteOffset: 4 * i, as: Float.self) }
            }
        }
    }

    /// Σx² of the frame's values (fp32, or bfloat16) in float64: not finite exactly when a
    /// value is not (the largest float squared is ~1.2e77), so one pass checks and measures a push.
    public func sumOfSquares(bf16: Bool) -> Double {
        withUnsafeBytes { Transport.sumOfSquares($0, bf16: bf16) }
    }

    /// Adds the frame's values to `destination` (which must hold exactly as many; check with `holds`).
    public func addValues(into destination: FloatBuffer, bf16: Bool) {
        precondition(holds(destination.count, bf16: bf16))
        addValues(into: destination.baseAddress, bf16: bf16)
    }

    /// The frame's values as fp32 into `destination` (which must hold exactly as many; check with `holds`).
    public func copyValues(into destination: FloatBuffer, bf16: Bool) {
        precondition(holds(destination.count, bf16: bf16))
        copyValues(into: destination, at: 0, bf16: bf16)
    }

    /// The frame's values as fp32 into `destination` from `offset` on (they must fit).
    public func copyValues(into destination: FloatBuffer, at offset: Int, bf16: Bool) {
        precondition(offset >= 0 && offset + count / (bf16 ? 2 : 4) <= destination.count, "the frame's values do not fit at \(offset)")
        copyValues(into: destination.baseAddress + offset, bf16: bf16)
    }

    /// The envelope this frame holds (the first frame of a message).
    /// - Throws: `WireError` when it is not one.
    public func envelope() throws -> Envelope { try withUnsafeBytes { try Wire.decode($0) } }

    /// The frame's values as fp32 into `destination`: copied, or widened from bfloat16.
    public func copyValues(into destination: UnsafeMutablePointer<Float>, bf16: Bool) {
        guard bf16 else { return copyFloats(into: destination) }
        withUnsafeBytes { raw in
            if raw.count > 0 { widenBF16(raw.baseAddress!.assumingMemoryBound(to: UInt16.self), into: destination, count: raw.count / 2) }
        }
    }
}

/// Σx² in float64 of wire values (fp32, or bfloat16), summed in one fixed order: the servers'
/// per-push sums and a verifying worker's recomputation use this same function, so equal
/// gradients give equal bits.
public func sumOfSquares(_ raw: UnsafeRawBufferPointer, bf16: Bool) -> Double {
    // Eight partial sums: the adds are independent, so the loop is not latency-bound.
    var acc = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    func value(_ i: Int) -> Double {
        bf16
            ? Double(float(fromBFloat16: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
            : Double(raw.loadUnaligned(fromByteOffset: 4 * i, as: Float.self))
    }
    let n = raw.count / (bf16 ? 2 : 4)
    var i = 0
    while i + 8 <= n {
        let a0 = value(i), a1 = value(i + 1), a2 = value(i + 2), a3 = value(i + 3)
        let a4 = value(i + 4), a5 = value(i + 5), a6 = value(i + 6), a7 = value(i + 7)
        acc.0 += a0 * a0; acc.1 += a1 * a1; acc.2 += a2 * a2; acc.3 += a3 * a3
        acc.4 += a4 * a4; acc.5 += a5 * a5; acc.6 += a6 * a6; acc.7 += a7 * a7
        i += 8
    }
    var rest = 0.0
    while i < n { let a = value(i); rest += a * a; i += 1 }
    return ((acc.0 + acc.1) + (acc.2 + acc.3)) + ((acc.4 + acc.5) + (acc.6 + acc.7)) + rest
}
