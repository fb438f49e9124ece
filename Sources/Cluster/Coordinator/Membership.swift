// Who is in the run, as plain state: servers, spares, worker slots, workers waiting for one,
// when each member was last heard, and the coordinator's decisions on hellos and on messages
// from members and strangers. No sockets: the coordinator carries the decisions out (replies,
// logs, welcomes), and the rules are unit-tested here, hostile peers' cases included.
import ClusterCore
import Foundation
import Wire

/// A worker slot's occupant: its control routing id and its data-plane key.
public struct WorkerSlot: Equatable, Sendable {
    public let id: [UInt8]
    public let key: [UInt8]
    /// The OpenBLAS kernel it said it runs ("" when it did not say).
    public var kernel = ""
    /// The threads it computes with: with the kernel, what makes two workers' results bit-identical.
    public var threads = 0
}

public struct Membership {
    public private(set) var servers: [[UInt8]] = []
    public private(set) var serverEndpoints: [String] = []
    /// One slot per worker the recipe asks for; nil while vacant.
    public private(set) var workers: [WorkerSlot?]
    /// Workers that said hello mid-run, admitted into vacant slots at the next step.
    public private(set) var joining: [WorkerSlot] = []
    /// Servers beyond the recipe's count, waiting to replace one that is lost.
    public private(set) var spares: [(id: [UInt8], endpoint: String)] = []
    /// Slots of the workers in the current step; batches are split over these.
    public private(set) var live: [Int] = []
    /// While the run starts: hellos fill the recipe's servers and slots (later, workers queue and servers wait as spares).
    public var admitting = false
    public private(set) var lastHeard: [[UInt8]: Date] = [:]
    /// Peers that sent something without being in the run (logged once each; bounded).
    private var strays = Set<[UInt8]>()
    public let serversWanted: Int

    public init(servers: Int, workers: Int) {
        serversWanted = servers
        self.workers = Array(repeating: nil, count: workers)
    }

    // MARK: Views

    /// Slots that are empty (never filled, or their worker was dropped).
    public var vacantSlots: [Int] { workers.indices.filter { workers[$0] == nil } }

    /// Every slot's data key, empty for a vacant slot: what servers admit.
    public var workerKeys: [[UInt8]] { workers.map { $0?.key ?? [] } }

    /// The worker slot that computes each shard: a batch always has one shard per slot, and
    /// the live workers take them in turn, so the sums never depend on who is alive.
    public var shardOwners: [Int] { workers.indices.map { live[$0 % live.count] } }

    /// Every peer the coordinator talks to: members, spares and queued workers.
    public var everyone: [[UInt8]] { servers + workers.compactMap { $0?.id } + spares.map(\.id) + joining.map(\.id) }

    public func isMember(_ id: [UInt8]) -> Bool { servers.contains(id) || isWorker(id) }
    public func isWorker(_ id: [UInt8]) -> Bool { workers.contains { $0?.id == id } }

    public func name(of id: [UInt8]) -> String {
        let text = String(decoding: id, as: UTF8.self)
        if let s = servers.firstIndex(of: id) { return "server \(s) (\(text))" }
        if let w = workers.firstIndex(where: { $0?.id == id }) { return "worker \(w) (\(text))" }
        return text
    }

    // MARK: Hellos

    /// What a hello led to.
    public enum HelloOutcome: Equatable {
        /// Already a member, queued or waiting as a spare (a repeated hello changes nothing).
        case known
        /// Answered with this error; nothing changes.
        case refused(PeerError, String)
        case serverJoined(index: Int)
        case spare
        case workerJoined(slot: Int, kernelWarning: String?)
        case workerQueued(kernelWarning: String?)
    }

    public mutating func hello(_ h: Hello, from id: [UInt8], now: Date = Date()) -> HelloOutcome {
        if isMember(id) || joining.contains(where: { $0.id == id }) || spares.contains(where: { $0.id == id }) { return .known }
        guard h.protocolVersion == Wire.protocolVersion else {
            return .refused(.protocolMismatch, "protocol version \(h.protocolVersion), coordinator speaks \(Wire.protocolVersion)")
        }
        let validEndpoint = (h.endpoint.hasPrefix("tcp://") || h.endpoint.hasPrefix("ipc://")) && h.endpoint.utf8.count < 256
        switch h.role {
        case .server where admitting && servers.count < serversWanted:
            guard validEndpoint else { return .refused(.malformed, "server endpoint \"\(h.endpoint)\" is not tcp:// or ipc://") }
            servers.append(id)
            serverEndpoints.append(h.endpoint)
            lastHeard[id] = now
            return .serverJoined(index: servers.count - 1)
        case .server:
            // A spare: it waits (kept alive by heartbeats) and takes over a lost server's chunks.
            guard validEndpoint else { return .known }
            spares.append((id, h.endpoint))
            return .spare
        case .worker where h.dataKey.count != 32:
            return .refused(.malformed, "a worker's hello must carry its 32-byte data key")
        case .worker where (admitting && !vacantSlots.isEmpty) || (!admitting && joining.count < workers.count):
            let warning = kernelWarning(h.blasKernel, of: String(decoding: id, as: UTF8.self))
            let slot = WorkerSlot(id: id, key: h.dataKey, kernel: h.blasKernel, threads: h.threads)
            guard admitting else {
                joining.append(slot)
                return .workerQueued(kernelWarning: warning)
            }
            let s = vacantSlots[0]
            workers[s] = slot
            lastHeard[id] = now
            return .workerJoined(slot: s, kernelWarning: warning)
        default:
            return .refused(.conflict, "the run already has all its \(h.role == .server ? "servers" : "workers")")
        }
    }

    /// Kernels sum in their own order: a worker on another kernel than the others computes its
    /// shards in other bits. Training stays correct; comparisons between runs (resume, replay,
    /// evaluation) are bit-exact only on one kernel, so the run says so once per newcomer.
    func kernelWarning(_ kernel: String, of worker: String) -> String? {
        let others = Set((workers.compactMap { $0?.kernel } + joining.map(\.kernel)).filter { !$0.isEmpty })
        guard !kernel.isEmpty, !others.isEmpty, !others.contains(kernel) else { return nil }
        return "WARNING: worker \(worker) runs BLAS kernel \(kernel), the others \(others.sorted().joined(separator: ", ")): training is "
            + "correct, but not bit-identical to a run on one kernel (set REDI_PS_BLAS_KERNEL on every host to pin one)"
    }

    // MARK: Messages

    /// What to do with a message from `id` (a member's message also counts as a heartbeat).
    public enum Verdict: Equatable {
        /// For the caller (a report, an acknowledgement, a norm).
        case deliver
        case heartbeat
        case hello
        /// A worker reports that server `index` answered outside the plan: that server is replaced.
        case serverFault(index: Int, detail: String)
        /// A report naming a server no longer in the plan (late): logged.
        case lateServerFault(String)
        /// A member failed: the run ends.
        case memberFailed(String)
        /// An error from a peer not in the run: logged and ignored.
        case strayError(String)
        /// A peer not in the run (an earlier coordinator's, or dropped): told to join again;
        /// `firstTime` says whether to log it.
        case stray(firstTime: Bool)
    }

    public mutating func classify(_ body: Body, from id: [UInt8], now: Date = Date()) -> Verdict {
        let member = isMember(id)
        if member { lastHeard[id] = now }
        switch body {
        case .hello:
            return .hello
        case let .error(PeerError.serverFault.rawValue, message) where isWorker(id) && message.hasPrefix("server "):
            let endpoint = String(message.dropFirst("server ".count).prefix { $0 != " " }.dropLast())
            guard let s = serverEndpoints.firstIndex(of: endpoint) else { return .lateServerFault(message) }
            return .serverFault(index: s, detail: String(message.dropFirst(endpoint.count + 9)))
        case let .error(_, message):
            return member ? .memberFailed(message) : .strayError(message)
        case _ where !member:
            if strays.count >= 4096 { strays.removeAll() }  // bounded: peers come and go
            return .stray(firstTime: strays.insert(id).inserted)
        case .heartbeat:
            return .heartbeat
        default:
            return .deliver
        }
    }

    // MARK: Changes between steps

    /// Every slot filled at the start: all of them compute.
    public mutating func beginRun() { live = Array(workers.indices) }

    /// Queued workers into vacant slots (first come, lowest slot); returns the slots filled.
    public mutating func admitJoiners(now: Date = Date()) -> [Int] {
        var admitted: [Int] = []
        while let slot = vacantSlots.first, !joining.isEmpty {
            let w = joining.removeFirst()
            workers[slot] = w
            lastHeard[w.id] = now
            admitted.append(slot)
        }
        if !admitted.isEmpty { live = workers.indices.filter { workers[$0] != nil } }
        return admitted
    }

    /// Empties `slots`; returns their workers' ids (to be told).
    public mutating func drop(_ slots: [Int]) -> [[UInt8]] {
        let ids = slots.compactMap { workers[$0]?.id }
        for w in slots { workers[w] = nil }
        live.removeAll { slots.contains($0) }
        return ids
    }

    /// How a lost server was replaced.
    public enum Replacement: Equatable {
        /// A spare took its place and its chunks.
        case spare(id: [UInt8])
        /// Its chunks went round-robin to the survivors (`owners` renumbered).
        case spread
    }

    /// Replaces server `lost`: a waiting spare takes its index, or its chunks in `owners` go
    /// round-robin to the survivors (later servers' indices shift down by one).
    public mutating func replace(_ lost: Int, owners: inout [Int], now: Date = Date()) throws -> Replacement {
        lastHeard[servers[lost]] = nil
        if !spares.isEmpty {
            let spare = spares.removeFirst()
            servers[lost] = spare.id
            serverEndpoints[lost] = spare.endpoint
            lastHeard[spare.id] = now
            return .spare(id: spare.id)
        }
        guard servers.count > 1 else { throw ClusterError("the only server stopped answering and no spare is waiting (start one with `redi-ps serve`)") }
        servers.remove(at: lost)
        serverEndpoints.remove(at: lost)
        var next = 0
        for c in owners.indices {
            if owners[c] == lost {
                owners[c] = next % servers.count
                next += 1
            } else if owners[c] > lost {
                owners[c] -= 1
            }
        }
        return .spread
    }

    /// The first server silent for longer than `timeout`, if any.
    public func silentServer(timeout: Double, now: Date = Date()) -> Int? {
        servers.indices.first { now.timeIntervalSince(lastHeard[servers[$0]] ?? .distantPast) > timeout }
    }

    /// Of `slots`, the workers silent for longer than `timeout`.
    public func silentWorkers(_ slots: [Int], timeout: Double, now: Date = Date()) -> [Int] {
        slots.filter { s in workers[s].map { now.timeIntervalSince(lastHeard[$0.id] ?? .distantPast) > timeout } ?? false }.sorted()
    }
}
