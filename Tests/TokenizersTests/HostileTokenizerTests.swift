// Tokenizer files come from model repositories: ids out of range and token lists that do not
// match are errors naming the file, not traps or gigabyte allocations; a pathological word
// costs O(n log n), not minutes.
import Formats
import Foundation
import Tokenizers
import XCTest

final class HostileTokenizerTests: XCTestCase {
    let url = URL(fileURLWithPath: "/hostile/tokenizer.json")

    func tokenizerJSON(vocab: [String: Any], added: [[String: Any]] = [], merges: [String] = []) throws -> Data {
        try JSONSerialization.data(withJSONObject: ["model": ["type": "BPE", "vocab": vocab, "merges": merges], "added_tokens": added])
    }

    func testTokenIDsOutOfRangeAreErrors() throws {
        for (vocab, added): ([String: Any], [[String: Any]]) in [
            (["a": -1], []), (["a": 1 << 31], []), (["a": Int64.max - 1], []), (["a": 0], [["id": Int64.max, "content": "<x>"]]),
            (["a": 0, "b": 3_000_000], [])
        ] {
            let started = Date()
            XCTAssertThrowsError(try BPETokenizer.load(tokenizerJSON: try tokenizerJSON(vocab: vocab, added: added), config: nil, url: url)) { error in
                XCTAssertTrue("\(error)".contains("/hostile/tokenizer.json"), "\(error)")
            }
            XCTAssertLessThan(Date().timeIntervalSince(started), 1)
        }
        // Sparse but plausible ids are fine.
        let t = try BPETokenizer.load(tokenizerJSON: try tokenizerJSON(vocab: ["a": 0, "b": 1, "ab": 5], merges: ["a b"]), config: nil, url: url)
        XCTAssertEqual(t.encode("ab"), [5])
    }

    /// A GGUF whose token_type list is longer than its token list (it trapped in tokenize and convert).
    func testGGUFTokenTypesLongerThanTokensAreAnError() throws {
        var bytes: [UInt8] = []
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
        func string(_ s: String) { u64(UInt64(s.utf8.count)); bytes += Array(s.utf8) }
        u32(0x4655_4747); u32(3); u64(0); u64(3)
        string("tokenizer.ggml.model"); u32(8); string("gpt2")
        string("tokenizer.ggml.tokens"); u32(9); u32(8); u64(2); string("a"); string("b")
        string("tokenizer.ggml.token_type"); u32(9); u32(5); u64(5); for t: UInt32 in [1, 1, 3, 3, 3] { u32(t) }
        let file = try GGUFFile(data: Data(bytes), url: URL(fileURLWithPath: "/hostile/model.gguf"))
        XCTAssertThrowsError(try GGUFModel.tokenizer(file)) { XCTAssertTrue("\($0)".contains("token_type has 5 entries for 2 tokens"), "\($0)") }
    }

    /// One metadata array claiming more values than the budget (each costs ~40 bytes of memory
    /// against 1 in the file): refused before it is read.
    func testGGUFMetadataArraysAreBounded() throws {
        var bytes: [UInt8] = []
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
        u32(0x4655_4747); u32(3); u64(0); u64(1)
        u64(4); bytes += Array("big!".utf8); u32(9); u32(0); u64(20_000_000)
        bytes += [UInt8](repeating: 1, count: 20_000_000)
        let started = Date()
        XCTAssertThrowsError(try GGUFFile(data: Data(bytes), url: URL(fileURLWithPath: "/hostile/model.gguf"))) {
            XCTAssertTrue("\($0)".contains("metadata array values"), "\($0)")
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 2)
    }

    /// A 320k-letter word through BPE: every adjacent pair mergeable at many ranks (it ran > 100 s),
    /// and the heap gives the same tokens as merging lowest rank first, left to right.
    func testALongWordIsFastAndMergedLikeTheReference() throws {
        let letters = Array("abcdefghijklmnopqrstuvwxyz")
        var vocab: [String: Any] = [:], merges: [String] = []
        for c in letters { vocab[String(c)] = vocab.count }
        for a in letters { for b in letters { merges.append("\(a) \(b)"); vocab["\(a)\(b)"] = vocab.count } }
        for a in letters.prefix(8) { for b in letters.prefix(8) { merges.append("\(a)\(b) \(b)\(a)"); vocab["\(a)\(b)\(b)\(a)"] = vocab.count } }
        let t = try BPETokenizer.load(tokenizerJSON: try tokenizerJSON(vocab: vocab, merges: merges), config: nil, url: url)
        var rng = SystemRandomNumberGenerator()
        let word = String((0..<320_000).map { _ in letters[Int(rng.next() % 8)] })
        let started = Date()
        let ids = t.encode(word)
        let seconds = Date().timeIntervalSince(started)
        print("BPE of a 320k-letter word: \(String(format: "%.2f", seconds)) s, \(ids.count) tokens")
        XCTAssertLessThan(seconds, 10)
        XCTAssertEqual(t.decode(ids), word)
        // The reference algorithm on short words: merge the lowest-ranked pair everywhere, left to right.
        func reference(_ w: String) -> [String] {
            let rank = Dictionary(merges.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
            var s = w.map(String.init)
            while s.count > 1 {
                guard let best = (0..<(s.count - 1)).compactMap({ k in rank["\(s[k]) \(s[k + 1])"].map { ($0, k) } }).min(by: { $0.0 < $1.0 }) else { break }
                let (a, b) = (s[best.1], s[best.1 + 1])
                var out: [String] = [], k = 0
                while k < s.count {
                    if k + 1 < s.count && s[k] == a && s[k + 1] == b { out.append(a + b); k += 2 } else { out.append(s[k]); k += 1 }
                }
                s = out
            }
            return s
        }
        for _ in 0..<300 {
            let w = String((0..<(1 + Int(rng.next() % 24))).map { _ in letters[Int(rng.next() % 9)] })
            XCTAssertEqual(t.encode(w).map { t.tokens[Int($0)] }, reference(w), w)
        }
    }
}
