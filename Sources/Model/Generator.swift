// Autoregressive decoding with a KV cache of `rows` independent sequences, for continuous
// batching: any row can be (re)filled with a prompt while the others keep decoding, and one
// decode step runs every active row through the weights together, so they stream from memory
// once per step for the whole batch. Prefill goes through sgemm (the prompt's tokens are the
// rows of every product); decode attention is batched over (row, kv head) pairs. Not for
// training: no activations are kept.
import Dispatch
import Numerics

/// How the KV cache stores keys and values: fp32, or bfloat16 (half the memory; each value
/// rounded once when cached, widened to fp32 a layer at a time for attention).
public enum CachePrecision: String, CaseIterable, Sendable {
    case fp32, bf16
}

/// One layer's keys (or values) of one row: `tokens` positions of `width` values.
final class CacheRow {
    let precision: CachePrecision
    let tokens: Int, width: Int
    private let raw: UnsafeMutableRawPointer
    var bytes: Int { tokens * width * (precision == .bf16 ? 2 : 4) }

    init(_ precision: CachePrecision, tokens: Int, width: Int) {
        self.precision = precision; self.tokens = tokens; self.width = width
        raw = .allocate(byteCount: max(1, tokens * width * (precision == .bf16 ? 2 : 4)), alignment: 64)
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: max(1, bytes))
    }
    deinit { raw.deallocate() }

    /// The fp32 storage (fp32 rows only).
    var floats: UnsafeMutablePointer<Float> { precondition(precision == .fp32); return raw.assumingMemoryBound(to: Float.self) }

    /// Stores `count` positions from `source` at `position` on.
    func store(_ source: UnsafePointer<Float>, at position: Int, count: Int) {
        switch precision {
        case .fp32: (floats + position * width).update(from: source, count: count * width)
        case .bf16: narrowToBF16(source, into: raw.assumingMemoryBound(to: UInt16.self) + position * width, count: count * width)
        }
    }

    /// Widens the first `count` positions into `destination` (bf16 rows).
    func widen(into destination: UnsafeMutablePointer<Float>, count: Int) {
        widenBF16(raw.assumingMemoryBound(to: UInt16.self), into: destination, count: count * width)
    }

    /// A row of `tokens` positions holding this one's first `kept`.
    func resized(to tokens: Int, keeping kept: Int) -> CacheRow {
        let row = CacheRow(precision, tokens: tokens, width: width)
        row.raw.copyMemory(from: raw, byteCount: kept * width * (precision == .bf16 ? 2 : 4))
        return row
    }
}

/// Next-token logits for a batch of independent sequences sharing one KV cache.
public final class Generator {
    public let config: LlamaConfig
    public let layout: ParameterLayout
    let rope: RotaryTable
    /// The flat vector the generator reads; held, so it lives as long as the generator.
    let weights: FloatBuffer
    var parameters: UnsafePointer<Float> { UnsafePointer(weights.baseAddress) }
    /// Sequences the cache holds.
    public let rows: Int
    /// Tokens per row (prompt + generated).
    public let capacity: Int
    /// [layers][rows] → [rowCapacity[row], kvDim]: each row's cache grows with its sequence
    /// (doubling, up to `capacity`), so memory follows the answers actually generated rather
    /// than rows × the longest allowed (32 rows × 32k tokens of a 1.5B model would be ~60 GB).
    private var keys: [[CacheRow]] = [], values: [[CacheRow]] = []
    private var rowCapacity: [Int]
    /// Tokens in each row's cache.
    public private(set) var lengths: [Int]
    private var work = GrowableBuffer()
    /// One layer's keys and values widened to fp32 for attention (bf16 caches only).
    private var widened = GrowableBuffer()
    let kvDim: Int
    public let precision: CachePrecision

    /// Bytes the KV cache holds now (keys and values of every layer and row).
    public var cacheBytes: Int { rowCapacity.reduce(0, +) * kvDim * 2 * config.numHiddenLayers * (precision == .bf16 ? 2 : 4) }

    /// - Parameters:
    ///   - parameters: the flat vector (`config`'s layout).
    ///   - capacity: maximum total tokens (prompt + generated) per row.
    ///   - precision: how keys and values are cached (bf16: half the memory, each rounded once).
    public init(config: LlamaConfig, parameters: FloatBuffer, rows: Int, capacity: Int, precision: CachePrecision = .fp32) {
        precondition(rows >= 1 && capacity >= 1)
        self.config = config
        layout = ParameterLayout(config: config)
        precondition(parameters.count == layout.totalCount, "the flat vector does not match the config's layout")
        self.capacity = min(capacity, config.maxPositionEmbeddings)
        rope = RotaryTable(headDim: config.headDim, maxPosition: self.capacity, theta: config.ropeTheta)
        weights = parameters
        self.rows = rows
        lengths = Array(repeating: 0, count: rows)
        rowCapacity = Array(repeating: 0, count: rows)
        kvDim = config.numKeyValueHeads * config.headDim
        self.precision = precision
        let empty = CacheRow(precision, tokens: 0, width: kvDim)
        keys = Array(repeating: Array(repeating: empty, count: rows), count: config.numHiddenLayers)
        values = keys
    }

    /// Makes row `row`'s cache hold at least `tokens` tokens, keeping its first `lengths[row]`.
    private func reserve(row: Int, tokens: Int) {
        guard rowCapacity[row] < tokens else { return }
        let grown = min(capacity, max(tokens, 2 * rowCapacity[row], 256))
        for l in 0..<config.numHiddenLayers {
            keys[l][row] = keys[l][row].resized(to: grown, keeping: lengths[row])
            values[l][row] = values[l][row].resized(to: grown, keeping: lengths[row])
        }
        rowCapacity[row] = grown
    }

    /// Replaces row `row` with `prompt`; returns the logits [vocab] after its last token.
    /// The prompt runs alone, through `promptLinearForward`: its bits depend on the prompt only.
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
        let n = lengths[from]
        for l in 0..<config.numHiddenLayers {
            keys[l][to] = keys[l][from].resized(to: max(rowCapacity[from], 1), keeping: n)
            values[l][to] = values[l][from].resized(to: max(rowCapacity[from], 1), keeping: n)
        }
        rowCapacity[to] = rowCapacity[from]
        lengths[to] = n
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
        // Rows every product runs on: a prompt's, or for a decode the active rows padded to a
        // multiple of 16, or every cache row when the batch is one plain product (a fixed shape).
        let plain = RowStableProducts.layout == .plainBatch
        let t = ((prefill || !plain ? real : rows) + rowStableBlock - 1) / rowStableBlock * rowStableBlock
        let headRows = prefill ? 1 : real, headPadded = prefill ? rowStableBlock : t  // the LM head's rows: the same shape rule
        let longest = prefill ? real : rowsOfTokens.map { lengths[$0] + 1 }.max()!
        let prefillShape = AttentionShape(heads: heads, kvHeads: kvHeads, headDim: hd, sequenceStarts: [0, real])
        // Prefill attention a query block at a time: no heads × t² probabilities, no masked half computed.
        let attentionScratch = prefill ? prefillShape.blockScratchCount : decodeScratchCount(heads: heads, kvHeads: kvHeads, longest: longest)
        var next = 0
        func slot(_ n: Int) -> Int { defer { next += (n + 15) & ~15 }; return next }
        let x = slot(t * c), ln = slot(max(t, headPadded) * c), rstd = slot(max(t, headPadded)), q = slot(t * qDim), k = slot(t * kvDim)
        let v = slot(t * kvDim), att = slot(t * qDim), gateUp = slot(t * 2 * inter), h = slot(t * inter), scratch = slot(attentionScratch)
        let shapes = [(c, qDim), (c, kvDim), (qDim, c), (c, 2 * inter), (inter, c), (c, vocab)]
        let logitsSlot = slot(headPadded * vocab), products = slot(prefill ? 0 : rowStableScratchCount(rows: max(t, headPadded), products: shapes))
        let a = work.reserve(next)
        let w = parameters
        // A decode with the rows vectorised runs every product single-threaded (spread over
        // slices by `forEachPair`): set OpenBLAS to one thread once, not twice per product.
        let savedThreads = matmulThreads
        let oneThread = !prefill && !plain && savedThreads != 1
        if oneThread { setMatmulThreads(1) }
        defer { if oneThread { setMatmulThreads(savedThreads) } }
        let eps = Float(config.rmsNormEps)
        func linear(_ y: Int, _ input: Int, _ weight: Int, _ bias: Int?, rows: Int, from: Int, to: Int, accumulate: Bool = false) {
            if prefill {
                promptLinearForward(
                    a + y, a + input, w + weight, bias.map { w + $0 }, rows: rows, inFeatures: from, outFeatures: to,
                    accumulate: accumulate)
            } else {
                rowStableLinearForward(
                    a + y, a + input, w + weight, bias.map { w + $0 }, rows: rows, inFeatures: from, outFeatures: to,
                    accumulate: accumulate, scratch: a + products)
            }
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
                    keys[l][row0].store(a + k, at: 0, count: real)
                    values[l][row0].store(a + v, at: 0, count: real)
                    attentionForward(a + att, a + scratch, a + q, a + k, a + v, shape: prefillShape, keepProbabilities: false)
                } else {
                    for i in 0..<real {
                        keys[l][rowsOfTokens[i]].store(a + k + i * kvDim, at: Int(positions[i]), count: 1)
                        values[l][rowsOfTokens[i]].store(a + v + i * kvDim, at: Int(positions[i]), count: 1)
                    }
                    let (kc, vc) = cachedRows(layer: l, rows: rowsOfTokens, visible: visible)
                    cachedAttention(
                        a + att, a + q, keys: kc, values: vc, visible: visible,
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

    /// fp32 keys and values of `rows` at `layer` for attention: the cache itself, or (bf16) the
    /// visible positions widened into one layer's scratch.
    private func cachedRows(layer l: Int, rows: [Int], visible: [Int]) -> ([UnsafePointer<Float>], [UnsafePointer<Float>]) {
        guard precision == .bf16 else {
            return (rows.map { UnsafePointer(keys[l][$0].floats) }, rows.map { UnsafePointer(values[l][$0].floats) })
        }
        let base = widened.reserve(2 * visible.reduce(0, +) * kvDim)
        var kc: [UnsafePointer<Float>] = [], vc: [UnsafePointer<Float>] = [], next = base
        for (row, n) in zip(rows, visible) {
            keys[l][row].widen(into: next, count: n); kc.append(next); next += n * kvDim
            values[l][row].widen(into: next, count: n); vc.append(next); next += n * kvDim
        }
        return (kc, vc)
    }
}

extension Generator {
    /// Seconds for the matrix products of one decode step at `rows` rows (every layer's
    /// projections and the LM head, with these weights, plain products; best of 5): what
    /// OpenBLAS alone allows a decode step, attention, norms and sampling excluded. Kept
    /// beside `decode` so the two list the same products.
    public static func productSeconds(config c: LlamaConfig, parameters: FloatBuffer, rows: Int) -> Double {
        let layout = ParameterLayout(config: c)
        precondition(parameters.count == layout.totalCount, "the flat vector does not match the config's layout")
        let w = parameters.baseAddress
        let qDim = c.numAttentionHeads * c.headDim, kvDim = c.numKeyValueHeads * c.headDim
        let x = FloatBuffer(count: rows * max(2 * c.intermediateSize, qDim)), y = FloatBuffer(count: rows * max(c.vocabSize, 2 * c.intermediateSize))
        for i in 0..<x.count { x[i] = 0.01 * Float(i % 97) }
        var best = Double.infinity
        for _ in 0..<5 {
            let t0 = DispatchTime.now().uptimeNanoseconds
            for o in layout.layers {
                for (weights, k, n) in [
                    (o.q, c.hiddenSize, qDim), (o.k, c.hiddenSize, kvDim), (o.v, c.hiddenSize, kvDim), (o.o, qDim, c.hiddenSize),
                    (o.gate, c.hiddenSize, 2 * c.intermediateSize), (o.down, c.intermediateSize, c.hiddenSize)
                ] {
                    linearForward(y.baseAddress, x.baseAddress, w + weights, nil, rows: rows, inFeatures: k, outFeatures: n)
                }
            }
            linearForward(y.baseAddress, x.baseAddress, w + layout.lmHead, nil, rows: rows, inFeatures: c.hiddenSize, outFeatures: c.vocabSize)
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        return best
    }
}
