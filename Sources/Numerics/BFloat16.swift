// bfloat16, the optional wire format between workers and servers: the top half of an fp32
// (same exponent range), rounded to nearest even. Halves the bytes a step moves; the servers
// keep fp32 master weights, AdamW state and gradient sums.

/// fp32 → bfloat16, round to nearest even; NaN stays NaN (a quiet one), ±inf stays ±inf.
@inline(__always)
public func bfloat16(_ x: Float) -> UInt16 {
    let bits = x.bitPattern
    if x.isNaN { return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040 }
    let rounding = 0x7FFF + ((bits >> 16) & 1)
    return UInt16(truncatingIfNeeded: (bits &+ rounding) >> 16)
}

/// bfloat16 → fp32 (exact).
@inline(__always)
public func float(fromBFloat16 h: UInt16) -> Float { Float(bitPattern: UInt32(h) << 16) }

/// Narrows `count` floats to bfloat16, in parallel for large tensors.
public func narrowToBF16(_ source: UnsafePointer<Float>, into destination: UnsafeMutablePointer<UInt16>, count: Int) {
    let box = UncheckedSendable((source, destination))
    parallelRanges(count, minimumPerThread: 1 << 16) { r in
        let (s, d) = box.value
        for i in r { d[i] = bfloat16(s[i]) }
    }
}

/// Widens `count` bfloat16 values to floats, in parallel for large tensors.
public func widenBF16(_ source: UnsafePointer<UInt16>, into destination: UnsafeMutablePointer<Float>, count: Int) {
    let box = UncheckedSendable((source, destination))
    parallelRanges(count, minimumPerThread: 1 << 16) { r in
        let (s, d) = box.value
        for i in r { d[i] = float(fromBFloat16: s[i]) }
    }
}

/// A bfloat16 array with a stable address, for zero-copy sends (a reference type, so a frame
/// in flight can keep it alive).
public final class BFloat16Buffer: @unchecked Sendable {
    public let count: Int
    public let baseAddress: UnsafeMutablePointer<UInt16>

    public init(count: Int) {
        precondition(count >= 0)
        self.count = count
        baseAddress = .allocate(capacity: max(count, 1))
        baseAddress.initialize(repeating: 0, count: max(count, 1))
    }

    deinit { baseAddress.deallocate() }
}
