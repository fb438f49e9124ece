// redi-ps init: a randomly initialised model written as a Hugging Face checkpoint.
import ArgumentParser
import Data
import Formats
import Foundation
import Model
import Numerics
import Tokenizers
import Training

struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Write a randomly initialised model (normal std 0.02, norms 1) as a checkpoint directory.")

    @Option(help: "A preset (\(LlamaConfig.presetNames.joined(separator: ", "))) or a path to a Hugging Face config.json.")
    var config: String

    @Option(help: "Seed for the initial weights.")
    var seed: UInt64 = 0

    @Option(help: "Output checkpoint directory.")
    var out: String

    @Flag(help: "Overwrite an existing checkpoint in --out.")
    var force = false

    @Option(help: "Largest weights file, as `save_pretrained`'s max_shard_size (e.g. 5GB, 500MB, 100000): larger models are sharded.")
    var maxShardSize = "5GB"

    @Option(name: .customLong("train-tokenizer"), help: "Train a byte-level BPE tokenizer of up to this many ids on --tokenizer-data instead of using the byte tokenizer.")
    var tokenizerIDs: Int?

    @Option(help: "JSONL records (TRL formats) the tokenizer is trained on.")
    var tokenizerData: String?

    func run() throws {
        guard (tokenizerIDs == nil) == (tokenizerData == nil) else {
            throw ValidationError("--train-tokenizer and --tokenizer-data go together")
        }
        var tokenizer: any Tokenizer = ByteTokenizer()
        if let size = tokenizerIDs, let data = tokenizerData {
            let trained = try trainTokenizer(onRecordsIn: URL(fileURLWithPath: data), vocabularySize: size)
            print(String(format: "trained a tokenizer of %d ids on %d records: %.2f bytes per token", trained.tokenizer.vocabularySize, trained.records, trained.bytesPerToken))
            tokenizer = trained.tokenizer
        }
        var modelConfig: LlamaConfig
        if let preset = try LlamaConfig.preset(
            config, vocabSize: tokenizer.vocabularySize, bos: tokenizer.bosID.map(Int.init),
            eos: tokenizer.eosID.map(Int.init), pad: tokenizer.padID.map(Int.init))
        {
            modelConfig = preset
        } else if config.hasSuffix(".json") || FileManager.default.fileExists(atPath: config) {
            modelConfig = try LlamaConfig.load(from: URL(fileURLWithPath: config))
        } else {
            throw ValidationError("--config \(config) is neither a preset (\(LlamaConfig.presetNames.joined(separator: ", "))) nor an existing config.json")
        }
        let outURL = URL(fileURLWithPath: out)
        if !force, ["model.safetensors", "model.safetensors.index.json"].contains(where: { FileManager.default.fileExists(atPath: outURL.appendingPathComponent($0).path) }) {
            throw CLIError("\(out) already holds a checkpoint; pass --force to overwrite it")
        }
        // The tokenizer's ids fit any model with at least as many; a smaller vocabulary gets no tokenizer.
        let usable = modelConfig.vocabSize >= tokenizer.vocabularySize
        if !usable { printError("note: vocab_size \(modelConfig.vocabSize) < \(tokenizer.vocabularySize), so no tokenizer files are written") }
        let layout = ParameterLayout(config: modelConfig)
        let parameters = FloatBuffer(count: layout.totalCount)
        initializeParameters(parameters, layout: layout, seed: seed)
        guard let shardBytes = parseByteSize(maxShardSize) else { throw ValidationError("--max-shard-size \(maxShardSize): expected bytes, or a number with KB, MB or GB") }
        try Checkpoint.write(
            to: outURL, config: modelConfig, parameters: parameters,
            tokenizer: usable ? tokenizer : nil, maxShardBytes: shardBytes)
        print("wrote \(out): \(modelConfig.modelType), \(layout.totalCount) parameters, seed \(seed)")
    }
}
