// All parameters of a model live in one contiguous fp32 vector; this file names its ranges.
// Gradients and AdamW state use the same layout, so a chunk of the model is a range of the
// vector and sharding, pushing and checkpointing are slicing.

/// One named tensor inside the flat parameter vector.
public struct ParameterEntry: Equatable, Sendable {
    /// The Hugging Face tensor name, e.g. `model.layers.0.self_attn.q_proj.weight`.
    public let name: String
    public let shape: [Int]
    /// Offset in floats from the start of the flat vector.
    public let offset: Int
    public var count: Int { shape.reduce(1, *) }
    public var range: Range<Int> { offset..<(offset + count) }
}

/// Offsets of one transformer block's tensors.
public struct LayerOffsets: Sendable {
    public let q, k, v, o: Int
    public let qBias, kBias, vBias: Int?
    /// `up` directly follows `gate` ([intermediate, hidden] each), so they form one [2·intermediate, hidden] matrix.
    public let gate, up, down: Int
    public let inputNorm, postAttentionNorm: Int
}

/// The ordered list of a model's tensors and their places in the flat vector.
public struct ParameterLayout: Sendable {
    public let entries: [ParameterEntry]
    public let totalCount: Int
    public let embedding: Int
    public let layers: [LayerOffsets]
    public let finalNorm: Int
    /// Offset of the LM head matrix [vocab, hidden]; equals `embedding` when tied.
    public let lmHead: Int
    private let index: [String: Int]

    public init(config: LlamaConfig) {
        var entries: [ParameterEntry] = []
        var offset = 0
        func add(_ name: String, _ shape: [Int]) -> Int {
            let e = ParameterEntry(name: name, shape: shape, offset: offset)
            entries.append(e)
            offset += e.count
            return e.offset
        }
        let c = config.hiddenSize, hd = config.headDim
        let qDim = config.numAttentionHeads * hd, kvDim = config.numKeyValueHeads * hd
        embedding = add("model.embed_tokens.weight", [config.vocabSize, c])
        var layers: [LayerOffsets] = []
        for l in 0..<config.numHiddenLayers {
            let p = "model.layers.\(l)."
            let bias = config.hasQKVBias
            let q = add(p + "self_attn.q_proj.weight", [qDim, c])
            let qb = bias ? add(p + "self_attn.q_proj.bias", [qDim]) : nil
            let k = add(p + "self_attn.k_proj.weight", [kvDim, c])
            let kb = bias ? add(p + "self_attn.k_proj.bias", [kvDim]) : nil
            let v = add(p + "self_attn.v_proj.weight", [kvDim, c])
            let vb = bias ? add(p + "self_attn.v_proj.bias", [kvDim]) : nil
            let o = add(p + "self_attn.o_proj.weight", [c, qDim])
            let gate = add(p + "mlp.gate_proj.weight", [config.intermediateSize, c])
            let up = add(p + "mlp.up_proj.weight", [config.intermediateSize, c])
            let down = add(p + "mlp.down_proj.weight", [c, config.intermediateSize])
            let n1 = add(p + "input_layernorm.weight", [c])
            let n2 = add(p + "post_attention_layernorm.weight", [c])
            layers.append(
                LayerOffsets(
                    q: q, k: k, v: v, o: o, qBias: qb, kBias: kb, vBias: vb,
                    gate: gate, up: up, down: down, inputNorm: n1, postAttentionNorm: n2))
        }
        self.layers = layers
        finalNorm = add("model.norm.weight", [c])
        lmHead = config.tieWordEmbeddings ? embedding : add("lm_head.weight", [config.vocabSize, c])
        self.entries = entries
        totalCount = offset
        index = Dictionary(uniqueKeysWithValues: entries.enumerated().map { ($1.name, $0) })
    }

    public func entry(named name: String) -> ParameterEntry? { index[name].map { entries[$0] } }

    /// Offsets of every RMSNorm weight (initialised to 1, not random).
    public var normOffsets: Set<Int> {
        Set(layers.flatMap { [$0.inputNorm, $0.postAttentionNorm] } + [finalNorm])
    }

    /// Ranges of the tensors that get no weight decay, in order: every norm weight and bias
    /// (Hugging Face's Trainer, and so TRL, excludes "bias" and norm parameters from decay).
    public var undecayed: [Range<Int>] {
        entries.filter { $0.name.hasSuffix("norm.weight") || $0.name.hasSuffix(".bias") }.map(\.range)
    }

    /// `undecayed` clipped to `range` and made relative to its start (for a chunk of the vector).
    public func undecayed(within range: Range<Int>) -> [Range<Int>] {
        undecayed.compactMap { r in
            let lower = max(r.lowerBound, range.lowerBound), upper = min(r.upperBound, range.upperBound)
            return lower < upper ? (lower - range.lowerBound)..<(upper - range.lowerBound) : nil
        }
    }
}
