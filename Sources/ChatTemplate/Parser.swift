// Statements and expressions of the Jinja subset: if/elif/else, for (with loop variables,
// an inline filter and else), set (names and namespace attributes), output; expressions
// with Jinja's precedence, filters, tests, attribute/subscript/slice access and calls.

indirect enum Expr {
    case literal(JinjaValue)
    case name(String)
    case list([Expr])
    case dict([(Expr, Expr)])
    case attribute(Expr, String)
    case subscriptAccess(Expr, Expr)
    case slice(Expr, Expr?, Expr?)
    case call(Expr, [Expr], [(String, Expr)])
    case filter(Expr, String, [Expr], [(String, Expr)])
    case test(Expr, String, [Expr], negated: Bool)
    case unary(String, Expr)
    case binary(String, Expr, Expr)
    case conditional(Expr, Expr, Expr?)
}

indirect enum Node {
    case text(String)
    case output(Expr)
    case ifBlock([(Expr, [Node])], [Node])
    case forBlock([String], Expr, Expr?, [Node], [Node])
    case set([String], Expr)
}

/// How deep a template may nest: brackets and prefix operators while parsing, the expression
/// tree it builds (left-deep chains like `a + a + …` included), and blocks. Rendering
/// recurses as deep as these, so they bound its stack.
let maximumTemplateNesting = 64, maximumExpressionDepth = 256

struct ExprParser {
    var tokens: [Token]
    var i = 0
    /// Brackets and prefix operators open at this point of the parse.
    var nesting = 0
    /// Operators chained so far in this tag: a chain builds a left-deep tree, whose depth
    /// (and the recursion that evaluates and frees it) must stay bounded as it is built.
    var links = 0

    /// Counts one more operator in a chain.
    mutating func link() throws {
        links += 1
        guard links <= maximumExpressionDepth else { throw TemplateError("more than \(maximumExpressionDepth) operators in one tag (an expression levels deep)") }
    }

    init(_ tokens: [Token]) { self.tokens = tokens }

    var atEnd: Bool { i >= tokens.count }
    func peek(_ offset: Int = 0) -> Token? { i + offset < tokens.count ? tokens[i + offset] : nil }
    mutating func next() -> Token? { defer { i += 1 }; return peek() }
    mutating func accept(_ op: String) -> Bool { if peek() == .op(op) { i += 1; return true }; return false }
    mutating func acceptName(_ n: String) -> Bool { if peek() == .name(n) { i += 1; return true }; return false }
    mutating func expect(_ op: String) throws { guard accept(op) else { throw TemplateError("expected '\(op)' near \(String(describing: peek()))") } }
    mutating func name() throws -> String {
        guard case let .name(n) = next() else { throw TemplateError("expected a name near token \(i)") }
        return n
    }

    mutating func expression() throws -> Expr {
        nesting += 1
        defer { nesting -= 1 }
        guard nesting <= maximumTemplateNesting else { throw TemplateError("expression nested more than \(maximumTemplateNesting) deep") }
        let value = try orExpr()
        if acceptName("if") {
            let condition = try orExpr()
            let otherwise = acceptName("else") ? try expression() : nil
            return .conditional(condition, value, otherwise)
        }
        return value
    }

    mutating func orExpr() throws -> Expr {
        var e = try andExpr()
        while acceptName("or") { try link(); e = .binary("or", e, try andExpr()) }
        return e
    }

    mutating func andExpr() throws -> Expr {
        var e = try notExpr()
        while acceptName("and") { try link(); e = .binary("and", e, try notExpr()) }
        return e
    }

    mutating func notExpr() throws -> Expr {
        if acceptName("not") {
            nesting += 1; defer { nesting -= 1 }
            guard nesting <= maximumTemplateNesting else { throw TemplateError("'not' repeated more than \(maximumTemplateNesting) times") }
            return .unary("not", try notExpr())
        }
        return try comparison()
    }

    mutating func comparison() throws -> Expr {
        var e = try concat()
        while true {
            try link()
            if let t = peek(), case let .op(op) = t, ["==", "!=", "<", ">", "<=", ">="].contains(op) {
                i += 1; e = .binary(op, e, try concat())
            } else if acceptName("in") {
                e = .binary("in", e, try concat())
            } else if peek() == .name("not") && peek(1) == .name("in") {
                i += 2; e = .unary("not", .binary("in", e, try concat()))
            } else if acceptName("is") {
                let negated = acceptName("not")
                let test = try name()
                var args: [Expr] = []
                if accept("(") {
                    args = try arguments().0
                } else if let t = peek(), case .string = t {
                    args = [try primary()]
                } else if let t = peek(), case .int = t {
                    args = [try primary()]
                }
                e = .test(e, test, args, negated: negated)
            } else {
                return e
            }
        }
    }

    mutating func concat() throws -> Expr {
        var e = try additive()
        while accept("~") { try link(); e = .binary("~", e, try additive()) }
        return e
    }

    mutating func additive() throws -> Expr {
        var e = try multiplicative()
        while true {
            try link()
            if accept("+") { e = .binary("+", e, try multiplicative()) } else if accept("-") { e = .binary("-", e, try multiplicative()) } else { return e }
        }
    }

    mutating func multiplicative() throws -> Expr {
        var e = try unary()
        while true {
            try link()
            if accept("*") {
                e = .binary("*", e, try unary())
            } else if accept("//") {
                e = .binary("//", e, try unary())
            } else if accept("/") {
                e = .binary("/", e, try unary())
            } else if accept("%") {
                e = .binary("%", e, try unary())
            } else {
                return e
            }
        }
    }

    mutating func unary() throws -> Expr {
        if peek() == .op("-") || peek() == .op("+") {
            nesting += 1; defer { nesting -= 1 }
            guard nesting <= maximumTemplateNesting else { throw TemplateError("a sign repeated more than \(maximumTemplateNesting) times") }
            return accept("-") ? .unary("-", try unary()) : (accept("+") ? try unary() : try unary())
        }
        return try filtered()
    }

    mutating func filtered() throws -> Expr {
        var e = try postfix(try primary())
        while accept("|") {
            try link()
            let f = try name()
            var args: [Expr] = [], kwargs: [(String, Expr)] = []
            if accept("(") { (args, kwargs) = try arguments() }
            e = .filter(e, f, args, kwargs)
        }
        return e
    }

    mutating func postfix(_ base: Expr) throws -> Expr {
        var e = base
        while true {
            try link()
            if accept(".") {
                e = .attribute(e, try name())
            } else if accept("[") {
                var start: Expr? = nil
                if peek() != .op(":") { start = try expression() }
                if accept(":") {
                    let end: Expr? = peek() == .op("]") ? nil : try expression()
                    try expect("]")
                    e = .slice(e, start, end)
                } else {
                    try expect("]")
                    e = .subscriptAccess(e, start!)
                }
            } else if accept("(") {
                let (args, kwargs) = try arguments()
                e = .call(e, args, kwargs)
            } else {
                return e
            }
        }
    }

    /// Arguments after an opening parenthesis, through the closing one.
    mutating func arguments() throws -> ([Expr], [(String, Expr)]) {
        var args: [Expr] = [], kwargs: [(String, Expr)] = []
        while !accept(")") {
            if case let .name(n) = peek(), peek(1) == .op("=") {
                i += 2; kwargs.append((n, try expression()))
            } else {
                args.append(try expression())
            }
            if !accept(",") { try expect(")"); break }
        }
        return (args, kwargs)
    }

    mutating func primary() throws -> Expr {
        guard let t = next() else { throw TemplateError("unexpected end of expression") }
        switch t {
        case let .string(s):
            var value = s
            while case let .string(more) = peek() { value += more; i += 1 }  // adjacent literals concatenate
            return .literal(.string(value))
        case let .int(n): return .literal(.int(n))
        case let .double(d): return .literal(.double(d))
        case let .name(n):
            switch n {
            case "true", "True": return .literal(.bool(true))
            case "false", "False": return .literal(.bool(false))
            case "none", "None": return .literal(.none)
            default: return .name(n)
            }
        case .op("("):
            let e = try expression()
            if accept(",") {  // tuple → list
                var items = [e]
                while !accept(")") { items.append(try expression()); if !accept(",") { try expect(")"); break } }
                return .list(items)
            }
            try expect(")")
            return e
        case .op("["):
            var items: [Expr] = []
            while !accept("]") { items.append(try expression()); if !accept(",") { try expect("]"); break } }
            return .list(items)
        case .op("{"):
            var pairs: [(Expr, Expr)] = []
            while !accept("}") {
                let k = try expression(); try expect(":"); pairs.append((k, try expression()))
                if !accept(",") { try expect("}"); break }
            }
            return .dict(pairs)
        default:
            throw TemplateError("unexpected token \(t)")
        }
    }
}

extension Expr {
    var children: [Expr] {
        switch self {
        case .literal, .name: []
        case let .list(items): items
        case let .dict(pairs): pairs.flatMap { [$0.0, $0.1] }
        case let .attribute(base, _): [base]
        case let .subscriptAccess(base, index): [base, index]
        case let .slice(base, start, end): [base] + [start, end].compactMap { $0 }
        case let .call(callee, args, kwargs): [callee] + args + kwargs.map(\.1)
        case let .filter(base, _, args, kwargs): [base] + args + kwargs.map(\.1)
        case let .test(base, _, args, _): [base] + args
        case let .unary(_, x): [x]
        case let .binary(_, l, r): [l, r]
        case let .conditional(c, v, o): [c, v] + [o].compactMap { $0 }
        }
    }

    /// The tree's depth, found without recursion (so a deep tree is an error, not a crash).
    var depth: Int {
        var deepest = 0
        var stack = [(self, 1)]
        while let (e, d) = stack.popLast() {
            deepest = max(deepest, d)
            if deepest > maximumExpressionDepth { return deepest }
            for c in e.children { stack.append((c, d + 1)) }
        }
        return deepest
    }
}

/// Builds the statement tree from lexed segments.
struct TemplateParser {
    let segments: [Segment]
    var i = 0
    /// Blocks open at this point.
    var blocks = 0

    /// An expression of a tag, its tree depth checked.
    func checked(_ e: Expr) throws -> Expr {
        guard e.depth <= maximumExpressionDepth else { throw TemplateError("an expression more than \(maximumExpressionDepth) levels deep") }
        return e
    }

    mutating func parse(until terminators: Set<String>) throws -> ([Node], String?) {
        blocks += 1
        defer { blocks -= 1 }
        guard blocks <= maximumTemplateNesting else { throw TemplateError("blocks nested more than \(maximumTemplateNesting) deep") }
        var nodes: [Node] = []
        while i < segments.count {
            let segment = segments[i]
            i += 1
            switch segment {
            case let .text(t): nodes.append(.text(t))
            case let .output(tokens):
                var p = ExprParser(tokens)
                nodes.append(.output(try checked(try p.expression())))
                guard p.atEnd else { throw TemplateError("unexpected tokens after expression in {{ }}") }
            case let .statement(tokens):
                guard case let .name(keyword) = tokens.first else { throw TemplateError("empty statement") }
                if terminators.contains(keyword) {
                    i -= 1
                    return (nodes, keyword)
                }
                var p = ExprParser(Array(tokens.dropFirst()))
                switch keyword {
                case "if":
                    var branches = [(try checked(try p.expression()), [Node]())]
                    var elseBody: [Node] = []
                    while true {
                        let (body, end) = try parse(until: ["elif", "else", "endif"])
                        branches[branches.count - 1].1 = body
                        guard let end, case let .statement(t) = segments[i] else { throw TemplateError("missing endif") }
                        i += 1
                        if end == "elif" {
                            var q = ExprParser(Array(t.dropFirst()))
                            branches.append((try checked(try q.expression()), []))
                        } else if end == "else" {
                            let (body, end2) = try parse(until: ["endif"])
                            guard end2 != nil else { throw TemplateError("missing endif") }
                            i += 1
                            elseBody = body
                            break
                        } else {
                            break
                        }
                    }
                    nodes.append(.ifBlock(branches, elseBody))
                case "for":
                    var names = [try p.name()]
                    while p.accept(",") { names.append(try p.name()) }
                    guard p.acceptName("in") else { throw TemplateError("expected 'in' in for") }
                    let iterable = try checked(try p.orExpr())
                    let condition = p.acceptName("if") ? try checked(try p.expression()) : nil
                    let (body, end) = try parse(until: ["else", "endfor"])
                    guard let end else { throw TemplateError("missing endfor") }
                    i += 1
                    var elseBody: [Node] = []
                    if end == "else" {
                        let (b, e2) = try parse(until: ["endfor"])
                        guard e2 != nil else { throw TemplateError("missing endfor") }
                        i += 1
                        elseBody = b
                    }
                    nodes.append(.forBlock(names, iterable, condition, body, elseBody))
                case "set":
                    var target = [try p.name()]
                    if p.accept(".") { target.append(try p.name()) }
                    try p.expect("=")
                    nodes.append(.set(target, try checked(try p.expression())))
                case "generation", "endgeneration":
                    break  // transformers' assistant-mask markers: no output of their own
                default:
                    throw TemplateError("unsupported statement '\(keyword)'")
                }
            }
        }
        return (nodes, nil)
    }
}
