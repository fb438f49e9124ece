// pass@k, answer extraction and sampling.
import Evaluation
import Foundation
import Grading
import Model
import Numerics
import ReasoningTask
import SeededRandom
import XCTest

final class EvaluationTests: XCTestCase {
    func testPassAtKMatchesTheCombinatorialDefinition() {
        func binomial(_ n: Int, _ k: Int) -> Double { k < 0 || k > n ? 0 : (0..<k).reduce(1.0) { $0 * Double(n - $1) / Double($1 + 1) } }
        for n in 1...8 {
            for c in 0...n {
                for k in 1...n {
                    XCTAssertEqual(passAtK(samples: n, correct: c, k: k), 1 - binomial(n - c, k) / binomial(n, k), accuracy: 1e-12)
                }
            }
        }
        XCTAssertEqual(passAtK(samples: 4, correct: 1, k: 1), 0.25)
        let (m, se) = meanAndStandardError([0, 1, 1, 0])
        XCTAssertEqual(m, 0.5)
        XCTAssertEqual(se, (1.0 / 3 / 4).squareRoot(), accuracy: 1e-12)
    }

    func testAnswerRules() {
        XCTAssertEqual(AnswerRule.marker.extract("so 3+4=7.\nAnswer: 7\n"), "7")
        XCTAssertEqual(AnswerRule.marker.extract("Answer: 5 then Answer: -12."), "-12.")
        XCTAssertEqual(AnswerRule.normalize("-12."), "-12")
        XCTAssertEqual(AnswerRule.normalize(" 1,234.0 "), "1234")
        XCTAssertEqual(AnswerRule.boxed.extract("thus \\boxed{\\frac{1}{2}} done"), "\\frac{1}{2}")
        XCTAssertEqual(AnswerRule.gsm8k.extract("steps\n#### 1,024"), "1,024")
        XCTAssertNil(AnswerRule.marker.extract("no marker here"))
    }

    func testSamplingIsGreedyAtZeroReproducibleAndRespectsTopP() {
        let logits: [Float] = [0.1, 3.0, 2.9, -5, 1.0]
        do {
            let l = logits[...]
            var rng = SeededGenerator(seed: 1)
            XCTAssertEqual(sampleToken(l, settings: SamplingSettings(temperature: 0), rng: &rng), 1)
            // top-p small enough to keep only the best token.
            for _ in 0..<50 { XCTAssertEqual(sampleToken(l, settings: SamplingSettings(temperature: 1, topP: 0.3), rng: &rng), 1) }
            var a = SeededGenerator(seed: 9), b = SeededGenerator(seed: 9)
            let s1 = (0..<100).map { _ in sampleToken(l, settings: SamplingSettings(temperature: 1, topP: 1), rng: &a) }
            let s2 = (0..<100).map { _ in sampleToken(l, settings: SamplingSettings(temperature: 1, topP: 1), rng: &b) }
            XCTAssertEqual(s1, s2)
            // Frequencies follow softmax(logits): tokens 1 and 2 dominate, token 3 is ~never drawn.
            var counts = [Int](repeating: 0, count: 5)
            var rng2 = SeededGenerator(seed: 3)
            for _ in 0..<20000 { counts[Int(sampleToken(l, settings: SamplingSettings(temperature: 1, topP: 1), rng: &rng2))] += 1 }
            let z = logits.map { Foundation.exp(Double($0)) }.reduce(0, +)
            XCTAssertEqual(Double(counts[1]) / 20000, Foundation.exp(3.0) / z, accuracy: 0.015)
            XCTAssertEqual(Double(counts[2]) / 20000, Foundation.exp(2.9) / z, accuracy: 0.015)
        }
    }

    /// The bucketed nucleus is the sorted-prefix nucleus: every draw lies in the smallest set of
    /// most likely tokens reaching top-p, and every member of a small nucleus gets drawn.
    func testTopPNucleusMatchesASortedReference() {
        var rng = SeededGenerator(seed: 11)
        for (spread, topP) in [(0.05, 0.9), (1.0, 0.95), (4.0, 0.5), (8.0, 0.99)] {
            let logits = (0..<5000).map { _ in Float(spread * rng.nextNormal()) }
            let w = logits.map { Foundation.exp(Double($0 - logits.max()!)) }
            let order = w.indices.sorted { w[$0] > w[$1] || (w[$0] == w[$1] && $0 < $1) }
            var nucleus = Set<Int>(), mass = 0.0
            for i in order where mass < topP * w.reduce(0, +) { nucleus.insert(i); mass += w[i] }
            var drawn = Set<Int>()
            for _ in 0..<4000 { drawn.insert(Int(sampleToken(logits[...], settings: SamplingSettings(temperature: 1, topP: topP), rng: &rng))) }
            XCTAssertTrue(drawn.isSubset(of: nucleus), "spread \(spread): drew \(drawn.subtracting(nucleus).count) tokens outside the nucleus")
            if nucleus.count <= 20 { XCTAssertEqual(drawn, nucleus) }
        }
    }

    /// Continuous batching changes nothing a sample draws: with the same number of rows, a
    /// request gives the same tokens alone, among others, or in another order (refills at
    /// other moments, other neighbours in every product), on a model wide enough that
    /// OpenBLAS switches between its small-matrix and regular kernels.
    func testBatchedSamplingDoesNotDependOnTheBatch() throws {
        let config = try LlamaConfig(
            modelType: "llama", hiddenSize: 192, intermediateSize: 512, numHiddenLayers: 3, numAttentionHeads: 6,
            numKeyValueHeads: 2, vocabSize: 3000, maxPositionEmbeddings: 128, rmsNormEps: 1e-5,
            ropeTheta: 10000, tieWordEmbeddings: true)
        let layout = ParameterLayout(config: config)
        let parameters = FloatBuffer(count: layout.totalCount)
        var rng = SeededGenerator(seed: 4)
        for i in 0..<parameters.count { parameters[i] = Float(0.08 * rng.nextNormal()) }
        for offset in layout.normOffsets { for i in 0..<config.hiddenSize { parameters[offset + i] = 1 } }
        // Prompts of different lengths; stop tokens end samples at different steps.
        var requests: [GenerationRequest] = []
        for r in 0..<7 {
            var prompt: [Int32] = []
            for _ in 0..<(3 + r * 5) { prompt.append(Int32(rng.next() % 3000)) }
            requests.append(GenerationRequest(prompt: prompt, samples: 3, seed: UInt64(100 + r)))
        }
        let settings = SamplingSettings(temperature: 1.0, topP: 0.95, maxNewTokens: 24)
        let stop: Set<Int32> = Set((0..<60).map { Int32($0) })
        func run(_ r: [GenerationRequest]) -> [[[Int32]]] {
            generate(config: config, parameters: parameters, requests: r, rows: 5, settings: settings, stop: stop)
        }
        let together = run(requests)
        let lengths = together.joined().map { (sample: [Int32]) in sample.count }
        XCTAssertGreaterThan(Set(lengths).count, 3, "samples should end at different lengths: \(lengths)")
        XCTAssertEqual(Array(run(requests.reversed()).reversed()), together)
        XCTAssertEqual(run([requests[4]])[0], together[4])
        XCTAssertEqual(run(Array(requests[2...3])), Array(together[2...3]))
    }
}
