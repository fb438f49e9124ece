// The training objectives as functions of per-sequence summed log-probabilities.
// Every objective here is a sum over examples of a function of its sequences' logp, so the
// model only needs dLoss/dlogp per sequence; the engine turns that into token weights.
// Not here: anything that touches the model, tokens or the optimizer.
import Foundation

/// Which loss a batch is trained with, and its hyper-parameters.
public enum Objective: Equatable, Sendable {
    /// Mean NLL over all completion tokens of the batch.
    case sft
    /// REDI: −c·logp(y_w)/|y_w| + α·logp(y_l)/|y_l| per triplet; `gamma` enables the negative
    /// weight w = exp(γ·logp(y_l)/|y_l|) on the rejected term. The weight is detached (a
    /// constant in the gradient, the paper's form) unless `weightGradient`, which also
    /// differentiates it (the reference code's form: gradient α·w·(1 + γ·logp(y_l)/|y_l|)).
    case redi(c: Double = 1, alpha: Double = 0.8, gamma: Double? = nil, weightGradient: Bool = false)
    /// DPO with reference log-probs supplied per example, in one of TRL's loss forms.
    case dpo(beta: Double = 0.1, loss: DPOLoss = .sigmoid)
    /// SimPO: −log σ(β·(logp_w/|y_w| − logp_l/|y_l|) − γ), reference-free. TRL's CPOTrainer
    /// with loss_type "simpo" and cpo_alpha 0 computes the same (its simpo_gamma is γ);
    /// the defaults are TRL's (β 0.1, γ 0.5); the SimPO paper tunes β in 2–2.5.
    case simpo(beta: Double = 0.1, gamma: Double = 0.5)

    /// The objective names recipes, `redi-ps grad` and the wire use.
    public static let names = ["sft", "redi", "dpo", "simpo"]

    /// The objective called `name`; parameters left nil take the defaults above (TRL's).
    /// The one place a name becomes an objective, so every entry point has the same defaults.
    public static func named(
        _ name: String, chosenWeight: Double? = nil, alpha: Double? = nil, beta: Double? = nil,
        gamma: Double? = nil, weightGradient: Bool = false, lossType: String? = nil
    ) throws -> Objective {
        var dpoLoss = DPOLoss.sigmoid
        if let lossType, !lossType.isEmpty {
            guard name == "dpo" else { throw ObjectiveError(description: "loss_type applies to dpo only") }
            guard let parsed = DPOLoss(rawValue: lossType) else {
                throw ObjectiveError(description: "loss_type \"\(lossType)\" is not one of \(DPOLoss.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            dpoLoss = parsed
        }
        if weightGradient && (name != "redi" || gamma == nil) {
            throw ObjectiveError(description: "the negative weight's gradient applies to redi with gamma only")
        }
        for (key, value) in [("chosen_weight", chosenWeight), ("alpha", alpha), ("beta", beta), ("gamma", gamma)] {
            if let value, !value.isFinite || value < 0 { throw ObjectiveError(description: "\(key) must be a finite number ≥ 0, not \(value)") }
        }
        if let beta, beta == 0 { throw ObjectiveError(description: "beta must be positive") }
        func unused(_ pairs: [(String, Double?)]) throws {
            if let (key, _) = pairs.first(where: { $0.1 != nil }) { throw ObjectiveError(description: "\(key) does not apply to \(name)") }
        }
        switch name {
        case "sft":
            try unused([("chosen_weight", chosenWeight), ("alpha", alpha), ("beta", beta), ("gamma", gamma)])
            return .sft
        case "redi":
            try unused([("beta", beta)])
            return .redi(c: chosenWeight ?? 1, alpha: alpha ?? 0.8, gamma: gamma, weightGradient: weightGradient)
        case "dpo":
            try unused([("chosen_weight", chosenWeight), ("alpha", alpha), ("gamma", gamma)])
            return .dpo(beta: beta ?? 0.1, loss: dpoLoss)
        case "simpo":
            try unused([("chosen_weight", chosenWeight), ("alpha", alpha)])
            return .simpo(beta: beta ?? 0.1, gamma: gamma ?? 0.5)
        default:
            throw ObjectiveError(description: "\"\(name)\" is not \(names.dropLast().joined(separator: ", ")) or \(names.last!)")
        }
    }

    public var name: String {
        switch self {
        case .sft: "sft"
        case .redi: "redi"
        case .dpo: "dpo"
        case .simpo: "simpo"
        }
    }

    /// Whether each example is a (chosen, rejected) pair rather than one sequence.
    public var isPreference: Bool { self != .sft }

    /// What the summed loss is divided by: total scored tokens for SFT, examples otherwise.
    public var normalizesByTokens: Bool { self == .sft }
}

/// The DPO losses users of TRL choose with `loss_type`, on the margin
/// z = (logp_w − ref_w) − (logp_l − ref_l).
public enum DPOLoss: String, CaseIterable, Sendable {
    /// −log σ(β·z) (the DPO paper's; TRL's default).
    case sigmoid
    /// IPO (Azar et al. 2023): (z − 1/(2β))² with every log-probability averaged over its
    /// tokens, as TRL's `loss_type: ipo` computes it.
    case ipo
    /// Length-normalised DPO: −log σ(β·z) on per-token averages (the SimPO paper's LN-DPO),
    /// so long traces do not dominate the margin.
    case lengthNormalized = "length_normalized"
}

/// Summed log-probability of one sequence's completion and how many tokens it covers.
public struct SequenceScore: Equatable, Sendable {
    public var logp: Double
    public var tokens: Int
    public init(logp: Double, tokens: Int) { self.logp = logp; self.tokens = tokens }
    public var mean: Double { tokens > 0 ? logp / Double(tokens) : 0 }
}

/// Reference-model log-probabilities of a pair (DPO only).
public struct ReferenceScores: Equatable, Sendable {
    public var chosen: Double
    public var rejected: Double
    public init(chosen: Double, rejected: Double) { self.chosen = chosen; self.rejected = rejected }
}

/// Errors a user can cause by pairing an objective with the wrong data.
public struct ObjectiveError: Error, CustomStringConvertible {
    public let description: String
    public init(description: String) { self.description = description }
}

/// The unnormalised result over some examples; partial results from micro-batches and
/// workers add up, and the loss is `lossSum / normalizer` of the whole global batch.
public struct ObjectiveResult: Sendable {
    /// Σ of per-example (or per-token, for SFT) losses.
    public var lossSum: Double = 0
    /// dLossSum/dlogp for each sequence, in input order.
    public var sequenceGradients: [Double] = []
    /// Metric sums (divide by `examples`), keyed by TRL's names.
    public var metricSums: [String: Double] = [:]
    public var examples = 0
    public var tokens = 0

    public init() {}

    /// The global normaliser for this objective: tokens (SFT) or examples (preference).
    public func normalizer(for objective: Objective) -> Double {
        Double(objective.normalizesByTokens ? tokens : examples)
    }

    /// Merges another partial result (metric sums add; gradients concatenate).
    public mutating func merge(_ other: ObjectiveResult) {
        lossSum += other.lossSum
        sequenceGradients += other.sequenceGradients
        for (k, v) in other.metricSums { metricSums[k, default: 0] += v }
        examples += other.examples
        tokens += other.tokens
    }

    /// Metrics as TRL reports them: loss normalised, other sums averaged over examples.
    public func metrics(for objective: Objective) -> [String: Double] {
        var m: [String: Double] = [:]
        let n = max(1, Double(examples))
        for (k, v) in metricSums { m[k] = v / n }
        m["loss"] = lossSum / max(1, normalizer(for: objective))
        m["num_tokens"] = Double(tokens)
        return m
    }
}

extension Objective {
    /// Evaluates the objective on sequences (pairs interleaved chosen, rejected for preference objectives).
    ///
    /// - Parameters:
    ///   - sequences: one score per sequence; for preference objectives 2·examples, chosen first.
    ///   - references: per-example reference scores; required for DPO, ignored otherwise.
    /// - Throws: `ObjectiveError` when the data does not fit the objective.
    public func evaluate(_ sequences: [SequenceScore], references: [ReferenceScores]? = nil) throws -> ObjectiveResult {
        var r = ObjectiveResult()
        r.tokens = sequences.reduce(0) { $0 + $1.tokens }
        switch self {
        case .sft:
            r.examples = sequences.count
            r.lossSum = -sequences.reduce(0) { $0 + $1.logp }
            r.sequenceGradients = Array(repeating: -1, count: sequences.count)
            r.metricSums["logps/chosen"] = sequences.reduce(0) { $0 + $1.logp }
            return r
        default:
            break
        }
        guard sequences.count % 2 == 0 else {
            throw ObjectiveError(description: "\(name) needs (chosen, rejected) pairs; got an odd number of sequences")
        }
        let pairs = sequences.count / 2
        r.examples = pairs
        r.sequenceGradients = Array(repeating: 0, count: sequences.count)
        if case .dpo = self {
            guard let references, references.count == pairs else {
                throw ObjectiveError(description: "dpo needs ref_chosen_logp and ref_rejected_logp for every record")
            }
        }
        for i in 0..<pairs {
            let w = sequences[2 * i], l = sequences[2 * i + 1]
            guard w.tokens > 0, l.tokens > 0 else {
                throw ObjectiveError(description: "pair \(i) has an empty chosen or rejected completion")
            }
            var chosenReward = 0.0, rejectedReward = 0.0
            switch self {
            case .sft:
                fatalError("handled above")
            case let .redi(c, alpha, gamma, weightGradient):
                let weight = gamma.map { Foundation.exp($0 * l.mean) } ?? 1
                r.lossSum += -c * w.mean + alpha * weight * l.mean
                r.sequenceGradients[2 * i] = -c / Double(w.tokens)
                // d/dm [w(m)·m] = w·(1 + γ·m) when the weight is differentiated, w when detached.
                let through = weightGradient ? 1 + (gamma ?? 0) * l.mean : 1
                r.sequenceGradients[2 * i + 1] = alpha * weight * through / Double(l.tokens)
                chosenReward = w.mean
                rejectedReward = l.mean
                r.metricSums["logps/chosen_normalized", default: 0] += w.mean
                r.metricSums["logps/rejected_normalized", default: 0] += l.mean
                if gamma != nil { r.metricSums["negative_weight", default: 0] += weight }
            case let .dpo(beta, loss):
                let ref = references![i]
                // Sums, or per-token averages (the reference's over the same completion tokens).
                let (nw, nl) = loss == .sigmoid ? (1.0, 1.0) : (Double(w.tokens), Double(l.tokens))
                let marginW = (w.logp - ref.chosen) / nw, marginL = (l.logp - ref.rejected) / nl
                chosenReward = beta * marginW
                rejectedReward = beta * marginL
                switch loss {
                case .sigmoid, .lengthNormalized:
                    let z = chosenReward - rejectedReward
                    r.lossSum += softplus(-z)
                    let s = sigmoid(-z)
                    r.sequenceGradients[2 * i] = -beta * s / nw
                    r.sequenceGradients[2 * i + 1] = beta * s / nl
                case .ipo:
                    let d = marginW - marginL - 1 / (2 * beta)
                    r.lossSum += d * d
                    r.sequenceGradients[2 * i] = 2 * d / nw
                    r.sequenceGradients[2 * i + 1] = -2 * d / nl
                }
            case let .simpo(beta, gamma):
                chosenReward = beta * w.mean
                rejectedReward = beta * l.mean
                let z = chosenReward - rejectedReward - gamma
                r.lossSum += softplus(-z)
                let s = sigmoid(-z)
                r.sequenceGradients[2 * i] = -beta * s / Double(w.tokens)
                r.sequenceGradients[2 * i + 1] = beta * s / Double(l.tokens)
            }
            r.metricSums["logps/chosen", default: 0] += w.logp
            r.metricSums["logps/rejected", default: 0] += l.logp
            r.metricSums["rewards/chosen", default: 0] += chosenReward
            r.metricSums["rewards/rejected", default: 0] += rejectedReward
            r.metricSums["rewards/margins", default: 0] += chosenReward - rejectedReward
            r.metricSums["rewards/accuracies", default: 0] += chosenReward > rejectedReward ? 1 : 0
        }
        return r
    }
}

/// log(1 + e^x) without overflow.
func softplus(_ x: Double) -> Double { x > 0 ? x + Foundation.log1p(Foundation.exp(-x)) : Foundation.log1p(Foundation.exp(x)) }

/// 1 / (1 + e^−x) without overflow.
func sigmoid(_ x: Double) -> Double {
    x >= 0 ? 1 / (1 + Foundation.exp(-x)) : Foundation.exp(x) / (1 + Foundation.exp(x))
}
