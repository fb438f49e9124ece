// Test files for evaluation: one problem per line with a prompt (text, or a message list
// rendered with the chat template) and the reference answer.
import Data
import Foundation
import Tokenizers

public enum EvalSet {
    public struct Problem: Sendable {
        public let line: Int
        public let promptIDs: [Int32]
        public let answer: String
    }

    /// Reads `url`, reporting every bad line with its number. `responsePrefix` (e.g. the
    /// paper's "<think>\n") is appended to every prompt: the opening every answer starts with.
    public static func load(_ url: URL, tokenizer: any Tokenizer, limit: Int?, responsePrefix: String = "") throws -> [Problem] {
        guard let data = try? Data(contentsOf: url) else { throw DataError(file: url.path, line: nil, message: "cannot read") }
        var problems: [Problem] = [], errors: [DataError] = []
        let bos = tokenizer.addsBOS ? tokenizer.bosID.map { [$0] } ?? [] : []
        for (i, raw) in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
            if let limit, problems.count >= limit { break }
            if raw.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
            func fail(_ m: String) { errors.append(DataError(file: url.path, line: i + 1, message: m)) }
            guard let json = (try? JSONSerialization.jsonObject(with: Data(raw))) as? [String: Any] else { fail("invalid JSON object"); continue }
            let answer: String
            if let s = json["answer"] as? String {
                answer = s
            } else if let n = json["answer"] as? NSNumber {
                answer = n.stringValue
            } else {
                fail("missing \"answer\" (string or number)"); continue
            }
            if let text = json["prompt"] as? String {
                problems.append(Problem(line: i + 1, promptIDs: bos + tokenizer.encode(text + responsePrefix), answer: answer))
            } else if let list = json["prompt"] as? [[String: String]] {
                do {
                    let text = try ChatRendering.renderPrompt(list, tokenizer: tokenizer)
                    problems.append(Problem(line: i + 1, promptIDs: bos + tokenizer.encode(text + responsePrefix), answer: answer))
                } catch { fail("\(error)") }
            } else {
                fail("missing \"prompt\" (string or message list)")
            }
        }
        if !errors.isEmpty { throw DataErrors(errors: errors) }
        if problems.isEmpty { throw DataError(file: url.path, line: nil, message: "no problems") }
        return problems
    }
}
