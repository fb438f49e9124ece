// Log-probabilities of target tokens from LM-head logits, and the gradient of a weighted
// sum of them. Rows are only the positions the loss scores (no logits for prompt tokens).
// The forward leaves softmax probabilities in place of the logits, so the backward needs no exp.

/// For each row r: logp[r] = logits[r, target[r]] − log Σ exp(logits[r,:]); the row becomes softmax(logits[r,:]).
public func targetLogProbs(
    _ logp: UnsafeMutablePointer<Float>, _ logits: UnsafeMutablePointer<Float>,
    targets: UnsafePointer<Int32>, rows: Int, vocab: Int
) {
    parallelRanges(rows) { range in
        for r in range {
            let row = logits + r * vocab
            let m = rowMax(row, vocab)
            let target = row[Int(targets[r])]
            let sum = expInPlace(row, vocab, shift: m)
            logp[r] = target - m - _log(sum)
            scaleInPlace(row, vocab, by: 1 / sum)
        }
    }
}

/// In place: probs[r,:] ← weight[r] · (onehot(target[r]) − probs[r,:]), the gradient of
/// Σ_r weight[r]·logp[r] with respect to the logits.
public func targetLogProbsBackward(
    _ probs: UnsafeMutablePointer<Float>, targets: UnsafePointer<Int32>,
    weights: UnsafePointer<Float>, rows: Int, vocab: Int
) {
    parallelRanges(rows) { range in
        for r in range {
            let row = probs + r * vocab
            scaleInPlace(row, vocab, by: -weights[r])
            row[Int(targets[r])] += weights[r]
        }
    }
}

#if canImport(Glibc)
import Glibc
@inline(__always) func _log(_ x: Float) -> Float { Glibc.logf(x) }
#else
import Darwin
@inline(__always) func _log(_ x: Float) -> Float { Darwin.logf(x) }
#endif
