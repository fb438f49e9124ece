// The coordinator's view of the cluster: who is in the run (servers, worker slots), who
// is alive (every message counts as a heartbeat), admission at the start and of workers
// that join mid-run, the one receive loop every wait goes through, and the shutdown that
// tells every peer how the run ended.
import ClusterCore
import Foundation
import Transport
import Wire

/// A server went silent for the timeout; the stage loop recovers from its snapshot.
struct ServerLost: Error, CustomStringConvertible {
    let index: Int, name: String, seconds: Double
    /// What it failed to do (nil: it went silent).
    var failedTo: String? = nil
    var description: String {
        guard let failedTo else { return "server \(index) (\(name)) stopped answering for \(Int(seconds)) s" }
        return seconds > 0 ? "server \(index) (\(name)) did not \(failedTo) within \(Int(seconds)) s" : "server \(index) (\(name)) did not \(failedTo)"
    }
}

/// A worker slot's occupant: its control routing id and its data-plane key.
struct WorkerSlot {
    let id: [UInt8]
    let key: [UInt8]
    /// The OpenBLAS kernel it said it runs ("" when it did not say).
    var kernel = ""
    /// The threads it computes with: with the kernel, what makes two workers' results bit-identical.
    var threads = 0
}

extension Coordinator {
    func name(of id: [UInt8]) -> String {
        let text = String(decoding: id, as: UTF8.self)
        if let s = servers.firstIndex(of: id) { return "server \(s) (\(text))" }
        if let w = workers.firstIndex(where: { $0?.id == id }) { return "worker \(w) (\(text))" }
        return text
    }

    /// Slots that are empty (never filled, or their worker was dropped).
    var vacantSlots: [Int] { workers.indices.filter { workers[$0] == nil } }

    /// Every slot's data key, empty for a vacant slot: what servers admit.
    var workerKeys: [[UInt8]] { workers.map { $0?.key ?? [] } }

    /// Servers that hold at least one chunk (only these report norms).
    var serversWithChunks: Set<Int> { Set(plan.owner) }

    /// The worker slot that computes each shard: a batch always has one shard per slot, and
    /// the live workers take them in turn, so the sums never depend on who is alive.
    var shardOwners: [Int] { workers.indices.map { live[$0 % live.count] } }

    /// The next message for the caller, or nil when `timeout` passed or the message was one
    /// this loop consumed: heartbeats, hellos (admitted or queued), errors from dropped peers.
    ///
    /// - Throws: `ClusterError` for an error from a member (it ends the run) or a stop signal.
    func next(timeout: Double) throws -> Incoming? {
        try checkStop()
        keepAlive()
        guard let msg = try messenger.receive(timeout: timeout, onInvalid: { self.say("dropped: \($0)") }), let id = msg.identity else { return nil }
        let member = servers.contains(id) || workers.contains { $0?.id == id }
        if member { lastHeard[id] = Date() }
        switch msg.envelope.body {
        case let .hello(h):
            try hello(h, from: id)
            return nil
        case let .error(PeerError.serverFault.rawValue, message) where workers.contains(where: { $0?.id == id }) && message.hasPrefix("server "):
            // A worker got chunks from a server that the plan rules out: that server is replaced
            // (its steps replayed), the worker stays. Reports naming a server no longer in the plan are late.
            let endpoint = String(message.dropFirst("server ".count).prefix { $0 != " " }.dropLast())
            guard let s = serverEndpoints.firstIndex(of: endpoint) else {
                say("\(name(of: id)) reported a server no longer in the plan: \(message)")
                return nil
            }
            throw ServerLost(
                index: s, name: String(decoding: servers[s], as: UTF8.self), seconds: 0,
                failedTo: "answer \(name(of: id)) within the plan (\(message.dropFirst(endpoint.count + 9)))")
        case let .error(_, message):
            guard member else {
                say("ignored an error from \(name(of: id)), which is not in the run: \(message)")
                return nil
            }
            throw ClusterError("\(name(of: id)) failed: \(message)")
        case _ where !member:
            // A peer of an earlier coordinator (restarted) or a dropped worker: it must join again.
            if strays.count >= 4096 { strays.removeAll() }  // bounded: peers come and go
            if strays.insert(id).inserted { say("\(name(of: id)) is not in the run; told to join again") }
            try? messenger.send(.error(.notInRun, "not in this run (the coordinator restarted or dropped you): join again"), to: id)
            return nil
        case .heartbeat:
            return nil
        default:
            return msg
        }
    }

    /// A hello: a server or worker filling a slot while the run is admitting, or a worker
    /// queued for the next step boundary when the run has a vacant slot.
    func hello(_ h: Hello, from id: [UInt8]) throws {
        if servers.contains(id) || workers.contains(where: { $0?.id == id }) || joining.contains(where: { $0.id == id }) { return }
        guard h.protocolVersion == Wire.protocolVersion else {
            try messenger.send(.error(.protocolMismatch, "protocol version \(h.protocolVersion), coordinator speaks \(Wire.protocolVersion)"), to: id)
            return
        }
        switch h.role {
        case .server where admitting && servers.count < recipe.cluster.servers:
            guard h.endpoint.hasPrefix("tcp://") || h.endpoint.hasPrefix("ipc://"), h.endpoint.utf8.count < 256 else {
                try messenger.send(.error(.malformed, "server endpoint \"\(h.endpoint)\" is not tcp:// or ipc://"), to: id)
                return
            }
            servers.append(id); serverEndpoints.append(h.endpoint)
            lastHeard[id] = Date()
            say("server \(servers.count - 1) joined: \(String(decoding: id, as: UTF8.self)) at \(h.endpoint)")
        case .server where !admitting || servers.count >= recipe.cluster.servers:
            // A spare: it waits (kept alive by heartbeats) and takes over a lost server's chunks.
            guard h.endpoint.hasPrefix("tcp://") || h.endpoint.hasPrefix("ipc://"), h.endpoint.utf8.count < 256,
                !spares.contains(where: { $0.id == id })
            else { return }
            spares.append((id, h.endpoint))
            say("server \(String(decoding: id, as: UTF8.self)) at \(h.endpoint) waits as a spare")
        case .worker where h.dataKey.count != 32:
            try messenger.send(.error(.malformed, "a worker's hello must carry its 32-byte data key"), to: id)
        case .worker where (admitting && !vacantSlots.isEmpty) || (!admitting && joining.count < workers.count):
            warnIfKernelDiffers(h.blasKernel, of: String(decoding: id, as: UTF8.self))
            if admitting {
                let slot = vacantSlots[0]
                workers[slot] = WorkerSlot(id: id, key: h.dataKey, kernel: h.blasKernel, threads: h.threads)
                lastHeard[id] = Date()
                say("worker \(slot) joined: \(String(decoding: id, as: UTF8.self))\(h.blasKernel.isEmpty ? "" : " (BLAS kernel \(h.blasKernel))")")
            } else {
                joining.append(WorkerSlot(id: id, key: h.dataKey, kernel: h.blasKernel, threads: h.threads))
                say("worker \(String(decoding: id, as: UTF8.self)) asks to join; admitted at the next step with a free slot")
            }
        default:
            try messenger.send(.error(.conflict, "the run already has all its \(h.role == .server ? "servers" : "workers")"), to: id)
        }
    }

    /// Kernels sum in their own order: a worker on another kernel than the others computes its
    /// shards in other bits. Training stays correct; comparisons between runs (resume, replay,
    /// evaluation) are bit-exact only on one kernel, so the run says so once per newcomer.
    func warnIfKernelDiffers(_ kernel: String, of worker: String) {
        let others = Set((workers.compactMap { $0?.kernel } + joining.map(\.kernel)).filter { !$0.isEmpty })
        guard !kernel.isEmpty, !others.isEmpty, !others.contains(kernel) else { return }
        say(
            "WARNING: worker \(worker) runs BLAS kernel \(kernel), the others \(others.sorted().joined(separator: ", ")): training is "
                + "correct, but not bit-identical to a run on one kernel (set REDI_PS_BLAS_KERNEL on every host to pin one)")
    }

    /// Waits until the recipe's servers and workers have said hello.
    func admit() throws {
        admitting = true
        defer { admitting = false }
        let started = Date()
        var lastStatus = Date()
        while servers.count < recipe.cluster.servers || !vacantSlots.isEmpty {
            // Processes may take a while to start (or to notice a restarted coordinator).
            let patience = max(recipe.cluster.timeoutSeconds, 60)
            if Date().timeIntervalSince(started) > patience {
                throw ClusterError(
                    "only \(servers.count)/\(recipe.cluster.servers) servers and \(workers.count - vacantSlots.count)/\(recipe.cluster.workers) workers joined within \(Int(patience)) s"
                )
            }
            if Date().timeIntervalSince(lastStatus) > 10 {
                say("waiting: \(servers.count)/\(recipe.cluster.servers) servers, \(workers.count - vacantSlots.count)/\(recipe.cluster.workers) workers")
                lastStatus = Date()
            }
            if let msg = try next(timeout: 1) { say("ignored \(msg.envelope.body) from \(name(of: msg.identity ?? [])) before the run started") }
        }
    }

    /// Admits queued workers into vacant slots before step `step`: servers learn the new
    /// membership and keys first, then the worker gets its Welcome.
    func admitJoiners(step: Int) throws {
        guard !joining.isEmpty, !vacantSlots.isEmpty else { return }
        var admitted: [Int] = []
        while let slot = vacantSlots.first, !joining.isEmpty {
            let w = joining.removeFirst()
            workers[slot] = w
            lastHeard[w.id] = Date()
            admitted.append(slot)
        }
        live = workers.indices.filter { workers[$0] != nil }
        try resetServers(step: step)
        for slot in admitted {
            try messenger.send(welcome(slot, role: .worker), to: workers[slot]!.id)
            say("worker \(slot) (\(String(decoding: workers[slot]!.id, as: UTF8.self))) admitted at step \(step + 1); \(live.count) workers")
        }
    }

    /// Tells every server which worker computes each shard and the workers' keys; waits for their acknowledgements.
    func resetServers(step: Int) throws {
        guard !live.isEmpty else { throw ClusterError("no workers left at step \(step + 1)") }
        for id in servers { try messenger.send(.reset(step: step, shardWorkers: shardOwners, workerKeys: workerKeys), to: id) }
        try awaitAcknowledgements(servers.count)
        version.shardsReassigned()  // as the servers did
    }

    /// Drops workers that have been silent for the timeout: their slots become vacant.
    func drop(_ slots: [Int], step: Int, because reason: String = "stopped answering") throws {
        for w in slots {
            // One that still listens is told, so it ends instead of waiting on a step that moved on.
            if let id = workers[w]?.id { try? messenger.send(.shutdown(reason: "dropped from the run: \(reason)", failed: true), to: id) }
            workers[w] = nil
        }
        live.removeAll { slots.contains($0) }
        say("worker(s) \(slots) \(reason) at step \(step + 1); continuing with \(live.count) workers")
        try resetServers(step: step)
    }

    /// Throws `ServerLost` when a server has been silent for the timeout.
    func checkServers() throws {
        for (s, id) in servers.enumerated() where Date().timeIntervalSince(lastHeard[id] ?? .distantPast) > recipe.cluster.timeoutSeconds {
            throw ServerLost(index: s, name: String(decoding: id, as: UTF8.self), seconds: recipe.cluster.timeoutSeconds)
        }
    }

    /// Re-plans after server `lost` stopped answering: a spare takes its place (and its
    /// chunks), or its chunks go round-robin to the survivors. Every server and worker gets
    /// the new plan; the caller then loads a snapshot into the servers.
    func replan(losing lost: Int) throws {
        let gone = servers[lost]
        lastHeard[gone] = nil
        if !spares.isEmpty {
            let spare = spares.removeFirst()
            servers[lost] = spare.id; serverEndpoints[lost] = spare.endpoint
            lastHeard[spare.id] = Date()
            say("spare server \(String(decoding: spare.id, as: UTF8.self)) takes over server \(lost)'s \(plan.owner.filter { $0 == lost }.count) chunks")
        } else {
            guard servers.count > 1 else { throw ClusterError("the only server stopped answering and no spare is waiting (start one with `redi-ps serve`)") }
            servers.remove(at: lost); serverEndpoints.remove(at: lost)
            var next = 0
            for c in plan.owner.indices {
                if plan.owner[c] == lost { plan.owner[c] = next % servers.count; next += 1 } else if plan.owner[c] > lost { plan.owner[c] -= 1 }
            }
            say("server \(lost)'s chunks are spread over the \(servers.count) servers left")
        }
        // No acknowledgement: the load of the snapshot that follows on each connection is.
        for (s, id) in servers.enumerated() { try messenger.send(welcome(s, role: .server), to: id) }
        for w in live { try messenger.send(welcome(w, role: .worker), to: workers[w]!.id) }
        // A spare starts with the first shard assignment; every server gets the current one.
        try resetServers(step: 0)
    }

    /// Receives until `count` messages from servers match (from the servers `asked`, when not
    /// all were: those are the ones blamed on a timeout); an error from any peer ends the run.
    func collectFromServers(_ count: Int, from asked: [Int]? = nil, _ matches: (Body) -> Bool) throws -> [Incoming] {
        var got: [Incoming] = []
        let started = Date()
        while got.count < count {
            // A server that heartbeats but never answers is lost too (a spare takes over).
            if Date().timeIntervalSince(started) > recipe.cluster.stepTimeoutSeconds,
                let s = (asked ?? Array(servers.indices)).first(where: { s in !got.contains { $0.identity == servers[s] } })
            {
                throw ServerLost(
                    index: s, name: String(decoding: servers[s], as: UTF8.self), seconds: recipe.cluster.stepTimeoutSeconds,
                    failedTo: "acknowledge a load or update")
            }
            guard let msg = try next(timeout: min(1, recipe.cluster.heartbeatSeconds)) else {
                try checkServers()
                continue
            }
            guard let id = msg.identity, servers.contains(id) else { continue }
            if matches(msg.envelope.body) { got.append(msg) }
        }
        return got
    }

    /// Waits for `count` servers' acknowledgements of a load, update, reset or snapshot command
    /// (from the servers `asked`, when not all were).
    func awaitAcknowledgements(_ count: Int, from asked: [Int]? = nil) throws {
        _ = try collectFromServers(count, from: asked) {
            if case .updateDone = $0 { return true }; return false
        }
    }

    /// Tells every server and worker the coordinator is alive, at most once per heartbeat interval.
    func keepAlive() {
        guard Date().timeIntervalSince(lastHeartbeat) >= recipe.cluster.heartbeatSeconds, let messenger else { return }
        for id in servers + workers.compactMap({ $0?.id }) + spares.map(\.id) + joining.map(\.id) { try? messenger.send(.heartbeat(step: 0), to: id) }
        lastHeartbeat = Date()
    }

    /// Tells every peer the run is over, and whether it failed.
    func shutdownAll(_ reason: String, failed: Bool) {
        guard let messenger else { return }
        let reason = stop.value.map { "coordinator stopped by signal \($0)" } ?? reason
        for id in servers + workers.compactMap({ $0?.id }) + joining.map(\.id) + spares.map(\.id) {
            try? messenger.send(.shutdown(reason: reason, failed: failed), to: id)
        }
        Thread.sleep(forTimeInterval: 0.2)  // let the messages leave before the socket closes
    }
}
