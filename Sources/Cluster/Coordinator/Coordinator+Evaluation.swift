// Evaluation on the workers: problems go out as prompt work units, samples come back and
// are graded here (pass@1 with sampling, as the paper measures it), per named benchmark;
// and the run's summary table.
import ClusterCore
import Data
import Evaluation
import Formats
import Foundation
import Grading
import Model
import Numerics
import Objectives
import ReasoningTask
import Tokenizers
import Transport
import Wire

extension Coordinator {
    /// Every benchmark's problems, read (and checked) before training starts, so a bad test
    /// file is an error at launch, not after the first stage.
    func loadBenchmarks(_ e: Recipe.EvalSpec, tokenizer: any Tokenizer) throws -> [LoadedBenchmark] {
        try e.benchmarks.map { b in
            let problems = try EvalSet.load(URL(fileURLWithPath: b.data), tokenizer: tokenizer, limit: b.limit, responsePrefix: e.responsePrefix)
            say("eval \(b.name): \(problems.count) problems × \(b.samples) samples from \(b.data) (answer rule \(b.answerRule.rawValue))")
            return LoadedBenchmark(spec: b, problems: problems)
        }
    }

    /// pass@1 of the current weights on every benchmark, sampled by the workers; `label`
    /// names the point ("sft", or "sft-step200" during a stage) in files, metrics and the log.
    func evaluate(_ e: Recipe.EvalSpec, benchmarks: [LoadedBenchmark], tokenizer: any Tokenizer, stage: String, label: String) throws -> [String: Double] {
        var passAt1: [String: Double] = [:]
        for b in benchmarks {
            let summary = try evaluate(b, e, tokenizer: tokenizer, file: e.named ? "eval_\(label)_\(b.spec.name).jsonl" : "eval_\(label).jsonl")
            let prefix = e.named ? "eval/\(b.spec.name)/" : "eval/"
            let title = e.named ? "eval \(b.spec.name) after \(label)" : "eval after \(label)"
            say(
                String(
                    format: "%@: pass@1 %.3f ± %.3f over %d problems × %d samples (± over problems %.3f; pass@%d %.3f; %.0f tokens, %.2f \"wait\" per response)",
                    title, summary.passAt1, summary.passAt1Stderr, summary.problems, summary.samples, summary.passAt1StderrOverProblems,
                    summary.samples, summary.passAtK, summary.meanResponseTokens, summary.meanWaits))
            try runLog?.evaluation(stage: stage, problems: summary.problems, values: Dictionary(uniqueKeysWithValues: summary.values.map { (prefix + $0.key, $0.value) }))
            passAt1[b.spec.name] = summary.passAt1
        }
        return passAt1
    }

    /// One benchmark: problems go to the workers as prompt work units, samples come back and
    /// are graded here; every sample is saved to `file` in the output directory.
    func evaluate(_ b: LoadedBenchmark, _ e: Recipe.EvalSpec, tokenizer: any Tokenizer, file: String) throws -> EvaluationSummary {
        let problems = b.problems, k = b.spec.samples
        let stop = stopTokens(tokenizer)
        // Problems go to the workers as prompts (contiguous shards, one per slot); problem i's
        // samples are seeded by recipe.seed + i, so the result is `redi-ps eval --seed SEED
        // --batch ROWS` on the same weights, however many workers share the work.
        let prompts = problems.enumerated().map { i, p in
            Picked(example: Example(sequences: [TokenSequence(tokens: p.promptIDs, promptLength: p.promptIDs.count)], line: p.line), id: i, epoch: 0)
        }
        let sampling = SamplingSpec(
            samples: k, temperature: e.temperature, topP: e.topP, maxNewTokens: b.spec.maxNewTokens, rows: e.batch,
            seed: recipe.seed, stopTokens: stop.sorted(), bf16Cache: e.cache == .bf16)
        let started = Date()
        let reports = try distribute(prompts, step: 0, expectNorms: false) { version, shard in
            WorkUnit(
                stage: "eval", step: 0, version: version, objective: .sft, normalizer: 1, examples: shard,
                microBatchTokens: 1, shard: 0, sampling: sampling)
        }.reports
        let generated = reports.flatMap(\.generated)
        guard generated.count == problems.count * k else {
            throw ClusterError("workers returned \(generated.count) samples for \(problems.count) problems × \(k)")
        }
        let outputs = problems.indices.map { Array(generated[($0 * k)..<(($0 + 1) * k)]) }
        let results = Evaluation.score(problems, outputs: outputs, tokenizer: tokenizer, rule: b.spec.answerRule, stop: stop)
        // Every sample, as `redi-ps eval --samples-out` writes them.
        var lines = ""
        for (p, r) in zip(problems, results) {
            lines += String(decoding: try JSONSerialization.data(withJSONObject: r.record(of: p), options: [.sortedKeys, .withoutEscapingSlashes]), as: UTF8.self) + "\n"
        }
        try Data(lines.utf8).write(to: URL(fileURLWithPath: recipe.output).appendingPathComponent(file))
        let tokens = generated.reduce(0) { $0 + $1.count }, seconds = Date().timeIntervalSince(started)
        say(
            String(
                format: "eval %@: %d samples, %d tokens in %.1f s on %d workers (%.0f tokens/s)", b.spec.name, generated.count, tokens,
                seconds, live.count, Double(tokens) / seconds))
        return EvaluationSummary(results, samples: k)
    }

    func printTable(_ rows: [StageSummary]) {
        func f(_ x: Double?) -> String { x.map { String(format: "%.3f", $0) } ?? "-" }
        // One pass@1 column per benchmark (a single unnamed one is headed "pass@1").
        let names = recipe.eval.map { $0.named ? $0.benchmarks.map(\.name) : ["pass@1"] } ?? ["pass@1"]
        let keys = recipe.eval?.benchmarks.map(\.name) ?? []
        var text = "\nstage        steps  " + names.map { $0.leftPad(max(6, $0.count)) }.joined(separator: "  ") + "   logps/chosen  logps/rejected\n"
        for r in rows {
            let scores = zip(names, keys.isEmpty ? [""] : keys).map { name, key in f(r.passAt1[key]).leftPad(max(6, name.count)) }
            text +=
                r.stage.padding(toLength: 12, withPad: " ", startingAt: 0) + " " + String(r.steps).leftPad(5) + "  " + scores.joined(separator: "  ")
                + "   " + f(r.logpsChosen).leftPad(12) + "  " + f(r.logpsRejected).leftPad(14) + "\n"
        }
        print(text)
    }
}

/// A benchmark of the recipe with its problems read.
struct LoadedBenchmark {
    let spec: Recipe.EvalSpec.Benchmark
    let problems: [EvalSet.Problem]
}
