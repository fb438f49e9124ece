// Byte-level BPE (GPT-2 style) as SmolLM2, Qwen2 and most Llama-family models use it:
// special tokens matched whole, the model's pre-tokeniser, bytes mapped to printable
// characters, then merges applied lowest rank first. Built from GGUF metadata or from a
// Hugging Face tokenizer.json.
import Foundation

public final class BPETokenizer: Tokenizer, @unchecked Sendable {
    public let tokens: [String]
    public let preTokenizer: PreTokenizer
    public let bosID: Int32?
    public let eosID: Int32?
    public let padID: Int32?
    /// Whether `bos` is prepended when framing a sequence (GGUF `add_bos_token`).
    public let addsBOS: Bool
    /// Token texts matched whole in input (control and user-defined tokens), longest first.
    public let specialTokens: [(text: [Unicode.Scalar], id: Int32)]
    public let chatTemplate: String?

    private let ids: [String: Int32]
    private let ranks: [Pair: Int]
    private let special: Set<Int32>
    private let cache = Cache()

    struct Pair: Hashable { let a: String, b: String }
    final class Cache: @unchecked Sendable {
        let lock = NSLock()
        var words: [String: [Int32]] = [:]
    }

    public init(
        tokens: [String], merges: [(String, String)], special: [Int32], preTokenizer: PreTokenizer,
        bos: Int32?, eos: Int32?, pad: Int32?, addsBOS: Bool, chatTemplate: String?
    ) {
        self.tokens = tokens
        self.preTokenizer = preTokenizer
        bosID = bos; eosID = eos; padID = pad
        self.addsBOS = addsBOS
        self.chatTemplate = chatTemplate
        var ids: [String: Int32] = [:]
        for (i, t) in tokens.enumerated() where ids[t] == nil { ids[t] = Int32(i) }
        self.ids = ids
        var ranks: [Pair: Int] = [:]
        for (i, m) in merges.enumerated() where ranks[Pair(a: m.0, b: m.1)] == nil { ranks[Pair(a: m.0, b: m.1)] = i }
        self.ranks = ranks
        self.special = Set(special)
        specialTokens = special.map { (Array(tokens[Int($0)].unicodeScalars), $0) }
            .filter { !$0.0.isEmpty }.sorted { $0.0.count > $1.0.count }
    }

    public var vocabularySize: Int { tokens.count }

    public func encode(_ text: String) -> [Int32] {
        var out: [Int32] = []
        let scalars = Array(text.unicodeScalars)
        var start = 0, i = 0
        func flush(_ end: Int) {
            if start < end {
                let piece = String(String.UnicodeScalarView(scalars[start..<end]))
                for word in preTokenizer.split(piece) { out += encodeWord(word) }
            }
        }
        while i < scalars.count {
            if let match = specialTokens.first(where: {
                $0.text.count <= scalars.count - i && scalars[i] == $0.text[0]
                    && Array(scalars[i..<(i + $0.text.count)]) == $0.text
            }) {
                flush(i)
                out.append(match.id)
                i += match.text.count
                start = i
            } else {
                i += 1
            }
        }
        flush(scalars.count)
        return out
    }

    func encodeWord(_ scalars: Substring.UnicodeScalarView) -> [Int32] {
        let word = String(scalars)
        cache.lock.lock()
        if let hit = cache.words[word] { cache.lock.unlock(); return hit }
        cache.lock.unlock()
        let symbols = merged(word.utf8.map { String(ByteMap.shared.toUnicode[Int($0)]) })
        var result: [Int32] = []
        for s in symbols {
            if let id = ids[s] { result.append(id) } else { for ch in s.unicodeScalars { if let id = ids[String(ch)] { result.append(id) } } }
        }
        // Words repeat (that is what the cache is for); a flood of distinct ones must not grow it without bound.
        if word.utf8.count <= 256 {
            cache.lock.lock()
            if cache.words.count >= 1 << 16 { cache.words.removeAll(keepingCapacity: true) }
            cache.words[word] = result
            cache.lock.unlock()
        }
        return result
    }

    /// Applies the merges to `symbols`, lowest rank first and, within a rank, left to right
    /// (as GPT-2's reference and Hugging Face's tokenizers): a heap of candidate pairs over a
    /// linked list, so a word of n bytes costs O(n log n), not O(n²) per merge.
    func merged(_ initial: [String]) -> [String] {
        var symbols = initial
        guard symbols.count > 1 else { return symbols }
        var next = Array(1...symbols.count), previous = Array(-1..<(symbols.count - 1))
        var alive = [Bool](repeating: true, count: symbols.count)
        var heap = Heap<Candidate>()
        func consider(_ k: Int) {
            guard k >= 0, next[k] < symbols.count, let r = ranks[Pair(a: symbols[k], b: symbols[next[k]])] else { return }
            let n = next[k]
            heap.push(Candidate(rank: r, position: k, left: symbols[k], right: symbols[n]))
        }
        for k in 0..<(symbols.count - 1) { consider(k) }
        while let top = heap.pop() {
            let k = top.position, n = next[k]
            // Stale: a symbol of the pair merged since it was queued.
            guard alive[k], n < symbols.count, symbols[k] == top.left, symbols[n] == top.right else { continue }
            symbols[k] = top.left + top.right
            alive[n] = false
            next[k] = next[n]
            if next[n] < symbols.count { previous[next[n]] = k }
            if previous[k] >= 0 { consider(previous[k]) }
            consider(k)
        }
        var out: [String] = []
        var k = 0
        while k < symbols.count { out.append(symbols[k]); k = next[k] }
        return out
    }

    /// A merge that may apply at `position`, lowest rank first, then leftmost.
    struct Candidate: HeapOrdered {
        let rank: Int, position: Int, left: String, right: String
        static func before(_ x: Candidate, _ y: Candidate) -> Bool { (x.rank, x.position) < (y.rank, y.position) }
    }

    public func decode(_ ids: [Int32]) -> String {
        var bytes: [UInt8] = []
        for id in ids where id >= 0 && Int(id) < tokens.count {
            let t = tokens[Int(id)]
            if special.contains(id) { bytes += Array(t.utf8); continue }
            for ch in t.unicodeScalars {
                if let b = ByteMap.shared.toByte[ch] { bytes.append(b) } else { bytes += Array(String(ch).utf8) }
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The id of a token given its exact text, if the vocabulary has it.
    public func id(of token: String) -> Int32? { ids[token] }

    public func writeFiles(to directory: URL) throws {
        var vocab: [String: Int] = [:]
        for (i, t) in tokens.enumerated() where vocab[t] == nil { vocab[t] = i }
        let merges = ranks.sorted { $0.value < $1.value }.map { [$0.key.a, $0.key.b] }
        let added: [[String: Any]] = special.sorted().map { id in
            [
                "id": Int(id), "content": tokens[Int(id)], "single_word": false, "lstrip": false, "rstrip": false,
                "normalized": false, "special": true
            ]
        }
        let preTokenizerJSON: [String: Any]
        let byteLevel: [String: Any] = ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": preTokenizer != .qwen2]
        switch preTokenizer {
        case .gpt2: preTokenizerJSON = byteLevel
        case .smollm: preTokenizerJSON = ["type": "Sequence", "pretokenizers": [["type": "Digits", "individual_digits": true], byteLevel]]
        case .qwen2:
            let pattern = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
            preTokenizerJSON = [
                "type": "Sequence",
                "pretokenizers": [
                    ["type": "Split", "pattern": ["Regex": pattern], "behavior": "Isolated", "invert": false], byteLevel
                ]
            ]
        }
        let json: [String: Any] = [
            "version": "1.0", "truncation": NSNull(), "padding": NSNull(), "added_tokens": added,
            "normalizer": NSNull(), "pre_tokenizer": preTokenizerJSON,
            "post_processor": ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true],
            "decoder": ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true],
            "model": [
                "type": "BPE", "dropout": NSNull(), "unk_token": NSNull(), "continuing_subword_prefix": NSNull(),
                "end_of_word_suffix": NSNull(), "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                "vocab": vocab, "merges": merges
            ]
        ]
        try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys, .withoutEscapingSlashes])
            .write(to: directory.appendingPathComponent("tokenizer.json"))
        var config: [String: Any] = [
            "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 1_000_000,
            "add_bos_token": addsBOS, "clean_up_tokenization_spaces": false
        ]
        if let b = bosID { config["bos_token"] = tokens[Int(b)] }
        if let e = eosID { config["eos_token"] = tokens[Int(e)] }
        if let p = padID { config["pad_token"] = tokens[Int(p)] }
        if let chatTemplate { config["chat_template"] = chatTemplate }
        config["additional_special_tokens"] = special.sorted().map { tokens[Int($0)] }
            .filter { $0 != config["bos_token"] as? String && $0 != config["eos_token"] as? String && $0 != config["pad_token"] as? String }
        try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
            .write(to: directory.appendingPathComponent("tokenizer_config.json"))
    }
}

/// GPT-2's reversible map from bytes to printable Unicode characters.
final class ByteMap: Sendable {
    static let shared = ByteMap()
    let toUnicode: [Character]
    let toByte: [Unicode.Scalar: UInt8]

    init() {
        var printable = Array(33...126) + Array(161...172) + Array(174...255)
        var codes = printable
        var n = 0
        for b in 0..<256 where !printable.contains(b) {
            printable.append(b)
            codes.append(256 + n)
            n += 1
        }
        var toUnicode = [Character](repeating: " ", count: 256)
        var toByte: [Unicode.Scalar: UInt8] = [:]
        for (b, c) in zip(printable, codes) {
            let scalar = Unicode.Scalar(UInt32(c))!
            toUnicode[b] = Character(scalar)
            toByte[scalar] = UInt8(b)
        }
        self.toUnicode = toUnicode
        self.toByte = toByte
    }
}
