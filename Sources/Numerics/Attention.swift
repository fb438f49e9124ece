// Causal grouped-query attention over packed sequences: each sequence attends only to its
// own earlier tokens, never across a boundary. Products through sgemm per (sequence, head).

/// Shapes and packing for one attention call.
public struct AttentionShape: Sendable {
    public let heads: Int
    public let kvHeads: Int
    public let headDim: Int
    /// Start row of each sequence plus the total row count at the end: [n+1].
    public let sequenceStarts: [Int]
    /// Offset of each sequence's probability block in the saved-probabilities buffer: [n+1].
    public let probabilityOffsets: [Int]
    /// Query rows per block when probabilities are not kept (`attentionQueryBlock` unless a test sets it).
    public let queryBlock: Int

    public init(heads: Int, kvHeads: Int, headDim: Int, sequenceStarts: [Int], queryBlock: Int = attentionQueryBlock) {
        precondition(heads % kvHeads == 0, "heads must be a multiple of kvHeads")
        precondition(queryBlock > 0)
        self.queryBlock = queryBlock
        self.heads = heads
        self.kvHeads = kvHeads
        self.headDim = headDim
        self.sequenceStarts = sequenceStarts
        var offsets = [0]
        for j in 0..<(sequenceStarts.count - 1) {
            let l = sequenceStarts[j + 1] - sequenceStarts[j]
            offsets.append(offsets[j] + heads * l * l)
        }
        probabilityOffsets = offsets
    }

    public var sequences: Int { sequenceStarts.count - 1 }
    public var probabilityCount: Int { probabilityOffsets.last! }
    public var longest: Int { (0..<sequences).map { sequenceStarts[$0 + 1] - sequenceStarts[$0] }.max() ?? 0 }
    /// Scratch floats `attentionBackward` needs with kept probabilities.
    public var scratchCount: Int { elementwiseThreads * longest * longest }
    /// Scratch floats `attentionForward` needs without keeping probabilities (`attentionBackward`
    /// without them needs twice this): one block of query rows × the longest sequence per thread.
    public var blockScratchCount: Int { elementwiseThreads * min(longest, queryBlock) * longest }
}

/// Query rows per block when probabilities are not kept: scores are computed for a block of
/// rows against only the keys they can see (causal), so memory is threads × block × L rather
/// than L², and the masked upper triangle (half of q·kᵀ) is never computed.
public let attentionQueryBlock = 256

/// out[T, H·hd] = softmax(q kᵀ / √hd, causal) · v per sequence and head.
///
/// With `keepProbabilities`, `probs` receives every head's probabilities (`probabilityCount`
/// floats) for the backward; without, it is `blockScratchCount` floats of scratch, the
/// probabilities are computed a block of query rows at a time, and the backward recomputes
/// them the same way: memory grows with threads × block × L instead of heads × L² per layer.
public func attentionForward(
    _ out: UnsafeMutablePointer<Float>, _ probs: UnsafeMutablePointer<Float>,
    _ q: UnsafePointer<Float>, _ k: UnsafePointer<Float>, _ v: UnsafePointer<Float>,
    shape: AttentionShape, keepProbabilities: Bool = true
) {
    let hd = shape.headDim, qStride = shape.heads * hd, kvStride = shape.kvHeads * hd
    let group = shape.heads / shape.kvHeads
    let perWorker = min(shape.longest, shape.queryBlock) * shape.longest
    forEachSequenceAndKVHead(shape) { j, g, worker in
        let start = shape.sequenceStarts[j], l = shape.sequenceStarts[j + 1] - start
        let vg = v + start * kvStride + g * hd
        for h in (g * group)..<((g + 1) * group) {
            // Kept: the whole sequence into its place in `probs`; else block by block in scratch.
            for rows in keepProbabilities ? [0..<l] : queryBlocks(l, shape.queryBlock) {
                let p = keepProbabilities ? probs + shape.probabilityOffsets[j] + h * l * l : probs + worker * perWorker
                let n = rows.upperBound
                causalProbabilities(p, q, k, sequence: j, head: h, rows: rows, shape: shape)
                gemm(
                    .n, .n, m: rows.count, n: hd, k: n, p, lda: n, vg, ldb: kvStride,
                    out + (start + rows.lowerBound) * qStride + h * hd, ldc: qStride)
            }
        }
    }
}

/// Blocks of `block` query rows of an `l`-token sequence.
func queryBlocks(_ l: Int, _ block: Int) -> [Range<Int>] {
    stride(from: 0, to: l, by: block).map { $0..<min(l, $0 + block) }
}

/// softmax(q_h k_gᵀ / √hd) of query `rows` of one sequence and head against the keys
/// 0..<rows.upperBound they can see: p[rows.count, rows.upperBound], masked entries zero
/// (rows 0..<l: the whole causal l × l block).
func causalProbabilities(
    _ p: UnsafeMutablePointer<Float>, _ q: UnsafePointer<Float>, _ k: UnsafePointer<Float>,
    sequence j: Int, head h: Int, rows: Range<Int>, shape: AttentionShape
) {
    let hd = shape.headDim, qStride = shape.heads * hd, kvStride = shape.kvHeads * hd
    let g = h / (shape.heads / shape.kvHeads)
    let start = shape.sequenceStarts[j], n = rows.upperBound
    gemm(
        .n, .t, m: rows.count, n: n, k: hd, alpha: 1 / Float(hd).squareRoot(), q + (start + rows.lowerBound) * qStride + h * hd, lda: qStride,
        k + start * kvStride + g * hd, ldb: kvStride, p, ldc: n)
    for (r, i) in rows.enumerated() {
        let row = p + r * n
        let sum = expInPlace(row, i + 1, shift: rowMax(row, i + 1))
        scaleInPlace(row, i + 1, by: 1 / sum)
        (row + i + 1).update(repeating: 0, count: n - i - 1)
    }
}

/// Backward of `attentionForward`: dq is overwritten; dk and dv are overwritten too (each
/// (sequence, kv head) block is owned by one task, which zeroes it before accumulating its heads).
/// `probs` nil: the probabilities are recomputed a query block at a time, and `scratch` must
/// hold `2 · blockScratchCount`; otherwise `scratchCount`.
public func attentionBackward(
    _ dq: UnsafeMutablePointer<Float>, _ dk: UnsafeMutablePointer<Float>,
    _ dv: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>,
    _ dout: UnsafePointer<Float>, _ probs: UnsafePointer<Float>?,
    _ q: UnsafePointer<Float>, _ k: UnsafePointer<Float>, _ v: UnsafePointer<Float>,
    shape: AttentionShape
) {
    let hd = shape.headDim, qStride = shape.heads * hd, kvStride = shape.kvHeads * hd
    let group = shape.heads / shape.kvHeads
    let scale = 1 / Float(hd).squareRoot()
    let longest = shape.longest
    let perWorker = probs == nil ? min(longest, shape.queryBlock) * longest : longest * longest
    forEachSequenceAndKVHead(shape) { j, g, worker in
        let start = shape.sequenceStarts[j], l = shape.sequenceStarts[j + 1] - start
        let kg = k + start * kvStride + g * hd, vg = v + start * kvStride + g * hd
        let dkg = dk + start * kvStride + g * hd, dvg = dv + start * kvStride + g * hd
        for t in 0..<l { (dkg + t * kvStride).update(repeating: 0, count: hd); (dvg + t * kvStride).update(repeating: 0, count: hd) }
        let ds = scratch + worker * perWorker
        let recomputed = scratch + elementwiseThreads * perWorker + worker * perWorker
        for h in (g * group)..<((g + 1) * group) {
            // Whole sequence at once from kept probabilities, else block by block.
            for rows in probs == nil ? queryBlocks(l, shape.queryBlock) : [0..<l] {
                let n = rows.upperBound, m = rows.count
                let qh = q + (start + rows.lowerBound) * qStride + h * hd, doh = dout + (start + rows.lowerBound) * qStride + h * hd
                let p: UnsafePointer<Float>
                if let probs {
                    p = probs + shape.probabilityOffsets[j] + h * l * l
                } else {
                    causalProbabilities(recomputed, q, k, sequence: j, head: h, rows: rows, shape: shape)
                    p = UnsafePointer(recomputed)
                }
                gemm(.t, .n, m: n, n: hd, k: m, p, lda: n, doh, ldb: qStride, beta: 1, dvg, ldc: kvStride)
                gemm(.n, .t, m: m, n: n, k: hd, doh, lda: qStride, vg, ldb: kvStride, ds, ldc: n)
                for (r, i) in rows.enumerated() {
                    let pr = p + r * n, dr = ds + r * n
                    let dot = rowDot(pr, dr, i + 1)
                    for c in 0...i { dr[c] = pr[c] * (dr[c] - dot) * scale }
                    (dr + i + 1).update(repeating: 0, count: n - i - 1)
                }
                gemm(.n, .n, m: m, n: hd, k: n, ds, lda: n, kg, ldb: kvStride, dq + (start + rows.lowerBound) * qStride + h * hd, ldc: qStride)
                gemm(.t, .n, m: n, n: hd, k: m, ds, lda: n, qh, ldb: qStride, beta: 1, dkg, ldc: kvStride)
            }
        }
    }
}

/// Runs `body(sequence, kvHead, workerIndex)` for every pair, spread over the cores.
func forEachSequenceAndKVHead(_ shape: AttentionShape, _ body: (Int, Int, Int) -> Void) {
    forEachPair(shape.sequences * shape.kvHeads) { pair, w in body(pair / shape.kvHeads, pair % shape.kvHeads, w) }
}

/// Runs `body(pair, workerIndex)` for pairs 0..<count with single-threaded sgemm inside (many
/// small products beat one threaded product each; decoding attention and the 16-row products). Static round-robin assignment: worker w
/// takes pairs w, w+workers, …; the order of floating-point work inside a pair never depends
/// on scheduling.
func forEachPair(_ count: Int, _ body: (Int, Int) -> Void) {
    let workers = min(elementwiseThreads, count)
    let saved = matmulThreads
    if saved != 1 { setMatmulThreads(1) }
    defer { if saved != 1 { setMatmulThreads(saved) } }
    parallelRanges(workers) { range in
        for w in range {
            var pair = w
            while pair < count { body(pair, w); pair += workers }
        }
    }
}

/// Decoding attention: one new query per row, attending to that row's cached keys and values.
///
/// - Parameters:
///   - out: [n, heads·hd]; `q`: [n, heads·hd] (rotated).
///   - keys, values: query i's cache (its row's), one position per kvHeads·hd; it sees
///     `visible[i]` positions.
///   - scratch: `decodeScratchCount(heads:kvHeads:longest:)` floats.
/// Work is spread over the rows (over (row, kv head) pairs when there are too few rows to keep
/// every core busy), each head two single-threaded sgemv (one query against its cache: sgemm
/// would pack the cache first), in a fixed assignment, so a row's result never depends on which
/// other rows are in the batch. A whole row per worker reads its cache's positions whole, not a
/// third of each on each core: 32 rows of SmolLM2 at 128 positions, 20.0 → 16.7 ms a step on 2 cores.
public func cachedAttention(
    _ out: UnsafeMutablePointer<Float>, _ q: UnsafePointer<Float>,
    keys: [UnsafePointer<Float>], values: [UnsafePointer<Float>],
    visible: [Int], heads: Int, kvHeads: Int, headDim hd: Int,
    scratch: UnsafeMutablePointer<Float>
) {
    let n = visible.count
    precondition(keys.count == n && values.count == n && heads % kvHeads == 0)
    let group = heads / kvHeads, qStride = heads * hd, kvStride = kvHeads * hd
    let longest = visible.max() ?? 0
    let scale = 1 / Float(hd).squareRoot()
    let headsPerPair = n >= 2 * elementwiseThreads ? kvHeads : 1
    forEachPair(n * kvHeads / headsPerPair) { pair, w in
        let s = scratch + w * longest
        let first = pair * headsPerPair, i = first / kvHeads, l = visible[i]
        for g in first % kvHeads..<first % kvHeads + headsPerPair {
            let kg = keys[i] + g * hd, vg = values[i] + g * hd
            for h in g * group..<(g + 1) * group {
                // scores[l] = K · q_h / √hd; softmax; out_h = Vᵀ · scores (normalised in the product).
                gemv(.n, m: l, n: hd, alpha: scale, kg, lda: kvStride, q + i * qStride + h * hd, s)
                let sum = expInPlace(s, l, shift: rowMax(s, l))
                gemv(.t, m: l, n: hd, alpha: 1 / sum, vg, lda: kvStride, s, out + i * qStride + h * hd)
            }
        }
    }
}

/// Scratch floats `cachedAttention` needs.
public func decodeScratchCount(heads: Int, kvHeads: Int, longest: Int) -> Int {
    elementwiseThreads * longest
}
