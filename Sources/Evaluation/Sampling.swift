// Decoding settings and the generation loop: greedy or temperature + nucleus (top-p)
// sampling, reproducible from a seed, stopping at EOS/end-of-turn or a token budget.
import Foundation
import Model
import Numerics
import SeededRandom

public struct SamplingSettings: Sendable, Equatable {
    /// 0 means greedy.
    public var temperature: Double = 0.6
    public var topP: Double = 0.95
    public var maxNewTokens: Int = 256
    public var seed: UInt64 = 0
    /// How the KV cache stores keys and values (bf16: half the memory for long answers).
    public var cache = CachePrecision.fp32
    public init(temperature: Double = 0.6, topP: Double = 0.95, maxNewTokens: Int = 256, seed: UInt64 = 0, cache: CachePrecision = .fp32) {
        self.temperature = temperature; self.topP = topP; self.maxNewTokens = maxNewTokens; self.seed = seed; self.cache = cache
    }
}

/// Picks the next token from one row of logits: argmax at temperature 0, else a draw from
/// the smallest set of most likely tokens whose probability reaches `topP` (ties broken by the
/// lower id), in proportion to their probabilities (`nucleusSample`).
public func sampleToken(_ logits: ArraySlice<Float>, settings: SamplingSettings, rng: inout SeededGenerator) -> Int32 {
    Int32(nucleusSample(logits, temperature: settings.temperature, topP: settings.topP) { rng.nextUnit() })
}

/// Samples wanted for one prompt.
public struct GenerationRequest: Sendable {
    public var prompt: [Int32]
    public var samples: Int
    /// Sample j draws from its own generator seeded by (seed, j).
    public var seed: UInt64
    public init(prompt: [Int32], samples: Int, seed: UInt64) { self.prompt = prompt; self.samples = samples; self.seed = seed }
}

/// The random stream of sample `sample` of a request: independent of the batch it runs in.
func sampleSeed(_ seed: UInt64, _ sample: Int) -> UInt64 {
    var z = seed &+ (UInt64(sample) &+ 1) &* 0x9E37_79B9_7F4A_7C15
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}

/// Generates every request's samples with continuous batching: `rows` sequences decode
/// together, and a row whose sample ends is refilled with the next waiting sample (a prompt
/// is prefilled once and copied to the rows of its samples that start together).
///
/// Each sample's tokens depend only on its prompt, its seed and `settings`, never on `rows`,
/// on the other requests or on the order samples finish, so the same work split over
/// processes gives the same samples.
///
/// - Parameters:
///   - settings: temperature, top-p and the token budget (`settings.seed` is not used).
///   - stop: token ids that end a sample (included in its output).
///   - progress: called after each decode step with (samples finished, samples in all, tokens generated).
/// - Returns: for each request, the generated ids of each sample (without the prompt).
public func generate(
    config: LlamaConfig, parameters: FloatBuffer, requests: [GenerationRequest], rows: Int,
    settings: SamplingSettings, stop: Set<Int32>, progress: ((Int, Int, Int) -> Void)? = nil
) -> [[[Int32]]] {
    precondition(rows >= 1)
    var outputs = requests.map { Array(repeating: [Int32](), count: $0.samples) }
    let budgets = requests.map { min(settings.maxNewTokens, config.maxPositionEmbeddings - $0.prompt.count) }
    // (request, sample) in order; prompts with no room to generate get empty samples.
    let jobs = requests.indices.flatMap { r in budgets[r] > 0 ? (0..<requests[r].samples).map { (r, $0) } : [] }
    guard !jobs.isEmpty else { return outputs }
    let capacity = jobs.map { requests[$0.0].prompt.count + budgets[$0.0] }.max()!
    let generator = Generator(config: config, parameters: parameters, rows: min(rows, jobs.count), capacity: capacity, precision: settings.cache)
    let vocab = config.vocabSize
    var running: [(request: Int, sample: Int)?] = Array(repeating: nil, count: generator.rows)
    var rngs = Array(repeating: SeededGenerator(seed: 0), count: generator.rows)
    var last = [Int32](repeating: 0, count: generator.rows)
    var nextJob = 0, finished = 0, tokens = 0

    /// Records `token` for the sample in `row`; frees the row when the sample is complete.
    func emit(_ row: Int, _ token: Int32) {
        let (r, s) = running[row]!
        outputs[r][s].append(token)
        last[row] = token
        tokens += 1
        if stop.contains(token) || outputs[r][s].count >= budgets[r] {
            running[row] = nil
            finished += 1
        }
    }
    /// Picks one token per listed row from `logits` (row i of logits for rows[i], or one shared
    /// row), in parallel; each row's generator advances by its draw.
    func sample(_ rowsToSample: [Int], _ logits: [Float], shared: Bool) -> [Int32] {
        let drawn = parallelMap(rowsToSample.count, minimumPerThread: 4) { i -> (Int32, SeededGenerator) in
            var rng = rngs[rowsToSample[i]]
            let at = shared ? 0 : i * vocab
            return (sampleToken(logits[at..<(at + vocab)], settings: settings, rng: &rng), rng)
        }
        for (row, (_, rng)) in zip(rowsToSample, drawn) { rngs[row] = rng }
        return drawn.map(\.0)
    }

    while true {
        // Fill free rows: the next samples of one prompt share a single prefill.
        var free = (0..<generator.rows).filter { running[$0] == nil }
        while !free.isEmpty && nextJob < jobs.count {
            let r = jobs[nextJob].0
            var group: [Int] = []
            while nextJob < jobs.count && jobs[nextJob].0 == r && group.count < free.count {
                let row = free[group.count]
                running[row] = jobs[nextJob]
                rngs[row] = SeededGenerator(seed: sampleSeed(requests[r].seed, jobs[nextJob].1))
                group.append(row)
                nextJob += 1
            }
            let logits = generator.prefill(row: group[0], prompt: requests[r].prompt)
            for row in group.dropFirst() { generator.copyRow(group[0], to: row) }
            for (row, token) in zip(group, sample(group, logits, shared: true)) { emit(row, token) }
            free = (0..<generator.rows).filter { running[$0] == nil }
        }
        let active = (0..<generator.rows).filter { running[$0] != nil }
        if active.isEmpty { break }
        let logits = generator.decode(rows: active, tokens: active.map { last[$0] })
        for (row, token) in zip(active, sample(active, logits, shared: false)) { emit(row, token) }
        progress?(finished, jobs.count, tokens)
    }
    return outputs
}

/// `samples` continuations of one prompt (see the batched `generate` for the guarantees).
public func generate(
    config: LlamaConfig, parameters: FloatBuffer, prompt: [Int32], samples: Int,
    settings: SamplingSettings, stop: Set<Int32>
) -> [[Int32]] {
    generate(
        config: config, parameters: parameters, requests: [GenerationRequest(prompt: prompt, samples: samples, seed: settings.seed)],
        rows: samples, settings: settings, stop: stop)[0]
}
