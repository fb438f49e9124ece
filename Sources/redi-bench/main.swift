// redi-bench: throughput of the training step against the machine's own sgemm, measured in
// the same run (a shared machine is noisy: ratios, not bare times, are what to compare).
//
//   redi-bench step [--config smollm2-135m] [--records 4] [--length 256] [--repeats 3]
import Foundation
import Model
import Numerics
import Objectives
import Training
import Data

struct Options {
    var config = "smollm2-135m"
    var records = 4
    var length = 256
    var repeats = 3
    var threads: Int? = nil
}

func parse() -> Options {
    var o = Options()
    var args = CommandLine.arguments.dropFirst()
    if args.first == "step" { args = args.dropFirst() }
    while let flag = args.popFirst() {
        guard let value = args.popFirst() else { fatalError("\(flag) needs a value") }
        switch flag {
        case "--config": o.config = value
        case "--records": o.records = Int(value)!
        case "--length": o.length = Int(value)!
        case "--repeats": o.repeats = Int(value)!
        case "--threads": o.threads = Int(value)!
        default: fatalError("unknown flag \(flag); use --config --records --length --repeats --threads")
        }
    }
    return o
}

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

/// Best-of-N sgemm rate in GFLOP/s at the shape (m, n, k) with the given ops.
func sgemmRate(_ opA: Op, _ opB: Op, m: Int, n: Int, k: Int, repeats: Int = 5) -> Double {
    let a = FloatBuffer(count: m * k), b = FloatBuffer(count: k * n), c = FloatBuffer(count: m * n)
    var rng = SeededGenerator(seed: 1)
    for i in 0..<a.count { a[i] = Float(rng.nextNormal()) }
    for i in 0..<b.count { b[i] = Float(rng.nextNormal()) }
    var best = Double.infinity
    for _ in 0..<repeats {
        let t0 = now()
        gemm(opA, opB, m: m, n: n, k: k, a.baseAddress, lda: opA == .n ? k : m, b.baseAddress, ldb: opB == .n ? n : k,
             c.baseAddress, ldc: n)
        best = min(best, now() - t0)
    }
    return 2 * Double(m * n * k) / best / 1e9
}

let o = parse()
if let t = o.threads { setMatmulThreads(t) }
guard let config = try LlamaConfig.preset(o.config, vocabSize: 49152, bos: 1, eos: 2, pad: 2) else {
    fatalError("unknown config \(o.config); use one of \(LlamaConfig.presetNames)")
}
let layout = ParameterLayout(config: config)
let params = FloatBuffer(count: layout.totalCount)
initializeParameters(params, layout: layout, seed: 0)
let grads = FloatBuffer(count: layout.totalCount)
var rng = SeededGenerator(seed: 42)
let examples = (0..<o.records).map { i in
    Example(sequences: [TokenSequence(tokens: (0..<o.length).map { _ in Int32(rng.next() % UInt64(config.vocabSize)) }, promptLength: 1)],
            line: i + 1)
}
let tokens = o.records * o.length
let computer = GradientComputer(config: config, microBatchTokens: tokens)

let c = config.hiddenSize, inter = config.intermediateSize
print("redi-bench: \(o.config), \(layout.totalCount) parameters, \(o.records) records × \(o.length) tokens, "
      + "\(matmulThreads) BLAS threads, \(elementwiseThreads) elementwise threads")
let shapes: [(String, Op, Op, Int, Int, Int)] = [
    ("mlp fwd  [T,C]x[C,I]", .n, .t, tokens, inter, c),
    ("mlp dW   [I,T]x[T,C]", .t, .n, inter, c, tokens),
    ("head fwd [T,C]x[C,V]", .n, .t, tokens, config.vocabSize, c),
]
var peak = 0.0
for (name, a, b, m, n, k) in shapes {
    let r = sgemmRate(a, b, m: m, n: n, k: k)
    peak = max(peak, r)
    print(String(format: "  sgemm %@ %6.1f GFLOP/s", name, r))
}

let flopsPerToken = 6 * Double(layout.totalCount) + 12 * Double(config.numHiddenLayers * config.numAttentionHeads * config.headDim * o.length)
var times: [Double] = []
for i in 0...o.repeats {
    grads.zero()
    let t0 = now()
    _ = try computer.accumulate(parameters: params.baseAddress, gradients: grads.baseAddress, examples: examples,
                                objective: .sft, normalizer: Objective.sft.normalizer(for: examples))
    let dt = now() - t0
    if i > 0 { times.append(dt) }   // the first step allocates the arena
    print(String(format: "  step %d: %.3f s%@", i, dt, i == 0 ? " (warm-up, not counted)" : ""))
}
let median = times.sorted()[times.count / 2]
let achieved = flopsPerToken * Double(tokens) / median / 1e9
print(String(format: "forward+backward: %.1f tokens/s, %.1f GFLOP/s model FLOPs (6·N·T + attention), MFU %.1f%% of best sgemm %.1f GFLOP/s",
             Double(tokens) / median, achieved, 100 * achieved / peak, peak))
