// One stage of the run: its data (with DPO's reference scores), its data order (resumed
// where a checkpoint left it), the step loop with snapshots and replay after a lost server,
// and its end (checkpoint, probe log-probabilities, evaluation).
import ClusterCore
import Data
import Foundation
import Model
import Tokenizers
import Training
import Wire

extension Coordinator {
    /// What every step of a stage reads: its settings, examples, length and schedule.
    struct StageRun {
        let stage: Recipe.Stage
        let config: LlamaConfig
        let tokenizer: any Tokenizer
        let examples: TokenStore
        /// DPO's reference log-probabilities when computed at the stage's start (not from the
        /// data): written into each of its checkpoints, so a resumed stage keeps them.
        let references: [Double]?
        let total: Int
        let rule: StepRule
        let started = Date()
    }

    /// Runs one stage; returns its summary and the snapshot taken at its end (what the next
    /// stage's start is recovered from).
    func runStage(
        _ stage: Recipe.Stage, index: Int, config: LlamaConfig, tokenizer: any Tokenizer,
        preferenceProbe: inout [Example]?, start: ResumePoint? = nil
    ) throws -> (StageSummary, SnapshotMark?) {
        let (examples, references) = try loadStageData(stage, config: config, tokenizer: tokenizer, start: start)
        if stage.objective.isPreference && preferenceProbe == nil { preferenceProbe = try examples.examples(0..<min(64, examples.count)) }
        let total = stage.totalSteps(examples: examples.count)
        let run = StageRun(
            stage: stage, config: config, tokenizer: tokenizer, examples: examples, references: references, total: total,
            rule: StepRule(stage.settings, totalSteps: total))
        var data = try stageOrder(stage, index: index, examples: examples.count, total: total, start: start)
        var step = start?.step ?? 0
        // The newest snapshot the servers hold: where a lost server's steps are replayed from.
        var snapshot: SnapshotMark?
        while true {
            do {
                // A snapshot every `snapshot_every` steps, and after the last: what a lost server's work is replayed from.
                if recipe.cluster.snapshotEvery > 0, step == total || snapshot.map({ step - $0.step >= recipe.cluster.snapshotEvery }) ?? true {
                    try takeSnapshot(step: step, data: data, into: &snapshot)
                }
                if step == total { break }
                try trainStep(run, step: step, data: &data)
                step += 1
            } catch let lost as ServerLost {
                (data, step) = try replay(after: lost, from: snapshot)
            }
        }
        return (try finishStage(run, data: data, probe: preferenceProbe, final: snapshot), snapshot)
    }

    /// The stage's examples, tokenised into a scratch file beside the output (a batch reads its
    /// examples back). A DPO stage without stored references gets them from the model at the
    /// stage's start, computed once, and read back from the checkpoint when the stage resumes
    /// (the resumed model is no longer the reference); those are returned too, for the checkpoints.
    func loadStageData(
        _ stage: Recipe.Stage, config: LlamaConfig, tokenizer: any Tokenizer, start: ResumePoint?
    ) throws -> (TokenStore, references: [Double]?) {
        let examples = try TokenStore(
            URL(fileURLWithPath: stage.data), tokenizer: tokenizer, maxLength: config.maxPositionEmbeddings,
            vocabularySize: config.vocabSize, limits: stage.limits, directory: URL(fileURLWithPath: recipe.output))
        keepAlive()
        say("stage \(stage.name) (\(stage.objective.name)): \(examples.report); \(examples.fileBytes >> 20) MiB of tokens")
        guard case .dpo = stage.objective, !examples.hasReferences else { return (examples, nil) }
        let scores: [Double]
        if let start {
            scores = try loadReferenceScores(start.directory.appendingPathComponent("reference_logps.json"), count: 2 * examples.count)
            say("resumed DPO stage: reference log-probabilities from its start, saved in \(start.directory.path)")
        } else {
            say("computing reference log-probabilities for DPO from the current model")
            scores = try score(examples, microBatchTokens: stage.microBatchTokens)
        }
        examples.setReferences(scores)
        return (examples, scores)
    }

    /// The stage's data order: as Hugging Face's Trainer, batches never cross an epoch (an
    /// epoch's last batch may be short), so one epoch uses every example exactly once. Resumed
    /// at the checkpoint's epoch and position, once the checkpoint is known to be of this stage
    /// as the recipe now defines it.
    func stageOrder(_ stage: Recipe.Stage, index: Int, examples count: Int, total: Int, start: ResumePoint?) throws -> EpochOrder {
        var data = EpochOrder(count: count, batchSize: stage.batchSize, recipeSeed: recipe.seed, stageIndex: index)
        guard let start else { return data }
        let perEpoch = (count + stage.batchSize - 1) / stage.batchSize
        guard start.totalSteps == total, start.position <= count, start.epoch <= (total + perEpoch - 1) / perEpoch, start.epoch > 0 || start.step == 0 else {
            throw ClusterError(
                "\(start.directory.path): written for \(start.totalSteps) steps at epoch \(start.epoch), position \(start.position); this recipe's stage \(stage.name) has \(total) steps over \(count) examples (did its data, batch size or epochs change?)"
            )
        }
        if start.epoch > 0 { data.resume(epoch: start.epoch, position: start.position) }
        return data
    }

    /// One optimizer step: the next batch out to the workers, the update applied on the
    /// servers, its metrics logged; then a checkpoint or an evaluation when one is due.
    func trainStep(_ run: StageRun, step: Int, data: inout EpochOrder) throws {
        let stage = run.stage, t0 = Date()
        let (ids, epoch) = data.nextBatch()
        let batch = try ids.map { Picked(example: try run.examples.example($0), id: $0, epoch: epoch) }
        let normalizer = stage.objective.normalizer(for: batch.map(\.example))
        let outcome = try distribute(batch, step: step, expectNorms: true) { version, shard in
            WorkUnit(
                stage: stage.name, step: step, version: version, objective: stage.objective,
                normalizer: normalizer, examples: shard, microBatchTokens: stage.microBatchTokens)
        }
        let t1 = Date()
        let reports = outcome.reports, norm = outcome.sumsq.squareRoot()
        let (lr, scale) = run.rule.update(atStep: step, globalNorm: norm)
        let apply = ApplyUpdate(step: step, optimizerStep: step + 1, learningRate: lr, gradientScale: scale, adamW: stage.adamW)
        for id in servers { try messenger.send(.apply(apply), to: id) }
        try awaitAcknowledgements(servers.count)
        version.stepApplied()
        // What was applied, for the exactly-once check: (epoch, example id) in work order.
        // Shards are contiguous cuts of the batch, so the reports' ids in shard order are the batch's.
        guard reports.flatMap(\.exampleIDs) == batch.map(\.id) else { throw ClusterError("step \(step + 1): the workers' reports do not cover the batch") }
        try runLog?.examples(stage: stage.name, step: step + 1, pairs: batch.map { [$0.epoch, $0.id] })
        let metrics = outcome.metrics(rule: run.rule, normalizer: normalizer, globalNorm: norm, learningRate: lr, started: t0, collected: t1, applied: Date())
        try runLog?.step(stage: stage.name, step: step + 1, epoch: data.progress, metrics: metrics)
        let eta = Date().timeIntervalSince(run.started) / Double(step + 1) * Double(run.total - step - 1)
        say(
            String(
                format: "%@ step %d/%d  loss %.4f  grad_norm %.3f  lr %.2e  %.0f tok/s  ETA %.0f s",
                stage.name, step + 1, run.total, metrics["loss"]!, norm, lr, metrics["tokens_per_second"]!, eta))
        if let every = stage.checkpointEvery, (step + 1) % every == 0, step + 1 < run.total {
            try checkpoint(
                stage: stage.name, step: step + 1, of: run.total, epoch: data.epoch, position: data.position, config: run.config,
                tokenizer: run.tokenizer, references: run.references, name: "\(stage.name)-step\(step + 1)")
        }
        if let every = stage.evalEvery, let e = recipe.eval, (step + 1) % every == 0, step + 1 < run.total {
            _ = try evaluate(e, benchmarks: benchmarks, tokenizer: run.tokenizer, stage: stage.name, label: "\(stage.name)-step\(step + 1)")
        }
    }

    /// After a lost server: its chunks re-planned, the snapshot loaded, and the data order and
    /// step put back to the snapshot's. The same batches, shards and sums follow, so the same
    /// weights as without the loss.
    func replay(after lost: ServerLost, from snapshot: SnapshotMark?) throws -> (EpochOrder, Int) {
        guard let snap = snapshot else {
            throw ClusterError("\(lost), and there is no complete snapshot to recover from\(recipe.cluster.snapshotEvery == 0 ? " (cluster.snapshot_every is 0)" : " yet")")
        }
        say("\(lost); replaying from the snapshot at step \(snap.step + 1)")
        try replan(losing: lost.index)
        try restoreSnapshot(snap)
        if let mark = snap.logMark { try runLog?.rewind(to: mark) }
        return (snap.data, snap.step)
    }

    /// The stage's end: its checkpoint, the preference probe's mean log-probabilities and the
    /// evaluation, each recovered from the final snapshot if a server is lost meanwhile.
    func finishStage(_ run: StageRun, data: EpochOrder, probe: [Example]?, final: SnapshotMark?) throws -> StageSummary {
        let stage = run.stage
        let dir = try recovering(.snapshot(final)) {
            try checkpoint(
                stage: stage.name, step: run.total, of: run.total, epoch: data.epoch, position: data.position, config: run.config,
                tokenizer: run.tokenizer, references: run.references, name: stage.name)
        }
        var summary = StageSummary(stage: stage.name, steps: run.total, checkpoint: dir)
        if let probe {
            let s = try recovering(.snapshot(final)) { try score(probe, microBatchTokens: stage.microBatchTokens) }
            summary.logpsChosen = stride(from: 0, to: s.count, by: 2).map { s[$0] }.reduce(0, +) / Double(probe.count)
            summary.logpsRejected = stride(from: 1, to: s.count, by: 2).map { s[$0] }.reduce(0, +) / Double(probe.count)
        }
        if let e = recipe.eval {
            summary.passAt1 = try recovering(.snapshot(final)) {
                try evaluate(e, benchmarks: benchmarks, tokenizer: run.tokenizer, stage: stage.name, label: stage.name)
            }
        }
        return summary
    }
}
