import Foundation
import Grading
import XCTest

final class GradingTests: XCTestCase {
    func grade(_ reference: String, _ answer: String) -> Bool {
        AnswerRule.math.grade("so the answer is \\boxed{\(answer)}.", reference: reference).correct
    }

    /// The forms the issue names, and the near misses that must not pass.
    func testEquivalentForms() {
        XCTAssertTrue(grade("\\frac{1}{2}", "0.5"))
        XCTAssertTrue(grade("0.5", "\\frac{1}{2}"))
        XCTAssertTrue(grade("\\frac{\\sqrt2}{2}", "\\sqrt{2}/2"))
        XCTAssertTrue(grade("$\\frac{\\sqrt{2}}{2}$", "\\frac{1}{\\sqrt{2}}"))
        XCTAssertTrue(grade("x = 5", "5"))
        XCTAssertTrue(grade("\\{1, 2\\}", "2, 1"))
        XCTAssertTrue(grade("(-\\infty, 3]", "(-\\infty,3]"))
        XCTAssertTrue(grade("1,000", "1000"))
        XCTAssertTrue(grade("90^\\circ", "90"))
        XCTAssertTrue(grade("\\text{(C)}", "C"))
        XCTAssertFalse(grade("\\frac{1}{2}", "0.51"))
        XCTAssertFalse(grade("[1, 2)", "[1, 2]"))
        XCTAssertFalse(grade("(1, 2)", "(2, 1)"))
        XCTAssertFalse(grade("\\sqrt{2}", "1.4142"))
        XCTAssertFalse(grade("x^2+1", "(x+1)^2"))
        XCTAssertEqual(AnswerRule.math.grade("no box here: 5", reference: "5"), AnswerRule.Grade(extracted: nil, correct: false))
        XCTAssertEqual(AnswerRule.math.extract("\\boxed{\\frac{a}{b}} then \\fbox{7}"), "7")
    }

    /// Hostile or odd answers are graded (wrong), never a crash or a hang.
    func testOddInputsAreWrongNotFatal() {
        for odd in [
            "", "}", "{{{{", "\\frac", "\\sqrt[", "((((((1", "1/0", "0/0", "\\begin{pmatrix}", "|", "^^^", "\\text{", String(repeating: "(", count: 5000),
            "10^{1000}", "\\binom{1000}{500}", "99999!"
        ] {
            XCTAssertFalse(grade("5", odd), odd)
        }
        XCTAssertTrue(grade("\\infty", "\\infty"))
    }

    /// Agreement with Math-Verify's own verdicts (Tests/reference/math_verify_pairs.py writes
    /// them): every pair where the two differ is listed, and the rate must stay high.
    func testAgreesWithMathVerify() throws {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "math_verify_pairs", withExtension: "jsonl"))
        let lines = try String(contentsOf: url, encoding: .utf8).split(separator: "\n")
        XCTAssertGreaterThanOrEqual(lines.count, 300)
        var agree = 0, positives = 0, disagreements: [String] = []
        for line in lines {
            let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let reference = try XCTUnwrap(json["reference"] as? String), sample = try XCTUnwrap(json["sample"] as? String)
            let expected = try XCTUnwrap(json["math_verify"] as? Bool)
            let ours = AnswerRule.math.grade(sample, reference: reference)
            if expected { positives += 1 }
            if ours.correct == expected {
                agree += 1
            } else {
                disagreements.append("\(reference) vs \(ours.extracted ?? "-"): math-verify \(expected), ours \(ours.correct)")
            }
        }
        let rate = Double(agree) / Double(lines.count)
        print(String(format: "math rule agrees with Math-Verify on %d of %d pairs (%.1f%%; %d equivalent)", agree, lines.count, 100 * rate, positives))
        for d in disagreements { print("  disagrees: \(d)") }
        XCTAssertGreaterThanOrEqual(rate, 0.97, disagreements.joined(separator: "\n"))
    }
}
