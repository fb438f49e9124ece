// redi-ps data synth: the built-in verifiable reasoning task's files.
import ArgumentParser
import Foundation
import ReasoningTask

struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "data", abstract: "Make training data.",
                                                    subcommands: [SynthCommand.self])
}

struct SynthCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "synth",
        abstract: "Multi-step arithmetic word problems with teacher traces: sft.jsonl, pref.jsonl, test.jsonl, stats.json.")

    @Option(help: "Training problems.")
    var problems: Int
    @Option(help: "Teacher traces sampled per problem.")
    var tracesPerProblem = 4
    @Option(help: "Held-out test problems (disjoint from training).")
    var testProblems = 100
    @Option(help: "Seed.")
    var seed: UInt64 = 0
    @Option(help: "Digits per operand (difficulty).")
    var digits = 2
    @Option(help: "Operations per problem (difficulty).")
    var steps = 3
    @Option(help: "Probability the teacher slips at each step.")
    var errorRate = 0.15
    @Option(help: "Output directory.")
    var out: String

    func validate() throws {
        guard problems > 0 else { throw ValidationError("--problems must be positive") }
        guard tracesPerProblem >= 2 else { throw ValidationError("--traces-per-problem must be at least 2 to find correct and incorrect traces") }
        guard testProblems >= 0 else { throw ValidationError("--test-problems must be ≥ 0") }
        guard (1...6).contains(digits) else { throw ValidationError("--digits must be 1…6") }
        guard (1...12).contains(steps) else { throw ValidationError("--steps must be 1…12") }
        guard (0...1).contains(errorRate) else { throw ValidationError("--error-rate must be in [0, 1]") }
    }

    func run() throws {
        let stats = try Synthesis.run(SynthesisSettings(problems: problems, tracesPerProblem: tracesPerProblem, testProblems: testProblems,
                                                        seed: seed, digits: digits, steps: steps, errorRate: errorRate),
                                      to: URL(fileURLWithPath: out))
        print(String(format: "wrote %@: %d sft, %d preference, %d test records; teacher accuracy %.3f",
                     out, stats.sftRecords, stats.preferenceRecords, stats.testProblems, stats.teacherAccuracy))
    }
}
