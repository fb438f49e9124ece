// Learning-rate schedules of the Hugging Face Trainer (`lr_scheduler_type`), with
// `warmup_steps = ceil(ratio · total)` as TRL computes it from `warmup_ratio`.
import Foundation

/// Linear warmup from 0 over the first steps, then: linear decay to 0 at `totalSteps`
/// (`get_linear_schedule_with_warmup`), a half cosine to 0 (`get_cosine_schedule_with_warmup`),
/// or constant (`get_constant_schedule_with_warmup`).
public struct LearningRateSchedule: Equatable, Sendable {
    public enum Kind: String, CaseIterable, Sendable {
        case linear, cosine
        case constantWithWarmup = "constant_with_warmup"
    }
    public let kind: Kind
    public let peak: Double
    public let totalSteps: Int
    public let warmupSteps: Int

    public init(_ kind: Kind = .linear, peak: Double, totalSteps: Int, warmupRatio: Double) {
        precondition(totalSteps >= 0 && warmupRatio >= 0 && warmupRatio <= 1)
        self.kind = kind
        self.peak = peak
        self.totalSteps = totalSteps
        warmupSteps = Int((Double(totalSteps) * warmupRatio).rounded(.up))
    }

    /// Learning rate for the optimizer step with 0-based index `step` (Hugging Face's `lr_lambda(step)`).
    public func learningRate(atStep step: Int) -> Double {
        if step < warmupSteps { return peak * Double(step) / Double(max(1, warmupSteps)) }
        let progress = Double(step - warmupSteps) / Double(max(1, totalSteps - warmupSteps))
        switch kind {
        case .linear: return peak * max(0, Double(totalSteps - step) / Double(max(1, totalSteps - warmupSteps)))
        case .cosine: return peak * max(0, 0.5 * (1 + cos(Double.pi * progress)))
        case .constantWithWarmup: return peak
        }
    }
}
