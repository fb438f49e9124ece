// Every matrix product in redi-ps: a thin row-major wrapper over cblas_sgemm, plus the
// naive reference kernel the tests hold it against. Not a general tensor library.
import COpenBLAS
#if canImport(Glibc)
import Glibc
#endif

/// Whether an operand of `gemm` is used as stored or transposed.
public enum Op: Sendable {
    case n, t
    var cblas: CBLAS_TRANSPOSE { self == .n ? CblasNoTrans : CblasTrans }
}

/// C[m,n] = alpha · op(A)[m,k] · op(B)[k,n] + beta · C, all row-major, through OpenBLAS.
///
/// `lda`, `ldb`, `ldc` are the row strides of A, B and C as stored (so a column slice of a
/// wider matrix can be used in place). With `beta == 0`, C need not be initialised.
@inline(__always)
public func gemm(_ opA: Op, _ opB: Op, m: Int, n: Int, k: Int,
                 alpha: Float = 1, _ a: UnsafePointer<Float>, lda: Int,
                 _ b: UnsafePointer<Float>, ldb: Int,
                 beta: Float = 0, _ c: UnsafeMutablePointer<Float>, ldc: Int) {
    if m == 0 || n == 0 { return }
    if k == 0 {
        for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } }
        return
    }
    cblas_sgemm(CblasRowMajor, opA.cblas, opB.cblas, Int32(m), Int32(n), Int32(k),
                alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// The reference for `gemm`: same contract, triple loop, float64 accumulation.
public func referenceGemm(_ opA: Op, _ opB: Op, m: Int, n: Int, k: Int,
                          alpha: Float = 1, _ a: UnsafePointer<Float>, lda: Int,
                          _ b: UnsafePointer<Float>, ldb: Int,
                          beta: Float = 0, _ c: UnsafeMutablePointer<Float>, ldc: Int) {
    for i in 0..<m {
        for j in 0..<n {
            var s = 0.0
            for p in 0..<k {
                let x = opA == .n ? a[i * lda + p] : a[p * lda + i]
                let y = opB == .n ? b[p * ldb + j] : b[j * ldb + p]
                s += Double(x) * Double(y)
            }
            let old = beta == 0 ? 0 : Double(beta) * Double(c[i * ldc + j])
            c[i * ldc + j] = Float(Double(alpha) * s + old)
        }
    }
}

/// Makes OpenBLAS's idle worker threads go to sleep after ~2^12 cycles instead of spinning on
/// `sched_yield` for ~2^28 (its default, fixed when the library loads). Between products the
/// same cores run redi-ps's own threaded passes (attention, norms, SwiGLU, sampling), and a
/// spinning BLAS worker takes its core from them: on 2 cores, SmolLM2-135M decoding at batch 32
/// ran 267 → 297 tokens/s and a training step 186 → 216 tokens/s with this (`redi-bench`).
/// Waking a sleeping worker costs microseconds per product, far below a product's time.
/// An `OPENBLAS_THREAD_TIMEOUT` the user set is kept. Call it once, first thing in `main`:
/// it restarts OpenBLAS's thread pool.
public func letIdleMatmulThreadsSleep() {
    setenv("OPENBLAS_THREAD_TIMEOUT", "12", 0)
    openblas_read_env()
    _ = blas_thread_shutdown_()
    _ = blas_thread_init()
}

/// Sets the number of threads OpenBLAS uses for each product.
public func setMatmulThreads(_ n: Int) { openblas_set_num_threads(Int32(n)) }

/// The number of threads OpenBLAS uses for each product.
public var matmulThreads: Int { Int(openblas_get_num_threads()) }

/// y[T,O] = x[T,I] · Wᵀ (+ b), with W stored [O,I] as in Hugging Face `nn.Linear`;
/// with `accumulate`, y += x · Wᵀ instead.
///
/// A single row goes through sgemv: sgemm would first copy (pack) all of W, doubling the
/// memory traffic that bounds decoding.
public func linearForward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>,
                          _ w: UnsafePointer<Float>, _ bias: UnsafePointer<Float>?,
                          rows: Int, inFeatures: Int, outFeatures: Int, accumulate: Bool = false) {
    if rows == 1 {
        cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(outFeatures), Int32(inFeatures), 1, w, Int32(inFeatures),
                    x, 1, accumulate ? 1 : 0, y, 1)
    } else {
        gemm(.n, .t, m: rows, n: outFeatures, k: inFeatures, x, lda: inFeatures, w, ldb: inFeatures,
             beta: accumulate ? 1 : 0, y, ldc: outFeatures)
    }
    if let bias {
        parallelRanges(rows, minimumPerThread: 64) { r in
            for t in r { let row = y + t * outFeatures; for o in 0..<outFeatures { row[o] += bias[o] } }
        }
    }
}

/// Backward of `linearForward`: dx = dy · W (overwrites, or accumulates when `accumulateInput`),
/// dW += dyᵀ · x, db += Σ_t dy. Pass `dx == nil` when the input needs no gradient.
public func linearBackward(_ dx: UnsafeMutablePointer<Float>?, _ dw: UnsafeMutablePointer<Float>,
                           _ db: UnsafeMutablePointer<Float>?,
                           _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                           rows: Int, inFeatures: Int, outFeatures: Int, accumulateInput: Bool = false) {
    if let dx {
        gemm(.n, .n, m: rows, n: inFeatures, k: outFeatures, dy, lda: outFeatures, w, ldb: inFeatures,
             beta: accumulateInput ? 1 : 0, dx, ldc: inFeatures)
    }
    gemm(.t, .n, m: outFeatures, n: inFeatures, k: rows, dy, lda: outFeatures, x, ldb: inFeatures,
         beta: 1, dw, ldc: inFeatures)
    if let db {
        for t in 0..<rows { let row = dy + t * outFeatures; for o in 0..<outFeatures { db[o] += row[o] } }
    }
}
