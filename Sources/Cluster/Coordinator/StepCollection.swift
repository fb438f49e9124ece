// One attempt at a step, as its messages arrive: each shard's report from the worker it was
// sent to, each chunk's Σg² from the server that holds it, and the recomputations asked for.
// Plain state with no sockets: every rule for what is taken, ignored or fatal reads on its own
// (the coordinator's receive loop, timeouts and drops are in Coordinator+Work).
import ClusterCore
import Wire

public struct StepCollection {
    public let step: Int, version: Int
    /// The example ids sent in each shard, and the worker slot each shard went to.
    public let sent: [[Int]], owners: [Int]
    /// Shards another worker recomputes, and which.
    public let checks: [(shard: Int, slot: Int)]
    /// The server holding each chunk, and the servers whose norms the step waits for.
    public let chunkOwner: [Int], expectedNorms: [Int]
    public private(set) var reports: [Int: StepReport] = [:]
    public private(set) var recomputed: [Int: StepReport] = [:]
    public private(set) var chunkSums: [Double?]
    public private(set) var normsFrom = Set<Int>()
    /// Each server's Σg² per shard over its chunks.
    public private(set) var shardSumsFrom: [Int: [Double]] = [:]

    public init(step: Int, version: Int, sent: [[Int]], owners: [Int], checks: [(shard: Int, slot: Int)], chunkOwner: [Int], expectNorms: Bool) {
        self.step = step; self.version = version; self.sent = sent; self.owners = owners; self.checks = checks
        self.chunkOwner = chunkOwner
        expectedNorms = expectNorms ? Set(chunkOwner).sorted() : []
        chunkSums = Array(repeating: nil, count: expectNorms ? chunkOwner.count : 0)
    }

    public var isComplete: Bool { reports.count == sent.count && normsFrom.count == expectedNorms.count && recomputed.count == checks.count }
    /// The first shard whose report has not come.
    public var firstMissingShard: Int? { sent.indices.first { reports[$0] == nil } }
    /// The first server whose norms have not come.
    public var firstSilentServer: Int? { expectedNorms.first { !normsFrom.contains($0) } }
    /// The first recomputation that has not come.
    public var firstMissingCheck: (shard: Int, slot: Int)? { checks.first { recomputed[$0.shard] == nil } }
    /// Worker slots that still owe a report or a recomputation.
    public var waitingOn: Set<Int> { Set(sent.indices.filter { reports[$0] == nil }.map { owners[$0] } + checks.filter { recomputed[$0.shard] == nil }.map(\.slot)) }

    /// A worker's report from slot `slot` (nil: not a worker), `sender` naming it in messages.
    /// Returns why it was ignored (a shard it was not given, a repeat, a recomputation not
    /// asked for), nil when taken or when it is another step's or version's (a late report of
    /// an attempt given up, dropped silently). A recomputation carries its per-chunk sums.
    /// - Throws: when the worker reports non-finite values or examples it was not given.
    public mutating func take(_ r: StepReport, fromSlot slot: Int?, sender: String) throws -> String? {
        guard r.step == step && r.version == version else { return nil }
        if !r.chunkSums.isEmpty {
            guard let check = checks.first(where: { $0.shard == r.shard && $0.slot == slot }), recomputed[r.shard] == nil,
                r.isFinite, r.chunkSums.count == chunkOwner.count, r.chunkSums.allSatisfy({ $0 >= 0 })
            else {
                return "ignored a recomputation of shard \(r.shard) from \(sender), which was not asked for it or is malformed"
            }
            recomputed[check.shard] = r
            return nil
        }
        guard r.shard >= 0, r.shard < sent.count, slot != nil, owners[r.shard] == slot, reports[r.shard] == nil else {
            return "ignored a report for shard \(r.shard) from \(sender), which was not given it"
        }
        guard r.isFinite else {
            throw ClusterError("\(sender) reported non-finite values for step \(step + 1) (loss \(r.lossSum)): the run diverged or the worker is broken")
        }
        guard r.exampleIDs == sent[r.shard] else { throw ClusterError("\(sender) reported examples \(r.exampleIDs.prefix(8)) it was not given") }
        reports[r.shard] = r
        return nil
    }

    /// Server `server`'s Σg² for its chunks and per shard (nil: not a server); another step's,
    /// an unexpected server's or a repeat is ignored (false).
    /// - Throws: when the server reports other chunks, another shard count, non-finite or
    ///   negative sums, or a norm larger than the workers' pushes to it allow.
    public mutating func takeNorms(step s: Int, server: Int?, chunks: [Int], sums: [Double], shardSums: [Double], sender: String) throws -> Bool {
        guard s == step, let server, expectedNorms.contains(server), !normsFrom.contains(server) else { return false }
        let mine = chunkOwner.indices.filter { chunkOwner[$0] == server }
        guard chunks == mine, sums.count == chunks.count, shardSums.count == sent.count, (sums + shardSums).allSatisfy({ $0.isFinite && $0 >= 0 }) else {
            throw ClusterError(
                "\(sender) reported norms for chunks \(chunks.prefix(8)) (it holds \(mine.prefix(8))), \(shardSums.count) shards (the step has \(sent.count)) or non-finite sums for step \(step + 1)"
            )
        }
        // ‖Σₖ gₖ‖ ≤ Σₖ ‖gₖ‖: a server cannot report a sum larger than its pushes allow.
        let allowed = shardSums.reduce(0) { $0 + $1.squareRoot() }
        let claimed = sums.reduce(0, +).squareRoot()
        guard claimed <= allowed * (1 + 1e-6) + 1e-30 else {
            throw ClusterError(
                "\(sender) reported a gradient norm of \(claimed) for step \(step + 1), more than the workers' pushes to it allow (\(allowed)): the server is broken or not honest"
            )
        }
        for (c, v) in zip(chunks, sums) { chunkSums[c] = v }
        shardSumsFrom[server] = shardSums
        normsFrom.insert(server)
        return true
    }

    /// Σg² of the whole gradient, summed in chunk order (the same sum whoever computed what).
    /// - Precondition: `isComplete`.
    public var sumOfSquares: Double { chunkSums.reduce(0) { $0 + $1! } }
    /// The reports in shard order. - Precondition: `isComplete`.
    public var orderedReports: [StepReport] { sent.indices.map { reports[$0]! } }
}
