// Decoding settings and the generation loop: greedy or temperature + nucleus (top-p)
// sampling, reproducible from a seed, stopping at EOS/end-of-turn or a token budget.
import Foundation
import Model
import Numerics

public struct SamplingSettings: Sendable, Equatable {
    /// 0 means greedy.
    public var temperature: Double = 0.6
    public var topP: Double = 0.95
    public var maxNewTokens: Int = 256
    public var seed: UInt64 = 0
    public init(temperature: Double = 0.6, topP: Double = 0.95, maxNewTokens: Int = 256, seed: UInt64 = 0) {
        self.temperature = temperature; self.topP = topP; self.maxNewTokens = maxNewTokens; self.seed = seed
    }
}

/// Picks the next token from logits: argmax at temperature 0, else a draw from the
/// smallest set of most likely tokens whose probability reaches `topP`.
public func sampleToken(_ logits: UnsafeBufferPointer<Float>, settings: SamplingSettings, rng: inout SeededGenerator) -> Int32 {
    var best = 0
    for i in 1..<logits.count where logits[i] > logits[best] { best = i }
    if settings.temperature <= 0 { return Int32(best) }
    let inv = Float(1 / settings.temperature), m = logits[best]
    var weights = [Float](repeating: 0, count: logits.count)
    var total = 0.0
    for i in 0..<logits.count { weights[i] = fastExp((logits[i] - m) * inv); total += Double(weights[i]) }
    let target = settings.topP * total
    // Sort only the plausible tokens; if they cannot reach the nucleus mass, sort everything.
    // Either way the kept set is exactly the top-p nucleus, since every excluded token is
    // less likely than every candidate.
    var nucleus: [(Int32, Double)] = []
    for threshold: Float in [1e-4, 0] {
        var candidates: [(Int32, Double)] = []
        for i in 0..<weights.count where weights[i] >= threshold { candidates.append((Int32(i), Double(weights[i]))) }
        candidates.sort { $0.1 > $1.1 || ($0.1 == $1.1 && $0.0 < $1.0) }
        var mass = 0.0
        nucleus = []
        for c in candidates {
            nucleus.append(c)
            mass += c.1
            if mass >= target { break }
        }
        if mass >= target || threshold == 0 { break }
    }
    let mass = nucleus.reduce(0) { $0 + $1.1 }
    var u = rng.nextUnit() * mass
    for (id, w) in nucleus {
        u -= w
        if u <= 0 { return id }
    }
    return nucleus.last!.0
}

/// Generates `samples` continuations of `prompt` as one decoding batch.
///
/// - Parameters:
///   - stop: token ids that end a sample (included in its output).
///   - progress: called after each decoding step with the number of finished samples.
/// - Returns: the generated ids of each sample (without the prompt).
public func generate(config: LlamaConfig, parameters: UnsafePointer<Float>, prompt: [Int32], samples: Int,
                     settings: SamplingSettings, stop: Set<Int32>) -> [[Int32]] {
    let budget = min(settings.maxNewTokens, config.maxPositionEmbeddings - prompt.count)
    guard budget > 0 else { return Array(repeating: [], count: samples) }
    let generator = Generator(config: config, parameters: parameters, batch: samples, capacity: prompt.count + budget)
    var rng = SeededGenerator(seed: settings.seed)
    let vocab = config.vocabSize
    var outputs = Array(repeating: [Int32](), count: samples)
    var done = Array(repeating: false, count: samples)
    var logits = generator.prefill(prompt)
    var next = [Int32](repeating: 0, count: samples)
    var firstStep = true
    for _ in 0..<budget {
        for s in 0..<samples where !done[s] {
            let row = firstStep ? 0 : s
            next[s] = logits.withUnsafeBufferPointer {
                sampleToken(UnsafeBufferPointer(rebasing: $0[(row * vocab)..<((row + 1) * vocab)]), settings: settings, rng: &rng)
            }
            outputs[s].append(next[s])
            if stop.contains(next[s]) || outputs[s].count >= budget { done[s] = true }
        }
        firstStep = false
        if done.allSatisfy({ $0 }) || generator.length >= generator.capacity { break }
        logits = generator.decode(next)
    }
    return outputs
}
