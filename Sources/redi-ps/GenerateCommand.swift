// redi-ps generate / render: trying a model by hand, and seeing exactly what it is shown.
import ArgumentParser
import ChatTemplate
import Data
import Evaluation
import Foundation
import Model
import Tokenizers

/// Sampling flags shared by generate and eval.
extension CachePrecision: ExpressibleByArgument {}

struct SamplingOptions: ParsableArguments {
    @Option(help: "Sampling temperature; 0 decodes greedily.")
    var temperature: Double = 0.6
    @Option(name: .customLong("top-p"), help: "Nucleus sampling mass.")
    var topP: Double = 0.95
    @Option(help: "Maximum new tokens per sample.")
    var maxNewTokens = 256
    @Option(help: "Seed for sampling.")
    var seed: UInt64 = 0
    @Option(help: "How the KV cache stores keys and values: fp32, or bf16 (half the memory for long answers).")
    var kvCache: CachePrecision = .fp32

    func validate() throws {
        guard temperature >= 0 else { throw ValidationError("--temperature must be ≥ 0") }
        guard topP > 0 && topP <= 1 else { throw ValidationError("--top-p must be in (0, 1]") }
        guard maxNewTokens > 0 else { throw ValidationError("--max-new-tokens must be positive") }
    }

    var settings: SamplingSettings { SamplingSettings(temperature: temperature, topP: topP, maxNewTokens: maxNewTokens, seed: seed, cache: kvCache) }
}

/// The ids a prompt string becomes: rendered as a user turn with the chat template when the
/// model has one (unless `raw`), framed with BOS when the tokenizer adds it.
func promptIDs(_ prompt: String, system: String?, raw: Bool, tokenizer: any Tokenizer) throws -> [Int32] {
    var text = prompt
    if !raw, tokenizer.chatTemplate != nil {
        let messages: Messages = (system.map { [["role": "system", "content": $0]] } ?? []) + [["role": "user", "content": prompt]]
        text = try ChatRendering.renderPrompt(messages, tokenizer: tokenizer)
    }
    let bos = tokenizer.addsBOS ? tokenizer.bosID.map { [$0] } ?? [] : []
    return bos + tokenizer.encode(text)
}

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "generate", abstract: "Generate a reply to a prompt.")

    @Option(help: "Checkpoint directory or .gguf file.")
    var model: String
    @Option(help: "The user's message (or raw text with --raw).")
    var prompt: String
    @Option(help: "An optional system message.")
    var system: String?
    @Flag(help: "Use the prompt as raw text, without the chat template.")
    var raw = false
    @Option(help: "Number of samples, decoded as one batch.")
    var samples = 1
    @Flag(help: "Print token ids as JSON instead of text.")
    var ids = false
    @Option(help: "Also write the next-token logits after the prompt (JSON) here, to check against another implementation.")
    var logitsOut: String?
    @OptionGroup var sampling: SamplingOptions

    func run() throws {
        let (loaded, tokenizer) = try loadModelWithTokenizer(model)
        let input = try promptIDs(prompt, system: system, raw: raw, tokenizer: tokenizer)
        if let logitsOut {
            let g = Generator(config: loaded.config, parameters: loaded.parameters, rows: 1, capacity: input.count)
            try (try jsonLine(["prompt_ids": input, "logits": g.prefill(row: 0, prompt: input)]) + "\n").write(toFile: logitsOut, atomically: true, encoding: .utf8)
        }
        let started = Date()
        let outputs = generate(
            config: loaded.config, parameters: loaded.parameters, prompt: input,
            samples: samples, settings: sampling.settings, stop: stopTokens(tokenizer))
        let seconds = Date().timeIntervalSince(started)
        let stop = stopTokens(tokenizer)
        for o in outputs {
            if ids { print(try jsonLine(["prompt_ids": input, "ids": o])) } else { print(tokenizer.decode(o.filter { !stop.contains($0) })) }
        }
        let total = outputs.reduce(0) { $0 + $1.count }
        printError(String(format: "%d tokens in %.2f s (%.1f tokens/s, prompt %d tokens)", total, seconds, Double(total) / seconds, input.count))
    }
}

struct RenderCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "render",
        abstract: "Print the text a chat record becomes with the model's chat template.")

    @Option(help: "Checkpoint directory or .gguf file whose chat template to use.")
    var model: String?
    @Option(help: "A Jinja chat template file to use instead of a model's.")
    var template: String?
    @Option(help: "A JSON message list, e.g. '[{\"role\":\"user\",\"content\":\"Hi\"}]'.")
    var messages: String
    @Flag(help: "Append the assistant generation prompt.")
    var addGenerationPrompt = false

    func validate() throws {
        guard (model == nil) != (template == nil) else { throw ValidationError("give exactly one of --model or --template") }
    }

    func run() throws {
        guard let list = try? JSONSerialization.jsonObject(with: Data(messages.utf8)) as? [[String: Any]] else {
            throw ValidationError("--messages must be a JSON list of {\"role\", \"content\"} objects")
        }
        if let template {
            guard let source = try? String(contentsOfFile: template, encoding: .utf8) else { throw CLIError("cannot read \(template)") }
            print(
                try ChatTemplate(source).render(messages: list, addGenerationPrompt: addGenerationPrompt, bosToken: nil, eosToken: nil),
                terminator: "")
            return
        }
        let tokenizer = try requireTokenizer(model!)
        let strings = list.map { $0.compactMapValues { $0 as? String } }
        print(try ChatRendering.renderConversation(strings, addGenerationPrompt: addGenerationPrompt, tokenizer: tokenizer), terminator: "")
    }
}
