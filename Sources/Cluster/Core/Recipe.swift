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
import Yams

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
            public var answerRule = AnswerRule.marker
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
        /// `data_plane: plain`: pushes and pulls unencrypted (workers still authenticate); `curve` (default) encrypts them.
        public var plainDataPlane = false
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

    public var runID: String
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
        guard text.utf8.count <= 1 << 20 else { throw RecipeError("\(path): a recipe is at most 1 MiB") }
        // The YAML reader recurses per nesting level: refuse what no recipe needs before it runs.
        var depth = 0, deepest = 0
        for byte in text.utf8 {
            if byte == UInt8(ascii: "[") || byte == UInt8(ascii: "{") { depth += 1; deepest = max(deepest, depth) }
            if byte == UInt8(ascii: "]") || byte == UInt8(ascii: "}") { depth = max(0, depth - 1) }
        }
        guard deepest <= 64 else { throw RecipeError("\(path): brackets nested \(deepest) deep; a recipe needs a few levels") }
        // Block nesting: by indentation, and by sequences opened on one line ("- - - x").
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let indent = line.prefix(while: { $0 == " " }).count
            var rest = line.dropFirst(indent), dashes = 0
            while rest.hasPrefix("- ") || rest == "-" { dashes += 1; rest = rest.dropFirst(2).drop(while: { $0 == " " }) }
            guard indent <= 256, dashes <= 32 else {
                throw RecipeError("\(path):\(number + 1): nested \(indent) spaces and \(dashes) sequences deep; a recipe needs a few levels")
            }
        }
        let node: Any?
        var budget = 100_000
        do { node = try Yams.compose(yaml: text).map { try plain($0, depth: 0, budget: &budget) } } catch let e as RecipeError {
            throw RecipeError("\(path): \(e.description)")
        } catch { throw RecipeError("\(path): not valid YAML (\(error))") }
        guard let root = node as? [String: Any] else { throw RecipeError("\(path): the recipe must be a mapping") }
        do { return try Recipe(root, base: base) } catch let e as RecipeError { throw RecipeError("\(path): \(e.description)") }
    }

    /// A YAML node as plain values (String, Int, Double, Bool, arrays, string-keyed
    /// dictionaries). Our own conversion rather than Yams' constructor, which traps on
    /// mapping keys that are not scalars; `budget` bounds the nodes made, so aliases that
    /// multiply (a "billion laughs" file) are an error, not a hang.
    static func plain(_ node: Node, depth: Int, budget: inout Int) throws -> Any {
        guard depth <= 64 else { throw RecipeError("YAML nested more than 64 levels") }
        budget -= 1
        guard budget >= 0 else { throw RecipeError("the YAML expands to more than 100000 values (aliases?)") }
        switch node {
        case let .scalar(scalar):
            // The type the YAML resolver gave the scalar (quoted text is always a string).
            switch node.tag.description {
            case Tag.Name.int.rawValue: if let i = node.int { return i }
            case Tag.Name.float.rawValue: if let d = node.float { return d }
            case Tag.Name.bool.rawValue: if let b = node.bool { return b }
            case Tag.Name.null.rawValue: return NSNull()
            default: break
            }
            return scalar.string
        case let .sequence(sequence):
            return try sequence.map { try plain($0, depth: depth + 1, budget: &budget) }
        case let .mapping(mapping):
            var out: [String: Any] = [:]
            for (key, value) in mapping {
                guard case let .scalar(k) = key else { throw RecipeError("mapping keys must be plain text") }
                guard out[k.string] == nil else { throw RecipeError("key \(k.string) appears twice") }
                out[k.string] = try plain(value, depth: depth + 1, budget: &budget)
            }
            return out
        }
    }

    init(_ root: [String: Any], base: URL) throws {
        var r = Reader(root, at: "")
        func resolve(_ p: String) -> String { p.hasPrefix("/") ? p : base.appendingPathComponent(p).standardized.path }
        runID = try r.string("run_id", default: "redi")
        output = resolve(try r.string("output", default: "runs/\(runID)"))
        seed = UInt64(try r.int("seed", default: 0, min: 0))
        let dtype = try r.string("save_dtype", default: "fp32")
        guard let stored = ["fp32": StoredDType.f32, "bf16": .bf16][dtype] else {
            throw RecipeError("save_dtype: \"\(dtype)\" is not fp32 or bf16")
        }
        saveDType = stored
        saveTotalLimit = try r.optionalInt("save_total_limit", max: 1 << 20)
        // A plain number of bytes, or text with a unit ("500MB").
        let shardSize = r.has("max_shard_size") && r.dict["max_shard_size"] is Int ? String(try r.int("max_shard_size", default: 0, min: 1))
            : try r.string("max_shard_size", default: "5GB")
        guard let shardBytes = parseByteSize(shardSize) else { throw RecipeError("max_shard_size: \"\(shardSize)\" is not a size (e.g. 5GB, 500MB, 100000)") }
        maxShardBytes = shardBytes
        var m = try r.section("model")
        let modelPath = try m.optionalString("path").map(resolve)
        let initialize = try m.optionalString("init").map { LlamaConfig.presetNames.contains($0) ? $0 : resolve($0) }
        let tokenizer = try m.optionalString("tokenizer").map(resolve)
        var overrides: [String: Double] = [:]
        if m.has("overrides") {
            var o = try m.section("overrides")
            for key in o.dict.keys.sorted() {
                guard Recipe.overridableConfigKeys.contains(key) else {
                    throw RecipeError("model.overrides.\(key): not one of \(Recipe.overridableConfigKeys.sorted().joined(separator: ", "))")
                }
                overrides[key] = try o.double(key, min: 1e-12, max: 1e12)
                if key == "max_position_embeddings", let v = overrides[key], v != v.rounded() || v < 1 || v > Double(1 << 30) {
                    throw RecipeError("model.overrides.max_position_embeddings: \(v) is not a whole number of positions")
                }
            }
            try o.finish()
        }
        try m.finish()
        guard (modelPath == nil) != (initialize == nil) else { throw RecipeError("model: give exactly one of path or init") }
        model = ModelSpec(path: modelPath, initialize: initialize, tokenizer: tokenizer, overrides: overrides)
        if r.has("synth") {
            var s = try r.section("synth")
            var spec = SynthSpec()
            spec.problems = try s.int("problems", default: spec.problems, min: 1, max: 10_000_000)
            spec.tracesPerProblem = try s.int("traces_per_problem", default: spec.tracesPerProblem, min: 2, max: 1000)
            spec.testProblems = try s.int("test_problems", default: spec.testProblems, min: 0, max: 10_000_000)
            spec.digits = try s.int("digits", default: spec.digits, min: 1, max: 15)
            spec.steps = try s.int("steps", default: spec.steps, min: 1, max: 1000)
            spec.errorRate = try s.double("error_rate", default: spec.errorRate, min: 0, max: 1)
            try s.finish()
            synth = spec
        }
        // Data paths inside a synth run are relative to the output directory.
        let dataBase = synth != nil ? URL(fileURLWithPath: output) : base
        func resolveData(_ p: String) -> String { p.hasPrefix("/") ? p : dataBase.appendingPathComponent(p).standardized.path }
        guard let list = root["stages"] as? [Any], !list.isEmpty else { throw RecipeError("stages: give at least one stage") }
        r.consumed.insert("stages")
        stages = try list.enumerated().map { i, item in
            guard let dict = item as? [String: Any] else { throw RecipeError("stages[\(i)]: must be a mapping") }
            var s = Reader(dict, at: "stages[\(i)].")
            let objectiveName = try s.string("objective")
            let objective: Objective
            do {
                objective = try Objective.named(objectiveName, chosenWeight: try s.optionalDouble("chosen_weight"), alpha: try s.optionalDouble("alpha"),
                                                beta: try s.optionalDouble("beta"), gamma: try s.optionalDouble("gamma"),
                                                weightGradient: try s.bool("negative_weight_gradient", default: false),
                                                lossType: try s.optionalString("loss_type"))
            } catch let e as ObjectiveError {
                throw RecipeError("stages[\(i)].objective: \(e.description)")
            }
            var stage = Stage(name: try s.string("name", default: objectiveName), objective: objective, data: resolveData(try s.string("data")),
                              learningRate: try s.double("learning_rate", min: 0, max: 10))
            stage.epochs = try s.double("epochs", default: 1, min: 1e-9, max: 10_000)
            stage.batchSize = try s.int("batch_size", default: 32, min: 1, max: 1 << 20)
            stage.microBatchTokens = try s.int("micro_batch_tokens", default: 4096, min: 1, max: 1 << 24)
            stage.warmupRatio = try s.double("warmup_ratio", default: 0.1, min: 0, max: 1)
            stage.weightDecay = try s.double("weight_decay", default: 1e-4, min: 0, max: 10)
            stage.adamBeta1 = try s.double("adam_beta1", default: 0.9, min: 0, max: 0.999999)
            stage.adamBeta2 = try s.double("adam_beta2", default: 0.999, min: 0, max: 0.99999999)
            stage.adamEpsilon = try s.double("adam_epsilon", default: 1e-8, min: 1e-30, max: 1)
            let scheduler = try s.string("lr_scheduler_type", default: "linear")
            guard let kind = LearningRateSchedule.Kind(rawValue: scheduler) else {
                throw RecipeError("stages[\(i)].lr_scheduler_type: \"\(scheduler)\" is not one of \(LearningRateSchedule.Kind.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            stage.scheduler = kind
            stage.maxSteps = try s.optionalInt("max_steps", max: 1 << 30)
            stage.dropLongerThan = try s.optionalInt("drop_longer_than", max: 1 << 24)
            // 0 turns clipping off; a negative or non-finite bound would flip or zero the update.
            let clip = try s.double("max_grad_norm", default: 1.0, min: 0)
            stage.maxGradNorm = clip > 0 ? clip : nil
            stage.maxPromptLength = try s.optionalInt("max_prompt_length", max: 1 << 24)
            stage.maxLength = try s.optionalInt("max_length", max: 1 << 24)
            let mode = try s.string("truncation_mode", default: PromptTruncation.keepEnd.rawValue)
            guard let truncation = PromptTruncation(rawValue: mode) else {
                throw RecipeError("stages[\(i)].truncation_mode: \(mode) is not one of \(PromptTruncation.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            stage.truncationMode = truncation
            stage.checkpointEvery = try s.optionalInt("checkpoint_every", max: 1 << 30)
            stage.evalEvery = try s.optionalInt("eval_every", max: 1 << 30)
            guard stage.warmupRatio <= 1 else { throw RecipeError("stages[\(i)].warmup_ratio: must be in [0, 1]") }
            try s.finish()
            return stage
        }
        if r.has("eval") {
            var e = try r.section("eval")
            func rule(_ reader: inout Reader, default d: AnswerRule) throws -> AnswerRule {
                let name = try reader.string("answer_rule", default: d.rawValue)
                guard let parsed = AnswerRule(rawValue: name) else {
                    throw RecipeError("\(reader.prefix)answer_rule: \"\(name)\" is not one of \(AnswerRule.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                return parsed
            }
            var spec = EvalSpec(benchmarks: [])
            spec.samples = try e.int("samples", default: 4, min: 1, max: 1 << 16)
            spec.maxNewTokens = try e.int("max_new_tokens", default: 128, min: 1, max: 1 << 20)
            spec.batch = try e.int("batch", default: 32, min: 1, max: 4096)
            spec.temperature = try e.double("temperature", default: 0.6, min: 0, max: 100)
            spec.topP = try e.double("top_p", default: 0.95, min: 1e-9, max: 1)
            spec.responsePrefix = try e.string("response_prefix", default: "")
            let cache = try e.string("kv_cache", default: "fp32")
            guard let precision = CachePrecision(rawValue: cache) else { throw RecipeError("eval.kv_cache: \"\(cache)\" is not fp32 or bf16") }
            spec.cache = precision
            let limit = try e.optionalInt("limit", max: 1 << 30)
            let defaultRule = try rule(&e, default: .marker)
            switch (e.has("data"), e.has("sets")) {
            case (true, false):
                spec.benchmarks = [.init(name: EvalSpec.unnamed, data: resolveData(try e.string("data")), answerRule: defaultRule,
                                         samples: spec.samples, limit: limit, maxNewTokens: spec.maxNewTokens)]
            case (false, true):
                guard let list = e.value("sets") as? [Any], !list.isEmpty else { throw RecipeError("eval.sets: give a list of benchmarks") }
                spec.benchmarks = try list.enumerated().map { i, item in
                    guard let dict = item as? [String: Any] else { throw RecipeError("eval.sets[\(i)]: must be a mapping") }
                    var b = Reader(dict, at: "eval.sets[\(i)].")
                    let name = try b.string("name")
                    guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }), name.count <= 64 else {
                        throw RecipeError("eval.sets[\(i)].name: \"\(name)\" must be 1-64 letters, digits, '-', '_' or '.' (it names files and metrics)")
                    }
                    let benchmark = EvalSpec.Benchmark(name: name, data: resolveData(try b.string("data")), answerRule: try rule(&b, default: defaultRule),
                                                       samples: try b.int("samples", default: spec.samples, min: 1, max: 1 << 16),
                                                       limit: try b.optionalInt("limit", max: 1 << 30) ?? limit,
                                                       maxNewTokens: try b.int("max_new_tokens", default: spec.maxNewTokens, min: 1, max: 1 << 20))
                    try b.finish()
                    return benchmark
                }
                let names = spec.benchmarks.map(\.name)
                guard Set(names).count == names.count else { throw RecipeError("eval.sets: two benchmarks share a name (\(names.joined(separator: ", ")))") }
            default:
                throw RecipeError("eval: give data (one test file) or sets (named benchmarks), not both or neither")
            }
            try e.finish()
            eval = spec
        }
        if eval == nil, let stage = stages.first(where: { $0.evalEvery != nil }) {
            throw RecipeError("stages: \(stage.name) sets eval_every but the recipe has no eval section")
        }
        if r.has("cluster") {
            var c = try r.section("cluster")
            cluster.servers = try c.int("servers", default: 1, min: 1, max: 1024)
            cluster.workers = try c.int("workers", default: 1, min: 1, max: 4096)
            cluster.bind = try c.string("bind", default: cluster.bind)
            cluster.heartbeatSeconds = try c.double("heartbeat_seconds", default: 2, min: 0.01, max: 3600)
            cluster.timeoutSeconds = try c.double("timeout_seconds", default: 120, min: 0.1, max: 86_400)
            guard cluster.heartbeatSeconds * 2 <= cluster.timeoutSeconds else {
                throw RecipeError("cluster.heartbeat_seconds must be at most half of timeout_seconds (a peer misses a few heartbeats before it counts as gone)")
            }
            cluster.chunkMiB = try c.double("chunk_mib", default: 4, min: 0.0001)
            cluster.snapshotEvery = try c.int("snapshot_every", default: 10, min: 0, max: 1 << 30)
            cluster.maxShardGradNorm = try c.double("max_shard_grad_norm", default: 1e6, min: 1e-30)
            cluster.stepTimeoutSeconds = try c.double("step_timeout_seconds", default: 1800, min: 0.1, max: 1e7)
            cluster.verifyEvery = try c.int("verify_every", default: 0, min: 0, max: 1 << 30)
            cluster.verifyShards = try c.int("verify_shards", default: 1, min: 1, max: 4096)
            cluster.activationKeepMiB = try c.int("activation_keep_mib", default: 4096, min: 0, max: 1 << 30)
            if let dir = try c.optionalString("snapshot_dir") {
                guard dir.hasPrefix("/"), !dir.contains("\0") else { throw RecipeError("cluster.snapshot_dir: \"\(dir)\" must be an absolute path (each server reads it on its own machine)") }
                cluster.snapshotDirectory = dir
            }
            let wire = try c.string("wire", default: "fp32")
            guard ["fp32", "bf16-gradients", "bf16"].contains(wire) else {
                throw RecipeError("cluster.wire: \"\(wire)\" is not fp32, bf16-gradients or bf16")
            }
            cluster.bf16Gradients = wire != "fp32"
            cluster.bf16Weights = wire == "bf16"
            let plane = try c.string("data_plane", default: "curve")
            guard ["curve", "plain"].contains(plane) else {
                throw RecipeError("cluster.data_plane: \"\(plane)\" is not curve (encrypted, the default) or plain (unencrypted, for a private network)")
            }
            cluster.plainDataPlane = plane == "plain"
            guard cluster.chunkMiB <= 1024 else { throw RecipeError("cluster.chunk_mib: at most 1024 (frames larger than 1 GiB are refused)") }
            try c.finish()
        }
        try r.finish()
    }
}

extension Recipe {
    /// config.json keys a recipe may set over the model's (those that change no tensor's shape).
    public static let overridableConfigKeys: Set<String> = ["max_position_embeddings", "rope_theta", "rms_norm_eps"]
}

/// Reads typed values from a YAML mapping, remembering which keys were used so leftovers are errors.
struct Reader {
    let dict: [String: Any]
    let prefix: String
    var consumed: Set<String> = []
    init(_ dict: [String: Any], at prefix: String) { self.dict = dict; self.prefix = prefix }

    func has(_ key: String) -> Bool { dict[key] != nil }

    mutating func value(_ key: String) -> Any? { consumed.insert(key); return dict[key] }

    mutating func section(_ key: String) throws -> Reader {
        guard let d = value(key) as? [String: Any] else { throw RecipeError("\(prefix)\(key): must be a mapping") }
        return Reader(d, at: "\(prefix)\(key).")
    }

    mutating func optionalString(_ key: String) throws -> String? {
        guard let v = value(key) else { return nil }
        guard let s = v as? String else { throw RecipeError("\(prefix)\(key): must be text") }
        return s
    }

    mutating func string(_ key: String, default d: String? = nil) throws -> String {
        if let s = try optionalString(key) { return s }
        guard let d else { throw RecipeError("\(prefix)\(key): missing") }
        return d
    }

    mutating func optionalDouble(_ key: String) throws -> Double? {
        guard let v = value(key) else { return nil }
        if let d = v as? Double { return d }
        if let i = v as? Int { return Double(i) }
        if let s = v as? String, let d = Double(s) { return d }
        throw RecipeError("\(prefix)\(key): must be a number")
    }

    mutating func double(_ key: String, default d: Double? = nil, min: Double, max: Double = 1e15) throws -> Double {
        guard let v = try optionalDouble(key) ?? d else { throw RecipeError("\(prefix)\(key): missing") }
        guard v >= min, v <= max, v.isFinite else { throw RecipeError("\(prefix)\(key): \(v) must be in \(min)...\(max)") }
        return v
    }

    mutating func optionalInt(_ key: String, max: Int = 1 << 40) throws -> Int? {
        guard let v = value(key) else { return nil }
        guard let i = v as? Int, i > 0, i <= max else { throw RecipeError("\(prefix)\(key): must be a whole number in 1...\(max)") }
        return i
    }

    mutating func bool(_ key: String, default d: Bool) throws -> Bool {
        guard let v = value(key) else { return d }
        guard let b = v as? Bool else { throw RecipeError("\(prefix)\(key): must be true or false") }
        return b
    }

    mutating func int(_ key: String, default d: Int, min: Int, max: Int = 1 << 40) throws -> Int {
        guard let v = value(key) else { return d }
        guard let i = v as? Int else { throw RecipeError("\(prefix)\(key): must be a whole number") }
        guard i >= min, i <= max else { throw RecipeError("\(prefix)\(key): \(i) must be in \(min)...\(max)") }
        return i
    }

    func finish() throws {
        let unknown = Set(dict.keys).subtracting(consumed).sorted()
        if let first = unknown.first { throw RecipeError("unknown key \(prefix)\(first)\(unknown.count > 1 ? " (and \(unknown.dropFirst().map { prefix + $0 }.joined(separator: ", ")))" : "")") }
    }
}
