// The student's architecture, read from and written to a Hugging Face `config.json`.
// Keys are exactly Hugging Face's; anything we cannot run faithfully is rejected on decode.
import Foundation

/// Errors a user can cause with a model configuration.
public struct ConfigError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Llama-family configuration (`model_type` "llama" or "qwen2").
public struct LlamaConfig: Codable, Equatable, Sendable {
    public var modelType: String
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var numKeyValueHeads: Int
    public var vocabSize: Int
    public var maxPositionEmbeddings: Int
    public var rmsNormEps: Double
    public var ropeTheta: Double
    public var tieWordEmbeddings: Bool
    public var headDim: Int
    public var bosTokenId: Int?
    public var eosTokenId: Int?
    public var padTokenId: Int?
    /// The dtype config.json announces for the checkpoint's weights (written, not read: the
    /// weights are loaded as whatever their safetensors header says).
    public var torchDtype = "float32"

    enum CodingKeys: String, CodingKey {
        case modelType = "model_type", hiddenSize = "hidden_size", intermediateSize = "intermediate_size"
        case numHiddenLayers = "num_hidden_layers", numAttentionHeads = "num_attention_heads"
        case numKeyValueHeads = "num_key_value_heads", vocabSize = "vocab_size"
        case maxPositionEmbeddings = "max_position_embeddings", rmsNormEps = "rms_norm_eps"
        case ropeTheta = "rope_theta", tieWordEmbeddings = "tie_word_embeddings", headDim = "head_dim"
        case bosTokenId = "bos_token_id", eosTokenId = "eos_token_id", padTokenId = "pad_token_id"
        case hiddenAct = "hidden_act", attentionBias = "attention_bias", mlpBias = "mlp_bias"
        case ropeScaling = "rope_scaling", architectures, torchDtype = "torch_dtype"
    }

    public init(
        modelType: String = "llama", hiddenSize: Int, intermediateSize: Int, numHiddenLayers: Int,
        numAttentionHeads: Int, numKeyValueHeads: Int, vocabSize: Int, maxPositionEmbeddings: Int,
        rmsNormEps: Double = 1e-5, ropeTheta: Double = 10000, tieWordEmbeddings: Bool = true,
        headDim: Int? = nil, bosTokenId: Int? = nil, eosTokenId: Int? = nil, padTokenId: Int? = nil
    ) throws {
        self.modelType = modelType
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.numHiddenLayers = numHiddenLayers
        self.numAttentionHeads = numAttentionHeads
        self.numKeyValueHeads = numKeyValueHeads
        self.vocabSize = vocabSize
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.rmsNormEps = rmsNormEps
        self.ropeTheta = ropeTheta
        self.tieWordEmbeddings = tieWordEmbeddings
        self.headDim = headDim ?? (numAttentionHeads > 0 ? hiddenSize / numAttentionHeads : 0)
        self.bosTokenId = bosTokenId
        self.eosTokenId = eosTokenId
        self.padTokenId = padTokenId
        try validate()
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        modelType = try c.decode(String.self, forKey: .modelType)
        hiddenSize = try c.decode(Int.self, forKey: .hiddenSize)
        intermediateSize = try c.decode(Int.self, forKey: .intermediateSize)
        numHiddenLayers = try c.decode(Int.self, forKey: .numHiddenLayers)
        numAttentionHeads = try c.decode(Int.self, forKey: .numAttentionHeads)
        numKeyValueHeads = try c.decodeIfPresent(Int.self, forKey: .numKeyValueHeads) ?? numAttentionHeads
        vocabSize = try c.decode(Int.self, forKey: .vocabSize)
        maxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings) ?? 2048
        rmsNormEps = try c.decodeIfPresent(Double.self, forKey: .rmsNormEps) ?? 1e-6
        ropeTheta = try c.decodeIfPresent(Double.self, forKey: .ropeTheta) ?? 10000
        tieWordEmbeddings = try c.decodeIfPresent(Bool.self, forKey: .tieWordEmbeddings) ?? false
        headDim = try c.decodeIfPresent(Int.self, forKey: .headDim) ?? (numAttentionHeads > 0 ? hiddenSize / numAttentionHeads : 0)
        bosTokenId = try? c.decodeIfPresent(Int.self, forKey: .bosTokenId)
        eosTokenId = try? c.decodeIfPresent(Int.self, forKey: .eosTokenId)
        if eosTokenId == nil, let list = try? c.decodeIfPresent([Int].self, forKey: .eosTokenId) { eosTokenId = list.first }
        padTokenId = try? c.decodeIfPresent(Int.self, forKey: .padTokenId)
        if let act = try c.decodeIfPresent(String.self, forKey: .hiddenAct), act != "silu" {
            throw ConfigError("hidden_act \"\(act)\" is not supported (Llama-family models use \"silu\")")
        }
        if modelType == "llama", try c.decodeIfPresent(Bool.self, forKey: .attentionBias) == true {
            throw ConfigError("attention_bias = true is not supported for llama models")
        }
        if try c.decodeIfPresent(Bool.self, forKey: .mlpBias) == true {
            throw ConfigError("mlp_bias = true is not supported")
        }
        if c.contains(.ropeScaling), try !c.decodeNil(forKey: .ropeScaling) {
            throw ConfigError("rope_scaling is not supported (set it to null or remove it)")
        }
        try validate()
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode([modelType == "qwen2" ? "Qwen2ForCausalLM" : "LlamaForCausalLM"], forKey: .architectures)
        try c.encode(modelType, forKey: .modelType)
        try c.encode(hiddenSize, forKey: .hiddenSize)
        try c.encode(intermediateSize, forKey: .intermediateSize)
        try c.encode(numHiddenLayers, forKey: .numHiddenLayers)
        try c.encode(numAttentionHeads, forKey: .numAttentionHeads)
        try c.encode(numKeyValueHeads, forKey: .numKeyValueHeads)
        try c.encode(headDim, forKey: .headDim)
        try c.encode(vocabSize, forKey: .vocabSize)
        try c.encode(maxPositionEmbeddings, forKey: .maxPositionEmbeddings)
        try c.encode(rmsNormEps, forKey: .rmsNormEps)
        try c.encode(ropeTheta, forKey: .ropeTheta)
        try c.encode(tieWordEmbeddings, forKey: .tieWordEmbeddings)
        try c.encode("silu", forKey: .hiddenAct)
        if modelType == "llama" {
            try c.encode(false, forKey: .attentionBias)
            try c.encode(false, forKey: .mlpBias)
        }
        try c.encodeNil(forKey: .ropeScaling)
        try c.encode(torchDtype, forKey: .torchDtype)
        try c.encodeIfPresent(bosTokenId, forKey: .bosTokenId)
        try c.encodeIfPresent(eosTokenId, forKey: .eosTokenId)
        try c.encodeIfPresent(padTokenId, forKey: .padTokenId)
    }

    /// Whether q/k/v projections carry biases (Qwen2 does, Llama does not).
    public var hasQKVBias: Bool { modelType == "qwen2" }

    func validate() throws {
        guard modelType == "llama" || modelType == "qwen2" else {
            throw ConfigError("model_type \"\(modelType)\" is not supported (use \"llama\" or \"qwen2\")")
        }
        for (name, value) in [
            ("hidden_size", hiddenSize), ("intermediate_size", intermediateSize),
            ("num_hidden_layers", numHiddenLayers), ("num_attention_heads", numAttentionHeads),
            ("num_key_value_heads", numKeyValueHeads), ("vocab_size", vocabSize),
            ("max_position_embeddings", maxPositionEmbeddings), ("head_dim", headDim)
        ] where value <= 0 {
            throw ConfigError("\(name) must be positive, got \(value)")
        }
        // Bounds far above any real model keep every size computed from a hostile config.json
        // or GGUF header from overflowing or asking for absurd memory.
        for (name, value, limit) in [
            ("hidden_size", hiddenSize, 1 << 18), ("intermediate_size", intermediateSize, 1 << 20),
            ("num_hidden_layers", numHiddenLayers, 4096), ("num_attention_heads", numAttentionHeads, 4096),
            ("num_key_value_heads", numKeyValueHeads, 4096), ("vocab_size", vocabSize, 1 << 24),
            ("max_position_embeddings", maxPositionEmbeddings, 1 << 24), ("head_dim", headDim, 1 << 16)
        ] where value > limit {
            throw ConfigError("\(name) \(value) is beyond what redi-ps supports (\(limit))")
        }
        let perLayer =
            Double(hiddenSize) * Double(headDim) * Double(2 * numAttentionHeads + 2 * numKeyValueHeads)
            + 3 * Double(hiddenSize) * Double(intermediateSize)
        let total = Double(vocabSize) * Double(hiddenSize) * (tieWordEmbeddings ? 1 : 2) + Double(numHiddenLayers) * perLayer
        guard total <= Double(1 << 36) else { throw ConfigError("the configuration describes \(Int(total)) parameters; redi-ps holds at most 2^36") }
        guard numAttentionHeads % numKeyValueHeads == 0 else {
            throw ConfigError("num_attention_heads (\(numAttentionHeads)) must be a multiple of num_key_value_heads (\(numKeyValueHeads))")
        }
        guard headDim % 2 == 0 else { throw ConfigError("head_dim (\(headDim)) must be even for rotary embeddings") }
        guard rmsNormEps > 0, ropeTheta > 0 else { throw ConfigError("rms_norm_eps and rope_theta must be positive") }
        for (name, id) in [("bos_token_id", bosTokenId), ("eos_token_id", eosTokenId), ("pad_token_id", padTokenId)] {
            if let id, id < 0 || id >= vocabSize { throw ConfigError("\(name) \(id) is outside the vocabulary (\(vocabSize))") }
        }
    }

    /// Reads and validates `config.json`.
    public static func load(from url: URL) throws -> LlamaConfig {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ConfigError("cannot read \(url.path): \(error.localizedDescription)")
        }
        do { return try JSONDecoder().decode(LlamaConfig.self, from: data) } catch let e as ConfigError {
            throw ConfigError("\(url.path): \(e.description)")
        } catch let DecodingError.keyNotFound(key, _) {
            throw ConfigError("\(url.path): missing key \"\(key.stringValue)\"")
        } catch let DecodingError.typeMismatch(_, ctx) {
            throw ConfigError("\(url.path): wrong type at \(ctx.codingPath.map(\.stringValue).joined(separator: "."))")
        } catch {
            throw ConfigError("\(url.path): not a valid config.json (\(error))")
        }
    }

    /// Writes `config.json` with sorted keys, as Hugging Face does.
    public func write(to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: url)
    }
}

extension LlamaConfig {
    /// Named built-in configurations for `redi-ps init --config NAME`.
    public static func preset(_ name: String, vocabSize: Int, bos: Int?, eos: Int?, pad: Int?) throws -> LlamaConfig? {
        switch name {
        case "tiny":
            return try LlamaConfig(
                hiddenSize: 64, intermediateSize: 172, numHiddenLayers: 2, numAttentionHeads: 4,
                numKeyValueHeads: 2, vocabSize: vocabSize, maxPositionEmbeddings: 1024,
                bosTokenId: bos, eosTokenId: eos, padTokenId: pad)
        case "small":
            return try LlamaConfig(
                hiddenSize: 256, intermediateSize: 688, numHiddenLayers: 4, numAttentionHeads: 8,
                numKeyValueHeads: 4, vocabSize: vocabSize, maxPositionEmbeddings: 2048,
                bosTokenId: bos, eosTokenId: eos, padTokenId: pad)
        case "smollm2-135m":
            return try LlamaConfig(
                hiddenSize: 576, intermediateSize: 1536, numHiddenLayers: 30, numAttentionHeads: 9,
                numKeyValueHeads: 3, vocabSize: 49152, maxPositionEmbeddings: 8192,
                rmsNormEps: 1e-5, ropeTheta: 100000, tieWordEmbeddings: true,
                bosTokenId: 1, eosTokenId: 2, padTokenId: 2)
        default:
            return nil
        }
    }

    public static let presetNames = ["tiny", "small", "smollm2-135m"]
}
