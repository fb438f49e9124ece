// The Llama MLP's gate: h = silu(g) · u. Gate and up come from one fused product, so each
// row of the input holds [gate (width) | up (width)]: [T, 2·width] in, [T, width] out.

@inline(__always) func sigmoid(_ x: Float) -> Float { 1 / (1 + fastExp(-x)) }

/// h[t, i] = silu(gateUp[t, i]) · gateUp[t, width + i].
public func swigluForward(_ h: UnsafeMutablePointer<Float>, _ gateUp: UnsafePointer<Float>, rows: Int, width: Int) {
    parallelRanges(rows, minimumPerThread: max(1, 4096 / width)) { r in
        for t in r {
            let g = gateUp + t * 2 * width, u = g + width, out = h + t * width
            for i in 0..<width { out[i] = g[i] * sigmoid(g[i]) * u[i] }
        }
    }
}

/// dGateUp[t, i] = dh·u·σ(g)·(1 + g·(1 − σ(g))), dGateUp[t, width + i] = dh·silu(g).
public func swigluBackward(
    _ dGateUp: UnsafeMutablePointer<Float>, _ dh: UnsafePointer<Float>,
    _ gateUp: UnsafePointer<Float>, rows: Int, width: Int
) {
    parallelRanges(rows, minimumPerThread: max(1, 4096 / width)) { r in
        for t in r {
            let g = gateUp + t * 2 * width, u = g + width, d = dh + t * width
            let dg = dGateUp + t * 2 * width, du = dg + width
            for i in 0..<width {
                let s = sigmoid(g[i])
                du[i] = d[i] * g[i] * s
                dg[i] = d[i] * u[i] * s * (1 + g[i] * (1 - s))
            }
        }
    }
}
