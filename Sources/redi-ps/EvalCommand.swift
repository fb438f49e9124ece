// redi-ps eval: accuracy measured like the REDI paper — k samples per problem at
// temperature 0.6 / top-p 0.95, pass@1 averaged over the samples, unbiased pass@k.
import ArgumentParser
import Data
import Evaluation
import Formats
import Foundation
import Grading
import ReasoningTask
import Tokenizers

extension AnswerRule: ExpressibleByArgument {}

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "eval", abstract: "Measure pass@1 and pass@k on a test file.")

    @Option(help: "Checkpoint directory or .gguf file.")
    var model: String
    @Option(help: "JSONL with \"prompt\" (text or message list) and \"answer\".")
    var data: String
    @Option(help: "Samples per problem (k).")
    var samples = 4
    @Option(
        help:
            "How answers are found and judged: marker (\"Answer: N\"), boxed (\\boxed{…}) and gsm8k (\"#### N\") compare text; math judges the last \\boxed{…} for mathematical equivalence (agrees with Math-Verify)."
    )
    var answerRule: AnswerRule = .marker
    @Option(help: "Evaluate only the first N problems.")
    var limit: Int?
    @Option(help: "Write the JSON report here (it is also printed).")
    var out: String?
    @Option(help: "Write one JSON line per problem with its samples here.")
    var samplesOut: String?
    @Option(help: "Text every answer starts with, appended to the prompt (the paper's \"<think>\\n\").")
    var responsePrefix = ""
    @Option(help: "Sequences decoded together (continuous batching: a finished sample's row takes the next one).")
    var batch = 32
    @OptionGroup var sampling: SamplingOptions

    func validate() throws {
        guard samples >= 1 else { throw ValidationError("--samples must be at least 1") }
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
        if let limit, limit < 1 { throw ValidationError("--limit must be positive") }
    }

    func run() throws {
        let (loaded, tokenizer) = try loadModelWithTokenizer(model)
        let problems = try EvalSet.load(URL(fileURLWithPath: data), tokenizer: tokenizer, limit: limit, responsePrefix: responsePrefix.replacingOccurrences(of: "\\n", with: "\n"))
        let report = try evaluate(loaded: loaded, tokenizer: tokenizer, problems: problems)
        let text = try jsonLine(report)
        if let out { try (text + "\n").write(toFile: out, atomically: true, encoding: .utf8) }
        print(text)
    }

    func evaluate(loaded: LoadedModel, tokenizer: any Tokenizer, problems: [EvalSet.Problem]) throws -> [String: Any] {
        let stop = stopTokens(tokenizer)
        let writer = try samplesOut.map { try LineWriter(path: $0) }
        let started = Date()
        var lastReport = Date.distantPast
        // Problem i's samples are seeded by seed + i, as a run's evaluation on the workers is.
        let seeds = problems.indices.map { sampling.seed &+ UInt64($0) }
        let results = scoreProblems(
            problems, seeds: seeds, config: loaded.config, parameters: loaded.parameters, tokenizer: tokenizer,
            samples: samples, rows: batch, settings: sampling.settings, rule: answerRule, stop: stop
        ) { done, all, tokens in
            guard Date().timeIntervalSince(lastReport) >= 2 || done == all else { return }
            lastReport = Date()
            let elapsed = Date().timeIntervalSince(started)
            printError(
                String(
                    format: "eval: %d/%d samples, %.0f tokens/s, ETA %.0f s", done, all, Double(tokens) / elapsed,
                    done > 0 ? elapsed / Double(done) * Double(all - done) : 0))
        }
        for (p, result) in zip(problems, results) { writer?.write(try jsonLine(result.record(of: p))) }
        var report: [String: Any] = [
            "problems": problems.count, "samples": samples, "temperature": sampling.temperature, "top_p": sampling.topP,
            "max_new_tokens": sampling.maxNewTokens, "response_prefix": responsePrefix
        ]
        for (name, value) in EvaluationSummary(results, samples: samples).values { report[name] = value }
        report["answer_rule"] = answerRule.rawValue
        return report
    }
}
