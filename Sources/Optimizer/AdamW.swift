// AdamW with PyTorch's semantics (torch.optim.AdamW, foreach=False): decoupled weight decay,
// bias correction, eps added outside the square root. Works on a range of the flat vector,
// so a parameter server applies it to its chunks and a single process to everything.

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

/// Applies one AdamW step to `count` parameters.
///
/// - Parameters:
///   - step: 1-based step number (after increment), used for bias correction.
///   - gradientScale: multiplies every gradient first (1/normaliser × clip coefficient).
///   - m, v: first and second moment estimates, updated in place; zero before step 1.
public func adamWStep(parameters: UnsafeMutablePointer<Float>, gradients: UnsafePointer<Float>,
                      m: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>, count: Int,
                      learningRate: Double, step: Int, gradientScale: Double = 1, config: AdamWConfig) {
    precondition(step >= 1, "AdamW step numbers start at 1")
    let b1 = Float(config.beta1), b2 = Float(config.beta2)
    let bc1 = 1 - _pow(config.beta1, Double(step)), bc2 = 1 - _pow(config.beta2, Double(step))
    let stepSize = Float(learningRate / bc1)
    let bc2Root = Float(bc2.squareRoot())
    let eps = Float(config.eps)
    let decay = Float(1 - learningRate * config.weightDecay)
    let scale = Float(gradientScale)
    for i in 0..<count {
        let g = gradients[i] * scale
        let mi = b1 * m[i] + (1 - b1) * g
        let vi = b2 * v[i] + (1 - b2) * g * g
        m[i] = mi
        v[i] = vi
        let denom = vi.squareRoot() / bc2Root + eps
        parameters[i] = parameters[i] * decay - stepSize * mi / denom
    }
}

/// Σ g² over `count` gradients, in float64 (the partial sums servers report for the global norm).
public func sumOfSquares(_ gradients: UnsafePointer<Float>, count: Int, scale: Double = 1) -> Double {
    var s = 0.0
    for i in 0..<count { let g = Double(gradients[i]); s += g * g }
    return s * scale * scale
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
