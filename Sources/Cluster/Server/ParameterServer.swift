// A parameter server: owns a set of chunks (fp32 weights + AdamW m and v), serves pulls,
// sums the workers' pushes in worker order (so runs reproduce), reports its partial Σg²,
// and applies clip-scaled AdamW when the coordinator says so. Its data port is a CURVE
// server that admits only the workers' keys the coordinator announced, and a push counts
// only from the connection admitted as the worker it names, at the current version.
import ClusterCore
import Foundation
import Model
import Numerics
import Optimizer
import Transport
import Wire

public final class ParameterServer {
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
            let (control, welcome, runID) = try join(
                context: context, coordinator: coordinator, key: key, identity: identity,
                hello: Hello(role: .server, endpoint: endpoint), timeout: timeout)
            let name = "server-\(welcome.index)"
            let runLimit = dataFrameLimit(largestChunk: welcome.chunks.map(\.count).max() ?? 0)
            if welcome.plainDataPlane != plain || runLimit != limit {
                try listenAgain(data, at: bound, plain: welcome.plainDataPlane, frameLimit: runLimit)
                plain = welcome.plainDataPlane; limit = runLimit
                log(name, "data plane: \(welcome.dataPlaneDescription), frames up to \(limit) bytes")
            }
            do {
                try serve(control: control, data: data, zap: zap, welcome: welcome, runID: runID, name: name)
            } catch let stop as Stop {
                log(name, String(format: "shutting down: %@ (peak RSS %.0f MiB, CPU %.2f s)", stop.reason, peakResidentMiB(), cpuSeconds()))
                if stop.failed { throw ClusterError("\(name): the run failed: \(stop.reason)") }
                return
            } catch let silent as CoordinatorSilent {
                log(name, "\(silent); waiting up to \(Int(timeout)) s for it to come back (redi-ps coordinate --resume latest)")
            } catch {
                let e = error as? ClusterError ?? ClusterError("\(name): \(error)")
                try? control.send(.error(.failed, e.description))
                throw e
            }
        }
    }

    /// The snapshot store the Welcome asks for: in memory, or files in `snapshot_dir` (created,
    /// and a file made there at once, so a bad directory fails the join, not the first snapshot).
    private func snapshotStore(_ w: Welcome, name: String) throws -> SnapshotStore {
        let dir = w.snapshotDirectory
        guard !dir.isEmpty else { return SnapshotStore() }
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            _ = try FloatBuffer(count: 1, fileIn: dir)
        } catch {
            throw ClusterError("\(name): cluster.snapshot_dir \(dir): \(error)")
        }
        // Files on a tmpfs are memory, which the setting is meant to spare: said, not refused.
        let inMemory = ["tmpfs", "ramfs"].contains(fileSystemType(of: dir) ?? "")
        log(name, "snapshots and replicas kept in files in \(dir)\(inMemory ? " (warning: a tmpfs, so they still take memory)" : "")")
        return SnapshotStore(directory: dir)
    }

    /// The type of the file system holding `path` (the longest mount point above it in
    /// /proc/self/mounts), nil when that cannot be read.
    private func fileSystemType(of path: String) -> String? {
        guard let mounts = try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8) else { return nil }
        let target = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        var best: (point: String, type: String)?
        for line in mounts.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count >= 3 else { continue }
            // Mount points escape spaces as \040.
            let point = fields[1].replacingOccurrences(of: "\\040", with: " ")
            let inside = point == "/" || target == point || target.hasPrefix(point + "/")
            if inside, point.count >= (best?.point.count ?? -1) { best = (point, String(fields[2])) }
        }
        return best?.type
    }

    private func serve(control: Messenger, data: ZMQSocket, zap: ZAPHandler, welcome: Welcome, runID: String, name: String) throws {
        let session = try ServerSession(
            control: control, peers: Messenger(socket: data, runID: runID, sender: name, routed: true, sealing: sealing(welcome, runID: runID)),
            zap: zap, welcome: welcome,
            snapshots: try snapshotStore(welcome, name: name), timeout: peerTimeout(welcome, cli: timeout), name: name)
        try session.serve()
    }

    /// The sealing of the data port's frames when the run's data plane is sealed.
    private func sealing(_ welcome: Welcome, runID: String) -> FrameSealing? {
        welcome.sealedDataPlane ? FrameSealing(runSecret: key.keys.secretKey, runID: runID) : nil
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
            do { try data.bind(bound); return } catch  where attempt < 100 { Thread.sleep(forTimeInterval: 0.02) }
        }
    }
}

/// One membership of a run: `ShardState` (the rules, no sockets) between the coordinator's
/// control channel and the workers' data port. Each message is handled by one short method;
/// the state's answers become replies here.
final class ServerSession {
    let control: Messenger, peers: Messenger
    let zap: ZAPHandler
    let timeout: Double
    let name: String
    private(set) var welcome: Welcome
    var state: ShardState
    /// Kept across re-plans: a lost server's chunks are restored from what the survivors hold.
    var snapshots: SnapshotStore
    let pulls = PullTensors()
    var lastHeard = Date(), lastSent = Date()

    init(control: Messenger, peers: Messenger, zap: ZAPHandler, welcome: Welcome, snapshots: SnapshotStore, timeout: Double, name: String) throws {
        self.control = control; self.peers = peers; self.zap = zap; self.welcome = welcome
        self.snapshots = snapshots; self.timeout = timeout; self.name = name
        state = ShardState(slots: welcome.workers, bf16Gradients: welcome.bf16Gradients)
        try configure(welcome)
        admit(welcome.workerKeys)
    }

    /// Admits the workers' data keys, each bound to its slot's user id; a slot without a key is revoked.
    func admit(_ keys: [[UInt8]]) {
        for w in 0..<state.slots {
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
        state.configure(w.chunks.indices.filter { w.chunkOwner[$0] == w.index }.map { w.chunks[$0] }, layout: layout)
        pulls.forget()
        log(name, "holding \(state.chunks.count) chunks, \(state.ordered.reduce(0) { $0 + $1.range.count }) parameters")
    }

    func tellCoordinator(_ body: Body, tensors: [OutgoingTensor] = []) throws {
        try control.send(body, tensors: tensors)
        lastSent = Date()
    }

    /// Serves both channels until the run ends (`Stop`) or the coordinator falls silent.
    func serve() throws {
        while true {
            let ready = try poll([control.socket, peers.socket], timeout: welcome.heartbeatSeconds / 2)
            if Date().timeIntervalSince(lastSent) >= welcome.heartbeatSeconds { try tellCoordinator(.heartbeat(step: state.version.number)) }
            if !ready[0] && !ready[1] {
                if Date().timeIntervalSince(lastHeard) > timeout { throw CoordinatorSilent(seconds: timeout) }
                continue
            }
            if ready[0], let msg = try control.receive(timeout: 0, onInvalid: { log(self.name, "dropped: \($0)") }) {
                lastHeard = Date()
                try fromCoordinator(msg)
            }
            if ready[1], let msg = try peers.receive(timeout: 0, onInvalid: { log(self.name, "dropped: \($0)") }), let peer = msg.identity {
                try fromWorker(msg, peer: peer)
            }
        }
    }

    /// The coordinator's commands: loads, updates, pulls, snapshots, resets, new plans, the end.
    func fromCoordinator(_ msg: Incoming) throws {
        switch msg.envelope.body {
        case let .load(ids, reset, optimizerState, loadedVersion):
            try state.load(ids, msg.tensors, reset: reset, optimizerState: optimizerState, version: loadedVersion)
            try tellCoordinator(.updateDone(step: 0, version: state.version.number))
        case let .apply(u):
            try state.apply(u)
            try tellCoordinator(.updateDone(step: u.step, version: state.version.number))
        case let .pull(_, ids, optimizerState):
            try tellCoordinator(
                .pullReply(version: state.version.number, chunks: ids, optimizerState: optimizerState),
                tensors: try pulls.tensors(ids, of: state, optimizerState: optimizerState, name: name))
        case let .snapshot(c):
            try snapshot(c, msg.tensors)
        case let .reset(step, shardWorkers, keys):
            let dropped = try state.reset(owners: shardWorkers)
            admit(keys)
            for a in dropped { try peers.send(.pushAck(step: a.step), to: a.peer) }
            log(name, "step \(step + 1): shards computed by workers \(state.owners)")
            try tellCoordinator(.updateDone(step: step, version: state.version.number))
        case let .welcome(w):
            // The coordinator re-planned the chunks (a server was lost); weights follow in a load,
            // whose acknowledgement covers this too.
            try w.validate()
            guard w.workers == state.slots, w.index < w.serverEndpoints.count, w.plainDataPlane == welcome.plainDataPlane,
                w.sealedDataPlane == welcome.sealedDataPlane
            else {
                throw ClusterError("\(name): a new plan with \(w.workers) worker slots (this run has \(state.slots)) or another data plane")
            }
            welcome = w
            try configure(w)
            admit(w.workerKeys)
        case let .shutdown(reason, failed):
            throw Stop(reason: reason, failed: failed)
        case .error(PeerError.notInRun.rawValue, _):
            throw CoordinatorSilent(seconds: 0, restarted: true)
        case let .error(_, message):
            throw ClusterError("\(name): coordinator error: \(message)")
        case .heartbeat:
            break
        default:
            log(name, "ignored \(msg.envelope.body) from the coordinator")
        }
    }

    /// A snapshot command (two-phase: replicas stored, then committed; restored or sent on after a loss).
    func snapshot(_ c: SnapshotCommand, _ tensors: [ReceivedFrame]) throws {
        switch c.action {
        case .storeReplica:
            let sizes = Dictionary(uniqueKeysWithValues: welcome.chunks.map { ($0.chunk, $0.count) })
            try snapshots.storeReplica(tag: c.tag, chunks: c.chunks, sizes: sizes, tensors)
        case .commit:
            try snapshots.commit(tag: c.tag, chunks: state.ordered)
        case .restore:
            try state.restore(from: snapshots, tag: c.tag, chunks: c.chunks, version: c.version)
            log(name, "restored \(c.chunks.count) of its \(state.chunks.count) chunks from its snapshot \(c.tag)")
        case .sendReplica:
            let copies = try snapshots.replicaCopies(c.chunks, tag: c.tag)
            try tellCoordinator(
                .pullReply(version: state.version.number, chunks: c.chunks, optimizerState: true),
                tensors: copies.flatMap { copy in [copy.weights, copy.m, copy.v].map { OutgoingTensor($0) } })
            return
        }
        try tellCoordinator(.updateDone(step: c.tag, version: state.version.number))
    }

    /// A worker's pull or push on the data port (authenticated: `msg.userID` is the worker the key was admitted as).
    func fromWorker(_ msg: Incoming, peer: [UInt8]) throws {
        func refuse(_ code: PeerError, _ text: String) throws {
            log(name, "refused \(msg.userID.isEmpty ? "an unauthenticated peer" : msg.userID): \(text)")
            try peers.send(.error(code, text), to: peer)
        }
        switch msg.envelope.body {
        case let .pull(_, ids, _) where msg.userID.hasPrefix("worker-"):
            // A message per chunk, so the worker runs its first blocks while the rest arrive.
            do {
                let tensors = try pulls.workerTensors(ids, of: state, bf16: welcome.bf16Weights, name: name)
                for (id, tensor) in zip(ids, tensors) { try peers.send(.pullReply(version: state.version.number, chunks: [id]), to: peer, tensors: [tensor]) }
            } catch let e as WireError {
                try refuse(.unknownChunk, e.description)
            }
        case let .push(step, ids, shard, pushedAt):
            switch state.push(
                from: msg.userID, step: step, chunks: ids, shard: shard, computedAt: pushedAt, values: msg.tensors,
                ack: ShardState.Acknowledgement(peer: peer, step: step))
            {
            case .stale:
                // From an attempt the coordinator abandoned: acknowledged, not counted, whichever shard it names.
                log(name, "ignored a stale push for step \(step + 1) shard \(shard) (version \(pushedAt) < \(state.version.number))")
                try peers.send(.pushAck(step: step), to: peer)
            case let .refused(code, text):
                try refuse(code, text)
            case let .fatal(text):
                try refuse(.nonFinite, text)
                throw ClusterError("\(name): \(text)")
            case let .accepted(acknowledge, mostHeld, completed):
                for a in acknowledge { try peers.send(.pushAck(step: a.step), to: a.peer) }
                if let mostHeld {
                    log(name, "holding \(mostHeld) early push\(mostHeld == 1 ? "" : "es") (chunks whose earlier shards have not arrived), the most so far")
                }
                if let c = completed { try tellCoordinator(.norm(step: c.step, chunks: c.chunks, sums: c.sums, shardSums: c.shardSums)) }
            }
        default:
            try refuse(.malformed, "\(name) does not handle \(msg.envelope.body) from \(msg.userID.isEmpty ? "this peer" : msg.userID)")
        }
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
    if rest.hasPrefix("tcp://") {
        rest.removeFirst("tcp://".count)
    } else if rest.contains("://") {
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

/// The tensors a pull is answered with. Workers' pulls with a bfloat16 wire get each chunk
/// narrowed once per version, into a fresh buffer (an older one may still be on its way to a worker).
final class PullTensors {
    private var narrowed: [Int: (version: Int, values: BFloat16Buffer)] = [:]

    /// Drops every narrowed chunk (a new plan: other chunks).
    func forget() { narrowed.removeAll() }

    func tensors(_ ids: [Int], of state: ShardState, optimizerState: Bool = false, name: String) throws -> [OutgoingTensor] {
        try ids.flatMap { id -> [OutgoingTensor] in
            guard let c = state.chunks[id] else { throw WireError("chunk \(id) is not held by \(name)") }
            let buffers = optimizerState ? [c.weights, c.m, c.v] : [c.weights]
            return buffers.map { OutgoingTensor($0) }
        }
    }

    func workerTensors(_ ids: [Int], of state: ShardState, bf16: Bool, name: String) throws -> [OutgoingTensor] {
        guard bf16 else { return try tensors(ids, of: state, name: name) }
        return try ids.map { id in
            guard let c = state.chunks[id] else { throw WireError("chunk \(id) is not held by \(name)") }
            if narrowed[id]?.version != state.version.number {
                let b = BFloat16Buffer(count: c.range.count)
                c.weights.narrow(0..<c.range.count, into: b)
                narrowed[id] = (state.version.number, b)
            }
            let b = narrowed[id]!.values
            return OutgoingTensor(b)
        }
    }
}
