// A worker's traffic with the servers for one work unit, on a thread of its own so that it
// overlaps compute: first the pull (each chunk copied into the weights as it arrives; forward
// waits only for the block it is about to run), then the pushes (each chunk in its own message
// as soon as backward has finished it, at most one unacknowledged per server, so a server
// holds at most one early chunk per worker). The thread owns the server sockets from `start`
// until it ends; the worker's main thread computes and watches the coordinator meanwhile.
import ClusterCore
import Foundation
import Numerics
import Transport
import Wire

final class StepTransfer: @unchecked Sendable {
    /// One chunk's gradient, ready to go to the server that owns it.
    struct Push {
        let server: Int
        let chunk: Int
        let tensor: OutgoingTensor
    }

    /// What the unit's pushes are tagged with.
    struct PushTag {
        let step: Int, shard: Int, version: Int
    }

    /// The work unit was abandoned (an interruption from the coordinator, or compute failed).
    struct Cancelled: Error {}

    private let servers: [Messenger]
    private let owned: [[ChunkRange]]
    private let parameters: FloatBuffer
    private let version: Int
    private let bf16Weights: Bool
    private let pushTag: PushTag?
    private let name: String
    private let timeout: Double
    private let done = DispatchSemaphore(value: 0)

    // Guarded by `condition`.
    private let condition = NSCondition()
    /// parameters[0..<available] hold the unit's weights.
    private var available = 0
    private var queued: [[Push]]
    private var allQueued = false
    private var cancelled = false
    private var finished = false
    private var failure: Error?

    /// - Parameters:
    ///   - pushTag: nil for a unit that only reads the weights (scoring, sampling).
    init(
        servers: [Messenger], owned: [[ChunkRange]], parameters: FloatBuffer, version: Int,
        bf16Weights: Bool, pushTag: PushTag?, name: String, timeout: Double
    ) {
        self.servers = servers; self.owned = owned; self.parameters = parameters
        self.version = version; self.bf16Weights = bf16Weights; self.pushTag = pushTag; self.name = name; self.timeout = timeout
        queued = Array(repeating: [], count: servers.count)
    }

    func start() {
        let thread = Thread { [self] in
            do {
                try pull()
                if let pushTag { try pushAll(pushTag) }
            } catch {
                condition.lock()
                if failure == nil { failure = error }
                condition.unlock()
            }
            condition.lock(); finished = true; condition.broadcast(); condition.unlock()
            done.signal()
        }
        thread.name = "transfer"
        thread.start()
    }

    /// Blocks until parameters[0..<offset] hold the unit's weights; `watch` runs every 50 ms
    /// meanwhile (the coordinator's channel). Returns false when the transfer failed or was
    /// cancelled (`wait` then says why).
    func waitForParameters(upTo offset: Int, watch: () throws -> Void) throws -> Bool {
        while true {
            condition.lock()
            var over: Bool { failure != nil || cancelled || finished }
            if available < offset && !over { _ = condition.wait(until: Date().addingTimeInterval(0.05)) }
            let (arrived, ended) = (available >= offset, over)
            condition.unlock()
            if arrived { return true }
            if ended { return false }
            try watch()
        }
    }

    /// Queues chunks for their servers, in order (called by the computing thread).
    func push(_ pushes: [Push]) {
        condition.lock()
        for p in pushes { queued[p.server].append(p) }
        condition.broadcast()
        condition.unlock()
    }

    /// Every push is queued: the transfer ends once they are acknowledged.
    func finishPushes() {
        condition.lock(); allQueued = true; condition.broadcast(); condition.unlock()
    }

    /// Waits for the transfer to end, running `watch` every 50 ms; throws its failure.
    func wait(watch: () throws -> Void) throws {
        while done.wait(timeout: .now() + 0.05) == .timedOut { try watch() }
        done.signal()  // later waits return at once
        condition.lock(); let failure = failure; condition.unlock()
        if let failure { throw failure }
    }

    /// Abandons the transfer and waits for its thread (the sockets are the caller's again).
    func cancel() {
        condition.lock(); cancelled = true; condition.broadcast(); condition.unlock()
        done.wait()
        done.signal()
    }

    private var isCancelled: Bool {
        condition.lock(); defer { condition.unlock() }
        return cancelled
    }

    private func pull() throws {
        var missing = owned.map { Set($0.map(\.chunk)) }
        for (s, server) in servers.enumerated() where !owned[s].isEmpty {
            try server.send(.pull(version: version, chunks: owned[s].map(\.chunk)))
        }
        let byID = Dictionary(owned.joined().map { ($0.chunk, $0) }, uniquingKeysWith: { a, _ in a })
        let order = owned.joined().sorted { $0.offset < $1.offset }
        var arrived = Set<Int>(), prefix = 0
        var deadline = Date().addingTimeInterval(timeout)
        while missing.contains(where: { !$0.isEmpty }) {
            if isCancelled { throw Cancelled() }
            guard Date() < deadline else {
                let s = missing.firstIndex { !$0.isEmpty }!
                throw ClusterError("\(name): no pull from server \(s) within \(Int(timeout)) s")
            }
            let ready = try poll(servers.map(\.socket), timeout: 0.05)
            for s in servers.indices where ready[s] {
                guard let reply = try servers[s].receive(timeout: 0, onInvalid: { log(self.name, "dropped from server \(s): \($0)") }) else { continue }
                if case let .error(_, message) = reply.envelope.body { throw ClusterError("\(name): pull from server \(s) failed: \(message)") }
                guard case let .pullReply(_, ids, _) = reply.envelope.body, ids.count == reply.tensors.count, Set(ids).isSubset(of: missing[s]) else {
                    throw ServerFault(server: s, detail: "answered a pull with something else: \(reply.envelope.body)")
                }
                for (id, frame) in zip(ids, reply.tensors) {
                    let c = byID[id]!
                    guard frame.holds(c.count, bf16: bf16Weights) else {
                        throw ServerFault(server: s, detail: "sent chunk \(id) with \(frame.count) bytes, not \(c.count) \(bf16Weights ? "bfloat16" : "fp32") values")
                    }
                    frame.copyValues(into: parameters, at: c.offset, bf16: bf16Weights)
                    missing[s].remove(id)
                    arrived.insert(id)
                }
                deadline = Date().addingTimeInterval(timeout)
                while prefix < order.count && arrived.contains(order[prefix].chunk) { prefix += 1 }
                condition.lock()
                available = prefix < order.count ? order[prefix].offset : parameters.count
                condition.broadcast()
                condition.unlock()
            }
        }
    }

    private func pushAll(_ tag: PushTag) throws {
        var inFlight = Array(repeating: false, count: servers.count)
        while true {
            condition.lock()
            if cancelled { condition.unlock(); throw Cancelled() }
            var sends: [Push] = []
            for s in servers.indices where !inFlight[s] && !queued[s].isEmpty { sends.append(queued[s].removeFirst()) }
            let complete = allQueued && queued.allSatisfy(\.isEmpty)
            condition.unlock()
            for p in sends {
                try servers[p.server].send(.push(step: tag.step, chunks: [p.chunk], shard: tag.shard, version: tag.version), tensors: [p.tensor])
                inFlight[p.server] = true
            }
            if complete && !inFlight.contains(true) { return }
            if inFlight.contains(true) {
                // Short polls: a server without a push in flight may get one queued meanwhile.
                let ready = try poll(servers.map(\.socket), timeout: 0.002)
                for s in servers.indices where ready[s] {
                    guard let reply = try servers[s].receive(timeout: 0, onInvalid: { log(self.name, "dropped from server \(s): \($0)") }) else { continue }
                    if case let .error(_, message) = reply.envelope.body { throw ClusterError("\(name): push to server \(s) failed: \(message)") }
                    guard case .pushAck = reply.envelope.body, inFlight[s] else {
                        throw ServerFault(server: s, detail: "answered a push with something else: \(reply.envelope.body)")
                    }
                    inFlight[s] = false
                }
                // No deadline here: a server holds a push until the earlier shards arrive, and the
                // coordinator (whose silence the main thread watches) decides who is stuck.
            } else {
                condition.lock()
                if !cancelled && !allQueued && queued.allSatisfy(\.isEmpty) { _ = condition.wait(until: Date().addingTimeInterval(0.05)) }
                condition.unlock()
            }
        }
    }
}

/// A server answered this worker with something the plan rules out (wrong chunks or sizes):
/// the server's fault, reported to the coordinator, which replaces the server; not this worker's.
struct ServerFault: Error {
    /// The server's index in the worker's plan.
    let server: Int
    let detail: String
}
