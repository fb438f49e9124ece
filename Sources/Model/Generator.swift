// Autoregressive decoding with a KV cache of `rows` independent sequences, for continuous
// batching: any row can be (re)filled with a prompt while the others keep decoding, and one
// decode step runs every active row through the weights together, so they stream from memory
// once per step for the whole batch. Prefill goes through sgemm (the prompt's tokens are the
// rows of every product); decode attention is batched over (row, kv head) pairs. Not for
// training: no activations are kept.
import Numerics

/// Next-token logits for a batch of independent sequences sharing one KV cache.
public final class Generator {
    public let config: LlamaConfig
    public let layout: ParameterLayout
    let rope: RotaryTable
    let parameters: UnsafePointer<Float>
    /// Sequences the cache holds.
    public let rows: Int
    /// Tokens per row (prompt + generated).
    public let capacity: Int
    /// [layers][rows, capacity, kvDim]
    private var keys: [FloatBuffer] = [], values: [FloatBuffer] = []
    /// Tokens in each row's cache.
    public private(set) var lengths: [Int]
    private var work = GrowableBuffer()

    /// - Parameters:
    ///   - parameters: the flat vector; must outlive the generator.
    ///   - capacity: maximum total tokens (prompt + generated) per row.
    public init(config: LlamaConfig, parameters: UnsafePointer<Float>, rows: Int, capacity: Int) {
        precondition(rows >= 1 && capacity >= 1)
        self.config = config
        layout = ParameterLayout(config: config)
        self.capacity = min(capacity, config.maxPositionEmbeddings)
        rope = RotaryTable(headDim: config.headDim, maxPosition: self.capacity, theta: config.ropeTheta)
        self.parameters = parameters
        self.rows = rows
        lengths = Array(repeating: 0, count: rows)
        let kvDim = config.numKeyValueHeads * config.headDim
        for _ in 0..<config.numHiddenLayers {
            keys.append(FloatBuffer(count: rows * self.capacity * kvDim))
            values.append(FloatBuffer(count: rows * self.capacity * kvDim))
        }
    }

    /// Replaces row `row` with `prompt`; returns the logits [vocab] after its last token.
    public func prefill(row: Int, prompt: [Int32]) -> [Float] {
        precondition(row >= 0 && row < rows)
        precondition(!prompt.isEmpty && prompt.count <= capacity, "prompt of \(prompt.count) tokens does not fit \(capacity)")
        let logits = forward(tokens: prompt, rowsOfTokens: [row], positions: (0..<prompt.count).map { Int32($0) }, prefill: true)
        lengths[row] = prompt.count
        return logits
    }

    /// Makes row `to` a copy of row `from` (another sample of the same prompt) without recomputing it.
    public func copyRow(_ from: Int, to: Int) {
        precondition(from >= 0 && from < rows && to >= 0 && to < rows)
        guard from != to else { return }
        let kvDim = config.numKeyValueHeads * config.headDim, n = lengths[from] * kvDim
        for l in 0..<config.numHiddenLayers {
            (keys[l].baseAddress + to * capacity * kvDim).update(from: keys[l].baseAddress + from * capacity * kvDim, count: n)
            (values[l].baseAddress + to * capacity * kvDim).update(from: values[l].baseAddress + from * capacity * kvDim, count: n)
        }
        lengths[to] = lengths[from]
    }

    /// Appends `tokens[i]` to row `rows[i]` for every i; returns logits [rows.count, vocab].
    ///
    /// A row's logits are the same bits whatever the other rows hold and however many are
    /// active: every product runs with all `rows` rows (idle ones padded), because OpenBLAS
    /// picks kernels by shape (its small-matrix kernels sum in another order), while at a fixed
    /// shape a row's result depends on nothing but that row. Attention works row by row.
    public func decode(rows active: [Int], tokens: [Int32]) -> [Float] {
        precondition(active.count == tokens.count && !active.isEmpty, "one token per active row")
        precondition(Set(active).count == active.count, "a row appears twice")
        for r in active { precondition(lengths[r] < capacity, "row \(r) is full (\(capacity) tokens)") }
        let pad = rows - active.count
        let logits = forward(tokens: tokens + Array(repeating: tokens[0], count: pad), rowsOfTokens: active,
                             positions: active.map { Int32(lengths[$0]) } + Array(repeating: 0, count: pad), prefill: false)
        for r in active { lengths[r] += 1 }
        return Array(logits[0..<(active.count * config.vocabSize)])
    }

    /// One forward over `tokens`: for a prefill, the prompt of one row (causal attention among
    /// them, logits of the last only); for a decode, one token per row of `rowsOfTokens`
    /// (logits of each), then padding tokens that attend to nothing and are not cached.
    private func forward(tokens: [Int32], rowsOfTokens: [Int], positions: [Int32], prefill: Bool) -> [Float] {
        let c = config.hiddenSize, hd = config.headDim, inter = config.intermediateSize
        let heads = config.numAttentionHeads, kvHeads = config.numKeyValueHeads
        let qDim = heads * hd, kvDim = kvHeads * hd, vocab = config.vocabSize
        let t = tokens.count
        let headRows = prefill ? 1 : t
        let real = prefill ? t : rowsOfTokens.count  // decode tokens that belong to a row
        let longest = prefill ? t : rowsOfTokens.map { lengths[$0] + 1 }.max()!
        let prefillShape = AttentionShape(heads: heads, kvHeads: kvHeads, headDim: hd, sequenceStarts: [0, t])
        // Prefill attention a query block at a time: no heads × t² probabilities, no masked half computed.
        let attentionScratch = prefill ? prefillShape.blockScratchCount : decodeScratchCount(heads: heads, kvHeads: kvHeads, longest: longest)
        var next = 0
        func slot(_ n: Int) -> Int { defer { next += (n + 15) & ~15 }; return next }
        let x = slot(t * c), ln = slot(t * c), rstd = slot(t), q = slot(t * qDim), k = slot(t * kvDim), v = slot(t * kvDim)
        let att = slot(t * qDim), gateUp = slot(t * 2 * inter), h = slot(t * inter), scratch = slot(attentionScratch)
        let logitsSlot = slot(headRows * vocab)
        let a = work.reserve(next)
        let w = parameters
        let eps = Float(config.rmsNormEps)
        for i in 0..<t { (a + x + i * c).update(from: w + layout.embedding + Int(tokens[i]) * c, count: c) }
        let row0 = rowsOfTokens[0]
        let cacheOffsets = rowsOfTokens.map { $0 * capacity * kvDim }
        let visible = rowsOfTokens.map { lengths[$0] + 1 }
        // Padding rows' attention output stays zero (their products are computed, never used).
        if real < t { (a + att + real * qDim).update(repeating: 0, count: (t - real) * qDim) }
        positions.withUnsafeBufferPointer { pos in
            for l in 0..<config.numHiddenLayers {
                let o = layout.layers[l]
                rmsnormForward(a + ln, a + rstd, a + x, w + o.inputNorm, rows: t, width: c, eps: eps)
                linearForward(a + q, a + ln, w + o.q, o.qBias.map { w + $0 }, rows: t, inFeatures: c, outFeatures: qDim)
                linearForward(a + k, a + ln, w + o.k, o.kBias.map { w + $0 }, rows: t, inFeatures: c, outFeatures: kvDim)
                linearForward(a + v, a + ln, w + o.v, o.vBias.map { w + $0 }, rows: t, inFeatures: c, outFeatures: kvDim)
                ropeApply(a + q, positions: pos.baseAddress!, table: rope, rows: t, heads: heads, inverse: false)
                ropeApply(a + k, positions: pos.baseAddress!, table: rope, rows: t, heads: kvHeads, inverse: false)
                let kc = keys[l].baseAddress, vc = values[l].baseAddress
                if prefill {
                    // The prompt's keys and values are the cache of its row; attention among them is causal.
                    (kc + row0 * capacity * kvDim).update(from: a + k, count: t * kvDim)
                    (vc + row0 * capacity * kvDim).update(from: a + v, count: t * kvDim)
                    attentionForward(a + att, a + scratch, a + q, a + k, a + v, shape: prefillShape, keepProbabilities: false)
                } else {
                    for i in 0..<real {
                        let p = Int(positions[i])
                        (kc + cacheOffsets[i] + p * kvDim).update(from: a + k + i * kvDim, count: kvDim)
                        (vc + cacheOffsets[i] + p * kvDim).update(from: a + v + i * kvDim, count: kvDim)
                    }
                    cachedAttention(a + att, a + q, keys: kc, values: vc, cacheOffsets: cacheOffsets, visible: visible,
                                    heads: heads, kvHeads: kvHeads, headDim: hd, scratch: a + scratch)
                }
                linearForward(a + x, a + att, w + o.o, nil, rows: t, inFeatures: qDim, outFeatures: c, accumulate: true)
                rmsnormForward(a + ln, a + rstd, a + x, w + o.postAttentionNorm, rows: t, width: c, eps: eps)
                linearForward(a + gateUp, a + ln, w + o.gate, nil, rows: t, inFeatures: c, outFeatures: 2 * inter)
                swigluForward(a + h, a + gateUp, rows: t, width: inter)
                linearForward(a + x, a + h, w + o.down, nil, rows: t, inFeatures: inter, outFeatures: c, accumulate: true)
            }
        }
        // Only the rows whose next token is wanted go through the LM head.
        let first = prefill ? t - 1 : 0
        rmsnormForward(a + ln, a + rstd, a + x + first * c, w + layout.finalNorm, rows: headRows, width: c, eps: eps)
        linearForward(a + logitsSlot, a + ln, w + layout.lmHead, nil, rows: headRows, inFeatures: c, outFeatures: vocab)
        return Array(UnsafeBufferPointer(start: a + logitsSlot, count: headRows * vocab))
    }
}
