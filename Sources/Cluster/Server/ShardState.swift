// What a parameter server knows and decides, without sockets: the chunks it holds (weights,
// AdamW m and v, the step's gradient sum), the parameter version, which worker computes which
// shard, and the rules for a push — counted, held for its predecessors, stale, or refused.
// `ParameterServer` is the loop that feeds it messages and sends what it returns.
import ClusterCore
import Foundation
import Model
import Numerics
import Optimizer
import Transport
import Wire

/// A received tensor as the server reads it: a network frame, or an array in tests.
public protocol ReceivedValues {
    func holds(_ values: Int, bf16: Bool) -> Bool
    func sumOfSquares(bf16: Bool) -> Double
    /// Adds the values into `destination`, which holds exactly as many.
    func addValues(into destination: FloatBuffer, bf16: Bool)
    /// Copies the values into `destination`, which holds exactly as many.
    func copyValues(into destination: FloatBuffer, bf16: Bool)
}

extension ReceivedFrame: ReceivedValues {}

public struct ShardState {
    public final class Chunk {
        public let range: ChunkRange
        public let weights: FloatBuffer, m: FloatBuffer, v: FloatBuffer, gradient: FloatBuffer
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

        /// Adds shard `shard`'s push in shard order: now when it is next, else later, when its
        /// predecessors have arrived (then `ack` waits with it). Returns whether it was held,
        /// and the acknowledgements of held pushes this call added.
        func accept(_ values: some ReceivedValues, shard: Int, bf16: Bool, ack: Acknowledgement) -> (held: Bool, released: [Acknowledgement]) {
            guard shard == summed else {
                let copy = FloatBuffer(count: range.count)
                values.copyValues(into: copy, bf16: bf16)
                early[shard] = (copy, ack)
                return (true, [])
            }
            if summed == 0 { gradient.zero() }
            values.addValues(into: gradient, bf16: bf16)
            summed += 1
            var released: [Acknowledgement] = []
            while let next = early.removeValue(forKey: summed) {
                gradient.add(next.values)
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
    public struct Acknowledgement: Equatable {
        public let peer: [UInt8]
        public let step: Int
        public init(peer: [UInt8], step: Int) { self.peer = peer; self.step = step }
    }

    /// A step whose every shard has arrived: what the server reports to the coordinator.
    public struct Completed: Equatable {
        public let step: Int, chunks: [Int], sums: [Double], shardSums: [Double]
        public init(step: Int, chunks: [Int], sums: [Double], shardSums: [Double]) {
            self.step = step; self.chunks = chunks; self.sums = sums; self.shardSums = shardSums
        }
    }

    public enum PushOutcome: Equatable {
        /// From an attempt the coordinator abandoned: acknowledged, not counted.
        case stale
        /// Refused with a reason; the run goes on.
        case refused(PeerError, String)
        /// Refused, and the run must end (non-finite values).
        case fatal(String)
        /// Counted (or held): acknowledge these; `mostHeld` when a new high of held pushes was
        /// reached; `completed` when this push completed the step's sum.
        case accepted(acknowledge: [Acknowledgement], mostHeld: Int?, completed: Completed?)
    }

    public private(set) var chunks: [Int: Chunk] = [:]
    public private(set) var ordered: [Chunk] = []
    /// Moved by every load, update and reset (`ParameterVersion`'s rules): a push must be computed at the current one.
    public private(set) var version = ParameterVersion()
    public let slots: Int
    /// The worker slot that computes each shard this step.
    public private(set) var owners: [Int]
    public let bf16Gradients: Bool
    /// Chunks received for each shard this step: the step's gradient is complete when every
    /// shard has every chunk this server holds (in one push or several).
    private var received: [Set<Int>]
    /// Σg² of each shard's push of each chunk this step (by chunk id), summed in chunk order for the report.
    private var pushSums: [[Int: Double]]
    /// The version whose sum is complete and reported: one contribution per (version, shard),
    /// so nothing more is taken at it (a second push would replace the reported sum).
    private var summedAt: ParameterVersion?
    /// The most pushes held at once so far (at most one per worker).
    public private(set) var mostHeld = 0

    public init(slots: Int, bf16Gradients: Bool) {
        self.slots = slots; self.bf16Gradients = bf16Gradients
        owners = Array(0..<slots)
        received = Array(repeating: [], count: slots)
        pushSums = Array(repeating: [:], count: slots)
    }

    /// Takes the chunks a (new) plan assigns; their contents arrive with the next load.
    public mutating func configure(_ ranges: [ChunkRange], layout: ParameterLayout) {
        chunks = Dictionary(uniqueKeysWithValues: ranges.map { ($0.chunk, Chunk($0, layout: layout)) })
        ordered = chunks.values.sorted { $0.range.chunk < $1.range.chunk }
        forgetPushes()
    }

    private mutating func forgetPushes() {
        for s in 0..<slots { received[s].removeAll(); pushSums[s].removeAll() }
    }

    /// Copies loaded chunks in (weights, and m and v with `optimizerState`; zeroed m and v with
    /// `reset`) after checking every tensor, and takes the load's version. A load of no chunks
    /// with `reset` zeroes every chunk's m and v (a new stage; the weights stay).
    public mutating func load(_ ids: [Int], _ tensors: [some ReceivedValues], reset: Bool, optimizerState: Bool, version loaded: Int) throws {
        let per = optimizerState ? 3 : 1
        guard ids.count * per == tensors.count, Set(ids).count == ids.count else {
            throw ShardStateError("load of \(ids.count) chunks with \(tensors.count) tensors")
        }
        for (k, id) in ids.enumerated() {
            guard let c = chunks[id], tensors[k * per..<(k + 1) * per].allSatisfy({ $0.holds(c.range.count, bf16: false) }) else {
                throw ShardStateError("bad load for chunk \(id)")
            }
        }
        for (k, id) in ids.enumerated() {
            let c = chunks[id]!
            tensors[k * per].copyValues(into: c.weights, bf16: false)
            if optimizerState {
                tensors[k * per + 1].copyValues(into: c.m, bf16: false)
                tensors[k * per + 2].copyValues(into: c.v, bf16: false)
            } else if reset {
                c.m.zero(); c.v.zero()
            }
        }
        if ids.isEmpty && reset { for c in ordered { c.m.zero(); c.v.zero() } }
        version.adopt(loaded); summedAt = nil
    }

    /// Takes chunks `ids` of snapshot `tag` back from `snapshots` and the version the coordinator
    /// gives (a lost server's chunks, which this one now holds, arrive in a load).
    public mutating func restore(from snapshots: SnapshotStore, tag: Int, chunks ids: [Int], version restoredAt: Int) throws {
        try snapshots.restore(tag: tag, chunks: ids, into: chunks)
        version.adopt(restoredAt); summedAt = nil
    }

    /// AdamW on every chunk with the step's summed gradient (chunks in parallel), all of it
    /// before the update is acknowledged and the next step's pulls come. Applying it chunk by
    /// chunk while answering those pulls (so it overlaps the workers' forward) was measured
    /// slower where a server shares its cores with workers (2 cores, SmolLM2: median step 8.0 s against
    /// 7.6 s): memory-bound AdamW beside the workers' products slows them more than it hides.
    public mutating func apply(_ u: ApplyUpdate) throws {
        guard [u.learningRate, u.gradientScale, u.adamW.beta1, u.adamW.beta2, u.adamW.eps, u.adamW.weightDecay].allSatisfy(\.isFinite),
            u.optimizerStep >= 1
        else {
            throw ShardStateError("the coordinator sent an update with non-finite or invalid settings")
        }
        let ordered = ordered
        parallelRanges(ordered.count) { r in
            for c in ordered[r] {
                adamWStep(
                    parameters: c.weights, gradients: c.gradient, m: c.m, v: c.v, learningRate: u.learningRate, step: u.optimizerStep,
                    gradientScale: u.gradientScale, config: u.adamW, undecayed: c.undecayed)
            }
        }
        version.stepApplied()
    }

    /// A new shard assignment: held pushes are dropped with the step (their acknowledgements
    /// returned, as not counted, so no worker waits on them) and earlier pushes become stale.
    public mutating func reset(owners newOwners: [Int]) throws -> [Acknowledgement] {
        guard newOwners.count == slots, newOwners.allSatisfy({ $0 >= 0 && $0 < slots }) else {
            throw ShardStateError("the coordinator assigned \(newOwners.count) shards to workers \(newOwners)")
        }
        owners = newOwners
        forgetPushes()
        version.shardsReassigned()
        return chunks.values.flatMap { $0.clear() }
    }

    /// The rules for one push from the connection admitted as `user` (a ZAP user id).
    public mutating func push(
        from user: String, step: Int, chunks ids: [Int], shard: Int, computedAt pushedAt: Int,
        values: [some ReceivedValues], ack: Acknowledgement
    ) -> PushOutcome {
        if version.isStale(pushedAt) && user.hasPrefix("worker-") { return .stale }
        guard shard >= 0, shard < slots, user == "worker-\(owners[shard])" else {
            return .refused(.notYours, "a push for shard \(shard) from \(user.isEmpty ? "a connection without a worker key" : user), which does not compute it")
        }
        guard !version.isStale(pushedAt), !version.isAhead(pushedAt) else {
            return .refused(.conflict, "a push for step \(step + 1) computed at version \(pushedAt); this server is at version \(version)")
        }
        guard summedAt != version else {
            return .refused(.conflict, "a second push for step \(step + 1) shard \(shard) from \(user): every shard of this step was summed and reported")
        }
        let worker = owners[shard]
        guard ids.count == values.count, Set(ids).count == ids.count, received[shard].isDisjoint(with: ids),
            zip(ids, values).allSatisfy({ id, v in chunks[id].map { v.holds($0.range.count, bf16: bf16Gradients) } ?? false })
        else {
            return .refused(.malformed, "bad or duplicate push from worker \(worker): chunks \(ids) do not match this server's")
        }
        // Every value finite before anything is added (Σg² is not finite otherwise).
        let sums = values.map { $0.sumOfSquares(bf16: bf16Gradients) }
        guard sums.allSatisfy(\.isFinite) else {
            return .fatal("worker \(worker) pushed non-finite gradients for step \(step + 1) (chunks \(ids))")
        }
        // A push held early is acknowledged when its predecessors arrive, so it must be one
        // chunk, and a worker has at most one held (the bound on this server's memory).
        let early = ids.contains { chunks[$0]!.summed != shard }
        guard !early || (ids.count == 1 && !ordered.contains { $0.early[shard] != nil }) else {
            return .refused(.malformed, "worker \(worker) pushed ahead of its turn before its held push was acknowledged, or several chunks at once")
        }
        var acknowledge: [Acknowledgement] = [], held = false
        for (id, v) in zip(ids, values) {
            let (wasHeld, released) = chunks[id]!.accept(v, shard: shard, bf16: bf16Gradients, ack: ack)
            held = held || wasHeld
            acknowledge += released
        }
        received[shard].formUnion(ids)
        for (id, sum) in zip(ids, sums) { pushSums[shard][id] = sum }
        var newHigh: Int?
        if held {
            let holding = ordered.reduce(0) { $0 + $1.early.count }
            if holding > mostHeld { mostHeld = holding; newHigh = holding }
        } else {
            acknowledge.append(ack)
        }
        guard received.allSatisfy({ $0.count == chunks.count }) else { return .accepted(acknowledge: acknowledge, mostHeld: newHigh, completed: nil) }
        let shardSums = pushSums.map { byChunk in ordered.reduce(0.0) { $0 + byChunk[$1.range.chunk]! } }
        let completed = Completed(step: step, chunks: ordered.map(\.range.chunk), sums: chunkSumsOfSquares(), shardSums: shardSums)
        summedAt = version
        forgetPushes()
        for c in ordered { c.clear() }  // the sums stay in `gradient` for the update
        return .accepted(acknowledge: acknowledge, mostHeld: newHigh, completed: completed)
    }

    /// Each chunk's Σg² once every shard has been added (chunks in parallel).
    private func chunkSumsOfSquares() -> [Double] {
        let ordered = ordered
        return parallelMap(ordered.count) { k in
            precondition(ordered[k].early.isEmpty, "chunk \(ordered[k].range.chunk): a push was never added")
            return ordered[k].gradient.sumOfSquares
        }
    }
}

/// A coordinator message the server's state cannot take (the server's loop prefixes its name).
public struct ShardStateError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
