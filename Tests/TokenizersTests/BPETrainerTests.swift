// A tokenizer trained on a task's text: fewer tokens than bytes, every text still round-trips,
// the same merges on every run, and its Hugging Face files read back to the same encoder
// (CLITests checks `transformers` encodes with it id for id).
import Foundation
import Tokenizers
import XCTest

final class BPETrainerTests: XCTestCase {
    let corpus = (0..<200).map { i in
        "Problem: Ana has \(i % 9 + 1) apples. Then Ana gets \(i % 7 + 2) more apples. How many apples does Ana have now?\n"
            + "We start with \(i % 9 + 1) apples.\n\(i % 9 + 1) + \(i % 7 + 2) = \(i % 9 + i % 7 + 3).\nAnswer: \(i % 9 + i % 7 + 3)"
    }

    func testTrainedMergesShortenTheTaskAndEveryTextRoundTrips() throws {
        let t = try BPETokenizer.train(texts: corpus, vocabularySize: 400)
        XCTAssertLessThanOrEqual(t.vocabularySize, 400)
        XCTAssertGreaterThan(t.vocabularySize, 259, "no merge learned")
        XCTAssertEqual([t.padID, t.eosID, t.bosID], [0, 1, 2])
        let bytes = corpus.reduce(0) { $0 + $1.utf8.count }, tokens = corpus.reduce(0) { $0 + t.encode($1).count }
        XCTAssertGreaterThan(Double(bytes) / Double(tokens), 2.5, "\(bytes) bytes in \(tokens) tokens")
        // Digits stay one token each (SmolLM2's pre-tokeniser), so arithmetic is digit by digit.
        XCTAssertEqual(t.encode("12345").count, 5)
        for text in corpus.prefix(5) + ["unseen: Zürich 🙂 \t\r\n ~~~", "", " ", "\u{0}\u{7f}"] {
            XCTAssertEqual(t.decode(t.encode(text)), text)
        }
    }

    func testTrainingIsDeterministicAndTheFilesReadBackAlike() throws {
        let a = try BPETokenizer.train(texts: corpus, vocabularySize: 320), b = try BPETokenizer.train(texts: corpus.reversed(), vocabularySize: 320)
        XCTAssertEqual(a.tokens, b.tokens, "the corpus order changed the merges")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bpe-trainer-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try a.writeFiles(to: dir)
        let read = try BPETokenizer.load(huggingFaceDirectory: dir)
        XCTAssertEqual(read.tokens, a.tokens)
        XCTAssertEqual([read.bosID, read.eosID, read.padID], [a.bosID, a.eosID, a.padID])
        XCTAssertTrue(read.addsBOS)
        for text in corpus.prefix(20) + ["</s> inside text <s>"] { XCTAssertEqual(read.encode(text), a.encode(text)) }
    }

    /// The incremental trainer against plain BPE (every pair recounted after every merge) on
    /// text with overlapping pairs (aaaa, abab), repeated and rare words, and many ties.
    func testTheIncrementalCountsLearnWhatRecountingLearns() throws {
        var rng = SystemRandomNumberGenerator()
        let alphabet = Array("abcab aaaa ba\n12")
        let random = (0..<300).map { _ in String((0..<Int.random(in: 1...40, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! }) }
        for texts in [corpus, random, ["aaaa aaa aa a", "abababab abab", "xyzxyz xyz"]] {
            let trained = try BPETokenizer.train(texts: texts, vocabularySize: 700)
            XCTAssertEqual(trained.tokens, recountedMerges(texts, vocabularySize: 700), "\(texts.prefix(3))")
        }
    }

    /// Plain BPE: recount every pair over every word after each merge.
    func recountedMerges(_ texts: [String], vocabularySize: Int) -> [String] {
        var tokens = try! BPETokenizer.train(texts: [], vocabularySize: 259).tokens  // specials and bytes as the trainer spells them
        var words: [[Int32]: Int] = [:]
        for t in texts { for piece in PreTokenizer.smollm.split(t) { words[String(piece).utf8.map { Int32($0) + 3 }, default: 0] += 1 } }
        while tokens.count < vocabularySize {
            var pairs: [[Int32]: Int] = [:]
            for (w, n) in words where w.count > 1 { for i in 0..<(w.count - 1) { pairs[[w[i], w[i + 1]], default: 0] += n } }
            guard let best = pairs.max(by: { $0.value < $1.value || ($0.value == $1.value && !$0.key.lexicographicallyPrecedes($1.key)) }), best.value >= 2 else { break }
            let id = Int32(tokens.count)
            tokens.append(tokens[Int(best.key[0])] + tokens[Int(best.key[1])])
            var next: [[Int32]: Int] = [:]
            for (w, n) in words {
                var out: [Int32] = [], i = 0
                while i < w.count {
                    if i + 1 < w.count && w[i] == best.key[0] && w[i + 1] == best.key[1] { out.append(id); i += 2 } else { out.append(w[i]); i += 1 }
                }
                next[out, default: 0] += n
            }
            words = next
        }
        return tokens
    }

    func testSizesWithoutRoomForTheBytesAreErrors() {
        for size in [0, 100, 258, 1 << 17] {
            XCTAssertThrowsError(try BPETokenizer.train(texts: corpus, vocabularySize: size)) { XCTAssertTrue("\($0)".contains("ids"), "\($0)") }
        }
        // No pair occurs twice: bytes and specials only.
        XCTAssertEqual(try BPETokenizer.train(texts: ["ab"], vocabularySize: 300).vocabularySize, 259)
    }
}
