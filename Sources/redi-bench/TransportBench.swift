// Push throughput of redi-ps messages (envelope + zero-copy tensor frames, DEALER → ROUTER)
// against a raw libzmq PUSH/PULL stream of the same payload, both over TCP loopback in this run.
import ArgumentParser
import Foundation
import Numerics
import Transport
import Wire

struct TransportBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "transport",
        abstract: "Message throughput against a raw ZeroMQ stream on 127.0.0.1.")
    @Option(help: "MiB per tensor frame.") var mib = 4
    @Option(help: "Messages per measurement.") var messages = 200

    final class Payload { let buffer: FloatBuffer; init(_ n: Int) { buffer = FloatBuffer(count: n) } }

    func run() throws {
        let floats = mib << 18
        let payload = Payload(floats)
        let bytes = Double(floats * 4 * messages)
        let context = ZMQContext()

        // Raw: PUSH → PULL, one frame per message, receiver touches every message.
        let pull = try ZMQSocket(context, .pull)
        let rawEndpoint = try pull.bind("tcp://127.0.0.1:*")
        let push = try ZMQSocket(context, .push)
        try push.connect(rawEndpoint)
        let rawSeconds = try measure {
            // Each socket is used by one thread only: the sender here, the receiver below.
            let box = UncheckedSendable((push, payload))
            let sender = Thread {
                let (push, payload) = box.value
                for _ in 0..<messages {
                    try? push.send([.borrowed(UnsafeRawPointer(payload.buffer.baseAddress), count: floats * 4, owner: payload)])
                }
            }
            sender.start()
            for _ in 0..<messages { _ = try pull.receive(timeout: 30) }
        }

        // redi-ps: Messenger push with an envelope, validated on receipt.
        let router = try ZMQSocket(context, .router)
        let endpoint = try router.bind("tcp://127.0.0.1:*")
        let dealer = try ZMQSocket(context, .dealer)
        try dealer.setIdentity("worker-0")
        try dealer.connect(endpoint)
        let server = Messenger(socket: router, runID: "bench", sender: "server-0", routed: true)
        let worker = Messenger(socket: dealer, runID: "bench", sender: "worker-0", routed: false)
        let tensor = OutgoingTensor(pointer: payload.buffer.baseAddress, count: floats, owner: payload)
        let messengerSeconds = try measure { try stream(from: worker, to: server, tensor) }

        // The same messages over CURVE, as servers and workers exchange them (encrypted and authenticated).
        let serverKeys = try CurveKeyPair.generate()
        let secureRouter = try ZMQSocket(context, .router)
        try secureRouter.makeCurveServer(secretKey: serverKeys.secretKey, domain: "data")
        let secureEndpoint = try secureRouter.bind("tcp://127.0.0.1:*")
        let secureDealer = try ZMQSocket(context, .dealer)
        try secureDealer.setIdentity("worker-0")
        try secureDealer.makeCurveClient(keys: try CurveKeyPair.generate(), serverKey: serverKeys.publicKey)
        try secureDealer.connect(secureEndpoint)
        let curveSeconds = try measure {
            try stream(from: Messenger(socket: secureDealer, runID: "bench", sender: "worker-0", routed: false),
                       to: Messenger(socket: secureRouter, runID: "bench", sender: "server-0", routed: true), tensor)
        }
        let raw = bytes / rawSeconds / 1e9, ours = bytes / messengerSeconds / 1e9, curve = bytes / curveSeconds / 1e9
        print(String(format: "redi-bench transport: %d MiB frames × %d: raw ZeroMQ %.2f GB/s, redi-ps messages %.2f GB/s (%.0f%% of raw), "
                     + "over CURVE (as the cluster's data plane) %.2f GB/s (%.0f%% of raw)",
                     mib, messages, raw, ours, 100 * ours / raw, curve, 100 * curve / raw))
    }

    /// `messages` pushes of `tensor` from a sender thread, received here.
    func stream(from worker: Messenger, to server: Messenger, _ tensor: OutgoingTensor) throws {
        let box = UncheckedSendable((worker, tensor))
        let sender = Thread {
            let (worker, tensor) = box.value
            for i in 0..<messages { try? worker.send(.push(step: i, chunks: [0], shard: 0, version: 0), tensors: [tensor]) }
        }
        sender.start()
        for _ in 0..<messages { guard try server.receive(timeout: 30) != nil else { throw ValidationError("a message did not arrive within 30 s") } }
    }

    func measure(_ body: () throws -> Void) throws -> Double {
        let t0 = Date()
        try body()
        return Date().timeIntervalSince(t0)
    }
}
