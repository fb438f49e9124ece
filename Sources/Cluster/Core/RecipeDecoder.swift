// Recipes are decoded with `Codable` from a tree of plain values that is built with the limits
// hostile input needs (size, nesting, alias expansion, duplicate keys). Errors name the key as
// the recipe writes it ("stages[0].adam_beta2"); unknown keys are errors, not ignored.
import Foundation
import Yams

enum RecipeTree {
    /// `text` as plain values (String, Int, Double, Bool, NSNull, arrays, string-keyed
    /// dictionaries), refusing what no recipe needs before the YAML reader recurses into it.
    static func parse(_ text: String) throws -> Any? {
        guard text.utf8.count <= 1 << 20 else { throw RecipeError("a recipe is at most 1 MiB") }
        var depth = 0, deepest = 0
        for byte in text.utf8 {
            if byte == UInt8(ascii: "[") || byte == UInt8(ascii: "{") { depth += 1; deepest = max(deepest, depth) }
            if byte == UInt8(ascii: "]") || byte == UInt8(ascii: "}") { depth = max(0, depth - 1) }
        }
        guard deepest <= 64 else { throw RecipeError("brackets nested \(deepest) deep; a recipe needs a few levels") }
        // Block nesting: by indentation, and by sequences opened on one line ("- - - x").
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let indent = line.prefix(while: { $0 == " " }).count
            var rest = line.dropFirst(indent), dashes = 0
            while rest.hasPrefix("- ") || rest == "-" { dashes += 1; rest = rest.dropFirst(2).drop(while: { $0 == " " }) }
            guard indent <= 256, dashes <= 32 else {
                throw RecipeError("line \(number + 1): nested \(indent) spaces and \(dashes) sequences deep; a recipe needs a few levels")
            }
        }
        var budget = 100_000
        let node: Node?
        do { node = try Yams.compose(yaml: text) } catch { throw RecipeError("not valid YAML (\(error))") }
        return try node.map { try plain($0, depth: 0, budget: &budget) }
    }

    /// Our own conversion rather than Yams' constructor, which traps on mapping keys that are
    /// not scalars; `budget` bounds the values made, so aliases that multiply (a "billion
    /// laughs" file) are an error, not a hang.
    private static func plain(_ node: Node, depth: Int, budget: inout Int) throws -> Any {
        guard depth <= 64 else { throw RecipeError("YAML nested more than 64 levels") }
        budget -= 1
        guard budget >= 0 else { throw RecipeError("the YAML expands to more than 100000 values (aliases?)") }
        switch node {
        case let .scalar(scalar):
            // The type the YAML resolver gave the scalar (quoted text is always a string).
            switch node.tag.description {
            case Tag.Name.int.rawValue: if let i = node.int { return i }
            case Tag.Name.float.rawValue: if let d = node.float { return d }
            case Tag.Name.bool.rawValue: if let b = node.bool { return b }
            case Tag.Name.null.rawValue: return NSNull()
            default: break
            }
            return scalar.string
        case let .sequence(sequence):
            return try sequence.map { try plain($0, depth: depth + 1, budget: &budget) }
        case let .mapping(mapping):
            var out: [String: Any] = [:]
            for (key, value) in mapping {
                guard case let .scalar(k) = key else { throw RecipeError("mapping keys must be plain text") }
                guard out[k.string] == nil else { throw RecipeError("key \(k.string) appears twice") }
                out[k.string] = try plain(value, depth: depth + 1, budget: &budget)
            }
            return out
        }
    }
}

/// A key path as a recipe writes it: `stages[0].adam_beta2`.
func recipeKeyPath(_ path: [CodingKey]) -> String {
    var out = ""
    for key in path {
        if key is IndexKey, let i = key.intValue { out += "[\(i)]" } else { out += (out.isEmpty ? "" : ".") + key.stringValue }
    }
    return out
}

/// A `Decoder` over `RecipeTree`'s values. Numbers are read as YAML writes them: a whole
/// number where a fraction is asked is fine, and so is text that is a number ("1e-3", which
/// YAML 1.1 leaves a string); null is never "absent" (it is a value of the wrong type).
struct RecipeTreeDecoder: Decoder {
    let node: Any
    let codingPath: [CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    init(_ node: Any, at codingPath: [CodingKey] = []) { self.node = node; self.codingPath = codingPath }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard let dict = node as? [String: Any] else { throw RecipeError("\(recipeKeyPath(codingPath)): must be a mapping") }
        return KeyedDecodingContainer(Keyed(dict: dict, codingPath: codingPath))
    }

    func unkeyedContainer() throws -> UnkeyedDecodingContainer {
        guard let items = node as? [Any] else { throw RecipeError("\(recipeKeyPath(codingPath)): must be a list") }
        return Unkeyed(items: items, codingPath: codingPath)
    }

    func singleValueContainer() throws -> SingleValueDecodingContainer { Single(node: node, codingPath: codingPath) }

    /// `node` as a `T`, or an error naming the key and what it must be.
    static func scalar<T: Decodable>(_ type: T.Type, _ node: Any, at path: [CodingKey]) throws -> T {
        let found: Any?
        switch type {
        case is String.Type: found = node as? String
        case is Bool.Type: found = node as? Bool
        case is Int.Type: found = node as? Int
        case is Double.Type:
            if let d = node as? Double { found = d } else if let i = node as? Int { found = Double(i) } else { found = (node as? String).flatMap(Double.init) }
        default: return try T(from: RecipeTreeDecoder(node, at: path))
        }
        if let value = found as? T { return value }
        let expected = [
            ObjectIdentifier(String.self): "text", ObjectIdentifier(Bool.self): "true or false",
            ObjectIdentifier(Int.self): "a whole number", ObjectIdentifier(Double.self): "a number"
        ][ObjectIdentifier(type)]!
        throw RecipeError("\(recipeKeyPath(path)): must be \(expected)")
    }

    private struct Keyed<Key: CodingKey>: KeyedDecodingContainerProtocol {
        let dict: [String: Any]
        let codingPath: [CodingKey]
        var allKeys: [Key] { dict.keys.compactMap(Key.init(stringValue:)) }
        func contains(_ key: Key) -> Bool { dict[key.stringValue] != nil }
        func decodeNil(forKey key: Key) throws -> Bool { false }
        func node(_ key: Key) throws -> Any {
            guard let v = dict[key.stringValue] else { throw RecipeError("\(recipeKeyPath(codingPath + [key])): missing") }
            return v
        }
        func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T { try RecipeTreeDecoder.scalar(type, node(key), at: codingPath + [key]) }
        func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try RecipeTreeDecoder.scalar(type, node(key), at: codingPath + [key]) }
        func decode(_ type: String.Type, forKey key: Key) throws -> String { try RecipeTreeDecoder.scalar(type, node(key), at: codingPath + [key]) }
        func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try RecipeTreeDecoder.scalar(type, node(key), at: codingPath + [key]) }
        func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try RecipeTreeDecoder.scalar(type, node(key), at: codingPath + [key]) }
        func nestedContainer<N: CodingKey>(keyedBy type: N.Type, forKey key: Key) throws -> KeyedDecodingContainer<N> {
            try RecipeTreeDecoder(node(key), at: codingPath + [key]).container(keyedBy: type)
        }
        func nestedUnkeyedContainer(forKey key: Key) throws -> UnkeyedDecodingContainer {
            try RecipeTreeDecoder(node(key), at: codingPath + [key]).unkeyedContainer()
        }
        func superDecoder() throws -> Decoder { RecipeTreeDecoder(dict, at: codingPath) }
        func superDecoder(forKey key: Key) throws -> Decoder { RecipeTreeDecoder(try node(key), at: codingPath + [key]) }
    }

    private struct Unkeyed: UnkeyedDecodingContainer {
        let items: [Any]
        let codingPath: [CodingKey]
        var currentIndex = 0
        var count: Int? { items.count }
        var isAtEnd: Bool { currentIndex >= items.count }
        init(items: [Any], codingPath: [CodingKey]) { self.items = items; self.codingPath = codingPath }
        private mutating func next() throws -> RecipeTreeDecoder {
            guard !isAtEnd else { throw RecipeError("\(recipeKeyPath(codingPath)): too few items") }
            defer { currentIndex += 1 }
            return RecipeTreeDecoder(items[currentIndex], at: codingPath + [IndexKey(currentIndex)])
        }
        mutating func decodeNil() throws -> Bool { false }
        mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
            let d = try next()
            return try RecipeTreeDecoder.scalar(type, d.node, at: d.codingPath)
        }
        mutating func nestedContainer<N: CodingKey>(keyedBy type: N.Type) throws -> KeyedDecodingContainer<N> { try next().container(keyedBy: type) }
        mutating func nestedUnkeyedContainer() throws -> UnkeyedDecodingContainer { try next().unkeyedContainer() }
        mutating func superDecoder() throws -> Decoder { try next() }
    }

    private struct Single: SingleValueDecodingContainer {
        let node: Any
        let codingPath: [CodingKey]
        func decodeNil() -> Bool { node is NSNull }
        func decode<T: Decodable>(_ type: T.Type) throws -> T { try RecipeTreeDecoder.scalar(type, node, at: codingPath) }
        func decode(_ type: Bool.Type) throws -> Bool { try RecipeTreeDecoder.scalar(type, node, at: codingPath) }
        func decode(_ type: String.Type) throws -> String { try RecipeTreeDecoder.scalar(type, node, at: codingPath) }
        func decode(_ type: Double.Type) throws -> Double { try RecipeTreeDecoder.scalar(type, node, at: codingPath) }
        func decode(_ type: Int.Type) throws -> Int { try RecipeTreeDecoder.scalar(type, node, at: codingPath) }
    }
}

/// A list position in a key path.
struct IndexKey: CodingKey {
    let intValue: Int?
    var stringValue: String { String(intValue!) }
    init(_ i: Int) { intValue = i }
    init?(intValue: Int) { self.intValue = intValue }
    init?(stringValue: String) { nil }
}

/// Any key of a mapping: to find the ones a type does not know.
private struct AnyKey: CodingKey {
    let stringValue: String
    var intValue: Int? { nil }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

extension Decoder {
    /// This mapping's container, after refusing every key `Keys` does not have.
    func strictContainer<Keys: CodingKey & CaseIterable>(_ keys: Keys.Type) throws -> KeyedDecodingContainer<Keys> {
        try rejectUnknownKeys(keys)
        return try container(keyedBy: keys)
    }

    /// Fails naming every key of this mapping that `Keys` does not have: a typo is an error, not a default.
    func rejectUnknownKeys<Keys: CodingKey & CaseIterable>(_ keys: Keys.Type) throws {
        let known = Set(Keys.allCases.map(\.stringValue))
        let unknown = try container(keyedBy: AnyKey.self).allKeys.map(\.stringValue).filter { !known.contains($0) }.sorted()
        guard let first = unknown.first else { return }
        let name = { (k: String) in recipeKeyPath(self.codingPath + [AnyKey(stringValue: k)!]) }
        throw RecipeError("unknown key \(name(first))\(unknown.count > 1 ? " (and \(unknown.dropFirst().map(name).joined(separator: ", ")))" : "")")
    }
}

/// Reading a recipe's values with their limits; absent keys keep the type's own default, so
/// every default is written once, where the property is declared.
extension KeyedDecodingContainer {
    func path(_ key: Key) -> String { recipeKeyPath(codingPath + [key]) }

    /// The key's number, or `current` when absent, within `range`.
    func number(_ key: Key, or current: Double? = nil, in range: ClosedRange<Double>) throws -> Double {
        guard let v = try decodeIfPresent(Double.self, forKey: key) ?? current else { throw RecipeError("\(path(key)): missing") }
        guard range.contains(v), v.isFinite else { throw RecipeError("\(path(key)): \(v) must be in \(range.lowerBound)...\(range.upperBound)") }
        return v
    }

    /// The key's whole number, or `current` when absent, within `range`.
    func whole(_ key: Key, or current: Int, in range: ClosedRange<Int>) throws -> Int {
        guard let v = try decodeIfPresent(Int.self, forKey: key) else { return current }
        guard range.contains(v) else { throw RecipeError("\(path(key)): \(v) must be in \(range.lowerBound)...\(range.upperBound)") }
        return v
    }

    /// A positive whole number up to `max`, or nil when absent.
    func count(_ key: Key, max: Int) throws -> Int? {
        guard contains(key) else { return nil }
        guard let v = try? decode(Int.self, forKey: key), v > 0, v <= max else { throw RecipeError("\(path(key)): must be a whole number in 1...\(max)") }
        return v
    }

    /// One of an enumeration's raw names, or `current` when absent.
    func choice<E: RawRepresentable & CaseIterable>(_ key: Key, or current: E, among: String? = nil) throws -> E where E.RawValue == String {
        guard let name = try decodeIfPresent(String.self, forKey: key) else { return current }
        guard let value = E(rawValue: name) else {
            throw RecipeError("\(path(key)): \"\(name)\" is not \(among ?? "one of " + E.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return value
    }
}
