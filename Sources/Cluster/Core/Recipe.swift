// A run recipe (YAML), in the spirit of the REDI paper's recipes: model, data, the two
// stages, evaluation and the cluster. Unknown keys and bad values are errors naming the key.
import Data
import Formats
import Foundation
import Grading
import Model
import Objectives
import Optimizer
import ReasoningTask
import Training

public struct RecipeError: Error, CustomStringConvertible {
    public let description: String
    init(_ d: String) { description = d }
}

public struct Recipe: Sendable {
    public struct ModelSpec: Sendable {
        /// A checkpoint directory or .gguf file, or nil to initialise from `initialize`.
        public var path: String?
        /// A preset name or config.json path for a model trained from scratch.
        public var initialize: String?
        /// A checkpoint directory or .gguf file whose tokenizer to use instead of the model's
        /// own (or, for `init`, instead of the byte tokenizer).
        public var tokenizer: String?
        /// `train_tokenizer`: with `init`, a byte-level BPE tokenizer of this many ids trained
        /// on the first stage's records instead of the byte tokenizer (a task's text in a
        /// fraction of the positions).
        public var trainTokenizer: Int?
        /// config.json values set over the model's own (`model.overrides`), e.g. the paper's
        /// max_position_embeddings 32768 and rope_theta 300000 for Qwen2.5-Math; written into checkpoints.
        public var overrides: [String: Double] = [:]

        /// `config` with the overrides set (validated when the recipe was read).
        public func applyingOverrides(to config: LlamaConfig) -> LlamaConfig {
            var c = config
            if let v = overrides["max_position_embeddings"] { c.maxPositionEmbeddings = Int(v) }
            if let v = overrides["rope_theta"] { c.ropeTheta = v }
            if let v = overrides["rms_norm_eps"] { c.rmsNormEps = v }
            return c
        }
    }

    public struct SynthSpec: Sendable {
        public var problems = 400, tracesPerProblem = 4, testProblems = 50, digits = 2, steps = 2
        public var errorRate = 0.15
    }

    public struct Stage: Sendable {
        public var name: String
        public var objective: Objective
        public var data: String
        public var epochs: Double = 1
        public var batchSize = 32
        public var microBatchTokens = 4096
        public var learningRate: Double
        public var warmupRatio = 0.1
        /// `lr_scheduler_type`, as the HF Trainer: linear (the paper's), cosine, constant_with_warmup.
        public var scheduler = LearningRateSchedule.Kind.linear
        /// AdamW's betas and epsilon (`adam_beta1`, `adam_beta2`, `adam_epsilon`) and weight decay.
        public var adamBeta1 = 0.9, adamBeta2 = 0.999, adamEpsilon = 1e-8
        /// `max_steps`: the stage's optimizer steps, overriding `epochs` (the data order runs on across epochs).
        public var maxSteps: Int?
        /// `drop_longer_than`: records with a sequence over this many tokens are dropped, not truncated.
        public var dropLongerThan: Int?
        public var weightDecay = 1e-4
        public var maxGradNorm: Double? = 1.0
        public var maxPromptLength: Int?
        public var maxLength: Int?
        public var truncationMode = PromptTruncation.keepEnd
        public var checkpointEvery: Int?
        /// Steps between evaluations during the stage (HF's `eval_steps`); the stage's end is always evaluated.
        public var evalEvery: Int?

        /// The stage's length limits for loading its data.
        public var limits: LengthLimits {
            LengthLimits(maxPromptLength: maxPromptLength, maxLength: maxLength, promptTruncation: truncationMode, dropLongerThan: dropLongerThan)
        }

        public var adamW: AdamWConfig { AdamWConfig(beta1: adamBeta1, beta2: adamBeta2, eps: adamEpsilon, weightDecay: weightDecay) }

        /// The optimizer step's settings, as the single-process trainer takes them (`StepRule`).
        public var settings: StageSettings {
            StageSettings(
                objective: objective, learningRate: learningRate, warmupRatio: warmupRatio, maxGradNorm: maxGradNorm, adamW: adamW, scheduler: scheduler)
        }

        /// Optimizer steps over `examples` records: `max_steps`, or whole batches per epoch
        /// (an epoch's last batch may be short, as the HF Trainer's) times `epochs`.
        public func totalSteps(examples: Int) -> Int {
            if let maxSteps { return maxSteps }
            let perEpoch = (examples + batchSize - 1) / batchSize
            return max(1, Int((Double(perEpoch) * epochs).rounded(.up)))
        }
    }

    /// Evaluation: pass@1 with sampling on one or more named benchmarks, after every stage
    /// (and every `eval_every` steps of a stage that sets it).
    public struct EvalSpec: Sendable {
        /// One benchmark: a test file with its own grading rule (and, optionally, its own k and limit).
        public struct Benchmark: Sendable {
            public var name: String
            public var data: String
            public var answerRule = defaultRule
            static let defaultRule = AnswerRule.marker
            public var samples: Int
            public var limit: Int?
            public var maxNewTokens: Int
        }
        public var benchmarks: [Benchmark]
        public var samples = 4, maxNewTokens = 128
        /// Sequences decoded together (continuous batching).
        public var batch = 32
        public var temperature = 0.6, topP = 0.95
        /// Text every answer starts with (appended to each prompt), e.g. the paper's "<think>\n".
        public var responsePrefix = ""
        /// `kv_cache: fp32|bf16`: how sampling caches keys and values (bf16 halves the memory of long answers).
        public var cache = CachePrecision.fp32
        /// The one benchmark of a recipe written with `eval.data` keeps the metric names
        /// `eval/pass@1`…; with `eval.sets` each is `eval/NAME/pass@1`.
        public var named: Bool { benchmarks.count > 1 || benchmarks.first?.name != EvalSpec.unnamed }
        static let unnamed = "test"
    }

    public struct ClusterSpec: Sendable {
        public var servers = 1, workers = 1
        public var bind = "tcp://127.0.0.1:5570"
        public var heartbeatSeconds = 2.0
        public var timeoutSeconds = 120.0
        public var chunkMiB = 4.0
        /// Steps between the coordinator's snapshots (weights + AdamW state) that a lost server is recovered from; 0: none.
        public var snapshotEvery = 10
        /// Worker pushes (bf16-gradients), or pushes and pulls (bf16), as bfloat16; servers stay fp32.
        public var bf16Gradients = false, bf16Weights = false
        /// How pushes and pulls travel (`data_plane`).
        public var dataPlane = DataPlane.curve
        /// The largest gradient norm one worker's shard may contribute to a step; a larger
        /// (finite) push ends the run naming the worker: a broken or hostile peer, not training.
        public var maxShardGradNorm = 1e6
        /// How long a step (or a server's load/update) may take before the coordinator acts on
        /// who has not finished: heartbeats say a peer lives, this says it makes progress.
        public var stepTimeoutSeconds = 1800.0
        /// Verification by recomputation: every `verifyEvery` steps (0: never), `verifyShards`
        /// random shards are recomputed by another worker and compared with what was pushed.
        public var verifyEvery = 0, verifyShards = 1
        /// `activation_keep_mib`: a worker keeps every layer's activations for backward while they
        /// fit in this many MiB, and recomputes each layer from its input past it (same bits, less
        /// memory, about a third more compute): lower it to fit a large model on a worker's machine.
        public var activationKeepMiB = 4096
        /// `snapshot_dir`: servers keep snapshots and replicas as files in this directory of their
        /// own machine's disk (created if missing; not a tmpfs) instead of memory. Nil: in memory.
        public var snapshotDirectory: String?
    }

    public var runID = Recipe.defaultRunID
    static let defaultRunID = "redi"
    /// Where the run writes (`output`; default runs/RUN_ID).
    public var output: String
    public var seed: UInt64 = 0
    /// How checkpoints store the model's weights (`save_dtype`); AdamW state, and with bf16 the
    /// fp32 master weights resuming needs, stay fp32 in optimizer.safetensors.
    public var saveDType = StoredDType.f32
    /// Step checkpoints kept (`save_total_limit`, as the HF Trainer): older ones are removed
    /// once a newer one is written; nil keeps all. Stage checkpoints are always kept.
    public var saveTotalLimit: Int?
    /// The largest weights file of a checkpoint (`max_shard_size`, HF's "5GB" by default):
    /// larger models are written as `model-0000k-of-0000n.safetensors` + index.
    public var maxShardBytes = Checkpoint.defaultMaxShardBytes
    public var model: ModelSpec
    public var synth: SynthSpec?
    public var stages: [Stage]
    public var eval: EvalSpec?
    public var cluster = ClusterSpec()

    /// Reads and validates a recipe; relative paths are resolved against the recipe's directory.
    public static func load(_ path: String) throws -> Recipe {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw RecipeError("cannot read recipe \(path)") }
        // Resolve against an absolute directory: a relative base would lose its prefix when standardised.
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        return try parse(text, base: URL(fileURLWithPath: absolute).deletingLastPathComponent(), path: path)
    }

    /// Parses and validates recipe `text` (from `path`, which names it in errors); relative
    /// paths in it are resolved against `base`.
    public static func parse(_ text: String, base: URL, path: String) throws -> Recipe {
        do {
            guard let root = try RecipeTree.parse(text), root is [String: Any] else { throw RecipeError("the recipe must be a mapping") }
            var recipe = try Recipe(from: RecipeTreeDecoder(root))
            recipe.resolvePaths(against: base)
            return recipe
        } catch let e as RecipeError {
            throw RecipeError("\(path): \(e.description)")
        }
    }

    /// Relative paths against the recipe's directory; a synth run's data paths against its output.
    mutating func resolvePaths(against base: URL) {
        func resolve(_ p: String, _ base: URL) -> String { p.hasPrefix("/") ? p : base.appendingPathComponent(p).standardized.path }
        output = resolve(output, base)
        let dataBase = synth != nil ? URL(fileURLWithPath: output) : base
        model.path = model.path.map { resolve($0, base) }
        model.initialize = model.initialize.map { LlamaConfig.presetNames.contains($0) ? $0 : resolve($0, base) }
        model.tokenizer = model.tokenizer.map { resolve($0, base) }
        for i in stages.indices { stages[i].data = resolve(stages[i].data, dataBase) }
        for i in eval?.benchmarks.indices ?? 0..<0 { eval!.benchmarks[i].data = resolve(eval!.benchmarks[i].data, dataBase) }
    }
}

// MARK: - Decoding (keys as the recipe writes them; limits and cross-checks beside each)

extension Recipe: Decodable {
    enum Keys: String, CodingKey, CaseIterable {
        case runID = "run_id", output, seed, saveDType = "save_dtype", saveTotalLimit = "save_total_limit"
        case maxShardSize = "max_shard_size", model, synth, stages, eval, cluster
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.strictContainer(Keys.self)
        let runID = try c.decodeIfPresent(String.self, forKey: .runID) ?? Recipe.defaultRunID
        self.init(
            runID: runID, output: try c.decodeIfPresent(String.self, forKey: .output) ?? "runs/\(runID)",
            model: try c.decode(ModelSpec.self, forKey: .model), stages: [])
        seed = UInt64(try c.whole(.seed, or: Int(seed), in: 0...Int.max))
        saveDType = try c.choice(.saveDType, or: SaveDType(saveDType), among: "fp32 or bf16").stored
        saveTotalLimit = try c.count(.saveTotalLimit, max: 1 << 20)
        // A plain number of bytes, or text with a unit ("500MB").
        if c.contains(.maxShardSize) {
            let size: String
            if let bytes = try? c.decode(Int.self, forKey: .maxShardSize) { size = String(bytes) } else { size = try c.decode(String.self, forKey: .maxShardSize) }
            guard let bytes = parseByteSize(size), bytes > 0 else { throw RecipeError("max_shard_size: \"\(size)\" is not a size (e.g. 5GB, 500MB, 100000)") }
            maxShardBytes = bytes
        }
        synth = try c.decodeIfPresent(SynthSpec.self, forKey: .synth)
        guard c.contains(.stages) else { throw RecipeError("stages: give at least one stage") }
        var list = try c.nestedUnkeyedContainer(forKey: .stages)
        while !list.isAtEnd { stages.append(try list.decode(Stage.self)) }
        guard !stages.isEmpty else { throw RecipeError("stages: give at least one stage") }
        eval = try c.decodeIfPresent(EvalSpec.self, forKey: .eval)
        if eval == nil, let stage = stages.first(where: { $0.evalEvery != nil }) {
            throw RecipeError("stages: \(stage.name) sets eval_every but the recipe has no eval section")
        }
        cluster = try c.decodeIfPresent(ClusterSpec.self, forKey: .cluster) ?? cluster
    }

    /// `save_dtype`'s names.
    private enum SaveDType: String, CaseIterable {
        case fp32, bf16
        init(_ stored: StoredDType) { self = stored == .bf16 ? .bf16 : .fp32 }
        var stored: StoredDType { self == .bf16 ? .bf16 : .f32 }
    }
}

extension Recipe.ModelSpec: Decodable {
    enum Keys: String, CodingKey, CaseIterable { case path, initialize = "init", tokenizer, trainTokenizer = "train_tokenizer", overrides }

    public init(from decoder: Decoder) throws {
        let c = try decoder.strictContainer(Keys.self)
        self.init(
            path: try c.decodeIfPresent(String.self, forKey: .path), initialize: try c.decodeIfPresent(String.self, forKey: .initialize),
            tokenizer: try c.decodeIfPresent(String.self, forKey: .tokenizer))
        if c.contains(.overrides) {
            let o = try c.nestedContainer(keyedBy: OverrideKey.self, forKey: .overrides)
            for key in o.allKeys.sorted(by: { $0.stringValue < $1.stringValue }) {
                guard Recipe.overridableConfigKeys.contains(key.stringValue) else {
                    throw RecipeError("\(o.path(key)): not one of \(Recipe.overridableConfigKeys.sorted().joined(separator: ", "))")
                }
                let v = try o.number(key, in: 1e-12...1e12)
                if key.stringValue == "max_position_embeddings", v != v.rounded() || v < 1 || v > Double(1 << 30) {
                    throw RecipeError("\(o.path(key)): \(v) is not a whole number of positions")
                }
                overrides[key.stringValue] = v
            }
        }
        guard (path == nil) != (initialize == nil) else { throw RecipeError("model: give exactly one of path or init") }
        if c.contains(.trainTokenizer) {
            guard initialize != nil && tokenizer == nil else {
                throw RecipeError("\(c.path(.trainTokenizer)): only for a model trained from scratch (init) without model.tokenizer")
            }
            trainTokenizer = try c.whole(.trainTokenizer, or: 0, in: 259...65536)
        }
    }

    /// Any key of `overrides` (checked against `overridableConfigKeys` with its own message).
    struct OverrideKey: CodingKey {
        let stringValue: String
        var intValue: Int? { nil }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
}

extension Recipe.SynthSpec: Decodable {
    enum Keys: String, CodingKey, CaseIterable {
        case problems, tracesPerProblem = "traces_per_problem", testProblems = "test_problems", digits, steps, errorRate = "error_rate"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.strictContainer(Keys.self)
        self.init()
        problems = try c.whole(.problems, or: problems, in: 1...10_000_000)
        tracesPerProblem = try c.whole(.tracesPerProblem, or: tracesPerProblem, in: 2...1000)
        testProblems = try c.whole(.testProblems, or: testProblems, in: 0...10_000_000)
        digits = try c.whole(.digits, or: digits, in: 1...15)
        steps = try c.whole(.steps, or: steps, in: 1...1000)
        errorRate = try c.number(.errorRate, or: errorRate, in: 0...1)
    }
}

extension Recipe.Stage: Decodable {
    enum Keys: String, CodingKey, CaseIterable {
        case name, objective, data, learningRate = "learning_rate", epochs, batchSize = "batch_size", microBatchTokens = "micro_batch_tokens"
        case warmupRatio = "warmup_ratio", weightDecay = "weight_decay", adamBeta1 = "adam_beta1", adamBeta2 = "adam_beta2"
        case adamEpsilon = "adam_epsilon", scheduler = "lr_scheduler_type", maxSteps = "max_steps", dropLongerThan = "drop_longer_than"
        case maxGradNorm = "max_grad_norm", maxPromptLength = "max_prompt_length", maxLength = "max_length"
        case truncationMode = "truncation_mode", checkpointEvery = "checkpoint_every", evalEvery = "eval_every"
        // The objective's own settings.
        case chosenWeight = "chosen_weight", alpha, beta, gamma, weightGradient = "negative_weight_gradient", lossType = "loss_type"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.strictContainer(Keys.self)
        let objectiveName = try c.decode(String.self, forKey: .objective)
        let objective: Objective
        do {
            objective = try Objective.named(
                objectiveName, chosenWeight: try c.decodeIfPresent(Double.self, forKey: .chosenWeight),
                alpha: try c.decodeIfPresent(Double.self, forKey: .alpha),
                beta: try c.decodeIfPresent(Double.self, forKey: .beta), gamma: try c.decodeIfPresent(Double.self, forKey: .gamma),
                weightGradient: try c.decodeIfPresent(Bool.self, forKey: .weightGradient) ?? false,
                lossType: try c.decodeIfPresent(String.self, forKey: .lossType))
        } catch let e as ObjectiveError {
            throw RecipeError("\(c.path(.objective)): \(e.description)")
        }
        self.init(
            name: try c.decodeIfPresent(String.self, forKey: .name) ?? objectiveName, objective: objective,
            data: try c.decode(String.self, forKey: .data), learningRate: try c.number(.learningRate, in: 0...10))
        epochs = try c.number(.epochs, or: epochs, in: 1e-9...10_000)
        batchSize = try c.whole(.batchSize, or: batchSize, in: 1...(1 << 20))
        microBatchTokens = try c.whole(.microBatchTokens, or: microBatchTokens, in: 1...(1 << 24))
        warmupRatio = try c.number(.warmupRatio, or: warmupRatio, in: 0...1)
        weightDecay = try c.number(.weightDecay, or: weightDecay, in: 0...10)
        adamBeta1 = try c.number(.adamBeta1, or: adamBeta1, in: 0...0.999999)
        adamBeta2 = try c.number(.adamBeta2, or: adamBeta2, in: 0...0.99999999)
        adamEpsilon = try c.number(.adamEpsilon, or: adamEpsilon, in: 1e-30...1)
        scheduler = try c.choice(.scheduler, or: scheduler)
        maxSteps = try c.count(.maxSteps, max: 1 << 30)
        dropLongerThan = try c.count(.dropLongerThan, max: 1 << 24)
        // 0 turns clipping off; a negative or non-finite bound would flip or zero the update.
        let clip = try c.number(.maxGradNorm, or: maxGradNorm ?? 0, in: 0...1e15)
        maxGradNorm = clip > 0 ? clip : nil
        maxPromptLength = try c.count(.maxPromptLength, max: 1 << 24)
        maxLength = try c.count(.maxLength, max: 1 << 24)
        truncationMode = try c.choice(.truncationMode, or: truncationMode)
        checkpointEvery = try c.count(.checkpointEvery, max: 1 << 30)
        evalEvery = try c.count(.evalEvery, max: 1 << 30)
    }
}

extension Recipe.EvalSpec: Decodable {
    enum Keys: String, CodingKey, CaseIterable {
        case data, sets, samples, maxNewTokens = "max_new_tokens", batch, temperature, topP = "top_p"
        case responsePrefix = "response_prefix", cache = "kv_cache", limit, answerRule = "answer_rule"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.strictContainer(Keys.self)
        self.init(benchmarks: [])
        samples = try c.whole(.samples, or: samples, in: 1...(1 << 16))
        maxNewTokens = try c.whole(.maxNewTokens, or: maxNewTokens, in: 1...(1 << 20))
        batch = try c.whole(.batch, or: batch, in: 1...4096)
        temperature = try c.number(.temperature, or: temperature, in: 0...100)
        topP = try c.number(.topP, or: topP, in: 1e-9...1)
        responsePrefix = try c.decodeIfPresent(String.self, forKey: .responsePrefix) ?? responsePrefix
        cache = try c.choice(.cache, or: cache, among: "fp32 or bf16")
        let limit = try c.count(.limit, max: 1 << 30)
        let rule = try c.choice(.answerRule, or: Benchmark.defaultRule)
        switch (c.contains(.data), c.contains(.sets)) {
        case (true, false):
            benchmarks = [
                Benchmark(
                    name: Self.unnamed, data: try c.decode(String.self, forKey: .data), answerRule: rule,
                    samples: samples, limit: limit, maxNewTokens: maxNewTokens)
            ]
        case (false, true):
            var list = try c.nestedUnkeyedContainer(forKey: .sets)
            while !list.isAtEnd {
                benchmarks.append(
                    try Benchmark(
                        from: try list.superDecoder(),
                        defaults: Benchmark(
                            name: "", data: "", answerRule: rule, samples: samples,
                            limit: limit, maxNewTokens: maxNewTokens)))
            }
            guard !benchmarks.isEmpty else { throw RecipeError("eval.sets: give a list of benchmarks") }
            let names = benchmarks.map(\.name)
            guard Set(names).count == names.count else { throw RecipeError("eval.sets: two benchmarks share a name (\(names.joined(separator: ", ")))") }
        default:
            throw RecipeError("eval: give data (one test file) or sets (named benchmarks), not both or neither")
        }
    }
}

extension Recipe.EvalSpec.Benchmark {
    enum Keys: String, CodingKey, CaseIterable { case name, data, answerRule = "answer_rule", samples, limit, maxNewTokens = "max_new_tokens" }

    /// One of `eval.sets`; what it leaves out comes from the eval section (`defaults`).
    init(from decoder: Decoder, defaults: Self) throws {
        let c = try decoder.strictContainer(Keys.self)
        self = defaults
        name = try c.decode(String.self, forKey: .name)
        guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }), name.count <= 64 else {
            throw RecipeError("\(c.path(.name)): \"\(name)\" must be 1-64 letters, digits, '-', '_' or '.' (it names files and metrics)")
        }
        data = try c.decode(String.self, forKey: .data)
        answerRule = try c.choice(.answerRule, or: answerRule)
        samples = try c.whole(.samples, or: samples, in: 1...(1 << 16))
        limit = try c.count(.limit, max: 1 << 30) ?? limit
        maxNewTokens = try c.whole(.maxNewTokens, or: maxNewTokens, in: 1...(1 << 20))
    }
}

extension Recipe.ClusterSpec: Decodable {
    enum Keys: String, CodingKey, CaseIterable {
        case servers, workers, bind, heartbeatSeconds = "heartbeat_seconds", timeoutSeconds = "timeout_seconds", chunkMiB = "chunk_mib"
        case snapshotEvery = "snapshot_every", maxShardGradNorm = "max_shard_grad_norm", stepTimeoutSeconds = "step_timeout_seconds"
        case verifyEvery = "verify_every", verifyShards = "verify_shards", activationKeepMiB = "activation_keep_mib"
        case snapshotDirectory = "snapshot_dir", wire, dataPlane = "data_plane"
    }

    /// `wire`: what travels as bfloat16 between workers and servers.
    enum Wire: String, CaseIterable { case fp32, bf16Gradients = "bf16-gradients", bf16 }

    public init(from decoder: Decoder) throws {
        let c = try decoder.strictContainer(Keys.self)
        self.init()
        servers = try c.whole(.servers, or: servers, in: 1...1024)
        workers = try c.whole(.workers, or: workers, in: 1...4096)
        bind = try c.decodeIfPresent(String.self, forKey: .bind) ?? bind
        heartbeatSeconds = try c.number(.heartbeatSeconds, or: heartbeatSeconds, in: 0.01...3600)
        timeoutSeconds = try c.number(.timeoutSeconds, or: timeoutSeconds, in: 0.1...86_400)
        guard heartbeatSeconds * 2 <= timeoutSeconds else {
            throw RecipeError("cluster.heartbeat_seconds must be at most half of timeout_seconds (a peer misses a few heartbeats before it counts as gone)")
        }
        chunkMiB = try c.number(.chunkMiB, or: chunkMiB, in: 0.0001...1e15)
        guard chunkMiB <= 1024 else { throw RecipeError("cluster.chunk_mib: at most 1024 (frames larger than 1 GiB are refused)") }
        snapshotEvery = try c.whole(.snapshotEvery, or: snapshotEvery, in: 0...(1 << 30))
        maxShardGradNorm = try c.number(.maxShardGradNorm, or: maxShardGradNorm, in: 1e-30...1e15)
        stepTimeoutSeconds = try c.number(.stepTimeoutSeconds, or: stepTimeoutSeconds, in: 0.1...1e7)
        verifyEvery = try c.whole(.verifyEvery, or: verifyEvery, in: 0...(1 << 30))
        verifyShards = try c.whole(.verifyShards, or: verifyShards, in: 1...4096)
        activationKeepMiB = try c.whole(.activationKeepMiB, or: activationKeepMiB, in: 0...(1 << 30))
        if let dir = try c.decodeIfPresent(String.self, forKey: .snapshotDirectory) {
            guard dir.hasPrefix("/"), !dir.contains("\0") else {
                throw RecipeError("cluster.snapshot_dir: \"\(dir)\" must be an absolute path (each server reads it on its own machine)")
            }
            snapshotDirectory = dir
        }
        let wire = try c.choice(.wire, or: Wire.fp32, among: "fp32, bf16-gradients or bf16")
        bf16Gradients = wire != .fp32
        bf16Weights = wire == .bf16
        dataPlane = try c.choice(
            .dataPlane, or: DataPlane.curve,
            among: "curve (encrypted by libzmq, the default), sealed (encrypted by redi-ps with AES-256-GCM, faster) or plain (unencrypted, for a private network)"
        )
    }
}

extension Recipe.ClusterSpec {
    /// `data_plane`: how pushes and pulls travel.
    public enum DataPlane: String, CaseIterable, Sendable {
        /// CURVE connections, as the control plane: libzmq encrypts every frame (XSalsa20-Poly1305).
        case curve
        /// PLAIN connections (workers authenticated), every frame sealed by redi-ps with
        /// AES-256-GCM under a key derived from the run key (`FrameSealing`).
        case sealed
        /// PLAIN connections, frames in the clear: private networks only.
        case plain
    }
}

extension Recipe {
    /// config.json keys a recipe may set over the model's (those that change no tensor's shape).
    public static let overridableConfigKeys: Set<String> = ["max_position_embeddings", "rope_theta", "rms_norm_eps"]
}
