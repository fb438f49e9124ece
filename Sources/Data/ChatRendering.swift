// Conversational records to text with the model's own chat template, the way TRL does it:
// prompt = template(prompt, add_generation_prompt), completion = template(prompt +
// completion) minus that prefix, cut after the end-of-turn token.
import ChatTemplate
import Foundation
import Tokenizers

public enum ChatRendering {
    /// Cache of parsed templates (templates are long; records are many).
    nonisolated(unsafe) static var parsed: [String: ChatTemplate] = [:]
    static let lock = NSLock()

    static func template(_ tokenizer: any Tokenizer) throws -> ChatTemplate {
        guard let source = tokenizer.chatTemplate else {
            throw ChatTemplateError("conversational record, but the model's tokenizer has no chat template")
        }
        lock.lock(); defer { lock.unlock() }
        if let t = parsed[source] { return t }
        let t = try ChatTemplate(source)
        parsed[source] = t
        return t
    }

    static func specialText(_ tokenizer: any Tokenizer, _ id: Int32?) -> String? {
        id.map { tokenizer.decode([$0]) }
    }

    /// The prompt text (ending with the generation prompt) and the completion text (ending with end-of-turn).
    public static func render(prompt: Messages, completion: Messages, tokenizer: any Tokenizer) throws -> (String, String) {
        let t = try template(tokenizer)
        let bos = specialText(tokenizer, tokenizer.bosID), eos = specialText(tokenizer, tokenizer.eosID)
        let p = try t.render(messages: prompt, addGenerationPrompt: true, bosToken: bos, eosToken: eos)
        let full = try t.render(messages: prompt + completion, addGenerationPrompt: false, bosToken: bos, eosToken: eos)
        guard full.hasPrefix(p) else {
            throw ChatTemplateError("the chat template renders the prompt differently with and without the completion; cannot split them")
        }
        var c = String(full.dropFirst(p.count))
        if let eos, let r = c.range(of: eos, options: .backwards) { c = String(c[..<r.upperBound]) }
        return (p, c)
    }

    /// The prompt text for generation.
    public static func renderPrompt(_ messages: Messages, tokenizer: any Tokenizer) throws -> String {
        try renderConversation(messages, addGenerationPrompt: true, tokenizer: tokenizer)
    }

    /// A whole conversation exactly as the template renders it (`apply_chat_template(tokenize=False)`).
    public static func renderConversation(_ messages: Messages, addGenerationPrompt: Bool, tokenizer: any Tokenizer) throws -> String {
        try template(tokenizer).render(
            messages: messages, addGenerationPrompt: addGenerationPrompt,
            bosToken: specialText(tokenizer, tokenizer.bosID), eosToken: specialText(tokenizer, tokenizer.eosID))
    }
}
