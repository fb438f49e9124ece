// Training in one process: the same step a cluster runs (gradients → global norm → clip →
// AdamW with the recipe's schedule), without the network. Tests and small runs use it; the
// parameter server applies the same optimizer functions to its chunks.
import Data
import Model
import Numerics
import Objectives
import Optimizer

/// Hyper-parameters of one training stage.
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

/// Parameters plus AdamW state, stepped one global batch at a time.
public final class LocalTrainer {
    public let parameters: FloatBuffer
    public let gradients: FloatBuffer
    let m: FloatBuffer, v: FloatBuffer
    public let computer: GradientComputer
    public let settings: StageSettings
    public let schedule: LearningRateSchedule
    public private(set) var step = 0
    let undecayed: [Range<Int>]

    public init(config: LlamaConfig, parameters: FloatBuffer, settings: StageSettings, totalSteps: Int, microBatchTokens: Int = 4096) {
        self.parameters = parameters
        gradients = FloatBuffer(count: parameters.count)
        m = FloatBuffer(count: parameters.count)
        v = FloatBuffer(count: parameters.count)
        computer = GradientComputer(config: config, microBatchTokens: microBatchTokens)
        undecayed = ParameterLayout(config: config).undecayed
        self.settings = settings
        schedule = LearningRateSchedule(settings.scheduler, peak: settings.learningRate, totalSteps: totalSteps, warmupRatio: settings.warmupRatio)
    }

    /// One optimizer step on a global batch; returns TRL-named metrics (with grad_norm before clipping).
    @discardableResult
    public func step(_ batch: [Example]) throws -> [String: Double] {
        gradients.zero()
        let objective = settings.objective
        let result = try computer.accumulate(
            parameters: parameters.baseAddress, gradients: gradients.baseAddress,
            examples: batch, objective: objective,
            normalizer: objective.normalizer(for: batch))
        let norm = sumOfSquares(gradients.baseAddress, count: gradients.count).squareRoot()
        let lr = schedule.learningRate(atStep: step)
        step += 1
        adamWStep(
            parameters: parameters.baseAddress, gradients: gradients.baseAddress, m: m.baseAddress, v: v.baseAddress,
            count: parameters.count, learningRate: lr, step: step,
            gradientScale: clipCoefficient(globalNorm: norm, maxNorm: settings.maxGradNorm), config: settings.adamW,
            undecayed: undecayed)
        var metrics = result.metrics(for: objective)
        metrics["grad_norm"] = norm
        metrics["learning_rate"] = lr
        return metrics
    }
}
