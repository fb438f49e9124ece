// Objectives against their published formulas (hand-computed values) and their gradients
// against central finite differences in float64.
import Foundation
import Objectives
import XCTest

final class ObjectivesTests: XCTestCase {
    let pairs = [
        SequenceScore(logp: -12.0, tokens: 6), SequenceScore(logp: -30.0, tokens: 10),
        SequenceScore(logp: -4.5, tokens: 3), SequenceScore(logp: -2.0, tokens: 4)
    ]
    let refs = [ReferenceScores(chosen: -13.0, rejected: -29.0), ReferenceScores(chosen: -5.0, rejected: -2.5)]

    func testREDIMatchesThePaperFormula() throws {
        let r = try Objective.redi().evaluate(pairs)
        // Per triplet: -logp_w/|y_w| + 0.8·logp_l/|y_l|, summed (normalised by 2 examples).
        let expected = (12.0 / 6 + 0.8 * -30.0 / 10) + (4.5 / 3 + 0.8 * -2.0 / 4)
        XCTAssertEqual(r.lossSum, expected, accuracy: 1e-12)
        XCTAssertEqual(r.metrics(for: .redi())["loss"]!, expected / 2, accuracy: 1e-12)
        XCTAssertEqual(r.sequenceGradients, [-1.0 / 6, 0.8 / 10, -1.0 / 3, 0.8 / 4])
        XCTAssertEqual(r.metrics(for: .redi())["rewards/accuracies"]!, 0.5)
        // α = 0 is SFT on positives (length-normalised); symmetric REDI weights both terms equally.
        XCTAssertEqual(try Objective.redi(alpha: 0).evaluate(pairs).sequenceGradients[1], 0)
        XCTAssertEqual(try Objective.redi(alpha: 1).evaluate(pairs).sequenceGradients[1], 0.1, accuracy: 1e-15)
    }

    func testREDINegativeWeightingIsDetached() throws {
        let gamma = 0.5
        let r = try Objective.redi(gamma: gamma).evaluate(pairs)
        let w0 = exp(gamma * -3.0), w1 = exp(gamma * -0.5)
        XCTAssertEqual(r.lossSum, (2 + 0.8 * w0 * -3) + (1.5 + 0.8 * w1 * -0.5), accuracy: 1e-12)
        // The weight is a constant in the gradient: α·w/|y_l|, not the derivative through w.
        XCTAssertEqual(r.sequenceGradients[1], 0.8 * w0 / 10, accuracy: 1e-15)
        XCTAssertEqual(r.sequenceGradients[3], 0.8 * w1 / 4, accuracy: 1e-15)
    }

    func testREDINegativeWeightGradientIsTheLossDerivativeWhenAskedFor() throws {
        // The reference code's form: the weight is differentiated too, so the rejected gradient
        // is the true derivative of the loss with respect to logp(y_l) (checked numerically).
        let gamma = 0.5, objective = Objective.redi(gamma: gamma, weightGradient: true)
        let r = try objective.evaluate(pairs)
        XCTAssertEqual(r.lossSum, try Objective.redi(gamma: gamma).evaluate(pairs).lossSum)  // the same loss
        for k in [1, 3] {
            let h = 1e-6
            var plus = pairs, minus = pairs
            plus[k].logp += h; minus[k].logp -= h
            let numeric = (try objective.evaluate(plus).lossSum - objective.evaluate(minus).lossSum) / (2 * h)
            XCTAssertEqual(r.sequenceGradients[k], numeric, accuracy: 1e-8)
        }
        XCTAssertEqual(r.sequenceGradients[1], 0.8 * exp(gamma * -3.0) * (1 + gamma * -3.0) / 10, accuracy: 1e-15)
    }

    func testDPOAndSimPOMatchHandComputedValues() throws {
        let beta = 0.1
        let z0 = beta * ((-12 + 13) - (-30 + 29)), z1 = beta * ((-4.5 + 5) - (-2 + 2.5))
        let dpo = try Objective.dpo(beta: beta).evaluate(pairs, references: refs)
        XCTAssertEqual(dpo.lossSum, log(1 + exp(-z0)) + log(1 + exp(-z1)), accuracy: 1e-12)
        XCTAssertEqual(dpo.metricSums["rewards/margins"]!, z0 + z1, accuracy: 1e-12)
        let simpo = try Objective.simpo(beta: 2, gamma: 1).evaluate(pairs)
        let s0 = 2 * (-2.0 - -3.0) - 1, s1 = 2 * (-1.5 - -0.5) - 1
        XCTAssertEqual(simpo.lossSum, log(1 + exp(-s0)) + log(1 + exp(-s1)), accuracy: 1e-12)
    }

    /// TRL's IPO ((z − 1/(2β))² on per-token averages) and length-normalised DPO, by hand.
    func testDPOVariantsMatchHandComputedValues() throws {
        let beta = 0.2
        func z(_ i: Int) -> Double {
            let w = pairs[2 * i], l = pairs[2 * i + 1]
            return (w.logp - refs[i].chosen) / Double(w.tokens) - (l.logp - refs[i].rejected) / Double(l.tokens)
        }
        let ipo = try Objective.dpo(beta: beta, loss: .ipo).evaluate(pairs, references: refs)
        XCTAssertEqual(ipo.lossSum, (0..<2).reduce(0) { $0 + pow(z($1) - 1 / (2 * beta), 2) }, accuracy: 1e-12)
        let ln = try Objective.dpo(beta: beta, loss: .lengthNormalized).evaluate(pairs, references: refs)
        XCTAssertEqual(ln.lossSum, (0..<2).reduce(0) { $0 + log(1 + exp(-beta * z($1))) }, accuracy: 1e-12)
        XCTAssertEqual(ln.metricSums["rewards/margins"]!, beta * (z(0) + z(1)), accuracy: 1e-12)
        XCTAssertEqual(try Objective.named("dpo", lossType: "ipo"), .dpo(beta: 0.1, loss: .ipo))
        XCTAssertThrowsError(try Objective.named("dpo", lossType: "hinge"))
        XCTAssertThrowsError(try Objective.named("simpo", lossType: "ipo"))
    }

    func testSFTIsTokenMeanNLL() throws {
        let r = try Objective.sft.evaluate(pairs)
        XCTAssertEqual(r.metrics(for: .sft)["loss"]!, 48.5 / 23, accuracy: 1e-12)
        XCTAssertEqual(r.sequenceGradients, [-1, -1, -1, -1])
    }

    func testGradientsMatchFiniteDifferences() throws {
        for objective in [
            Objective.sft, .redi(), .redi(c: 0.7, alpha: 1), .dpo(beta: 0.3), .dpo(beta: 0.3, loss: .ipo),
            .dpo(beta: 0.3, loss: .lengthNormalized), .simpo(beta: 2.5, gamma: 0.4)
        ] {
            let r = try objective.evaluate(pairs, references: refs)
            for i in pairs.indices {
                var up = pairs, down = pairs
                up[i].logp += 1e-6; down[i].logp -= 1e-6
                let fd = (try objective.evaluate(up, references: refs).lossSum - objective.evaluate(down, references: refs).lossSum) / 2e-6
                XCTAssertEqual(r.sequenceGradients[i], fd, accuracy: 1e-6, "\(objective) sequence \(i)")
            }
        }
    }

    func testRejectsDataThatDoesNotFit() {
        XCTAssertThrowsError(try Objective.redi().evaluate(Array(pairs.prefix(3))))
        XCTAssertThrowsError(try Objective.dpo().evaluate(pairs))
        XCTAssertThrowsError(try Objective.simpo().evaluate([pairs[0], SequenceScore(logp: 0, tokens: 0)]))
    }

    func testPartialResultsMergeToTheWhole() throws {
        var merged = try Objective.redi().evaluate(Array(pairs.prefix(2)))
        merged.merge(try Objective.redi().evaluate(Array(pairs.suffix(2))))
        let whole = try Objective.redi().evaluate(pairs)
        XCTAssertEqual(merged.lossSum, whole.lossSum, accuracy: 1e-12)
        XCTAssertEqual(merged.metrics(for: .redi())["loss"]!, whole.metrics(for: .redi())["loss"]!, accuracy: 1e-12)
    }

    func testNamesGiveOneSetOfDefaultsAndRefuseParametersThatDoNotApply() throws {
        XCTAssertEqual(try Objective.named("sft"), .sft)
        XCTAssertEqual(try Objective.named("redi"), .redi(c: 1, alpha: 0.8, gamma: nil))
        XCTAssertEqual(try Objective.named("dpo"), .dpo(beta: 0.1))
        XCTAssertEqual(try Objective.named("simpo"), .simpo(beta: 0.1, gamma: 0.5))  // TRL's CPOConfig defaults
        XCTAssertEqual(try Objective.named("simpo", beta: 2.5, gamma: 1.4), .simpo(beta: 2.5, gamma: 1.4))
        for (call, needle) in [
            ({ try Objective.named("dpo", alpha: 1) }, "alpha does not apply to dpo"),
            ({ try Objective.named("sft", gamma: 1) }, "gamma does not apply to sft"),
            ({ try Objective.named("redi", beta: 1) }, "beta does not apply to redi"),
            ({ try Objective.named("dpo", beta: 0) }, "beta must be positive"),
            ({ try Objective.named("redi", alpha: .nan) }, "alpha must be a finite number"),
            ({ try Objective.named("ppo") }, "\"ppo\" is not sft, redi, dpo or simpo")
        ] as [(() throws -> Objective, String)] {
            XCTAssertThrowsError(try call()) { XCTAssertTrue("\($0)".contains(needle), "\($0)") }
        }
    }
}
