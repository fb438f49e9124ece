// Vectorised exp for the softmax passes (LM head over ~50k-entry rows, attention rows).
// Accuracy ~2 ulp over the range softmax needs; not a general libm replacement.

public typealias Vec = SIMD16<Float>

/// e^x for 16 lanes: Cody–Waite reduction and Cephes' degree-6 polynomial.
/// Inputs below -87.3 flush towards 0 (as softmax wants); inputs are assumed ≤ 88.
@inline(__always)
public func exp(_ v: Vec) -> Vec {
    let x = v.clamped(lowerBound: Vec(repeating: -87.3), upperBound: Vec(repeating: 88.3))
    let n = (x * 1.44269504088896341).rounded(.toNearestOrEven)
    var r = x - n * 0.693359375
    r = r + n * 2.12194440e-4
    var p = Vec(repeating: 1.9875691500e-4)
    p = p * r + 1.3981999507e-3
    p = p * r + 8.3334519073e-3
    p = p * r + 4.1665795894e-2
    p = p * r + 1.6666665459e-1
    p = p * r + 5.0000001201e-1
    let e = p * r * r + r + 1
    let bits = (SIMD16<Int32>(n) &+ 127) &<< 23
    return e * unsafeBitCast(bits, to: Vec.self)
}

/// e^x for one value, through the same polynomial as the vector path.
@inline(__always)
public func expScalar(_ x: Float) -> Float { exp(Vec(repeating: x))[0] }

@inline(__always)
func load(_ p: UnsafePointer<Float>) -> Vec {
    UnsafeRawPointer(p).loadUnaligned(as: Vec.self)
}

@inline(__always)
func store(_ v: Vec, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: Vec.self)
}

/// max over `n` floats.
@inline(__always)
public func rowMax(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
    var m = Vec(repeating: -.infinity)
    var i = 0
    while i + 16 <= n { m = pointwiseMax(m, load(x + i)); i += 16 }
    var s = m.max()
    while i < n { s = max(s, x[i]); i += 1 }
    return s
}

/// Σ exp(x - shift) over `n` floats (double-free: fp32 lanes, 16 partial sums).
@inline(__always)
public func sumExp(_ x: UnsafePointer<Float>, _ n: Int, shift: Float) -> Float {
    var acc = Vec(repeating: 0)
    let sh = Vec(repeating: shift)
    var i = 0
    while i + 16 <= n { acc += exp(load(x + i) - sh); i += 16 }
    var s = acc.sum()
    while i < n { s += expScalar(x[i] - shift); i += 1 }
    return s
}

/// y[i] = scale · exp(x[i] - shift), in place allowed.
@inline(__always)
public func scaledExp(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int, shift: Float, scale: Float) {
    let sh = Vec(repeating: shift), sc = Vec(repeating: scale)
    var i = 0
    while i + 16 <= n { store(sc * exp(load(x + i) - sh), y + i); i += 16 }
    while i < n { y[i] = scale * expScalar(x[i] - shift); i += 1 }
}
