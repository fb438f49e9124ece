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

/// Picks the next token from logits: argmax at temperature 0, else a draw from the
/// smallest set of most likely tokens whose probability reaches `topP` (ties broken by the
/// lower id), in proportion to their probabilities.
///
/// Linear time: the weights are bucketed by their float exponent and top mantissa bits
/// (an order-preserving key), whole buckets are taken from the top until the nucleus mass is
/// reached, and only the boundary bucket is sorted. A trained model's nucleus is a handful of
/// tokens, but a near-uniform one (early training, high temperature) is most of the vocabulary.
/// The passes over the vocabulary are vectorised (max, exp) or byte-sized (each token's bucket
/// is kept), since a decode step samples every row: 32 rows × 49k logits is a fifth of a step.
public func sampleToken(_ logits: UnsafeBufferPointer<Float>, settings: SamplingSettings, rng: inout SeededGenerator) -> Int32 {
    let n = logits.count
    let l = logits.baseAddress!
    let m = rowMax(l, n)
    // The lowest id holding the maximum (none when every logit is NaN: token 0).
    let best = (0..<n).first { l[$0] == m } ?? 0
    if settings.temperature <= 0 { return Int32(best) }
    let inv = Float(1 / settings.temperature)
    // Bucket 0 holds the largest weights (≤ 1, 8 buckets per octave); the last lumps everything below 2^-31.
    let buckets = 256
    return withUnsafeTemporaryAllocation(of: Float.self, capacity: n) { weights in
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: n) { bucketOf in
            let w = weights.baseAddress!, b = bucketOf.baseAddress!
            scaledExp(w, l, n, shift: m, scale: inv)
            var mass = [Double](repeating: 0, count: buckets)
            var total = 0.0
            for i in 0..<n {
                let key = Int(w[i].bitPattern >> 20)  // sign (0), exponent, 3 mantissa bits: increasing with w
                let k = min(buckets - 1, max(0, (127 << 3) - key))
                b[i] = UInt8(truncatingIfNeeded: k)
                mass[k] += Double(w[i])
                total += Double(w[i])
            }
            let target = settings.topP * total
            // Whole buckets above the boundary bucket, then the boundary bucket's largest weights.
            var boundary = 0, above = 0.0
            while boundary < buckets - 1 && above + mass[boundary] < target { above += mass[boundary]; boundary += 1 }
            let edge = UInt8(boundary)
            var candidates: [(id: Int, w: Float)] = []
            for i in 0..<n where b[i] == edge { candidates.append((i, w[i])) }
            candidates.sort { $0.w > $1.w || ($0.w == $1.w && $0.id < $1.id) }
            var kept = above, last = candidates.first ?? (best, w[best])
            for c in candidates {
                last = c
                kept += Double(c.w)
                if kept >= target { break }
            }
            var u = rng.nextUnit() * kept
            var chosen = best
            for i in 0..<n where b[i] < edge || (b[i] == edge && (w[i] > last.w || (w[i] == last.w && i <= last.id))) {
                chosen = i
                u -= Double(w[i])
                if u <= 0 { break }
            }
            return Int32(chosen)
        }
    }
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
    config: LlamaConfig, parameters: UnsafePointer<Float>, requests: [GenerationRequest], rows: Int,
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
    /// Picks one token per listed row from `logits` (row i of logits for rows[i], or one shared row), in parallel.
    func sample(_ rowsToSample: [Int], _ logits: [Float], shared: Bool) -> [Int32] {
        var picked = [Int32](repeating: 0, count: rowsToSample.count)
        logits.withUnsafeBufferPointer { l in
            rngs.withUnsafeMutableBufferPointer { rng in
                picked.withUnsafeMutableBufferPointer { out in
                    let box = UncheckedSendable((l, rng, out))
                    parallelRanges(rowsToSample.count, minimumPerThread: 4) { range in
                        let (l, rng, out) = box.value
                        for i in range {
                            let at = shared ? 0 : i * vocab
                            out[i] = sampleToken(UnsafeBufferPointer(rebasing: l[at..<(at + vocab)]), settings: settings, rng: &rng[rowsToSample[i]])
                        }
                    }
                }
            }
        }
        return picked
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

/// `generate` with the weights in a flat vector's buffer.
public func generate(
    config: LlamaConfig, parameters: FloatBuffer, requests: [GenerationRequest], rows: Int,
    settings: SamplingSettings, stop: Set<Int32>, progress: ((Int, Int, Int) -> Void)? = nil
) -> [[[Int32]]] {
    generate(config: config, parameters: parameters.baseAddress, requests: requests, rows: rows, settings: settings, stop: stop, progress: progress)
}

/// `samples` continuations of one prompt (see the batched `generate` for the guarantees).
public func generate(
    config: LlamaConfig, parameters: UnsafePointer<Float>, prompt: [Int32], samples: Int,
    settings: SamplingSettings, stop: Set<Int32>
) -> [[Int32]] {
    generate(
        config: config, parameters: parameters, requests: [GenerationRequest(prompt: prompt, samples: samples, seed: settings.seed)],
        rows: samples, settings: settings, stop: stop)[0]
}
