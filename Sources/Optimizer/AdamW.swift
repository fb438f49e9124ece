// AdamW with PyTorch's semantics (torch.optim.AdamW, foreach=False): decoupled weight decay,
// bias correction, eps added outside the square root. Works on a range of the flat vector,
// so a parameter server applies it to its chunks and a single process to everything.
import Numerics

/// AdamW hyper-parameters (PyTorch defaults except weight decay, which follows the REDI recipe).
public struct AdamWConfig: Equatable, Sendable, Codable {
    public var beta1: Double = 0.9
    public var beta2: Double = 0.999
    public var eps: Double = 1e-8
    public var weightDecay: Double = 1e-4
    public init(beta1: Double = 0.9, beta2: Double = 0.999, eps: Double = 1e-8, weightDecay: Double = 1e-4) {
        self.beta1 = beta1; self.beta2 = beta2; self.eps = eps; self.weightDecay = weightDecay
    }
}

/// Applies one AdamW step to `count` parameters (the kernel behind the buffer version).
///
/// - Parameters:
///   - step: 1-based step number (after increment), used for bias correction.
///   - gradientScale: multiplies every gradient first (1/normaliser × clip coefficient).
///   - m, v: first and second moment estimates, updated in place; zero before step 1.
///   - undecayed: index ranges (within 0..<count, sorted, disjoint) that get no weight decay:
///     norm weights and biases, as Hugging Face's Trainer (and so TRL) leaves them.
func adamWStep(
    parameters: UnsafeMutablePointer<Float>, gradients: UnsafePointer<Float>,
    m: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>, count: Int,
    learningRate: Double, step: Int, gradientScale: Double = 1, config: AdamWConfig,
    undecayed: [Range<Int>] = []
) {
    precondition(step >= 1, "AdamW step numbers start at 1")
    let b1 = Float(config.beta1), b2 = Float(config.beta2)
    let bc1 = 1 - _pow(config.beta1, Double(step)), bc2 = 1 - _pow(config.beta2, Double(step))
    let stepSize = Float(learningRate / bc1)
    let bc2Root = Float(bc2.squareRoot())
    let eps = Float(config.eps)
    let scale = Float(gradientScale)
    func update(_ range: Range<Int>, decay: Float) {
        for i in range {
            let g = gradients[i] * scale
            let mi = b1 * m[i] + (1 - b1) * g
            let vi = b2 * v[i] + (1 - b2) * g * g
            m[i] = mi
            v[i] = vi
            let denom = vi.squareRoot() / bc2Root + eps
            parameters[i] = parameters[i] * decay - stepSize * mi / denom
        }
    }
    let decay = Float(1 - learningRate * config.weightDecay)
    var next = 0
    for r in undecayed {
        let lower = min(max(r.lowerBound, next), count), upper = min(max(r.upperBound, lower), count)
        update(next..<lower, decay: decay)
        update(lower..<upper, decay: 1)
        next = upper
    }
    update(next..<count, decay: decay)
}

/// `adamWStep` on whole buffers of one length (a server's chunk: its weights, summed
/// gradient, m and v).
public func adamWStep(
    parameters: FloatBuffer, gradients: FloatBuffer, m: FloatBuffer, v: FloatBuffer,
    learningRate: Double, step: Int, gradientScale: Double = 1, config: AdamWConfig, undecayed: [Range<Int>] = []
) {
    precondition([gradients.count, m.count, v.count].allSatisfy { $0 == parameters.count }, "AdamW's buffers must be one length")
    adamWStep(
        parameters: parameters.baseAddress, gradients: gradients.baseAddress, m: m.baseAddress, v: v.baseAddress, count: parameters.count,
        learningRate: learningRate, step: step, gradientScale: gradientScale, config: config, undecayed: undecayed)
}

/// PyTorch's `clip_grad_norm_` coefficient: min(1, maxNorm / (norm + 1e-6)).
public func clipCoefficient(globalNorm: Double, maxNorm: Double?) -> Double {
    guard let maxNorm, maxNorm > 0 else { return 1 }
    return min(1, maxNorm / (globalNorm + 1e-6))
}

#if canImport(Glibc)
import Glibc
@inline(__always) func _pow(_ a: Double, _ b: Double) -> Double { Glibc.pow(a, b) }
#else
import Darwin
@inline(__always) func _pow(_ a: Double, _ b: Double) -> Double { Darwin.pow(a, b) }
#endif
