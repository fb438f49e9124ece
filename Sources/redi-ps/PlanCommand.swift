// redi-ps plan: each role's predicted peak memory for a recipe, and whether a cluster fits it.
import ArgumentParser
import ClusterCore
import Formats
import Foundation
import Model
import Tokenizers

struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Predict each role's peak memory for a recipe (coordinator, servers, workers), and whether N machines of M GiB fit it.",
        discussion: "Reads the model's configuration only. Every role logs its measured peak RSS when a run ends, to compare.")

    @Option(help: "Run recipe (YAML).") var recipe: String
    @Option(help: "A config.json (or preset name) to plan for instead of the recipe's model, e.g. cluster/configs/qwen2.5-math-1.5b.json.")
    var config: String?
    @Option(help: "Training sequence length in tokens (default: each stage's max_length, else 2048).") var sequenceLength: Int?
    @Option(help: "Machines to place the run on (with --memory-gib).") var machines: Int?
    @Option(help: "Memory per machine in GiB.") var memoryGib: Double?

    func validate() throws {
        if let s = sequenceLength, s < 1 { throw ValidationError("--sequence-length must be positive") }
        if (machines == nil) != (memoryGib == nil) { throw ValidationError("give --machines and --memory-gib together") }
        if let m = machines, m < 1 { throw ValidationError("--machines must be positive") }
        if let g = memoryGib, !(g > 0) { throw ValidationError("--memory-gib must be positive") }
    }

    func run() throws {
        let r = try wrap { try Recipe.load(recipe) }
        var config: LlamaConfig
        if let path = self.config, !LlamaConfig.presetNames.contains(path) {
            config = try LlamaConfig.load(from: URL(fileURLWithPath: path))
        } else if self.config == nil, let path = r.model.path {
            config = try loadConfig(path)
        } else {
            let name = self.config ?? r.model.initialize!
            let vocabulary = try r.model.trainTokenizer ?? (r.model.tokenizer.flatMap { try loadTokenizer($0) } ?? ByteTokenizer()).vocabularySize
            config =
                try LlamaConfig.preset(name, vocabSize: vocabulary, bos: nil, eos: nil, pad: nil)
                ?? LlamaConfig.load(from: URL(fileURLWithPath: name))
        }
        config = r.model.applyingOverrides(to: config)
        let length = sequenceLength ?? r.stages.compactMap(\.maxLength).max() ?? 2048
        let plan = MemoryPlan(recipe: r, config: config, sequenceLength: length)
        func gib(_ b: Int) -> String { String(format: "%.2f GiB", Double(b) / Double(1 << 30)) }
        print("\(recipe): \(ParameterLayout(config: config).totalCount) parameters, sequences of \(length) tokens")
        for (role, n) in zip(plan.roles, plan.counts) {
            print("\(role.name) ×\(n): \(gib(role.bytes)) peak each")
            // A term of no bytes is said too (what is kept on disk instead of in memory).
            for (what, bytes) in role.terms { print("    \((bytes > 0 ? gib(bytes) : "–").padding(toLength: 12, withPad: " ", startingAt: 0)) \(what)") }
        }
        if plan.shorterSequencesCost > 0 {
            print("    (shorter sequences can cost a worker up to \(gib(plan.shorterSequencesCost)) more: attention probabilities are kept while they fit; give --sequence-length)")
        }
        let total = zip(plan.roles, plan.counts).reduce(0) { $0 + $1.0.bytes * $1.1 }
        print("all processes: \(gib(total))")
        if let machines, let memoryGib {
            let bytes = Int(memoryGib * Double(1 << 30))
            if let placed = plan.placement(machines: machines, bytes: bytes) {
                print("fits \(machines) × \(memoryGib) GiB:")
                for (i, names) in placed.enumerated() { print("    machine \(i): \(names.joined(separator: ", "))") }
            } else {
                print("does not fit \(machines) × \(memoryGib) GiB")
                throw ExitCode(3)
            }
        }
    }
}
