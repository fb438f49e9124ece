// JSONL records in TRL's formats: tokenisation layout, and every malformed line reported
// with its file and line number.
import Data
import Foundation
import Model
import Tokenizers
import XCTest

final class DataTests: XCTestCase {
    func write(_ text: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("redi-data-\(UUID().uuidString).jsonl")
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    func testByteTokenizerRoundTripsAndMatchesByT5Ids() {
        let t = ByteTokenizer()
        XCTAssertEqual(t.encode("hé"), [107, 198, 172])  // UTF-8 bytes + 3, as transformers' ByT5Tokenizer
        let text = "Ünïcödé ∑ 🙂 tabs\tand\nnewlines"
        XCTAssertEqual(t.decode(t.encode(text)), text)
        XCTAssertEqual(t.decode([259, 107, 1]), "<s>h</s>")
    }

    func testTokenLayoutIsBOSPromptCompletionEOS() throws {
        let url = try write(#"{"prompt": "ab", "completion": "c"}"# + "\n\n" + #"{"prompt": "x", "chosen": "yy", "rejected": "z", "ref_chosen_logp": -1.5, "ref_rejected_logp": -2}"#.replacingOccurrences(of: "x", with: "x"))
        XCTAssertThrowsError(try Dataset.load(url, tokenizer: ByteTokenizer(), maxLength: 100, vocabularySize: 260)) {
            XCTAssertTrue("\($0)".contains(":3: mixes formats"), "\($0)")
        }
        let sft = try write(#"{"prompt": "ab", "completion": "c"}"# + "\n")
        let e = try Dataset.load(sft, tokenizer: ByteTokenizer(), maxLength: 100, vocabularySize: 260).examples[0]
        XCTAssertEqual(e.sequences[0].tokens, [259, 100, 101, 102, 1])
        XCTAssertEqual(e.sequences[0].promptLength, 3)
        XCTAssertEqual(e.sequences[0].scoredCount, 2)  // "c" and EOS
        let pref = try write(#"{"prompt": "x", "chosen": "yy", "rejected": "z", "ref_chosen_logp": -1.5, "ref_rejected_logp": -2}"#)
        let p = try Dataset.load(pref, tokenizer: ByteTokenizer(), maxLength: 100, vocabularySize: 260).examples[0]
        XCTAssertEqual(p.sequences.map(\.scoredCount), [3, 2])
        XCTAssertEqual(p.refChosen, -1.5)
        XCTAssertEqual(p.refRejected, -2)
    }

    func testEveryBadLineIsReportedWithItsNumber() throws {
        let url = try write([
            #"{"prompt": "a", "completion": "b"}"#,
            #"{"prompt": "a", "completion": "b""#,
            #"["not", "an", "object"]"#,
            #"{"prompt": 3, "completion": "b"}"#,
            #"{"prompt": "a", "completion": ""}"#,
            #"{"prompt": "a"}"#,
            #"{"prompt": [{"role": "user", "content": "hi"}], "completion": "b"}"#,
        ].joined(separator: "\n"))
        XCTAssertThrowsError(try RecordReader.read(url)) { error in
            let text = "\(error)"
            for (line, needle) in [(2, "invalid JSON"), (3, "expected a JSON object"), (4, "field \"prompt\" must be a string"),
                                   (5, "field \"completion\" is empty"), (6, "expected"), (7, "field \"completion\" must be a non-empty message list")] {
                XCTAssertTrue(text.contains("\(url.path):\(line): \(needle)"), "missing line \(line) (\(needle)) in:\n\(text)")
            }
            XCTAssertFalse(text.contains(":1:"))
        }
        let pref = try write(#"{"prompt": "a", "chosen": "b", "rejected": "c", "ref_chosen_logp": -1}"# + "\n" +
                             #"{"prompt": "a", "chosen": "b", "rejected": "c", "ref_chosen_logp": "x", "ref_rejected_logp": 0}"#)
        XCTAssertThrowsError(try RecordReader.read(pref)) { error in
            XCTAssertTrue("\(error)".contains(":1: give both"), "\(error)")
            XCTAssertTrue("\(error)".contains(":2: field \"ref_chosen_logp\" must be a number"), "\(error)")
        }
    }

    func testSequencesLongerThanTheModelAreRejected() throws {
        let url = try write(#"{"prompt": "abcdef", "completion": "ghij"}"#)
        XCTAssertThrowsError(try Dataset.load(url, tokenizer: ByteTokenizer(), maxLength: 8, vocabularySize: 260)) {
            XCTAssertTrue("\($0)".contains(":1: 12 tokens exceed the model's limit of 8"), "\($0)")
        }
        XCTAssertThrowsError(try Dataset.load(url, tokenizer: ByteTokenizer(), maxLength: 64, vocabularySize: 100)) {
            XCTAssertTrue("\($0)".contains("outside the model's vocabulary"), "\($0)")
        }
    }

    func testTruncationKeepsThePromptsEndByDefaultAndCountsWhatItDid() throws {
        let url = try write([#"{"prompt": "abcdefgh", "completion": "ijklmnop"}"#, #"{"prompt": "ab", "completion": "cd"}"#,
                             #"{"prompt": "abcdefghij", "completion": "k"}"#].joined(separator: "\n"))
        // TRL's keep_end: <s> then the prompt's last tokens | the completion's start.
        let (kept, _) = try Dataset.load(url, tokenizer: ByteTokenizer(), maxLength: 100, vocabularySize: 260,
                                         limits: LengthLimits(maxPromptLength: 5, maxLength: 8))
        XCTAssertEqual(kept[0].sequences[0].tokens, [259, 104, 105, 106, 107, 108, 109, 110])
        XCTAssertEqual(kept[0].sequences[0].promptLength, 5)
        XCTAssertEqual(kept[2].sequences[0].tokens, [259, 106, 107, 108, 109, 110, 1])
        let (examples, report) = try Dataset.load(url, tokenizer: ByteTokenizer(), maxLength: 100, vocabularySize: 260,
                                                  limits: LengthLimits(maxPromptLength: 5, maxLength: 8, promptTruncation: .keepStart))
        // <s> a b c d | i j k  (prompt start kept, completion start kept)
        XCTAssertEqual(examples[0].sequences[0].tokens, [259, 100, 101, 102, 103, 108, 109, 110])
        XCTAssertEqual(examples[0].sequences[0].promptLength, 5)
        XCTAssertEqual(examples[1].sequences[0].tokens, [259, 100, 101, 102, 103, 1])
        XCTAssertEqual(report.truncatedPrompts, 2)
        XCTAssertEqual(report.truncatedCompletions, 1)
        XCTAssertEqual(report.records, 3)
        let (_, dropped) = try Dataset.load(url, tokenizer: ByteTokenizer(), maxLength: 100, vocabularySize: 260,
                                            limits: LengthLimits(maxLength: 10))
        XCTAssertEqual(dropped.dropped, 1)  // the 11-token prompt leaves no room for its completion
    }

    func testSkipInvalidCountsInsteadOfFailing() throws {
        let url = try write([#"{"prompt": "a", "completion": "b"}"#, "garbage", #"{"prompt": "c", "completion": 5}"#,
                             #"{"prompt": "d", "completion": "e"}"#].joined(separator: "\n"))
        XCTAssertThrowsError(try Dataset.load(url, tokenizer: ByteTokenizer(), maxLength: 100, vocabularySize: 260))
        let (examples, report) = try Dataset.load(url, tokenizer: ByteTokenizer(), maxLength: 100, vocabularySize: 260, skipInvalid: true)
        XCTAssertEqual(examples.count, 2)
        XCTAssertEqual(report.skipped, 2)
    }

    /// A 64 MiB line is refused by its size before JSON parsing (a 1 GB line took 9.2 GB), named with its line number.
    func testAnAbsurdlyLongLineIsRefusedByItsSize() throws {
        let huge = #"{"prompt": "a", "completion": ""# + String(repeating: "x", count: 64 << 20) + #""}"#
        let url = try write([#"{"prompt": "a", "completion": "b"}"#, huge].joined(separator: "\n"))
        XCTAssertThrowsError(try RecordReader.read(url)) { XCTAssertTrue("\($0)".contains(":2: a record of 67108") && "\($0)".contains("at most 16 MiB"), "\($0)") }
        XCTAssertEqual(try RecordReader.read(url, skippingInvalid: true).skipped, 1)
    }

    func testEmptyAndMissingFiles() throws {
        XCTAssertThrowsError(try RecordReader.read(try write("\n\n"))) { XCTAssertTrue("\($0)".contains("no records")) }
        XCTAssertThrowsError(try RecordReader.read(URL(fileURLWithPath: "/nonexistent.jsonl"))) { XCTAssertTrue("\($0)".contains("cannot read")) }
    }
}
