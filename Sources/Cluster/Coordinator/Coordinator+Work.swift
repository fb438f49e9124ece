// The coordinator's traffic with the data plane: streaming the model into the servers as it is
// read, zeroing AdamW for a new stage, moving chunks in bounded rounds (snapshots, checkpoints),
// cutting a global batch into one shard per worker slot, sending the shards out and collecting
// the reports (and the servers' Σg² per chunk) in a fixed order.
import ClusterCore
import Data
import Evaluation
import Formats
import Foundation
import Model
import Numerics
import Objectives
import ReasoningTask
import Tokenizers
import Training
import Transport
import Wire

extension Coordinator {
    /// Loads the model into the servers as it is read: each chunk is assembled from the reader's
    /// pieces and sent to its server when complete (resuming: with AdamW's m and v, and a
    /// bfloat16 checkpoint's fp32 master weights, read for that chunk from `resume`'s optimizer
    /// file), at most `ChunkPlan.roundBytes` unacknowledged. The coordinator never holds the model.
    func streamModel(_ reader: ModelReader, resume: (optimizer: SafetensorsFile, path: String)?) throws {
        let total = plan.chunks.last.map { $0.offset + $0.count } ?? 0
        guard reader.layout.totalCount == total else { throw ClusterError("the model has \(reader.layout.totalCount) parameters, the plan \(total)") }
        version.weightsReplaced()
        let master = resume?.optimizer.tensors["master_weights"] != nil
        var unacknowledged = 0, bytes = 0
        func send(_ c: Int, _ weights: FloatBuffer) throws {
            let range = plan.chunks[c].offset..<(plan.chunks[c].offset + plan.chunks[c].count)
            var tensors = [weights]
            if let (optimizer, path) = resume {
                let m = FloatBuffer(count: range.count), v = FloatBuffer(count: range.count)
                try optimizer.read("exp_avg", elements: range, into: m, release: true)
                try optimizer.read("exp_avg_sq", elements: range, into: v, release: true)
                if master { try optimizer.read("master_weights", elements: range, into: weights, release: true) }
                guard weights.isAllFinite, m.isAllFinite, v.isAllFinite, !v.hasNegative else {
                    throw ClusterError("\(path): non-finite weights or AdamW state, or a negative second moment")
                }
                tensors += [m, v]
            } else if !weights.isAllFinite {
                throw ClusterError("the model has non-finite weights (parameters \(range))")
            }
            try messenger.send(
                .load(chunks: [c], resetOptimizer: resume == nil, optimizerState: resume != nil, version: version.number), to: servers[plan.owner[c]],
                tensors: tensors.map { OutgoingTensor($0) })
            unacknowledged += 1
            bytes += 4 * tensors.count * range.count
            if bytes >= ChunkPlan.roundBytes {
                try awaitAcknowledgements(unacknowledged)
                (unacknowledged, bytes) = (0, 0)
                keepAlive()
            }
        }
        var next = 0, staging = FloatBuffer(count: plan.chunks.first?.count ?? 0)
        try reader.forEachPiece { offset, values, count in
            var done = 0
            while done < count {
                let c = plan.chunks[next], at = offset + done - c.offset, n = min(count - done, c.count - at)
                (staging.baseAddress + at).update(from: values + done, count: n)
                done += n
                if at + n == c.count {
                    try send(next, staging)
                    next += 1
                    if next < plan.chunks.count { staging = FloatBuffer(count: plan.chunks[next].count) }
                }
            }
        }
        // A server without chunks still takes the version.
        for (s, id) in servers.enumerated() where !plan.owner.contains(s) {
            try messenger.send(.load(chunks: [], resetOptimizer: false, version: version.number), to: id)
            unacknowledged += 1
        }
        try awaitAcknowledgements(unacknowledged)
    }

    /// A new stage: AdamW's m and v zeroed on every server, the weights kept (an empty load with
    /// `reset_optimizer`).
    func resetOptimizerState() throws {
        version.weightsReplaced()
        for id in servers { try messenger.send(.load(chunks: [], resetOptimizer: true, version: version.number), to: id) }
        try awaitAcknowledgements(servers.count)
    }

    /// An example picked for a batch: its dataset index and the epoch it was drawn in.
    struct Picked {
        let example: Example
        let id: Int
        let epoch: Int
    }

    /// Runs one step's work: admits queued workers, cuts `batch` into one shard per worker
    /// slot, sends each shard to the live worker that owns it, and collects the reports (and
    /// the servers' per-chunk norms). A worker that stays silent for the timeout is dropped
    /// and the step starts again, its shards now computed by the others.
    func distribute(
        _ batch: [Picked], step: Int, expectNorms: Bool,
        unit: (_ version: Int, _ shard: [WireExample]) -> WorkUnit
    ) throws -> StepOutcome {
        while true {
            try admitJoiners(step: step)
            let shards = split(batch, into: workers.count)
            let owners = shardOwners
            for (k, shard) in shards.enumerated() {
                var u = unit(version.number, shard.map(wire))
                u.shard = k
                try messenger.send(.work(u), to: workers[owners[k]]!.id)
            }
            let checks = expectNorms ? verifications(step: step, shards: shards.map(\.isEmpty), owners: owners) : []
            for check in checks {
                var u = unit(version.number, shards[check.shard].map(wire))
                u.shard = check.shard; u.verifyOnly = true
                try messenger.send(.work(u), to: workers[check.slot]!.id)
            }
            if let outcome = try collectStep(step, sent: shards.map { $0.map(\.id) }, owners: owners, expectNorms: expectNorms, checks: checks) {
                return outcome
            }
        }
    }

    /// Collects one attempt's shard reports and server norms; nil when workers were dropped
    /// (the caller starts the step again).
    /// Which shards of this step another worker recomputes, and who: `verify_shards` random
    /// non-empty shards every `verify_every` steps, each by a live worker other than its owner
    /// (one with the same kernel and threads when there is one, so the bits must agree).
    func verifications(step: Int, shards empty: [Bool], owners: [Int]) -> [(shard: Int, slot: Int)] {
        let every = recipe.cluster.verifyEvery
        guard every > 0, step % every == 0, live.count >= 2 else { return [] }
        // Unpredictable to the workers: a dishonest one cannot know which steps are checked.
        var rng = SystemRandomNumberGenerator()
        let candidates = empty.indices.filter { !empty[$0] }.shuffled(using: &rng).prefix(recipe.cluster.verifyShards)
        return candidates.compactMap { k in
            let owner = workers[owners[k]]
            let others = live.filter { $0 != owners[k] }
            let twin = others.first { workers[$0]?.kernel == owner?.kernel && workers[$0]?.threads == owner?.threads }
            return (twin ?? others.first).map { (k, $0) }
        }
    }

    func collectStep(
        _ step: Int, sent: [[Int]], owners: [Int], expectNorms: Bool,
        checks: [(shard: Int, slot: Int)] = []
    ) throws -> StepOutcome? {
        var reports: [Int: StepReport] = [:]
        var recomputed: [Int: StepReport] = [:]
        var chunkSums = [Double?](repeating: nil, count: expectNorms ? plan.chunks.count : 0)
        var normsFrom = Set<Int>()
        /// Each server's Σg² per shard over its chunks, by server (summed in server order below).
        var shardSumsFrom: [Int: [Double]] = [:]
        let expectedNorms = expectNorms ? serversWithChunks : []
        let started = Date()
        while reports.count < sent.count || normsFrom.count < expectedNorms.count || recomputed.count < checks.count {
            // Progress, not heartbeats: past the step timeout, a server that has every report but
            // not its norm is lost; otherwise the earliest unreported shard's worker is dropped
            // (a server holds later shards' pushes until it arrives, so it is what the rest wait on).
            if Date().timeIntervalSince(started) > recipe.cluster.stepTimeoutSeconds {
                let limit = Int(recipe.cluster.stepTimeoutSeconds)
                if let k = (0..<sent.count).first(where: { reports[$0] == nil }) {
                    guard live.count > 1 else {
                        throw ClusterError(
                            "\(workers[owners[k]].map { name(of: $0.id) } ?? "worker \(owners[k])") did not report step \(step + 1) within \(limit) s (cluster.step_timeout_seconds) and no other worker is left"
                        )
                    }
                    try drop([owners[k]], step: step, because: "did not report shard \(k) within \(limit) s (cluster.step_timeout_seconds)")
                    return nil
                }
                if let s = expectedNorms.first(where: { !normsFrom.contains($0) }) {
                    throw ServerLost(
                        index: s, name: String(decoding: servers[s], as: UTF8.self), seconds: recipe.cluster.stepTimeoutSeconds,
                        failedTo: "report step \(step + 1)'s gradient norm")
                }
                if let check = checks.first(where: { recomputed[$0.shard] == nil }), live.count > 1 {
                    try drop([check.slot], step: step, because: "did not report its recomputation of shard \(check.shard) within \(limit) s")
                    return nil
                }
            }
            if let msg = try next(timeout: min(1, recipe.cluster.heartbeatSeconds)), let id = msg.identity {
                switch msg.envelope.body {
                case let .stepReport(r) where r.step == step && r.version == version.number && !r.chunkSums.isEmpty:
                    guard let check = checks.first(where: { $0.shard == r.shard && workers[$0.slot]?.id == id }), recomputed[r.shard] == nil,
                        r.isFinite, r.chunkSums.count == plan.chunks.count, r.chunkSums.allSatisfy({ $0 >= 0 })
                    else {
                        say("ignored a recomputation of shard \(r.shard) from \(name(of: id)), which was not asked for it or is malformed")
                        continue
                    }
                    recomputed[check.shard] = r
                case let .stepReport(r) where r.step == step && r.version == version.number:
                    guard r.shard >= 0, r.shard < sent.count, workers[owners[r.shard]]?.id == id, reports[r.shard] == nil else {
                        say("ignored a report for shard \(r.shard) from \(name(of: id)), which was not given it")
                        continue
                    }
                    guard r.isFinite else {
                        throw ClusterError("\(name(of: id)) reported non-finite values for step \(step + 1) (loss \(r.lossSum)): the run diverged or the worker is broken")
                    }
                    guard r.exampleIDs == sent[r.shard] else { throw ClusterError("\(name(of: id)) reported examples \(r.exampleIDs.prefix(8)) it was not given") }
                    reports[r.shard] = r
                case let .norm(s, chunks, sums, shardSums) where s == step && expectNorms:
                    guard let server = servers.firstIndex(of: id), expectedNorms.contains(server), !normsFrom.contains(server) else { continue }
                    let mine = plan.chunks.indices.filter { plan.owner[$0] == server }
                    guard chunks == mine, shardSums.count == sent.count, (sums + shardSums).allSatisfy({ $0.isFinite && $0 >= 0 }) else {
                        throw ClusterError(
                            "\(name(of: id)) reported norms for chunks \(chunks.prefix(8)) (it holds \(mine.prefix(8))), \(shardSums.count) shards (the step has \(sent.count)) or non-finite sums for step \(step + 1)"
                        )
                    }
                    // ‖Σₖ gₖ‖ ≤ Σₖ ‖gₖ‖: a server cannot report a sum larger than its pushes allow.
                    let allowed = shardSums.reduce(0) { $0 + $1.squareRoot() }
                    let claimed = sums.reduce(0, +).squareRoot()
                    guard claimed <= allowed * (1 + 1e-6) + 1e-30 else {
                        throw ClusterError(
                            "\(name(of: id)) reported a gradient norm of \(claimed) for step \(step + 1), more than the workers' pushes to it allow (\(allowed)): the server is broken or not honest"
                        )
                    }
                    for (c, v) in zip(chunks, sums) { chunkSums[c] = v }
                    shardSumsFrom[server] = shardSums
                    normsFrom.insert(server)
                default:
                    continue
                }
                continue
            }
            try checkServers()
            let waitingOn = Set((0..<sent.count).filter { reports[$0] == nil }.map { owners[$0] } + checks.filter { recomputed[$0.shard] == nil }.map(\.slot))
            let silent = members.silentWorkers(Array(waitingOn), timeout: recipe.cluster.timeoutSeconds)
            guard !silent.isEmpty else { continue }
            guard silent.count < live.count else {
                throw ClusterError("every worker stopped answering for \(Int(recipe.cluster.timeoutSeconds)) s at step \(step + 1)")
            }
            try drop(silent, step: step)
            return nil
        }
        let shardNorms = expectNorms ? try checkContributions(step, shardSumsFrom.keys.sorted().map { shardSumsFrom[$0]! }, owners: owners) : []
        for check in checks {
            try compare(
                step: step, shard: check.shard, pushed: reports[check.shard]!, by: owners[check.shard],
                recomputed: recomputed[check.shard]!, by: check.slot, serverSums: shardSumsFrom)
        }
        // Reports in shard order and Σg² in chunk order: the same sums whoever computed what.
        return StepOutcome(reports: (0..<sent.count).map { reports[$0]! }, sumsq: chunkSums.reduce(0) { $0 + $1! }, shardNorms: shardNorms)
    }

    /// Verification by recomputation: the owner's loss and the servers' Σg² of its pushes against
    /// another worker's recomputation of the same shard at the same version. Runs are
    /// deterministic, so two workers with the same kernel and threads must agree bit for bit
    /// (otherwise to 1e-3 relative); a disagreement ends the run naming both.
    func compare(
        step: Int, shard k: Int, pushed: StepReport, by owner: Int, recomputed r: StepReport, by verifier: Int,
        serverSums: [Int: [Double]]
    ) throws {
        let a = workers[owner], b = workers[verifier]
        let exact = a != nil && a?.kernel == b?.kernel && a?.threads == b?.threads
        func agree(_ x: Double, _ y: Double) -> Bool { exact ? x == y : abs(x - y) <= 1e-3 * max(abs(x), abs(y)) + 1e-30 }
        var disagreements: [String] = []
        if !agree(pushed.lossSum, r.lossSum) { disagreements.append("loss \(pushed.lossSum) vs \(r.lossSum)") }
        for (s, sums) in serverSums.sorted(by: { $0.key < $1.key }) {
            let expected = plan.chunks.indices.filter { plan.owner[$0] == s }.reduce(0.0) { $0 + r.chunkSums[$1] }
            if !agree(sums[k], expected) { disagreements.append("Σg² on server \(s) \(sums[k]) vs \(expected)") }
        }
        let who = { (slot: Int) in self.workers[slot].map { self.name(of: $0.id) } ?? "worker \(slot)" }
        guard disagreements.isEmpty else {
            throw ClusterError(
                "step \(step + 1) shard \(k): what \(who(owner)) pushed and \(who(verifier))'s recomputation disagree (\(disagreements.joined(separator: "; "))): one of them is broken or not honest (cluster.verify_every)"
            )
        }
        verifiedShards += 1
        if verifiedShards == 1 || verifiedShards % 100 == 0 {
            say(
                "verified by recomputation: \(verifiedShards) shard\(verifiedShards == 1 ? "" : "s") so far (step \(step + 1) shard \(k): \(who(verifier)) agrees with \(who(owner))\(exact ? " bit for bit" : " to 1e-3"))"
            )
        }
    }

    /// The trust rule for gradients (README, Security): a shard's norm ‖gₖ‖ (Σ over servers of
    /// their Σg² for its pushes) above `cluster.max_shard_grad_norm` ends the run naming the
    /// worker; one over 100× the median of the last 50 steps' shard norms is logged as an
    /// outlier (training can spike, so it is not refused).
    /// Returns each shard's norm.
    func checkContributions(_ step: Int, _ byServer: [[Double]], owners: [Int]) throws -> [Double] {
        guard let shards = byServer.first?.count else { return [] }
        let norms = (0..<shards).map { k in byServer.reduce(0) { $0 + $1[k] }.squareRoot() }
        for (k, norm) in norms.enumerated() where norm > recipe.cluster.maxShardGradNorm {
            let who = workers[owners[k]].map { name(of: $0.id) } ?? "worker \(owners[k])"
            throw ClusterError(
                "\(who) pushed a gradient of norm \(norm) for step \(step + 1) (shard \(k)), over cluster.max_shard_grad_norm \(recipe.cluster.maxShardGradNorm): refused; the worker is broken or not honest"
            )
        }
        let history = recentShardNorms.sorted()
        if history.count >= 5 {
            let median = history[history.count / 2]
            for (k, norm) in norms.enumerated() where norm > 100 * median {
                let who = workers[owners[k]].map { name(of: $0.id) } ?? "worker \(owners[k])"
                say("WARNING: \(who)'s gradient for step \(step + 1) (shard \(k)) has norm \(norm), over 100× the recent median \(median)")
            }
        }
        recentShardNorms.append(contentsOf: norms.filter { $0 > 0 })
        if recentShardNorms.count > 50 * max(1, shards) { recentShardNorms.removeFirst(recentShardNorms.count - 50 * max(1, shards)) }
        return norms
    }

    /// Summed log-probabilities of every sequence of `store`, in order: read and scored a block
    /// of examples at a time, so neither the coordinator nor a worker holds the whole data.
    func score(_ store: TokenStore, microBatchTokens: Int) throws -> [Double] {
        var scores: [Double] = []
        for start in stride(from: 0, to: store.count, by: Self.scoreBlock) {
            scores += try score(store.examples(start..<min(start + Self.scoreBlock, store.count)), microBatchTokens: microBatchTokens)
        }
        return scores
    }

    /// Examples per round of `score(_ store:)`.
    static let scoreBlock = 256

    /// Sequence log-probabilities of every example's sequences, computed by the workers at the current version.
    func score(_ examples: [Example], microBatchTokens: Int) throws -> [Double] {
        let picked = examples.enumerated().map { Picked(example: $1, id: $0, epoch: 0) }
        let reports = try distribute(picked, step: 0, expectNorms: false) { version, shard in
            WorkUnit(
                stage: "score", step: 0, version: version, objective: .sft, normalizer: 1, examples: shard,
                microBatchTokens: microBatchTokens, scoreOnly: true)
        }.reports
        let scores = reports.flatMap(\.sequenceLogps)
        guard scores.count == examples.reduce(0, { $0 + $1.sequences.count }) else {
            throw ClusterError("workers returned \(scores.count) log-probabilities for \(examples.count) examples")
        }
        return scores
    }

    /// What one step's work gave: the reports in shard order, the gradient's Σg² (chunk order) and
    /// each shard's norm as the servers measured it (empty for steps without gradients).
    struct StepOutcome {
        let reports: [StepReport]
        let sumsq: Double
        let shardNorms: [Double]
    }

    /// Contiguous shards of near-equal token counts, one per worker (some may be empty).
    func split(_ batch: [Picked], into parts: Int) -> [[Picked]] {
        let total = batch.reduce(0) { $0 + $1.example.sequences.reduce(0) { $0 + $1.tokens.count } }
        var shards = Array(repeating: [Picked](), count: parts)
        var acc = 0, part = 0
        for p in batch {
            let n = p.example.sequences.reduce(0) { $0 + $1.tokens.count }
            if part < parts - 1 && !shards[part].isEmpty && Double(acc + n / 2) > Double(total) * Double(part + 1) / Double(parts) { part += 1 }
            shards[part].append(p)
            acc += n
        }
        return shards
    }

    func wire(_ p: Picked) -> WireExample {
        WireExample(
            sequences: p.example.sequences.map { WireSequence(tokens: $0.tokens, promptLength: $0.promptLength) },
            reference: p.example.refChosen.map { ($0, p.example.refRejected ?? 0) }, id: p.id)
    }
}

extension Coordinator.StepOutcome {
    /// The step's metrics (TRL's names, `StepRule`) from the workers' summed reports, each
    /// worker's contribution as the servers measured it (largest and median shard norm), and the
    /// step's time split: `started` → `collected` (the workers' work) → `applied` (AdamW).
    func metrics(rule: StepRule, normalizer: Double, globalNorm: Double, learningRate: Double, started: Date, collected: Date, applied: Date) -> [String: Double] {
        var result = ObjectiveResult()
        for r in reports {
            var partial = ObjectiveResult()
            partial.lossSum = r.lossSum; partial.examples = r.examples; partial.tokens = r.tokens; partial.metricSums = r.metricSums
            result.merge(partial)
        }
        var metrics = rule.metrics(result, normalizer: normalizer, globalNorm: globalNorm, learningRate: learningRate)
        let sorted = shardNorms.sorted()
        if let largest = sorted.last {
            metrics["grad_norm/shard_max"] = largest
            metrics["grad_norm/shard_median"] = sorted[sorted.count / 2]
        }
        let stepSeconds = applied.timeIntervalSince(started)
        let compute = reports.map(\.computeSeconds).max() ?? 0
        let communication = reports.map(\.communicationSeconds).max() ?? 0
        metrics["tokens_per_second"] = Double(result.tokens) / stepSeconds
        metrics["time/step"] = stepSeconds
        metrics["time/compute"] = compute
        metrics["time/communication"] = communication
        metrics["time/waiting"] = max(0, collected.timeIntervalSince(started) - compute - communication) + applied.timeIntervalSince(collected)
        return metrics
    }
}
