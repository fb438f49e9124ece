// One problem of an evaluation: k samples decoded as a batch, answers extracted by a named
// rule and compared with the reference. Shared by `redi-ps eval` and the coordinator.
import Foundation
import Grading
import Model
import Numerics
import ReasoningTask
import Tokenizers

/// What the samples of one problem produced.
public struct ProblemResult: Sendable {
    public let texts: [String]
    /// Each sample's answer as the rule found it (normalised for the string rules), nil when there was none.
    public let answers: [String?]
    /// Whether each sample was graded correct.
    public let sampleCorrect: [Bool]
    /// Each sample's length in generated tokens (its stop token not counted).
    public let tokenCounts: [Int]
    public var correct: Int { sampleCorrect.filter { $0 }.count }
}

extension ProblemResult {
    /// One line of a samples file (`redi-ps eval --samples-out`, a run's `eval_STAGE.jsonl`).
    public func record(of problem: EvalSet.Problem) -> [String: Any] {
        [
            "line": problem.line, "answer": problem.answer, "correct": correct,
            "samples": texts.indices.map {
                ["text": texts[$0], "extracted": answers[$0] as Any? ?? NSNull(), "correct": sampleCorrect[$0], "tokens": tokenCounts[$0]] as [String: Any]
            }
        ]
    }
}

/// One evaluation's figures as the REDI paper reports them (§5, Appendix D).
public struct EvaluationSummary: Sendable {
    public let problems: Int, samples: Int
    /// pass@1: the fraction of correct samples, averaged over the k samples of every problem.
    public let passAt1: Double
    /// The paper's standard error: the standard deviation of the k per-sample accuracies
    /// (sample j's accuracy over all problems) divided by √k.
    public let passAt1Stderr: Double
    /// The standard error of the mean of per-problem pass@1 (the spread over problems).
    public let passAt1StderrOverProblems: Double
    /// Unbiased pass@k (k = samples) and its standard error over problems.
    public let passAtK: Double, passAtKStderr: Double
    /// The fraction of samples in which the rule found an answer.
    public let answersExtracted: Double
    /// Appendix D: mean response length in tokens, and mean count of the word "wait" per response.
    public let meanResponseTokens: Double, meanWaits: Double

    public init(_ results: [ProblemResult], samples k: Int) {
        problems = results.count
        samples = k
        let n = max(1, results.count * k)
        let perProblem = results.map { Double($0.correct) / Double(k) }
        (passAt1, passAt1StderrOverProblems) = meanAndStandardError(perProblem)
        let perSample = (0..<k).map { j in Double(results.filter { $0.sampleCorrect[j] }.count) / Double(max(1, results.count)) }
        passAt1Stderr = k > 1 ? meanAndStandardError(perSample).stderr : 0
        (passAtK, passAtKStderr) = meanAndStandardError(results.map { Evaluation.passAtK(samples: k, correct: $0.correct, k: k) })
        answersExtracted = Double(results.reduce(0) { $0 + $1.answers.compactMap { $0 }.count }) / Double(n)
        meanResponseTokens = Double(results.reduce(0) { $0 + $1.tokenCounts.reduce(0, +) }) / Double(n)
        meanWaits = Double(results.reduce(0) { $0 + $1.texts.reduce(0) { $0 + countWaits($1) } }) / Double(n)
    }

    /// The figures under the names metrics.jsonl and the eval report use.
    public var values: [String: Double] {
        [
            "pass@1": passAt1, "pass@1_stderr": passAt1Stderr, "pass@1_stderr_problems": passAt1StderrOverProblems,
            "pass@\(samples)": passAtK, "pass@\(samples)_stderr": passAtKStderr, "answers_extracted": answersExtracted,
            "response_tokens": meanResponseTokens, "waits": meanWaits
        ]
    }
}

/// Occurrences of the word "wait" (any case, as a whole word): the paper's reflection count.
public func countWaits(_ text: String) -> Int {
    var count = 0
    let scalars = Array(text.lowercased().unicodeScalars)
    let word = Array("wait".unicodeScalars)
    var i = 0
    while i + word.count <= scalars.count {
        if scalars[i..<(i + word.count)].elementsEqual(word),
            i == 0 || !CharacterSet.letters.contains(scalars[i - 1]),
            i + word.count == scalars.count || !CharacterSet.letters.contains(scalars[i + word.count])
        {
            count += 1; i += word.count
        } else {
            i += 1
        }
    }
    return count
}

/// Tokens that end a sample: EOS and, for chat models, the end-of-turn token.
public func stopTokens(_ tokenizer: any Tokenizer) -> Set<Int32> {
    var stop = Set(tokenizer.eosID.map { [$0] } ?? [])
    if let bpe = tokenizer as? BPETokenizer {
        for t in ["<|im_end|>", "<|endoftext|>", "<|eot_id|>"] { if let id = bpe.id(of: t) { stop.insert(id) } }
    }
    return stop
}

/// Samples `samples` answers to each problem (continuous batching over `rows` sequences) and
/// counts the correct ones. Problem i's samples are seeded by `seeds[i]`.
public func scoreProblems(
    _ problems: [EvalSet.Problem], seeds: [UInt64], config: LlamaConfig, parameters: FloatBuffer,
    tokenizer: any Tokenizer, samples: Int, rows: Int, settings: SamplingSettings, rule: AnswerRule, stop: Set<Int32>,
    progress: ((Int, Int, Int) -> Void)? = nil
) -> [ProblemResult] {
    precondition(seeds.count == problems.count)
    let requests = zip(problems, seeds).map { GenerationRequest(prompt: $0.promptIDs, samples: samples, seed: $1) }
    let outputs = generate(config: config, parameters: parameters, requests: requests, rows: rows, settings: settings, stop: stop, progress: progress)
    return score(problems, outputs: outputs, tokenizer: tokenizer, rule: rule, stop: stop)
}

/// Counts the correct samples of each problem from the generated tokens (`outputs[i]` are problem i's samples).
public func score(_ problems: [EvalSet.Problem], outputs: [[[Int32]]], tokenizer: any Tokenizer, rule: AnswerRule, stop: Set<Int32>) -> [ProblemResult] {
    zip(problems, outputs).map { problem, samples in
        let kept = samples.map { $0.filter { !stop.contains($0) } }
        let texts = kept.map { tokenizer.decode($0) }
        let grades = texts.map { rule.grade($0, reference: problem.answer) }
        return ProblemResult(texts: texts, answers: grades.map(\.extracted), sampleCorrect: grades.map(\.correct), tokenCounts: kept.map(\.count))
    }
}
