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
    /// [layers][rows] → [rowCapacity[row], kvDim]: each row's cache grows with its sequence
    /// (doubling, up to `capacity`), so memory follows the answers actually generated rather
    /// than rows × the longest allowed (32 rows × 32k tokens of a 1.5B model would be ~60 GB).
    private var keys: [[FloatBuffer]] = [], values: [[FloatBuffer]] = []
    private var rowCapacity: [Int]
    /// Tokens in each row's cache.
    public private(set) var lengths: [Int]
    private var work = GrowableBuffer()
    let kvDim: Int

    /// Bytes the KV cache holds now (keys and values of every layer and row).
    public var cacheBytes: Int { rowCapacity.reduce(0, +) * kvDim * 2 * config.numHiddenLayers * MemoryLayout<Float>.stride }

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
        rowCapacity = Array(repeating: 0, count: rows)
        kvDim = config.numKeyValueHeads * config.headDim
        let empty = FloatBuffer(count: 0)
        keys = Array(repeating: Array(repeating: empty, count: rows), count: config.numHiddenLayers)
        values = keys
    }

    /// Makes row `row`'s cache hold at least `tokens` tokens, keeping its first `lengths[row]`.
    private func reserve(row: Int, tokens: Int) {
        guard rowCapacity[row] < tokens else { return }
        let grown = min(capacity, max(tokens, 2 * rowCapacity[row], 256))
        let kept = lengths[row] * kvDim
        func grow(_ old: FloatBuffer) -> FloatBuffer {
            let bigger = FloatBuffer(count: grown * kvDim)
            bigger.baseAddress.update(from: old.baseAddress, count: kept)
            return bigger
        }
        for l in 0..<config.numHiddenLayers {
            keys[l][row] = grow(keys[l][row])
            values[l][row] = grow(values[l][row])
        }
        rowCapacity[row] = grown
    }

    /// Replaces row `row` with `prompt`; returns the logits [vocab] after its last token.
    public func prefill(row: Int, prompt: [Int32]) -> [Float] {
        precondition(row >= 0 && row < rows)
        precondition(!prompt.isEmpty && prompt.count <= capacity, "prompt of \(prompt.count) tokens does not fit \(capacity)")
        lengths[row] = 0
        reserve(row: row, tokens: prompt.count)
        let logits = forward(tokens: prompt, rowsOfTokens: [row], positions: (0..<prompt.count).map { Int32($0) }, prefill: true)
        lengths[row] = prompt.count
        return logits
    }

    /// Makes row `to` a copy of row `from` (another sample of the same prompt) without recomputing it.
    public func copyRow(_ from: Int, to: Int) {
        precondition(from >= 0 && from < rows && to >= 0 && to < rows)
        guard from != to else { return }
        lengths[to] = 0
        reserve(row: to, tokens: lengths[from])
        let n = lengths[from] * kvDim
        for l in 0..<config.numHiddenLayers {
            keys[l][to].baseAddress.update(from: keys[l][from].baseAddress, count: n)
            values[l][to].baseAddress.update(from: values[l][from].baseAddress, count: n)
        }
        lengths[to] = lengths[from]
    }

    /// Appends `tokens[i]` to row `rows[i]` for every i; returns logits [rows.count, vocab].
    ///
    /// A row's logits are the same bits whatever the other rows hold, how many are active and
    /// where in the batch the row sits (for a given number of cache rows): every product goes
    /// through `rowStableLinearForward`, whose per-row arithmetic the kernel self-test checks
    /// (on kernels that allow one product over the batch, it always runs over all cache rows,
    /// so its shape never changes: OpenBLAS picks code paths by shape), and attention works row
    /// by row.
    public func decode(rows active: [Int], tokens: [Int32]) -> [Float] {
        precondition(active.count == tokens.count && !active.isEmpty, "one token per active row")
        precondition(Set(active).count == active.count, "a row appears twice")
        for r in active {
            precondition(lengths[r] < capacity, "row \(r) is full (\(capacity) tokens)")
            reserve(row: r, tokens: lengths[r] + 1)
        }
        let logits = forward(tokens: tokens, rowsOfTokens: active, positions: active.map { Int32(lengths[$0]) }, prefill: false)
        for r in active { lengths[r] += 1 }
        return logits
    }

    /// One forward over `tokens`: for a prefill, the prompt of one row (causal attention among
    /// them, logits of the last only); for a decode, one token per row of `rowsOfTokens`
    /// (logits of each). Products run on the rows padded to a multiple of `rowStableBlock`;
    /// padding rows attend to nothing, are not cached and their outputs are never read.
    private func forward(tokens: [Int32], rowsOfTokens: [Int], positions: [Int32], prefill: Bool) -> [Float] {
        let c = config.hiddenSize, hd = config.headDim, inter = config.intermediateSize
        let heads = config.numAttentionHeads, kvHeads = config.numKeyValueHeads
        let qDim = heads * hd, vocab = config.vocabSize
        let real = tokens.count
        // Rows every product runs on: a prompt's, or for a decode the active rows in 16-row
        // blocks, or every cache row when the batch is one product (a fixed shape).
        let t = ((prefill || !RowStableProducts.wholeBatch ? real : rows) + rowStableBlock - 1) / rowStableBlock * rowStableBlock
        let headRows = prefill ? 1 : real, headPadded = prefill ? rowStableBlock : t  // the LM head's rows: the same shape rule
        let longest = prefill ? real : rowsOfTokens.map { lengths[$0] + 1 }.max()!
        let prefillShape = AttentionShape(heads: heads, kvHeads: kvHeads, headDim: hd, sequenceStarts: [0, real])
        // Prefill attention a query block at a time: no heads × t² probabilities, no masked half computed.
        let attentionScratch = prefill ? prefillShape.blockScratchCount : decodeScratchCount(heads: heads, kvHeads: kvHeads, longest: longest)
        var next = 0
        func slot(_ n: Int) -> Int { defer { next += (n + 15) & ~15 }; return next }
        let x = slot(t * c), ln = slot(max(t, headPadded) * c), rstd = slot(max(t, headPadded)), q = slot(t * qDim), k = slot(t * kvDim)
        let v = slot(t * kvDim), att = slot(t * qDim), gateUp = slot(t * 2 * inter), h = slot(t * inter), scratch = slot(attentionScratch)
        let logitsSlot = slot(headPadded * vocab), products = slot(rowStableScratchCount(inFeatures: min(c, qDim, inter)))
        let a = work.reserve(next)
        let w = parameters
        let eps = Float(config.rmsNormEps)
        func linear(_ y: Int, _ input: Int, _ weight: Int, _ bias: Int?, rows: Int, from: Int, to: Int, accumulate: Bool = false) {
            rowStableLinearForward(a + y, a + input, w + weight, bias.map { w + $0 }, rows: rows, inFeatures: from, outFeatures: to,
                                   accumulate: accumulate, scratch: a + products)
        }
        for i in 0..<t { (a + x + i * c).update(from: w + layout.embedding + Int(tokens[i < real ? i : 0]) * c, count: c) }
        let padded = positions + Array(repeating: 0, count: t - real)
        let row0 = rowsOfTokens[0]
        let visible = rowsOfTokens.map { lengths[$0] + 1 }
        // Padding rows' attention output stays zero (their products are computed, never used).
        if real < t { (a + att + real * qDim).update(repeating: 0, count: (t - real) * qDim) }
        padded.withUnsafeBufferPointer { pos in
            for l in 0..<config.numHiddenLayers {
                let o = layout.layers[l]
                rmsnormForward(a + ln, a + rstd, a + x, w + o.inputNorm, rows: t, width: c, eps: eps)
                linear(q, ln, o.q, o.qBias, rows: t, from: c, to: qDim)
                linear(k, ln, o.k, o.kBias, rows: t, from: c, to: kvDim)
                linear(v, ln, o.v, o.vBias, rows: t, from: c, to: kvDim)
                ropeApply(a + q, positions: pos.baseAddress!, table: rope, rows: t, heads: heads, inverse: false)
                ropeApply(a + k, positions: pos.baseAddress!, table: rope, rows: t, heads: kvHeads, inverse: false)
                if prefill {
                    // The prompt's keys and values are the cache of its row; attention among them is causal.
                    keys[l][row0].baseAddress.update(from: a + k, count: real * kvDim)
                    values[l][row0].baseAddress.update(from: a + v, count: real * kvDim)
                    attentionForward(a + att, a + scratch, a + q, a + k, a + v, shape: prefillShape, keepProbabilities: false)
                } else {
                    let kc = rowsOfTokens.map { UnsafePointer(keys[l][$0].baseAddress) }, vc = rowsOfTokens.map { UnsafePointer(values[l][$0].baseAddress) }
                    for i in 0..<real {
                        let p = Int(positions[i])
                        (keys[l][rowsOfTokens[i]].baseAddress + p * kvDim).update(from: a + k + i * kvDim, count: kvDim)
                        (values[l][rowsOfTokens[i]].baseAddress + p * kvDim).update(from: a + v + i * kvDim, count: kvDim)
                    }
                    cachedAttention(a + att, a + q, keys: kc, values: vc, visible: visible,
                                    heads: heads, kvHeads: kvHeads, headDim: hd, scratch: a + scratch)
                }
                linear(x, att, o.o, nil, rows: t, from: qDim, to: c, accumulate: true)
                rmsnormForward(a + ln, a + rstd, a + x, w + o.postAttentionNorm, rows: t, width: c, eps: eps)
                linear(gateUp, ln, o.gate, nil, rows: t, from: c, to: 2 * inter)
                swigluForward(a + h, a + gateUp, rows: t, width: inter)
                linear(x, h, o.down, nil, rows: t, from: inter, to: c, accumulate: true)
            }
        }
        // Only the rows whose next token is wanted go through the LM head (a prefill's last, padded to a block).
        let first = prefill ? real - 1 : 0
        if prefill { if first > 0 { (a + x).update(from: a + x + first * c, count: c) }; (a + x + c).update(repeating: 0, count: (headPadded - 1) * c) }
        rmsnormForward(a + ln, a + rstd, a + x, w + layout.finalNorm, rows: headPadded, width: c, eps: eps)
        linear(logitsSlot, ln, layout.lmHead, nil, rows: headPadded, from: c, to: vocab)
        return Array(UnsafeBufferPointer(start: a + logitsSlot, count: headRows * vocab))
    }
}
