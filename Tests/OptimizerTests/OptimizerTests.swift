// AdamW, clipping and the schedule against values computed by hand from PyTorch's and
// Hugging Face's definitions.
import Foundation
import Numerics
import Optimizer
import XCTest

/// A buffer holding `values`.
private func buffer(_ values: [Float]) -> FloatBuffer {
    let b = FloatBuffer(count: values.count)
    for (i, x) in values.enumerated() { b[i] = x }
    return b
}

final class OptimizerTests: XCTestCase {
    func testAdamWTwoStepsByHand() {
        let p = buffer([1.0, -2.0]), m = buffer([0, 0]), v = buffer([0, 0])
        let g1: [Float] = [0.5, -0.25], g2: [Float] = [-0.1, 0.3]
        let cfg = AdamWConfig(beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01)
        adamWStep(parameters: p, gradients: buffer(g1), m: m, v: v, learningRate: 0.1, step: 1, config: cfg)
        // Step 1: m̂ = g, v̂ = g², so the update is lr·g/(|g|+eps) = ±lr after decay p·(1 - lr·wd).
        XCTAssertEqual(Double(p[0]), 1.0 * (1 - 0.001) - 0.1 * 0.5 / (0.5 + 1e-8), accuracy: 1e-6)
        XCTAssertEqual(Double(p[1]), -2.0 * (1 - 0.001) + 0.1 * 0.25 / (0.25 + 1e-8), accuracy: 1e-6)
        let p1 = p.array
        adamWStep(parameters: p, gradients: buffer(g2), m: m, v: v, learningRate: 0.05, step: 2, config: cfg)
        for i in 0..<2 {
            let m2 = 0.9 * 0.1 * Double(g1[i]) + 0.1 * Double(g2[i])
            let v2 = 0.999 * 0.001 * Double(g1[i] * g1[i]) + 0.001 * Double(g2[i] * g2[i])
            let mHat = m2 / (1 - 0.81), vHat = v2 / (1 - 0.998001)
            let expected = Double(p1[i]) * (1 - 0.05 * 0.01) - 0.05 * mHat / (vHat.squareRoot() + 1e-8)
            XCTAssertEqual(Double(p[i]), expected, accuracy: 1e-6)
        }
    }

    func testGradientScaleIsAppliedBeforeTheMoments() {
        let a = buffer([1]), ma = buffer([0]), va = buffer([0])
        let b = buffer([1]), mb = buffer([0]), vb = buffer([0])
        adamWStep(parameters: a, gradients: buffer([4]), m: ma, v: va, learningRate: 0.1, step: 1, gradientScale: 0.25, config: AdamWConfig())
        adamWStep(parameters: b, gradients: buffer([1]), m: mb, v: vb, learningRate: 0.1, step: 1, config: AdamWConfig())
        XCTAssertEqual(a.array, b.array)
        XCTAssertEqual(ma.array, mb.array)
    }

    func testClipCoefficientFollowsPyTorch() {
        XCTAssertEqual(clipCoefficient(globalNorm: 4, maxNorm: 1), 1 / (4 + 1e-6), accuracy: 1e-15)
        XCTAssertEqual(clipCoefficient(globalNorm: 0.5, maxNorm: 1), 1)
        XCTAssertEqual(clipCoefficient(globalNorm: 10, maxNorm: nil), 1)
    }

    func testLinearWarmupThenDecay() {
        let s = LearningRateSchedule(peak: 1e-3, totalSteps: 25, warmupRatio: 0.1)
        XCTAssertEqual(s.warmupSteps, 3)  // ceil(2.5)
        XCTAssertEqual(s.learningRate(atStep: 0), 0)
        XCTAssertEqual(s.learningRate(atStep: 1), 1e-3 / 3, accuracy: 1e-15)
        XCTAssertEqual(s.learningRate(atStep: 3), 1e-3, accuracy: 1e-15)
        XCTAssertEqual(s.learningRate(atStep: 14), 1e-3 * 11 / 22, accuracy: 1e-15)
        XCTAssertEqual(s.learningRate(atStep: 25), 0)
        XCTAssertEqual(LearningRateSchedule(peak: 1, totalSteps: 10, warmupRatio: 0).learningRate(atStep: 0), 1)
    }

    /// transformers' get_cosine_schedule_with_warmup (num_cycles 0.5) and
    /// get_constant_schedule_with_warmup: the values of their lr_lambda (optimization.py,
    /// v4.52) computed in Python for warmup 3 of 25 steps, peak 1e-3.
    func testCosineAndConstantSchedulesMatchTransformers() {
        let cosine = LearningRateSchedule(.cosine, peak: 1e-3, totalSteps: 25, warmupRatio: 0.1)
        for (step, expected) in [(0, 0.0), (1, 1e-3 / 3), (3, 1e-3), (14, 5.0e-4), (20, 1.2212521282287093e-04), (24, 5.089279059533658e-06), (25, 0.0)] {
            XCTAssertEqual(cosine.learningRate(atStep: step), expected, accuracy: 1e-15, "step \(step)")
        }
        let constant = LearningRateSchedule(.constantWithWarmup, peak: 1e-3, totalSteps: 25, warmupRatio: 0.1)
        XCTAssertEqual(constant.learningRate(atStep: 1), 1e-3 / 3, accuracy: 1e-15)
        XCTAssertEqual(constant.learningRate(atStep: 24), 1e-3)
    }

    func testNormWeightsAndBiasesGetNoWeightDecay() throws {
        // Zero gradients: a decayed parameter shrinks by (1 − lr·wd), an undecayed one stays.
        let p = buffer(Array(repeating: 2, count: 10)), m = FloatBuffer(count: 10), v = FloatBuffer(count: 10)
        let cfg = AdamWConfig(weightDecay: 0.5)
        adamWStep(
            parameters: p, gradients: FloatBuffer(count: 10), m: m, v: v, learningRate: 0.1, step: 1,
            config: cfg, undecayed: [1..<3, 6..<7, 9..<12])
        XCTAssertEqual(p.array, [1.9, 2, 2, 1.9, 1.9, 1.9, 2, 1.9, 1.9, 2])
    }
}
