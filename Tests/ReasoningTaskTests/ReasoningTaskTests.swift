// The built-in task: its files, every label re-derived from the problem text, held-out problems
// kept out of training, every kind of teacher mistake made.
import Foundation
import ReasoningTask
import XCTest

final class ReasoningTaskTests: XCTestCase {
    func testSyntheticTaskFiles() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("redi-synth-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let stats = try Synthesis.run(SynthesisSettings(problems: 300, tracesPerProblem: 4, testProblems: 100, seed: 7, errorRate: 0.2), to: dir)
        func lines(_ name: String) throws -> [[String: String]] {
            try String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8).split(separator: "\n").map {
                try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: String])
            }
        }
        let sft = try lines("sft.jsonl"), pref = try lines("pref.jsonl"), test = try lines("test.jsonl")
        XCTAssertEqual(sft.count, stats.sftRecords)
        XCTAssertEqual(pref.count, stats.preferenceRecords)
        XCTAssertEqual(test.count, 100)
        XCTAssertGreaterThan(pref.count, 100)
        // Held-out problems never appear in training.
        let trainPrompts = Set(sft.map { $0["prompt"]! } + pref.map { $0["prompt"]! })
        XCTAssertTrue(test.allSatisfy { !trainPrompts.contains($0["prompt"]!) })
        // Recompute each problem's answer independently from its text and check the verifier's labels.
        func solve(_ prompt: String) -> Int {
            let sentences = prompt.components(separatedBy: ". ")
            var total = 0
            for s in sentences {
                let n = s.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
                if s.contains(" has ") && !s.contains("How many") {
                    total = n[0]
                } else if s.contains("gets") {
                    total += n[0]
                } else if s.contains("gives away") {
                    total -= n[0]
                } else if s.contains("times as large") {
                    total *= n[0]
                } else if s.contains("boxes with") {
                    total += n[0] * n[1]
                }
            }
            return total
        }
        for r in sft { XCTAssertTrue(Verifier.check(r["completion"]!, answer: solve(r["prompt"]!))) }
        for r in pref {
            let answer = solve(r["prompt"]!)
            XCTAssertTrue(Verifier.check(r["chosen"]!, answer: answer))
            XCTAssertFalse(Verifier.check(r["rejected"]!, answer: answer))
            XCTAssertTrue(r["rejected"]!.contains("Answer: "))
        }
        for r in test { XCTAssertEqual(r["answer"], String(solve(r["prompt"]!))) }
        // Every kind of mistake occurs, and the teacher is right often but not always.
        XCTAssertEqual(Set(stats.mistakes.keys), Set(MistakeKind.allCases.map(\.rawValue)))
        XCTAssertTrue((0.3...0.9).contains(stats.teacherAccuracy), "teacher accuracy \(stats.teacherAccuracy)")
    }
}
