// The pre-tokenisers of byte-level BPE models, written as scanners rather than regexes so
// they are fast and exact. Each reproduces one published split pattern:
//   gpt2:   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   smollm: every \p{N} alone first (HF `Digits(individual_digits)`), then gpt2
//   qwen2:  (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+

public enum PreTokenizer: String, Sendable {
    case gpt2, smollm, qwen2

    /// Splits `text` into the pieces BPE merges within.
    public func split(_ text: String) -> [Substring.UnicodeScalarView] {
        let scalars = text.unicodeScalars
        switch self {
        case .gpt2: return Self.gpt2(scalars[...])
        case .qwen2: return Self.qwen2(scalars[...])
        case .smollm:
            var out: [Substring.UnicodeScalarView] = []
            var start = scalars.startIndex
            var i = start
            while i < scalars.endIndex {
                if scalars[i].isNumber {
                    if start < i { out += Self.gpt2(scalars[start..<i]) }
                    out.append(Substring.UnicodeScalarView(scalars[i...i]))
                    start = scalars.index(after: i)
                }
                i = scalars.index(after: i)
            }
            if start < scalars.endIndex { out += Self.gpt2(scalars[start...]) }
            return out
        }
    }

    static let contractions: [[Unicode.Scalar]] = ["s", "t", "re", "ve", "m", "ll", "d"].map { Array($0.unicodeScalars) }

    /// Length of a contraction starting at `i` (which holds an apostrophe), or 0.
    static func contraction(_ s: Substring.UnicodeScalarView, _ i: String.Index, caseInsensitive: Bool) -> Int {
        guard s[i] == "'" else { return 0 }
        for c in contractions {
            var j = s.index(after: i), ok = true
            for ch in c {
                guard j < s.endIndex else { ok = false; break }
                let x = caseInsensitive ? Unicode.Scalar(s[j].properties.lowercaseMapping.unicodeScalars.first!.value)! : s[j]
                if x != ch { ok = false; break }
                j = s.index(after: j)
            }
            if ok { return c.count + 1 }
        }
        return 0
    }

    static func gpt2(_ s: Substring.UnicodeScalarView) -> [Substring.UnicodeScalarView] {
        var out: [Substring.UnicodeScalarView] = []
        var i = s.startIndex
        func advance(_ j: inout String.Index, while pred: (Unicode.Scalar) -> Bool) {
            while j < s.endIndex && pred(s[j]) { j = s.index(after: j) }
        }
        while i < s.endIndex {
            var j = i
            let c = contraction(s, i, caseInsensitive: false)
            if c > 0 {
                j = s.index(i, offsetBy: c)
            } else {
                // Optional single space, then a run of one class.
                var k = i
                if s[k] == " ", s.index(after: k) < s.endIndex { k = s.index(after: k) }
                let x = s[k]
                if k != i || !x.isSpace {
                    if x.isLetter {
                        j = k; advance(&j) { $0.isLetter }
                    } else if x.isNumber {
                        j = k; advance(&j) { $0.isNumber }
                    } else if !x.isSpace {
                        j = k; advance(&j) { !$0.isSpace && !$0.isLetter && !$0.isNumber }
                    }
                }
                if j == i {
                    // Whitespace: \s+(?!\S) keeps the last space for the next word, else \s+.
                    advance(&j) { $0.isSpace }
                    if j < s.endIndex, s.index(after: i) < j { j = s.index(before: j) }
                }
            }
            out.append(s[i..<j])
            i = j
        }
        return out
    }

    static func qwen2(_ s: Substring.UnicodeScalarView) -> [Substring.UnicodeScalarView] {
        var out: [Substring.UnicodeScalarView] = []
        var i = s.startIndex
        func advance(_ j: inout String.Index, while pred: (Unicode.Scalar) -> Bool) {
            while j < s.endIndex && pred(s[j]) { j = s.index(after: j) }
        }
        func isNewline(_ x: Unicode.Scalar) -> Bool { x == "\r" || x == "\n" }
        while i < s.endIndex {
            var j = i
            let x = s[i]
            let next = s.index(after: i)
            let c = contraction(s, i, caseInsensitive: true)
            if c > 0 {
                j = s.index(i, offsetBy: c)
            } else if x.isLetter {
                advance(&j) { $0.isLetter }
            } else if !isNewline(x) && !x.isNumber && next < s.endIndex && s[next].isLetter {
                j = next; advance(&j) { $0.isLetter }
            } else if x.isNumber {
                j = next
            } else {
                var k = i
                if x == " ", next < s.endIndex { k = next }
                if !s[k].isSpace && !s[k].isLetter && !s[k].isNumber {
                    j = k; advance(&j) { !$0.isSpace && !$0.isLetter && !$0.isNumber }
                    advance(&j) { isNewline($0) }
                } else {
                    // \s*[\r\n]+ : whitespace ending in newlines (greedy, backtracking to the last newline run).
                    var end = i; advance(&end) { $0.isSpace }
                    var lastNewline: String.Index? = nil
                    var m = i
                    while m < end { if isNewline(s[m]) { lastNewline = s.index(after: m) }; m = s.index(after: m) }
                    if let nl = lastNewline {
                        j = nl
                    } else {
                        j = end
                        if j < s.endIndex, s.index(after: i) < j { j = s.index(before: j) }
                    }
                }
            }
            out.append(s[i..<j])
            i = j
        }
        return out
    }
}

extension Unicode.Scalar {
    /// \p{L}
    var isLetter: Bool {
        switch properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: true
        default: false
        }
    }
    /// \p{N}
    var isNumber: Bool {
        switch properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: true
        default: false
        }
    }
    /// \s as the regex engines of these tokenisers define it (Unicode White_Space).
    var isSpace: Bool { properties.isWhitespace }
}
