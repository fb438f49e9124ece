// The coordinator: admits servers and workers, owns the data order and the learning-rate
// schedule, splits every global batch over the workers, turns the servers' partial Σg² into
// the global norm and clip coefficient, and sequences stage 1 → checkpoint → stage 2 →
// checkpoint, evaluating after each stage. Synchronous data parallelism. This file is the
// run and the stage loop; the rest is by name: Coordinator+Membership (who is in the run,
// liveness, the receive loop), Coordinator+Work (weights to and from the servers, a step's
// shards out to the workers and their reports back), Coordinator+Checkpoints (checkpoints,
// snapshots, resuming), Coordinator+Evaluation (pass@1 on the workers, the summary table),
// RunLog (metrics, examples, TensorBoard).
import ClusterCore
import ClusterServer
import Data
import Evaluation
import Formats
import Foundation
import Model
import Numerics
import Objectives
import Optimizer
import ReasoningTask
import SeededRandom
import Tokenizers
import Training
import Transport
import Wire

/// What one stage ended with, for the run's summary table.
public struct StageSummary: Sendable {
    public var stage: String
    public var steps: Int
    /// pass@1 at the stage's end, per benchmark name (empty without evaluation).
    public var passAt1: [String: Double] = [:]
    public var logpsChosen: Double?
    public var logpsRejected: Double?
    public var checkpoint: String
}

public final class Coordinator {
    let recipe: Recipe
    let bind: String
    let key: RunKey
    var messenger: Messenger!
    /// Who is in the run (servers, spares, worker slots, queued workers) and when each was last heard.
    var members: Membership
    var servers: [[UInt8]] { members.servers }
    var serverEndpoints: [String] { members.serverEndpoints }
    var workers: [WorkerSlot?] { members.workers }
    /// The last steps' per-shard gradient norms (the outlier rule's history).
    var recentShardNorms: [Double] = []
    /// Shards recomputed by a second worker and found to agree (`cluster.verify_every`).
    var verifiedShards = 0
    var lastHeartbeat = Date.distantPast
    var plan: (chunks: [ChunkRange], owner: [Int]) = ([], [])
    var configJSON = ""
    /// Slots of the workers in the current step; batches are split over these.
    var live: [Int] { members.live }
    var version = ParameterVersion()
    /// Snapshots (on the servers): the last tag handed out, and per chunk the server that
    /// keeps it in its own snapshot and the one that keeps its replica (nil: this process's
    /// `replicaOfOnlyServer`, with one server there is no other to keep it).
    var snapshotTag = 0
    var snapshotOwner: [[UInt8]] = []
    var replicaHolder: [[UInt8]?] = []
    lazy var replicaOfOnlyServer = SnapshotStore(directory: recipe.cluster.snapshotDirectory)
    /// metrics.jsonl, examples.jsonl and TensorBoard events (open once the run starts).
    var runLog: RunLog?

    let resume: String?
    let overwrite: Bool

    /// - Parameters:
    ///   - key: the run key every peer must hold.
    ///   - resume: a checkpoint directory written by this recipe (with `trainer_state.json`
    ///     and `optimizer.safetensors`) to continue from, or "latest" for the newest in the output.
    ///   - overwrite: replace a run already in the output directory (without it, and without
    ///     `resume`, such a directory is refused: its metrics and checkpoints would be lost).
    /// - Parameter evaluateOnly: no training: the recipe's model is evaluated on its benchmarks
    ///   by the cluster (`redi-ps coordinate --evaluate`), and the run's logs are written to its output.
    public init(recipe: Recipe, key: RunKey, bind: String? = nil, resume: String? = nil, overwrite: Bool = false, evaluateOnly: Bool = false) {
        self.recipe = recipe
        self.key = key
        self.bind = bind ?? recipe.cluster.bind
        self.resume = resume
        self.overwrite = overwrite || evaluateOnly
        self.evaluateOnly = evaluateOnly
        members = Membership(servers: recipe.cluster.servers, workers: recipe.cluster.workers)
    }

    /// Where an interrupted run continues: its stage, step, data position and AdamW state.
    struct ResumePoint {
        let stage: Int, step: Int, totalSteps: Int, epoch: Int, position: Int
        let directory: URL
        /// Where the logs stood when the checkpoint was written (nil in older checkpoints).
        let logMark: RunLog.Mark?
    }
    /// A DPO stage's reference log-probabilities (chosen, rejected per example), computed at the
    /// stage's start and written into each of its checkpoints, so a resumed stage keeps them.
    var referenceScores: [Double]?
    /// The recipe's benchmarks, read at launch.
    var benchmarks: [LoadedBenchmark] = []
    let evaluateOnly: Bool

    /// Set from a signal handler; checked wherever the coordinator waits, so Ctrl-C or a
    /// TERM ends the run with every server and worker told to shut down.
    final class StopFlag: @unchecked Sendable {
        private let lock = NSLock()
        private var signal: Int32?
        func set(_ s: Int32) { lock.lock(); signal = s; lock.unlock() }
        var value: Int32? { lock.lock(); defer { lock.unlock() }; return signal }
    }
    let stop = StopFlag()
    var signalSources: [DispatchSourceSignal] = []

    func installSignalHandlers() {
        for sig in [SIGINT, SIGTERM] {
            Foundation.signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            let flag = stop
            source.setEventHandler { flag.set(sig) }
            source.resume()
            signalSources.append(source)
        }
    }

    func checkStop() throws {
        if let sig = stop.value { throw ClusterError("stopped by signal \(sig); servers and workers were told to shut down") }
    }

    func say(_ message: String) { log("coordinator", message) }

    /// Runs the recipe to the end.
    ///
    /// - Throws: `ClusterError` (or a data, format or recipe error) when the run fails; every
    ///   peer has then been told the run failed.
    /// Checkpoint directories (holding trainer_state.json) directly under `out`.
    func previousCheckpoints(in out: URL) -> [URL] {
        ((try? FileManager.default.contentsOfDirectory(atPath: out.path)) ?? []).map { out.appendingPathComponent($0) }
            .filter { FileManager.default.fileExists(atPath: $0.appendingPathComponent("trainer_state.json").path) }
    }

    public func run() throws -> [StageSummary] {
        do {
            let summaries = try runStages()
            shutdownAll("run finished", failed: false)
            say(String(format: "peak RSS %.0f MiB, CPU %.2f s", peakResidentMiB(), cpuSeconds()))
            return summaries
        } catch {
            shutdownAll("the coordinator failed: \(error)", failed: true)
            throw error
        }
    }

    func runStages() throws -> [StageSummary] {
        let out = URL(fileURLWithPath: recipe.output).standardizedFileURL
        say("output: \(out.path)")
        let checkpoints = previousCheckpoints(in: out)
        let metrics = out.appendingPathComponent("metrics.jsonl")
        let logged = ((try? FileManager.default.attributesOfItem(atPath: metrics.path)[.size] as? Int) ?? 0) ?? 0
        if resume == nil, !checkpoints.isEmpty || logged > 0 {
            guard overwrite else {
                throw ClusterError(
                    "\(out.path) already holds a run (\(checkpoints.count) checkpoints, \(logged) bytes of metrics): pass --resume latest to continue it, or --overwrite to replace it"
                )
            }
            say("--overwrite: replacing the run in \(out.path) (its logs and \(checkpoints.count) checkpoints)")
            for c in checkpoints { try FileManager.default.removeItem(at: c) }
        }
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        if let s = recipe.synth, !evaluateOnly {
            let stats = try Synthesis.run(
                SynthesisSettings(
                    problems: s.problems, tracesPerProblem: s.tracesPerProblem, testProblems: s.testProblems,
                    seed: recipe.seed, digits: s.digits, steps: s.steps, errorRate: s.errorRate), to: out)
            say(
                String(
                    format: "synthesised %d sft, %d preference, %d test records (teacher accuracy %.2f)",
                    stats.sftRecords, stats.preferenceRecords, stats.testProblems, stats.teacherAccuracy))
        }
        // The model is read a piece at a time as it is loaded into the servers (resuming: the
        // checkpoint's, with AdamW's state): the coordinator never holds it.
        let resumePath = try resume.map { $0 == "latest" ? try latestCheckpoint(in: out) : $0 }
        let (config, model, tokenizer) = try prepareModel(resumingFrom: resumePath)
        var source = model
        benchmarks = try recipe.eval.map { try loadBenchmarks($0, tokenizer: tokenizer) } ?? []
        var optimizerFile: SafetensorsFile?
        let resumePoint = try resumePath.map { path -> ResumePoint in
            let (point, reader, optimizer) = try loadResumePoint(path, config: config, verified: resume == "latest")
            (source, optimizerFile) = (reader, optimizer)
            return point
        }
        // Logs are cut back only when the checkpoint is this output's (not one copied from another run).
        let ownMark = resumePoint.flatMap { $0.directory.standardizedFileURL.deletingLastPathComponent().path == out.path ? $0.logMark : nil }
        runLog = try RunLog(output: out, fresh: resumePoint == nil, resumingAt: ownMark)

        installSignalHandlers()
        let context = ZMQContext()
        let zap = try ZAPHandler(context: context) { log("coordinator", $0) }
        defer { zap.stop() }
        zap.allow(key.keys.publicKey, userID: "member", domain: "control")
        let socket = try ZMQSocket(context, .router)
        try socket.makeCurveServer(secretKey: key.keys.secretKey, domain: "control")
        try socket.allowRoutingIDHandover()
        // Pull replies carry whole chunks; nothing larger is ever legitimate.
        try socket.setMaximumMessageSize(frameLimit(chunkBytes: ChunkPlan.chunkBytes(mib: recipe.cluster.chunkMiB)))
        let endpoint = try socket.bind(bind)
        messenger = Messenger(socket: socket, runID: recipe.runID, sender: "coordinator", routed: true)
        say("run \(recipe.runID): listening on \(endpoint) (run key \(key.fingerprint)); waiting for \(recipe.cluster.servers) servers and \(recipe.cluster.workers) workers")
        try admit()
        members.beginRun()
        plan = ChunkPlan.make(parameterCount: source.layout.totalCount, mib: recipe.cluster.chunkMiB, servers: servers.count)
        configJSON = String(decoding: try JSONEncoder().encode(config), as: UTF8.self)
        // Servers first: they must admit the workers' keys before a worker connects to them.
        for (i, s) in servers.enumerated() { try messenger.send(welcome(i, role: .server), to: s) }
        say("\(plan.chunks.count) chunks of ≤ \(recipe.cluster.chunkMiB) MiB over \(servers.count) servers")
        // A server that joined but does not take the load is replaced by a spare here too.
        func loadServers() throws { try streamModel(source, resume: optimizerFile.map { ($0, resumePath!) }) }
        try recovering(.bodyReloads) { try loadServers() }
        for w in live { try messenger.send(welcome(w, role: .worker), to: workers[w]!.id) }

        if evaluateOnly {
            let name = URL(fileURLWithPath: recipe.model.path ?? "model").lastPathComponent
            guard let e = recipe.eval else { throw ClusterError("--evaluate: the recipe has no eval section") }
            var summary = StageSummary(stage: name, steps: 0, checkpoint: recipe.model.path ?? "")
            var reload = false  // after a lost server, the model again (no training: no snapshot)
            summary.passAt1 = try recovering(.bodyReloads) {
                if reload { try loadServers() }
                reload = true
                return try evaluate(e, benchmarks: benchmarks, tokenizer: tokenizer, stage: name, label: name)
            }
            printTable([summary])
            return [summary]
        }
        var summaries: [StageSummary] = []
        var previous: SnapshotMark?
        // Log-probabilities of a fixed set of (chosen, rejected) pairs after every stage show
        // what each stage did to the model.
        var previousPref: [Example]?
        if let pref = recipe.stages.first(where: { $0.objective.isPreference }) {
            previousPref = try Dataset.load(
                URL(fileURLWithPath: pref.data), tokenizer: tokenizer, maxLength: config.maxPositionEmbeddings,
                vocabularySize: config.vocabSize, limits: pref.limits, first: 64
            ).examples
        }
        for (index, stage) in recipe.stages.enumerated() {
            if let r = resumePoint, index < r.stage { continue }
            let start = resumePoint.flatMap { $0.stage == index ? $0 : nil }
            if let start {
                say("resuming \(stage.name) at step \(start.step)")  // its weights and AdamW state were the initial load
            } else if index > 0 {
                try recovering(.snapshot(previous)) { try resetOptimizerState() }  // stage 2 restarts AdamW and its schedule
            }
            let (summary, final) = try runStage(
                stage, index: index, config: config, tokenizer: tokenizer,
                preferenceProbe: &previousPref, start: start)
            summaries.append(summary)
            previous = final
        }
        printTable(summaries)
        return summaries
    }

    func welcome(_ index: Int, role: Role) -> Body {
        .welcome(
            Welcome(
                index: index, modelConfigJSON: configJSON, chunks: plan.chunks, chunkOwner: plan.owner,
                serverEndpoints: serverEndpoints, parameterCount: plan.chunks.last.map { $0.offset + $0.count } ?? 0,
                heartbeatSeconds: recipe.cluster.heartbeatSeconds, workers: workers.count,
                timeoutSeconds: recipe.cluster.timeoutSeconds, workerKeys: role == .server ? workerKeys : [],
                bf16Gradients: recipe.cluster.bf16Gradients, bf16Weights: recipe.cluster.bf16Weights,
                plainDataPlane: recipe.cluster.plainDataPlane, activationKeepBytes: recipe.cluster.activationKeepMiB << 20,
                snapshotDirectory: recipe.cluster.snapshotDirectory ?? ""))
    }

    // MARK: Model

    /// The model's configuration, a reader of its weights (read as they are loaded into the
    /// servers) and the tokenizer; a run resumed from a checkpoint keeps the tokenizer its
    /// weights were trained with rather than learning one again.
    func prepareModel(resumingFrom checkpoint: String? = nil) throws -> (LlamaConfig, ModelReader, any Tokenizer) {
        let chosen = try recipe.model.tokenizer.map { path -> any Tokenizer in
            guard let t = try loadTokenizer(path) else { throw ClusterError("\(path): no tokenizer redi-ps can read") }
            return t
        }
        func checked(_ t: any Tokenizer, _ config: LlamaConfig) throws -> any Tokenizer {
            guard t.vocabularySize <= config.vocabSize else {
                throw ClusterError("the tokenizer has \(t.vocabularySize) ids but the model's vocab_size is \(config.vocabSize)")
            }
            return t
        }
        if let path = recipe.model.path {
            let reader = try modelReader(path)
            guard let t = try chosen ?? loadTokenizer(path) else { throw ClusterError("\(path): the model has no tokenizer redi-ps can read; set model.tokenizer") }
            let config = overridden(reader.config)
            return (config, reader, try checked(t, config))
        }
        let tokenizer =
            try recipe.model.trainTokenizer.map { size in
                if let checkpoint, let stored = try loadTokenizer(checkpoint) {
                    say("resuming with the tokenizer of \(checkpoint) (learned at the run's start)")
                    return stored
                }
                return try trainedTokenizer(vocabularySize: size)
            } ?? chosen ?? ByteTokenizer()
        let name = recipe.model.initialize!
        let preset =
            try LlamaConfig.preset(
                name, vocabSize: tokenizer.vocabularySize, bos: tokenizer.bosID.map(Int.init),
                eos: tokenizer.eosID.map(Int.init), pad: tokenizer.padID.map(Int.init))
            ?? LlamaConfig.load(from: URL(fileURLWithPath: name))
        let config = overridden(preset)
        let reader = initialParameters(config: config, seed: recipe.seed)
        say("initialising \(config.modelType) from \(name): \(reader.layout.totalCount) parameters")
        return (config, reader, try checked(tokenizer, config))
    }

    /// A byte-level BPE tokenizer of up to `vocabularySize` ids trained on the first stage's records.
    func trainedTokenizer(vocabularySize: Int) throws -> any Tokenizer {
        let url = URL(fileURLWithPath: recipe.stages[0].data), started = Date()
        let trained = try trainTokenizer(onRecordsIn: url, vocabularySize: vocabularySize)
        say(
            String(
                format: "trained a byte-level BPE tokenizer of %d ids on %d records of %@ in %.1f s: %.2f bytes per token",
                trained.tokenizer.vocabularySize, trained.records, url.lastPathComponent, Date().timeIntervalSince(started), trained.bytesPerToken))
        return trained.tokenizer
    }

    /// `config` with the recipe's `model.overrides` set, each said in the log.
    func overridden(_ config: LlamaConfig) -> LlamaConfig {
        for (key, value) in recipe.model.overrides.sorted(by: { $0.key < $1.key }) {
            say("model.overrides: \(key) = \(String(format: "%g", value))")
        }
        return recipe.model.applyingOverrides(to: config)
    }

    // MARK: Stages

    /// Runs one stage; returns its summary and the snapshot taken at its end (what the next
    /// stage's start is recovered from).
    func runStage(
        _ stage: Recipe.Stage, index: Int, config: LlamaConfig, tokenizer: any Tokenizer,
        preferenceProbe: inout [Example]?, start: ResumePoint? = nil
    ) throws -> (StageSummary, SnapshotMark?) {
        referenceScores = nil
        // The tokens wait in a scratch file beside the output; a batch reads its examples back.
        let examples = try TokenStore(
            URL(fileURLWithPath: stage.data), tokenizer: tokenizer, maxLength: config.maxPositionEmbeddings,
            vocabularySize: config.vocabSize, limits: stage.limits, directory: URL(fileURLWithPath: recipe.output))
        keepAlive()
        say("stage \(stage.name) (\(stage.objective.name)): \(examples.report); \(examples.fileBytes >> 20) MiB of tokens")
        if case .dpo = stage.objective, !examples.hasReferences {
            // The reference is the model at the stage's start: computed once, and read back from
            // the checkpoint when the stage resumes (the resumed model is no longer the reference).
            let scores: [Double]
            if let start {
                scores = try loadReferenceScores(start.directory.appendingPathComponent("reference_logps.json"), count: 2 * examples.count)
                say("resumed DPO stage: reference log-probabilities from its start, saved in \(start.directory.path)")
            } else {
                say("computing reference log-probabilities for DPO from the current model")
                scores = try score(examples, microBatchTokens: stage.microBatchTokens)
            }
            referenceScores = scores
            examples.setReferences(scores)
        }
        if stage.objective.isPreference && preferenceProbe == nil { preferenceProbe = try examples.examples(0..<min(64, examples.count)) }
        // As Hugging Face's Trainer: batches never cross an epoch (an epoch's last batch may be
        // short), so one epoch uses every example exactly once.
        let total = stage.totalSteps(examples: examples.count)
        let perEpoch = (examples.count + stage.batchSize - 1) / stage.batchSize
        let rule = StepRule(stage.settings, totalSteps: total)
        var data = EpochOrder(count: examples.count, batchSize: stage.batchSize, recipeSeed: recipe.seed, stageIndex: index)
        if let start {
            // The checkpoint must be of this stage as the recipe now defines it.
            guard start.totalSteps == total, start.position <= examples.count,
                start.epoch <= (total + perEpoch - 1) / perEpoch, start.epoch > 0 || start.step == 0
            else {
                throw ClusterError(
                    "\(start.directory.path): written for \(start.totalSteps) steps at epoch \(start.epoch), position \(start.position); this recipe's stage \(stage.name) has \(total) steps over \(examples.count) examples (did its data, batch size or epochs change?)"
                )
            }
            if start.epoch > 0 { data.resume(epoch: start.epoch, position: start.position) }
        }
        func nextBatch() throws -> [Picked] {
            let (ids, epoch) = data.nextBatch()
            return try ids.map { Picked(example: try examples.example($0), id: $0, epoch: epoch) }
        }
        let started = Date()
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
                let t0 = Date()
                let batch = try nextBatch()
                let normalizer = stage.objective.normalizer(for: batch.map(\.example))
                let outcome = try distribute(batch, step: step, expectNorms: true) { version, shard in
                    WorkUnit(
                        stage: stage.name, step: step, version: version, objective: stage.objective,
                        normalizer: normalizer, examples: shard, microBatchTokens: stage.microBatchTokens)
                }
                let t1 = Date()
                let reports = outcome.reports, norm = outcome.sumsq.squareRoot()
                let (lr, scale) = rule.update(atStep: step, globalNorm: norm)
                let apply = ApplyUpdate(step: step, optimizerStep: step + 1, learningRate: lr, gradientScale: scale, adamW: stage.adamW)
                for id in servers { try messenger.send(.apply(apply), to: id) }
                try awaitAcknowledgements(servers.count)
                version.stepApplied()
                // What was applied, for the exactly-once check: (epoch, example id) in work order.
                // Shards are contiguous cuts of the batch, so the reports' ids in shard order are the batch's.
                let done = reports.flatMap(\.exampleIDs)
                guard done == batch.map(\.id) else { throw ClusterError("step \(step + 1): the workers' reports do not cover the batch") }
                try runLog?.examples(stage: stage.name, step: step + 1, pairs: batch.map { [$0.epoch, $0.id] })
                let metrics = outcome.metrics(rule: rule, normalizer: normalizer, globalNorm: norm, learningRate: lr, started: t0, collected: t1, applied: Date())
                try runLog?.step(stage: stage.name, step: step + 1, epoch: data.progress, metrics: metrics)
                let elapsed = Date().timeIntervalSince(started)
                let eta = elapsed / Double(step + 1) * Double(total - step - 1)
                say(
                    String(
                        format: "%@ step %d/%d  loss %.4f  grad_norm %.3f  lr %.2e  %.0f tok/s  ETA %.0f s",
                        stage.name, step + 1, total, metrics["loss"]!, norm, lr, metrics["tokens_per_second"]!, eta))
                if let every = stage.checkpointEvery, (step + 1) % every == 0, step + 1 < total {
                    try checkpoint(
                        stage: stage.name, step: step + 1, of: total, epoch: data.epoch, position: data.position, config: config,
                        tokenizer: tokenizer, name: "\(stage.name)-step\(step + 1)")
                }
                if let every = stage.evalEvery, let e = recipe.eval, (step + 1) % every == 0, step + 1 < total {
                    _ = try evaluate(e, benchmarks: benchmarks, tokenizer: tokenizer, stage: stage.name, label: "\(stage.name)-step\(step + 1)")
                }
                step += 1
            } catch let lost as ServerLost {
                // Re-plan the lost server's chunks, load the snapshot, and replay the steps since:
                // the same batches, shards and sums, so the same weights as without the loss.
                guard let snap = snapshot else {
                    throw ClusterError("\(lost), and there is no complete snapshot to recover from\(recipe.cluster.snapshotEvery == 0 ? " (cluster.snapshot_every is 0)" : " yet")")
                }
                say("\(lost); replaying from the snapshot at step \(snap.step + 1)")
                try replan(losing: lost.index)
                try restoreSnapshot(snap)
                (data, step) = (snap.data, snap.step)
                if let mark = snap.logMark { try runLog?.rewind(to: mark) }
            }
        }
        let final = snapshot
        let dir = try recovering(.snapshot(final)) {
            try checkpoint(
                stage: stage.name, step: total, of: total, epoch: data.epoch, position: data.position, config: config,
                tokenizer: tokenizer, name: stage.name)
        }
        var summary = StageSummary(stage: stage.name, steps: total, checkpoint: dir)
        if let probe = preferenceProbe {
            let s = try recovering(.snapshot(final)) { try score(probe, microBatchTokens: stage.microBatchTokens) }
            summary.logpsChosen = stride(from: 0, to: s.count, by: 2).map { s[$0] }.reduce(0, +) / Double(probe.count)
            summary.logpsRejected = stride(from: 1, to: s.count, by: 2).map { s[$0] }.reduce(0, +) / Double(probe.count)
        }
        if let e = recipe.eval {
            summary.passAt1 = try recovering(.snapshot(final)) { try evaluate(e, benchmarks: benchmarks, tokenizer: tokenizer, stage: stage.name, label: stage.name) }
        }
        return (summary, final)
    }

    /// How work between steps comes back after a lost server: its body loads every weight
    /// itself, or the servers go back to a snapshot (none: the run cannot recover).
    enum Recovery {
        case bodyReloads
        case snapshot(SnapshotMark?)
    }

    /// Runs `body` (work between steps) again after a lost server's chunks were re-planned and
    /// the weights brought back as `recovery` says.
    func recovering<T>(_ recovery: Recovery, _ body: () throws -> T) throws -> T {
        while true {
            do { return try body() } catch let lost as ServerLost {
                if case .snapshot(nil) = recovery {
                    throw ClusterError("\(lost), and there is no snapshot to recover from\(recipe.cluster.snapshotEvery == 0 ? " (cluster.snapshot_every is 0)" : "")")
                }
                say("\(lost); re-planning and doing that again")
                try replan(losing: lost.index)
                if case let .snapshot(mark?) = recovery { try restoreSnapshot(mark) }
            }
        }
    }
}

extension String {
    func leftPad(_ n: Int) -> String { count >= n ? self : String(repeating: " ", count: n - count) + self }
}
