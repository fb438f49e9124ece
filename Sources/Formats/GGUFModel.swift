// A GGUF file as a redi-ps model: `llama`/`qwen2` metadata mapped to a LlamaConfig, tensors
// renamed to Hugging Face names and dequantised into the flat vector, llama.cpp's Q/K row
// permutation undone, and the tokenizer rebuilt from `tokenizer.ggml.*`.
import Foundation
import Model
import Numerics
import Tokenizers

public enum GGUFModel {
    /// Loads `url` with the same verification as a checkpoint directory: every tensor present
    /// with the right shape, none left over.
    public static func load(from url: URL) throws -> LoadedModel {
        try load(file: try GGUFFile(url: url))
    }

    /// The model in a parsed GGUF file.
    public static func load(file: GGUFFile) throws -> LoadedModel {
        let reader = try reader(file)
        return LoadedModel(config: reader.config, layout: reader.layout, parameters: try reader.readAll(), tokenizer: try tokenizer(file))
    }

    /// The model in a parsed GGUF file, a piece at a time (every tensor checked first). q and k
    /// come whole (llama.cpp permuted their rows per head); the pages read are dropped as it goes.
    public static func reader(_ file: GGUFFile) throws -> ModelReader {
        let path = file.url.path
        let config = try configuration(file)
        let layout = ParameterLayout(config: config)
        var remaining = Set(file.tensors.keys)
        let permute = file.metadata["general.architecture"]?.string == "llama"
        for entry in layout.entries {
            let name = ggufName(entry.name)
            guard let info = file.tensors[name] else { throw FormatError("\(path): missing tensor \"\(name)\" (for \(entry.name))") }
            guard info.shape == entry.shape || (entry.shape.count == 1 && info.count == entry.count) else {
                throw FormatError("\(path): tensor \"\(name)\" has shape \(info.shape), the metadata implies \(entry.shape)")
            }
            remaining.remove(name)
        }
        // Tied models carry no output.weight; an untied one must, and nothing else may remain.
        remaining.remove("rope_freqs.weight")
        if let extra = remaining.sorted().first {
            throw FormatError("\(path): unexpected tensor \"\(extra)\"\(remaining.count > 1 ? " (and \(remaining.count - 1) more)" : "")")
        }
        func permuted(_ name: String) -> Bool { permute && (name.hasSuffix("attn_q.weight") || name.hasSuffix("attn_k.weight")) }
        return ModelReader(config: config, layout: layout, whole: { permuted(ggufName($0.name)) }) { entry, range, destination in
            let name = ggufName(entry.name)
            try file.read(name, elements: range, into: destination.baseAddress, release: true)
            if permuted(name) {
                let heads = name.hasSuffix("attn_q.weight") ? config.numAttentionHeads : config.numKeyValueHeads
                unpermuteRows(destination.baseAddress, rows: entry.shape[0], columns: entry.shape[1], heads: heads)
            }
        }
    }

    /// Hugging Face → llama.cpp tensor names.
    static func ggufName(_ hf: String) -> String {
        switch hf {
        case "model.embed_tokens.weight": return "token_embd.weight"
        case "model.norm.weight": return "output_norm.weight"
        case "lm_head.weight": return "output.weight"
        default: break
        }
        let parts = hf.split(separator: ".")
        guard parts.count >= 5, parts[0] == "model", parts[1] == "layers" else { return hf }
        let rest = parts[3...].joined(separator: ".")
        let mapped =
            [
                "self_attn.q_proj.weight": "attn_q.weight", "self_attn.k_proj.weight": "attn_k.weight",
                "self_attn.v_proj.weight": "attn_v.weight", "self_attn.o_proj.weight": "attn_output.weight",
                "self_attn.q_proj.bias": "attn_q.bias", "self_attn.k_proj.bias": "attn_k.bias", "self_attn.v_proj.bias": "attn_v.bias",
                "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight", "mlp.down_proj.weight": "ffn_down.weight",
                "input_layernorm.weight": "attn_norm.weight", "post_attention_layernorm.weight": "ffn_norm.weight"
            ][rest] ?? rest
        return "blk.\(parts[2]).\(mapped)"
    }

    /// Inverts llama.cpp's `permute`: rows within each head were reordered from (2, half)
    /// to (half, 2) so that its interleaved RoPE applies; restore Hugging Face's order.
    static func unpermuteRows(_ w: UnsafeMutablePointer<Float>, rows: Int, columns: Int, heads: Int) {
        let perHead = rows / heads, half = perHead / 2
        var copy = [Float](UnsafeBufferPointer(start: w, count: rows * columns))
        copy.withUnsafeMutableBufferPointer { src in
            for h in 0..<heads {
                for i in 0..<half {
                    for pair in 0..<2 {
                        let from = h * perHead + i * 2 + pair, to = h * perHead + pair * half + i
                        (w + to * columns).update(from: src.baseAddress! + from * columns, count: columns)
                    }
                }
            }
        }
    }

    public static func configuration(_ file: GGUFFile) throws -> LlamaConfig {
        let m = file.metadata, path = file.url.path
        guard let arch = m["general.architecture"]?.string else { throw FormatError("\(path): no general.architecture") }
        guard arch == "llama" || arch == "qwen2" else {
            throw FormatError("\(path): architecture \"\(arch)\" is not supported (llama or qwen2)")
        }
        func int(_ key: String) throws -> Int {
            guard let v = m["\(arch).\(key)"]?.int else { throw FormatError("\(path): missing metadata \(arch).\(key)") }
            return v
        }
        let heads = try int("attention.head_count")
        let hidden = try int("embedding_length")
        guard heads > 0 else { throw FormatError("\(path): \(arch).attention.head_count must be positive") }
        let vocab = m["\(arch).vocab_size"]?.int ?? m["tokenizer.ggml.tokens"]?.array?.count
        guard let vocab else { throw FormatError("\(path): cannot tell the vocabulary size") }
        let ropeDim = m["\(arch).rope.dimension_count"]?.int
        do {
            return try LlamaConfig(
                modelType: arch, hiddenSize: hidden, intermediateSize: try int("feed_forward_length"),
                numHiddenLayers: try int("block_count"), numAttentionHeads: heads,
                numKeyValueHeads: m["\(arch).attention.head_count_kv"]?.int ?? heads, vocabSize: vocab,
                maxPositionEmbeddings: try int("context_length"),
                // The file stores eps as fp32; round to the decimal Hugging Face configs carry.
                rmsNormEps: Double(String(format: "%.6g", m["\(arch).attention.layer_norm_rms_epsilon"]?.double ?? 1e-5))!,
                ropeTheta: m["\(arch).rope.freq_base"]?.double ?? 10000,
                tieWordEmbeddings: file.tensors["output.weight"] == nil,
                headDim: ropeDim ?? hidden / heads,
                bosTokenId: m["tokenizer.ggml.bos_token_id"]?.int, eosTokenId: m["tokenizer.ggml.eos_token_id"]?.int,
                padTokenId: m["tokenizer.ggml.padding_token_id"]?.int)
        } catch let e as ConfigError {
            throw FormatError("\(path): \(e.description)")
        }
    }

    /// The tokenizer described by a GGUF file's `tokenizer.ggml.*` metadata, if any.
    public static func tokenizer(_ file: GGUFFile) throws -> (any Tokenizer)? {
        let m = file.metadata, path = file.url.path
        guard let model = m["tokenizer.ggml.model"]?.string else { return nil }
        guard model == "gpt2" else { throw FormatError("\(path): tokenizer model \"\(model)\" is not supported (byte-level BPE \"gpt2\")") }
        guard let tokens = m["tokenizer.ggml.tokens"]?.array?.compactMap(\.string) else { throw FormatError("\(path): no tokenizer.ggml.tokens") }
        let merges = try (m["tokenizer.ggml.merges"]?.array ?? []).compactMap(\.string).map { line -> (String, String) in
            let parts = line.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else { throw FormatError("\(path): merge \"\(line)\" is not two tokens") }
            return (String(parts[0]), String(parts[1]))
        }
        guard tokens.count <= maximumVocabularySize else { throw FormatError("\(path): \(tokens.count) tokens, more than \(maximumVocabularySize)") }
        let types = m["tokenizer.ggml.token_type"]?.array?.compactMap(\.int) ?? []
        guard types.count <= tokens.count else {
            throw FormatError("\(path): tokenizer.ggml.token_type has \(types.count) entries for \(tokens.count) tokens")
        }
        // 3 = control, 4 = user-defined: both are matched whole in text.
        let special = types.enumerated().filter { $0.element == 3 || $0.element == 4 }.map { Int32($0.offset) }
        let pre: PreTokenizer
        switch m["tokenizer.ggml.pre"]?.string ?? "default" {
        case "smollm": pre = .smollm
        case "qwen2": pre = .qwen2
        case "gpt-2", "default", "gpt2": pre = .gpt2
        case let other: throw FormatError("\(path): pre-tokenizer \"\(other)\" is not supported (smollm, qwen2, gpt-2)")
        }
        func id(_ key: String) throws -> Int32? {
            guard let v = m[key]?.int else { return nil }
            guard v >= 0, v < tokens.count else { throw FormatError("\(path): \(key) \(v) is outside the \(tokens.count) tokens") }
            return Int32(v)
        }
        return BPETokenizer(
            tokens: tokens, merges: merges, special: special, preTokenizer: pre,
            bos: try id("tokenizer.ggml.bos_token_id"), eos: try id("tokenizer.ggml.eos_token_id"),
            pad: try id("tokenizer.ggml.padding_token_id"),
            addsBOS: m["tokenizer.ggml.add_bos_token"]?.bool ?? false,
            chatTemplate: m["tokenizer.chat_template"]?.string)
    }
}
