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

extension Coordinator {
    func name(of id: [UInt8]) -> String { members.name(of: id) }

    var vacantSlots: [Int] { members.vacantSlots }
    var workerKeys: [[UInt8]] { members.workerKeys }
    var shardOwners: [Int] { members.shardOwners }

    /// The next message for the caller, or nil when `timeout` passed or the message was one
    /// this loop consumed: heartbeats, hellos (admitted or queued), errors from dropped peers.
    ///
    /// - Throws: `ClusterError` for an error from a member (it ends the run) or a stop signal.
    func next(timeout: Double) throws -> Incoming? {
        try checkStop()
        keepAlive()
        guard let msg = try messenger.receive(timeout: timeout, onInvalid: { self.say("dropped: \($0)") }), let id = msg.identity else { return nil }
        switch members.classify(msg.envelope.body, from: id) {
        case .deliver:
            return msg
        case .heartbeat:
            return nil
        case .hello:
            if case let .hello(h) = msg.envelope.body { try hello(h, from: id) }
            return nil
        case let .serverFault(s, detail):
            // A worker got chunks from a server that the plan rules out: that server is replaced
            // (its steps replayed), the worker stays.
            throw ServerLost(index: s, name: String(decoding: servers[s], as: UTF8.self), seconds: 0, failedTo: "answer \(name(of: id)) within the plan (\(detail))")
        case let .lateServerFault(message):
            say("\(name(of: id)) reported a server no longer in the plan: \(message)")
            return nil
        case let .memberFailed(message):
            throw ClusterError("\(name(of: id)) failed: \(message)")
        case let .strayError(message):
            say("ignored an error from \(name(of: id)), which is not in the run: \(message)")
            return nil
        case let .stray(firstTime):
            if firstTime { say("\(name(of: id)) is not in the run; told to join again") }
            try? messenger.send(.error(.notInRun, "not in this run (the coordinator restarted or dropped you): join again"), to: id)
            return nil
        }
    }

    /// A hello, decided by `Membership` and answered here.
    func hello(_ h: Hello, from id: [UInt8]) throws {
        let who = String(decoding: id, as: UTF8.self)
        switch members.hello(h, from: id) {
        case .known:
            break
        case let .refused(code, message):
            try messenger.send(.error(code, message), to: id)
        case let .serverJoined(index):
            say("server \(index) joined: \(who) at \(h.endpoint)")
        case .spare:
            say("server \(who) at \(h.endpoint) waits as a spare")
        case let .workerJoined(slot, warning):
            if let warning { say(warning) }
            say("worker \(slot) joined: \(who)\(h.blasKernel.isEmpty ? "" : " (BLAS kernel \(h.blasKernel))")")
        case let .workerQueued(warning):
            if let warning { say(warning) }
            say("worker \(who) asks to join; admitted at the next step with a free slot")
        }
    }

    /// Waits until the recipe's servers and workers have said hello.
    func admit() throws {
        members.admitting = true
        defer { members.admitting = false }
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
        let admitted = members.admitJoiners()
        guard !admitted.isEmpty else { return }
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
        // One that still listens is told, so it ends instead of waiting on a step that moved on.
        for id in members.drop(slots) { try? messenger.send(.shutdown(reason: "dropped from the run: \(reason)", failed: true), to: id) }
        say("worker(s) \(slots) \(reason) at step \(step + 1); continuing with \(live.count) workers")
        try resetServers(step: step)
    }

    /// Throws `ServerLost` when a server has been silent for the timeout.
    func checkServers() throws {
        if let s = members.silentServer(timeout: recipe.cluster.timeoutSeconds) {
            throw ServerLost(index: s, name: String(decoding: servers[s], as: UTF8.self), seconds: recipe.cluster.timeoutSeconds)
        }
    }

    /// Re-plans after server `lost` stopped answering: a spare takes its place (and its
    /// chunks), or its chunks go round-robin to the survivors. Every server and worker gets
    /// the new plan; the caller then loads a snapshot into the servers.
    func replan(losing lost: Int) throws {
        switch try members.replace(lost, owners: &plan.owner) {
        case let .spare(id):
            say("spare server \(String(decoding: id, as: UTF8.self)) takes over server \(lost)'s \(plan.owner.filter { $0 == lost }.count) chunks")
        case .spread:
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
        for id in members.everyone { try? messenger.send(.heartbeat(step: 0), to: id) }
        lastHeartbeat = Date()
    }

    /// Tells every peer the run is over, and whether it failed.
    func shutdownAll(_ reason: String, failed: Bool) {
        guard let messenger else { return }
        let reason = stop.value.map { "coordinator stopped by signal \($0)" } ?? reason
        for id in members.everyone {
            try? messenger.send(.shutdown(reason: reason, failed: failed), to: id)
        }
        Thread.sleep(forTimeInterval: 0.2)  // let the messages leave before the socket closes
    }
}
