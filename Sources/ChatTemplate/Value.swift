// Values of the Jinja subset chat templates use: Python-like truthiness, comparison and
// string conversion, so rendered text matches what `transformers` renders with Jinja2.
import Foundation

/// A Jinja value.
public indirect enum JinjaValue: Equatable {
    case undefined
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JinjaValue])
    /// Keys in insertion order, as Python dicts keep them.
    case object([(String, JinjaValue)])
    case namespace(Namespace)

    public static func == (a: JinjaValue, b: JinjaValue) -> Bool {
        switch (a, b) {
        case (.undefined, .undefined), (.none, .none): return true
        case let (.bool(x), .bool(y)): return x == y
        case let (.string(x), .string(y)): return x == y
        case let (.array(x), .array(y)): return x == y
        case let (.object(x), .object(y)): return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        case let (.namespace(x), .namespace(y)): return x === y
        default:
            if let x = a.number, let y = b.number { return x == y }
            return false
        }
    }

    /// Mutable attribute bag created by `namespace(...)`.
    public final class Namespace {
        var values: [String: JinjaValue]
        init(_ values: [String: JinjaValue]) { self.values = values }
    }

    var number: Double? {
        switch self {
        case let .int(i): Double(i)
        case let .double(d): d
        case let .bool(b): b ? 1 : 0
        default: nil
        }
    }

    var truthy: Bool {
        switch self {
        case .undefined, .none: false
        case let .bool(b): b
        case let .int(i): i != 0
        case let .double(d): d != 0
        case let .string(s): !s.isEmpty
        case let .array(a): !a.isEmpty
        case let .object(o): !o.isEmpty
        case .namespace: true
        }
    }

    /// `str(value)` as Jinja prints it.
    var text: String {
        switch self {
        case .undefined: ""
        case .none: "None"
        case let .bool(b): b ? "True" : "False"
        case let .int(i): String(i)
        case let .double(d): d == d.rounded() && abs(d) < 1e16 ? String(format: "%.1f", d) : String(d)
        case let .string(s): s
        case let .array(a): "[" + a.map(\.repr).joined(separator: ", ") + "]"
        case let .object(o): "{" + o.map { "'\($0.0)': \($0.1.repr)" }.joined(separator: ", ") + "}"
        case .namespace: "<Namespace>"
        }
    }

    var repr: String {
        if case let .string(s) = self { return "'" + s.replacingOccurrences(of: "'", with: "\\'") + "'" }
        return text
    }

    /// `tojson` as transformers defines it (json.dumps with ensure_ascii=False), with `indent` when given.
    func json(indent: Int?, level: Int = 0) -> String {
        let pad = indent.map { "\n" + String(repeating: " ", count: $0 * (level + 1)) } ?? ""
        let close = indent.map { "\n" + String(repeating: " ", count: $0 * level) } ?? ""
        let sep = indent == nil ? ", " : ","
        switch self {
        case .undefined, .none: return "null"
        case let .bool(b): return b ? "true" : "false"
        case let .int(i): return String(i)
        case let .double(d): return d == d.rounded() && abs(d) < 1e16 ? String(format: "%.1f", d) : String(d)
        case let .string(s):
            var out = "\""
            for ch in s.unicodeScalars {
                switch ch {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case "\n": out += "\\n"
                case "\r": out += "\\r"
                case "\t": out += "\\t"
                default:
                    if ch.value < 0x20 { out += String(format: "\\u%04x", ch.value) } else { out.unicodeScalars.append(ch) }
                }
            }
            return out + "\""
        case let .array(a):
            if a.isEmpty { return "[]" }
            return "[" + a.map { pad + $0.json(indent: indent, level: level + 1) }.joined(separator: sep) + close + "]"
        case let .object(o):
            if o.isEmpty { return "{}" }
            return "{"
                + o.map { pad + JinjaValue.string($0.0).json(indent: nil) + ": " + $0.1.json(indent: indent, level: level + 1) }
                .joined(separator: sep) + close + "}"
        case .namespace: return "null"
        }
    }

    /// Converts Foundation JSON (from JSONSerialization) into a value, keeping key order when given.
    public init(json: Any) {
        switch json {
        case let s as String: self = .string(s)
        case let b as Bool where type(of: json) == Bool.self: self = .bool(b)
        case let n as NSNumber:
            // Integral JSON numbers become ints (booleans from Foundation may arrive as 0/1: same truthiness).
            self = n.doubleValue == n.doubleValue.rounded() && abs(n.doubleValue) < 1e15 ? .int(n.intValue) : .double(n.doubleValue)
        case let a as [Any]: self = .array(a.map(JinjaValue.init(json:)))
        case let d as [String: Any]: self = .object(d.keys.sorted().map { ($0, JinjaValue(json: d[$0]!)) })
        case is NSNull: self = .none
        default: self = .undefined
        }
    }
}
