// One problem of an evaluation: k samples decoded as a batch, answers extracted by a named
// rule and compared with the reference. Shared by `redi-ps eval` and the coordinator.
import Foundation
import Model
import ReasoningTask
import Tokenizers

/// What the samples of one problem produced.
public struct ProblemResult: Sendable {
    public let texts: [String]
    /// Each sample's normalised answer, nil when the rule found none.
    public let answers: [String?]
    public let correct: Int
}

extension ProblemResult {
    /// One line of a samples file (`redi-ps eval --samples-out`, a run's `eval_STAGE.jsonl`).
    public func record(of problem: EvalSet.Problem) -> [String: Any] {
        ["line": problem.line, "answer": problem.answer, "correct": correct,
         "samples": zip(texts, answers).map { ["text": $0, "extracted": $1 as Any? ?? NSNull()] as [String: Any] }]
    }
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
public func scoreProblems(_ problems: [EvalSet.Problem], seeds: [UInt64], config: LlamaConfig, parameters: UnsafePointer<Float>,
                          tokenizer: any Tokenizer, samples: Int, rows: Int, settings: SamplingSettings, rule: AnswerRule, stop: Set<Int32>,
                          progress: ((Int, Int, Int) -> Void)? = nil) -> [ProblemResult] {
    precondition(seeds.count == problems.count)
    let requests = zip(problems, seeds).map { GenerationRequest(prompt: $0.promptIDs, samples: samples, seed: $1) }
    let outputs = generate(config: config, parameters: parameters, requests: requests, rows: rows, settings: settings, stop: stop, progress: progress)
    return score(problems, outputs: outputs, tokenizer: tokenizer, rule: rule, stop: stop)
}

/// Counts the correct samples of each problem from the generated tokens (`outputs[i]` are problem i's samples).
public func score(_ problems: [EvalSet.Problem], outputs: [[[Int32]]], tokenizer: any Tokenizer, rule: AnswerRule, stop: Set<Int32>) -> [ProblemResult] {
    zip(problems, outputs).map { problem, samples in
        let texts = samples.map { tokenizer.decode($0.filter { !stop.contains($0) }) }
        let answers = texts.map { rule.extract($0).map(AnswerRule.normalize) }
        let reference = AnswerRule.normalize(problem.answer)
        return ProblemResult(texts: texts, answers: answers, correct: answers.filter { $0 == reference }.count)
    }
}
