// Push throughput of redi-ps messages (envelope + zero-copy tensor frames, DEALER → ROUTER), in
// clear, over CURVE and sealed, against a raw libzmq PUSH/PULL stream of the same payload, all
// over TCP loopback in this run.
import ArgumentParser
import Transport

struct TransportBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "transport",
        abstract: "Message throughput against a raw ZeroMQ stream on 127.0.0.1.")
    @Option(help: "MiB per tensor frame.") var mib = 4
    @Option(help: "Messages per measurement.") var messages = 200

    func run() throws {
        let raw = try LoopbackThroughput.raw(mib: mib, messages: messages)
        let ours = try LoopbackThroughput.messages(mib: mib, messages: messages, protection: .clear)
        let curve = try LoopbackThroughput.messages(mib: mib, messages: messages, protection: .curve)
        let sealed = try LoopbackThroughput.messages(mib: mib, messages: messages, protection: .sealed)
        print(
            String(
                format: "redi-bench transport: %d MiB frames × %d: raw ZeroMQ %.2f GB/s, redi-ps messages %.2f GB/s (%.0f%% of raw), "
                    + "over CURVE (data_plane: curve) %.2f GB/s (%.0f%% of raw), sealed (data_plane: sealed) %.2f GB/s (%.0f%% of raw)",
                mib, messages, raw, ours, 100 * ours / raw, curve, 100 * curve / raw, sealed, 100 * sealed / raw))
    }
}
