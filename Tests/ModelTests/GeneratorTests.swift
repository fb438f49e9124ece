// The KV-cache generator against the float64 reference forward: prefill and decode logits at
// every position, rows refilled mid-flight, and the guarantee continuous batching rests on:
// a row's logits are the same bits whichever other rows share the decode step, on every
// OpenBLAS kernel this processor can run.
import BLASKernel
import Model
import Numerics
import ReferenceLlama
import SeededRandom
import XCTest

final class GeneratorTests: XCTestCase {
    static let config = try! LlamaConfig(
        modelType: "llama", hiddenSize: 16, intermediateSize: 24, numHiddenLayers: 2, numAttentionHeads: 4,
        numKeyValueHeads: 2, vocabSize: 23, maxPositionEmbeddings: 64, rmsNormEps: 1e-5,
        ropeTheta: 10000, tieWordEmbeddings: false)
    static let sequences: [[Int32]] = [[1, 5, 7, 9, 2, 3, 8, 8, 0], [4, 8, 15, 16, 22, 0, 11], [6, 2, 19, 20, 1, 1, 13, 5, 9, 21, 3]]

    func testPrefillAndDecodeMatchTheReferenceAtEveryPosition() {
        let layout = ParameterLayout(config: Self.config)
        let params = EngineTests.randomParameters(layout, seed: 5)
        let reference = ReferenceLlama(config: Self.config)
        let promptLength = 3
        let g = Generator(config: Self.config, parameters: params, rows: Self.sequences.count, capacity: 16)
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

    /// The cache grows with the sequence (256 tokens, then doubling) instead of being reserved
    /// for every row at the longest; the logits across a growth match the reference.
    func testTheCacheGrowsWithTheSequence() {
        var config = Self.config
        config.maxPositionEmbeddings = 1000
        let params = EngineTests.randomParameters(ParameterLayout(config: config), seed: 6)
        let g = Generator(config: config, parameters: params, rows: 8, capacity: 1000)
        let perToken = 2 * config.numHiddenLayers * config.numKeyValueHeads * config.headDim * MemoryLayout<Float>.stride
        XCTAssertEqual(g.cacheBytes, 0)
        let tokens = (0..<262).map { Int32(($0 * 7 + 3) % 23) }
        var got = [g.prefill(row: 3, prompt: Array(tokens.prefix(250)))]
        XCTAssertEqual(g.cacheBytes, 256 * perToken)  // one row, not 8 × 1000 tokens
        for p in 250..<261 { got.append(g.decode(rows: [3], tokens: [tokens[p]])) }
        XCTAssertEqual(g.cacheBytes, 512 * perToken)
        g.copyRow(3, to: 5)
        XCTAssertEqual(g.cacheBytes, 2 * 512 * perToken)
        let want = ReferenceLlama(config: config).forward(params.array.map(Double.init), tokens: Array(tokens.prefix(261)))
        var worst = 0.0
        for (j, logits) in got.enumerated() { worst = max(worst, zip(logits, want[249 + j]).map { abs(Double($0) - $1) }.max()!) }
        XCTAssertLessThan(worst, 1e-4)
        // The copy continues exactly as the original would.
        XCTAssertEqual(g.decode(rows: [5], tokens: [tokens[261]]), g.decode(rows: [3], tokens: [tokens[261]]))
    }

    /// A bf16 cache: half the bytes, logits within bf16 rounding of the fp32 cache's, and rows
    /// still independent of each other.
    func testABFloat16CacheHalvesTheMemory() {
        let params = EngineTests.randomParameters(ParameterLayout(config: Self.config), seed: 5)
        let full = Generator(config: Self.config, parameters: params, rows: 3, capacity: 32)
        let half = Generator(config: Self.config, parameters: params, rows: 3, capacity: 32, precision: .bf16)
        var worst: Float = 0
        for (r, s) in Self.sequences.enumerated() {
            _ = full.prefill(row: r, prompt: Array(s.prefix(3)))
            _ = half.prefill(row: r, prompt: Array(s.prefix(3)))
        }
        for p in 3..<7 {
            let tokens = Self.sequences.map { $0[p] }
            let a = full.decode(rows: [0, 1, 2], tokens: tokens), b = half.decode(rows: [0, 1, 2], tokens: tokens)
            worst = max(worst, zip(a, b).map { abs($0 - $1) }.max()!)
            XCTAssertNotEqual(a, b)  // the rounding is real
        }
        XCTAssertEqual(half.cacheBytes * 2, full.cacheBytes)
        XCTAssertLessThan(worst, 0.05)
        // Row 1 decoded alone in a bf16 generator: the same bits as among the others.
        let alone = Generator(config: Self.config, parameters: params, rows: 3, capacity: 32, precision: .bf16)
        _ = alone.prefill(row: 1, prompt: Array(Self.sequences[1].prefix(3)))
        var last: [Float] = []
        for p in 3..<7 { last = alone.decode(rows: [1], tokens: [Self.sequences[1][p]]) }
        let together = Generator(config: Self.config, parameters: params, rows: 3, capacity: 32, precision: .bf16)
        for (r, s) in Self.sequences.enumerated() { _ = together.prefill(row: r, prompt: Array(s.prefix(3))) }
        var mine: [Float] = []
        for p in 3..<7 {
            let logits = together.decode(rows: [2, 1, 0], tokens: [2, 1, 0].map { Self.sequences[$0][p] })
            mine = Array(logits[23..<46])
        }
        XCTAssertEqual(mine, last)
    }

    /// Each row decoded among others (refilled, copied, some waiting) against the same row decoded alone.
    static func rowsAloneAndTogether(_ config: LlamaConfig = GeneratorTests.config) -> (alone: [[[Float]]], together: [[[Float]]]) {
        let layout = ParameterLayout(config: config)
        let params = EngineTests.randomParameters(layout, seed: 9)
        let steps = 6
        // Alone: the only active row of a 5-row generator, in its last row.
        func alone(_ s: [Int32]) -> [[Float]] {
            let g = Generator(config: config, parameters: params, rows: 5, capacity: 32)
            var out = [g.prefill(row: 4, prompt: Array(s.prefix(3)))]
            for p in 3..<(3 + steps) { out.append(g.decode(rows: [4], tokens: [s[p % s.count]])) }
            return out
        }
        // Together: 5 rows, where row 2 is refilled with a new prompt mid-flight and row 4
        // is a copy of row 0 (same prompt, another sample).
        let g = Generator(config: config, parameters: params, rows: 5, capacity: 32)
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
            let vocab = config.vocabSize
            for (i, r) in rows.enumerated() { together[r].append(Array(logits[(i * vocab)..<((i + 1) * vocab)])) }
        }
        let alone = [alone(prompts[0]), alone(prompts[1]), alone(Self.sequences[2]), alone(prompts[3])]
        return ([alone[0], alone[1], alone[2], alone[3], alone[0]].enumerated().map { Array($1.prefix(together[$0].count)) }, together)
    }

    func testARowsLogitsDoNotDependOnTheOtherRows() {
        let (alone, together) = Self.rowsAloneAndTogether()
        XCTAssertEqual(together[4], together[0])
        for r in 0..<5 { XCTAssertEqual(together[r], alone[r], "row \(r)") }
    }

    /// Whether a prompt decoded alone gets the same logits, bit for bit, at positions across two
    /// row blocks of a 32-row batch whose other rows hold other prompts.
    static func sameLogitsAtEveryPosition(_ config: LlamaConfig, layout: DecodeLayout = BLASStartup.decodeLayout) -> Bool {
        RowStableProducts.layout = layout
        let params = EngineTests.randomParameters(ParameterLayout(config: config), seed: 11)
        var rng = SeededGenerator(seed: 4)
        let target: [Int32] = [1, 5, 7], steps: [Int32] = [2, 3, 4, 5]
        func decode(at position: Int, alone: Bool) -> [[Float]] {
            let g = Generator(config: config, parameters: params, rows: 32, capacity: 16)
            let active = alone ? [position] : Array(0..<32)
            var out: [[Float]] = []
            for r in active {
                let prompt = r == position ? target : (0..<3).map { _ in Int32(rng.next() % UInt64(config.vocabSize)) }
                let logits = g.prefill(row: r, prompt: prompt)
                if r == position { out.append(logits) }
            }
            for token in steps {
                let tokens = active.map { $0 == position ? token : Int32(rng.next() % UInt64(config.vocabSize)) }
                let logits = g.decode(rows: active, tokens: tokens)
                let i = active.firstIndex(of: position)!
                out.append(Array(logits[(i * config.vocabSize)..<((i + 1) * config.vocabSize)]))
            }
            return out
        }
        let alone = decode(at: 0, alone: true)
        return [1, 6, 15, 17, 30].allSatisfy { decode(at: $0, alone: false) == alone }
    }

    /// Wide enough that OpenBLAS's kernels take their edge and blocked paths (a plain product at
    /// this size gives a row other bits at another position on Prescott and Haswell).
    static let wider = try! LlamaConfig(
        modelType: "llama", hiddenSize: 96, intermediateSize: 200, numHiddenLayers: 2, numAttentionHeads: 4,
        numKeyValueHeads: 2, vocabSize: 500, maxPositionEmbeddings: 64, rmsNormEps: 1e-5,
        ropeTheta: 10000, tieWordEmbeddings: false)

    /// The same on every kernel the CPU's features qualify for and the self-test passes, each in a
    /// child process switched to it (this process keeps its own kernel).
    func testRowsAreIndependentOnEveryKernelThatPassesTheSelfTest() throws {
        _ = BLASStartup.choice
        try XCTSkipIf(!OpenBLASRuntime.canSwitchKernels, "this OpenBLAS cannot switch kernels: \(OpenBLASRuntime.config)")
        var tried: [String] = []
        for kernel in candidateKernels(for: .current()) where OpenBLASRuntime.has(kernel) {
            let verdict = KernelProbe.verify(kernel)
            guard verdict.isCorrect else { continue }
            // The child decides its product layout from this verdict, as a process running the kernel would.
            let outcome = KernelProbe.inChild(kernel: kernel, timeout: 120) {
                guard case .correct(let layout) = verdict else { return (2, 0) }
                return (Self.sameLogitsAtEveryPosition(Self.wider, layout: layout) ? 0 : 1, 0)
            }
            XCTAssertEqual(outcome, .exited(code: 0, value: 0), "kernel \(kernel) (\(verdict))")
            tried.append("\(kernel) (\(verdict))")
        }
        print("generator rows independent on kernels: \(tried.joined(separator: ", "))")
        XCTAssertFalse(tried.isEmpty)
    }
}
