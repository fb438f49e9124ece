// Every matrix product in redi-ps: a thin row-major wrapper over cblas_sgemm, plus the
// naive reference kernel the tests hold it against. Not a general tensor library.
import BLASKernel
import COpenBLAS

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
public func gemm(
    _ opA: Op, _ opB: Op, m: Int, n: Int, k: Int,
    alpha: Float = 1, _ a: UnsafePointer<Float>, lda: Int,
    _ b: UnsafePointer<Float>, ldb: Int,
    beta: Float = 0, _ c: UnsafeMutablePointer<Float>, ldc: Int
) {
    if m == 0 || n == 0 { return }
    BLASStartup.ensureStarted()
    if k == 0 {
        for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } }
        return
    }
    cblas_sgemm(
        CblasRowMajor, opA.cblas, opB.cblas, Int32(m), Int32(n), Int32(k),
        alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// y[m or n] = alpha · op(A) · x + beta · y, A row-major [m, n] with row stride `lda`, through
/// OpenBLAS's sgemv: no packing, so it beats sgemm for one vector (decoding attention).
@inline(__always)
public func gemv(
    _ op: Op, m: Int, n: Int, alpha: Float = 1, _ a: UnsafePointer<Float>, lda: Int,
    _ x: UnsafePointer<Float>, beta: Float = 0, _ y: UnsafeMutablePointer<Float>
) {
    if m == 0 || n == 0 { return }
    BLASStartup.ensureStarted()
    cblas_sgemv(CblasRowMajor, op.cblas, Int32(m), Int32(n), alpha, a, Int32(lda), x, 1, beta, y, 1)
}

/// The reference for `gemm`: same contract, triple loop, float64 accumulation.
public func referenceGemm(
    _ opA: Op, _ opB: Op, m: Int, n: Int, k: Int,
    alpha: Float = 1, _ a: UnsafePointer<Float>, lda: Int,
    _ b: UnsafePointer<Float>, ldb: Int,
    beta: Float = 0, _ c: UnsafeMutablePointer<Float>, ldc: Int
) {
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

/// Sets the number of threads OpenBLAS uses for each product.
public func setMatmulThreads(_ n: Int) { openblas_set_num_threads(Int32(n)) }

/// The number of threads OpenBLAS uses for each product.
public var matmulThreads: Int { Int(openblas_get_num_threads()) }

/// y[T,O] = x[T,I] · Wᵀ (+ b), with W stored [O,I] as in Hugging Face `nn.Linear`;
/// with `accumulate`, y += x · Wᵀ instead.
///
/// A single row goes through sgemv: sgemm would first copy (pack) all of W, doubling the
/// memory traffic that bounds decoding.
public func linearForward(
    _ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>,
    _ w: UnsafePointer<Float>, _ bias: UnsafePointer<Float>?,
    rows: Int, inFeatures: Int, outFeatures: Int, accumulate: Bool = false
) {
    if rows == 1 {
        BLASStartup.ensureStarted()
        cblas_sgemv(
            CblasRowMajor, CblasNoTrans, Int32(outFeatures), Int32(inFeatures), 1, w, Int32(inFeatures),
            x, 1, accumulate ? 1 : 0, y, 1)
    } else {
        gemm(
            .n, .t, m: rows, n: outFeatures, k: inFeatures, x, lda: inFeatures, w, ldb: inFeatures,
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
public func linearBackward(
    _ dx: UnsafeMutablePointer<Float>?, _ dw: UnsafeMutablePointer<Float>,
    _ db: UnsafeMutablePointer<Float>?,
    _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
    rows: Int, inFeatures: Int, outFeatures: Int, accumulateInput: Bool = false
) {
    if let dx {
        gemm(
            .n, .n, m: rows, n: inFeatures, k: outFeatures, dy, lda: outFeatures, w, ldb: inFeatures,
            beta: accumulateInput ? 1 : 0, dx, ldc: inFeatures)
    }
    gemm(
        .t, .n, m: outFeatures, n: inFeatures, k: rows, dy, lda: outFeatures, x, ldb: inFeatures,
        beta: 1, dw, ldc: inFeatures)
    if let db {
        for t in 0..<rows { let row = dy + t * outFeatures; for o in 0..<outFeatures { db[o] += row[o] } }
    }
}

/// Rows per product in `rowStableLinearForward` on kernels that keep a row's bits only within
/// a 16-row product (Haswell, Zen); the row count is always padded to a multiple of it.
public let rowStableBlock = 16

/// How `rowStableLinearForward` lays out its products on this process's kernel.
public enum RowStableProducts {
    /// One plain threaded product over the whole batch (the running kernel's self-test found a
    /// row's bits the same at every position of 16–256-row products on 1–3 threads), else 16 rows
    /// per single-threaded product. Set from the self-test at start; tests set it for a kernel they run.
    nonisolated(unsafe) public static var wholeBatch: Bool = BLASStartup.wholeBatchRowStable
}

/// y[rows, out] = x[rows, in] · Wᵀ (+ b), or y += that with `accumulate`, for decoding: a row's
/// result is the same bits whatever the other rows hold, where in the batch it sits, how many
/// rows there are and how many threads run, on every kernel the self-test passes.
///
/// OpenBLAS gives no such promise for a plain product: kernels pick code paths by shape and
/// sum a row in another order at another position (measured on Prescott and Haswell). On
/// kernels whose self-test found a plain product position-independent (SkylakeX, Cooperlake,
/// Sandybridge) this is one threaded `linearForward`, and the caller keeps `rows` fixed (a
/// product's path depends on its shape). Elsewhere the rows are the vectorised dimension
/// (Cᵀ = W · Xᵀ), position-independent within 16 rows on every kernel the self-test passes:
/// each (output slice, 16-row block) is one single-threaded product, the slices sized by
/// `inFeatures` alone so a slice of W (≤ 256 KiB) stays in cache for every block.
/// - Precondition: `rows` is a multiple of `rowStableBlock`; `scratch` holds
///   `rowStableScratchCount(inFeatures:)` floats.
public func rowStableLinearForward(
    _ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>,
    _ w: UnsafePointer<Float>, _ bias: UnsafePointer<Float>?,
    rows: Int, inFeatures: Int, outFeatures: Int, accumulate: Bool = false,
    scratch: UnsafeMutablePointer<Float>
) {
    precondition(rows % rowStableBlock == 0, "rows must be a multiple of \(rowStableBlock)")
    BLASStartup.ensureStarted()
    if RowStableProducts.wholeBatch {
        linearForward(y, x, w, bias, rows: rows, inFeatures: inFeatures, outFeatures: outFeatures, accumulate: accumulate)
        return
    }
    let slice = rowStableSlice(inFeatures: inFeatures), slices = (outFeatures + slice - 1) / slice, blocks = rows / rowStableBlock
    forEachPair(slices) { s, worker in
        let t = scratch + worker * slice * rowStableBlock  // Cᵀ [slice, block]
        let o0 = s * slice, width = min(slice, outFeatures - o0)
        for b in 0..<blocks {
            cblas_sgemm(
                CblasRowMajor, CblasNoTrans, CblasTrans, Int32(width), Int32(rowStableBlock), Int32(inFeatures), 1,
                w + o0 * inFeatures, Int32(inFeatures), x + b * rowStableBlock * inFeatures, Int32(inFeatures), 0, t,
                Int32(rowStableBlock))
            for r in 0..<rowStableBlock {  // y[block rows, slice] from Cᵀ [slice, block]
                let out = y + (b * rowStableBlock + r) * outFeatures + o0
                for j in 0..<width {
                    let v = t[j * rowStableBlock + r] + (bias?[o0 + j] ?? 0)
                    out[j] = accumulate ? out[j] + v : v
                }
            }
        }
    }
}

/// Rows per product in `promptLinearForward`.
public let promptBlock = 64

/// y[rows, out] = x[rows, in] · Wᵀ (+ b), or y += that with `accumulate`, for one prompt's
/// tokens (a prefill): a row's bits depend only on the prompt (its length and the row's place
/// in it), never on threads or on other prompts. Products of ≤ `promptBlock` rows × an output
/// slice of W, each single-threaded and the pairs spread over the cores, with W the
/// vectorised dimension (a 64-row block packs W once where 16-row blocks pack it four times);
/// the split is fixed by the shape, so its per-row arithmetic is too.
public func promptLinearForward(
    _ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>,
    _ w: UnsafePointer<Float>, _ bias: UnsafePointer<Float>?,
    rows: Int, inFeatures: Int, outFeatures: Int, accumulate: Bool = false
) {
    BLASStartup.ensureStarted()
    if RowStableProducts.wholeBatch {  // a plain product is position- and thread-independent on this kernel
        linearForward(y, x, w, bias, rows: rows, inFeatures: inFeatures, outFeatures: outFeatures, accumulate: accumulate)
        return
    }
    let slice = rowStableSlice(inFeatures: inFeatures), slices = (outFeatures + slice - 1) / slice
    let blocks = (rows + promptBlock - 1) / promptBlock
    forEachPair(slices * blocks) { p, _ in
        let s = p / blocks, b = p % blocks
        let r0 = b * promptBlock, n = min(promptBlock, rows - r0), o0 = s * slice, width = min(slice, outFeatures - o0)
        cblas_sgemm(
            CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(width), Int32(inFeatures), 1,
            x + r0 * inFeatures, Int32(inFeatures), w + o0 * inFeatures, Int32(inFeatures), accumulate ? 1 : 0,
            y + r0 * outFeatures + o0, Int32(outFeatures))
        if let bias {
            for r in r0..<(r0 + n) { let out = y + r * outFeatures + o0; for j in 0..<width { out[j] += bias[o0 + j] } }
        }
    }
}

/// Output features per product in `rowStableLinearForward`'s 16-row layout: a multiple of 16 whose W slice fits 256 KiB.
func rowStableSlice(inFeatures: Int) -> Int { max(16, (65536 / max(1, inFeatures)) / 16 * 16) }

/// Scratch floats `rowStableLinearForward` needs for products with at least `inFeatures`
/// inputs (fewer inputs make wider slices).
public func rowStableScratchCount(inFeatures: Int) -> Int {
    elementwiseThreads * rowStableSlice(inFeatures: inFeatures) * rowStableBlock
}
