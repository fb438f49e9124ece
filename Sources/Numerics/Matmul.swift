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
/// a 16-row product; the row count is always padded to a multiple of it.
public let rowStableBlock = 16

/// The most rows `rowStableLinearForward` puts in one product (the self-test's largest).
public let vectorisedRowsLimit = 256

/// How `rowStableLinearForward` lays out its products on this process's kernel.
public enum RowStableProducts {
    /// Set from the running kernel's self-test at start; tests set it for a kernel they run.
    nonisolated(unsafe) public static var layout: DecodeLayout = BLASStartup.decodeLayout
}

/// y[rows, out] = x[rows, in] · Wᵀ (+ b), or y += that with `accumulate`, for decoding: a row's
/// result is the same bits whatever the other rows hold, where in the batch it sits, how many
/// rows there are and how many threads run, on every kernel the self-test passes.
///
/// OpenBLAS gives no such promise for a plain product: kernels pick code paths by shape and
/// sum a row in another order at another position (measured on Prescott and Haswell). So the
/// layout is the one the running kernel's self-test allows (`RowStableProducts.layout`): a
/// plain threaded product where it found that position-independent (the caller keeps `rows`
/// fixed: a product's path depends on its shape), else the rows as the vectorised dimension
/// (Cᵀ = W · Xᵀ), each (slice of W, row block) one single-threaded product spread over the
/// cores, the slices set by W's shape alone. The row block is the whole batch where the kernel
/// gave a row the same bits in products of 16 to 256 rows (W packed once per product), else 16
/// rows, with slices of W small enough (≤ 256 KiB) to stay in cache from one block to the next.
/// - Precondition: `rows` is a multiple of `rowStableBlock`; `scratch` holds
///   `rowStableScratchCount(rows:products:)` floats for this product's shape.
public func rowStableLinearForward(
    _ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>,
    _ w: UnsafePointer<Float>, _ bias: UnsafePointer<Float>?,
    rows: Int, inFeatures: Int, outFeatures: Int, accumulate: Bool = false,
    scratch: UnsafeMutablePointer<Float>
) {
    precondition(rows % rowStableBlock == 0, "rows must be a multiple of \(rowStableBlock)")
    BLASStartup.ensureStarted()
    let layout = RowStableProducts.layout
    if layout == .plainBatch {
        linearForward(y, x, w, bias, rows: rows, inFeatures: inFeatures, outFeatures: outFeatures, accumulate: accumulate)
        return
    }
    let slice = rowStableSlice(inFeatures: inFeatures, outFeatures: outFeatures, layout: layout)
    let slices = (outFeatures + slice - 1) / slice, block = rowStableRowBlock(rows: rows, layout: layout)
    forEachPair(slices) { s, worker in
        let t = scratch + worker * slice * block  // Cᵀ [slice, block]
        let o0 = s * slice, width = min(slice, outFeatures - o0)
        for r0 in stride(from: 0, to: rows, by: block) {
            let n = min(block, rows - r0)
            cblas_sgemm(
                CblasRowMajor, CblasNoTrans, CblasTrans, Int32(width), Int32(n), Int32(inFeatures), 1,
                w + o0 * inFeatures, Int32(inFeatures), x + r0 * inFeatures, Int32(inFeatures), 0, t, Int32(n))
            for r in 0..<n {  // y[block rows, slice] from Cᵀ [slice, block]
                let out = y + (r0 + r) * outFeatures + o0
                for j in 0..<width {
                    let v = t[j * n + r] + (bias?[o0 + j] ?? 0)
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
    if RowStableProducts.layout == .plainBatch {  // a plain product is position- and thread-independent on this kernel
        linearForward(y, x, w, bias, rows: rows, inFeatures: inFeatures, outFeatures: outFeatures, accumulate: accumulate)
        return
    }
    let slice = rowStableSlice(inFeatures: inFeatures, outFeatures: outFeatures, layout: .sixteenRowBlocks)
    let slices = (outFeatures + slice - 1) / slice, blocks = (rows + promptBlock - 1) / promptBlock
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

/// Output features per product of W[out, in] in `rowStableLinearForward` (a multiple of 16,
/// set by W's shape alone). With 16-row blocks, a W slice fits 256 KiB so it stays in cache
/// from one block to the next; with the batch in one product, W is read once whatever the
/// slice, so slices are as wide as an even split of W into pieces of ≤ 1 MiB allows (each
/// product packs X again: fewer, wider slices pack it less, and an even count keeps two cores even).
func rowStableSlice(inFeatures: Int, outFeatures: Int, layout: DecodeLayout) -> Int {
    guard layout == .vectorisedBatch else { return max(16, (65536 / max(1, inFeatures)) / 16 * 16) }
    let pieceFloats = 1 << 18
    var pieces = max(1, (inFeatures * outFeatures + pieceFloats - 1) / pieceFloats)
    pieces += pieces % 2
    return max(16, ((outFeatures + pieces - 1) / pieces + 15) / 16 * 16)
}

/// Rows per product in `rowStableLinearForward` for a batch of `rows`.
func rowStableRowBlock(rows: Int, layout: DecodeLayout) -> Int {
    layout == .vectorisedBatch ? min(max(rows, rowStableBlock), vectorisedRowsLimit) : rowStableBlock
}

/// Scratch floats `rowStableLinearForward` needs for products of `rows` rows of these
/// (inFeatures, outFeatures) shapes on this process's layout.
public func rowStableScratchCount(rows: Int, products: [(inFeatures: Int, outFeatures: Int)]) -> Int {
    let layout = RowStableProducts.layout, block = rowStableRowBlock(rows: rows, layout: layout)
    let widest = products.map { rowStableSlice(inFeatures: $0.inFeatures, outFeatures: $0.outFeatures, layout: layout) }.max() ?? 0
    return elementwiseThreads * widest * block
}
