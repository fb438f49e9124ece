// A checkpoint is a Hugging Face model directory: config.json, model.safetensors (or a
// sharded set with model.safetensors.index.json) and tokenizer files, which `transformers`
// opens with `from_pretrained` unchanged. Loading is a fixed pipeline: collect files →
// map names → verify every tensor is present with the right shape → copy into the flat vector.
import Foundation
import Model
import Numerics
import Tokenizers

/// A model loaded from disk: configuration, flat fp32 parameters, and its tokenizer when known.
public struct LoadedModel {
    public let config: LlamaConfig
    public let layout: ParameterLayout
    public let parameters: FloatBuffer
    public let tokenizer: (any Tokenizer)?
}

/// Opens `--model` arguments: a checkpoint directory or a `.gguf` file.
public func loadModel(_ path: String) throws -> LoadedModel {
    let url = URL(fileURLWithPath: path)
    if path.lowercased().hasSuffix(".gguf") { return try GGUFModel.load(from: url) }
    return try Checkpoint.load(from: url)
}

/// A checkpoint directory or `.gguf` file read a piece at a time (see `ModelReader`).
public func modelReader(_ path: String) throws -> ModelReader {
    let url = URL(fileURLWithPath: path)
    if path.lowercased().hasSuffix(".gguf") { return try GGUFModel.reader(try GGUFFile(url: url)) }
    return try Checkpoint.reader(url)
}

/// Only the configuration of a checkpoint directory or `.gguf` file, without reading any weights.
public func loadConfig(_ path: String) throws -> LlamaConfig {
    let url = URL(fileURLWithPath: path)
    if path.lowercased().hasSuffix(".gguf") { return try GGUFModel.configuration(try GGUFFile(url: url)) }
    return try LlamaConfig.load(from: url.appendingPathComponent("config.json"))
}

/// Only the tokenizer of a checkpoint directory or `.gguf` file, without reading any weights.
public func loadTokenizer(_ path: String) throws -> (any Tokenizer)? {
    let url = URL(fileURLWithPath: path)
    if path.lowercased().hasSuffix(".gguf") { return try GGUFModel.tokenizer(try GGUFFile(url: url)) }
    if ByteTokenizer.isStored(in: url) { return ByteTokenizer() }
    if FileManager.default.fileExists(atPath: url.appendingPathComponent("tokenizer.json").path) {
        return try BPETokenizer.load(huggingFaceDirectory: url)
    }
    return nil
}

/// A checkpoint written a range of the flat parameter vector at a time, in any order, so the
/// process writing it never holds the whole model (the coordinator streams it from the
/// servers): the Hugging Face files of `Checkpoint.write` (config, tokenizer, weights as one
/// file or shards of whole tensors + index) and, with `optimizer` metadata, AdamW's state as
/// flat vectors in `optimizer.safetensors` (with fp32 `master_weights` when the model is
/// stored as bfloat16, so resuming stays exact). Every file appears whole at `finish`.
public final class CheckpointWriter {
    public let layout: ParameterLayout
    /// The model's files: a writer and the tensors it holds (layout entries, consecutive).
    let model: [(writer: SafetensorsWriter, entries: [ParameterEntry])]
    let optimizer: SafetensorsWriter?
    let index: (url: URL, json: Data)?

    public init(
        directory: URL, config base: LlamaConfig, tokenizer: (any Tokenizer)?, dtype: StoredDType = .f32,
        maxShardBytes: Int = Checkpoint.defaultMaxShardBytes, optimizer metadata: [String: String]? = nil
    ) throws {
        var config = base
        config.torchDtype = dtype == .bf16 ? "bfloat16" : "float32"
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw FormatError("\(directory.path): cannot create checkpoint directory (\(error.localizedDescription))")
        }
        let layout = ParameterLayout(config: config)
        self.layout = layout
        try config.write(to: directory.appendingPathComponent("config.json"))
        var generation: [String: Any] = ["_from_model_config": true]
        if let bos = config.bosTokenId { generation["bos_token_id"] = bos }
        if let eos = config.eosTokenId { generation["eos_token_id"] = eos }
        if let pad = config.padTokenId { generation["pad_token_id"] = pad }
        try JSONSerialization.data(withJSONObject: generation, options: [.prettyPrinted, .sortedKeys])
            .write(to: directory.appendingPathComponent("generation_config.json"))
        try tokenizer?.writeFiles(to: directory)
        // Weights of an earlier write in another layout would be read instead of (or beside) these.
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        where name == "model.safetensors.index.json" || (name.hasPrefix("model") && name.hasSuffix(".safetensors")) {
            try FileManager.default.removeItem(at: directory.appendingPathComponent(name))
        }
        let bytes = { (e: ParameterEntry) in e.shape.reduce(1, *) * dtype.bytes }
        var shards: [[ParameterEntry]] = [[]]
        var size = 0
        for e in layout.entries {
            if size > 0, size + bytes(e) > maxShardBytes { shards.append([]); size = 0 }
            shards[shards.count - 1].append(e)
            size += bytes(e)
        }
        let names = shards.count == 1 ? ["model.safetensors"] : shards.indices.map { String(format: "model-%05d-of-%05d.safetensors", $0 + 1, shards.count) }
        model = try zip(names, shards).map { name, entries in
            (try SafetensorsWriter(url: directory.appendingPathComponent(name), tensors: entries.map { ($0.name, $0.shape) }, dtype: dtype), entries)
        }
        if shards.count > 1 {
            var weightMap: [String: String] = [:]
            for (name, entries) in zip(names, shards) { for e in entries { weightMap[e.name] = name } }
            let json: [String: Any] = ["metadata": ["total_size": layout.entries.reduce(0) { $0 + bytes($1) }], "weight_map": weightMap]
            index = (
                directory.appendingPathComponent("model.safetensors.index.json"),
                try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys])
            )
        } else {
            index = nil
        }
        optimizer = try metadata.map { metadata in
            let p = layout.totalCount
            return try SafetensorsWriter(
                url: directory.appendingPathComponent("optimizer.safetensors"),
                tensors: [("exp_avg", [p]), ("exp_avg_sq", [p])] + (dtype == .f32 ? [] : [("master_weights", [p])]),
                metadata: metadata)
        }
    }

    /// Writes flat parameters `range` (weights, and AdamW's m and v when the checkpoint has
    /// optimizer state), each a view of exactly the range's values.
    public func write(_ range: Range<Int>, weights: UnsafeBufferPointer<Float>, m: UnsafeBufferPointer<Float>, v: UnsafeBufferPointer<Float>) throws {
        precondition([weights.count, m.count, v.count].allSatisfy { $0 == range.count }, "a range's values must be the range's length")
        guard !range.isEmpty else { return }
        try write(range, weights: weights.baseAddress!, m: m.baseAddress!, v: v.baseAddress!)
    }

    /// `write` with each pointer at the range's first value.
    func write(_ range: Range<Int>, weights: UnsafePointer<Float>, m: UnsafePointer<Float>? = nil, v: UnsafePointer<Float>? = nil) throws {
        for (writer, entries) in model {
            for (k, e) in entries.enumerated() {
                let lo = max(range.lowerBound, e.offset), hi = min(range.upperBound, e.offset + e.shape.reduce(1, *))
                if lo < hi { try writer.write(tensor: k, from: lo - e.offset, weights + (lo - range.lowerBound), count: hi - lo) }
            }
        }
        if let optimizer {
            guard let m, let v else { preconditionFailure("a checkpoint with optimizer state needs m and v") }
            try optimizer.write(tensor: 0, from: range.lowerBound, m, count: range.count)
            try optimizer.write(tensor: 1, from: range.lowerBound, v, count: range.count)
            if optimizer.counts.count == 3 { try optimizer.write(tensor: 2, from: range.lowerBound, weights, count: range.count) }
        }
    }

    /// Puts every file in place (the caller has written every range).
    public func finish() throws {
        for (writer, _) in model { try writer.finish() }
        try optimizer?.finish()
        if let index { try writeAtomically(index.json, to: index.url) }
    }
}

public enum Checkpoint {
    /// Hugging Face's default `max_shard_size` ("5GB", decimal).
    public static let defaultMaxShardBytes = 5_000_000_000

    /// Writes `parameters` (in `ParameterLayout(config:)`) as a Hugging Face directory, the
    /// weights stored as `dtype` (config.json's `torch_dtype` says which): one
    /// `model.safetensors`, or, past `maxShardBytes`, `model-0000k-of-0000n.safetensors` files
    /// of whole tensors and `model.safetensors.index.json`, as `save_pretrained` shards.
    public static func write(
        to directory: URL, config: LlamaConfig, parameters: FloatBuffer,
        tokenizer: (any Tokenizer)?, dtype: StoredDType = .f32, maxShardBytes: Int = defaultMaxShardBytes
    ) throws {
        let writer = try CheckpointWriter(directory: directory, config: config, tokenizer: tokenizer, dtype: dtype, maxShardBytes: maxShardBytes)
        precondition(parameters.count == writer.layout.totalCount, "the flat vector does not match the config's layout")
        try writer.write(0..<writer.layout.totalCount, weights: parameters.baseAddress)
        try writer.finish()
    }

    /// Loads a checkpoint directory, checking every tensor against the configuration.
    ///
    /// - Throws: `FormatError` or `ConfigError` naming the file and the problem: a missing or
    ///   extra tensor, a wrong shape, a truncated file.
    public static func load(from directory: URL) throws -> LoadedModel {
        let reader = try reader(directory)
        return LoadedModel(config: reader.config, layout: reader.layout, parameters: try reader.readAll(), tokenizer: try loadTokenizer(directory.path))
    }

    /// A checkpoint directory read a piece at a time, every tensor checked first (as `load`);
    /// the pages read are dropped as it goes, so a streaming reader stays small.
    public static func reader(_ directory: URL) throws -> ModelReader {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw FormatError("\(directory.path): no such checkpoint directory")
        }
        let config = try LlamaConfig.load(from: directory.appendingPathComponent("config.json"))
        let layout = ParameterLayout(config: config)
        let files = try safetensorsFiles(in: directory)

        var found: [String: SafetensorsFile] = [:]
        for file in files {
            for name in file.tensors.keys {
                guard found[name] == nil else { throw FormatError("\(file.url.path): tensor \"\(name)\" appears in more than one file") }
                found[name] = file
            }
        }
        var source: [String: SafetensorsFile] = [:]
        for entry in layout.entries {
            guard let file = found.removeValue(forKey: entry.name) else {
                throw FormatError("\(directory.path): missing tensor \"\(entry.name)\" (shape \(entry.shape))")
            }
            let info = file.tensors[entry.name]!
            guard info.shape == entry.shape else {
                throw FormatError("\(file.url.path): tensor \"\(entry.name)\" has shape \(info.shape), config.json implies \(entry.shape)")
            }
            source[entry.name] = file
        }
        // Tied checkpoints sometimes also store lm_head.weight; accept it only as an exact copy
        // (compared as the embedding is read).
        let tiedHead = config.tieWordEmbeddings ? found.removeValue(forKey: "lm_head.weight") : nil
        if let tiedHead, tiedHead.tensors["lm_head.weight"]!.shape != [config.vocabSize, config.hiddenSize] {
            throw FormatError("\(tiedHead.url.path): lm_head.weight differs from model.embed_tokens.weight but tie_word_embeddings is true")
        }
        for name in found.keys where name.hasSuffix("rotary_emb.inv_freq") { found.removeValue(forKey: name) }
        if let extra = found.keys.sorted().first {
            throw FormatError(
                "\(found[extra]!.url.path): unexpected tensor \"\(extra)\" for a \(config.modelType) model with this config\(found.count > 1 ? " (and \(found.count - 1) more)" : "")"
            )
        }
        return ModelReader(config: config, layout: layout) { entry, range, destination in
            let file = source[entry.name]!
            try file.read(entry.name, elements: range, into: destination.baseAddress, release: true)
            if let tiedHead, entry.offset == layout.embedding {
                let head = FloatBuffer(count: range.count)
                try tiedHead.read("lm_head.weight", elements: range, into: head.baseAddress, release: true)
                guard (0..<range.count).allSatisfy({ head[$0] == destination[$0] }) else {
                    throw FormatError("\(tiedHead.url.path): lm_head.weight differs from model.embed_tokens.weight but tie_word_embeddings is true")
                }
            }
        }
    }

    static func safetensorsFiles(in directory: URL) throws -> [SafetensorsFile] {
        let single = directory.appendingPathComponent("model.safetensors")
        if FileManager.default.fileExists(atPath: single.path) { return [try SafetensorsFile(url: single)] }
        let indexURL = directory.appendingPathComponent("model.safetensors.index.json")
        guard let data = try? Data(contentsOf: indexURL) else {
            throw FormatError("\(directory.path): neither model.safetensors nor model.safetensors.index.json found")
        }
        guard let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let map = json["weight_map"] as? [String: String]
        else {
            throw FormatError("\(indexURL.path): expected a JSON object with a \"weight_map\"")
        }
        return try Set(map.values).sorted().map { try SafetensorsFile(url: directory.appendingPathComponent($0)) }
    }
}
