// A parameter server: owns a set of chunks (fp32 weights + AdamW m and v), serves pulls,
// sums the workers' pushes in worker order (so runs reproduce), reports its partial Σg²,
// and applies clip-scaled AdamW when the coordinator says so. Its data port is a CURVE
// server that admits only the workers' keys the coordinator announced, and a push counts
// only from the connection admitted as the worker it names, at the current version.
import Foundation
import Model
import Numerics
import Optimizer
import Transport
import Wire

public final class ParameterServer {
    final class Chunk {
        let range: ChunkRange
        let weights: FloatBuffer, m: FloatBuffer, v: FloatBuffer, gradient: FloatBuffer
        /// Shards of the current step added into `gradient` so far: pushes are summed in shard
        /// order as they arrive, straight from the received frame; a push that arrives before
        /// its predecessors waits in `early`, unacknowledged, and a worker sends its next push
        /// only on an acknowledgement: memory is 4 × chunk + at most one chunk per worker.
        var summed = 0
        /// Held pushes by shard: the values, and whom to acknowledge once they are added.
        var early: [Int: (values: FloatBuffer, ack: Acknowledgement)] = [:]
        /// Ranges within the chunk that get no weight decay (norm weights, biases).
        let undecayed: [Range<Int>]
        init(_ range: ChunkRange, layout: ParameterLayout) {
            self.range = range
            undecayed = layout.undecayed(within: range.offset..<(range.offset + range.count))
            weights = FloatBuffer(count: range.count); m = FloatBuffer(count: range.count)
            v = FloatBuffer(count: range.count); gradient = FloatBuffer(count: range.count)
        }

        /// Adds shard `shard`'s push (the frame's values) in shard order: now when it is next,
        /// else later, when its predecessors have arrived (then `ack` waits with it). Returns
        /// whether it was held, and the acknowledgements of held pushes this call added.
        func accept(_ frame: ReceivedFrame, shard: Int, bf16: Bool, ack: Acknowledgement) -> (held: Bool, released: [Acknowledgement]) {
            guard shard == summed else {
                let copy = FloatBuffer(count: range.count)
                frame.copyValues(into: copy.baseAddress, bf16: bf16)
                early[shard] = (copy, ack)
                return (true, [])
            }
            if summed == 0 { gradient.zero() }
            frame.addValues(into: gradient.baseAddress, bf16: bf16)
            summed += 1
            var released: [Acknowledgement] = []
            while let next = early.removeValue(forKey: summed) {
                add(gradient.baseAddress, next.values.baseAddress, count: range.count)
                released.append(next.ack)
                summed += 1
            }
            return (false, released)
        }

        /// Ready for the next step's pushes (the first of which zeroes `gradient`); returns the
        /// acknowledgements of pushes dropped while held (an abandoned step).
        @discardableResult
        func clear() -> [Acknowledgement] {
            defer { summed = 0; early.removeAll() }
            return early.values.map(\.ack)
        }
    }

    /// Whom to acknowledge a push to, and for which step.
    struct Acknowledgement {
        let peer: [UInt8]
        let step: Int
    }

    let coordinator: String
    let key: RunKey
    let bind: String
    let advertise: String?
    let timeout: Double

    public init(coordinator: String, key: RunKey, bind: String, advertise: String?, timeout: Double) {
        self.coordinator = coordinator; self.key = key; self.bind = bind; self.advertise = advertise; self.timeout = timeout
    }

    /// Serves until the coordinator ends the run.
    ///
    /// - Throws: `ClusterError` when the run fails; a failure found here is reported to the
    ///   coordinator first.
    public func run() throws {
        // Every worker's pulls and pushes pass through this process: one I/O thread per core,
        // so workers' connections are encrypted and decrypted in parallel, not in turn.
        let context = ZMQContext(ioThreads: elementwiseThreads)
        let identity = hostIdentity("server")
        let zap = try ZAPHandler(context: context) { log(identity, $0) }
        defer { zap.stop() }
        let data = try ZMQSocket(context, .router)
        try data.makeCurveServer(secretKey: key.keys.secretKey, domain: "data")
        try data.allowRoutingIDHandover()
        // Until the Welcome says the chunk size, the port takes handshakes only: an unknown peer
        // can make it buffer 64 KiB per connection, not a chunk (a listener's limit is fixed at bind).
        try data.setMaximumMessageSize(handshakeFrameLimit)
        let bound = try data.bind(bind)
        let endpoint = try advertisedEndpoint(bound: bound, advertise: advertise)
        log(identity, "serving parameters at \(endpoint)")
        var plain = false, limit = handshakeFrameLimit
        // A coordinator that goes silent may be restarted (`--resume latest`): join it again.
        while true {
            let (control, welcome, runID) = try join(context: context, coordinator: coordinator, key: key, identity: identity,
                                                     hello: Hello(role: .server, endpoint: endpoint), timeout: timeout)
            let name = "server-\(welcome.index)"
            let runLimit = dataFrameLimit(largestChunk: welcome.chunks.map(\.count).max() ?? 0)
            if welcome.plainDataPlane != plain || runLimit != limit {
                try listenAgain(data, at: bound, plain: welcome.plainDataPlane, frameLimit: runLimit)
                plain = welcome.plainDataPlane; limit = runLimit
                log(name, "data plane: \(plain ? "PLAIN (workers authenticated, frames unencrypted)" : "CURVE"), frames up to \(limit) bytes")
            }
            do {
                try serve(control: control, data: data, zap: zap, welcome: welcome, runID: runID, name: name)
            } catch let stop as Stop {
                log(name, "shutting down: \(stop.reason)")
                if stop.failed { throw ClusterError("\(name): the run failed: \(stop.reason)") }
                return
            } catch let silent as CoordinatorSilent {
                log(name, "\(silent); waiting up to \(Int(timeout)) s for it to come back (redi-ps coordinate --resume latest)")
            } catch {
                let e = error as? ClusterError ?? ClusterError("\(name): \(error)")
                try? control.send(.error(code: 500, message: e.description))
                throw e
            }
        }
    }

    private func serve(control: Messenger, data: ZMQSocket, zap: ZAPHandler, welcome first: Welcome, runID: String, name: String) throws {
        let timeout = peerTimeout(first, cli: self.timeout)
        let peers = Messenger(socket: data, runID: runID, sender: name, routed: true)
        var welcome = first
        var chunks: [Int: Chunk] = [:], ordered: [Chunk] = []
        var version = 0
        let slots = welcome.workers
        /// The worker slot that computes each shard this step.
        var owners = Array(0..<slots)
        /// The most pushes held at once so far (logged as it grows: at most one per worker).
        var mostHeld = 0
        /// The version whose sum is complete and reported: one contribution per (version, shard),
        /// so nothing more is taken at it (a second push would replace the reported sum).
        var summedAt: Int?
        // Chunks received for each shard this step; the step's gradient is complete when
        // every shard has every chunk this server holds (in one push or several).
        var received = Array(repeating: Set<Int>(), count: slots)
        /// Σg² of each shard's push of each chunk this step (by chunk id), summed in chunk order for the report.
        var pushSums = Array(repeating: [Int: Double](), count: slots)
        func admit(_ keys: [[UInt8]]) {
            for w in 0..<slots {
                if w < keys.count, keys[w].count == 32 { zap.allow(keys[w], userID: "worker-\(w)", domain: "data") } else { zap.revoke(userID: "worker-\(w)", domain: "data") }
            }
        }
        /// Takes the chunks a (new) welcome assigns; their contents arrive with the next load.
        func configure(_ w: Welcome) throws {
            let config: LlamaConfig
            do { config = try JSONDecoder().decode(LlamaConfig.self, from: Data(w.modelConfigJSON.utf8)) } catch {
                throw ClusterError("\(name): the coordinator's model config does not decode: \(error)")
            }
            let layout = ParameterLayout(config: config)
            if let last = w.chunks.last, last.offset + last.count != layout.totalCount {
                throw ClusterError("\(name): the coordinator's chunks do not cover the model's \(layout.totalCount) parameters")
            }
            chunks = [:]
            for (i, c) in w.chunks.enumerated() where w.chunkOwner[i] == w.index { chunks[c.chunk] = Chunk(c, layout: layout) }
            ordered = chunks.values.sorted { $0.range.chunk < $1.range.chunk }
            for s in received.indices { received[s].removeAll(); pushSums[s].removeAll() }
            log(name, "holding \(chunks.count) chunks, \(chunks.values.reduce(0) { $0 + $1.range.count }) parameters")
        }
        try configure(welcome)
        admit(welcome.workerKeys)
        var lastHeard = Date(), lastSent = Date()

        func tensors(_ ids: [Int], optimizerState: Bool = false) throws -> [OutgoingTensor] {
            try ids.flatMap { id -> [OutgoingTensor] in
                guard let c = chunks[id] else { throw WireError("chunk \(id) is not held by \(name)") }
                let buffers = optimizerState ? [c.weights, c.m, c.v] : [c.weights]
                return buffers.map { OutgoingTensor(pointer: $0.baseAddress, count: c.range.count, owner: $0) }
            }
        }
        /// Workers' pulls with a bfloat16 wire: each chunk narrowed once per version, into a
        /// fresh buffer (an older one may still be on its way to a worker).
        var narrowed: [Int: (version: Int, values: BFloat16Buffer)] = [:]
        func workerTensors(_ ids: [Int]) throws -> [OutgoingTensor] {
            guard welcome.bf16Weights else { return try tensors(ids) }
            return try ids.map { id in
                guard let c = chunks[id] else { throw WireError("chunk \(id) is not held by \(name)") }
                if narrowed[id]?.version != version {
                    let b = BFloat16Buffer(count: c.range.count)
                    narrowToBF16(c.weights.baseAddress, into: b.baseAddress, count: c.range.count)
                    narrowed[id] = (version, b)
                }
                let b = narrowed[id]!.values
                return OutgoingTensor(bf16: b.baseAddress, count: c.range.count, owner: b)
            }
        }
        func tellCoordinator(_ body: Body) throws {
            try control.send(body)
            lastSent = Date()
        }

        while true {
            let ready = try poll([control.socket, data], timeout: welcome.heartbeatSeconds / 2)
            if Date().timeIntervalSince(lastSent) >= welcome.heartbeatSeconds { try tellCoordinator(.heartbeat(step: version)) }
            if !ready[0] && !ready[1] {
                if Date().timeIntervalSince(lastHeard) > timeout { throw CoordinatorSilent(seconds: timeout) }
                continue
            }
            if ready[0], let msg = try control.receive(timeout: 0, onInvalid: { log(name, "dropped: \($0)") }) {
                lastHeard = Date()
                switch msg.envelope.body {
                case let .load(ids, reset, state, loadedVersion):
                    let per = state ? 3 : 1
                    guard ids.count * per == msg.tensors.count, Set(ids).count == ids.count else {
                        throw ClusterError("\(name): load of \(ids.count) chunks with \(msg.tensors.count) tensors")
                    }
                    for (k, id) in ids.enumerated() {
                        guard let c = chunks[id], msg.tensors[k * per..<(k + 1) * per].allSatisfy({ $0.holds(c.range.count, bf16: false) }) else {
                            throw ClusterError("\(name): bad load for chunk \(id)")
                        }
                    }
                    for (k, id) in ids.enumerated() {
                        let c = chunks[id]!
                        msg.tensors[k * per].copyFloats(into: c.weights.baseAddress)
                        if state {
                            msg.tensors[k * per + 1].copyFloats(into: c.m.baseAddress)
                            msg.tensors[k * per + 2].copyFloats(into: c.v.baseAddress)
                        } else if reset {
                            c.m.zero(); c.v.zero()
                        }
                    }
                    version = loadedVersion; narrowed.removeAll(); summedAt = nil
                    try tellCoordinator(.updateDone(step: 0, version: version))
                case let .apply(u):
                    guard [u.learningRate, u.gradientScale, u.adamW.beta1, u.adamW.beta2, u.adamW.eps, u.adamW.weightDecay].allSatisfy(\.isFinite),
                          u.optimizerStep >= 1 else {
                        throw ClusterError("\(name): the coordinator sent an update with non-finite or invalid settings")
                    }
                    let config = u.adamW
                    // Workers wait for this update, so every core works on it; chunks are independent.
                    parallelRanges(ordered.count) { r in
                        for c in ordered[r] {
                            adamWStep(parameters: c.weights.baseAddress, gradients: c.gradient.baseAddress, m: c.m.baseAddress, v: c.v.baseAddress,
                                      count: c.range.count, learningRate: u.learningRate, step: u.optimizerStep,
                                      gradientScale: u.gradientScale, config: config, undecayed: c.undecayed)
                        }
                    }
                    version += 1; narrowed.removeAll()
                    try tellCoordinator(.updateDone(step: u.step, version: version))
                case let .pull(_, ids, state):
                    try control.send(.pullReply(version: version, chunks: ids, optimizerState: state), tensors: try tensors(ids, optimizerState: state))
                    lastSent = Date()
                case let .reset(step, shardWorkers, keys):
                    guard shardWorkers.count == slots, shardWorkers.allSatisfy({ $0 >= 0 && $0 < slots }) else {
                        throw ClusterError("\(name): the coordinator assigned \(shardWorkers.count) shards to workers \(shardWorkers)")
                    }
                    owners = shardWorkers
                    admit(keys)
                    for s in received.indices { received[s].removeAll(); pushSums[s].removeAll() }
                    // Held pushes are dropped with the step: acknowledged (as not counted), so no worker waits on them.
                    for c in chunks.values { for a in c.clear() { try peers.send(.pushAck(step: a.step), to: a.peer) } }
                    version += 1  // pushes from before the reset are now stale
                    log(name, "step \(step + 1): shards computed by workers \(owners)")
                    try tellCoordinator(.updateDone(step: step, version: version))
                case let .welcome(w):
                    // The coordinator re-planned the chunks (a server was lost); weights follow in a load,
                    // whose acknowledgement covers this too.
                    try w.validate()
                    guard w.workers == slots, w.index < w.serverEndpoints.count, w.plainDataPlane == welcome.plainDataPlane else {
                        throw ClusterError("\(name): a new plan with \(w.workers) worker slots (this run has \(slots)) or another data plane")
                    }
                    welcome = w
                    try configure(w); narrowed.removeAll()
                    admit(w.workerKeys)
                case let .shutdown(reason, failed):
                    throw Stop(reason: reason, failed: failed)
                case .error(410, _):
                    throw CoordinatorSilent(seconds: 0, restarted: true)
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
                func refuse(_ code: Int, _ text: String) throws {
                    log(name, "refused \(msg.userID.isEmpty ? "an unauthenticated peer" : msg.userID): \(text)")
                    try peers.send(.error(code: code, message: text), to: peer)
                }
                switch msg.envelope.body {
                case let .pull(_, ids, _) where msg.userID.hasPrefix("worker-"):
                    // A message per chunk, so the worker runs its first blocks while the rest arrive.
                    do {
                        let tensors = try workerTensors(ids)
                        for (id, tensor) in zip(ids, tensors) { try peers.send(.pullReply(version: version, chunks: [id]), to: peer, tensors: [tensor]) }
                    } catch let e as WireError {
                        try refuse(404, e.description)
                    }
                case let .push(step, _, shard, pushedAt) where pushedAt < version && msg.userID.hasPrefix("worker-"):
                    // From an attempt the coordinator abandoned (membership changed, shards re-assigned):
                    // acknowledged, not counted, whichever shard it names.
                    log(name, "ignored a stale push for step \(step + 1) shard \(shard) (version \(pushedAt) < \(version))")
                    try peers.send(.pushAck(step: step), to: peer)
                case let .push(_, _, shard, _) where shard < 0 || shard >= slots || msg.userID != "worker-\(owners[shard])":
                    try refuse(403, "a push for shard \(shard) from \(msg.userID.isEmpty ? "a connection without a worker key" : msg.userID), which does not compute it")
                case let .push(step, _, _, pushedAt) where pushedAt > version:
                    try refuse(409, "a push for step \(step + 1) computed at version \(pushedAt); this server is at version \(version)")
                case let .push(step, _, shard, _) where summedAt == version:
                    try refuse(409, "a second push for step \(step + 1) shard \(shard) from \(msg.userID): every shard of this step was summed and reported")
                case let .push(step, ids, shard, _):
                    let worker = owners[shard]
                    guard ids.count == msg.tensors.count, Set(ids).count == ids.count, received[shard].isDisjoint(with: ids),
                          zip(ids, msg.tensors).allSatisfy({ id, frame in chunks[id].map { frame.holds($0.range.count, bf16: welcome.bf16Gradients) } ?? false }) else {
                        try refuse(400, "bad or duplicate push from worker \(worker): chunks \(ids) do not match this server's")
                        continue
                    }
                    // Every value finite before anything is added (Σg² is not finite otherwise).
                    let sums = msg.tensors.map { $0.sumOfSquares(bf16: welcome.bf16Gradients) }
                    guard sums.allSatisfy(\.isFinite) else {
                        let text = "worker \(worker) pushed non-finite gradients for step \(step + 1) (chunks \(ids))"
                        try refuse(422, text)
                        throw ClusterError("\(name): \(text)")
                    }
                    // A push held early is acknowledged when its predecessors arrive, so it must be one
                    // chunk, and a worker has at most one held (the bound on this server's memory).
                    let early = ids.contains { chunks[$0]!.summed != shard }
                    guard !early || (ids.count == 1 && !ordered.contains { $0.early[shard] != nil }) else {
                        try refuse(400, "worker \(worker) pushed ahead of its turn before its held push was acknowledged, or several chunks at once")
                        continue
                    }
                    // Acknowledged once summed; a push held early is acknowledged when its predecessors arrive.
                    var held = false
                    for (id, frame) in zip(ids, msg.tensors) {
                        let (wasHeld, released) = chunks[id]!.accept(frame, shard: shard, bf16: welcome.bf16Gradients,
                                                                     ack: Acknowledgement(peer: peer, step: step))
                        held = held || wasHeld
                        for a in released { try peers.send(.pushAck(step: a.step), to: a.peer) }
                    }
                    received[shard].formUnion(ids)
                    for (id, sum) in zip(ids, sums) { pushSums[shard][id] = sum }
                    if held {
                        let holding = ordered.reduce(0) { $0 + $1.early.count }
                        if holding > mostHeld {
                            mostHeld = holding
                            log(name, "holding \(holding) early push\(holding == 1 ? "" : "es") (chunks whose earlier shards have not arrived), the most so far")
                        }
                    } else {
                        try peers.send(.pushAck(step: step), to: peer)
                    }
                    if received.allSatisfy({ $0.count == chunks.count }) {
                        let shardSums = pushSums.map { byChunk in ordered.reduce(0.0) { $0 + byChunk[$1.range.chunk]! } }
                        try tellCoordinator(.norm(step: step, chunks: ordered.map(\.range.chunk), sums: sumsOfSquares(ordered), shardSums: shardSums))
                        summedAt = version
                        for s in received.indices { received[s].removeAll(); pushSums[s].removeAll() }
                        for c in ordered { c.clear() }  // the sums stay in `gradient` for the update
                    }
                default:
                    try refuse(400, "\(name) does not handle \(msg.envelope.body) from \(msg.userID.isEmpty ? "this peer" : msg.userID)")
                }
            }
        }
    }

    /// Listens on the same endpoint with the run's data-plane mechanism and frame limit: libzmq
    /// fixes both when a listener binds, and the run's choice arrives with the Welcome, after
    /// the endpoint was announced. Workers connect only once every server has joined.
    private func listenAgain(_ data: ZMQSocket, at bound: String, plain: Bool, frameLimit: Int) throws {
        try data.unbind(bound)
        if plain { try data.makePlainServer(domain: "data") } else { try data.makeCurveServer(secretKey: key.keys.secretKey, domain: "data") }
        try data.setMaximumMessageSize(frameLimit)
        // libzmq closes the old listener in its I/O thread: the port may be taken for a moment.
        for attempt in 1...100 {
            do { try data.bind(bound); return } catch where attempt < 100 { Thread.sleep(forTimeInterval: 0.02) }
        }
    }

    /// Each chunk's Σg² once every shard has been added (chunks in parallel).
    private func sumsOfSquares(_ ordered: [Chunk]) -> [Double] {
        var partial = [Double](repeating: 0, count: ordered.count)
        partial.withUnsafeMutableBufferPointer { out in
            let sums = UncheckedSendable(out.baseAddress!)
            parallelRanges(ordered.count) { r in
                for k in r {
                    let c = ordered[k]
                    precondition(c.early.isEmpty, "chunk \(c.range.chunk): a push was never added")
                    sums.value[k] = sumOfSquares(c.gradient.baseAddress, count: c.range.count)
                }
            }
        }
        return partial
    }
}

/// The data endpoint workers are told to connect to. `advertise` may be a whole endpoint, a
/// host (`node7`, `10.0.0.7`), or an endpoint with the port left as `*`: the bound port then
/// fills it in, so several servers on one host can bind `tcp://0.0.0.0:*` and share one
/// `--advertise HOST`. A wildcard bind with nothing to advertise is an error, not a silent
/// `tcp://0.0.0.0:PORT` that remote workers would resolve to themselves.
public func advertisedEndpoint(bound: String, advertise: String?) throws -> String {
    guard let portStart = bound.lastIndex(of: ":") else { throw ClusterError("bound to \(bound): no port") }
    let boundPort = String(bound[bound.index(after: portStart)...])
    guard let advertise, !advertise.isEmpty else {
        let host = bound.dropFirst("tcp://".count).prefix(while: { $0 != ":" })
        if bound.hasPrefix("tcp://"), ["0.0.0.0", "*", "[::]"].contains(host) || bound.hasPrefix("tcp://[::]") {
            throw ClusterError("the data port is bound to every interface (\(bound)): pass --advertise HOST, the address workers reach this host at")
        }
        return bound
    }
    var rest = advertise
    if rest.hasPrefix("tcp://") { rest.removeFirst("tcp://".count) } else if rest.contains("://") {
        return advertise  // ipc:// and other transports are taken as given
    }
    // A bracketed IPv6 host keeps its colons; otherwise the last colon starts the port.
    let hostEnd = rest.hasPrefix("[") ? rest.firstIndex(of: "]").map { rest.index(after: $0) } : rest.lastIndex(of: ":")
    let host = hostEnd.map { String(rest[..<$0]) } ?? rest
    let port = hostEnd.flatMap { $0 < rest.endIndex ? String(rest[rest.index(after: $0)...]) : nil }
    guard !host.isEmpty, !host.contains("/"), !host.contains(" ") else { throw ClusterError("--advertise \(advertise): not a host or tcp://HOST[:PORT]") }
    if let port, port != "*" {
        guard let p = Int(port), (1...65535).contains(p) else { throw ClusterError("--advertise \(advertise): the port must be 1-65535 or *") }
        return "tcp://\(host):\(p)"
    }
    return "tcp://\(host):\(boundPort)"
}
