// The paper's selection from Open-R1-Math rows, rule by rule (words stand in for tokens).
import Data
import Foundation
import XCTest

final class OpenR1Tests: XCTestCase {
    func select(_ row: [String: Any], _ configure: (inout OpenR1.Settings) -> Void = { _ in }) -> OpenR1.Selection {
        var settings = OpenR1.Settings()
        settings.maxPromptTokens = 20
        settings.maxResponseTokens = 6
        configure(&settings)
        return OpenR1.select(row, settings: settings, tokens: { $0.split(separator: " ").count }, renderPrompt: { $0[0]["content"]! })
    }

    func raw(_ generations: [String], llama: [Any], mathVerify: [Any], source: String = "olympiads", valid: String = "yes") -> [String: Any] {
        [
            "problem": "What is 1+1?", "source": source, "problem_is_valid": valid, "generations": generations,
            "correctness": ["llama_verification": llama, "math_verify_reparsed_answer": mathVerify]
        ]
    }

    func content(_ messages: Any?) -> String? { (messages as? [[String: String]])?.first?["content"] }

    func testCorrectMeansEveryVerifierSaysTrueAndPairsAreFirstWithFirst() {
        let s = select(raw(["a 2", "b 3", "c 2", "d 4"], llama: [true, false, true, true], mathVerify: [true, false, NSNull(), false]))
        XCTAssertEqual(s.counts.positives, 1)
        XCTAssertEqual(s.counts.negatives, 3)  // a null verdict is not a yes
        XCTAssertEqual(s.sft.map { content($0["completion"]) }, ["a 2"])
        XCTAssertEqual(s.preference.count, 1)
        XCTAssertEqual(content(s.preference[0]["chosen"]), "a 2")
        XCTAssertEqual(content(s.preference[0]["rejected"]), "b 3")
        XCTAssertEqual(content(s.preference[0]["prompt"]), "What is 1+1?")
        // More pairs per problem pair the k-th correct with the k-th incorrect.
        let two = select(raw(["a", "b", "c", "d"], llama: [true, false, true, false], mathVerify: [true, false, true, false])) { $0.pairsPerProblem = 2 }
        XCTAssertEqual(two.preference.map { [content($0["chosen"])!, content($0["rejected"])!] }, [["a", "b"], ["c", "d"]])
    }

    func testProblemsLeftOutSayWhy() {
        XCTAssertEqual(select(raw(["a"], llama: [true], mathVerify: [true], source: "cn_k12")).counts.excludedSource, 1)
        XCTAssertEqual(select(raw(["a"], llama: [true], mathVerify: [true], valid: "no")).counts.invalidProblem, 1)
        XCTAssertEqual(select(raw(["a", "b"], llama: [true], mathVerify: [true, false])).counts.verdictsMissing, 1)
        var long = raw(["a"], llama: [true], mathVerify: [true])
        long["problem"] = Array(repeating: "w", count: 21).joined(separator: " ")
        XCTAssertEqual(select(long).counts.promptTooLong, 1)
        XCTAssertEqual(select(["problem": "x"]).counts.noProblem, 1)
        // The 220k layout: top-level verdict lists; the instruction joins the problem.
        let flat: [String: Any] = ["problem": "p", "generations": ["x", "y"], "correctness_llama": [true, false], "correctness_math_verify": [true, true]]
        let s = select(flat) { $0.instruction = "Box it." }
        XCTAssertEqual(s.counts.positives, 1)
        XCTAssertEqual(content(s.sft[0]["prompt"]), "p\nBox it.")
    }

    func testLongTracesAreDroppedNotCut() {
        let long = "1 2 3 4 5 6 7"
        let s = select(raw([long, "short", "ok fine", "no"], llama: [true, false, true, false], mathVerify: [true, false, true, false]))
        XCTAssertEqual(s.counts.sftTooLong, 1)
        XCTAssertEqual(s.sft.map { content($0["completion"]) }, ["ok fine"])
        // The pair is chosen first (first correct, first incorrect), then dropped for its long trace.
        XCTAssertEqual(s.counts.pairsTooLong, 1)
        XCTAssertTrue(s.preference.isEmpty)
    }
}
