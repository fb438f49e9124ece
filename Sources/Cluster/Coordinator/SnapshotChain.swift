// Where the servers' snapshot copies are, as plain state: at each commit every chunk's own
// copy stays with the server that owns it and its replica with that server's successor in
// the chain (the last's on the first; with one server, on the coordinator). After a lost
// server and a re-plan, which chunks are restored in place and which from which replica.
import ClusterCore

public struct SnapshotChain: Sendable {
    /// The last snapshot tag handed out.
    public private(set) var tag = 0
    /// Per chunk, at the last commit: the server keeping its own copy, and the one keeping its
    /// replica (nil: the coordinator's, when there was one server).
    public private(set) var owner: [[UInt8]] = []
    public private(set) var replicaHolder: [[UInt8]?] = []

    /// What a restore does: per server (new plan's index), the chunks it restores from its own
    /// copy; and the chunks that moved, grouped by (replica holder: a server index, or nil for
    /// the coordinator; new owner), in chunk order.
    public struct RestorePlan: Equatable, Sendable {
        public var keptBy: [[Int]]
        public var moves: [Move]
        public struct Move: Equatable, Sendable {
            public var holder: Int?, owner: Int, chunks: [Int]
            public init(holder: Int?, owner: Int, chunks: [Int]) { self.holder = holder; self.owner = owner; self.chunks = chunks }
        }
        public var movedCount: Int { moves.reduce(0) { $0 + $1.chunks.count } }
    }

    public init() {}

    /// A fresh tag for the next snapshot.
    public mutating func nextTag() -> Int {
        tag += 1
        return tag
    }

    /// Records a commit: chunk c kept by `servers[owners[c]]`, its replica by the next server.
    public mutating func committed(owners: [Int], servers: [[UInt8]]) {
        owner = owners.map { servers[$0] }
        replicaHolder = owners.map { servers.count == 1 ? nil : servers[($0 + 1) % servers.count] }
    }

    /// How the last commit is restored onto the plan `owners` over `servers`.
    /// - Throws: when a moved chunk's replica holder is gone too (both copies lost).
    public func restorePlan(owners: [Int], servers: [[UInt8]]) throws -> RestorePlan {
        precondition(owners.count == owner.count, "a restore needs a committed snapshot of the same chunks")
        var plan = RestorePlan(keptBy: Array(repeating: [], count: servers.count), moves: [])
        for (c, s) in owners.enumerated() {
            if servers[s] == owner[c] {
                plan.keptBy[s].append(c)
                continue
            }
            var holder: Int?
            if let h = replicaHolder[c] {
                guard let index = servers.firstIndex(of: h) else {
                    throw ClusterError("chunk \(c): the server that held it and the one holding its replica were both lost; no snapshot to restore it from")
                }
                holder = index
            }
            if let g = plan.moves.firstIndex(where: { $0.holder == holder && $0.owner == s }) {
                plan.moves[g].chunks.append(c)
            } else {
                plan.moves.append(.init(holder: holder, owner: s, chunks: [c]))
            }
        }
        return plan
    }
}
