// Open-R1-Math-shaped data (one row per problem with several teacher generations and a
// verdict per generation from each verifier) into the two files REDI trains on, with the
// paper's selection: correct generations are those every verifier accepts, incorrect ones
// the rest; invalid problems and excluded sources are left out; over-long queries and traces
// are dropped, not cut; at most N (correct, incorrect) pairs per problem.
import Foundation
import Tokenizers

public enum OpenR1 {
    /// How rows become records. The defaults are the paper's (its reference script
    /// `clean_base_shuffled_dpo.py` and the `P800_R19000` filter of its REDI data).
    public struct Settings: Sendable {
        /// Queries longer than this (tokens of the rendered prompt) drop the problem.
        public var maxPromptTokens = 800
        /// A trace longer than this (tokens) is dropped from SFT, and drops a pair it is in.
        public var maxResponseTokens = 19_000
        /// `source` values whose problems are left out (the paper leaves out cn_k12).
        public var excludedSources: Set<String> = ["cn_k12"]
        /// (correct, incorrect) pairs per problem: the k-th correct with the k-th incorrect generation.
        public var pairsPerProblem = 1
        /// Correct generations per problem for the SFT file; nil: all.
        public var positivesPerProblem: Int?
        /// Appended to the problem as the user's message; the paper's prompt is the problem alone.
        public var instruction = ""
        /// Verdict lists, one boolean per generation; a dotted name reaches into a mapping.
        /// Empty: OpenR1-Math-Raw's `correctness.llama_verification` and
        /// `correctness.math_verify_reparsed_answer` when the row has a `correctness` mapping,
        /// else OpenR1-Math-220k's `correctness_llama` and `correctness_math_verify`.
        public var verdictColumns: [String] = []
        public init() {}

        func columns(for row: [String: Any]) -> [String] {
            if !verdictColumns.isEmpty { return verdictColumns }
            return row["correctness"] is [String: Any]
                ? ["correctness.llama_verification", "correctness.math_verify_reparsed_answer"]
                : ["correctness_llama", "correctness_math_verify"]
        }
    }

    /// What the rows contributed and why the rest was left out.
    public struct Counts: Sendable, Equatable, Codable {
        public var rows = 0, problemsUsed = 0
        public var invalidProblem = 0, excludedSource = 0, promptTooLong = 0, noProblem = 0, verdictsMissing = 0
        public var generations = 0, positives = 0, negatives = 0
        public var sftRecords = 0, sftTooLong = 0, pairs = 0, pairsTooLong = 0, problemsWithoutPair = 0
        public init() {}

        public mutating func add(_ o: Counts) {
            rows += o.rows; problemsUsed += o.problemsUsed; invalidProblem += o.invalidProblem; excludedSource += o.excludedSource
            promptTooLong += o.promptTooLong; noProblem += o.noProblem; verdictsMissing += o.verdictsMissing
            generations += o.generations; positives += o.positives; negatives += o.negatives
            sftRecords += o.sftRecords; sftTooLong += o.sftTooLong; pairs += o.pairs; pairsTooLong += o.pairsTooLong
            problemsWithoutPair += o.problemsWithoutPair
        }

        enum CodingKeys: String, CodingKey {
            case rows, problemsUsed = "problems_used", invalidProblem = "dropped_invalid_problem", excludedSource = "dropped_excluded_source"
            case promptTooLong = "dropped_prompt_too_long", noProblem = "dropped_no_problem", verdictsMissing = "dropped_verdicts_missing"
            case generations, positives, negatives, sftRecords = "sft_records", sftTooLong = "sft_dropped_too_long"
            case pairs = "preference_pairs", pairsTooLong = "pairs_dropped_too_long", problemsWithoutPair = "problems_without_pair"
        }
    }

    /// The records one row yields: SFT (prompt, completion) and preference (prompt, chosen, rejected), as TRL conversational JSON objects.
    public struct Selection {
        public var sft: [[String: Any]] = []
        public var preference: [[String: Any]] = []
        public var counts = Counts()
    }

    /// Selects from one row (a JSON object with `problem`, `generations` and verdict lists).
    /// `tokens` counts a text's tokens; `renderPrompt` renders the user message as the model sees it.
    public static func select(
        _ row: [String: Any], settings: Settings, tokens: (String) -> Int,
        renderPrompt: (Messages) throws -> String
    ) rethrows -> Selection {
        var out = Selection()
        out.counts.rows = 1
        if let valid = row["problem_is_valid"], !(valid is NSNull) {
            guard (valid as? String)?.trimmingCharacters(in: .whitespaces).lowercased() == "yes" else { out.counts.invalidProblem = 1; return out }
        }
        if let source = row["source"] as? String, settings.excludedSources.contains(source) { out.counts.excludedSource = 1; return out }
        guard let problem = row["problem"] as? String, !problem.isEmpty, let list = row["generations"] as? [Any], !list.isEmpty else {
            out.counts.noProblem = 1
            return out
        }
        let generations = list.map { $0 as? String ?? "" }
        // Every verdict list must cover every generation (the reference skips the problem otherwise).
        let verdicts = settings.columns(for: row).map { lookup($0, in: row) as? [Any] }
        guard verdicts.allSatisfy({ $0?.count == generations.count }) else { out.counts.verdictsMissing = 1; return out }
        let content = settings.instruction.isEmpty ? problem : problem + "\n" + settings.instruction
        let prompt: Messages = [["role": "user", "content": content]]
        guard tokens(try renderPrompt(prompt)) <= settings.maxPromptTokens else { out.counts.promptTooLong = 1; return out }
        out.counts.problemsUsed = 1
        // Correct: every verifier says true; incorrect: any other verdict (false or null), as the reference's `bool(l) and bool(mr)`.
        var positives: [String] = [], negatives: [String] = []
        for (i, text) in generations.enumerated() where !text.isEmpty {
            out.counts.generations += 1
            if verdicts.allSatisfy({ ($0![i] as? Bool) == true }) { positives.append(text) } else { negatives.append(text) }
        }
        out.counts.positives = positives.count
        out.counts.negatives = negatives.count
        func turn(_ text: String) -> Messages { [["role": "assistant", "content": text]] }
        var fits: [String: Bool] = [:]
        func fitting(_ text: String) -> Bool {
            if let known = fits[text] { return known }
            let ok = tokens(text) <= settings.maxResponseTokens
            fits[text] = ok
            return ok
        }
        for text in positives.prefix(settings.positivesPerProblem ?? positives.count) {
            if fitting(text) { out.sft.append(["prompt": prompt, "completion": turn(text)]) } else { out.counts.sftTooLong += 1 }
        }
        // Pairs are chosen first, then dropped when a trace is too long (the paper filters its pairs).
        for (chosen, rejected) in zip(positives, negatives).prefix(settings.pairsPerProblem) {
            if fitting(chosen) && fitting(rejected) {
                out.preference.append(["prompt": prompt, "chosen": turn(chosen), "rejected": turn(rejected)])
            } else {
                out.counts.pairsTooLong += 1
            }
        }
        out.counts.sftRecords = out.sft.count
        out.counts.pairs = out.preference.count
        if positives.isEmpty || negatives.isEmpty { out.counts.problemsWithoutPair = 1 }
        return out
    }

    /// `name` in `row`, a dotted name reaching into nested mappings (`correctness.llama_verification`).
    static func lookup(_ name: String, in row: [String: Any]) -> Any? {
        var value: Any? = row
        for part in name.split(separator: ".") { value = (value as? [String: Any])?[String(part)] }
        return value
    }
}
