// Vectorisable exp for the softmax and SiLU passes. Written as branch-free scalar code over
// plain loops so LLVM vectorises it (Swift's generic SIMD conversions and `clamped` do not
// lower to vector instructions). Accuracy ~2 ulp over the range softmax needs.

/// e^x: Cody–Waite reduction, Cephes' degree-6 polynomial, 2^n built in the exponent bits.
/// Inputs below -87.3 give ~1e-38 (softmax wants ≈0); inputs above 88.3 saturate.
@inline(__always)
public func fastExp(_ v: Float) -> Float {
    let x = min(max(v, -87.3), 88.3)
    // Adding 1.5·2²³ rounds to an integer and leaves it in the low mantissa bits.
    let shifted = x * 1.44269504088896341 + 12_582_912
    let n = shifted - 12_582_912
    var r = x - n * 0.693359375
    r = r + n * 2.12194440e-4
    var p: Float = 1.9875691500e-4
    p = p * r + 1.3981999507e-3
    p = p * r + 8.3334519073e-3
    p = p * r + 4.1665795894e-2
    p = p * r + 1.6666665459e-1
    p = p * r + 5.0000001201e-1
    let e = p * r * r + r + 1
    let exponent = (shifted.bitPattern &- 0x4B40_0000 &+ 127) &<< 23
    return e * Float(bitPattern: exponent)
}

public typealias Vec = SIMD16<Float>

@inline(__always)
func load(_ p: UnsafePointer<Float>) -> Vec { UnsafeRawPointer(p).loadUnaligned(as: Vec.self) }

/// max over `n` floats.
@inline(__always)
public func rowMax(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
    var m = Vec(repeating: -.infinity)
    var i = 0
    while i + 16 <= n {
        let v = load(x + i)
        m.replace(with: v, where: v .> m)
        i += 16
    }
    var s = m.max()
    while i < n { s = max(s, x[i]); i += 1 }
    return s
}

/// Σ over `n` floats with 16 partial sums.
@inline(__always)
public func rowSum(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = Vec(repeating: 0)
    var i = 0
    while i + 16 <= n { acc += load(x + i); i += 16 }
    var s = acc.sum()
    while i < n { s += x[i]; i += 1 }
    return s
}

/// Σ x[i]·y[i] over `n` floats with 16 partial sums.
@inline(__always)
public func rowDot(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = Vec(repeating: 0)
    var i = 0
    while i + 16 <= n { acc += load(x + i) * load(y + i); i += 16 }
    var s = acc.sum()
    while i < n { s += x[i] * y[i]; i += 1 }
    return s
}

/// x[i] ← exp(x[i] − shift) in place; returns the sum of the results.
@inline(__always)
public func expInPlace(_ x: UnsafeMutablePointer<Float>, _ n: Int, shift: Float) -> Float {
    for i in 0..<n { x[i] = fastExp(x[i] - shift) }
    return rowSum(x, n)
}

/// out[i] ← exp((x[i] − shift) · scale): a softmax at temperature 1/scale, unnormalised.
public func scaledExp(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int, shift: Float, scale: Float) {
    for i in 0..<n { out[i] = fastExp((x[i] - shift) * scale) }
}

/// x[i] ← x[i] · s in place.
@inline(__always)
public func scaleInPlace(_ x: UnsafeMutablePointer<Float>, _ n: Int, by s: Float) {
    for i in 0..<n { x[i] *= s }
}
