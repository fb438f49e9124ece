// The engine against the float64 reference: logits, then the gradient of a weighted sum of
// log-probabilities against central finite differences, for every tensor of the model.
import Foundation
import Model
import Numerics
import ReferenceLlama
import SeededRandom
import XCTest

final class EngineTests: XCTestCase {
    static func config(_ type: String, tied: Bool) throws -> LlamaConfig {
        try LlamaConfig(
            modelType: type, hiddenSize: 16, intermediateSize: 24, numHiddenLayers: 2, numAttentionHeads: 4,
            numKeyValueHeads: 2, vocabSize: 23, maxPositionEmbeddings: 64, rmsNormEps: 1e-5,
            ropeTheta: 10000, tieWordEmbeddings: tied)
    }

    static func randomParameters(_ layout: ParameterLayout, seed: UInt64) -> FloatBuffer {
        var rng = SeededGenerator(seed: seed)
        let p = FloatBuffer(count: layout.totalCount)
        let norms = layout.normOffsets
        for e in layout.entries {
            for i in 0..<e.count {
                // Norm weights near 1, everything else large enough that attention is not uniform.
                p[e.offset + i] = norms.contains(e.offset) ? Float(1 + 0.2 * rng.nextNormal()) : Float(0.3 * rng.nextNormal())
            }
        }
        return p
    }

    static let sequences = [
        TokenSequence(tokens: [1, 5, 7, 9, 2, 3], promptLength: 2),
        TokenSequence(tokens: [4, 8, 15, 16, 22, 0, 11, 3], promptLength: 3),
        TokenSequence(tokens: [6, 2, 19, 20], promptLength: 0)
    ]

    func testForwardMatchesReference() throws {
        for (type, tied) in [("llama", true), ("qwen2", false)] {
            let config = try Self.config(type, tied: tied)
            let engine = LlamaEngine(config: config)
            let params = Self.randomParameters(engine.layout, seed: 7)
            let batch = PackedBatch(Self.sequences)
            let logp = engine.forward(parameters: params, batch: batch)
            let ref = ReferenceLlama(config: config).logProbs(params.array.map(Double.init), sequences: Self.sequences)
            XCTAssertEqual(logp.count, ref.count)
            let worst = zip(logp, ref).map { abs(Double($0) - $1) }.max()!
            print("forward \(type) tied=\(tied): max |logp - ref| = \(worst)")
            XCTAssertLessThan(worst, 2e-5)
        }
    }

    /// The LM head in blocks of a few rows (recomputed in backward) gives, to float rounding
    /// (OpenBLAS's kernels depend on the row count), the same log-probs and gradients as
    /// holding every row's logits.
    func testLMHeadInBlocksMatchesTheWholeHead() throws {
        let config = try Self.config("qwen2", tied: false)
        let params = Self.randomParameters(ParameterLayout(config: config), seed: 13)
        func run(blockRows: Int?) -> ([Float], [Float]) {
            let engine = LlamaEngine(config: config)
            if let blockRows { engine.lmHeadWholeRows = 2; engine.lmHeadBlockRows = blockRows }
            let batch = PackedBatch(Self.sequences)
            let logp = engine.forward(parameters: params, batch: batch)
            let grads = FloatBuffer(count: engine.layout.totalCount)
            engine.backward(parameters: params, gradients: grads, weights: logp.indices.map { Float($0 % 3) - 0.7 })
            return (logp, grads.array)
        }
        let (wholeLogp, wholeGrad) = run(blockRows: nil)
        XCTAssertGreaterThan(wholeLogp.count, 3)
        for rows in [1, 3, 4] {
            let (logp, grad) = run(blockRows: rows)
            XCTAssertLessThan(zip(logp, wholeLogp).map { abs($0 - $1) }.max()!, 1e-5, "blocks of \(rows) rows")
            let worst = zip(grad, wholeGrad).map { abs($0 - $1) }.max()!, scale = wholeGrad.map(abs).max()!
            XCTAssertLessThan(worst, 1e-5 * scale, "blocks of \(rows) rows")
        }
    }

    /// Attention probabilities recomputed in backward (long sequences) instead of kept: the same
    /// log-probs and, to float rounding, the same gradients.
    func testRecomputedAttentionProbabilitiesMatchKeptOnes() throws {
        let config = try Self.config("llama", tied: true)
        let params = Self.randomParameters(ParameterLayout(config: config), seed: 17)
        func run(keep: Bool) -> ([Float], [Float]) {
            let engine = LlamaEngine(config: config)
            if !keep { engine.attentionKeepBytes = 0 }
            let batch = PackedBatch(Self.sequences)
            let logp = engine.forward(parameters: params, batch: batch)
            let grads = FloatBuffer(count: engine.layout.totalCount)
            engine.backward(parameters: params, gradients: grads, weights: logp.indices.map { Float($0 % 4) - 1.3 })
            return (logp, grads.array)
        }
        let (keptLogp, keptGrad) = run(keep: true), (logp, grad) = run(keep: false)
        XCTAssertEqual(logp, keptLogp)
        let worst = zip(grad, keptGrad).map { abs($0 - $1) }.max()!, scale = keptGrad.map(abs).max()!
        XCTAssertLessThan(worst, 1e-6 * scale)
    }

    /// `workspaceBytes` (what a memory model predicts a worker holds beyond its weights and
    /// gradients) is what forward and backward then reserve, kept or recomputed.
    func testWorkspaceBytesIsWhatTrainingReserves() throws {
        let config = try Self.config("qwen2", tied: false)
        let params = Self.randomParameters(ParameterLayout(config: config), seed: 3)
        for keepBytes in [Int.max, 0] {
            let engine = LlamaEngine(config: config)
            engine.activationKeepBytes = keepBytes
            let batch = PackedBatch(Self.sequences)
            let predicted = engine.workspaceBytes(sequenceLengths: Self.sequences.map(\.tokens.count), scored: batch.scoredCount)
            let logp = engine.forward(parameters: params, batch: batch)
            let grads = FloatBuffer(count: engine.layout.totalCount)
            engine.backward(parameters: params, gradients: grads, weights: logp.map { _ in 1 })
            XCTAssertEqual(engine.workspaceHeldBytes, predicted.forward + predicted.backward, "activationKeepBytes \(keepBytes)")
        }
        let engine = LlamaEngine(config: config)
        let kept = engine.workspaceBytes(sequenceLengths: [4000], scored: 3000),
            cut = { () -> (forward: Int, backward: Int) in
                engine.activationKeepBytes = 0
                return engine.workspaceBytes(sequenceLengths: [4000], scored: 3000)
            }()
        XCTAssertLessThan(cut.forward, kept.forward)  // recomputation keeps only each layer's input and attention output
    }

    func testRecomputedLayerActivationsGiveTheSameBits() throws {
        for (type, tied) in [("llama", true), ("qwen2", false)] {
            let config = try Self.config(type, tied: tied)
            let params = Self.randomParameters(ParameterLayout(config: config), seed: 23)
            func run(keepBytes: Int) -> ([Float], [Float]) {
                let engine = LlamaEngine(config: config)
                engine.activationKeepBytes = keepBytes
                engine.attentionKeepBytes = 0  // recomputed layers never keep probabilities: compare like with like
                let batch = PackedBatch(Self.sequences)
                let logp = engine.forward(parameters: params, batch: batch)
                let grads = FloatBuffer(count: engine.layout.totalCount)
                var finals: [Int] = []
                engine.backward(
                    parameters: params, gradients: grads, weights: logp.indices.map { Float($0 % 3) - 0.7 },
                    gradientsFinal: { finals.append($0) })
                XCTAssertEqual(finals.count, config.numHiddenLayers)
                return (logp, grads.array)
            }
            let (keptLogp, keptGrad) = run(keepBytes: Int.max), (logp, grad) = run(keepBytes: 0)
            XCTAssertEqual(logp, keptLogp, type)
            XCTAssertEqual(grad, keptGrad, "\(type): recomputed activations must give the same gradient bits")
        }
    }

    func testPackingIsolatesSequences() throws {
        let config = try Self.config("llama", tied: true)
        let engine = LlamaEngine(config: config)
        let params = Self.randomParameters(engine.layout, seed: 3)
        let packed = engine.forward(parameters: params, batch: PackedBatch(Self.sequences))
        var separate: [Float] = []
        for s in Self.sequences { separate += engine.forward(parameters: params, batch: PackedBatch([s])) }
        XCTAssertEqual(packed.count, separate.count)
        for (a, b) in zip(packed, separate) { XCTAssertEqual(a, b, accuracy: 1e-5) }
    }

    func testGradientMatchesFiniteDifferencesForEveryTensor() throws {
        for (type, tied) in [("llama", true), ("qwen2", false)] {
            let config = try Self.config(type, tied: tied)
            let engine = LlamaEngine(config: config)
            let layout = engine.layout
            let params = Self.randomParameters(layout, seed: 11)
            let batch = PackedBatch(Self.sequences)
            var rng = SeededGenerator(seed: 5)
            let weights = (0..<batch.scoredCount).map { _ in Float(rng.nextNormal()) }
            _ = engine.forward(parameters: params, batch: batch)
            let grads = FloatBuffer(count: layout.totalCount)
            engine.backward(parameters: params, gradients: grads, weights: weights)

            let reference = ReferenceLlama(config: config)
            var theta = params.array.map(Double.init)
            func loss() -> Double {
                zip(reference.logProbs(theta, sequences: Self.sequences), weights).reduce(0) { $0 + $1.0 * Double($1.1) }
            }
            var worst = 0.0
            for entry in layout.entries {
                let scale = (0..<entry.count).map { abs(Double(grads[entry.offset + $0])) }.max()!
                XCTAssertGreaterThan(scale, 0, "\(entry.name) received no gradient")
                for _ in 0..<4 {
                    let i = entry.offset + Int(rng.next() % UInt64(entry.count))
                    let h = 1e-5, saved = theta[i]
                    theta[i] = saved + h; let up = loss()
                    theta[i] = saved - h; let down = loss()
                    theta[i] = saved
                    let fd = (up - down) / (2 * h)
                    let err = abs(fd - Double(grads[i])) / max(scale, 1e-3)
                    worst = max(worst, err)
                    XCTAssertLessThan(err, 1e-3, "\(type) \(entry.name)[\(i - entry.offset)]: analytic \(grads[i]) vs finite difference \(fd)")
                }
            }
            print("gradient \(type) tied=\(tied): worst error relative to tensor scale = \(worst)")
        }
    }

    func testGradientsAreReportedFinalLayerByLayerAndAreFinalWhenReported() throws {
        let config = try Self.config("llama", tied: true)
        let engine = LlamaEngine(config: config)
        let params = Self.randomParameters(engine.layout, seed: 4)
        let batch = PackedBatch(Self.sequences)
        let weights = [Float](repeating: -1, count: batch.scoredCount)
        let grads = FloatBuffer(count: engine.layout.totalCount)
        _ = engine.forward(parameters: params, batch: batch)
        var frontiers: [Int] = [], snapshots: [[Float]] = []
        engine.backward(parameters: params, gradients: grads, weights: weights) { frontier in
            frontiers.append(frontier)
            snapshots.append(Array(UnsafeBufferPointer(start: grads.baseAddress + frontier, count: grads.count - frontier)))
        }
        XCTAssertEqual(frontiers, engine.layout.layers.map(\.q).reversed())
        // What was reported final did not change afterwards.
        for (f, snap) in zip(frontiers, snapshots) {
            XCTAssertEqual(snap, Array(UnsafeBufferPointer(start: grads.baseAddress + f, count: grads.count - f)))
        }
    }

    func testBackwardAccumulates() throws {
        let config = try Self.config("llama", tied: true)
        let engine = LlamaEngine(config: config)
        let params = Self.randomParameters(engine.layout, seed: 2)
        let batch = PackedBatch(Self.sequences)
        let weights = [Float](repeating: -1, count: batch.scoredCount)
        let once = FloatBuffer(count: engine.layout.totalCount), twice = FloatBuffer(count: engine.layout.totalCount)
        _ = engine.forward(parameters: params, batch: batch)
        engine.backward(parameters: params, gradients: once, weights: weights)
        for _ in 0..<2 {
            _ = engine.forward(parameters: params, batch: batch)
            engine.backward(parameters: params, gradients: twice, weights: weights)
        }
        for i in 0..<once.count { XCTAssertEqual(2 * once[i], twice[i], accuracy: 1e-5 * max(1, abs(twice[i]))) }
    }
}
