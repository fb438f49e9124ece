// Renders a model's Jinja chat template over a message list, as `transformers`'
// `apply_chat_template` does (Jinja2 with trim_blocks and lstrip_blocks), for the subset
// the common chat templates use. Not a general Jinja engine: no macros, includes or blocks.
import Foundation

public struct ChatTemplate {
    let nodes: [Node]

    /// Parses `source`. - Throws: an error naming the construct it does not support.
    public init(_ source: String) throws {
        do {
            var parser = TemplateParser(segments: try lex(source))
            let (nodes, end) = try parser.parse(until: [])
            guard end == nil else { throw TemplateError("unexpected \(end!)") }
            self.nodes = nodes
        } catch let e as TemplateError {
            throw ChatTemplateError("chat template: \(e.description)")
        }
    }

    /// Renders `messages` (each with "role" and "content", plus any other keys).
    public func render(
        messages: [[String: Any]], addGenerationPrompt: Bool, bosToken: String?, eosToken: String?,
        extra: [String: Any] = [:]
    ) throws -> String {
        var globals: [String: JinjaValue] = [
            "messages": .array(
                messages.map { m in
                    // Keep role and content first, as Python dict literals would.
                    let keys = ["role", "content"].filter { m[$0] != nil } + m.keys.filter { $0 != "role" && $0 != "content" }.sorted()
                    return .object(keys.map { ($0, JinjaValue(json: m[$0]!)) })
                }),
            "add_generation_prompt": .bool(addGenerationPrompt),
            "bos_token": bosToken.map(JinjaValue.string) ?? .undefined,
            "eos_token": eosToken.map(JinjaValue.string) ?? .undefined
        ]
        for (k, v) in extra { globals[k] = JinjaValue(json: v) }
        var r = Renderer(scopes: [globals])
        do {
            try r.run(nodes)
        } catch let e as TemplateError {
            throw ChatTemplateError("chat template: \(e.description)")
        }
        return r.output
    }
}

public struct ChatTemplateError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// What one rendering may produce and do: a chat template renders a conversation, so more
/// than this is a hostile or broken template, stopped with an error rather than the process.
let maximumRenderedBytes = 64 << 20, maximumArrayCount = 1 << 20, maximumLoopIterations = 10_000_000

struct Renderer {
    var scopes: [[String: JinjaValue]]
    var output = ""
    /// Loop iterations left in this rendering.
    var iterationsLeft = maximumLoopIterations

    /// `text` appended to the output, within the size cap.
    mutating func emit(_ text: String) throws {
        guard output.utf8.count + text.utf8.count <= maximumRenderedBytes else {
            throw TemplateError("the output would pass \(maximumRenderedBytes >> 20) MiB")
        }
        output += text
    }

    func lookup(_ name: String) -> JinjaValue {
        for scope in scopes.reversed() { if let v = scope[name] { return v } }
        return .undefined
    }

    mutating func run(_ nodes: [Node]) throws {
        for node in nodes {
            switch node {
            case let .text(t): try emit(t)
            case let .output(e): try emit(try eval(e).text)
            case let .ifBlock(branches, elseBody):
                var taken = false
                for (condition, body) in branches where try eval(condition).truthy {
                    try run(body); taken = true; break
                }
                if !taken { try run(elseBody) }
            case let .forBlock(names, iterable, condition, body, elseBody):
                var items: [JinjaValue]
                switch try eval(iterable) {
                case let .array(a): items = a
                case let .object(o): items = o.map { .string($0.0) }
                case let .string(s): items = s.map { .string(String($0)) }
                case .undefined, .none: items = []
                default: throw TemplateError("cannot iterate over \(try eval(iterable).repr)")
                }
                if let condition {
                    items = try items.filter { item in
                        scopes.append(bind(names, item)); defer { scopes.removeLast() }
                        return try eval(condition).truthy
                    }
                }
                if items.isEmpty { try run(elseBody); continue }
                for (index, item) in items.enumerated() {
                    iterationsLeft -= 1
                    guard iterationsLeft >= 0 else { throw TemplateError("more than \(maximumLoopIterations) loop iterations") }
                    var scope = bind(names, item)
                    scope["loop"] = .object([
                        ("index", .int(index + 1)), ("index0", .int(index)), ("first", .bool(index == 0)),
                        ("last", .bool(index == items.count - 1)), ("length", .int(items.count)),
                        ("revindex", .int(items.count - index)), ("revindex0", .int(items.count - index - 1)),
                        ("previtem", index > 0 ? items[index - 1] : .undefined),
                        ("nextitem", index + 1 < items.count ? items[index + 1] : .undefined)
                    ])
                    scopes.append(scope)
                    defer { scopes.removeLast() }
                    try run(body)
                }
            case let .set(target, e):
                let value = try eval(e)
                if target.count == 2 {
                    guard case let .namespace(ns) = lookup(target[0]) else { throw TemplateError("\(target[0]) is not a namespace") }
                    ns.values[target[1]] = value
                } else {
                    scopes[scopes.count - 1][target[0]] = value
                }
            }
        }
    }

    func bind(_ names: [String], _ item: JinjaValue) -> [String: JinjaValue] {
        if names.count == 1 { return [names[0]: item] }
        guard case let .array(parts) = item else { return [:] }
        var scope: [String: JinjaValue] = [:]
        for (n, v) in zip(names, parts) { scope[n] = v }
        return scope
    }

    mutating func eval(_ e: Expr) throws -> JinjaValue {
        switch e {
        case let .literal(v): return v
        case let .name(n): return lookup(n)
        case let .list(items): return .array(try items.map { try eval($0) })
        case let .dict(pairs): return .object(try pairs.map { (try eval($0.0).text, try eval($0.1)) })
        case let .attribute(base, name): return member(try eval(base), name)
        case let .subscriptAccess(base, index):
            let b = try eval(base), k = try eval(index)
            switch (b, k) {
            case let (.array(a), .int(i)):
                let j = i < 0 ? a.count + i : i
                return j >= 0 && j < a.count ? a[j] : .undefined
            case let (.string(s), .int(i)):
                let chars = Array(s); let j = i < 0 ? chars.count + i : i
                return j >= 0 && j < chars.count ? .string(String(chars[j])) : .undefined
            case (_, .string(let key)): return member(b, key)
            default: return .undefined
            }
        case let .slice(base, start, end):
            let b = try eval(base)
            func bounds(_ n: Int) throws -> Range<Int> {
                func clamp(_ v: JinjaValue?, _ d: Int) -> Int {
                    guard case let .int(i)? = v else { return d }
                    return min(n, max(0, i < 0 ? n + i : i))
                }
                let lo = clamp(try start.map { try eval($0) }, 0), hi = clamp(try end.map { try eval($0) }, n)
                return lo..<max(lo, hi)
            }
            switch b {
            case let .array(a): return .array(Array(a[try bounds(a.count)]))
            case let .string(s): let c = Array(s); return .string(String(c[try bounds(c.count)]))
            default: return .undefined
            }
        case let .call(callee, args, kwargs): return try call(callee, args, kwargs)
        case let .filter(base, name, args, kwargs): return try filter(try eval(base), name, try args.map { try eval($0) }, kwargs)
        case let .test(base, name, args, negated):
            let r = try test(try eval(base), name, try args.map { try eval($0) })
            return .bool(negated ? !r : r)
        case let .unary(op, x):
            let v = try eval(x)
            if op == "not" { return .bool(!v.truthy) }
            if case let .int(i) = v {
                guard i != .min else { throw TemplateError("-(\(i)) overflows a 64-bit integer") }
                return .int(-i)
            }
            return .double(-(v.number ?? 0))
        case let .binary(op, l, r):
            if op == "and" { let a = try eval(l); return a.truthy ? try eval(r) : a }
            if op == "or" { let a = try eval(l); return a.truthy ? a : try eval(r) }
            return try binary(op, try eval(l), try eval(r))
        case let .conditional(condition, value, otherwise):
            return try eval(condition).truthy ? try eval(value) : try otherwise.map { try eval($0) } ?? .undefined
        }
    }

    func member(_ v: JinjaValue, _ name: String) -> JinjaValue {
        switch v {
        case let .object(o): return o.first { $0.0 == name }?.1 ?? .undefined
        case let .namespace(ns): return ns.values[name] ?? .undefined
        default: return .undefined
        }
    }

    /// An integer result, or an error when it overflowed.
    func checked(_ r: (partialValue: Int, overflow: Bool), _ x: Int, _ op: String, _ y: Int) throws -> Int {
        guard !r.overflow else { throw TemplateError("\(x) \(op) \(y) overflows a 64-bit integer") }
        return r.partialValue
    }

    /// A string result, or an error past the output cap.
    func sized(_ s: String) throws -> String {
        guard s.utf8.count <= maximumRenderedBytes else { throw TemplateError("a string longer than \(maximumRenderedBytes >> 20) MiB") }
        return s
    }

    func binary(_ op: String, _ a: JinjaValue, _ b: JinjaValue) throws -> JinjaValue {
        switch op {
        case "==": return .bool(a == b)
        case "!=": return .bool(a != b)
        case "~": return .string(try sized(a.text + b.text))
        case "in":
            switch b {
            case let .array(items): return .bool(items.contains(a))
            case let .string(s): return .bool(s.contains(a.text))
            case let .object(o): return .bool(o.contains { $0.0 == a.text })
            default: return .bool(false)
            }
        case "+":
            switch (a, b) {
            case let (.string(x), .string(y)): return .string(try sized(x + y))
            case let (.array(x), .array(y)):
                guard x.count + y.count <= maximumArrayCount else { throw TemplateError("a list longer than \(maximumArrayCount)") }
                return .array(x + y)
            case let (.int(x), .int(y)): return .int(try checked(x.addingReportingOverflow(y), x, "+", y))
            default:
                guard let x = a.number, let y = b.number else {
                    throw TemplateError("cannot add \(a.repr) and \(b.repr)")
                }
                return .double(x + y)
            }
        case "<", ">", "<=", ">=":
            let r: Bool
            if case let .string(x) = a, case let .string(y) = b {
                r = op == "<" ? x < y : op == ">" ? x > y : op == "<=" ? x <= y : x >= y
            } else {
                guard let x = a.number, let y = b.number else { throw TemplateError("cannot compare \(a.repr) and \(b.repr)") }
                r = op == "<" ? x < y : op == ">" ? x > y : op == "<=" ? x <= y : x >= y
            }
            return .bool(r)
        default:
            if case let .int(x) = a, case let .int(y) = b, op != "/" {
                guard y != 0 || op == "-" || op == "*" else { throw TemplateError("division by zero") }
                switch op {
                case "-": return .int(try checked(x.subtractingReportingOverflow(y), x, op, y))
                case "*": return .int(try checked(x.multipliedReportingOverflow(by: y), x, op, y))
                case "//":
                    let q = (Double(x) / Double(y)).rounded(.down)
                    guard let n = Int(exactly: q) else { throw TemplateError("\(x) // \(y) overflows") }
                    return .int(n)
                case "%":
                    // Python's sign rule; y = -1 is 0 for every x (Int.min % -1 would trap).
                    if y == -1 { return .int(0) }
                    return .int(((x % y) + y) % y)
                default: break
                }
            }
            if op == "*", case let .string(s) = a, case let .int(n) = b {
                guard n <= 0 || s.utf8.count <= maximumRenderedBytes / n else { throw TemplateError("a string repeated past \(maximumRenderedBytes >> 20) MiB") }
                return .string(String(repeating: s, count: max(0, n)))
            }
            guard let x = a.number, let y = b.number else { throw TemplateError("cannot apply \(op) to \(a.repr) and \(b.repr)") }
            switch op {
            case "-": return .double(x - y)
            case "*": return .double(x * y)
            case "/": return .double(x / y)
            case "//": return .double((x / y).rounded(.down))
            case "%": return .double(x.truncatingRemainder(dividingBy: y))
            default: throw TemplateError("unknown operator \(op)")
            }
        }
    }

    mutating func call(_ callee: Expr, _ argExprs: [Expr], _ kwargExprs: [(String, Expr)]) throws -> JinjaValue {
        let args = try argExprs.map { try eval($0) }
        var kwargs: [(String, JinjaValue)] = []
        for (k, e) in kwargExprs { kwargs.append((k, try eval(e))) }
        if case let .name(fn) = callee {
            switch fn {
            case "raise_exception": throw TemplateError(args.first?.text ?? "raise_exception")
            case "namespace":
                var values: [String: JinjaValue] = [:]
                if case let .object(o)? = args.first { for (k, v) in o { values[k] = v } }
                for (k, v) in kwargs { values[k] = v }
                return .namespace(.init(values))
            case "range":
                let ints = args.compactMap { if case let .int(i) = $0 { i } else { nil } }
                guard (1...3).contains(args.count), ints.count == args.count else { throw TemplateError("range takes 1 to 3 whole numbers") }
                let (lo, hi, step) = ints.count == 1 ? (0, ints[0], 1) : (ints[0], ints[1], ints.count > 2 ? ints[2] : 1)
                guard step != 0 else { throw TemplateError("range() step must not be zero") }
                // The element count in Double: hi - lo may overflow Int.
                let count = max(0, ((Double(hi) - Double(lo)) / Double(step)).rounded(.up))
                guard count <= Double(maximumArrayCount) else { throw TemplateError("range of \(count) numbers (at most \(maximumArrayCount))") }
                return .array(Swift.stride(from: lo, to: hi, by: step).map { .int($0) })
            case "strftime_now":
                let f = DateFormatter(); f.dateFormat = "dd MMM yyyy"
                return .string(f.string(from: Date()))
            default: throw TemplateError("unknown function \(fn)")
            }
        }
        guard case let .attribute(baseExpr, method) = callee else { throw TemplateError("unsupported call") }
        let base = try eval(baseExpr)
        switch (base, method) {
        case let (.string(s), "strip"): return .string(strip(s, args.first?.text, leading: true, trailing: true))
        case let (.string(s), "lstrip"): return .string(strip(s, args.first?.text, leading: true, trailing: false))
        case let (.string(s), "rstrip"): return .string(strip(s, args.first?.text, leading: false, trailing: true))
        case let (.string(s), "upper"): return .string(s.uppercased())
        case let (.string(s), "lower"): return .string(s.lowercased())
        case let (.string(s), "startswith"): return .bool(s.hasPrefix(args.first?.text ?? ""))
        case let (.string(s), "endswith"): return .bool(s.hasSuffix(args.first?.text ?? ""))
        case let (.string(s), "replace"): return .string(s.replacingOccurrences(of: args[0].text, with: args[1].text))
        case let (.string(s), "split"):
            if let sep = args.first?.text { return .array(s.components(separatedBy: sep).map { .string($0) }) }
            return .array(s.split(whereSeparator: { $0.isWhitespace }).map { .string(String($0)) })
        case let (.object(o), "items"): return .array(o.map { .array([.string($0.0), $0.1]) })
        case let (.object(o), "keys"): return .array(o.map { .string($0.0) })
        case let (.object(o), "values"): return .array(o.map { $0.1 })
        case (.object, "get"): let v = member(base, args[0].text); return v == .undefined ? (args.count > 1 ? args[1] : .none) : v
        default: throw TemplateError("unsupported method \(method) on \(base.repr)")
        }
    }

    func strip(_ s: String, _ chars: String?, leading: Bool, trailing: Bool) -> String {
        let set = chars.map { Set($0) }
        func drop(_ c: Character) -> Bool { set?.contains(c) ?? c.isWhitespace }
        var sub = Substring(s)
        if leading { sub = sub.drop(while: drop) }
        if trailing { while let last = sub.last, drop(last) { sub = sub.dropLast() } }
        return String(sub)
    }

    func filter(_ v: JinjaValue, _ name: String, _ args: [JinjaValue], _ kwargs: [(String, Expr)]) throws -> JinjaValue {
        switch name {
        case "trim": return .string(strip(v.text, nil, leading: true, trailing: true))
        case "upper": return .string(v.text.uppercased())
        case "lower": return .string(v.text.lowercased())
        case "capitalize": return .string(v.text.prefix(1).uppercased() + v.text.dropFirst().lowercased())
        case "string": return .string(v.text)
        case "safe", "e", "escape": return v
        case "int": return .int(Int(v.number ?? Double(v.text) ?? 0))
        case "length", "count":
            switch v {
            case let .array(a): return .int(a.count)
            case let .string(s): return .int(s.count)
            case let .object(o): return .int(o.count)
            default: return .int(0)
            }
        case "first": if case let .array(a) = v { return a.first ?? .undefined }; return .undefined
        case "last": if case let .array(a) = v { return a.last ?? .undefined }; return .undefined
        case "reverse": if case let .array(a) = v { return .array(a.reversed()) }; return .string(String(v.text.reversed()))
        case "list": if case let .array(a) = v { return .array(a) }; return .array(v.text.map { .string(String($0)) })
        case "join":
            guard case let .array(a) = v else { return v }
            return .string(a.map(\.text).joined(separator: args.first?.text ?? ""))
        case "default", "d": return v == .undefined || (args.count > 1 && args[1].truthy && !v.truthy) ? (args.first ?? .string("")) : v
        case "tojson":
            var indent: Int? = nil
            if case let .int(n)? = args.first { indent = n }
            return .string(v.json(indent: indent))
        case "items": if case let .object(o) = v { return .array(o.map { .array([.string($0.0), $0.1]) }) }; return .array([])
        case "replace": return .string(v.text.replacingOccurrences(of: args[0].text, with: args[1].text))
        default: throw TemplateError("unsupported filter \(name)")
        }
    }

    func test(_ v: JinjaValue, _ name: String, _ args: [JinjaValue]) throws -> Bool {
        switch name {
        case "defined": return v != .undefined
        case "undefined": return v == .undefined
        case "none": return v == .none
        case "string": if case .string = v { return true }; return false
        case "number": return v.number != nil && !(v == .bool(true) || v == .bool(false))
        case "mapping": if case .object = v { return true }; return false
        case "sequence", "iterable":
            switch v {
            case .array, .string, .object: return true;
            default: return false
            }
        case "true": return v == .bool(true)
        case "false": return v == .bool(false)
        case "equalto", "eq", "sameas": return v == (args.first ?? .undefined)
        case "odd": if case let .int(i) = v { return i % 2 != 0 }; return false
        case "even": if case let .int(i) = v { return i % 2 == 0 }; return false
        default: throw TemplateError("unsupported test \(name)")
        }
    }
}
