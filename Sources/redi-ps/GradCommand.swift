// redi-ps grad: the gradient of an objective over a whole file taken as one batch, written
// under Hugging Face tensor names, with the loss and metrics printed as JSON.
import ArgumentParser
import Data
import Formats
import Foundation
import Model
import Numerics
import Objectives
import Optimizer
import Training

/// Objective choice and hyper-parameters, shared by every command that trains.
struct ObjectiveOptions: ParsableArguments {
    enum Name: String, ExpressibleByArgument, CaseIterable { case sft, redi, dpo, simpo }

    @Option(help: "Objective: sft, redi, dpo or simpo.")
    var objective: Name

    @Option(help: "REDI: weight α of the rejected term (1 = symmetric REDI, 0 = SFT on positives).")
    var alpha: Double = 0.8

    @Option(name: .customLong("chosen-weight"), help: "REDI: weight c of the chosen term.")
    var chosenWeight: Double = 1

    @Option(help: "DPO and SimPO: inverse temperature β (default 0.1, as TRL).")
    var beta: Double?

    @Option(help: "SimPO: target reward margin γ (default 0.5, as TRL). REDI: enables negative weighting exp(γ·logp(y_l)/|y_l|).")
    var gamma: Double?

    @Option(help: "DPO: the loss, as TRL's loss_type: sigmoid (default), ipo, length_normalized.")
    var lossType: String?

    @Flag(help: "REDI with --gamma: differentiate the negative weight too (the reference code's form; default: detached, as the paper).")
    var negativeWeightGradient = false

    func validate() throws {
        if let beta, !(beta > 0) { throw ValidationError("--beta must be positive") }
        if alpha < 0 { throw ValidationError("--alpha must be non-negative") }
        if objective != .redi && objective != .simpo && gamma != nil { throw ValidationError("--gamma applies to redi and simpo only") }
        if objective != .dpo && objective != .simpo && beta != nil { throw ValidationError("--beta applies to dpo and simpo only") }
    }

    var value: Objective {
        get throws {
            do {
                return try Objective.named(
                    objective.rawValue, chosenWeight: objective == .redi ? chosenWeight : nil,
                    alpha: objective == .redi ? alpha : nil, beta: beta, gamma: gamma,
                    weightGradient: negativeWeightGradient, lossType: lossType)
            } catch let e as ObjectiveError { throw ValidationError(e.description) }
        }
    }
}

struct GradCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "grad",
        abstract: "Compute an objective's gradient over a whole JSONL file as one batch.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var dataOptions: DataOptions
    @OptionGroup var objectiveOptions: ObjectiveOptions

    @Option(help: "JSONL data: prompt/completion for sft, prompt/chosen/rejected for the others.")
    var data: String

    @Option(help: "Output safetensors file with one gradient per parameter, under Hugging Face names.")
    var out: String

    func run() throws {
        let (model, tokenizer) = try loadModelWithTokenizer(modelOptions.model)
        let examples = try loadExamples(data, model: model, tokenizer: tokenizer, options: dataOptions)
        let objective = try objectiveOptions.value
        let computer = GradientComputer(config: model.config, microBatchTokens: modelOptions.microBatchTokens)
        let gradients = FloatBuffer(count: model.layout.totalCount)
        let result: ObjectiveResult
        do {
            result = try computer.accumulate(
                parameters: model.parameters, gradients: gradients,
                examples: examples, objective: objective,
                normalizer: objective.normalizer(for: examples))
        } catch let error as ObjectiveError {
            throw CLIError("\(data): \(error.description)")
        }
        var metrics = result.metrics(for: objective)
        metrics["grad_norm"] = gradients.sumOfSquares.squareRoot()
        let tensors = model.layout.entries.map { TensorToWrite(name: $0.name, shape: $0.shape, values: gradients, at: $0.offset) }
        try writeSafetensors(tensors, to: URL(fileURLWithPath: out))
        var report: [String: Any] = metrics
        report["objective"] = objective.name
        report["examples"] = result.examples
        print(try jsonLine(report))
    }
}
