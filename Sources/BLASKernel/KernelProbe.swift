// The self-test a kernel passes before redi-ps trusts it: in a child process (so an illegal
// instruction or a crash only ends the child), switch to the kernel and run products of every
// operand layout and of shapes that reach every edge tile and several cache blocks, against a
// float64 reference; then the property decoding relies on: a row's result is the same bits at
// every position of a 16-row block, and which faster decode layouts keep that too. Older
// OpenBLAS builds are known to compute wrong results or crash on some processors; this is how
// such a kernel is caught and skipped.
import COpenBLAS
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// How decoding lays out its matrix products so that a row's bits never depend on the other
/// rows: the self-test finds which layouts the kernel keeps a row's bits in, and decoding uses
/// the fastest of them (later cases are faster).
public enum DecodeLayout: String, Codable, Comparable, Sendable, CustomStringConvertible {
    /// 16 rows per single-threaded product, the rows vectorised (Cᵀ = W · Xᵀ): every kernel
    /// that passes the self-test keeps a row's bits at every position of such a product.
    case sixteenRowBlocks
    /// All the rows (up to 256) in one single-threaded product per slice of W, the rows
    /// vectorised: the kernel gave a row the same bits at every position of products of 16 to
    /// 256 rows, so W is packed once per product instead of once per 16 rows.
    case vectorisedBatch
    /// One plain threaded product over the batch (C = X · Wᵀ) of a fixed row count: the kernel
    /// gave a row the same bits at every position of such a product on 1, 2 or 3 threads.
    case plainBatch

    public static func < (a: DecodeLayout, b: DecodeLayout) -> Bool { a.rank < b.rank }
    private var rank: Int { self == .sixteenRowBlocks ? 0 : self == .vectorisedBatch ? 1 : 2 }

    public var description: String {
        switch self {
        case .sixteenRowBlocks: "16 rows per product"
        case .vectorisedBatch: "the batch's rows vectorised in one product per slice of the weights"
        case .plainBatch: "one threaded product over the batch"
        }
    }
}

/// What the self-test found for one kernel.
public enum KernelVerdict: Codable, Equatable, Sendable, CustomStringConvertible {
    /// Every product within the float32 error bound, and a row's bits the same at every position
    /// of a 16-row product with the rows vectorised (Cᵀ = W · Xᵀ, one thread); `layout`: the
    /// fastest decode layout whose products keep a row's bits too.
    case correct(layout: DecodeLayout)
    /// A product off by more than the error bound: the worst error over its bound.
    case wrongResult(errorOverBound: Double)
    /// A row's result changed with its position in a 16-row block.
    case rowDependent
    /// The child died of this signal (an illegal instruction is SIGILL, 4).
    case crashed(signal: Int32)
    /// No answer within the time limit.
    case timedOut
    /// The kernel could not be switched to (not in this build).
    case unavailable

    public var isCorrect: Bool { if case .correct = self { true } else { false } }

    public var description: String {
        switch self {
        case .correct(let layout): "correct (decoding: \(layout))"
        case .wrongResult(let r): String(format: "wrong results (error %.3g× the float32 bound)", r)
        case .rowDependent: "a row's result depends on its position in the batch"
        case .crashed(let signal): "crashed (signal \(signal)\(signal == SIGILL ? ", illegal instruction" : ""))"
        case .timedOut: "no answer in time"
        case .unavailable: "not in this OpenBLAS build"
        }
    }
}

/// A fault a test injects into the self-test's child, to prove the fallback works.
public enum InjectedFault: Sendable {
    case wrongResult, crash, hang
}

/// Runs the self-test of a kernel in a child process.
public enum KernelProbe {
    /// How a child ended: its exit code and the value it reported, or the signal that ended it.
    public enum ChildOutcome: Equatable, Sendable {
        case exited(code: Int32, value: Double)
        case signaled(Int32)
        case timedOut
        case notStarted
    }

    /// Tests `kernel` in a forked child and waits for its verdict (at most `timeout` seconds).
    ///
    /// The problem and its float64 reference are built here, before the fork, so the child only
    /// switches kernels, runs products and compares: no allocation, which keeps it safe to fork
    /// from a process that has other threads.
    public static func verify(_ kernel: KernelName, fault: InjectedFault? = nil, timeout: Double = 60) -> KernelVerdict {
        let problem = SelfTestProblem.shared
        let outcome = inChild(kernel: kernel, timeout: timeout) {
            switch fault {
            case .crash: raise(SIGILL)
            case .hang: while true { sleep(1) }
            case .wrongResult, nil: break
            }
            let ratio = problem.worstErrorOverBound(perturb: fault == .wrongResult)
            if !(ratio <= 1) { return (10, ratio) }
            guard problem.rowsIndependentOfPosition(rowsVectorised: true, blockSizes: [16], threads: [1]) else { return (11, ratio) }
            if problem.rowsIndependentOfPosition(rowsVectorised: false, blockSizes: [16, 32, 48, 64, 128, 256], threads: [1, 2, 3]) {
                return (0, ratio)
            }
            // One reference for every size: a row's bits may not depend on how many rows there are.
            let everySize = Array(stride(from: 16, through: problem.maxRows, by: 16))  // decoding pads to a multiple of 16
            return problem.rowsIndependentOfPosition(rowsVectorised: true, blockSizes: everySize, threads: [1], acrossSizes: true)
                ? (2, ratio) : (1, ratio)
        }
        switch outcome {
        case .exited(0, _): return .correct(layout: .plainBatch)
        case .exited(1, _): return .correct(layout: .sixteenRowBlocks)
        case .exited(2, _): return .correct(layout: .vectorisedBatch)
        case .exited(10, let ratio): return .wrongResult(errorOverBound: ratio)
        case .exited(11, _): return .rowDependent
        case .exited: return .unavailable
        case .signaled(let signal): return .crashed(signal: signal)
        case .timedOut: return .timedOut
        case .notStarted: return .unavailable
        }
    }

    /// Runs `body` in a forked child that first switches to `kernel` (exit code 12 when it
    /// cannot), and returns how the child ended. The child never returns into the caller's code:
    /// it exits with `body`'s code, reporting its value through a pipe.
    public static func inChild(kernel: KernelName, timeout: Double, _ body: () -> (code: Int32, value: Double)) -> ChildOutcome {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { return .notStarted }
        let pid = fork()
        if pid == 0 {
            close(fds[0])
            // A crash ends the child plainly (no runtime backtrace handler), as the parent reads it.
            for crash in [SIGILL, SIGSEGV, SIGBUS, SIGFPE, SIGABRT] { signal(crash, SIG_DFL) }
            var result: (code: Int32, value: Double) = (12, 0)
            if OpenBLASRuntime.switchKernel(to: kernel) { result = body() }
            var value = result.value
            withUnsafeBytes(of: &value) { _ = write(fds[1], $0.baseAddress, 8) }
            _exit(result.code)
        }
        close(fds[1])
        defer { close(fds[0]) }
        guard pid > 0 else { return .notStarted }
        var status: Int32 = 0
        let deadline = Date().addingTimeInterval(timeout)
        while waitpid(pid, &status, WNOHANG) == 0 {
            if Date() > deadline {
                kill(pid, SIGKILL)
                _ = waitpid(pid, &status, 0)
                return .timedOut
            }
            usleep(2000)
        }
        if status & 0x7f != 0 { return .signaled(status & 0x7f) }
        var value = 0.0
        _ = withUnsafeMutableBytes(of: &value) { read(fds[0], $0.baseAddress, 8) }
        return .exited(code: (status >> 8) & 0xff, value: value)
    }
}

/// Products of every layout redi-ps uses, with their float64 references, made once per process.
final class SelfTestProblem: @unchecked Sendable {
    struct Product {
        let transA: Bool, transB: Bool, m: Int, n: Int, k: Int
        let a: UnsafeMutablePointer<Float>, b: UnsafeMutablePointer<Float>, c: UnsafeMutablePointer<Float>
        /// Σ_p a·b and the error bound 2·k·u·Σ_p |a|·|b| per element, in float64.
        let reference: UnsafeMutablePointer<Double>, bound: UnsafeMutablePointer<Double>
    }
    static let shared = SelfTestProblem()

    /// (transA, transB, m, n, k) in row-major terms: x·Wᵀ (forward), dy·W, dyᵀ·x (backward),
    /// shapes with ragged edges in every dimension, k past one cache block, m past one panel; and
    /// a matrix-vector product (decoding a single row).
    let products: [Product]
    let gemv: Product
    /// The decode layout: Cᵀ[out, rows] = W[out, k] · X[rows, k]ᵀ, one test row moved through every position.
    let maxRows = 256, blockOut = 200, blockK = 96
    let w: UnsafeMutablePointer<Float>, x: UnsafeMutablePointer<Float>, testRow: UnsafeMutablePointer<Float>
    let blockC: UnsafeMutablePointer<Float>, firstColumn: UnsafeMutablePointer<Float>

    private init() {
        var state: UInt64 = 0x5eed
        func fill(_ count: Int) -> UnsafeMutablePointer<Float> {
            let p = UnsafeMutablePointer<Float>.allocate(capacity: count)
            for i in 0..<count {
                state = state &+ 0x9e37_79b9_7f4a_7c15
                var z = state
                z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
                z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
                p[i] = Float(Double((z ^ (z >> 31)) >> 11) / Double(1 << 53) * 2 - 1)
            }
            return p
        }
        func product(_ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int) -> Product {
            let a = fill(m * k), b = fill(k * n)
            let reference = UnsafeMutablePointer<Double>.allocate(capacity: m * n), bound = UnsafeMutablePointer<Double>.allocate(capacity: m * n)
            for i in 0..<m {
                for j in 0..<n {
                    var s = 0.0, magnitude = 0.0
                    for p in 0..<k {
                        let x = Double(transA ? a[p * m + i] : a[i * k + p]), y = Double(transB ? b[j * k + p] : b[p * n + j])
                        s += x * y
                        magnitude += abs(x * y)
                    }
                    reference[i * n + j] = s
                    bound[i * n + j] = 2 * Double(k) * 0x1p-24 * magnitude + 1e-30
                }
            }
            return Product(
                transA: transA, transB: transB, m: m, n: n, k: k, a: a, b: b,
                c: .allocate(capacity: m * n), reference: reference, bound: bound)
        }
        products = [
            product(false, true, 300, 130, 77), product(false, false, 67, 45, 1100),
            product(true, false, 129, 96, 257), product(false, true, 700, 36, 40)
        ]
        gemv = product(false, false, 515, 1, 133)
        w = fill(blockOut * blockK)
        x = fill(maxRows * blockK)
        testRow = fill(blockK)
        blockC = .allocate(capacity: blockOut * maxRows)
        firstColumn = .allocate(capacity: blockOut)
    }

    /// The largest |c − reference| / bound over every product (> 1: the kernel is wrong).
    /// `perturb` adds an error to one element first (the injected wrong result).
    func worstErrorOverBound(perturb: Bool) -> Double {
        var worst = 0.0
        for p in products {
            cblas_sgemm(
                CblasRowMajor, p.transA ? CblasTrans : CblasNoTrans, p.transB ? CblasTrans : CblasNoTrans,
                Int32(p.m), Int32(p.n), Int32(p.k), 1, p.a, Int32(p.transA ? p.m : p.k), p.b, Int32(p.transB ? p.k : p.n),
                0, p.c, Int32(p.n))
            if perturb { p.c[p.m * p.n / 2] += 0.5 }
            worst = max(worst, errorOverBound(p))
        }
        cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(gemv.m), Int32(gemv.k), 1, gemv.a, Int32(gemv.k), gemv.b, 1, 0, gemv.c, 1)
        return max(worst, errorOverBound(gemv))
    }

    private func errorOverBound(_ p: Product) -> Double {
        var worst = 0.0
        for i in 0..<(p.m * p.n) {
            let r = abs(Double(p.c[i]) - p.reference[i]) / p.bound[i]
            if !(r <= worst) { worst = r.isNaN ? .infinity : r }
        }
        return worst
    }

    /// Whether the test row's outputs are the same bits at every position of products over each of
    /// `blockSizes` rows, on each of `threads` thread counts, as at position 0 on the first thread
    /// count (of each size, or with `acrossSizes` of the first size). The rows are the vectorised
    /// dimension (Cᵀ = W · Xᵀ) or the plain product's (C = X · Wᵀ).
    func rowsIndependentOfPosition(rowsVectorised: Bool, blockSizes: [Int], threads: [Int], acrossSizes: Bool = false) -> Bool {
        let saved = openblas_get_num_threads()
        defer { openblas_set_num_threads(saved) }
        for rows in blockSizes {
            // Every position of a 16-row product; past that the first, last and block edges.
            let positions = rows == 16 ? Array(0..<16) : [0, 1, 15, 16, 17, 31, 32, 47, 63, 64, 100, 127, 128, 200, 255].filter { $0 < rows }
            for count in threads {
                openblas_set_num_threads(Int32(count))
                for position in positions {
                    for r in 0..<rows where r != position {
                        for i in 0..<blockK { x[r * blockK + i] = Float(sin(Double(r * 131 + i * 7 + position + rows))) }
                    }
                    (x + position * blockK).update(from: testRow, count: blockK)
                    if rowsVectorised {
                        cblas_sgemm(
                            CblasRowMajor, CblasNoTrans, CblasTrans, Int32(blockOut), Int32(rows), Int32(blockK), 1, w, Int32(blockK),
                            x, Int32(blockK), 0, blockC, Int32(rows))
                    } else {
                        cblas_sgemm(
                            CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(blockOut), Int32(blockK), 1, x, Int32(blockK),
                            w, Int32(blockK), 0, blockC, Int32(blockOut))
                    }
                    for j in 0..<blockOut {
                        let value = rowsVectorised ? blockC[j * rows + position] : blockC[position * blockOut + j]
                        if count == threads[0], position == 0, !acrossSizes || rows == blockSizes[0] {
                            firstColumn[j] = value
                        } else if value.bitPattern != firstColumn[j].bitPattern {
                            return false
                        }
                    }
                }
            }
        }
        return true
    }
}
