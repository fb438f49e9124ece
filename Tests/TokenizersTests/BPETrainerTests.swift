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

    func testSizesWithoutRoomForTheBytesAreErrors() {
        for size in [0, 100, 258, 1 << 17] {
            XCTAssertThrowsError(try BPETokenizer.train(texts: corpus, vocabularySize: size)) { XCTAssertTrue("\($0)".contains("ids"), "\($0)") }
        }
        // No pair occurs twice: bytes and specials only.
        XCTAssertEqual(try BPETokenizer.train(texts: ["ab"], vocabularySize: 300).vocabularySize, 259)
    }
}
