// Training in one process: the same step a cluster runs (`StepRule`: gradients → global norm →
// clip → AdamW with the stage's schedule), without the network. Tests and small runs use it;
// the parameter servers apply the same optimizer functions to their chunks.
import Data
import Model
import Numerics
import Objectives
import Optimizer

/// Hyper-parameters of one training stage's optimizer step (a recipe's stage carries them as `settings`).
public struct StageSettings: Sendable {
    public var objective: Objective
    public var learningRate: Double
    public var warmupRatio: Double = 0.1
    public var maxGradNorm: Double? = 1.0
    public var adamW = AdamWConfig()
    public var scheduler = LearningRateSchedule.Kind.linear
    public init(
        objective: Objective, learningRate: Double, warmupRatio: Double = 0.1,
        maxGradNorm: Double? = 1.0, adamW: AdamWConfig = AdamWConfig(), scheduler: LearningRateSchedule.Kind = .linear
    ) {
        self.objective = objective; self.learningRate = learningRate; self.warmupRatio = warmupRatio
        self.maxGradNorm = maxGradNorm; self.adamW = adamW; self.scheduler = scheduler
    }
}

/// The optimizer step's rule, one for the single-process trainer and the cluster's stage run:
/// the learning rate at a step, the clip coefficient from the global gradient norm, and the
/// step's metrics as TRL names them (with `grad_norm` before clipping).
public struct StepRule: Sendable {
    public let settings: StageSettings
    public let schedule: LearningRateSchedule

    public init(_ settings: StageSettings, totalSteps: Int) {
        self.settings = settings
        schedule = LearningRateSchedule(settings.scheduler, peak: settings.learningRate, totalSteps: totalSteps, warmupRatio: settings.warmupRatio)
    }

    /// What AdamW applies at `step` (0-based; AdamW's own step count is `step + 1`).
    public func update(atStep step: Int, globalNorm: Double) -> (learningRate: Double, gradientScale: Double) {
        (schedule.learningRate(atStep: step), clipCoefficient(globalNorm: globalNorm, maxNorm: settings.maxGradNorm))
    }

    /// The step's metrics from the global batch's summed objective result; the loss is divided
    /// by the global batch's `normalizer`, the one its gradients were scaled by.
    public func metrics(_ result: ObjectiveResult, normalizer: Double, globalNorm: Double, learningRate: Double) -> [String: Double] {
        var metrics = result.metrics(for: settings.objective)
        metrics["loss"] = result.lossSum / max(1, normalizer)
        metrics["grad_norm"] = globalNorm
        metrics["learning_rate"] = learningRate
        return metrics
    }
}

/// Parameters plus AdamW state, stepped one global batch at a time.
public final class LocalTrainer {
    public let parameters: FloatBuffer
    public let gradients: FloatBuffer
    let m: FloatBuffer, v: FloatBuffer
    public let computer: GradientComputer
    public let rule: StepRule
    public private(set) var step = 0
    let undecayed: [Range<Int>]

    public init(config: LlamaConfig, parameters: FloatBuffer, settings: StageSettings, totalSteps: Int, microBatchTokens: Int = 4096) {
        self.parameters = parameters
        gradients = FloatBuffer(count: parameters.count)
        m = FloatBuffer(count: parameters.count)
        v = FloatBuffer(count: parameters.count)
        computer = GradientComputer(config: config, microBatchTokens: microBatchTokens)
        undecayed = ParameterLayout(config: config).undecayed
        rule = StepRule(settings, totalSteps: totalSteps)
    }

    /// One optimizer step on a global batch; returns its metrics.
    @discardableResult
    public func step(_ batch: [Example]) throws -> [String: Double] {
        gradients.zero()
        let objective = rule.settings.objective, normalizer = objective.normalizer(for: batch)
        let result = try computer.accumulate(
            parameters: parameters, gradients: gradients, examples: batch, objective: objective, normalizer: normalizer)
        let norm = gradients.sumOfSquares.squareRoot()
        let (lr, scale) = rule.update(atStep: step, globalNorm: norm)
        step += 1
        adamWStep(
            parameters: parameters, gradients: gradients, m: m, v: v, learningRate: lr, step: step, gradientScale: scale, config: rule.settings.adamW, undecayed: undecayed)
        return rule.metrics(result, normalizer: normalizer, globalNorm: norm, learningRate: lr)
    }
}
