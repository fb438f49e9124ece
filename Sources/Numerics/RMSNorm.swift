// RMSNorm forward/backward over rows of width C (Llama's `LlamaRMSNorm`, fp32 throughout).

/// out[t,:] = x[t,:] · rstd[t] · w, rstd[t] = 1/sqrt(mean(x[t,:]²) + eps). Saves rstd for backward.
public func rmsnormForward(
    _ out: UnsafeMutablePointer<Float>, _ rstd: UnsafeMutablePointer<Float>,
    _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
    rows: Int, width c: Int, eps: Float
) {
    parallelRanges(rows, minimumPerThread: 16) { range in
        for t in range {
            let xr = x + t * c, yr = out + t * c
            var ss: Float = 0
            for i in 0..<c { ss += xr[i] * xr[i] }
            let r = 1 / (ss / Float(c) + eps).squareRoot()
            rstd[t] = r
            for i in 0..<c { yr[i] = xr[i] * r * w[i] }
        }
    }
}

/// dx[t,:] (+)= rstd·g − x·rstd³·mean(g·x) with g = dy·w; dw += Σ_t dy·x·rstd.
///
/// `partials` is scratch of at least `elementwiseThreads · C` floats for per-thread dw sums,
/// so the weight gradient is reduced in a fixed order (reproducible runs).
public func rmsnormBackward(
    _ dx: UnsafeMutablePointer<Float>, _ dw: UnsafeMutablePointer<Float>,
    _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
    _ rstd: UnsafePointer<Float>, partials: UnsafeMutablePointer<Float>,
    rows: Int, width c: Int, accumulate: Bool
) {
    let threads = max(1, min(elementwiseThreads, rows / 16))
    let per = (rows + threads - 1) / threads
    partials.update(repeating: 0, count: threads * c)
    parallelRanges(threads) { range in
        for th in range {
            let part = partials + th * c
            for t in (th * per)..<min(rows, (th + 1) * per) {
                let xr = x + t * c, dyr = dy + t * c, dxr = dx + t * c
                let r = rstd[t]
                var dot: Float = 0
                for i in 0..<c { dot += dyr[i] * w[i] * xr[i] }
                let k = dot * r * r * r / Float(c)
                if accumulate {
                    for i in 0..<c { dxr[i] += r * dyr[i] * w[i] - k * xr[i] }
                } else {
                    for i in 0..<c { dxr[i] = r * dyr[i] * w[i] - k * xr[i] }
                }
                for i in 0..<c { part[i] += dyr[i] * xr[i] * r }
            }
        }
    }
    for th in 0..<threads { let part = partials + th * c; for i in 0..<c { dw[i] += part[i] } }
}
