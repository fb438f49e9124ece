// redi-ps logprobs: summed completion log-probabilities of every record, one JSON line each.
import ArgumentParser
import Data
import Foundation
import Objectives
import Training

struct LogprobsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logprobs",
        abstract: "Print logp of each record's completion (or chosen and rejected) as JSON lines.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var dataOptions: DataOptions

    @Option(help: "JSONL file of prompt/completion or preference records.")
    var data: String

    @Option(help: "Write the JSON lines here instead of standard output.")
    var out: String?

    @Flag(help: "Include the token ids used (prompt_ids, completion_ids or chosen_ids/rejected_ids).")
    var ids = false

    @Flag(help: "Include each scored token's log-probability (token_logps, or chosen_/rejected_token_logps).")
    var perToken = false

    func run() throws {
        let (model, tokenizer) = try loadModelWithTokenizer(modelOptions.model)
        let examples = try loadExamples(data, model: model, tokenizer: tokenizer, options: dataOptions)
        let computer = GradientComputer(config: model.config, microBatchTokens: modelOptions.microBatchTokens)
        let writer = try LineWriter(path: out)
        let chunk = max(1, examples.count / 20)
        let started = Date()
        for start in stride(from: 0, to: examples.count, by: chunk) {
            let part = Array(examples[start..<min(examples.count, start + chunk)])
            let (scores, tokenLogps) = computer.scoresWithTokens(parameters: model.parameters, examples: part)
            var k = 0
            for e in part {
                var line: [String: Any] = [:]
                let prompt = Array(e.sequences[0].tokens.prefix(e.sequences[0].promptLength))
                if perToken {
                    if e.isPreference {
                        line["chosen_token_logps"] = tokenLogps[k]; line["rejected_token_logps"] = tokenLogps[k + 1]
                    } else {
                        line["token_logps"] = tokenLogps[k]
                    }
                }
                if e.isPreference {
                    line["chosen_logp"] = scores[k].logp; line["chosen_tokens"] = scores[k].tokens
                    line["rejected_logp"] = scores[k + 1].logp; line["rejected_tokens"] = scores[k + 1].tokens
                    if ids {
                        line["prompt_ids"] = prompt
                        line["chosen_ids"] = Array(e.sequences[0].tokens.dropFirst(e.sequences[0].promptLength))
                        line["rejected_ids"] = Array(e.sequences[1].tokens.dropFirst(e.sequences[1].promptLength))
                    }
                } else {
                    line["logp"] = scores[k].logp; line["tokens"] = scores[k].tokens
                    if ids {
                        line["prompt_ids"] = prompt
                        line["completion_ids"] = Array(e.sequences[0].tokens.dropFirst(e.sequences[0].promptLength))
                    }
                }
                k += e.sequences.count
                writer.write(try jsonLine(line))
            }
            if out != nil {
                let done = min(examples.count, start + chunk)
                printError(String(format: "logprobs: %d/%d records, %.1f s", done, examples.count, Date().timeIntervalSince(started)))
            }
        }
    }
}
