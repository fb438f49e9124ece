// redi-ps eval: accuracy measured like the REDI paper — k samples per problem at
// temperature 0.6 / top-p 0.95, pass@1 averaged over the samples, unbiased pass@k.
import ArgumentParser
import Data
import Evaluation
import Formats
import Foundation
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
    @Option(help: "How final answers are found: marker (\"Answer: N\"), boxed (\\boxed{…}), gsm8k (\"#### N\").")
    var answerRule: AnswerRule = .marker
    @Option(help: "Evaluate only the first N problems.")
    var limit: Int?
    @Option(help: "Write the JSON report here (it is also printed).")
    var out: String?
    @Option(help: "Write one JSON line per problem with its samples here.")
    var samplesOut: String?
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
        let problems = try EvalSet.load(URL(fileURLWithPath: data), tokenizer: tokenizer, limit: limit)
        let report = try evaluate(loaded: loaded, tokenizer: tokenizer, problems: problems)
        let text = try jsonLine(report)
        if let out { try (text + "\n").write(toFile: out, atomically: true, encoding: .utf8) }
        print(text)
    }

    func evaluate(loaded: LoadedModel, tokenizer: any Tokenizer, problems: [EvalSet.Problem]) throws -> [String: Any] {
        let stop = stopTokens(tokenizer)
        let writer = try samplesOut.map { try LineWriter(path: $0) }
        var pass1: [Double] = [], passK: [Double] = [], extracted = 0
        let started = Date()
        var lastReport = Date.distantPast
        // Problem i's samples are seeded by seed + i, as a run's evaluation on the workers is.
        let seeds = problems.indices.map { sampling.seed &+ UInt64($0) }
        let results = scoreProblems(problems, seeds: seeds, config: loaded.config, parameters: loaded.parameters.baseAddress, tokenizer: tokenizer,
                                    samples: samples, rows: batch, settings: sampling.settings, rule: answerRule, stop: stop) { done, all, tokens in
            guard Date().timeIntervalSince(lastReport) >= 2 || done == all else { return }
            lastReport = Date()
            let elapsed = Date().timeIntervalSince(started)
            printError(String(format: "eval: %d/%d samples, %.0f tokens/s, ETA %.0f s", done, all, Double(tokens) / elapsed,
                              done > 0 ? elapsed / Double(done) * Double(all - done) : 0))
        }
        for (p, result) in zip(problems, results) {
            extracted += result.answers.compactMap { $0 }.count
            pass1.append(Double(result.correct) / Double(samples))
            passK.append(passAtK(samples: samples, correct: result.correct, k: samples))
            writer?.write(try jsonLine(result.record(of: p)))
        }
        let p1 = meanAndStandardError(pass1), pk = meanAndStandardError(passK)
        return ["problems": problems.count, "samples": samples, "pass@1": p1.mean, "pass@1_stderr": p1.stderr,
                "pass@\(samples)": pk.mean, "pass@\(samples)_stderr": pk.stderr,
                "answers_extracted": Double(extracted) / Double(max(1, problems.count * samples)),
                "temperature": sampling.temperature, "top_p": sampling.topP, "max_new_tokens": sampling.maxNewTokens,
                "answer_rule": answerRule.rawValue]
    }
}
