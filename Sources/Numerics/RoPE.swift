// Rotary position embedding in Hugging Face's "rotate_half" layout: dimension i pairs with
// i + headDim/2, frequency theta^(-2i/headDim). Applied in place to [T, heads·headDim].

/// Cos/sin tables [maxPosition, headDim/2], computed in float64 then rounded.
public struct RotaryTable: Sendable {
    public let headDim: Int
    public let maxPosition: Int
    public let cos: [Float]
    public let sin: [Float]

    public init(headDim: Int, maxPosition: Int, theta: Double) {
        precondition(headDim % 2 == 0, "RoPE needs an even head dimension")
        self.headDim = headDim
        self.maxPosition = maxPosition
        let half = headDim / 2
        var c = [Float](repeating: 0, count: maxPosition * half)
        var s = c
        for p in 0..<maxPosition {
            for i in 0..<half {
                // Hugging Face computes inv_freq in fp32; match it before the product.
                let invFreq = Double(Float(1.0 / _pow(theta, Double(2 * i) / Double(headDim))))
                let angle = Double(p) * invFreq
                c[p * half + i] = Float(_cos(angle))
                s[p * half + i] = Float(_sin(angle))
            }
        }
        cos = c
        sin = s
    }
}

#if canImport(Glibc)
import Glibc
@inline(__always) func _pow(_ a: Double, _ b: Double) -> Double { Glibc.pow(a, b) }
@inline(__always) func _cos(_ a: Double) -> Double { Glibc.cos(a) }
@inline(__always) func _sin(_ a: Double) -> Double { Glibc.sin(a) }
#else
import Darwin
@inline(__always) func _pow(_ a: Double, _ b: Double) -> Double { Darwin.pow(a, b) }
@inline(__always) func _cos(_ a: Double) -> Double { Darwin.cos(a) }
@inline(__always) func _sin(_ a: Double) -> Double { Darwin.sin(a) }
#endif

/// Rotates every head of x[t] by its position; `inverse` applies the transpose (the backward pass).
public func ropeApply(
    _ x: UnsafeMutablePointer<Float>, positions: UnsafePointer<Int32>,
    table: RotaryTable, rows: Int, heads: Int, inverse: Bool
) {
    let hd = table.headDim, half = hd / 2
    table.cos.withUnsafeBufferPointer { cosT in
        table.sin.withUnsafeBufferPointer { sinT in
            let cb = UncheckedSendable(cosT.baseAddress!), sb = UncheckedSendable(sinT.baseAddress!)
            parallelRanges(rows, minimumPerThread: 32) { range in
                for t in range {
                    let p = Int(positions[t])
                    let cr = cb.value + p * half, sr = sb.value + p * half
                    for h in 0..<heads {
                        let v = x + (t * heads + h) * hd
                        for i in 0..<half {
                            let a = v[i], b = v[i + half]
                            let s = inverse ? -sr[i] : sr[i]
                            v[i] = a * cr[i] - b * s
                            v[i + half] = b * cr[i] + a * s
                        }
                    }
                }
            }
        }
    }
}
