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
        let url = try write(
            #"{"prompt": "ab", "completion": "c"}"# + "\n\n"
                + #"{"prompt": "x", "chosen": "yy", "rejected": "z", "ref_chosen_logp": -1.5, "ref_rejected_logp": -2}"#.replacingOccurrences(of: "x", with: "x"))
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
        let url = try write(
            [
                #"{"prompt": "a", "completion": "b"}"#,
                #"{"prompt": "a", "completion": "b""#,
                #"["not", "an", "object"]"#,
                #"{"prompt": 3, "completion": "b"}"#,
                #"{"prompt": "a", "completion": ""}"#,
                #"{"prompt": "a"}"#,
                #"{"prompt": [{"role": "user", "content": "hi"}], "completion": "b"}"#
            ].joined(separator: "\n"))
        XCTAssertThrowsError(try RecordReader.read(url)) { error in
            let text = "\(error)"
            for (line, needle) in [
                (2, "invalid JSON"), (3, "expected a JSON object"), (4, "field \"prompt\" must be a string"),
                (5, "field \"completion\" is empty"), (6, "expected"), (7, "field \"completion\" must be a non-empty message list")
            ] {
                XCTAssertTrue(text.contains("\(url.path):\(line): \(needle)"), "missing line \(line) (\(needle)) in:\n\(text)")
            }
            XCTAssertFalse(text.contains(":1:"))
        }
        let pref = try write(
            #"{"prompt": "a", "chosen": "b", "rejected": "c", "ref_chosen_logp": -1}"# + "\n"
                + #"{"prompt": "a", "chosen": "b", "rejected": "c", "ref_chosen_logp": "x", "ref_rejected_logp": 0}"#)
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
        let url = try write(
            [
                #"{"prompt": "abcdefgh", "completion": "ijklmnop"}"#, #"{"prompt": "ab", "completion": "cd"}"#,
                #"{"prompt": "abcdefghij", "completion": "k"}"#
            ].joined(separator: "\n"))
        // TRL's keep_end: <s> then the prompt's last tokens | the completion's start.
        let (kept, _) = try Dataset.load(
            url, tokenizer: ByteTokenizer(), maxLength: 100, vocabularySize: 260,
            limits: LengthLimits(maxPromptLength: 5, maxLength: 8))
        XCTAssertEqual(kept[0].sequences[0].tokens, [259, 104, 105, 106, 107, 108, 109, 110])
        XCTAssertEqual(kept[0].sequences[0].promptLength, 5)
        XCTAssertEqual(kept[2].sequences[0].tokens, [259, 106, 107, 108, 109, 110, 1])
        let (examples, report) = try Dataset.load(
            url, tokenizer: ByteTokenizer(), maxLength: 100, vocabularySize: 260,
            limits: LengthLimits(maxPromptLength: 5, maxLength: 8, promptTruncation: .keepStart))
        // <s> a b c d | i j k  (prompt start kept, completion start kept)
        XCTAssertEqual(examples[0].sequences[0].tokens, [259, 100, 101, 102, 103, 108, 109, 110])
        XCTAssertEqual(examples[0].sequences[0].promptLength, 5)
        XCTAssertEqual(examples[1].sequences[0].tokens, [259, 100, 101, 102, 103, 1])
        XCTAssertEqual(report.truncatedPrompts, 2)
        XCTAssertEqual(report.truncatedCompletions, 1)
        XCTAssertEqual(report.records, 3)
        let (_, dropped) = try Dataset.load(
            url, tokenizer: ByteTokenizer(), maxLength: 100, vocabularySize: 260,
            limits: LengthLimits(maxLength: 10))
        XCTAssertEqual(dropped.dropped, 1)  // the 11-token prompt leaves no room for its completion
    }

    func testSkipInvalidCountsInsteadOfFailing() throws {
        let url = try write(
            [
                #"{"prompt": "a", "completion": "b"}"#, "garbage", #"{"prompt": "c", "completion": 5}"#,
                #"{"prompt": "d", "completion": "e"}"#
            ].joined(separator: "\n"))
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

    /// Lines cut across the reader's 1 MiB reads, an over-long line between good ones (skipped
    /// without being held, the next line keeping its number) and a last line without a newline.
    func testLinesStreamAcrossReadsAndPastAnOverLongLine() throws {
        let long = #"{"prompt": "p", "completion": ""# + String(repeating: "y", count: 700_000) + #""}"#
        let lines = [#"{"prompt": "a", "completion": "b"}"#, long, long, "", String(repeating: "z", count: 17 << 20), long, #"{"prompt": "c", "completion": "d"}"#]
        let url = try write(lines.joined(separator: "\n"))
        XCTAssertThrowsError(try RecordReader.read(url)) {
            XCTAssertTrue("\($0)".contains(":5: a record of 17825792 bytes"), "\($0)")
            XCTAssertFalse("\($0)".contains(":4:"), "\($0)")
        }
        let (records, skipped) = try RecordReader.read(url, skippingInvalid: true)
        XCTAssertEqual(records.map(\.line), [1, 2, 3, 6, 7])
        XCTAssertEqual(skipped, 1)
        XCTAssertEqual(records.last?.record, .completion(prompt: "c", completion: "d"))
        XCTAssertEqual(records[1].record, .completion(prompt: "p", completion: String(repeating: "y", count: 700_000)))
    }

    /// The coordinator's scratch-file store gives back exactly what loading gives (truncation,
    /// drops, skipped lines, references), keeps no file in the directory, and loading can stop early.
    func testTheTokenStoreGivesBackWhatLoadingGives() throws {
        var lines: [String] = []
        for i in 0..<300 {
            let chosen = String(repeating: "c", count: i % 37 + 1), rejected = String(repeating: "r", count: i % 11 + 1)
            let refs = i % 3 == 0 ? "" : #", "ref_chosen_logp": -\#(i).5, "ref_rejected_logp": -\#(i)"#
            lines.append(#"{"prompt": "\#(String(repeating: "p", count: i % 13))q", "chosen": "\#(chosen)", "rejected": "\#(rejected)"\#(refs)}"#)
        }
        lines.insert("not json", at: 17)
        let url = try write(lines.joined(separator: "\n"))
        let limits = LengthLimits(maxPromptLength: 8, maxLength: 30, dropLongerThan: 45)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("redi-store-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let (examples, report) = try Dataset.load(url, tokenizer: ByteTokenizer(), maxLength: 100, vocabularySize: 260, limits: limits, skipInvalid: true)
        let store = try TokenStore(url, tokenizer: ByteTokenizer(), maxLength: 100, vocabularySize: 260, limits: limits, skipInvalid: true, directory: dir)
        XCTAssertEqual(store.count, examples.count)
        XCTAssertEqual("\(store.report)", "\(report)")
        XCTAssertGreaterThan(report.truncatedPrompts, 0)
        XCTAssertGreaterThan(report.truncatedCompletions, 0)
        XCTAssertEqual(report.skipped, 1)
        XCTAssertEqual(try store.examples(0..<store.count), examples)
        XCTAssertEqual(try store.example(123), examples[123])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), [], "the token file is unlinked while open")
        XCTAssertTrue(store.isPreference)
        XCTAssertFalse(store.hasReferences)
        store.setReferences((0..<2 * store.count).map { -Double($0) })
        XCTAssertTrue(store.hasReferences)
        XCTAssertEqual(try store.example(5).refRejected, -11)
        XCTAssertEqual(
            try Dataset.load(url, tokenizer: ByteTokenizer(), maxLength: 100, vocabularySize: 260, limits: limits, skipInvalid: true, first: 7).examples,
            Array(examples.prefix(7)))
        // A bad line is still an error naming it, after the whole file was read.
        XCTAssertThrowsError(try TokenStore(url, tokenizer: ByteTokenizer(), maxLength: 100, vocabularySize: 260, limits: limits, directory: dir)) {
            XCTAssertTrue("\($0)".contains(":18: invalid JSON"), "\($0)")
        }
    }
}
