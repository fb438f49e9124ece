// Temperature + nucleus (top-p) sampling over one row of logits, in linear time: the kernel
// behind every sampled token, so it lives with the other vectorised row kernels.

/// Picks a token from `logits`: the lowest id of the maximum at temperature ≤ 0, else a draw
/// from the smallest set of most likely tokens whose probability reaches `topP` (ties broken
/// by the lower id), in proportion to their probabilities; `uniform()` gives the draw in [0, 1).
///
/// The weights are bucketed by their float exponent and top mantissa bits (an
/// order-preserving key), whole buckets are taken from the top until the nucleus mass is
/// reached, and only the boundary bucket is sorted. A trained model's nucleus is a handful of
/// tokens, but a near-uniform one (early training, high temperature) is most of the vocabulary.
/// The passes over the vocabulary are vectorised (max, exp) or byte-sized (each token's bucket
/// is kept), since a decode step samples every row (32 rows × 49k logits: 2.5% of a SmolLM2-135M
/// decode step with these passes, `perf` on 2026-12-01).
public func nucleusSample(_ logits: ArraySlice<Float>, temperature: Double, topP: Double, uniform: () -> Double) -> Int {
    logits.withUnsafeBufferPointer { row in
        guard let l = row.baseAddress else { return 0 }
        return nucleusSample(l, count: row.count, temperature: temperature, topP: topP, uniform: uniform)
    }
}

private func nucleusSample(_ l: UnsafePointer<Float>, count n: Int, temperature: Double, topP: Double, uniform: () -> Double) -> Int {
    let m = rowMax(l, n)
    // The lowest id holding the maximum (none when every logit is NaN: token 0).
    let best = (0..<n).first { l[$0] == m } ?? 0
    if temperature <= 0 { return best }
    let inv = Float(1 / temperature)
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
            let target = topP * total
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
            var u = uniform() * kept
            var chosen = best
            for i in 0..<n where b[i] < edge || (b[i] == edge && (w[i] > last.w || (w[i] == last.w && i <= last.id))) {
                chosen = i
                u -= Double(w[i])
                if u <= 0 { break }
            }
            return chosen
        }
    }
}
