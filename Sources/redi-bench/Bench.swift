// redi-bench: throughput against the machine's own limits measured in the same run — the
// training step against sgemm (MFU), decoding against memory bandwidth. A shared machine is
// noisy: compare the ratios, not bare times.
//
//   redi-bench step     [--config smollm2-135m] [--records 4] [--length 256] [--repeats 3]
//   redi-bench generate [--config smollm2-135m] [--tokens 128] [--batch 1]
//   redi-bench transport [--mib 4] [--messages 200]
import ArgumentParser
import BLASKernel
import Data
import Dispatch
import Evaluation
import Formats
import Model
import Numerics
import Objectives
import SeededRandom
import Training

#if canImport(Glibc)
import Glibc
#endif

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

/// A randomly initialised model of a preset shape.
struct BenchModel {
    let config: LlamaConfig
    let layout: ParameterLayout
    let parameters: FloatBuffer

    /// A checkpoint directory or `.gguf` file's model.
    init(path: String) throws {
        let loaded = try loadModel(path)
        config = loaded.config
        layout = ParameterLayout(config: config)
        parameters = loaded.parameters
    }

    /// `positions`: the longest sequence to run; the RoPE table is extended past the preset's
    /// max_position_embeddings when needed (random weights: a speed and memory measurement).
    init(preset: String, positions: Int = 0) throws {
        guard var config = try LlamaConfig.preset(preset, vocabSize: 49152, bos: 1, eos: 2, pad: 2) else {
            throw ValidationError("unknown --config \(preset); use one of \(LlamaConfig.presetNames)")
        }
        if positions > config.maxPositionEmbeddings {
            print("note: \(preset) has max_position_embeddings \(config.maxPositionEmbeddings); extended to \(positions) for this measurement")
            config.maxPositionEmbeddings = positions
        }
        self.config = config
        layout = ParameterLayout(config: config)
        parameters = FloatBuffer(count: layout.totalCount)
        initializeParameters(parameters, layout: layout, seed: 0)
    }
}

/// Best-of-5 sgemm rate in GFLOP/s at the shape (m, n, k), A and B stored as `opA`, `opB` say.
func sgemmRate(_ opA: Op, _ opB: Op, m: Int, n: Int, k: Int) -> Double {
    BLASStartup.sgemmRate(MatmulShape(m: m, n: n, k: k, transposeA: opA == .t, transposeB: opB == .t), repeats: 5)
}

@main
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "redi-bench", abstract: "redi-ps throughput benchmarks.",
        subcommands: [Step.self, Generate.self, TrainBench.self, TransportBench.self], defaultSubcommand: Step.self)

    /// The BLAS kernel is chosen and logged before anything runs (see `BLASStartup`).
    static func main() {
        BLASStartup.start(program: "redi-bench")
        main(nil)
    }
}

struct Step: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Forward+backward throughput and MFU against sgemm.")
    @Option var config = "smollm2-135m"
    @Option var records = 4
    @Option var length = 256
    @Option var repeats = 3
    @Option(help: "OpenBLAS threads (default: all cores).") var threads: Int?
    @Option(help: "Scored rows per LM-head block, forcing blocks (default: the engine's choice).") var lmHeadRows: Int?
    @Option(help: "Keep all layers' activations up to this many MiB, else recompute per layer (default: the engine's 4096).")
    var activationKeepMib: Int?

    func run() throws {
        if let threads { setMatmulThreads(threads) }
        let model = try BenchModel(preset: config, positions: length)
        let c = model.config
        var rng = SeededGenerator(seed: 42)
        // Each record scores every token but the first (BOS), so no work is skipped as "prompt".
        let examples = (0..<records).map { i in
            Example(
                sequences: [TokenSequence(tokens: (0..<length).map { _ in Int32(rng.next() % UInt64(c.vocabSize)) }, promptLength: 1)],
                line: i + 1)
        }
        let tokens = records * length
        let computer = GradientComputer(config: c, microBatchTokens: tokens)
        if let lmHeadRows { computer.engine.lmHeadWholeRows = 0; computer.engine.lmHeadBlockRows = lmHeadRows }
        if let activationKeepMib { computer.engine.activationKeepBytes = activationKeepMib << 20 }
        let grads = FloatBuffer(count: model.layout.totalCount)
        print(
            "redi-bench step: \(config), \(model.layout.totalCount) parameters, \(records) records × \(length) tokens, "
                + "\(matmulThreads) BLAS threads, \(elementwiseThreads) elementwise threads")
        let shapes: [(String, Op, Op, Int, Int, Int)] = [
            ("mlp fwd  [T,C]x[C,I]", .n, .t, tokens, c.intermediateSize, c.hiddenSize),
            ("mlp dW   [I,T]x[T,C]", .t, .n, c.intermediateSize, c.hiddenSize, tokens),
            ("head fwd [T,C]x[C,V]", .n, .t, tokens, c.vocabSize, c.hiddenSize)
        ]
        var peak = 0.0
        for (name, a, b, m, n, k) in shapes {
            let r = sgemmRate(a, b, m: m, n: n, k: k)
            peak = max(peak, r)
            print(String(format: "  sgemm %@ %6.1f GFLOP/s", name, r))
        }
        let flopsPerToken = 6 * Double(model.layout.totalCount) + 12 * Double(c.numHiddenLayers * c.numAttentionHeads * c.headDim * length)
        var times: [Double] = []
        // --repeats 0: one step, timed (for sequences so long that a warm-up step is too costly).
        for i in (repeats == 0 ? 1 : 0)...max(1, repeats) {
            grads.zero()
            let t0 = now()
            _ = try computer.accumulate(
                parameters: model.parameters, gradients: grads, examples: examples,
                objective: .sft, normalizer: Objective.sft.normalizer(for: examples))
            let dt = now() - t0
            if i > 0 { times.append(dt) }  // the first step allocates the arena
            print(String(format: "  step %d: %.3f s%@", i, dt, i == 0 ? " (warm-up, not counted)" : ""))
        }
        // Measured again after the steps, the best kept: a noisy moment while measuring must not
        // lower MFU's denominator.
        for (name, a, b, m, n, k) in shapes {
            let r = sgemmRate(a, b, m: m, n: n, k: k)
            if r > peak { print(String(format: "  sgemm %@ %6.1f GFLOP/s (after the steps)", name, r)) }
            peak = max(peak, r)
        }
        let median = times.sorted()[times.count / 2]
        let achieved = flopsPerToken * Double(tokens) / median / 1e9
        print(
            String(
                format: "forward+backward: %.1f tokens/s, %.1f GFLOP/s model FLOPs (6·N·T + attention), MFU %.1f%% of best sgemm %.1f GFLOP/s",
                Double(tokens) / median, achieved, 100 * achieved / peak, peak))
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        print(
            String(
                format: "peak RSS %.2f GB (activations %@)", Double(usage.ru_maxrss) * 1024 / 1e9,
                computer.engine.recomputesActivations(tokens: tokens) ? "recomputed per layer" : "kept"))
    }
}

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Sampling throughput with continuous batching, as MFU against sgemm and as memory bandwidth.")
    @Option var config = "smollm2-135m"
    @Option(help: "A checkpoint directory or .gguf file to run instead of a randomly initialised --config.") var model: String?
    @Option(help: "New tokens per sample.") var tokens = 128
    @Option(help: "Sequences decoded together.") var batch = 32
    @Option(help: "Distinct prompts (each with --samples samples); default: enough to fill the batch twice.") var prompts: Int?
    @Option(help: "Samples per prompt.") var samples = 4
    @Option(help: "Tokens per prompt.") var promptTokens = 64
    @Option(help: "KV cache precision: fp32 or bf16.") var kvCache = "fp32"

    func run() throws {
        guard let cache = CachePrecision(rawValue: kvCache) else { throw ValidationError("--kv-cache is fp32 or bf16") }
        let model = try self.model.map { try BenchModel(path: $0) } ?? BenchModel(preset: config)
        let c = model.config
        let bytes = model.layout.totalCount * 4
        let copy = FloatBuffer(count: model.layout.totalCount)
        let bandwidth = copyBandwidth(copy, from: model.parameters, count: model.layout.totalCount)
        // The products a decode step of `batch` rows is made of, at that row count.
        // sgemm's best rate (MFU's denominator), and its rate at this batch's row count, which
        // bounds what a decode step's products can reach (OpenBLAS packs the weights per call).
        // The best of everything measured, before and after the run, is the denominator, so a
        // slow moment on a shared machine while measuring cannot push MFU past 100% (it did once).
        func sgemmRates() -> (atBatch: Double, peak: Double) {
            let atBatch = max(sgemmRate(.n, .t, m: batch, n: 2 * c.intermediateSize, k: c.hiddenSize), sgemmRate(.n, .t, m: batch, n: c.vocabSize, k: c.hiddenSize))
            return (
                atBatch,
                max(
                    atBatch, sgemmRate(.n, .t, m: 256, n: 2 * c.intermediateSize, k: c.hiddenSize),
                    sgemmRate(.n, .t, m: 512, n: c.hiddenSize, k: c.hiddenSize), sgemmRate(.n, .t, m: 256, n: c.vocabSize, k: c.hiddenSize))
            )
        }
        let before = sgemmRates()
        var rng = SeededGenerator(seed: 3)
        let count = prompts ?? max(1, 2 * batch / samples)
        let requests = (0..<count).map { i in
            GenerationRequest(prompt: (0..<promptTokens).map { _ in Int32(rng.next() % UInt64(c.vocabSize)) }, samples: samples, seed: UInt64(i))
        }
        let settings = SamplingSettings(temperature: 0.6, topP: 0.95, maxNewTokens: tokens, cache: cache)
        _ = generate(
            config: c, parameters: model.parameters, requests: Array(requests.prefix(1)), rows: batch,
            settings: SamplingSettings(temperature: 0.6, maxNewTokens: 4), stop: [])
        var steps = 0
        let t0 = now()
        let out = generate(config: c, parameters: model.parameters, requests: requests, rows: batch, settings: settings, stop: []) { _, _, _ in steps += 1 }
        let dt = now() - t0
        let after = sgemmRates()
        let atBatch = max(before.atBatch, after.atBatch), peak = max(before.peak, after.peak)
        let produced = out.joined().reduce(0) { $0 + $1.count }
        // Model FLOPs per generated token: 2 per weight of every product (the embedding is a
        // lookup) + attention over the context (4 · layers · q width · mean context).
        let matmulWeights = Double(model.layout.totalCount - c.vocabSize * c.hiddenSize * (c.tieWordEmbeddings ? 0 : 1))
        let meanContext = Double(promptTokens) + Double(tokens) / 2
        let flopsPerToken = 2 * matmulWeights + 4 * Double(c.numHiddenLayers * c.numAttentionHeads * c.headDim) * meanContext
        // Prefill counts too: every prompt once per group of samples that start together (at most once per sample).
        let achieved = flopsPerToken * Double(produced) / dt / 1e9
        let streamed = Double(steps) * Double(bytes) / dt / 1e9
        let products = Generator.productSeconds(config: c, parameters: model.parameters, rows: batch)
        let ceiling = Double(batch) / products
        print(
            String(
                format: "redi-bench generate: %@ fp32 weights, %@ KV cache, %d prompts × %d samples, batch %d, %d new tokens after %d-token prompts: "
                    + "%.1f tokens/s, %.1f GFLOP/s = MFU %.1f%% of sgemm %.1f GFLOP/s (same run; sgemm itself reaches %.1f GFLOP/s = %.0f%% "
                    + "with %d rows); %d decode steps, weights streamed at %.1f GB/s (%.0f%% of memcpy %.1f GB/s); %d BLAS threads",
                self.model ?? config, kvCache, count, samples, batch, produced, promptTokens, Double(produced) / dt, achieved, 100 * achieved / peak, peak,
                atBatch, 100 * atBatch / peak, batch, steps, streamed, 100 * streamed / bandwidth, bandwidth, matmulThreads))
        print(
            String(
                format: "decode step %.1f ms (%d rows) vs its products alone %.1f ms (same shapes and weights, nothing else) = "
                    + "a ceiling of %.1f tokens/s, MFU %.1f%%; the step reaches %.0f%% of it",
                1000 * dt / Double(steps), batch, 1000 * products, ceiling, 100 * flopsPerToken * ceiling / 1e9 / peak,
                100 * Double(produced) / dt / ceiling))
    }
}
