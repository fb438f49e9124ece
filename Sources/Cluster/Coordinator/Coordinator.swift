// The coordinator: admits servers and workers, owns the data order and the learning-rate
// schedule, splits every global batch over the workers, turns the servers' partial Σg² into
// the global norm and clip coefficient, and sequences stage 1 → checkpoint → stage 2 →
// checkpoint, evaluating after each stage. Synchronous data parallelism. This file is the
// run's outline; the rest is by name: Coordinator+Stage (one stage's data, steps, replay and
// end), Coordinator+Membership (who is in the run, liveness, the receive loop),
// Coordinator+Work (weights to and from the servers, a step's shards out to the workers and
// their reports back), Coordinator+Checkpoints (checkpoints, snapshots, resuming),
// Coordinator+Evaluation (pass@1 on the workers, the summary table), RunLog (metrics,
// examples, TensorBoard).
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
    /// The trust rule for the workers' gradients, with its history, and the shards verified by recomputation.
    var screen: ContributionScreen
    var lastHeartbeat = Date.distantPast
    var plan: (chunks: [ChunkRange], owner: [Int]) = ([], [])
    var configJSON = ""
    /// Slots of the workers in the current step; batches are split over these.
    var live: [Int] { members.live }
    var version = ParameterVersion()
    /// Snapshots (on the servers): the last tag, and where each chunk's copies are (a replica
    /// held by no server is this process's `replicaOfOnlyServer`: with one server there is no
    /// other to keep it).
    var snapshots = SnapshotChain()
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
        screen = ContributionScreen(maxShardNorm: recipe.cluster.maxShardGradNorm)
    }

    /// Where an interrupted run continues: its stage, step, data position and AdamW state.
    struct ResumePoint {
        let stage: Int, step: Int, totalSteps: Int, epoch: Int, position: Int
        let directory: URL
        /// Where the logs stood when the checkpoint was written (nil in older checkpoints).
        let logMark: RunLog.Mark?
    }
    /// The recipe's benchmarks, read at launch.
    var benchmarks: [LoadedBenchmark] = []
    let evaluateOnly: Bool

    /// Ctrl-C and TERM: checked wherever the coordinator waits, so they end the run with
    /// every server and worker told to shut down.
    let stop = StopSignals()

    func checkStop() throws {
        if let sig = stop.value { throw ClusterError("stopped by signal \(sig); servers and workers were told to shut down") }
    }

    func say(_ message: String) { log("coordinator", message) }

    /// Checkpoint directories (holding trainer_state.json) directly under `out`.
    func previousCheckpoints(in out: URL) -> [URL] {
        ((try? FileManager.default.contentsOfDirectory(atPath: out.path)) ?? []).map { out.appendingPathComponent($0) }
            .filter { FileManager.default.fileExists(atPath: $0.appendingPathComponent("trainer_state.json").path) }
    }

    /// Runs the recipe to the end.
    ///
    /// - Throws: `ClusterError` (or a data, format or recipe error) when the run fails; every
    ///   peer has then been told the run failed.
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

    /// The run: output prepared, model and data read, peers admitted and loaded, then every
    /// stage (or, with `--evaluate`, only the evaluation).
    func runStages() throws -> [StageSummary] {
        let out = URL(fileURLWithPath: recipe.output).standardizedFileURL
        try prepareOutput(out)
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

        stop.install()
        let context = ZMQContext()
        let zap = try ZAPHandler(context: context) { log("coordinator", $0) }
        defer { zap.stop() }
        try listen(context, zap: zap)
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
        if evaluateOnly { return try evaluateModel(tokenizer: tokenizer, reload: loadServers) }
        return try trainStages(config: config, tokenizer: tokenizer, from: resumePoint)
    }

    /// The output directory made ready: a run already there is refused unless resumed or
    /// overwritten (`--overwrite` deletes its checkpoints), and the recipe's data synthesised.
    func prepareOutput(_ out: URL) throws {
        say("output: \(out.path)")
        let checkpoints = previousCheckpoints(in: out)
        let metrics = out.appendingPathComponent("metrics.jsonl")
        let logged = (try? FileManager.default.attributesOfItem(atPath: metrics.path)[.size] as? Int) ?? 0
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
    }

    /// The control socket: a CurveZMQ server that admits holders of the run key, bound to
    /// `bind`, whose largest message is a pull reply's whole chunk; `messenger` sends on it.
    func listen(_ context: ZMQContext, zap: ZAPHandler) throws {
        zap.allow(key.keys.publicKey, userID: "member", domain: "control")
        let socket = try ZMQSocket(context, .router)
        try socket.makeCurveServer(secretKey: key.keys.secretKey, domain: "control")
        try socket.allowRoutingIDHandover()
        try socket.setMaximumMessageSize(frameLimit(chunkBytes: ChunkPlan.chunkBytes(mib: recipe.cluster.chunkMiB)))
        let endpoint = try socket.bind(bind)
        messenger = Messenger(socket: socket, runID: recipe.runID, sender: "coordinator", routed: true)
        say("run \(recipe.runID): listening on \(endpoint) (run key \(key.fingerprint)); waiting for \(recipe.cluster.servers) servers and \(recipe.cluster.workers) workers")
    }

    /// `--evaluate`: the loaded model on the recipe's benchmarks, no training (after a lost
    /// server the model is loaded again: there is no snapshot to go back to).
    func evaluateModel(tokenizer: any Tokenizer, reload loadServers: () throws -> Void) throws -> [StageSummary] {
        let name = URL(fileURLWithPath: recipe.model.path ?? "model").lastPathComponent
        guard let e = recipe.eval else { throw ClusterError("--evaluate: the recipe has no eval section") }
        var summary = StageSummary(stage: name, steps: 0, checkpoint: recipe.model.path ?? "")
        var reload = false
        summary.passAt1 = try recovering(.bodyReloads) {
            if reload { try loadServers() }
            reload = true
            return try evaluate(e, benchmarks: benchmarks, tokenizer: tokenizer, stage: name, label: name)
        }
        printTable([summary])
        return [summary]
    }

    /// Every stage from the resume point's on (stage 2 restarts AdamW and its schedule), then
    /// the summary table. The log-probabilities of a fixed set of (chosen, rejected) pairs
    /// after every stage show what each stage did to the model.
    func trainStages(config: LlamaConfig, tokenizer: any Tokenizer, from resumePoint: ResumePoint?) throws -> [StageSummary] {
        var summaries: [StageSummary] = []
        var previous: SnapshotMark?
        var probe: [Example]?
        if let pref = recipe.stages.first(where: { $0.objective.isPreference }) {
            probe = try Dataset.load(
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
                try recovering(.snapshot(previous)) { try resetOptimizerState() }
            }
            let (summary, final) = try runStage(stage, index: index, config: config, tokenizer: tokenizer, preferenceProbe: &probe, start: start)
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
                plainDataPlane: recipe.cluster.dataPlane != .curve, sealedDataPlane: recipe.cluster.dataPlane == .sealed,
                activationKeepBytes: recipe.cluster.activationKeepMiB << 20,
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

/// SIGINT and SIGTERM noted by dispatch sources (not acted on in a handler): the run loop
/// checks `value` wherever it waits.
final class StopSignals: @unchecked Sendable {
    private let lock = NSLock()
    private var signal: Int32?
    private var sources: [DispatchSourceSignal] = []

    /// The signal received, if any.
    var value: Int32? { lock.lock(); defer { lock.unlock() }; return signal }

    /// Replaces the default handlers (which would end the process without telling the peers).
    func install() {
        for sig in [SIGINT, SIGTERM] {
            Foundation.signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { [weak self] in self?.note(sig) }
            source.resume()
            lock.lock(); sources.append(source); lock.unlock()
        }
    }

    private func note(_ s: Int32) { lock.lock(); signal = s; lock.unlock() }
}
