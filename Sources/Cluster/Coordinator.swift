// The coordinator: admits servers and workers, owns the data order and the learning-rate
// schedule, splits every global batch over the workers, turns the servers' partial Σg² into
// the global norm and clip coefficient, and sequences stage 1 → checkpoint → stage 2 →
// checkpoint, evaluating after each stage. Synchronous data parallelism.
import Data
import Evaluation
import Formats
import Foundation
import Model
import Numerics
import Objectives
import Optimizer
import ReasoningTask
import Tokenizers
import Training
import Transport
import Wire

/// What one stage ended with, for the run's summary table.
public struct StageSummary: Sendable {
    public var stage: String
    public var steps: Int
    public var passAt1: Double?
    public var logpsChosen: Double?
    public var logpsRejected: Double?
    public var checkpoint: String
}

public final class Coordinator {
    let recipe: Recipe
    let bind: String
    var messenger: Messenger!
    var servers: [[UInt8]] = []
    var workers: [[UInt8]] = []
    var plan: (chunks: [ChunkRange], owner: [Int]) = ([], [])
    /// Indices (into `workers`) of the workers still answering; batches are split over these.
    var live: [Int] = []
    var version = 0
    var metricsFile: FileHandle?

    let resume: String?

    /// - Parameter resume: a checkpoint directory written by this recipe (with
    ///   `trainer_state.json` and `optimizer.safetensors`) to continue from.
    public init(recipe: Recipe, bind: String? = nil, resume: String? = nil) {
        self.recipe = recipe
        self.bind = bind ?? recipe.cluster.bind
        self.resume = resume
    }

    /// Where an interrupted run continues: its stage, step, data position and AdamW state.
    struct ResumePoint {
        let stage: Int, step: Int, epoch: Int, position: Int
        let m: FloatBuffer, v: FloatBuffer
    }

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

    public func run() throws -> [StageSummary] {
        let out = URL(fileURLWithPath: recipe.output)
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        if let s = recipe.synth {
            let stats = try Synthesis.run(SynthesisSettings(problems: s.problems, tracesPerProblem: s.tracesPerProblem, testProblems: s.testProblems,
                                                            seed: recipe.seed, digits: s.digits, steps: s.steps, errorRate: s.errorRate), to: out)
            say(String(format: "synthesised %d sft, %d preference, %d test records (teacher accuracy %.2f)",
                       stats.sftRecords, stats.preferenceRecords, stats.testProblems, stats.teacherAccuracy))
        }
        let (config, parameters, tokenizer) = try prepareModel()
        let resumePoint = try resume.map { try loadResumePoint($0, into: parameters) }
        let metricsURL = out.appendingPathComponent("metrics.jsonl")
        if resumePoint == nil || !FileManager.default.fileExists(atPath: metricsURL.path) {
            FileManager.default.createFile(atPath: metricsURL.path, contents: nil)
        }
        metricsFile = try FileHandle(forWritingTo: metricsURL)
        metricsFile?.seekToEndOfFile()

        installSignalHandlers()
        let context = ZMQContext()
        let socket = try ZMQSocket(context, .router)
        let endpoint = try socket.bind(bind)
        messenger = Messenger(socket: socket, runID: recipe.runID, sender: "coordinator", routed: true)
        say("run \(recipe.runID): listening on \(endpoint); waiting for \(recipe.cluster.servers) servers and \(recipe.cluster.workers) workers")
        defer { shutdownAll("run ended") }
        let endpoints = try admit()
        live = Array(workers.indices)
        plan = ChunkPlan.make(parameterCount: parameters.count, mib: recipe.cluster.chunkMiB, servers: servers.count)
        let configJSON = String(decoding: try JSONEncoder().encode(config), as: UTF8.self)
        func welcome(_ index: Int) -> Body {
            .welcome(Welcome(index: index, modelConfigJSON: configJSON, chunks: plan.chunks, chunkOwner: plan.owner,
                             serverEndpoints: endpoints, parameterCount: parameters.count,
                             heartbeatSeconds: recipe.cluster.heartbeatSeconds, workers: workers.count))
        }
        for (i, s) in servers.enumerated() { try messenger.send(welcome(i), to: s) }
        for (i, w) in workers.enumerated() { try messenger.send(welcome(i), to: w) }
        say("\(plan.chunks.count) chunks of ≤ \(recipe.cluster.chunkMiB) MiB over \(servers.count) servers")
        try loadWeights(parameters, resetOptimizer: true)

        var summaries: [StageSummary] = []
        // Log-probabilities of a fixed set of (chosen, rejected) pairs after every stage show
        // what each stage did to the model.
        var previousPref: [Example]?
        if let pref = recipe.stages.first(where: { $0.objective.isPreference }) {
            previousPref = try Array(Dataset.load(URL(fileURLWithPath: pref.data), tokenizer: tokenizer, maxLength: config.maxPositionEmbeddings,
                                                  vocabularySize: config.vocabSize,
                                                  limits: LengthLimits(maxPromptLength: pref.maxPromptLength, maxLength: pref.maxLength))
                .examples.prefix(64))
        }
        for (index, stage) in recipe.stages.enumerated() {
            if let r = resumePoint, index < r.stage { continue }
            let start = resumePoint.flatMap { $0.stage == index ? $0 : nil }
            if let start {
                try loadWeights(parameters, resetOptimizer: false, optimizer: (start.m, start.v))
                say("resuming \(stage.name) at step \(start.step)")
            } else if index > 0 {
                try loadWeights(parameters, resetOptimizer: true)  // stage 2 restarts AdamW and its schedule
            }
            let summary = try runStage(stage, index: index, config: config, parameters: parameters, tokenizer: tokenizer,
                                       preferenceProbe: &previousPref, start: start)
            summaries.append(summary)
        }
        printTable(summaries)
        return summaries
    }

    // MARK: Model and membership

    func prepareModel() throws -> (LlamaConfig, FloatBuffer, any Tokenizer) {
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
            let m = try loadModel(path)
            guard let t = chosen ?? m.tokenizer else { throw ClusterError("\(path): the model has no tokenizer redi-ps can read; set model.tokenizer") }
            return (m.config, m.parameters, try checked(t, m.config))
        }
        let tokenizer = chosen ?? ByteTokenizer()
        let name = recipe.model.initialize!
        let config = try LlamaConfig.preset(name, vocabSize: tokenizer.vocabularySize, bos: tokenizer.bosID.map(Int.init),
                                            eos: tokenizer.eosID.map(Int.init), pad: tokenizer.padID.map(Int.init))
            ?? LlamaConfig.load(from: URL(fileURLWithPath: name))
        let layout = ParameterLayout(config: config)
        let p = FloatBuffer(count: layout.totalCount)
        initializeParameters(p, layout: layout, seed: recipe.seed)
        say("initialised \(config.modelType) from \(name): \(layout.totalCount) parameters")
        return (config, p, try checked(tokenizer, config))
    }

    /// Waits until the recipe's servers and workers have said hello; returns the servers' data endpoints.
    func admit() throws -> [String] {
        var endpoints: [String] = []
        let started = Date()
        var lastStatus = Date()
        while servers.count < recipe.cluster.servers || workers.count < recipe.cluster.workers {
            try checkStop()
            if Date().timeIntervalSince(started) > recipe.cluster.timeoutSeconds {
                throw ClusterError("only \(servers.count)/\(recipe.cluster.servers) servers and \(workers.count)/\(recipe.cluster.workers) workers joined within \(Int(recipe.cluster.timeoutSeconds)) s")
            }
            if Date().timeIntervalSince(lastStatus) > 10 {
                say("waiting: \(servers.count)/\(recipe.cluster.servers) servers, \(workers.count)/\(recipe.cluster.workers) workers")
                lastStatus = Date()
            }
            guard let msg = try messenger.receive(timeout: 1, onInvalid: { self.say("dropped: \($0)") }), let id = msg.identity else { continue }
            guard case let .hello(h) = msg.envelope.body else { continue }
            if servers.contains(id) || workers.contains(id) { continue }  // a repeated hello
            guard h.protocolVersion == Wire.protocolVersion else {
                try messenger.send(.error(code: 426, message: "protocol version \(h.protocolVersion), coordinator speaks \(Wire.protocolVersion)"), to: id)
                continue
            }
            switch h.role {
            case .server where servers.count < recipe.cluster.servers:
                servers.append(id); endpoints.append(h.endpoint)
                say("server \(servers.count - 1) joined: \(String(decoding: id, as: UTF8.self)) at \(h.endpoint)")
            case .worker where workers.count < recipe.cluster.workers:
                workers.append(id)
                say("worker \(workers.count - 1) joined: \(String(decoding: id, as: UTF8.self))")
            default:
                try messenger.send(.error(code: 409, message: "the run already has all its \(h.role == .server ? "servers" : "workers")"), to: id)
            }
        }
        return endpoints
    }

    /// Sends the whole vector to the servers (each gets its chunks) and waits for their
    /// acknowledgements; with `optimizer`, AdamW's m and v travel too (resuming).
    func loadWeights(_ parameters: FloatBuffer, resetOptimizer: Bool, optimizer: (m: FloatBuffer, v: FloatBuffer)? = nil) throws {
        for (s, id) in servers.enumerated() {
            let mine = plan.chunks.indices.filter { plan.owner[$0] == s }
            let buffers = optimizer.map { [parameters, $0.m, $0.v] } ?? [parameters]
            try messenger.send(.load(chunks: mine, resetOptimizer: resetOptimizer, optimizerState: optimizer != nil), to: id,
                               tensors: mine.flatMap { c in buffers.map { OutgoingTensor(pointer: $0.baseAddress + plan.chunks[c].offset,
                                                                                         count: plan.chunks[c].count, owner: $0) } })
        }
        _ = try collect(servers.count) { if case .updateDone = $0 { return true }; return false }
        version += 1
    }

    /// Pulls every chunk back from the servers into `parameters` (and AdamW's m and v into `optimizer`).
    func pullWeights(into parameters: FloatBuffer, optimizer: (m: FloatBuffer, v: FloatBuffer)? = nil) throws {
        for (s, id) in servers.enumerated() {
            try messenger.send(.pull(version: version, chunks: plan.chunks.indices.filter { plan.owner[$0] == s },
                                     optimizerState: optimizer != nil), to: id)
        }
        let buffers = optimizer.map { [parameters, $0.m, $0.v] } ?? [parameters]
        for msg in try collect(servers.count, { if case .pullReply = $0 { return true }; return false }) {
            guard case let .pullReply(_, ids, _) = msg.envelope.body, ids.count * buffers.count == msg.tensors.count else {
                throw ClusterError("\(msg.envelope.sender): malformed pull reply")
            }
            for (k, id) in ids.enumerated() {
                for (b, buffer) in buffers.enumerated() {
                    msg.tensors[k * buffers.count + b].copyFloats(into: buffer.baseAddress + plan.chunks[id].offset)
                }
            }
        }
    }

    /// Receives until `count` messages match; an error from any peer ends the run.
    func collect(_ count: Int, _ matches: (Body) -> Bool) throws -> [Incoming] {
        var got: [Incoming] = []
        var silent = Date()
        while got.count < count {
            try checkStop()
            guard let msg = try messenger.receive(timeout: min(1, recipe.cluster.heartbeatSeconds), onInvalid: { self.say("dropped: \($0)") }) else {
                if Date().timeIntervalSince(silent) > recipe.cluster.timeoutSeconds {
                    throw ClusterError("no answer from the cluster for \(Int(recipe.cluster.timeoutSeconds)) s (a server or worker died?)")
                }
                continue
            }
            silent = Date()
            if case let .error(_, message) = msg.envelope.body { throw ClusterError("\(msg.envelope.sender): \(message)") }
            if matches(msg.envelope.body) { got.append(msg) }
        }
        return got
    }

    private var lastHeartbeat = Date.distantPast

    /// Tells every server and worker the coordinator is alive; called from long in-process
    /// work (evaluation, checkpoints) so peers do not give up on a silent coordinator.
    func keepAlive(step: Int = 0) {
        guard Date().timeIntervalSince(lastHeartbeat) >= recipe.cluster.heartbeatSeconds, let messenger else { return }
        for id in servers + workers { try? messenger.send(.heartbeat(step: step), to: id) }
        lastHeartbeat = Date()
    }

    func shutdownAll(_ reason: String) {
        guard let messenger else { return }
        let reason = stop.value.map { "coordinator stopped by signal \($0)" } ?? reason
        for id in servers + workers { try? messenger.send(.shutdown(reason: reason), to: id) }
        Thread.sleep(forTimeInterval: 0.2)  // let the messages leave before the socket closes
    }

    // MARK: Stages

    func loadResumePoint(_ path: String, into parameters: FloatBuffer) throws -> ResumePoint {
        let dir = URL(fileURLWithPath: path)
        guard let data = try? Data(contentsOf: dir.appendingPathComponent("trainer_state.json")),
              let state = try JSONSerialization.jsonObject(with: data) as? [String: Any],
              let stageName = state["stage"] as? String, let step = state["step"] as? Int,
              let epoch = state["epoch"] as? Int, let position = state["data_position"] as? Int else {
            throw ClusterError("\(path): no readable trainer_state.json to resume from")
        }
        guard let stage = recipe.stages.firstIndex(where: { $0.name == stageName }) else {
            throw ClusterError("\(path): stage \"\(stageName)\" is not in this recipe")
        }
        let checkpoint = try Checkpoint.load(from: dir)
        guard checkpoint.parameters.count == parameters.count else {
            throw ClusterError("\(path): \(checkpoint.parameters.count) parameters, the recipe's model has \(parameters.count)")
        }
        parameters.copy(from: checkpoint.parameters)
        let optimizer = try SafetensorsFile(url: dir.appendingPathComponent("optimizer.safetensors"))
        let m = FloatBuffer(count: parameters.count), v = FloatBuffer(count: parameters.count)
        for (name, buffer) in [("exp_avg", m), ("exp_avg_sq", v)] {
            guard optimizer.tensors[name]?.count == parameters.count else { throw ClusterError("\(path): optimizer.safetensors lacks \(name)") }
            try optimizer.read(name, into: buffer.baseAddress)
        }
        return ResumePoint(stage: stage, step: step, epoch: epoch, position: position, m: m, v: v)
    }

    func runStage(_ stage: Recipe.Stage, index: Int, config: LlamaConfig, parameters: FloatBuffer, tokenizer: any Tokenizer,
                  preferenceProbe: inout [Example]?, start: ResumePoint? = nil) throws -> StageSummary {
        let (loaded, report) = try Dataset.load(URL(fileURLWithPath: stage.data), tokenizer: tokenizer, maxLength: config.maxPositionEmbeddings,
                                                vocabularySize: config.vocabSize,
                                                limits: LengthLimits(maxPromptLength: stage.maxPromptLength, maxLength: stage.maxLength))
        var examples = loaded
        keepAlive()
        say("stage \(stage.name) (\(stage.objective.name)): \(report)")
        if case .dpo = stage.objective, examples.contains(where: { $0.refChosen == nil }) {
            say("computing reference log-probabilities for DPO from the current model")
            let scores = try score(examples, microBatchTokens: stage.microBatchTokens)
            for i in examples.indices { examples[i].refChosen = scores[2 * i]; examples[i].refRejected = scores[2 * i + 1] }
        }
        if stage.objective.isPreference && preferenceProbe == nil { preferenceProbe = Array(examples.prefix(64)) }
        let total = Int((Double(examples.count) * stage.epochs / Double(stage.batchSize)).rounded(.up))
        let schedule = LinearWarmupDecay(peak: stage.learningRate, totalSteps: total, warmupRatio: stage.warmupRatio)
        let adamW = AdamWSpec(beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: stage.weightDecay)
        var order: [Int] = [], position = 0, epoch = 0
        // The data order of each epoch is a function of (seed, stage, epoch), so a resumed run
        // rebuilds the current epoch's order and continues at the saved position.
        func shuffled(_ e: Int) -> [Int] {
            var rng = SeededGenerator(seed: recipe.seed &+ UInt64(index) &* 1_000_003 &+ UInt64(e))
            return Array(examples.indices).shuffled(using: &rng)
        }
        if let start, start.epoch > 0 { epoch = start.epoch; order = shuffled(epoch - 1); position = start.position }
        func nextBatch() -> [Example] {
            var batch: [Example] = []
            while batch.count < min(stage.batchSize, examples.count) {
                if position >= order.count {
                    order = shuffled(epoch)
                    position = 0; epoch += 1
                }
                batch.append(examples[order[position]]); position += 1
            }
            return batch
        }
        let started = Date()
        var tokensSeen = 0
        for step in (start?.step ?? 0)..<total {
            let t0 = Date()
            let batch = nextBatch()
            let normalizer = stage.objective.normalizer(for: batch)
            var outcome: (reports: [StepReport], sumsq: Double)?
            while outcome == nil {
                let shards = split(batch, into: live.count)
                for (k, w) in live.enumerated() {
                    try messenger.send(.work(WorkUnit(stage: stage.name, step: step, version: version, objective: ObjectiveSpec(stage.objective),
                                                      normalizer: normalizer, examples: shards[k].map(wire), microBatchTokens: stage.microBatchTokens)),
                                       to: workers[w])
                }
                outcome = try collectStep(step)
            }
            let (reports, sumsq) = outcome!
            let t1 = Date()
            let norm = sumsq.squareRoot()
            let lr = schedule.learningRate(atStep: step)
            let apply = ApplyUpdate(step: step, optimizerStep: step + 1, learningRate: lr,
                                    gradientScale: clipCoefficient(globalNorm: norm, maxNorm: stage.maxGradNorm), adamW: adamW)
            for id in servers { try messenger.send(.apply(apply), to: id) }
            _ = try collect(servers.count) { if case .updateDone = $0 { return true }; return false }
            version += 1
            let t2 = Date()
            var result = ObjectiveResult()
            for r in reports {
                var partial = ObjectiveResult()
                partial.lossSum = r.lossSum; partial.examples = r.examples; partial.tokens = r.tokens; partial.metricSums = r.metricSums
                result.merge(partial)
            }
            tokensSeen += result.tokens
            var metrics = result.metrics(for: stage.objective)
            metrics["loss"] = result.lossSum / max(1, normalizer)
            metrics["grad_norm"] = norm
            metrics["learning_rate"] = lr
            let stepSeconds = t2.timeIntervalSince(t0)
            let compute = reports.map(\.computeSeconds).max() ?? 0
            let communication = reports.map(\.communicationSeconds).max() ?? 0
            metrics["tokens_per_second"] = Double(result.tokens) / stepSeconds
            metrics["time/step"] = stepSeconds
            metrics["time/compute"] = compute
            metrics["time/communication"] = communication
            metrics["time/waiting"] = max(0, t1.timeIntervalSince(t0) - compute - communication) + t2.timeIntervalSince(t1)
            var line: [String: Any] = metrics
            line["stage"] = stage.name; line["step"] = step + 1; line["epoch"] = Double(step + 1) * Double(stage.batchSize) / Double(examples.count)
            metricsFile?.write(try JSONSerialization.data(withJSONObject: line, options: [.sortedKeys, .withoutEscapingSlashes]) + Data("\n".utf8))
            let elapsed = Date().timeIntervalSince(started)
            let eta = elapsed / Double(step + 1) * Double(total - step - 1)
            say(String(format: "%@ step %d/%d  loss %.4f  grad_norm %.3f  lr %.2e  %.0f tok/s  ETA %.0f s",
                       stage.name, step + 1, total, metrics["loss"]!, norm, lr, metrics["tokens_per_second"]!, eta))
            if let every = stage.checkpointEvery, (step + 1) % every == 0, step + 1 < total {
                try checkpoint(stage: stage.name, step: step + 1, of: total, epoch: epoch, position: position, config: config,
                               parameters: parameters, tokenizer: tokenizer, name: "\(stage.name)-step\(step + 1)")
            }
        }
        let dir = try checkpoint(stage: stage.name, step: total, of: total, epoch: epoch, position: position, config: config,
                                 parameters: parameters, tokenizer: tokenizer, name: stage.name)
        var summary = StageSummary(stage: stage.name, steps: total, checkpoint: dir)
        if let probe = preferenceProbe {
            let s = try score(probe, microBatchTokens: stage.microBatchTokens)
            summary.logpsChosen = stride(from: 0, to: s.count, by: 2).map { s[$0] }.reduce(0, +) / Double(probe.count)
            summary.logpsRejected = stride(from: 1, to: s.count, by: 2).map { s[$0] }.reduce(0, +) / Double(probe.count)
        }
        if let e = recipe.eval {
            summary.passAt1 = try evaluate(e, config: config, parameters: parameters, tokenizer: tokenizer, stage: stage.name)
        }
        return summary
    }

    /// Collects one step's worker reports and server norms. When workers stop answering for
    /// `timeout_seconds`, they are dropped, the servers restart the step with the live
    /// workers, and nil asks the caller to re-send the step.
    func collectStep(_ step: Int) throws -> (reports: [StepReport], sumsq: Double)? {
        var reports: [Int: StepReport] = [:], norms: [Int: Double] = [:]
        var silent = Date()
        while reports.count < live.count || norms.count < servers.count {
            try checkStop()
            if let msg = try messenger.receive(timeout: min(1, recipe.cluster.heartbeatSeconds), onInvalid: { self.say("dropped: \($0)") }),
               let id = msg.identity {
                silent = Date()
                switch msg.envelope.body {
                case let .stepReport(r) where r.step == step:
                    if let w = workers.firstIndex(of: id), live.contains(w) { reports[w] = r }
                case let .norm(s, sumsq) where s == step:
                    if let server = servers.firstIndex(of: id) { norms[server] = sumsq }
                case let .error(_, message):
                    if let w = workers.firstIndex(of: id), !live.contains(w) { continue }  // a dropped worker's last words
                    throw ClusterError("\(msg.envelope.sender): \(message)")
                default:
                    continue
                }
                continue
            }
            guard Date().timeIntervalSince(silent) > recipe.cluster.timeoutSeconds else { continue }
            let missing = live.filter { reports[$0] == nil }
            guard !missing.isEmpty, missing.count < live.count else {
                throw ClusterError("no answer from the cluster for \(Int(recipe.cluster.timeoutSeconds)) s (a server or every worker died?)")
            }
            live.removeAll { missing.contains($0) }
            say("worker(s) \(missing) stopped answering at step \(step + 1); continuing with \(live.count) workers")
            for id in servers { try messenger.send(.reset(step: step, liveWorkers: live), to: id) }
            // The acknowledgements follow any stale norm on each server's connection, so those are discarded too.
            _ = try collect(servers.count) { if case .updateDone = $0 { return true }; return false }
            return nil
        }
        return (live.compactMap { reports[$0] }, norms.values.reduce(0, +))
    }

    /// Sequence log-probabilities of every example's sequences, computed by the workers at the current version.
    func score(_ examples: [Example], microBatchTokens: Int) throws -> [Double] {
        let shards = split(examples, into: live.count)
        for (k, w) in live.enumerated() {
            try messenger.send(.work(WorkUnit(stage: "score", step: 0, version: version, objective: ObjectiveSpec(name: "sft"),
                                              normalizer: 1, examples: shards[k].map(wire), microBatchTokens: microBatchTokens,
                                              scoreOnly: true)), to: workers[w])
        }
        var byWorker: [Int: [Double]] = [:]
        for msg in try collect(live.count, { if case .stepReport = $0 { return true }; return false }) {
            guard let w = workers.firstIndex(of: msg.identity ?? []), case let .stepReport(r) = msg.envelope.body else { continue }
            byWorker[w] = r.sequenceLogps
        }
        return live.flatMap { byWorker[$0] ?? [] }
    }

    /// Contiguous shards of near-equal token counts, one per worker (some may be empty).
    func split(_ batch: [Example], into parts: Int) -> [[Example]] {
        let total = batch.reduce(0) { $0 + $1.sequences.reduce(0) { $0 + $1.tokens.count } }
        var shards = Array(repeating: [Example](), count: parts)
        var acc = 0, part = 0
        for e in batch {
            let n = e.sequences.reduce(0) { $0 + $1.tokens.count }
            if part < parts - 1 && !shards[part].isEmpty && Double(acc + n / 2) > Double(total) * Double(part + 1) / Double(parts) { part += 1 }
            shards[part].append(e)
            acc += n
        }
        return shards
    }

    func wire(_ e: Example) -> WireExample {
        WireExample(sequences: e.sequences.map { WireSequence(tokens: $0.tokens, promptLength: $0.promptLength) },
                    reference: e.refChosen.map { ($0, e.refRejected ?? 0) })
    }

    @discardableResult
    func checkpoint(stage: String, step: Int, of total: Int, epoch: Int, position: Int, config: LlamaConfig, parameters: FloatBuffer,
                    tokenizer: any Tokenizer, name: String) throws -> String {
        let m = FloatBuffer(count: parameters.count), v = FloatBuffer(count: parameters.count)
        try pullWeights(into: parameters, optimizer: (m, v))
        keepAlive()
        let dir = URL(fileURLWithPath: recipe.output).appendingPathComponent(name)
        try Checkpoint.write(to: dir, config: config, parameters: parameters.baseAddress, tokenizer: tokenizer)
        keepAlive()
        // AdamW state beside the model, as flat vectors in the parameter layout, for resuming.
        try writeSafetensors([TensorToWrite(name: "exp_avg", shape: [m.count], values: m.baseAddress),
                              TensorToWrite(name: "exp_avg_sq", shape: [v.count], values: v.baseAddress)],
                             metadata: ["format": "pt", "optimizer": "adamw", "optimizer_step": String(step)],
                             to: dir.appendingPathComponent("optimizer.safetensors"))
        let state: [String: Any] = ["stage": stage, "step": step, "total_steps": total, "epoch": epoch, "data_position": position,
                                    "optimizer_step": step, "seed": recipe.seed, "run_id": recipe.runID, "parameter_version": version]
        try JSONSerialization.data(withJSONObject: state, options: [.prettyPrinted, .sortedKeys])
            .write(to: dir.appendingPathComponent("trainer_state.json"))
        say("checkpoint \(dir.path)")
        return dir.path
    }

    func evaluate(_ e: Recipe.EvalSpec, config: LlamaConfig, parameters: FloatBuffer, tokenizer: any Tokenizer, stage: String) throws -> Double {
        let problems = try EvalSet.load(URL(fileURLWithPath: e.data), tokenizer: tokenizer, limit: e.limit)
        let stop = stopTokens(tokenizer)
        var pass1: [Double] = []
        for (i, p) in problems.enumerated() {
            keepAlive()
            try checkStop()
            let settings = SamplingSettings(temperature: e.temperature, topP: e.topP, maxNewTokens: e.maxNewTokens, seed: recipe.seed &+ UInt64(i))
            let result = scoreProblem(p, config: config, parameters: parameters.baseAddress, tokenizer: tokenizer,
                                      samples: e.samples, settings: settings, rule: e.answerRule, stop: stop)
            pass1.append(Double(result.correct) / Double(e.samples))
        }
        let (mean, stderr) = meanAndStandardError(pass1)
        say(String(format: "eval after %@: pass@1 %.3f ± %.3f over %d problems × %d samples", stage, mean, stderr, problems.count, e.samples))
        let line: [String: Any] = ["stage": stage, "eval/pass@1": mean, "eval/pass@1_stderr": stderr, "eval/problems": problems.count]
        metricsFile?.write(try JSONSerialization.data(withJSONObject: line, options: [.sortedKeys, .withoutEscapingSlashes]) + Data("\n".utf8))
        return mean
    }

    func printTable(_ rows: [StageSummary]) {
        func f(_ x: Double?) -> String { x.map { String(format: "%.3f", $0) } ?? "-" }
        var text = "\nstage        steps  pass@1   logps/chosen  logps/rejected\n"
        for r in rows {
            text += r.stage.padding(toLength: 12, withPad: " ", startingAt: 0) + " " + String(r.steps).leftPad(5) + "  " + f(r.passAt1).leftPad(6)
                + "   " + f(r.logpsChosen).leftPad(12) + "  " + f(r.logpsRejected).leftPad(14) + "\n"
        }
        print(text)
    }
}

extension String {
    func leftPad(_ n: Int) -> String { count >= n ? self : String(repeating: " ", count: n - count) + self }
}
