// Log-probabilities of target tokens from LM-head logits, and the gradient of a weighted
// sum of them. Rows are only the positions the loss scores (no logits for prompt tokens).

/// For each row r: lse[r] = log Σ exp(logits[r,:]), logp[r] = logits[r, target[r]] − lse[r].
public func targetLogProbs(_ logp: UnsafeMutablePointer<Float>, _ lse: UnsafeMutablePointer<Float>,
                           _ logits: UnsafePointer<Float>, targets: UnsafePointer<Int32>,
                           rows: Int, vocab: Int) {
    parallelRanges(rows) { range in
        for r in range {
            let row = logits + r * vocab
            let m = rowMax(row, vocab)
            let l = m + _log(sumExp(row, vocab, shift: m))
            lse[r] = l
            logp[r] = row[Int(targets[r])] - l
        }
    }
}

/// In place: logits[r,:] ← weight[r] · (onehot(target[r]) − softmax(logits[r,:])), the gradient
/// of Σ_r weight[r]·logp[r] with respect to the logits.
public func targetLogProbsBackward(_ logits: UnsafeMutablePointer<Float>, lse: UnsafePointer<Float>,
                                   targets: UnsafePointer<Int32>, weights: UnsafePointer<Float>,
                                   rows: Int, vocab: Int) {
    parallelRanges(rows) { range in
        for r in range {
            let row = logits + r * vocab
            scaledExp(row, row, vocab, shift: lse[r], scale: -weights[r])
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
