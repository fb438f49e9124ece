// One worker's share of a training step: forward over micro-batches, the objective on the
// per-sequence log-probabilities, backward with per-token weights, gradients accumulated
// into the flat vector. Micro-batches never split a preference pair.
import Data
import Model
import Numerics
import Objectives

/// Turns examples into gradients and metrics with one `LlamaEngine`.
public final class GradientComputer {
    public let engine: LlamaEngine
    /// Upper bound on tokens per forward pass (a single longer example still runs alone).
    public var microBatchTokens: Int

    public init(config: LlamaConfig, microBatchTokens: Int = 4096) {
        engine = LlamaEngine(config: config)
        self.microBatchTokens = microBatchTokens
    }

    /// Summed log-probabilities of every sequence, forward only, in example order.
    public func scores(parameters: FloatBuffer, examples: [Example]) -> [SequenceScore] {
        scoresWithTokens(parameters: parameters, examples: examples).0
    }

    /// Summed log-probabilities of every sequence, and each scored token's log-probability.
    public func scoresWithTokens(parameters: FloatBuffer, examples: [Example]) -> ([SequenceScore], [[Float]]) {
        var out: [SequenceScore] = [], tokens: [[Float]] = []
        for group in microBatches(examples) {
            let batch = PackedBatch(group.flatMap(\.sequences))
            let logp = engine.forward(parameters: parameters, batch: batch)
            out += sequenceScores(logp, batch: batch)
            var perSequence = [[Float]](repeating: [], count: batch.sequenceCount)
            for (i, s) in batch.predictSequence.enumerated() { perSequence[Int(s)].append(logp[i]) }
            tokens += perSequence
        }
        return (out, tokens)
    }

    /// Adds ∂(lossSum / normalizer)/∂θ over `examples` into `gradients` and returns the unnormalised result.
    ///
    /// - Parameters:
    ///   - normalizer: the global batch's count (tokens for SFT, examples otherwise), so partial
    ///     gradients from micro-batches and workers add up to the gradient of the batch mean.
    /// - Throws: `ObjectiveError` when the examples do not fit the objective.
    ///   - parametersNeeded: passed to the first micro-batch's forward (see `LlamaEngine.forward`).
    ///   - gradientsFinal: called during the last micro-batch's backward with the offset from
    ///     which gradients are final (see `LlamaEngine.backward`).
    public func accumulate(
        parameters: FloatBuffer, gradients: FloatBuffer,
        examples: [Example], objective: Objective, normalizer: Double,
        parametersNeeded: ((Int) -> Void)? = nil,
        gradientsFinal: ((Int) -> Void)? = nil
    ) throws -> ObjectiveResult {
        precondition(parameters.count == gradients.count)
        var total = ObjectiveResult()
        let groups = microBatches(examples)
        for (index, group) in groups.enumerated() {
            if objective.isPreference, let bad = group.first(where: { !$0.isPreference }) {
                throw ObjectiveError(description: "\(objective.name) needs preference records (prompt, chosen, rejected); line \(bad.line) is prompt/completion")
            }
            if !objective.isPreference, let bad = group.first(where: { $0.isPreference }) {
                throw ObjectiveError(description: "sft needs prompt/completion records; line \(bad.line) is a preference record")
            }
            let batch = PackedBatch(group.flatMap(\.sequences))
            let logp = engine.forward(parameters: parameters, batch: batch, parametersNeeded: index == 0 ? parametersNeeded : nil)
            let scores = sequenceScores(logp, batch: batch)
            var references: [ReferenceScores]?
            if case .dpo = objective {
                references = try group.map { e in
                    guard let c = e.refChosen, let r = e.refRejected else {
                        throw ObjectiveError(description: "dpo needs ref_chosen_logp and ref_rejected_logp; line \(e.line) has none")
                    }
                    return ReferenceScores(chosen: c, rejected: r)
                }
            }
            let result = try objective.evaluate(scores, references: references)
            let weights = batch.predictSequence.map { Float(result.sequenceGradients[Int($0)] / normalizer) }
            engine.backward(
                parameters: parameters, gradients: gradients, weights: weights,
                gradientsFinal: index == groups.count - 1 ? gradientsFinal : nil)
            total.merge(result)
        }
        return total
    }

    /// Groups whole examples into forward passes of at most `microBatchTokens` tokens.
    func microBatches(_ examples: [Example]) -> [[Example]] {
        var groups: [[Example]] = [], current: [Example] = [], tokens = 0
        for e in examples {
            let n = e.sequences.reduce(0) { $0 + $1.tokens.count }
            if !current.isEmpty && tokens + n > microBatchTokens { groups.append(current); current = []; tokens = 0 }
            current.append(e)
            tokens += n
        }
        if !current.isEmpty { groups.append(current) }
        return groups
    }

    func sequenceScores(_ logp: [Float], batch: PackedBatch) -> [SequenceScore] {
        var scores = [SequenceScore](repeating: SequenceScore(logp: 0, tokens: 0), count: batch.sequenceCount)
        for (i, s) in batch.predictSequence.enumerated() {
            scores[Int(s)].logp += Double(logp[i])
            scores[Int(s)].tokens += 1
        }
        return scores
    }
}

extension Objective {
    /// The count a global batch's summed loss is divided by (tokens for SFT, examples otherwise).
    public func normalizer(for examples: [Example]) -> Double {
        normalizesByTokens
            ? Double(examples.reduce(0) { $0 + $1.sequences.reduce(0) { $0 + $1.scoredCount } })
            : Double(examples.count)
    }
}
