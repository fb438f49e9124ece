// Forward and backward of a Llama-family decoder over a packed batch, written as explicit
// layer pairs (in the spirit of llm.c). Every matrix product goes through sgemm; activations
// live in one arena reused across calls. The engine holds no weights: it reads a flat
// parameter vector and accumulates into a flat gradient vector of the same layout.
//
// Not for generation (no KV cache) and not thread-safe: one engine per worker thread.
import Numerics

/// Computes per-token log-probabilities of completion tokens and their gradients.
public final class LlamaEngine {
    public let config: LlamaConfig
    public let layout: ParameterLayout
    let rope: RotaryTable

    private var arena = GrowableBuffer()
    private var scratchArena = GrowableBuffer()
    private var saved: Saved?

    /// The most scored rows whose logits are held whole (default: 1 GiB of logits). A batch
    /// with more goes through the LM head in blocks of `lmHeadBlockRows` (default: 64 MB),
    /// forward and again in backward (recomputed), so [rows × vocab] logits (1.6 GB for 8k
    /// tokens of a 49k vocabulary) are never held whole. Blocking costs one extra head product
    /// (~3% of a SmolLM2 step), so ordinary micro-batches do not pay it.
    public var lmHeadWholeRows: Int
    public var lmHeadBlockRows: Int
    /// Attention probabilities (heads × L² per sequence and layer) are kept for backward while
    /// all layers' together fit in this many bytes (default 2 GiB); past it, backward recomputes
    /// them from q and k (one more q·kᵀ product per head), and memory is threads × L² instead:
    /// what lets a 4k-token SmolLM2 sequence fit in a few GB rather than ~18 GB of probabilities.
    public var attentionKeepBytes = 2 << 30
    /// Every layer's activations (~34 KB per token per layer for SmolLM2) are kept for backward
    /// while together they fit in this many bytes (default 4 GiB); past it, forward keeps only
    /// each layer's input and attention output, and backward recomputes the rest of the layer
    /// (norms, projections, MLP: everything but attention, the O(L²) part) just before its
    /// backward, so memory is layers × (input + attention output) + one layer's activations:
    /// what lets 8k- and 32k-token sequences train in a few GB. Recomputed activations are the
    /// same bits, so gradients do not depend on this choice.
    public var activationKeepBytes = 4 << 30

    /// Whether a batch of `tokens` keeps only each layer's input (see `activationKeepBytes`).
    public func recomputesActivations(tokens t: Int) -> Bool {
        let c = config.hiddenSize, inter = config.intermediateSize
        let qDim = config.numAttentionHeads * config.headDim, kvDim = config.numKeyValueHeads * config.headDim
        let layerFloats = t * (4 * c + 2 + 2 * qDim + 2 * kvDim + 3 * inter)
        return layerFloats * config.numHiddenLayers * MemoryLayout<Float>.size > activationKeepBytes
    }

    /// Rows per LM-head pass for `p` scored rows.
    func lmHeadRows(_ p: Int) -> Int { p > lmHeadWholeRows ? min(p, max(1, lmHeadBlockRows)) : p }

    public init(config: LlamaConfig) {
        lmHeadWholeRows = max(16, (256 << 20) / max(1, config.vocabSize))
        lmHeadBlockRows = max(16, (16 << 20) / max(1, config.vocabSize))
        self.config = config
        layout = ParameterLayout(config: config)
        rope = RotaryTable(headDim: config.headDim, maxPosition: config.maxPositionEmbeddings, theta: config.ropeTheta)
    }

    /// Where each activation of the last forward pass lives in the arena.
    struct Saved {
        let batch: PackedBatch
        let shape: AttentionShape
        let keepProbabilities: Bool
        /// Whether only each layer's input was kept (the rest of `layers` is one shared set).
        let recompute: Bool
        let recomputeOut: Int
        let layers: [LayerSlots]
        let finalInput: Int, finalNorm: Int, finalRstd: Int
        let headIn: Int, logits: Int
    }

    struct LayerSlots {
        let x, ln1, rstd1, q, k, v, probs, attn, xMid, ln2, rstd2, gateUp, h: Int

        /// The same activation slots for another layer's input and attention output.
        func with(x: Int, attn: Int) -> LayerSlots {
            LayerSlots(
                x: x, ln1: ln1, rstd1: rstd1, q: q, k: k, v: v, probs: probs, attn: attn, xMid: xMid, ln2: ln2, rstd2: rstd2,
                gateUp: gateUp, h: h)
        }
    }

    /// Where forward puts each activation of a batch in the arena, and the arena's size.
    struct ForwardPlan {
        let keep: Bool, recompute: Bool
        let layers: [LayerSlots]
        let recomputeOut: Int, finalInput: Int, finalNorm: Int, finalRstd: Int, headIn: Int, logits: Int
        let floats: Int
    }

    /// Carves the arena for `t` tokens, `p` of them scored: every layer's activations (or, past
    /// `activationKeepBytes`, each layer's input and attention output plus one shared set).
    func planForward(tokens t: Int, scored p: Int, shape: AttentionShape) -> ForwardPlan {
        let c = config.hiddenSize, inter = config.intermediateSize, vocab = config.vocabSize
        let qDim = config.numAttentionHeads * config.headDim, kvDim = config.numKeyValueHeads * config.headDim
        var next = 0
        func slot(_ n: Int) -> Int { defer { next += (n + 15) & ~15 }; return next }
        let recompute = recomputesActivations(tokens: t)
        // Recomputed layers do not run attention again, so its backward recomputes the probabilities.
        let keep = !recompute && shape.probabilityCount * config.numHiddenLayers * MemoryLayout<Float>.size <= attentionKeepBytes
        // Without kept probabilities, every layer's forward shares one per-thread scratch.
        let sharedProbs = keep ? 0 : slot(shape.blockScratchCount)
        func layerSlots() -> LayerSlots {
            LayerSlots(
                x: slot(t * c), ln1: slot(t * c), rstd1: slot(t), q: slot(t * qDim),
                k: slot(t * kvDim), v: slot(t * kvDim), probs: keep ? slot(shape.probabilityCount) : sharedProbs,
                attn: slot(t * qDim), xMid: slot(t * c), ln2: slot(t * c), rstd2: slot(t),
                gateUp: slot(t * 2 * inter), h: slot(t * inter))
        }
        var layers: [LayerSlots] = []
        if recompute {
            let work = layerSlots()
            for _ in 0..<config.numHiddenLayers { layers.append(work.with(x: slot(t * c), attn: slot(t * qDim))) }
        } else {
            for _ in 0..<config.numHiddenLayers { layers.append(layerSlots()) }
        }
        let recomputeOut = recompute ? slot(t * c) : 0
        let finalInput = slot(t * c), finalNorm = slot(t * c), finalRstd = slot(t)
        let headIn = slot(p * c), logits = slot(lmHeadRows(p) * vocab)
        return ForwardPlan(
            keep: keep, recompute: recompute, layers: layers, recomputeOut: recomputeOut, finalInput: finalInput,
            finalNorm: finalNorm, finalRstd: finalRstd, headIn: headIn, logits: logits, floats: next)
    }

    /// Backward's scratch slots for `t` tokens, `p` scored.
    struct BackwardPlan {
        let dx: Int, dln: Int, dh: Int, dGateUp: Int, dattn: Int, dq: Int, dk: Int, dv: Int
        let dHeadIn: Int, attScratch: Int, partials: Int, blockLogp: Int
        let floats: Int
    }

    func planBackward(tokens t: Int, scored p: Int, shape: AttentionShape, keepProbabilities: Bool) -> BackwardPlan {
        let c = config.hiddenSize, inter = config.intermediateSize
        let qDim = config.numAttentionHeads * config.headDim, kvDim = config.numKeyValueHeads * config.headDim
        var next = 0
        func slot(_ n: Int) -> Int { defer { next += (n + 15) & ~15 }; return next }
        let dx = slot(t * c), dln = slot(t * c), dh = slot(t * inter), dGateUp = slot(t * 2 * inter)
        let dattn = slot(t * qDim), dq = slot(t * qDim), dk = slot(t * kvDim), dv = slot(t * kvDim)
        let dHeadIn = slot(p * c), attScratch = slot(keepProbabilities ? shape.scratchCount : 2 * shape.blockScratchCount)
        let partials = slot(elementwiseThreads * c), blockLogp = slot(lmHeadRows(p))
        return BackwardPlan(
            dx: dx, dln: dln, dh: dh, dGateUp: dGateUp, dattn: dattn, dq: dq, dk: dk, dv: dv, dHeadIn: dHeadIn,
            attScratch: attScratch, partials: partials, blockLogp: blockLogp, floats: next)
    }

    /// Bytes the engine's two workspaces hold now (they grow to the largest micro-batch and stay).
    public var workspaceHeldBytes: Int { (arena.buffer.count + scratchArena.buffer.count) * MemoryLayout<Float>.size }

    /// Bytes of the two workspaces a training micro-batch of these sequences needs (forward's
    /// activations, backward's scratch), `scored` of its tokens scored: what a worker holds
    /// beyond its weights and gradients. The memory model (`redi-ps plan`) is built on it.
    public func workspaceBytes(sequenceLengths: [Int], scored: Int) -> (forward: Int, backward: Int) {
        var starts = [0]
        for n in sequenceLengths { starts.append(starts.last! + n) }
        let shape = AttentionShape(heads: config.numAttentionHeads, kvHeads: config.numKeyValueHeads, headDim: config.headDim, sequenceStarts: starts)
        let forward = planForward(tokens: starts.last!, scored: scored, shape: shape)
        let backward = planBackward(tokens: starts.last!, scored: scored, shape: shape, keepProbabilities: forward.keep)
        return (forward.floats * MemoryLayout<Float>.size, backward.floats * MemoryLayout<Float>.size)
    }

    /// Runs the model over `batch` and returns logp of every scored token, in `batch.predictRows` order.
    ///
    /// Keeps every activation needed by `backward`. Throws nothing: token ids and lengths are
    /// checked by preconditions because the data layer validates them against the config first.
    ///
    /// - Parameter parametersNeeded: called before each part of the model runs with the offset
    ///   up to which the flat vector must hold its weights (the embedding, then each block, then
    ///   the final norm and LM head: `totalCount`); a worker whose weights are still arriving
    ///   blocks there, so forward starts on the first blocks while the rest travel.
    public func forward(parameters: UnsafePointer<Float>, batch: PackedBatch, parametersNeeded: ((Int) -> Void)? = nil) -> [Float] {
        let t = batch.tokenCount, p = batch.scoredCount
        let c = config.hiddenSize, hd = config.headDim, vocab = config.vocabSize
        let shape = AttentionShape(
            heads: config.numAttentionHeads, kvHeads: config.numKeyValueHeads,
            headDim: hd, sequenceStarts: batch.sequenceStarts)
        precondition(
            shape.longest <= config.maxPositionEmbeddings,
            "sequence of \(shape.longest) tokens exceeds max_position_embeddings \(config.maxPositionEmbeddings)")

        let plan = planForward(tokens: t, scored: p, shape: shape)
        let (keep, recompute, layers, recomputeOut) = (plan.keep, plan.recompute, plan.layers, plan.recomputeOut)
        let (finalInput, finalNorm, finalRstd, headIn, logits) = (plan.finalInput, plan.finalNorm, plan.finalRstd, plan.headIn, plan.logits)
        let headRows = lmHeadRows(p)
        let a = arena.reserve(plan.floats)
        let w = parameters
        let eps = Float(config.rmsNormEps)

        // Embedding lookup into the first residual stream.
        parametersNeeded?(layout.layers.first?.q ?? layout.finalNorm)
        let x0 = layers.first.map { a + $0.x } ?? a + finalInput
        batch.tokens.withUnsafeBufferPointer { tok in
            for i in 0..<t {
                let id = Int(tok[i])
                precondition(id >= 0 && id < vocab, "token id \(id) outside vocabulary \(vocab)")
                (x0 + i * c).update(from: w + layout.embedding + id * c, count: c)
            }
        }

        batch.positions.withUnsafeBufferPointer { pos in
            for (l, s) in layers.enumerated() {
                let out = l + 1 < layers.count ? a + layers[l + 1].x : a + finalInput
                parametersNeeded?(l + 1 < layers.count ? layout.layers[l + 1].q : layout.finalNorm)
                layerForward(l, s, out: out, arena: a, parameters: w, positions: pos.baseAddress!, shape: shape, keepProbabilities: keep)
            }
        }

        parametersNeeded?(layout.totalCount)
        rmsnormForward(a + finalNorm, a + finalRstd, a + finalInput, w + layout.finalNorm, rows: t, width: c, eps: eps)
        // LM head only on rows whose next token is scored.
        batch.predictRows.withUnsafeBufferPointer { rows in
            for i in 0..<p { (a + headIn + i * c).update(from: a + finalNorm + Int(rows[i]) * c, count: c) }
        }
        // In blocks of `headRows`; with one block its probabilities stay for backward.
        var logp = [Float](repeating: 0, count: p)
        batch.predictTargets.withUnsafeBufferPointer { targets in
            logp.withUnsafeMutableBufferPointer { lp in
                for start in stride(from: 0, to: p, by: max(1, headRows)) {
                    let rows = min(headRows, p - start)
                    linearForward(a + logits, a + headIn + start * c, w + layout.lmHead, nil, rows: rows, inFeatures: c, outFeatures: vocab)
                    targetLogProbs(lp.baseAddress! + start, a + logits, targets: targets.baseAddress! + start, rows: rows, vocab: vocab)
                }
            }
        }
        saved = Saved(
            batch: batch, shape: shape, keepProbabilities: keep, recompute: recompute, recomputeOut: recomputeOut, layers: layers, finalInput: finalInput, finalNorm: finalNorm,
            finalRstd: finalRstd, headIn: headIn, logits: logits)
        return logp
    }

    /// One transformer block: `out` = block(x) with every activation written to `s`. With
    /// `attentionKept`, `s.attn` already holds this input's attention output and attention is
    /// not run again (q, k, v are, for its backward).
    private func layerForward(
        _ l: Int, _ s: LayerSlots, out: UnsafeMutablePointer<Float>, arena a: UnsafeMutablePointer<Float>,
        parameters w: UnsafePointer<Float>, positions pos: UnsafePointer<Int32>, shape: AttentionShape,
        keepProbabilities keep: Bool, attentionKept: Bool = false
    ) {
        let t = shape.sequenceStarts.last!, c = config.hiddenSize, inter = config.intermediateSize
        let qDim = config.numAttentionHeads * config.headDim, kvDim = config.numKeyValueHeads * config.headDim
        let o = layout.layers[l], eps = Float(config.rmsNormEps)
        rmsnormForward(a + s.ln1, a + s.rstd1, a + s.x, w + o.inputNorm, rows: t, width: c, eps: eps)
        linearForward(a + s.q, a + s.ln1, w + o.q, o.qBias.map { w + $0 }, rows: t, inFeatures: c, outFeatures: qDim)
        linearForward(a + s.k, a + s.ln1, w + o.k, o.kBias.map { w + $0 }, rows: t, inFeatures: c, outFeatures: kvDim)
        linearForward(a + s.v, a + s.ln1, w + o.v, o.vBias.map { w + $0 }, rows: t, inFeatures: c, outFeatures: kvDim)
        ropeApply(a + s.q, positions: pos, table: rope, rows: t, heads: config.numAttentionHeads, inverse: false)
        ropeApply(a + s.k, positions: pos, table: rope, rows: t, heads: config.numKeyValueHeads, inverse: false)
        if !attentionKept {
            attentionForward(a + s.attn, a + s.probs, a + s.q, a + s.k, a + s.v, shape: shape, keepProbabilities: keep)
        }
        linearForward(a + s.xMid, a + s.attn, w + o.o, nil, rows: t, inFeatures: qDim, outFeatures: c)
        add(a + s.xMid, a + s.x, count: t * c)
        rmsnormForward(a + s.ln2, a + s.rstd2, a + s.xMid, w + o.postAttentionNorm, rows: t, width: c, eps: eps)
        // gate_proj and up_proj are adjacent in the flat vector: one product makes [gate | up].
        linearForward(a + s.gateUp, a + s.ln2, w + o.gate, nil, rows: t, inFeatures: c, outFeatures: 2 * inter)
        swigluForward(a + s.h, a + s.gateUp, rows: t, width: inter)
        linearForward(out, a + s.h, w + o.down, nil, rows: t, inFeatures: inter, outFeatures: c)
        add(out, a + s.xMid, count: t * c)
    }

    /// Accumulates into `gradients` the gradient of Σ_i weights[i]·logp[i] for the last `forward`.
    ///
    /// - Parameters:
    ///   - weights: [P] dL/dlogp of each scored token (from the objective), in `predictRows` order.
    ///   - gradients: flat vector in `layout`, added to (not overwritten), so micro-batches accumulate.
    ///   - gradientsFinal: called as backward finishes each transformer block, with the offset
    ///     from which every gradient in the flat vector is final (blocks finish last to first;
    ///     the embedding, finished last, is covered when backward returns). Lets a worker push
    ///     a layer's gradients while backward continues below it.
    /// - Precondition: `forward` ran on these parameters and nothing ran in between.
    public func backward(
        parameters: UnsafePointer<Float>, gradients: UnsafeMutablePointer<Float>, weights: [Float],
        gradientsFinal: ((Int) -> Void)? = nil
    ) {
        guard let s = saved else { preconditionFailure("backward called without a forward pass") }
        let batch = s.batch
        let t = batch.tokenCount, p = batch.scoredCount
        precondition(weights.count == p, "one weight per scored token: \(weights.count) vs \(p)")
        let c = config.hiddenSize, hd = config.headDim, inter = config.intermediateSize
        let qDim = config.numAttentionHeads * hd, kvDim = config.numKeyValueHeads * hd, vocab = config.vocabSize
        let a = arena.buffer.baseAddress
        let w = parameters, g = gradients

        let b = planBackward(tokens: t, scored: p, shape: s.shape, keepProbabilities: s.keepProbabilities)
        let (dx, dln, dh, dGateUp, dattn, dq, dk, dv) = (b.dx, b.dln, b.dh, b.dGateUp, b.dattn, b.dq, b.dk, b.dv)
        let (dHeadIn, attScratch, partials, blockLogp) = (b.dHeadIn, b.attScratch, b.partials, b.blockLogp)
        let headRows = lmHeadRows(p)
        let d = scratchArena.reserve(b.floats)

        // LM head: probabilities become dlogits in place, then flow into the final norm's output
        // rows. In blocks when forward did not keep them all (recomputed here block by block).
        weights.withUnsafeBufferPointer { wt in
            batch.predictTargets.withUnsafeBufferPointer { targets in
                for start in stride(from: 0, to: p, by: max(1, headRows)) {
                    let rows = min(headRows, p - start)
                    if headRows < p {
                        linearForward(a + s.logits, a + s.headIn + start * c, w + layout.lmHead, nil, rows: rows, inFeatures: c, outFeatures: vocab)
                        targetLogProbs(d + blockLogp, a + s.logits, targets: targets.baseAddress! + start, rows: rows, vocab: vocab)
                    }
                    targetLogProbsBackward(
                        a + s.logits, targets: targets.baseAddress! + start,
                        weights: wt.baseAddress! + start, rows: rows, vocab: vocab)
                    linearBackward(
                        d + dHeadIn + start * c, g + layout.lmHead, nil, a + s.logits, a + s.headIn + start * c, w + layout.lmHead,
                        rows: rows, inFeatures: c, outFeatures: vocab)
                }
            }
        }
        (d + dln).update(repeating: 0, count: t * c)
        batch.predictRows.withUnsafeBufferPointer { rows in
            for i in 0..<p { (d + dln + Int(rows[i]) * c).update(from: d + dHeadIn + i * c, count: c) }
        }
        rmsnormBackward(
            d + dx, g + layout.finalNorm, d + dln, a + s.finalInput, w + layout.finalNorm, a + s.finalRstd,
            partials: d + partials, rows: t, width: c, accumulate: false)

        batch.positions.withUnsafeBufferPointer { pos in
            for l in stride(from: s.layers.count - 1, through: 0, by: -1) {
                let sl = s.layers[l], o = layout.layers[l]
                if s.recompute {
                    layerForward(
                        l, sl, out: a + s.recomputeOut, arena: a, parameters: w, positions: pos.baseAddress!,
                        shape: s.shape, keepProbabilities: s.keepProbabilities, attentionKept: true)
                }
                // MLP: out = xMid + down(silu(gate)·up).
                linearBackward(d + dh, g + o.down, nil, d + dx, a + sl.h, w + o.down, rows: t, inFeatures: inter, outFeatures: c)
                swigluBackward(d + dGateUp, d + dh, a + sl.gateUp, rows: t, width: inter)
                linearBackward(d + dln, g + o.gate, nil, d + dGateUp, a + sl.ln2, w + o.gate, rows: t, inFeatures: c, outFeatures: 2 * inter)
                rmsnormBackward(
                    d + dx, g + o.postAttentionNorm, d + dln, a + sl.xMid, w + o.postAttentionNorm, a + sl.rstd2,
                    partials: d + partials, rows: t, width: c, accumulate: true)
                // Attention: xMid = x + o_proj(attn(rope(q), rope(k), v)).
                linearBackward(d + dattn, g + o.o, nil, d + dx, a + sl.attn, w + o.o, rows: t, inFeatures: qDim, outFeatures: c)
                attentionBackward(
                    d + dq, d + dk, d + dv, scratch: d + attScratch, d + dattn, s.keepProbabilities ? UnsafePointer(a + sl.probs) : nil,
                    a + sl.q, a + sl.k, a + sl.v, shape: s.shape)
                ropeApply(d + dq, positions: pos.baseAddress!, table: rope, rows: t, heads: config.numAttentionHeads, inverse: true)
                ropeApply(d + dk, positions: pos.baseAddress!, table: rope, rows: t, heads: config.numKeyValueHeads, inverse: true)
                linearBackward(d + dln, g + o.q, o.qBias.map { g + $0 }, d + dq, a + sl.ln1, w + o.q, rows: t, inFeatures: c, outFeatures: qDim)
                linearBackward(
                    d + dln, g + o.k, o.kBias.map { g + $0 }, d + dk, a + sl.ln1, w + o.k, rows: t, inFeatures: c, outFeatures: kvDim,
                    accumulateInput: true)
                linearBackward(
                    d + dln, g + o.v, o.vBias.map { g + $0 }, d + dv, a + sl.ln1, w + o.v, rows: t, inFeatures: c, outFeatures: kvDim,
                    accumulateInput: true)
                rmsnormBackward(
                    d + dx, g + o.inputNorm, d + dln, a + sl.x, w + o.inputNorm, a + sl.rstd1,
                    partials: d + partials, rows: t, width: c, accumulate: true)
                // Everything from this block's first tensor on is final (the embedding lies before it).
                gradientsFinal?(o.q)
            }
        }

        // Embedding rows: scatter-add, split by columns so the order of additions is fixed.
        let dxp = UncheckedSendable(d + dx), ge = UncheckedSendable(g + layout.embedding)
        batch.tokens.withUnsafeBufferPointer { tok in
            let tk = UncheckedSendable(tok.baseAddress!)
            parallelRanges(c, minimumPerThread: 16) { cols in
                for i in 0..<t {
                    let row = ge.value + Int(tk.value[i]) * c, src = dxp.value + i * c
                    for j in cols { row[j] += src[j] }
                }
            }
        }
        saved = nil
    }
}

/// Forward and backward over whole flat vectors (`config`'s layout), for callers outside the
/// numeric modules.
extension LlamaEngine {
    public func forward(parameters: FloatBuffer, batch: PackedBatch, parametersNeeded: ((Int) -> Void)? = nil) -> [Float] {
        precondition(parameters.count == layout.totalCount, "the flat vector does not match the config's layout")
        return forward(parameters: UnsafePointer(parameters.baseAddress), batch: batch, parametersNeeded: parametersNeeded)
    }

    public func backward(parameters: FloatBuffer, gradients: FloatBuffer, weights: [Float], gradientsFinal: ((Int) -> Void)? = nil) {
        precondition(parameters.count == layout.totalCount && gradients.count == layout.totalCount, "the flat vectors do not match the config's layout")
        backward(parameters: parameters.baseAddress, gradients: gradients.baseAddress, weights: weights, gradientsFinal: gradientsFinal)
    }
}
