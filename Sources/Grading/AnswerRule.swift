// How a sample's final answer is found and judged against the reference: by a named rule,
// so a recipe or `redi-ps eval --answer-rule` says how its benchmark is graded.
import Foundation

/// Extracts final answers from generated text, and grades them, by a named rule.
public enum AnswerRule: String, CaseIterable, Sendable {
    /// The synthetic task's "Answer: N" (last occurrence); compared after `normalize`.
    case marker
    /// MATH's \boxed{…} (last occurrence, nested braces allowed); compared after `normalize`.
    case boxed
    /// GSM8K's "#### N"; compared after `normalize`.
    case gsm8k
    /// The last \boxed{…} judged for mathematical equivalence with the reference (LaTeX or
    /// plain): `MathEquivalence`, written to agree with Math-Verify, which the paper grades with.
    case math

    /// What a sample's answer was taken to be, and whether it counts as correct.
    public struct Grade: Equatable, Sendable {
        /// The answer as found (normalised for the string rules); nil when there was none.
        public let extracted: String?
        public let correct: Bool
        public init(extracted: String?, correct: Bool) { self.extracted = extracted; self.correct = correct }
    }

    public func grade(_ text: String, reference: String) -> Grade {
        switch self {
        case .marker, .boxed, .gsm8k:
            let answer = extract(text).map(AnswerRule.normalize)
            return Grade(extracted: answer, correct: answer != nil && answer == AnswerRule.normalize(reference))
        case .math:
            guard let answer = extract(text) else { return Grade(extracted: nil, correct: false) }
            return Grade(extracted: answer, correct: MathEquivalence.equivalent(reference: reference, answer: answer))
        }
    }

    public func extract(_ text: String) -> String? {
        switch self {
        case .marker: return lastMatch(after: "Answer:", in: text).map(firstNumberOrWord)
        case .gsm8k: return lastMatch(after: "####", in: text).map(firstNumberOrWord)
        case .boxed: return AnswerRule.lastBoxed(in: text)
        case .math: return AnswerRule.lastBoxed(in: text, commands: ["\\boxed", "\\fbox"])
        }
    }

    /// The contents of the last `\boxed{…}` (or another of `commands`), nested braces allowed;
    /// `\boxed 5` (one token, no braces) counts too.
    public static func lastBoxed(in text: String, commands: [String] = ["\\boxed"]) -> String? {
        let starts = commands.compactMap { text.range(of: $0, options: .backwards) }
        guard let r = starts.max(by: { $0.lowerBound < $1.lowerBound }) else { return nil }
        let rest = text[r.upperBound...]
        if rest.first == " ", let word = rest.dropFirst().split(whereSeparator: { $0 == " " || $0 == "$" || $0 == "\n" }).first {
            return String(word)
        }
        guard rest.first == "{" else { return nil }
        var depth = 0, out = ""
        for ch in rest {
            if ch == "{" { depth += 1; if depth == 1 { continue } }
            if ch == "}" { depth -= 1; if depth == 0 { return out } }
            out.append(ch)
        }
        return nil
    }

    func lastMatch(after marker: String, in text: String) -> String? {
        guard let r = text.range(of: marker, options: .backwards) else { return nil }
        return String(text[r.upperBound...])
    }

    func firstNumberOrWord(_ s: String) -> String {
        let trimmed = s.trimmingCharacters(in: .whitespaces)
        let line = trimmed.prefix { $0 != "\n" }
        var out = ""
        for ch in line {
            if ch.isNumber || ch == "-" || ch == "." || ch == "," || (ch == "/" && !out.isEmpty) { out.append(ch) } else if !out.isEmpty { break }
        }
        return out.isEmpty ? String(line) : out
    }

    /// Canonical form for comparison: no thousands separators, spaces or trailing period; integers without ".0".
    public static func normalize(_ s: String) -> String {
        var t = s.trimmingCharacters(in: .whitespacesAndNewlines)
        t = t.replacingOccurrences(of: ",", with: "").replacingOccurrences(of: " ", with: "").replacingOccurrences(of: "$", with: "")
        while t.hasSuffix(".") { t.removeLast() }
        if let d = Double(t), d == d.rounded(), abs(d) < 1e15 { return String(Int(d)) }
        if let d = Double(t) { return String(d) }
        return t
    }
}
