// Snapshots a lost server's steps are replayed from. They live on the servers: each keeps
// its own chunks at the snapshot and a replica of its predecessor's (server s's replica is on
// server s+1, the last's on the first; with one server, on the coordinator). The coordinator
// keeps only where the data stood, and relays replicas between servers in bounded rounds.
import ClusterCore
import Foundation
import Numerics
import Transport
import Wire

extension Coordinator {
    /// Where a snapshot left the data: what a replay starts from besides the servers' chunks.
    struct SnapshotMark {
        let tag: Int, step: Int
        /// Where the stage's data order stood.
        let data: EpochOrder
        let logMark: RunLog.Mark?
    }

    /// Takes a snapshot at this step boundary: every server's chunks replicated on its
    /// successor, then committed everywhere. `current` becomes the new mark at the commit,
    /// before its acknowledgements: from then on the servers hold the new snapshot, whatever
    /// is lost (before it, the previous one is whole on every server).
    func takeSnapshot(step: Int, data: EpochOrder, into current: inout SnapshotMark?) throws {
        let tag = snapshots.nextTag()
        try replicate(tag: tag)
        current = SnapshotMark(tag: tag, step: step, data: data, logMark: try runLog?.mark())
        try commit(tag: tag)
    }

    /// Phase 1: each server's live chunks (weights, m, v) into the replica its successor builds
    /// for `tag`, in rounds of at most `ChunkPlan.roundBytes` a server.
    private func replicate(tag: Int) throws {
        try relayRounds(perChunk: 3, ask: { .pull(version: version.number, chunks: $0, optimizerState: true) }) { s, ids, frames in
            if servers.count == 1 {
                try replicaOfOnlyServer.storeReplica(tag: tag, chunks: ids, sizes: chunkSizes, frames)
                return nil
            }
            let successor = (s + 1) % servers.count
            try messenger.send(
                .snapshot(SnapshotCommand(.storeReplica, tag: tag, chunks: ids)), to: servers[successor],
                tensors: frames.map(OutgoingTensor.init(forwarding:)))
            return successor
        }
    }

    /// Phase 2: every server makes its live chunks and the replica built for `tag` current.
    private func commit(tag: Int) throws {
        for id in servers { try messenger.send(.snapshot(SnapshotCommand(.commit, tag: tag)), to: id) }
        if servers.count == 1 { try replicaOfOnlyServer.commit(tag: tag, chunks: []) }
        snapshots.committed(owners: plan.owner, servers: servers)
        try awaitAcknowledgements(servers.count)
    }

    /// After a re-plan: every chunk back at snapshot `mark`, in place where its server kept its
    /// own copy, from its replica where it moved (a lost server's chunks, to a spare or the
    /// survivors); then the snapshot is taken again on the new chain of servers.
    func restoreSnapshot(_ mark: SnapshotMark) throws {
        version.weightsReplaced()
        let restore = try snapshots.restorePlan(owners: plan.owner, servers: servers)
        for (s, id) in servers.enumerated() {
            try messenger.send(.snapshot(SnapshotCommand(.restore, tag: mark.tag, chunks: restore.keptBy[s], version: version.number)), to: id)
        }
        try awaitAcknowledgements(servers.count)
        let perRound = chunksPerRound(framesPerChunk: 3)
        for group in restore.moves {
            for start in stride(from: 0, to: group.chunks.count, by: perRound) {
                let ids = Array(group.chunks[start..<min(start + perRound, group.chunks.count)])
                let tensors: [OutgoingTensor]
                if let h = group.holder {
                    try messenger.send(.snapshot(SnapshotCommand(.sendReplica, tag: mark.tag, chunks: ids)), to: servers[h])
                    let reply = try collectFromServers(1, from: [h]) {
                        if case .pullReply = $0 { return true }; return false
                    }[0]
                    try checkChunks(reply, ids: ids, perChunk: 3)
                    tensors = reply.tensors.map(OutgoingTensor.init(forwarding:))
                } else {
                    tensors = try replicaOfOnlyServer.replicaCopies(ids, tag: mark.tag).flatMap { copy in
                        [copy.weights, copy.m, copy.v].map { OutgoingTensor($0) }
                    }
                }
                try messenger.send(.load(chunks: ids, resetOptimizer: false, optimizerState: true, version: version.number), to: servers[group.owner], tensors: tensors)
                try awaitAcknowledgements(1, from: [group.owner])
            }
        }
        say("restored the snapshot of step \(mark.step): \(plan.chunks.count - restore.movedCount) chunks in place, \(restore.movedCount) from replicas")
        try replicate(tag: mark.tag)
        try commit(tag: mark.tag)
    }

    /// Each chunk's size, by id.
    var chunkSizes: [Int: Int] { Dictionary(uniqueKeysWithValues: plan.chunks.map { ($0.chunk, $0.count) }) }

    /// A pull reply's chunks must be the ones asked for, each `perChunk` fp32 frames of its size.
    func checkChunks(_ msg: Incoming, ids: [Int], perChunk: Int) throws {
        guard case let .pullReply(_, got, _) = msg.envelope.body, got == ids, ids.count * perChunk == msg.tensors.count,
            zip(ids.flatMap { Array(repeating: $0, count: perChunk) }, msg.tensors).allSatisfy({ $1.holds(plan.chunks[$0].count, bf16: false) })
        else {
            throw ClusterError("\(name(of: msg.identity!)) answered a pull with chunks or sizes that do not match the plan")
        }
    }

    /// Chunks of `framesPerChunk` fp32 frames that fit one round of `ChunkPlan.roundBytes` (at least one).
    func chunksPerRound(framesPerChunk: Int) -> Int {
        max(1, ChunkPlan.roundBytes / max(1, 4 * framesPerChunk * (plan.chunks.map(\.count).max() ?? 1)))
    }

    /// Moves every server's chunks (`perChunk` fp32 frames each: weights, or weights, m and v)
    /// through this process in rounds of at most `ChunkPlan.roundBytes` a server, so what is in flight
    /// stays bounded: every server with chunks left is asked for its next round (`ask`), each
    /// reply is checked against the plan and handed to `deliver` (which returns the server it
    /// sent it on to, whose acknowledgement ends the round, or nil when it kept it), then the next round.
    func relayRounds(
        perChunk: Int, ask: ([Int]) -> Body,
        deliver: (_ server: Int, _ ids: [Int], _ frames: [ReceivedFrame]) throws -> Int?
    ) throws {
        let perRound = chunksPerRound(framesPerChunk: perChunk)
        let owned = servers.indices.map { s in plan.chunks.indices.filter { plan.owner[$0] == s } }
        let rounds = owned.map { ids in stride(from: 0, to: ids.count, by: perRound).map { Array(ids[$0..<min($0 + perRound, ids.count)]) } }
        for round in 0..<(rounds.map(\.count).max() ?? 0) {
            let asked = servers.indices.filter { round < rounds[$0].count }
            for s in asked { try messenger.send(ask(rounds[s][round]), to: servers[s]) }
            var forwarded: [Int] = []
            for msg in try collectFromServers(
                asked.count, from: asked,
                {
                    if case .pullReply = $0 { return true }; return false
                })
            {
                let s = servers.firstIndex(of: msg.identity!)!
                guard asked.contains(s) else { throw ClusterError("\(name(of: msg.identity!)) answered a pull it was not asked for") }
                try checkChunks(msg, ids: rounds[s][round], perChunk: perChunk)
                if let to = try deliver(s, rounds[s][round], msg.tensors) { forwarded.append(to) }
            }
            if !forwarded.isEmpty {
                try awaitAcknowledgements(forwarded.count, from: forwarded)
            }
        }
    }
}
