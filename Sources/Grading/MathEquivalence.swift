// Mathematical equivalence of a final answer and a reference, both LaTeX or plain text, as
// the REDI paper grades (with Math-Verify): `\frac{1}{2}` = `0.5` = `50\%`, `\sqrt2/2` =
// `\frac{\sqrt{2}}{2}`, `x = 5` = `5`, `\{1, 2\}` = `2, 1`, `[1, 2)` ≠ `[1, 2]`. Our own parser
// and numeric comparison, not a computer-algebra system; it follows Math-Verify's rules
// (decimals compared to 6 places, integers exactly, expressions at sample points, sets
// unordered, tuples ordered, units and degree signs ignored), and Tests/GradingTests checks
// it against Math-Verify's verdicts on several hundred answer pairs.
import Foundation

public enum MathEquivalence {
    /// Whether `answer` (what a sample boxed) equals `reference` (the benchmark's answer).
    public static func equivalent(reference: String, answer: String) -> Bool {
        let gold = MathValue.parse(reference), pred = MathValue.parse(answer)
        if let gold, let pred, MathValue.equal(gold: gold, pred: pred) { return true }
        let g = MathValue.textKey(reference), p = MathValue.textKey(answer)
        return !g.isEmpty && g == p
    }
}

/// An expression over numbers, constants and symbols, evaluated in floating point.
indirect enum MathExpr {
    /// A written number; `decimal` when it has a decimal point (compared to 6 places).
    case number(Double, decimal: Bool)
    case constant(Double)
    case symbol(String)
    case negate(MathExpr)
    case add(MathExpr, MathExpr), multiply(MathExpr, MathExpr), divide(MathExpr, MathExpr), power(MathExpr, MathExpr)
    case function(String, [MathExpr])
    case percent(MathExpr)

    func value(_ env: [String: Double]) -> Double {
        switch self {
        case let .number(v, _), let .constant(v): return v
        case let .symbol(s): return env[s] ?? .nan
        case let .negate(a): return -a.value(env)
        case let .add(a, b): return a.value(env) + b.value(env)
        case let .multiply(a, b): return a.value(env) * b.value(env)
        case let .divide(a, b): return a.value(env) / b.value(env)
        case let .power(a, b): return pow(a.value(env), b.value(env))
        case let .percent(a): return a.value(env) / 100
        case let .function(name, args):
            let x = args.map { $0.value(env) }
            switch (name, x.count) {
            case ("sqrt", 1): return x[0].squareRoot()
            case ("root", 2): return pow(x[1], 1 / x[0])
            case ("abs", 1): return abs(x[0])
            case ("factorial", 1): return x[0] >= 0 && x[0] == x[0].rounded() ? tgamma(x[0] + 1) : .nan
            case ("binom", 2):
                guard x[1] >= 0, x[1] <= x[0] else { return 0 }
                let logValue: Double = lgamma(x[0] + 1) - lgamma(x[1] + 1) - lgamma(x[0] - x[1] + 1)
                return exp(logValue).rounded()
            case ("log", 2): return log(x[1]) / log(x[0])
            case ("ln", 1), ("log", 1): return log(x[0])
            case ("exp", 1): return exp(x[0])
            case ("sin", 1): return sin(x[0])
            case ("cos", 1): return cos(x[0])
            case ("tan", 1): return tan(x[0])
            case ("sec", 1): return 1 / cos(x[0])
            case ("csc", 1): return 1 / sin(x[0])
            case ("cot", 1): return 1 / tan(x[0])
            case ("arcsin", 1): return asin(x[0])
            case ("arccos", 1): return acos(x[0])
            case ("arctan", 1): return atan(x[0])
            default: return .nan
            }
        }
    }

    var symbols: Set<String> {
        switch self {
        case .number, .constant: return []
        case let .symbol(s): return [s]
        case let .negate(a), let .percent(a): return a.symbols
        case let .add(a, b), let .multiply(a, b), let .divide(a, b), let .power(a, b): return a.symbols.union(b.symbols)
        case let .function(_, args): return args.reduce(into: []) { $0.formUnion($1.symbols) }
        }
    }

    /// A written number, possibly negated or a percentage: Math-Verify's "atomic" numbers.
    var atomic: (decimal: Bool, percent: Bool, magnitude: Double)? {
        switch self {
        case let .number(v, decimal): return (decimal, false, v)
        case let .negate(a): return a.atomic.map { ($0.decimal, $0.percent, -$0.magnitude) }
        case let .percent(a): return a.atomic.flatMap { $0.percent ? nil : ($0.decimal, true, $0.magnitude) }
        default: return nil
        }
    }
}

/// A parsed answer: an expression, or the shapes answers come in.
indirect enum MathValue {
    case expression(MathExpr)
    case text(String)
    /// `(a, b, c)`, a matrix's rows: ordered.
    case tuple([MathValue])
    /// `\{a, b\}` or a bare list `a, b`: unordered.
    case set([MathValue])
    case interval(MathExpr, MathExpr, lowerClosed: Bool, upperClosed: Bool)
    /// `lhs op rhs` (op one of = < > ≤ ≥).
    case relation(MathValue, String, MathValue)

    // MARK: Comparison

    static func equal(gold: MathValue, pred: MathValue) -> Bool {
        switch (gold, pred) {
        case let (.relation(gl, gop, gr), .relation(pl, pop, pr)):
            if gop == "=", pop == "=" {
                // Two assignments compare names and values; otherwise lhs − rhs up to sign.
                if case let .expression(.symbol(g)) = gl, case let .expression(.symbol(p)) = pl { return g == p && equal(gold: gr, pred: pr) }
                guard let g = difference(gl, gr), let p = difference(pl, pr) else { return false }
                return expressionsEqual(g, p) || expressionsEqual(g, .negate(p))
            }
            let flip = [">": "<", "≥": "≤", "<": ">", "≤": "≥"]
            if gop == pop { return equal(gold: gl, pred: pl) && equal(gold: gr, pred: pr) }
            if flip[gop] == pop { return equal(gold: gl, pred: pr) && equal(gold: gr, pred: pl) }
            return false
        case let (.relation(_, op, rhs), _):
            // `x = 5` against `5`: the value assigned.
            guard op == "=", case .expression(.symbol) = gold.lhs else { return false }
            return equal(gold: rhs, pred: pred)
        case let (_, .relation(_, op, rhs)):
            return op == "=" && equal(gold: gold, pred: rhs)
        case let (.expression(a), .expression(b)):
            return expressionsEqual(a, b)
        case let (.text(a), .text(b)):
            return a == b
        case let (.text(t), .expression(.symbol(s))), let (.expression(.symbol(s)), .text(t)):
            return s.lowercased() == t
        case let (.set(a), .set(b)), let (.set(a), .tuple(b)), let (.tuple(a), .set(b)):
            return a.allSatisfy { x in b.contains { equal(gold: x, pred: $0) } } && b.allSatisfy { y in a.contains { equal(gold: $0, pred: y) } }
        case let (.tuple(a), .tuple(b)):
            return a.count == b.count && zip(a, b).allSatisfy { equal(gold: $0, pred: $1) }
        case let (.interval(a, b, ac, bc), .interval(c, d, cc, dc)):
            return ac == cc && bc == dc && expressionsEqual(a, c) && expressionsEqual(b, d)
        case let (.interval(a, b, _, _), .tuple(t)), let (.tuple(t), .interval(a, b, _, _)):
            guard t.count == 2, case let .expression(c) = t[0], case let .expression(d) = t[1] else { return false }
            return expressionsEqual(a, c) && expressionsEqual(b, d)
        default:
            return false
        }
    }

    var lhs: MathValue? { if case let .relation(l, _, _) = self { return l }; return nil }

    static func difference(_ l: MathValue, _ r: MathValue) -> MathExpr? {
        guard case let .expression(a) = l, case let .expression(b) = r else { return nil }
        return .add(a, .negate(b))
    }

    /// Math-Verify's numeric rules: a decimal on either side compares both rounded to 6
    /// places; two integers (a percentage's number counts) exactly; anything else as values,
    /// at a few points when there are symbols.
    static func expressionsEqual(_ a: MathExpr, _ b: MathExpr) -> Bool {
        let sa = a.symbols, sb = b.symbols
        if sa.isEmpty, sb.isEmpty {
            let x = a.value([:]), y = b.value([:])
            if let ka = a.atomic, let kb = b.atomic, !ka.decimal, !kb.decimal, ka.percent != kb.percent {
                return ka.magnitude == kb.magnitude || close(x, y)
            }
            if a.atomic?.decimal == true || b.atomic?.decimal == true {
                return x.isFinite && y.isFinite && ((x * 1e6).rounded() == (y * 1e6).rounded())
            }
            if x.isInfinite || y.isInfinite { return x == y }
            return close(x, y)
        }
        guard sa == sb else { return false }
        // The same sample points on both sides; a point where either is undefined is skipped.
        let names = sa.sorted()
        var compared = 0
        for trial in 0..<4 {
            var env: [String: Double] = [:]
            for (i, n) in names.enumerated() { env[n] = 0.37 + 0.61 * Double((trial * 7 + i * 3) % 11) + 0.013 * Double(i) }
            let x = a.value(env), y = b.value(env)
            guard x.isFinite, y.isFinite else { continue }
            guard close(x, y) else { return false }
            compared += 1
        }
        return compared > 0
    }

    static func close(_ x: Double, _ y: Double) -> Bool {
        x == y || abs(x - y) <= 1e-9 * max(1, abs(x), abs(y))
    }

    // MARK: Parsing

    /// Parses an answer, or nil when it is not mathematics this parser reads.
    static func parse(_ raw: String) -> MathValue? {
        var s = normalized(raw)
        if let inner = AnswerRule.lastBoxed(in: s, commands: ["\\boxed", "\\fbox"]) { s = inner }
        for wrapper in ["\\text", "\\textbf", "\\mathrm", "\\mbox", "\\mathbf", "\\textit"] where s.hasPrefix(wrapper + "{") && s.hasSuffix("}") {
            if AnswerRule.lastBoxed(in: s, commands: [wrapper]) == String(s.dropFirst(wrapper.count + 1).dropLast()) {
                s = String(s.dropFirst(wrapper.count + 1).dropLast()).trimmingCharacters(in: .whitespaces)
            }
        }
        // A word or words: text, not a product of letters.
        let letters = s.filter(\.isLetter)
        if letters.count >= 2, s.allSatisfy({ $0.isLetter || $0 == " " }) { return .text(textKey(s)) }
        guard let tokens = MathTokens.read(s), !tokens.isEmpty else { return nil }
        var parser = MathParser(tokens: tokens)
        guard let value = parser.parseAnswer(), parser.atEnd else { return nil }
        return value
    }

    /// LaTeX spacing, sizing, degree and currency marks removed; `\dfrac` as `\frac`.
    static func normalized(_ raw: String) -> String {
        var s = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        for (from, to) in [
            ("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"), ("\\dbinom", "\\binom"), ("\\tbinom", "\\binom"),
            ("\\left", ""), ("\\right", ""), ("\\displaystyle", ""), ("\\!", ""), ("\\,", ""), ("\\;", ""), ("\\:", ""),
            ("\\qquad", " "), ("\\quad", " "), ("\\ ", " "), ("~", " "), ("^{\\circ}", ""), ("^\\circ", ""), ("\\circ", ""),
            ("°", ""), ("\\$", ""), ("$", ""), ("{,}", ","), ("\\(", ""), ("\\)", ""), ("\\[", ""), ("\\]", ""),
            ("\\leq", "≤"), ("\\geq", "≥"), ("\\le", "≤"), ("\\ge", "≥"), ("\\infty", "∞"), ("\\cdot", "·"), ("\\times", "·")
        ] {
            s = s.replacingOccurrences(of: from, with: to)
        }
        s = s.trimmingCharacters(in: .whitespaces)
        while s.hasSuffix(".") { s.removeLast() }
        return s.trimmingCharacters(in: .whitespaces)
    }

    /// Text compared as text: lower case, no markup, spaces or brackets.
    static func textKey(_ raw: String) -> String {
        var s = normalized(raw).lowercased()
        for w in ["\\text", "\\textbf", "\\mathrm", "\\mbox", "\\mathbf", "\\textit", "\\boxed"] { s = s.replacingOccurrences(of: w, with: "") }
        return String(s.filter { !" {}()\\.".contains($0) })
    }
}

/// Tokens of a LaTeX answer.
enum MathToken: Equatable {
    case number(Double, decimal: Bool)
    case letter(Character)
    case command(String)
    case symbol(Character)
    /// `\text{…}` and its kin inside an answer (a unit): dropped by the parser.
    case text(String)
}

enum MathTokens {
    /// Answers longer or more deeply nested than any benchmark's are not read (nil): the
    /// parser recurses per bracket, and a sample is outside text.
    static let maximumLength = 4096, maximumDepth = 64

    static func read(_ s: String) -> [MathToken]? {
        guard s.count <= maximumLength else { return nil }
        var depth = 0
        for ch in s {
            if "({[|".contains(ch) { depth += 1; if depth > maximumDepth { return nil } } else if ")}]".contains(ch) { depth = max(0, depth - 1) }
        }
        let c = Array(s)
        var out: [MathToken] = [], i = 0
        func isDigit(_ k: Int) -> Bool { k < c.count && c[k].isASCII && c[k].isNumber }
        while i < c.count {
            let ch = c[i]
            if ch == " " || ch == "\n" || ch == "\t" { i += 1; continue }
            if isDigit(i) || (ch == "." && isDigit(i + 1)) {
                var digits = "", decimal = false
                while isDigit(i) { digits.append(c[i]); i += 1 }
                // Thousands separators: ",ddd" groups after at most three digits.
                if digits.count <= 3 {
                    while i + 3 < c.count, c[i] == ",", isDigit(i + 1), isDigit(i + 2), isDigit(i + 3), !isDigit(i + 4) {
                        digits += String(c[(i + 1)...(i + 3)]); i += 4
                    }
                }
                if i < c.count, c[i] == ".", isDigit(i + 1) {
                    decimal = true; digits.append("."); i += 1
                    while isDigit(i) { digits.append(c[i]); i += 1 }
                }
                guard let v = Double(digits.isEmpty ? "0" : (digits.hasPrefix(".") ? "0" + digits : digits)) else { return nil }
                out.append(.number(v, decimal: decimal))
                continue
            }
            if ch == "\\" {
                i += 1
                guard i < c.count else { return nil }
                if !c[i].isLetter { out.append(.command(String(c[i]))); i += 1; continue }
                var name = ""
                while i < c.count, c[i].isLetter, c[i].isASCII { name.append(c[i]); i += 1 }
                if ["text", "textbf", "mathrm", "mbox", "mathbf", "textit", "operatorname", "begin", "end"].contains(name) {
                    while i < c.count, c[i] == " " { i += 1 }
                    guard i < c.count, c[i] == "{" else { return nil }
                    var depth = 0, body = ""
                    while i < c.count {
                        if c[i] == "{" { depth += 1; if depth == 1 { i += 1; continue } }
                        if c[i] == "}" { depth -= 1; if depth == 0 { i += 1; break } }
                        body.append(c[i]); i += 1
                    }
                    guard depth == 0 else { return nil }
                    switch name {
                    case "operatorname": out.append(.command(body))
                    case "begin", "end": out.append(.command(name + ":" + body))
                    case "mathrm" where body.count == 1 && body.first!.isLetter, "mathbf" where body.count == 1 && body.first!.isLetter:
                        out.append(.letter(body.first!))
                    default: out.append(.text(body))
                    }
                    continue
                }
                out.append(.command(name))
                continue
            }
            if ch.isLetter && ch.isASCII { out.append(.letter(ch)); i += 1; continue }
            if "+-*/^_(){}[],=<>≤≥!|%·∞&".contains(ch) { out.append(.symbol(ch)); i += 1; continue }
            if ch == "π" { out.append(.command("pi")); i += 1; continue }
            if ch == "√" { out.append(.command("sqrt")); i += 1; continue }
            if ch == "−" { out.append(.symbol("-")); i += 1; continue }
            return nil
        }
        return out
    }
}

/// Recursive descent over the tokens: lists, relations, sums, products, powers, atoms.
struct MathParser {
    let tokens: [MathToken]
    var i = 0
    init(tokens: [MathToken]) { self.tokens = tokens }

    /// Whether only units (dropped text) are left.
    var atEnd: Bool {
        tokens[min(i, tokens.count)...].allSatisfy {
            if case .text = $0 { return true }; return false
        }
    }
    var peek: MathToken? { i < tokens.count ? tokens[i] : nil }
    mutating func skipUnits() { while let t = peek, case .text = t { i += 1 } }
    mutating func take(_ t: MathToken) -> Bool { skipUnits(); if peek == t { i += 1; return true }; return false }

    static let functions: Set<String> = ["sin", "cos", "tan", "sec", "csc", "cot", "arcsin", "arccos", "arctan", "ln", "log", "exp"]
    static let greek: Set<String> = [
        "alpha", "beta", "gamma", "delta", "epsilon", "theta", "lambda", "mu", "sigma", "phi", "omega", "rho", "tau", "psi", "chi", "eta", "zeta", "xi", "nu", "kappa"
    ]

    /// A whole answer: one value, or a bare comma list (a set, as Math-Verify reads `1, 2`).
    mutating func parseAnswer() -> MathValue? {
        guard let first = parseRelation() else { return nil }
        var items = [first]
        while take(.symbol(",")) { guard let v = parseRelation() else { return nil }; items.append(v) }
        return items.count == 1 ? first : .set(items)
    }

    mutating func parseRelation() -> MathValue? {
        guard var lhs = parseValue() else { return nil }
        skipUnits()
        while case let .symbol(op)? = peek, "=<>≤≥".contains(op) {
            i += 1
            guard let rhs = parseValue() else { return nil }
            // A chain `a = b = c` keeps its first side and last value.
            if case let .relation(l, o, _) = lhs { lhs = .relation(l, o, rhs) } else { lhs = .relation(lhs, String(op), rhs) }
            skipUnits()
        }
        return lhs
    }

    /// A sum, or a bracketed tuple / interval / set standing alone.
    mutating func parseValue() -> MathValue? {
        skipUnits()
        let start = i
        if let bracketed = parseBracketed() {
            skipUnits()
            // Followed by an operator, a parenthesis was grouping: parse again as an expression.
            if case let .symbol(s)? = peek, "+-*/^·".contains(s) { i = start } else { return bracketed }
        } else {
            i = start
        }
        return parseSum().map(MathValue.expression)
    }

    /// `(a, b, …)`, `[a, b)`, `\{a, b\}`, a matrix; nil (position unchanged) for anything else.
    mutating func parseBracketed() -> MathValue? {
        guard let t = peek else { return nil }
        switch t {
        case .command("{"):
            i += 1
            var items: [MathValue] = []
            if take(.command("}")) { return .set([]) }
            repeat { guard let v = parseRelation() else { return nil }; items.append(v) } while take(.symbol(","))
            return take(.command("}")) ? .set(items) : nil
        case .symbol("("), .symbol("["):
            let open = t
            i += 1
            var items: [MathValue] = []
            repeat { guard let v = parseRelation() else { return nil }; items.append(v) } while take(.symbol(","))
            skipUnits()
            guard case let .symbol(close)? = peek, close == ")" || close == "]" else { return nil }
            i += 1
            guard items.count >= 2 else { return nil }
            let lowerClosed = open == .symbol("["), upperClosed = close == "]"
            if items.count == 2, case let .expression(a) = items[0], case let .expression(b) = items[1] {
                // Two real ends in order make an interval (as Math-Verify reads `(1, 2)`); else a pair.
                let x = a.value([:]), y = b.value([:])
                if (lowerClosed || upperClosed) || (a.symbols.isEmpty && b.symbols.isEmpty && x < y) {
                    return .interval(a, b, lowerClosed: lowerClosed, upperClosed: upperClosed)
                }
            }
            return lowerClosed || upperClosed ? nil : .tuple(items)
        case let .command(name) where name.hasPrefix("begin:") && name.hasSuffix("matrix"):
            i += 1
            var rows: [MathValue] = [], row: [MathValue] = []
            while true {
                skipUnits()
                if case let .command(end)? = peek, end.hasPrefix("end:") { i += 1; break }
                guard let v = parseSum() else { return nil }
                row.append(.expression(v))
                if take(.symbol("&")) { continue }
                if take(.command("\\")) { rows.append(.tuple(row)); row = []; continue }
            }
            if !row.isEmpty { rows.append(.tuple(row)) }
            return .tuple(rows)
        default:
            return nil
        }
    }

    mutating func parseSum() -> MathExpr? {
        guard var e = parseProduct() else { return nil }
        while true {
            skipUnits()
            if take(.symbol("+")) {
                guard let r = parseProduct() else { return nil }; e = .add(e, r)
            } else if take(.symbol("-")) {
                guard let r = parseProduct() else { return nil }; e = .add(e, .negate(r))
            } else {
                return e
            }
        }
    }

    mutating func parseProduct() -> MathExpr? {
        guard var e = parseUnary() else { return nil }
        while true {
            skipUnits()
            if take(.symbol("*")) || take(.symbol("·")) {
                guard let r = parseUnary() else { return nil }; e = .multiply(e, r)
            } else if take(.symbol("/")) || take(.command("div")) {
                guard let r = parseUnary() else { return nil }; e = .divide(e, r)
            } else if startsAtom {
                let mixed = peek == .command("frac")
                guard let r = parsePower() else { return nil }
                // `3\frac{1}{2}` is a mixed number (3½), as Math-Verify reads it.
                if mixed, case .number(_, false) = e, case .divide(.number(_, false), .number(_, false)) = r { e = .add(e, r) } else { e = .multiply(e, r) }
            } else {
                return e
            }
        }
    }

    /// Whether the next token begins a factor written without an operator (`2x`, `3\sqrt{2}`).
    var startsAtom: Bool {
        switch peek {
        case .number?, .letter?: return true
        case .symbol("(")?, .symbol("{")?: return true
        case let .command(c)?: return ["frac", "sqrt", "pi", "binom"].contains(c) || MathParser.functions.contains(c) || MathParser.greek.contains(c)
        default: return false
        }
    }

    mutating func parseUnary() -> MathExpr? {
        skipUnits()
        if take(.symbol("-")) { return parseUnary().map(MathExpr.negate) }
        if take(.symbol("+")) { return parseUnary() }
        return parsePower()
    }

    mutating func parsePower() -> MathExpr? {
        guard var base = parsePostfix() else { return nil }
        if take(.symbol("^")) {
            guard let exponent = parseArgument() else { return nil }
            base = .power(base, exponent)
            while take(.symbol("!")) { base = .function("factorial", [base]) }
        }
        return base
    }

    mutating func parsePostfix() -> MathExpr? {
        guard var e = parseAtom() else { return nil }
        while true {
            if take(.symbol("!")) { e = .function("factorial", [e]) } else if take(.symbol("%")) || take(.command("%")) { e = .percent(e) } else { return e }
        }
    }

    /// A command's argument: a braced group, or one token (`\frac12`, `x^2`).
    mutating func parseArgument() -> MathExpr? {
        skipUnits()
        if take(.symbol("{")) {
            guard let e = parseSum(), take(.symbol("}")) else { return nil }
            return e
        }
        switch peek {
        case let .number(v, decimal)?:
            i += 1
            // `\frac12`: one digit per argument.
            if !decimal, v >= 10, v == v.rounded(), let d = String(Int(v)).first, let digit = Double(String(d)) {
                let rest = String(String(Int(v)).dropFirst())
                i -= 1
                var copy = tokens
                copy[i] = .number(Double(rest)!, decimal: false)
                self = MathParser(tokens: copy, at: i)
                return .number(digit, decimal: false)
            }
            return .number(v, decimal: decimal)
        default:
            return parseAtom()
        }
    }

    init(tokens: [MathToken], at index: Int) { self.tokens = tokens; i = index }

    mutating func parseAtom() -> MathExpr? {
        skipUnits()
        guard let t = peek else { return nil }
        i += 1
        switch t {
        case let .number(v, decimal): return .number(v, decimal: decimal)
        case let .letter(ch):
            if ch == "e" && !(peek == .symbol("_")) { return .constant(M_E) }
            // Math-Verify reads letters case-insensitively (`C` = `\\text{(c)}`).
            var name = String(ch).lowercased()
            if take(.symbol("_")) { guard let sub = subscriptName() else { return nil }; name += "_" + sub }
            return .symbol(name)
        case .symbol("∞"): return .constant(.infinity)
        case .symbol("("):
            guard let e = parseSum(), take(.symbol(")")) else { return nil }
            return e
        case .symbol("{"):
            guard let e = parseSum(), take(.symbol("}")) else { return nil }
            return e
        case .symbol("|"):
            guard let e = parseSum(), take(.symbol("|")) else { return nil }
            return .function("abs", [e])
        case let .command(name):
            switch name {
            case "frac":
                guard let a = parseArgument(), let b = parseArgument() else { return nil }
                return .divide(a, b)
            case "binom":
                guard let a = parseArgument(), let b = parseArgument() else { return nil }
                return .function("binom", [a, b])
            case "sqrt":
                if take(.symbol("[")) {
                    guard let n = parseSum(), take(.symbol("]")), let x = parseArgument() else { return nil }
                    return .function("root", [n, x])
                }
                return parseArgument().map { .function("sqrt", [$0]) }
            case "pi": return .constant(.pi)
            case "infty": return .constant(.infinity)
            case "{":
                return nil
            default:
                if MathParser.greek.contains(name) { return .symbol(name) }
                guard MathParser.functions.contains(name) else { return nil }
                var base: MathExpr?
                if name == "log", take(.symbol("_")) { guard let b = parseArgument() else { return nil }; base = b }
                guard let x = parsePower() else { return nil }
                return .function(name, base.map { [$0, x] } ?? [x])
            }
        default:
            return nil
        }
    }

    mutating func subscriptName() -> String? {
        if take(.symbol("{")) {
            var name = ""
            while let t = peek, t != .symbol("}") {
                switch t {
                case let .number(v, _): name += String(Int(v))
                case let .letter(c): name.append(c)
                default: return nil
                }
                i += 1
            }
            return take(.symbol("}")) ? name : nil
        }
        switch peek {
        case let .number(v, _)?: i += 1; return String(Int(v))
        case let .letter(c)?: i += 1; return String(c)
        default: return nil
        }
    }
}
