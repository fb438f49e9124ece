// Autoregressive decoding with a KV cache: one prompt prefilled once, then `batch` samples
// decoded together (one row each), so the weights stream through the cache once per step
// for all samples. Not for training: no activations are kept.
import Numerics

/// Next-token logits for a batch of sequences that share a prompt.
public final class Generator {
    public let config: LlamaConfig
    public let layout: ParameterLayout
    let rope: RotaryTable
    let parameters: UnsafePointer<Float>
    public let batch: Int
    public let capacity: Int
    /// [layers][batch, capacity, kvDim]
    private var keys: [FloatBuffer] = [], values: [FloatBuffer] = []
    public private(set) var length = 0
    private var work = GrowableBuffer()

    /// - Parameters:
    ///   - parameters: the flat vector; must outlive the generator.
    ///   - capacity: maximum total tokens (prompt + generated) per sequence.
    public init(config: LlamaConfig, parameters: UnsafePointer<Float>, batch: Int, capacity: Int) {
        precondition(batch >= 1 && capacity >= 1)
        self.config = config
        layout = ParameterLayout(config: config)
        rope = RotaryTable(headDim: config.headDim, maxPosition: min(capacity, config.maxPositionEmbeddings), theta: config.ropeTheta)
        self.parameters = parameters
        self.batch = batch
        self.capacity = min(capacity, config.maxPositionEmbeddings)
        let kvDim = config.numKeyValueHeads * config.headDim
        for _ in 0..<config.numHiddenLayers {
            keys.append(FloatBuffer(count: batch * self.capacity * kvDim))
            values.append(FloatBuffer(count: batch * self.capacity * kvDim))
        }
    }

    /// Runs the prompt through the model for every batch row; returns logits [vocab] after its last token.
    public func prefill(_ prompt: [Int32]) -> [Float] {
        precondition(!prompt.isEmpty && prompt.count <= capacity, "prompt of \(prompt.count) tokens does not fit \(capacity)")
        length = 0
        let logits = step(rows: 1, tokens: prompt, cacheRow: 0)
        // Copy row 0's cache to every other sample.
        let kvDim = config.numKeyValueHeads * config.headDim
        for l in 0..<config.numHiddenLayers {
            for b in 1..<batch {
                (keys[l].baseAddress + b * capacity * kvDim).update(from: keys[l].baseAddress, count: prompt.count * kvDim)
                (values[l].baseAddress + b * capacity * kvDim).update(from: values[l].baseAddress, count: prompt.count * kvDim)
            }
        }
        length = prompt.count
        return logits
    }

    /// Appends one token per batch row; returns logits [batch, vocab].
    public func decode(_ tokens: [Int32]) -> [Float] {
        precondition(tokens.count == batch, "one token per sequence")
        precondition(length < capacity, "generator is full (\(capacity) tokens)")
        let logits = step(rows: batch, tokens: tokens, cacheRow: nil)
        length += 1
        return logits
    }

    /// Forward for either one sequence's `tokens` (prefill, rows = 1) or one token per batch row.
    private func step(rows: Int, tokens: [Int32], cacheRow: Int?) -> [Float] {
        let c = config.hiddenSize, hd = config.headDim, inter = config.intermediateSize
        let heads = config.numAttentionHeads, kvHeads = config.numKeyValueHeads
        let qDim = heads * hd, kvDim = kvHeads * hd, vocab = config.vocabSize
        let t = tokens.count                     // tokens in this forward
        let prefill = cacheRow != nil
        var next = 0
        func slot(_ n: Int) -> Int { defer { next += (n + 15) & ~15 }; return next }
        let x = slot(t * c), ln = slot(t * c), rstd = slot(t), q = slot(t * qDim), k = slot(t * kvDim), v = slot(t * kvDim)
        let att = slot(t * qDim), gateUp = slot(t * 2 * inter), h = slot(t * inter), scores = slot(capacity)
        let logitsSlot = slot((prefill ? 1 : t) * vocab)
        let a = work.reserve(next)
        let w = parameters
        let eps = Float(config.rmsNormEps)
        let positions: [Int32] = prefill ? (0..<t).map { Int32($0) } : Array(repeating: Int32(length), count: t)
        for i in 0..<t { (a + x + i * c).update(from: w + layout.embedding + Int(tokens[i]) * c, count: c) }
        let scale = 1 / Float(hd).squareRoot()
        positions.withUnsafeBufferPointer { pos in
            for l in 0..<config.numHiddenLayers {
                let o = layout.layers[l]
                rmsnormForward(a + ln, a + rstd, a + x, w + o.inputNorm, rows: t, width: c, eps: eps)
                linearForward(a + q, a + ln, w + o.q, o.qBias.map { w + $0 }, rows: t, inFeatures: c, outFeatures: qDim)
                linearForward(a + k, a + ln, w + o.k, o.kBias.map { w + $0 }, rows: t, inFeatures: c, outFeatures: kvDim)
                linearForward(a + v, a + ln, w + o.v, o.vBias.map { w + $0 }, rows: t, inFeatures: c, outFeatures: kvDim)
                ropeApply(a + q, positions: pos.baseAddress!, table: rope, rows: t, heads: heads, inverse: false)
                ropeApply(a + k, positions: pos.baseAddress!, table: rope, rows: t, heads: kvHeads, inverse: false)
                // Append to the cache: prefill writes positions 0..<t of row 0, decode one position per row.
                for i in 0..<t {
                    let row = prefill ? 0 : i, p = prefill ? i : length
                    (keys[l].baseAddress + (row * capacity + p) * kvDim).update(from: a + k + i * kvDim, count: kvDim)
                    (values[l].baseAddress + (row * capacity + p) * kvDim).update(from: a + v + i * kvDim, count: kvDim)
                }
                for i in 0..<t {
                    let row = prefill ? 0 : i, visible = prefill ? i + 1 : length + 1
                    let kc = keys[l].baseAddress + row * capacity * kvDim, vc = values[l].baseAddress + row * capacity * kvDim
                    for h in 0..<heads {
                        let g = h / (heads / kvHeads)
                        let qh = a + q + i * qDim + h * hd, s = a + scores
                        for p in 0..<visible {
                            let kp = kc + p * kvDim + g * hd
                            var d: Float = 0
                            for j in 0..<hd { d += qh[j] * kp[j] }
                            s[p] = d * scale
                        }
                        let sum = expInPlace(s, visible, shift: rowMax(s, visible))
                        let out = a + att + i * qDim + h * hd
                        out.update(repeating: 0, count: hd)
                        for p in 0..<visible {
                            let pw = s[p] / sum, vp = vc + p * kvDim + g * hd
                            for j in 0..<hd { out[j] += pw * vp[j] }
                        }
                    }
                }
                linearForward(a + x, a + att, w + o.o, nil, rows: t, inFeatures: qDim, outFeatures: c, accumulate: true)
                rmsnormForward(a + ln, a + rstd, a + x, w + o.postAttentionNorm, rows: t, width: c, eps: eps)
                linearForward(a + gateUp, a + ln, w + o.gate, nil, rows: t, inFeatures: c, outFeatures: 2 * inter)
                swigluForward(a + h, a + gateUp, rows: t, width: inter)
                linearForward(a + x, a + h, w + o.down, nil, rows: t, inFeatures: inter, outFeatures: c, accumulate: true)
            }
        }
        // Only the rows whose next token is wanted go through the LM head.
        let headRows = prefill ? 1 : t
        let first = prefill ? t - 1 : 0
        rmsnormForward(a + ln, a + rstd, a + x + first * c, w + layout.finalNorm, rows: headRows, width: c, eps: eps)
        linearForward(a + logitsSlot, a + ln, w + layout.lmHead, nil, rows: headRows, inFeatures: c, outFeatures: vocab)
        return Array(UnsafeBufferPointer(start: a + logitsSlot, count: headRows * vocab))
    }
}
