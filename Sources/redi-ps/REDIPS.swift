// redi-ps: the command-line entry point. Each subcommand is one ParsableCommand type in its
// own file; options shared between them live in OptionGroups below.
import ArgumentParser
import BLASKernel
import Foundation
import Numerics

@main
struct REDIPS: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "redi-ps",
        abstract: "Reinforcement Distillation (REDI) post-training on CPU machines.",
        subcommands: [
            InitCommand.self, ConvertCommand.self, TokenizeCommand.self, DetokenizeCommand.self,
            LogprobsCommand.self, GradCommand.self, GenerateCommand.self, RenderCommand.self,
            DataCommand.self, EvalCommand.self, KeysCommand.self, CoordinateCommand.self, ServeCommand.self, PlanCommand.self, DoctorCommand.self
        ])

    /// The BLAS kernel is chosen and logged before anything runs (see `BLASStartup`).
    static func main() {
        BLASStartup.start(program: "redi-ps")
        main(nil)
    }
}

/// `--model DIR`: a Hugging Face checkpoint directory.
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "Checkpoint directory (config.json + model.safetensors + tokenizer files) or a .gguf file.")
    var model: String

    @Option(name: .long, help: "Maximum tokens per forward pass; larger uses more memory.")
    var microBatchTokens = 8192

    func validate() throws {
        guard microBatchTokens > 0 else { throw ValidationError("--micro-batch-tokens must be positive") }
    }
}
