// Whole training steps: every objective's gradient through the model against finite
// differences of the float64 reference, micro-batching that does not change the result,
// and a few hundred AdamW steps that must actually learn.
import Data
import Foundation
import Model
import Numerics
import Objectives
import ReferenceLlama
import SeededRandom
import Tokenizers
import Training
import XCTest

final class TrainingTests: XCTestCase {
    let config = try! LlamaConfig(
        hiddenSize: 16, intermediateSize: 24, numHiddenLayers: 2, numAttentionHeads: 4,
        numKeyValueHeads: 2, vocabSize: 260, maxPositionEmbeddings: 64)

    func preferenceExamples() -> [Example] {
        let t = ByteTokenizer()
        let records: [Record] = [
            .preference(prompt: "2+3=", chosen: "5", rejected: "6", refChosen: -11.0, refRejected: -11.3),
            .preference(prompt: "10-4=", chosen: "6", rejected: "14", refChosen: -10.5, refRejected: -16.0),
            .preference(prompt: "7*1=", chosen: "7", rejected: "71", refChosen: -12.0, refRejected: -15.5)
        ]
        return records.enumerated().map { try! Example(record: $1, line: $0 + 1, tokenizer: t) }
    }

    func sftExamples() -> [Example] {
        let t = ByteTokenizer()
        return [("hi ", "there"), ("2+2=", "4"), ("abc", "defg")].enumerated().map {
            try! Example(record: .completion(prompt: $1.0, completion: $1.1), line: $0 + 1, tokenizer: t)
        }
    }

    func parameters(seed: UInt64) -> FloatBuffer {
        let layout = ParameterLayout(config: config)
        let p = FloatBuffer(count: layout.totalCount)
        initializeParameters(p, layout: layout, seed: seed, std: 0.2)
        return p
    }

    func testEveryObjectiveGradientMatchesFiniteDifferencesThroughTheModel() throws {
        let reference = ReferenceLlama(config: config)
        let layout = ParameterLayout(config: config)
        let params = parameters(seed: 4)
        for objective in [Objective.sft, .redi(), .redi(c: 1, alpha: 1), .dpo(beta: 0.5), .simpo(beta: 2, gamma: 0.5)] {
            let examples = objective.isPreference ? preferenceExamples() : sftExamples()
            let grads = FloatBuffer(count: layout.totalCount)
            let normalizer = objective.normalizer(for: examples)
            let computer = GradientComputer(config: config)
            _ = try computer.accumulate(
                parameters: params, gradients: grads, examples: examples,
                objective: objective, normalizer: normalizer)
            let sequences = examples.flatMap(\.sequences)
            let refs = examples.map { ReferenceScores(chosen: $0.refChosen ?? 0, rejected: $0.refRejected ?? 0) }
            var theta = params.array.map(Double.init)
            func loss() throws -> Double {
                let logp = reference.logProbs(theta, sequences: sequences)
                var scores: [SequenceScore] = [], k = 0
                for s in sequences {
                    scores.append(SequenceScore(logp: logp[k..<(k + s.scoredCount)].reduce(0, +), tokens: s.scoredCount))
                    k += s.scoredCount
                }
                return try objective.evaluate(scores, references: refs).lossSum / normalizer
            }
            var rng = SeededGenerator(seed: 8)
            var worst = 0.0
            for entry in layout.entries {
                let scale = (0..<entry.count).map { abs(Double(grads[entry.offset + $0])) }.max()!
                for _ in 0..<2 {
                    let i = entry.offset + Int(rng.next() % UInt64(entry.count))
                    let saved = theta[i]
                    theta[i] = saved + 1e-5; let up = try loss()
                    theta[i] = saved - 1e-5; let down = try loss()
                    theta[i] = saved
                    let fd = (up - down) / 2e-5
                    worst = max(worst, abs(fd - Double(grads[i])) / max(scale, 1e-4))
                }
            }
            print("\(objective.name): worst gradient error relative to tensor scale \(worst)")
            XCTAssertLessThan(worst, 2e-3, "\(objective)")
        }
    }

    func testMicroBatchingDoesNotChangeTheGradient() throws {
        let layout = ParameterLayout(config: config)
        let params = parameters(seed: 5)
        for (objective, examples) in [(Objective.sft, sftExamples()), (.redi(), preferenceExamples())] {
            let whole = FloatBuffer(count: layout.totalCount), pieces = FloatBuffer(count: layout.totalCount)
            let normalizer = objective.normalizer(for: examples)
            let a = try GradientComputer(config: config, microBatchTokens: 10_000)
                .accumulate(parameters: params, gradients: whole, examples: examples, objective: objective, normalizer: normalizer)
            let b = try GradientComputer(config: config, microBatchTokens: 1)
                .accumulate(parameters: params, gradients: pieces, examples: examples, objective: objective, normalizer: normalizer)
            XCTAssertEqual(a.lossSum, b.lossSum, accuracy: 1e-4)
            XCTAssertEqual(a.examples, b.examples)
            for i in 0..<whole.count { XCTAssertEqual(whole[i], pieces[i], accuracy: 1e-5 * max(1, abs(whole[i]))) }
        }
    }

    func testAdamWStepsDriveTheSFTLossDown() throws {
        // 48 arithmetic facts; the tiny model must memorise them.
        let t = ByteTokenizer()
        var rng = SeededGenerator(seed: 3)
        let data = (0..<48).map { i -> Example in
            let a = Int(rng.next() % 50), b = Int(rng.next() % 50)
            return try! Example(record: .completion(prompt: "\(a)+\(b)=", completion: "\(a + b)"), line: i + 1, tokenizer: t)
        }
        let tiny = try XCTUnwrap(try LlamaConfig.preset("tiny", vocabSize: 260, bos: 259, eos: 1, pad: 0))
        let layout = ParameterLayout(config: tiny)
        let params = FloatBuffer(count: layout.totalCount)
        initializeParameters(params, layout: layout, seed: 1)
        let steps = 300, batch = 16
        let trainer = LocalTrainer(
            config: tiny, parameters: params,
            settings: StageSettings(objective: .sft, learningRate: 3e-3, warmupRatio: 0.05, maxGradNorm: 1.0),
            totalSteps: steps)
        var first = 0.0, last: [Double] = []
        for step in 0..<steps {
            let start = (step * batch) % data.count
            let m = try trainer.step(Array(data[start..<(start + batch)]))
            if step == 0 { first = m["loss"]! }
            if step >= steps - 3 { last.append(m["loss"]!) }
            XCTAssertTrue(m["grad_norm"]!.isFinite)
        }
        let final = last.reduce(0, +) / Double(last.count)
        print("SFT loss: step 1 \(first) → last 3 steps \(final)")
        XCTAssertGreaterThan(first, 5.0)  // ≈ ln 260 at initialisation
        XCTAssertLessThan(final, 0.5)
    }
}

final class ModelReaderTests: XCTestCase {
    /// The seeded initialisation read a piece at a time is `initializeParameters`' bits, on every
    /// pass (a lost server's load is read again), in pieces of whole rows, in layout order.
    func testInitialisationReadInPiecesIsTheSameBitsEveryPass() throws {
        let config = try XCTUnwrap(try LlamaConfig.preset("tiny", vocabSize: 260, bos: 259, eos: 1, pad: 0))
        let layout = ParameterLayout(config: config)
        let whole = FloatBuffer(count: layout.totalCount)
        initializeParameters(whole, layout: layout, seed: 7)
        let reader = initialParameters(config: config, seed: 7)
        for _ in 0..<2 {
            var next = 0
            try reader.forEachPiece { offset, values in
                let count = values.count
                XCTAssertEqual(offset, next)
                XCTAssertLessThanOrEqual(count, max(ModelReader.pieceElements, config.hiddenSize))
                XCTAssertTrue((0..<count).allSatisfy { values[$0].bitPattern == whole.baseAddress[offset + $0].bitPattern })
                next += count
            }
            XCTAssertEqual(next, layout.totalCount)
        }
    }
}
