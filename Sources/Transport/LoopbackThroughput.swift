// How fast messages cross TCP loopback on this machine: a raw libzmq PUSH → PULL stream, and
// redi-ps's own messages (envelope + zero-copy tensor frames, DEALER → ROUTER, validated on
// receipt) in clear and over CURVE, as servers and workers exchange them. Used by
// `redi-bench transport` (the reference for transport efficiency) and `redi-ps doctor`.
import Foundation
import Numerics

#if canImport(Glibc)
import Glibc
#endif

public enum LoopbackThroughput {
    /// A buffer kept alive while libzmq sends from it without copying.
    final class Payload { let buffer: FloatBuffer; init(_ n: Int) { buffer = FloatBuffer(count: n) } }

    /// GB/s of `messages` raw messages of `mib` MiB each, sender on its own thread.
    public static func raw(mib: Int, messages: Int) throws -> Double {
        let floats = mib << 18, payload = Payload(floats)
        let context = ZMQContext()
        let pull = try ZMQSocket(context, .pull)
        let endpoint = try pull.bind("tcp://127.0.0.1:*")
        let push = try ZMQSocket(context, .push)
        try push.connect(endpoint)
        let seconds = try timed {
            // Each socket is used by one thread only: the sender here, the receiver below.
            let box = UncheckedSendable((push, payload))
            let sender = Thread {
                let (push, payload) = box.value
                for _ in 0..<messages {
                    try? push.send([.borrowed(UnsafeRawPointer(payload.buffer.baseAddress), count: floats * 4, owner: payload)])
                }
            }
            sender.start()
            for _ in 0..<messages { guard try pull.receive(timeout: 30) != nil else { throw ZMQError(errno: ETIMEDOUT, operation: "loopback: a raw message within 30 s") } }
        }
        return Double(floats * 4 * messages) / seconds / 1e9
    }

    /// How the measured messages are protected, as the cluster's data plane may be.
    public enum Protection: String, CaseIterable, Sendable {
        case clear, curve, sealed
    }

    /// GB/s of `messages` redi-ps pushes of one `mib`-MiB tensor each, in clear, over CURVE or sealed.
    public static func messages(mib: Int, messages: Int, protection: Protection) throws -> Double {
        let floats = mib << 18, payload = Payload(floats)
        let context = ZMQContext()
        let router = try ZMQSocket(context, .router), dealer = try ZMQSocket(context, .dealer)
        try dealer.setIdentity("worker-0")
        if protection == .curve {
            let serverKeys = try CurveKeyPair.generate()
            try router.makeCurveServer(secretKey: serverKeys.secretKey, domain: "data")
            try dealer.makeCurveClient(keys: try CurveKeyPair.generate(), serverKey: serverKeys.publicKey)
        }
        try dealer.connect(try router.bind("tcp://127.0.0.1:*"))
        let secret = (0..<32).map { _ in UInt8.random(in: 0...255) }
        func sealing() -> FrameSealing? { protection == .sealed ? FrameSealing(runSecret: secret, runID: "bench") : nil }
        let server = Messenger(socket: router, runID: "bench", sender: "server-0", routed: true, sealing: sealing())
        let worker = Messenger(socket: dealer, runID: "bench", sender: "worker-0", routed: false, sealing: sealing())
        let tensor = OutgoingTensor(pointer: payload.buffer.baseAddress, count: floats, owner: payload)
        let seconds = try timed {
            let box = UncheckedSendable((worker, tensor))
            let sender = Thread {
                let (worker, tensor) = box.value
                for i in 0..<messages { try? worker.send(.push(step: i, chunks: [0], shard: 0, version: 0), tensors: [tensor]) }
            }
            sender.start()
            for _ in 0..<messages {
                guard try server.receive(timeout: 30) != nil else { throw ZMQError(errno: ETIMEDOUT, operation: "loopback: a message within 30 s") }
            }
        }
        return Double(floats * 4 * messages) / seconds / 1e9
    }

    static func timed(_ body: () throws -> Void) throws -> Double {
        let t0 = DispatchTime.now().uptimeNanoseconds
        try body()
        return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
    }
}
