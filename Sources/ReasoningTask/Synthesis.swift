// `redi-ps data synth`: problems → K teacher traces each → verifier → the files of the
// Open-R1 → REDI pipeline (sft.jsonl, pref.jsonl, test.jsonl, stats.json).
import Foundation
import Grading
import SeededRandom

public struct SynthesisSettings: Sendable {
    public var problems: Int
    public var tracesPerProblem: Int
    public var testProblems: Int
    public var seed: UInt64
    public var digits = 2
    public var steps = 3
    public var errorRate = 0.15
    public init(problems: Int, tracesPerProblem: Int, testProblems: Int, seed: UInt64, digits: Int = 2, steps: Int = 3, errorRate: Double = 0.15) {
        self.problems = problems; self.tracesPerProblem = tracesPerProblem; self.testProblems = testProblems
        self.seed = seed; self.digits = digits; self.steps = steps; self.errorRate = errorRate
    }
}

public struct SynthesisStats: Codable, Sendable {
    public var problems = 0, testProblems = 0, traces = 0, correctTraces = 0
    public var sftRecords = 0, preferenceRecords = 0, problemsWithoutCorrectTrace = 0
    public var teacherAccuracy = 0.0
    /// Mistake kind → how many times the teacher made it (in traces the verifier rejected or accepted).
    public var mistakes: [String: Int] = [:]
    public var digits = 0, steps = 0, errorRate = 0.0, seed: UInt64 = 0
}

public enum Synthesis {
    /// Writes the task's files into `directory`; returns the statistics also written to stats.json.
    public static func run(_ s: SynthesisSettings, to directory: URL) throws -> SynthesisStats {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var rng = SeededGenerator(seed: s.seed)
        let generator = ProblemGenerator(digits: s.digits, steps: s.steps)
        let teacher = Teacher(errorRate: s.errorRate)
        // Test problems first, then training problems that never repeat a test problem's text.
        var seen = Set<String>()
        var test: [Problem] = []
        var attempts = 0
        while test.count < s.testProblems && attempts < 100 * max(1, s.testProblems) {
            attempts += 1
            let p = generator.make(&rng)
            if seen.insert(p.text).inserted { test.append(p) }
        }
        var train: [Problem] = []
        attempts = 0
        while train.count < s.problems && attempts < 100 * max(1, s.problems) {
            attempts += 1
            let p = generator.make(&rng)
            if seen.insert(p.text).inserted { train.append(p) }
        }
        guard train.count == s.problems, test.count == s.testProblems else {
            throw SynthesisError("only \(train.count + test.count) distinct problems exist at \(s.digits) digits and \(s.steps) steps; ask for fewer or raise --digits/--steps")
        }
        var stats = SynthesisStats(digits: s.digits, steps: s.steps, errorRate: s.errorRate, seed: s.seed)
        stats.problems = train.count
        stats.testProblems = test.count
        var sft = "", pref = "", testLines = ""
        func line(_ object: [String: Any]) throws -> String {
            String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]), as: UTF8.self) + "\n"
        }
        for p in train {
            let traces = (0..<s.tracesPerProblem).map { _ in teacher.solve(p, &rng) }
            let correct = traces.filter { Verifier.check($0.text, answer: p.answer) }
            let wrong = traces.filter { !Verifier.check($0.text, answer: p.answer) }
            stats.traces += traces.count
            stats.correctTraces += correct.count
            for t in traces { for m in t.mistakes { stats.mistakes[m.rawValue, default: 0] += 1 } }
            guard let positive = correct.first else { stats.problemsWithoutCorrectTrace += 1; continue }
            sft += try line(["prompt": p.prompt, "completion": positive.text])
            stats.sftRecords += 1
            if let negative = wrong.first {
                pref += try line(["prompt": p.prompt, "chosen": positive.text, "rejected": negative.text])
                stats.preferenceRecords += 1
            }
        }
        for p in test { testLines += try line(["prompt": p.prompt, "answer": String(p.answer)]) }
        stats.teacherAccuracy = Double(stats.correctTraces) / Double(max(1, stats.traces))
        try sft.write(to: directory.appendingPathComponent("sft.jsonl"), atomically: true, encoding: .utf8)
        try pref.write(to: directory.appendingPathComponent("pref.jsonl"), atomically: true, encoding: .utf8)
        try testLines.write(to: directory.appendingPathComponent("test.jsonl"), atomically: true, encoding: .utf8)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        try encoder.encode(stats).write(to: directory.appendingPathComponent("stats.json"))
        return stats
    }
}

/// Labels a trace by its final answer only, as a math verifier does.
public enum Verifier {
    public static func check(_ text: String, answer: Int) -> Bool {
        AnswerRule.marker.extract(text).map(AnswerRule.normalize) == String(answer)
    }
}

public struct SynthesisError: Error, CustomStringConvertible {
    public let description: String
    init(_ d: String) { description = d }
}
