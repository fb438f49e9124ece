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
        try reader.forEachPiece { offset, values in
            var done = 0
            while done < values.count {
                let c = plan.chunks[next], at = offset + done - c.offset, n = min(values.count - done, c.count - at)
                staging.update(at: at, from: values[done..<(done + n)])
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

    /// Collects one attempt's shard reports and server norms; nil when workers were dropped
    /// (the caller starts the step again).
    func collectStep(
        _ step: Int, sent: [[Int]], owners: [Int], expectNorms: Bool,
        checks: [(shard: Int, slot: Int)] = []
    ) throws -> StepOutcome? {
        var collection = StepCollection(
            step: step, version: version.number, sent: sent, owners: owners, checks: checks, chunkOwner: plan.owner, expectNorms: expectNorms)
        let started = Date()
        while !collection.isComplete {
            if Date().timeIntervalSince(started) > recipe.cluster.stepTimeoutSeconds, try giveUpOnLate(collection) { return nil }
            if let msg = try next(timeout: min(1, recipe.cluster.heartbeatSeconds)), let id = msg.identity {
                switch msg.envelope.body {
                case let .stepReport(r):
                    if let ignored = try collection.take(r, fromSlot: workers.firstIndex { $0?.id == id }, sender: name(of: id)) { say(ignored) }
                case let .norm(s, chunks, sums, shardSums) where expectNorms:
                    _ = try collection.takeNorms(
                        step: s, server: servers.firstIndex(of: id), chunks: chunks, sums: sums, shardSums: shardSums, sender: name(of: id))
                default:
                    continue
                }
                continue
            }
            try checkServers()
            let silent = members.silentWorkers(Array(collection.waitingOn), timeout: recipe.cluster.timeoutSeconds)
            guard !silent.isEmpty else { continue }
            guard silent.count < live.count else {
                throw ClusterError("every worker stopped answering for \(Int(recipe.cluster.timeoutSeconds)) s at step \(step + 1)")
            }
            try drop(silent, step: step)
            return nil
        }
        let sums = collection.shardSumsFrom
        let shardNorms = expectNorms ? try checkContributions(step, sums.keys.sorted().map { sums[$0]! }, owners: owners) : []
        for check in checks {
            try compare(
                step: step, shard: check.shard, pushed: collection.reports[check.shard]!, by: owners[check.shard],
                recomputed: collection.recomputed[check.shard]!, by: check.slot, serverSums: sums)
        }
        return StepOutcome(reports: collection.orderedReports, sumsq: collection.sumOfSquares, shardNorms: shardNorms)
    }

    /// Past the step timeout, judged by progress rather than heartbeats: the worker of the
    /// earliest unreported shard is dropped (a server holds later shards' pushes until it
    /// arrives, so it is what the rest wait on), else a server that has every report but not
    /// its norm is lost, else a late recomputation's worker is dropped. True when workers were
    /// dropped (the step starts again).
    func giveUpOnLate(_ collection: StepCollection) throws -> Bool {
        let limit = Int(recipe.cluster.stepTimeoutSeconds), step = collection.step
        if let k = collection.firstMissingShard {
            let owner = collection.owners[k]
            guard live.count > 1 else {
                throw ClusterError(
                    "\(workers[owner].map { name(of: $0.id) } ?? "worker \(owner)") did not report step \(step + 1) within \(limit) s (cluster.step_timeout_seconds) and no other worker is left"
                )
            }
            try drop([owner], step: step, because: "did not report shard \(k) within \(limit) s (cluster.step_timeout_seconds)")
            return true
        }
        if let s = collection.firstSilentServer {
            throw ServerLost(
                index: s, name: String(decoding: servers[s], as: UTF8.self), seconds: recipe.cluster.stepTimeoutSeconds,
                failedTo: "report step \(step + 1)'s gradient norm")
        }
        if let check = collection.firstMissingCheck, live.count > 1 {
            try drop([check.slot], step: step, because: "did not report its recomputation of shard \(check.shard) within \(limit) s")
            return true
        }
        return false
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
        if screen.recordVerified() {
            say(
                "verified by recomputation: \(screen.verified) shard\(screen.verified == 1 ? "" : "s") so far (step \(step + 1) shard \(k): \(who(verifier)) agrees with \(who(owner))\(exact ? " bit for bit" : " to 1e-3"))"
            )
        }
    }

    /// The trust rule for gradients (`ContributionScreen`): a shard over
    /// `cluster.max_shard_grad_norm` ends the run naming its worker; an outlier is logged.
    /// Returns each shard's norm.
    func checkContributions(_ step: Int, _ byServer: [[Double]], owners: [Int]) throws -> [Double] {
        let who = { (k: Int) in self.workers[owners[k]].map { self.name(of: $0.id) } ?? "worker \(owners[k])" }
        switch screen.screen(byServer) {
        case .refused(let k, let norm):
            throw ClusterError(
                "\(who(k)) pushed a gradient of norm \(norm) for step \(step + 1) (shard \(k)), over cluster.max_shard_grad_norm \(screen.maxShardNorm): refused; the worker is broken or not honest"
            )
        case .accepted(let norms, let outliers):
            for o in outliers {
                say("WARNING: \(who(o.shard))'s gradient for step \(step + 1) (shard \(o.shard)) has norm \(norms[o.shard]), over 100× the recent median \(o.median)")
            }
            return norms
        }
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
