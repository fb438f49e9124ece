// Reading a Hugging Face `tokenizer.json` (+ `tokenizer_config.json`) for byte-level BPE
// models, the counterpart of `BPETokenizer.writeFiles`.
import Foundation

extension BPETokenizer {
    /// Loads the tokenizer files of a Hugging Face model directory.
    ///
    /// - Throws: `TokenizerError` naming the file when it is not byte-level BPE or is malformed.
    public static func load(huggingFaceDirectory directory: URL) throws -> BPETokenizer {
        let url = directory.appendingPathComponent("tokenizer.json")
        guard let data = try? Data(contentsOf: url) else { throw TokenizerError("\(url.path): not a readable tokenizer.json") }
        return try load(tokenizerJSON: data, config: try? Data(contentsOf: directory.appendingPathComponent("tokenizer_config.json")), url: url)
    }

    /// A tokenizer from the bytes of `tokenizer.json` and, if any, `tokenizer_config.json`;
    /// `url` names the file in errors.
    public static func load(tokenizerJSON data: Data, config configData: Data?, url: URL) throws -> BPETokenizer {
        guard data.count <= 256 << 20, let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let model = json["model"] as? [String: Any]
        else {
            throw TokenizerError("\(url.path): not a readable tokenizer.json")
        }
        guard model["type"] as? String == "BPE", let vocab = model["vocab"] as? [String: Int] else {
            throw TokenizerError("\(url.path): only byte-level BPE tokenizers are supported")
        }
        let merges: [(String, String)] = (model["merges"] as? [Any] ?? []).compactMap { m in
            if let s = m as? String {
                let p = s.split(separator: " ", maxSplits: 1)
                return p.count == 2 ? (String(p[0]), String(p[1])) : nil
            }
            if let pair = m as? [String], pair.count == 2 { return (pair[0], pair[1]) }
            return nil
        }
        var added: [(Int, String)] = []
        for t in json["added_tokens"] as? [[String: Any]] ?? [] {
            if let id = t["id"] as? Int, let content = t["content"] as? String { added.append((id, content)) }
        }
        // Ids index the token table, which is as long as the largest id: bound them before allocating.
        if let bad = vocab.values.first(where: { !(0..<maximumVocabularySize).contains($0) }) ?? added.map(\.0).first(where: { !(0..<maximumVocabularySize).contains($0) }) {
            throw TokenizerError("\(url.path): token id \(bad) is outside 0..<\(maximumVocabularySize)")
        }
        let size = max((vocab.values.max() ?? -1), (added.map(\.0).max() ?? -1)) + 1
        guard size <= 2 * (vocab.count + added.count) + 1024 else {
            throw TokenizerError("\(url.path): ids reach \(size - 1) for \(vocab.count + added.count) tokens (a table mostly of holes)")
        }
        var tokens = [String](repeating: "", count: size)
        for (t, i) in vocab { tokens[i] = t }
        for (i, t) in added { tokens[i] = t }

        let description = String(decoding: try JSONSerialization.data(withJSONObject: [json["pre_tokenizer"] ?? NSNull()]), as: UTF8.self)
        let pre: PreTokenizer =
            description.contains("(?i:'s")
            ? .qwen2
            : description.contains("\"individual_digits\":true") ? .smollm : .gpt2

        var config: [String: Any] = [:]
        if let d = configData, let c = try? JSONSerialization.jsonObject(with: d) as? [String: Any] { config = c }
        func tokenText(_ key: String) -> String? {
            if let s = config[key] as? String { return s }
            return (config[key] as? [String: Any])?["content"] as? String
        }
        let byText = Dictionary(tokens.enumerated().map { ($1, Int32($0)) }, uniquingKeysWith: { a, _ in a })
        return BPETokenizer(
            tokens: tokens, merges: merges, special: added.map { Int32($0.0) }, preTokenizer: pre,
            bos: tokenText("bos_token").flatMap { byText[$0] }, eos: tokenText("eos_token").flatMap { byText[$0] },
            pad: tokenText("pad_token").flatMap { byText[$0] }, addsBOS: config["add_bos_token"] as? Bool ?? false,
            chatTemplate: config["chat_template"] as? String)
    }
}
