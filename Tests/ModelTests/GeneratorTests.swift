// The KV-cache generator against the float64 reference forward: prefill and decode logits at
// every position, rows refilled mid-flight, and the guarantee continuous batching rests on:
// a row's logits are the same bits whichever other rows share the decode step (for a given
// number of cache rows).
import Model
import Numerics
import ReferenceLlama
import XCTest

final class GeneratorTests: XCTestCase {
    static let config = try! LlamaConfig(modelType: "llama", hiddenSize: 16, intermediateSize: 24, numHiddenLayers: 2, numAttentionHeads: 4,
                                         numKeyValueHeads: 2, vocabSize: 23, maxPositionEmbeddings: 64, rmsNormEps: 1e-5,
                                         ropeTheta: 10000, tieWordEmbeddings: false)
    static let sequences: [[Int32]] = [[1, 5, 7, 9, 2, 3, 8, 8, 0], [4, 8, 15, 16, 22, 0, 11], [6, 2, 19, 20, 1, 1, 13, 5, 9, 21, 3]]

    func testPrefillAndDecodeMatchTheReferenceAtEveryPosition() {
        let layout = ParameterLayout(config: Self.config)
        let params = EngineTests.randomParameters(layout, seed: 5)
        let reference = ReferenceLlama(config: Self.config)
        let promptLength = 3
        let g = Generator(config: Self.config, parameters: params.baseAddress, rows: Self.sequences.count, capacity: 16)
        var got: [[[Float]]] = Self.sequences.indices.map { [g.prefill(row: $0, prompt: Array(Self.sequences[$0].prefix(promptLength)))] }
        // Decode all rows together while they last, then the longest alone (a padded single row).
        for position in promptLength..<(Self.sequences.map(\.count).max()! - 1) {
            let rows = Self.sequences.indices.filter { Self.sequences[$0].count - 1 > position }
            let logits = g.decode(rows: rows, tokens: rows.map { Self.sequences[$0][position] })
            for (i, r) in rows.enumerated() { got[r].append(Array(logits[(i * 23)..<((i + 1) * 23)])) }
        }
        var worst = 0.0
        for (r, s) in Self.sequences.enumerated() {
            let want = reference.forward(params.array.map(Double.init), tokens: Array(s.dropLast()))
            XCTAssertEqual(got[r].count, s.count - promptLength)
            for (j, logits) in got[r].enumerated() {
                worst = max(worst, zip(logits, want[promptLength - 1 + j]).map { abs(Double($0) - $1) }.max()!)
            }
        }
        print("generator: max |logit - float64 reference| = \(worst)")
        XCTAssertLessThan(worst, 1e-4)
    }

    func testARowsLogitsDoNotDependOnTheOtherRows() {
        let layout = ParameterLayout(config: Self.config)
        let params = EngineTests.randomParameters(layout, seed: 9)
        let steps = 6
        // Alone: the only active row of a 5-row generator, in its last row.
        func alone(_ s: [Int32]) -> [[Float]] {
            let g = Generator(config: Self.config, parameters: params.baseAddress, rows: 5, capacity: 32)
            var out = [g.prefill(row: 4, prompt: Array(s.prefix(3)))]
            for p in 3..<(3 + steps) { out.append(g.decode(rows: [4], tokens: [s[p % s.count]])) }
            return out
        }
        // Together: 5 rows, where row 2 is refilled with a new prompt mid-flight and row 4
        // is a copy of row 0 (same prompt, another sample).
        let g = Generator(config: Self.config, parameters: params.baseAddress, rows: 5, capacity: 32)
        var together: [[[Float]]] = Array(repeating: [], count: 5)
        let prompts = [0, 1, 2, 1].map { Self.sequences[$0] }
        for r in 0..<4 { together[r].append(g.prefill(row: r, prompt: Array(prompts[r].prefix(3)))) }
        g.copyRow(0, to: 4)
        together[4].append(together[0][0])
        for step in 0..<steps {
            if step == 2 {
                together[2] = [g.prefill(row: 2, prompt: Array(Self.sequences[2].prefix(3)))]
            }
            let rows = step == 4 ? [4, 0, 3] : [0, 1, 2, 3, 4]  // a step without rows 1 and 2 (they wait)
            let tokens = rows.map { r -> Int32 in
                let s = r == 4 ? prompts[0] : (r == 2 && step >= 2 ? Self.sequences[2] : prompts[r])
                return s[(3 + together[r].count - 1) % s.count]
            }
            let logits = g.decode(rows: rows, tokens: tokens)
            for (i, r) in rows.enumerated() { together[r].append(Array(logits[(i * 23)..<((i + 1) * 23)])) }
        }
        XCTAssertEqual(together[0], alone(prompts[0]).prefix(together[0].count).map { $0 })
        XCTAssertEqual(together[4], together[0])
        XCTAssertEqual(together[3], alone(prompts[3]).prefix(together[3].count).map { $0 })
        XCTAssertEqual(together[1], alone(prompts[1]).prefix(together[1].count).map { $0 })
        XCTAssertEqual(together[2], alone(Self.sequences[2]).prefix(together[2].count).map { $0 })
    }
}
