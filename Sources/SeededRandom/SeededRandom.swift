// Reproducible randomness: the same seed gives the same weights, data order and samples
// on every machine (Swift's SystemRandomNumberGenerator cannot be seeded).

/// xoshiro256** seeded through SplitMix64.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var x = seed
        func splitmix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s = (splitmix(), splitmix(), splitmix(), splitmix())
    }

    public mutating func next() -> UInt64 {
        let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
        let t = s.1 << 17
        s.2 ^= s.0; s.3 ^= s.1; s.1 ^= s.2; s.0 ^= s.3
        s.2 ^= t
        s.3 = (s.3 << 45) | (s.3 >> 19)
        return result
    }

    /// Uniform in [0, 1) with 53 random bits.
    public mutating func nextUnit() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// Standard normal draw (Box–Muller).
    public mutating func nextNormal() -> Double {
        let u1 = max(nextUnit(), 0x1.0p-53), u2 = nextUnit()
        return (-2 * _logD(u1)).squareRoot() * _cosD(2 * Double.pi * u2)
    }
}

#if canImport(Glibc)
import Glibc
@inline(__always) func _logD(_ x: Double) -> Double { Glibc.log(x) }
@inline(__always) func _cosD(_ x: Double) -> Double { Glibc.cos(x) }
#else
import Darwin
@inline(__always) func _logD(_ x: Double) -> Double { Darwin.log(x) }
@inline(__always) func _cosD(_ x: Double) -> Double { Darwin.cos(x) }
#endif
