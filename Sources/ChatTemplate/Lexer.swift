// Splits a template into text and tags, applying Jinja's whitespace control (`{%-`, `-%}`)
// and the trim_blocks / lstrip_blocks settings `transformers` renders chat templates with.

enum Segment {
    case text(String)
    case output([Token])  // {{ … }}
    case statement([Token])  // {% … %}
}

enum Token: Equatable {
    case name(String), string(String), int(Int), double(Double), op(String)
}

struct TemplateError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

func lex(_ source: String) throws -> [Segment] {
    let s = Array(source.unicodeScalars)
    var segments: [Segment] = []
    var text: [Unicode.Scalar] = []
    var i = 0
    var trimNextNewline = false
    var stripLeadingWhitespace = false
    func flush(lstripForBlock: Bool, stripTrailing: Bool) {
        var t = text
        if stripTrailing {
            while let last = t.last, last.properties.isWhitespace { t.removeLast() }
        } else if lstripForBlock {
            // lstrip_blocks: drop spaces/tabs between the start of the line and the tag.
            var j = t.count
            while j > 0 && (t[j - 1] == " " || t[j - 1] == "\t") { j -= 1 }
            if j == 0 || t[j - 1] == "\n" { t.removeSubrange(j...) }
        }
        if !t.isEmpty { segments.append(.text(String(String.UnicodeScalarView(t)))) }
        text = []
    }
    while i < s.count {
        if s[i] == "{" && i + 1 < s.count && (s[i + 1] == "{" || s[i + 1] == "%" || s[i + 1] == "#") {
            let kind = s[i + 1]
            let close: Unicode.Scalar = kind == "{" ? "}" : kind == "%" ? "%" : "#"
            var j = i + 2
            let leftTrim = j < s.count && s[j] == "-"
            if leftTrim || (j < s.count && s[j] == "+") { j += 1 }
            flush(lstripForBlock: kind != "{" && !(j > i + 2 && s[i + 2] == "+"), stripTrailing: leftTrim)
            // Find the closing delimiter, skipping string literals.
            var k = j
            var quote: Unicode.Scalar? = nil
            while k + 1 < s.count {
                if let q = quote {
                    if s[k] == "\\" { k += 1 } else if s[k] == q { quote = nil }
                } else if kind != "#" && (s[k] == "'" || s[k] == "\"") {
                    quote = s[k]
                } else if s[k] == close && s[k + 1] == "}" {
                    break
                }
                k += 1
            }
            guard k + 1 < s.count else { throw TemplateError("unclosed tag starting at character \(i)") }
            var bodyEnd = k
            let rightTrim = bodyEnd > j && s[bodyEnd - 1] == "-"
            if rightTrim || (bodyEnd > j && s[bodyEnd - 1] == "+") { bodyEnd -= 1 }
            let body = String(String.UnicodeScalarView(s[j..<bodyEnd]))
            switch kind {
            case "{": segments.append(.output(try tokenize(body)))
            case "%": segments.append(.statement(try tokenize(body)))
            default: break
            }
            i = k + 2
            stripLeadingWhitespace = rightTrim
            trimNextNewline = kind != "{"
            if stripLeadingWhitespace {
                while i < s.count && s[i].properties.isWhitespace { i += 1 }
            } else if trimNextNewline && i < s.count && s[i] == "\n" {
                i += 1  // trim_blocks
            }
            continue
        }
        text.append(s[i])
        i += 1
    }
    flush(lstripForBlock: false, stripTrailing: false)
    return segments
}

func tokenize(_ body: String) throws -> [Token] {
    let s = Array(body.unicodeScalars)
    var out: [Token] = []
    var i = 0
    while i < s.count {
        let c = s[i]
        if c.properties.isWhitespace { i += 1; continue }
        if c == "'" || c == "\"" {
            var j = i + 1, value = ""
            while j < s.count && s[j] != c {
                if s[j] == "\\" && j + 1 < s.count {
                    j += 1
                    switch s[j] {
                    case "n": value += "\n"
                    case "t": value += "\t"
                    case "r": value += "\r"
                    default: value.unicodeScalars.append(s[j])
                    }
                } else {
                    value.unicodeScalars.append(s[j])
                }
                j += 1
            }
            guard j < s.count else { throw TemplateError("unterminated string in \(body)") }
            out.append(.string(value))
            i = j + 1
            continue
        }
        if c.properties.numericType != nil && c.isASCII {
            var j = i
            while j < s.count && (s[j].isASCII && (s[j].properties.numericType != nil || s[j] == ".")) { j += 1 }
            let literal = String(String.UnicodeScalarView(s[i..<j]))
            if literal.contains("."), let d = Double(literal) {
                out.append(.double(d))
            } else if let n = Int(literal) {
                out.append(.int(n))
            } else {
                throw TemplateError("bad number \(literal)")
            }
            i = j
            continue
        }
        if c == "_" || c.properties.isAlphabetic {
            var j = i
            while j < s.count && (s[j] == "_" || s[j].properties.isAlphabetic || (s[j].isASCII && s[j].properties.numericType != nil)) { j += 1 }
            out.append(.name(String(String.UnicodeScalarView(s[i..<j]))))
            i = j
            continue
        }
        let two = i + 1 < s.count ? String(String.UnicodeScalarView([c, s[i + 1]])) : ""
        if ["==", "!=", "<=", ">=", "//", "**"].contains(two) { out.append(.op(two)); i += 2; continue }
        guard "+-*/%~<>()[]{}.,:|=".unicodeScalars.contains(c) else { throw TemplateError("unexpected character '\(c)' in \(body)") }
        out.append(.op(String(c)))
        i += 1
    }
    return out
}
