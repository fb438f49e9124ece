// The learning-rate schedule of the REDI recipe (Hugging Face's
// `get_linear_schedule_with_warmup` with `warmup_steps = ceil(ratio · total)`).

/// Linear warmup from 0 over the first steps, then linear decay to 0 at `totalSteps`.
public struct LinearWarmupDecay: Equatable, Sendable {
    public let peak: Double
    public let totalSteps: Int
    public let warmupSteps: Int

    public init(peak: Double, totalSteps: Int, warmupRatio: Double) {
        precondition(totalSteps >= 0 && warmupRatio >= 0 && warmupRatio <= 1)
        self.peak = peak
        self.totalSteps = totalSteps
        warmupSteps = Int((Double(totalSteps) * warmupRatio).rounded(.up))
    }

    /// Learning rate for the optimizer step with 0-based index `step` (Hugging Face's `lr_lambda(step)`).
    public func learningRate(atStep step: Int) -> Double {
        if step < warmupSteps { return peak * Double(step) / Double(max(1, warmupSteps)) }
        return peak * max(0, Double(totalSteps - step) / Double(max(1, totalSteps - warmupSteps)))
    }
}
