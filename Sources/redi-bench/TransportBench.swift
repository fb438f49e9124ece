// Push throughput of redi-ps messages (envelope + zero-copy tensor frames, DEALER → ROUTER)
// against a raw libzmq PUSH/PULL stream of the same payload, both over TCP loopback in this run.
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
        let ours = try LoopbackThroughput.messages(mib: mib, messages: messages, curve: false)
        let curve = try LoopbackThroughput.messages(mib: mib, messages: messages, curve: true)
        print(
            String(
                format: "redi-bench transport: %d MiB frames × %d: raw ZeroMQ %.2f GB/s, redi-ps messages %.2f GB/s (%.0f%% of raw), "
                    + "over CURVE (as the cluster's data plane) %.2f GB/s (%.0f%% of raw)",
                mib, messages, raw, ours, 100 * ours / raw, curve, 100 * curve / raw))
    }
}
