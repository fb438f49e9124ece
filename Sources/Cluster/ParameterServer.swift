// A parameter server: owns a set of chunks (fp32 weights + AdamW m and v), serves pulls,
// sums the workers' pushes in worker order (so runs reproduce), reports its partial Σg²,
// and applies clip-scaled AdamW when the coordinator says so.
import Foundation
import Numerics
import Optimizer
import Transport
import Wire

public final class ParameterServer {
    final class Chunk {
        let range: ChunkRange
        let weights: FloatBuffer, m: FloatBuffer, v: FloatBuffer, gradient: FloatBuffer
        /// One slot per worker for the current step's push, summed in worker order.
        var pushes: [FloatBuffer?]
        init(_ range: ChunkRange, workers: Int) {
            self.range = range
            weights = FloatBuffer(count: range.count); m = FloatBuffer(count: range.count)
            v = FloatBuffer(count: range.count); gradient = FloatBuffer(count: range.count)
            pushes = Array(repeating: nil, count: workers)
        }
    }

    let coordinator: String
    let bind: String
    let advertise: String?
    let timeout: Double

    public init(coordinator: String, bind: String, advertise: String?, timeout: Double) {
        self.coordinator = coordinator; self.bind = bind; self.advertise = advertise; self.timeout = timeout
    }

    public func run() throws {
        let context = ZMQContext()
        let data = try ZMQSocket(context, .router)
        let bound = try data.bind(bind)
        let endpoint = advertise ?? bound
        let identity = hostIdentity("server")
        log(identity, "serving parameters at \(endpoint)")
        let (control, welcome, runID) = try join(context: context, coordinator: coordinator, identity: identity,
                                                 hello: Hello(role: .server, endpoint: endpoint), runID: nil, timeout: timeout)
        let name = "server-\(welcome.index)"
        let peers = Messenger(socket: data, runID: runID, sender: name, routed: true)
        var chunks: [Int: Chunk] = [:]
        for (i, c) in welcome.chunks.enumerated() where welcome.chunkOwner[i] == welcome.index { chunks[c.chunk] = Chunk(c, workers: welcome.workers) }
        let ordered = chunks.values.sorted { $0.range.chunk < $1.range.chunk }
        log(name, "holding \(chunks.count) chunks, \(chunks.values.reduce(0) { $0 + $1.range.count }) parameters")
        var version = 0
        let expectedPushes = welcome.workers
        // Chunks received from each worker this step; the step's gradient is complete when
        // every worker has sent every chunk this server holds (in one push or several).
        var received = Array(repeating: Set<Int>(), count: expectedPushes)
        var live = Set(0..<expectedPushes)
        var lastHeard = Date()

        func tensors(_ ids: [Int], optimizerState: Bool = false) throws -> [OutgoingTensor] {
            try ids.flatMap { id -> [OutgoingTensor] in
                guard let c = chunks[id] else { throw WireError("chunk \(id) is not held by \(name)") }
                let buffers = optimizerState ? [c.weights, c.m, c.v] : [c.weights]
                return buffers.map { OutgoingTensor(pointer: $0.baseAddress, count: c.range.count, owner: $0) }
            }
        }

        while true {
            let ready = try poll([control.socket, data], timeout: welcome.heartbeatSeconds)
            if !ready[0] && !ready[1] {
                if Date().timeIntervalSince(lastHeard) > timeout { throw ClusterError("\(name): the coordinator has been silent for \(Int(timeout)) s") }
                continue
            }
            if ready[0], let msg = try control.receive(timeout: 0, onInvalid: { log(name, "dropped: \($0)") }) {
                lastHeard = Date()
                switch msg.envelope.body {
                case let .load(ids, reset, state):
                    let per = state ? 3 : 1
                    guard ids.count * per == msg.tensors.count else { throw ClusterError("\(name): load of \(ids.count) chunks with \(msg.tensors.count) tensors") }
                    for (k, id) in ids.enumerated() {
                        guard let c = chunks[id], msg.tensors[k * per..<(k + 1) * per].allSatisfy({ $0.floatCount == c.range.count }) else {
                            throw ClusterError("\(name): bad load for chunk \(id)")
                        }
                        msg.tensors[k * per].copyFloats(into: c.weights.baseAddress)
                        if state {
                            msg.tensors[k * per + 1].copyFloats(into: c.m.baseAddress)
                            msg.tensors[k * per + 2].copyFloats(into: c.v.baseAddress)
                        } else if reset {
                            c.m.zero(); c.v.zero()
                        }
                    }
                    version += 1
                    try control.send(.updateDone(step: 0, version: version))
                case let .apply(u):
                    let config = AdamWConfig(beta1: u.adamW.beta1, beta2: u.adamW.beta2, eps: u.adamW.eps, weightDecay: u.adamW.weightDecay)
                    // Workers wait for this update, so every core works on it; chunks are independent.
                    parallelRanges(ordered.count) { r in
                        for c in ordered[r] {
                            adamWStep(parameters: c.weights.baseAddress, gradients: c.gradient.baseAddress, m: c.m.baseAddress, v: c.v.baseAddress,
                                      count: c.range.count, learningRate: u.learningRate, step: u.optimizerStep,
                                      gradientScale: u.gradientScale, config: config)
                        }
                    }
                    version += 1
                    try control.send(.updateDone(step: u.step, version: version))
                case let .pull(_, ids, state):
                    try control.send(.pullReply(version: version, chunks: ids, optimizerState: state), tensors: try tensors(ids, optimizerState: state))
                case let .reset(step, workers):
                    live = Set(workers.filter { $0 >= 0 && $0 < expectedPushes })
                    for w in received.indices { received[w].removeAll() }
                    for c in chunks.values { for w in c.pushes.indices { c.pushes[w] = nil } }
                    log(name, "step \(step) restarts with workers \(live.sorted())")
                    try control.send(.updateDone(step: step, version: version))
                case let .shutdown(reason):
                    log(name, "shutting down: \(reason)")
                    return
                case let .error(_, message):
                    throw ClusterError("\(name): coordinator error: \(message)")
                case .heartbeat:
                    break
                default:
                    log(name, "ignored \(msg.envelope.body) from the coordinator")
                }
            }
            if ready[1], let msg = try peers.receive(timeout: 0, onInvalid: { log(name, "dropped: \($0)") }) {
                guard let peer = msg.identity else { continue }
                switch msg.envelope.body {
                case let .pull(_, ids, _):
                    do { try peers.send(.pullReply(version: version, chunks: ids), to: peer, tensors: try tensors(ids)) } catch let e as WireError {
                        try peers.send(.error(code: 404, message: e.description), to: peer)
                    }
                case let .push(_, _, worker) where !live.contains(worker):
                    try peers.send(.error(code: 410, message: "worker \(worker) was dropped from the run after it stopped answering"), to: peer)
                case let .push(step, ids, worker):
                    guard worker >= 0 && worker < expectedPushes, ids.count == msg.tensors.count,
                          received[worker].isDisjoint(with: ids) else {
                        try peers.send(.error(code: 400, message: "bad or duplicate push from worker \(worker)"), to: peer)
                        continue
                    }
                    for (id, frame) in zip(ids, msg.tensors) {
                        guard let c = chunks[id], frame.floatCount == c.range.count else {
                            try peers.send(.error(code: 400, message: "push for chunk \(id) does not match this server"), to: peer)
                            continue
                        }
                        let slot = c.pushes[worker] ?? FloatBuffer(count: c.range.count)
                        frame.copyFloats(into: slot.baseAddress)
                        c.pushes[worker] = slot
                    }
                    received[worker].formUnion(ids)
                    try peers.send(.pushAck(step: step), to: peer)
                    if live.allSatisfy({ received[$0].count == chunks.count }) {
                        // Sum in worker order, chunk by chunk in parallel; partial norms add in chunk order.
                        let workers = live.sorted()
                        var partial = [Double](repeating: 0, count: ordered.count)
                        partial.withUnsafeMutableBufferPointer { out in
                            let sums = UncheckedSendable(out.baseAddress!)
                            parallelRanges(ordered.count) { r in
                                for k in r {
                                    let c = ordered[k]
                                    c.gradient.zero()
                                    for w in workers {
                                        guard let p = c.pushes[w] else { continue }
                                        let g = c.gradient.baseAddress, x = p.baseAddress
                                        for i in 0..<c.range.count { g[i] += x[i] }
                                    }
                                    sums.value[k] = sumOfSquares(c.gradient.baseAddress, count: c.range.count)
                                }
                            }
                        }
                        let sumsq = partial.reduce(0, +)
                        for w in received.indices { received[w].removeAll() }
                        try control.send(.norm(step: step, sumOfSquares: sumsq))
                    }
                default:
                    try peers.send(.error(code: 400, message: "\(name) does not handle \(msg.envelope.body)"), to: peer)
                }
            }
        }
    }
}
