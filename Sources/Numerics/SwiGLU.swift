// The Llama MLP's gate: h = silu(g) · u, elementwise over [T, I].

@inline(__always) func sigmoid(_ x: Float) -> Float { 1 / (1 + fastExp(-x)) }

/// h = silu(gate) · up.
public func swigluForward(_ h: UnsafeMutablePointer<Float>, _ gate: UnsafePointer<Float>,
                          _ up: UnsafePointer<Float>, count: Int) {
    parallelRanges(count, minimumPerThread: 4096) { r in
        for i in r { let g = gate[i]; h[i] = g * sigmoid(g) * up[i] }
    }
}

/// dgate = dh·u·σ(g)·(1 + g·(1 − σ(g))), dup = dh·silu(g). Outputs may alias nothing.
public func swigluBackward(_ dgate: UnsafeMutablePointer<Float>, _ dup: UnsafeMutablePointer<Float>,
                           _ dh: UnsafePointer<Float>, _ gate: UnsafePointer<Float>,
                           _ up: UnsafePointer<Float>, count: Int) {
    parallelRanges(count, minimumPerThread: 4096) { r in
        for i in r {
            let g = gate[i], s = sigmoid(g), d = dh[i]
            dup[i] = d * g * s
            dgate[i] = d * up[i] * s * (1 + g * (1 - s))
        }
    }
}
