// The single-process reference for cluster efficiency: SFT steps of LocalTrainer (the same
// gradient code the workers run, plus AdamW) over a JSONL file's records, global batches in
// file order, with every core's BLAS threads. cluster/experiments/efficiency.sh divides a cluster run's
// tokens/s by this.
import ArgumentParser
import Data
import Formats
import Foundation
import Numerics
import Objectives
import Tokenizers
import Training

struct TrainBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "train", abstract: "Single-process SFT steps on a file: the reference for cluster efficiency.")
    @Option(help: "Checkpoint directory or .gguf file.") var model: String
    @Option(help: "SFT records (TRL JSONL).") var data: String
    @Option(help: "Records per global batch.") var batchSize = 16
    @Option(help: "Tokens per micro-batch.") var microBatchTokens = 4096
    @Option(help: "Steps to time (after one untimed step).") var steps = 6

    func run() throws {
        let loaded = try loadModel(model)
        guard let tokenizer = loaded.tokenizer else { throw ValidationError("\(model): no tokenizer") }
        let examples = try Dataset.load(
            URL(fileURLWithPath: data), tokenizer: tokenizer, maxLength: loaded.config.maxPositionEmbeddings,
            vocabularySize: loaded.config.vocabSize
        ).examples
        guard examples.count >= batchSize * (steps + 1) else { throw ValidationError("\(data) has \(examples.count) records; need \(batchSize * (steps + 1))") }
        let trainer = LocalTrainer(
            config: loaded.config, parameters: loaded.parameters,
            settings: StageSettings(objective: .sft, learningRate: 1e-6), totalSteps: steps + 1, microBatchTokens: microBatchTokens)
        var rates: [Double] = []
        for s in 0...steps {
            let batch = Array(examples[(s * batchSize)..<((s + 1) * batchSize)])
            let t0 = now()
            let metrics = try trainer.step(batch)
            // Scored (completion) tokens, as a run's metrics count them.
            if s > 0 { rates.append(metrics["num_tokens"]! / (now() - t0)) }
        }
        let median = rates.sorted()[rates.count / 2]
        print(
            String(
                format: "redi-bench train: single process, %d BLAS threads, batch %d: median %.1f tokens/s over %d steps",
                matmulThreads, batchSize, median, steps))
    }
}
