// The sealed data plane: pushes and pulls cross a ZeroMQ PLAIN connection (workers still
// authenticated by the ZAP handler), and every frame of every message is sealed with
// AES-256-GCM under a key derived from the run key, which every member holds and no one else
// does. Confidential and tamper-evident like CURVE, at several GB/s a core (AES-NI) where
// CURVE's XSalsa20-Poly1305 does ~1.6: on a 2-core machine CURVE's pass over every byte of a
// step's pulls and pushes takes about a fifth of the step from the workers.
//
// A sealed frame is nonce (12 bytes) ‖ ciphertext ‖ one 16-byte tag per 1 MiB segment of
// it: the segments are sealed and opened in parallel (a server seals every worker's pulls and
// opens every push in its one thread), and in place, since the ciphertext is contiguous. The
// nonce is the sealing messenger's random 64-bit salt and a 32-bit counter (segment j of a
// frame uses the frame's counter + j), so no two segments anywhere share one (a restarted
// process draws a new salt). What each tag also covers (associated data):
//   envelope frame: "redi-ps sealed v1", the direction (to a server / to a worker), the worker's
//                   identity on that connection, the number of frames in the message;
//   tensor frame i: the same, the envelope's nonce and i;
//   and the segment's index and the frame's segment count;
// so a frame cannot be moved to another connection, another message, another place in its
// message, turned around, cut, dropped from the end of a message or replayed (a receiver
// takes each salt's envelope counters in increasing order only).
import COpenSSL
import Foundation
import Numerics
import Wire

/// Seals what one messenger sends and opens what it receives. Used by one thread (its
/// messenger's), like the socket.
public final class FrameSealing {
    /// Plaintext bytes per segment (each has its own tag; segments are sealed in parallel).
    public static let segmentBytes = 1 << 20
    static let nonceBytes = 12, tagBytes = 16

    /// Segments of a frame of `count` plaintext bytes (one for an empty frame).
    static func segments(_ count: Int) -> Int { max(1, (count + segmentBytes - 1) / segmentBytes) }

    /// Bytes a sealed frame of `count` plaintext bytes takes on the wire.
    public static func sealedCount(_ count: Int) -> Int { nonceBytes + count + tagBytes * segments(count) }

    /// The plaintext bytes a sealed frame of `sealed` bytes holds, or nil when no plaintext seals to that size.
    static func plaintextCount(sealed: Int) -> Int? {
        guard sealed >= nonceBytes + tagBytes else { return nil }
        let k = (sealed - nonceBytes + segmentBytes + tagBytes - 1) / (segmentBytes + tagBytes)
        let n = sealed - nonceBytes - tagBytes * k
        return n >= 0 && segments(n) == k ? n : nil
    }

    let key: [UInt8]
    private var salt: UInt64
    private var counter: UInt32 = 0
    /// Each sender salt's last envelope counter opened (a replay or reorder is refused).
    private var lastOpened: [UInt64: UInt32] = [:]
    /// Salts remembered at most (only key holders can add one; past this the oldest goes).
    static let remembered = 4096
    private var saltOrder: [UInt64] = []

    /// - Parameters:
    ///   - runSecret: the run key's secret (every member holds it).
    ///   - runID: the run's id, so each run's frames have a key of their own.
    public init(runSecret: [UInt8], runID: String) {
        key = FrameSealing.dataKey(runSecret: runSecret, runID: runID)
        salt = UInt64.random(in: .min ... .max)
    }

    /// HMAC-SHA256(run secret, label ‖ run id): the data plane's AES-256 key.
    static func dataKey(runSecret: [UInt8], runID: String) -> [UInt8] {
        let message = Array("redi-ps sealed data plane v1\u{0}".utf8) + Array(runID.utf8)
        var out = [UInt8](repeating: 0, count: 32)
        let ok = runSecret.withUnsafeBufferPointer { k in
            message.withUnsafeBufferPointer { m in out.withUnsafeMutableBufferPointer { redi_hmac_sha256(k.baseAddress, k.count, m.baseAddress, m.count, $0.baseAddress) } }
        }
        precondition(ok == 1, "HMAC-SHA256 failed (libcrypto)")
        return out
    }

    /// Which way a message goes, from the worker's side of the connection.
    public enum Direction: UInt8 { case toServer = 0, toWorker = 1 }

    /// The associated data of frame `index` (0: the envelope) of a `frames`-frame message.
    static func associatedData(_ direction: Direction, worker: [UInt8], frames: Int, index: Int, envelopeNonce: Nonce?) -> [UInt8] {
        var ad = Array("redi-ps sealed v1".utf8)
        ad.append(direction.rawValue)
        ad += withUnsafeBytes(of: UInt32(worker.count).littleEndian, Array.init) + worker
        ad += withUnsafeBytes(of: UInt32(frames).littleEndian, Array.init)
        ad += withUnsafeBytes(of: UInt32(index).littleEndian, Array.init) + (envelopeNonce?.bytes ?? [])
        return ad
    }

    /// A 96-bit nonce: a sealing messenger's salt and a counter (little-endian on the wire).
    struct Nonce: Equatable {
        var salt: UInt64, counter: UInt32
        init(salt: UInt64, counter: UInt32) { self.salt = salt; self.counter = counter }
        /// The nonce at the start of a sealed frame (`bytes` holds at least `nonceBytes`).
        init(_ bytes: UnsafeRawBufferPointer) {
            salt = UInt64(littleEndian: bytes.loadUnaligned(as: UInt64.self))
            counter = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
        }
        var bytes: [UInt8] { withUnsafeBytes(of: salt.littleEndian, Array.init) + withUnsafeBytes(of: counter.littleEndian, Array.init) }
        /// Segment j's nonce: the same salt, the counter + j.
        func segment(_ j: Int) -> Nonce { Nonce(salt: salt, counter: counter &+ UInt32(j)) }
    }

    /// A nonce for a frame of `segments` segments (its segments use the counters after it).
    private func nextNonce(segments: Int) -> Nonce {
        if counter > UInt32.max - UInt32(segments) {  // 4 billion segments under one salt: draw another
            salt = UInt64.random(in: .min ... .max); counter = 0
        }
        let nonce = Nonce(salt: salt, counter: counter + 1)
        counter += UInt32(segments)
        return nonce
    }

    /// Runs `body` on every segment of a `count`-byte frame, in parallel: the segment's index,
    /// byte range, nonce and associated data. True when every call was.
    private static func eachSegment(
        of count: Int, nonce: Nonce, ad: [UInt8], _ body: @Sendable (_ j: Int, _ range: Range<Int>, _ nonce: [UInt8], _ ad: [UInt8]) -> Bool
    ) -> Bool {
        let k = segments(count)
        return !parallelMap(k) { j in
            let start = j * segmentBytes
            return body(j, start..<min(start + segmentBytes, count), nonce.segment(j).bytes, segmentAD(ad, j, of: k))
        }.contains(false)
    }

    /// The segment's associated data: the frame's, its index and the frame's segment count.
    static func segmentAD(_ frameAD: [UInt8], _ j: Int, of k: Int) -> [UInt8] {
        frameAD + withUnsafeBytes(of: UInt32(j).littleEndian, Array.init) + withUnsafeBytes(of: UInt32(k).littleEndian, Array.init)
    }

    /// The frames of one message, sealed: the envelope's bytes and each tensor's (bytes, count),
    /// written by libzmq's send straight into its messages (the tensors must live until then).
    public func seal(_ direction: Direction, worker: [UInt8], envelope: [UInt8], tensors: [(UnsafeRawPointer, Int)]) -> [OutgoingFrame] {
        let frames = 1 + tensors.count, key = self.key
        let envelopeNonce = nextNonce(segments: Self.segments(envelope.count))
        let envelopeAD = Self.associatedData(direction, worker: worker, frames: frames, index: 0, envelopeNonce: nil)
        var out: [OutgoingFrame] = [
            .filled(count: Self.sealedCount(envelope.count)) { o in
                envelope.withUnsafeBytes { Self.seal(into: o, key: key, nonce: envelopeNonce, ad: envelopeAD, plaintext: $0.baseAddress, count: $0.count) }
            }
        ]
        for (i, (bytes, count)) in tensors.enumerated() {
            let nonce = nextNonce(segments: Self.segments(count))
            let ad = Self.associatedData(direction, worker: worker, frames: frames, index: i + 1, envelopeNonce: envelopeNonce)
            out.append(.filled(count: Self.sealedCount(count)) { o in Self.seal(into: o, key: key, nonce: nonce, ad: ad, plaintext: bytes, count: count) })
        }
        return out
    }

    /// Writes nonce ‖ ciphertext ‖ tags of `count` plaintext bytes into `out` (`sealedCount(count)`
    /// bytes), the segments in parallel.
    private static func seal(
        into out: UnsafeMutableRawBufferPointer, key: [UInt8], nonce: Nonce, ad: [UInt8], plaintext: UnsafeRawPointer?, count: Int
    ) -> Bool {
        precondition(out.count == sealedCount(count))
        out.copyBytes(from: nonce.bytes)
        let ciphertext = UncheckedSendable(out.baseAddress!.assumingMemoryBound(to: UInt8.self) + nonceBytes)
        let input = UncheckedSendable(plaintext?.assumingMemoryBound(to: UInt8.self))
        return eachSegment(of: count, nonce: nonce, ad: ad) { j, r, nonce, ad in
            let c = ciphertext.value
            return redi_seal(key, nonce, ad, ad.count, input.value.map { $0 + r.lowerBound }, r.count, c + r.lowerBound, c + count + j * tagBytes) == 1
        }
    }

    /// Opens a received message's frames in place (each then shows its plaintext), refusing a
    /// frame that was not sealed under this run's key as this message's frame at this place,
    /// or an envelope whose counter its sender already used.
    /// - Throws: `WireError` naming what failed.
    public func open(_ direction: Direction, worker: [UInt8], frames: [ReceivedFrame]) throws {
        guard !frames.isEmpty else { throw WireError("message without an envelope frame") }
        var envelopeNonce: Nonce?
        for (i, f) in frames.enumerated() {
            guard let count = Self.plaintextCount(sealed: f.count) else {
                throw WireError("sealed frame \(i) has \(f.count) bytes, not a nonce, whole segments and their tags")
            }
            let ad = Self.associatedData(direction, worker: worker, frames: frames.count, index: i, envelopeNonce: envelopeNonce)
            let key = self.key
            let (nonce, opened) = f.withWholeMessage { m -> (Nonce, Bool) in
                let nonce = Nonce(UnsafeRawBufferPointer(m))
                let ciphertext = UncheckedSendable(m.baseAddress!.assumingMemoryBound(to: UInt8.self) + Self.nonceBytes)
                return (
                    nonce,
                    Self.eachSegment(of: count, nonce: nonce, ad: ad) { j, r, nonce, ad in
                        let c = ciphertext.value
                        return redi_open(key, nonce, ad, ad.count, c + r.lowerBound, r.count, c + r.lowerBound, c + count + j * Self.tagBytes) == 1
                    }
                )
            }
            guard opened else {
                throw WireError("frame \(i) does not open with this run's data key (tampered, misplaced or from outside the run)")
            }
            f.narrow(start: Self.nonceBytes, count: count)
            if i == 0 { envelopeNonce = nonce }
        }
        try acceptEnvelope(envelopeNonce!)
    }

    /// Records an envelope's (salt, counter), refusing one not above its salt's last.
    private func acceptEnvelope(_ nonce: Nonce) throws {
        if let last = lastOpened[nonce.salt] {
            guard nonce.counter > last else { throw WireError("a replayed or reordered message (frame counter \(nonce.counter), already at \(last))") }
        } else {
            if saltOrder.count >= Self.remembered { lastOpened[saltOrder.removeFirst()] = nil }
            saltOrder.append(nonce.salt)
        }
        lastOpened[nonce.salt] = nonce.counter
    }
}
