// Evaluation on the workers: problems go out as prompt work units, samples come back and
// are scored here (pass@1 with sampling, as the paper measures it); and the run's summary table.
import Data
import Evaluation
import Formats
import Foundation
import Model
import Numerics
import Objectives
import ReasoningTask
import Tokenizers
import Transport
import Wire

extension Coordinator {
    /// pass@1 of the current weights, sampled by the workers.
    func evaluate(_ e: Recipe.EvalSpec, tokenizer: any Tokenizer, stage: String) throws -> Double {
        let problems = try EvalSet.load(URL(fileURLWithPath: e.data), tokenizer: tokenizer, limit: e.limit)
        let stop = stopTokens(tokenizer)
        // Problems go to the workers as prompts (contiguous shards, one per slot); problem i's
        // samples are seeded by recipe.seed + i, so the result is `redi-ps eval --seed SEED
        // --batch ROWS` on the same weights, however many workers share the work.
        let prompts = problems.enumerated().map { i, p in
            Picked(example: Example(sequences: [TokenSequence(tokens: p.promptIDs, promptLength: p.promptIDs.count)], line: p.line), id: i, epoch: 0)
        }
        let sampling = SamplingSpec(samples: e.samples, temperature: e.temperature, topP: e.topP, maxNewTokens: e.maxNewTokens, rows: e.batch,
                                    seed: recipe.seed, stopTokens: stop.sorted())
        let started = Date()
        let reports = try distribute(prompts, step: 0, expectNorms: false) { version, shard in
            WorkUnit(stage: "eval", step: 0, version: version, objective: .sft, normalizer: 1, examples: shard,
                     microBatchTokens: 1, shard: 0, sampling: sampling)
        }.reports
        let generated = reports.flatMap(\.generated)
        guard generated.count == problems.count * e.samples else {
            throw ClusterError("workers returned \(generated.count) samples for \(problems.count) problems × \(e.samples)")
        }
        let outputs = problems.indices.map { Array(generated[($0 * e.samples)..<(($0 + 1) * e.samples)]) }
        let results = Evaluation.score(problems, outputs: outputs, tokenizer: tokenizer, rule: e.answerRule, stop: stop)
        let pass1 = results.map { Double($0.correct) / Double(e.samples) }
        // Every sample, as `redi-ps eval --samples-out` writes them.
        var lines = ""
        for (p, r) in zip(problems, results) {
            lines += String(decoding: try JSONSerialization.data(withJSONObject: r.record(of: p), options: [.sortedKeys, .withoutEscapingSlashes]), as: UTF8.self) + "\n"
        }
        try Data(lines.utf8).write(to: URL(fileURLWithPath: recipe.output).appendingPathComponent("eval_\(stage).jsonl"))
        let tokens = generated.reduce(0) { $0 + $1.count }
        say(String(format: "eval: %d samples, %d tokens in %.1f s on %d workers (%.0f tokens/s)", generated.count, tokens,
                   Date().timeIntervalSince(started), live.count, Double(tokens) / Date().timeIntervalSince(started)))
        let (mean, stderr) = meanAndStandardError(pass1)
        say(String(format: "eval after %@: pass@1 %.3f ± %.3f over %d problems × %d samples", stage, mean, stderr, problems.count, e.samples))
        try runLog?.evaluation(stage: stage, problems: problems.count, values: ["eval/pass@1": mean, "eval/pass@1_stderr": stderr])
        return mean
    }

    func printTable(_ rows: [StageSummary]) {
        func f(_ x: Double?) -> String { x.map { String(format: "%.3f", $0) } ?? "-" }
        var text = "\nstage        steps  pass@1   logps/chosen  logps/rejected\n"
        for r in rows {
            text += r.stage.padding(toLength: 12, withPad: " ", startingAt: 0) + " " + String(r.steps).leftPad(5) + "  " + f(r.passAt1).leftPad(6)
                + "   " + f(r.logpsChosen).leftPad(12) + "  " + f(r.logpsRejected).leftPad(14) + "\n"
        }
        print(text)
    }
}
