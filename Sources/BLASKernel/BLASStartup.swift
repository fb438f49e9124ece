// What every redi-ps process does with OpenBLAS before its first product: choose the kernel
// (KernelChooser), let idle BLAS threads sleep, measure sgemm once at a training shape and log
// one line saying all of it, with a loud warning when the rate is far below what the CPU's
// features allow. Runs once per process, at `start` or at the first product, whichever is first.
import COpenBLAS
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A matrix product's shape: C[m, n] = op(A)[m, k] · op(B)[k, n], row-major, where op
/// transposes a stored [k, m] A or [n, k] B (x·Wᵀ, a layer's forward, is `transposeB`).
public struct MatmulShape: Sendable, CustomStringConvertible {
    public var m: Int, n: Int, k: Int
    public var transposeA: Bool, transposeB: Bool
    public init(m: Int, n: Int, k: Int, transposeA: Bool = false, transposeB: Bool = false) {
        self.m = m; self.n = n; self.k = k; self.transposeA = transposeA; self.transposeB = transposeB
    }
    public var flops: Double { 2 * Double(m) * Double(n) * Double(k) }
    public var description: String { "\(m)×\(n)×\(k)" + (transposeA || transposeB ? " (\(transposeA ? "T" : "N")\(transposeB ? "T" : "N"))" : "") }
    /// SmolLM2-135M's MLP up-projection over 512 tokens: the default probe.
    public static let trainingDefault = MatmulShape(m: 512, n: 1536, k: 576)
}

/// The process's BLAS set-up, done once.
public enum BLASStartup {
    /// The kernel choice (made on first use; the kernel is switched before this returns).
    public static let choice: KernelChoice = {
        let choice = KernelChooser.choose()
        OpenBLASRuntime.letIdleThreadsSleep()
        return choice
    }()

    /// How decoding lays out its products on the running kernel (its self-test's verdict; 16 rows
    /// per product when it was not tested).
    public static let decodeLayout: DecodeLayout = {
        if case .correct(let layout) = choice.runningVerdict { layout } else { .sixteenRowBlocks }
    }()

    private static let logged = LogOnce()

    /// Chooses the kernel if not done yet, then logs the start line once (to standard error).
    /// - Parameter program: the name the line starts with.
    public static func start(program: String, shape: MatmulShape = .trainingDefault) {
        _ = choice
        logged.once { FileHandle.standardError.write(Data((startLines(program: program, shape: shape).joined(separator: "\n") + "\n").utf8)) }
    }

    /// Called before every product: makes sure the kernel was chosen (the tests have no `main` to do it).
    @inline(__always) public static func ensureStarted() { _ = choice }

    /// The start line, and a warning line when sgemm is far below what the features allow.
    public static func startLines(program: String, shape: MatmulShape) -> [String] {
        let rate = sgemmRate(shape)
        var lines = [
            "\(program): BLAS \(OpenBLASRuntime.version), kernel \(choice.runningName) "
                + "(\(describe(choice))), \(OpenBLASRuntime.threads) threads, sgemm \(Int(rate.rounded())) GFLOP/s at \(shape)"
        ]
        if let warning = speedWarning(choice, rate: rate, threads: OpenBLASRuntime.threads) { lines.append("\(program): WARNING: \(warning)") }
        for (kernel, verdict) in choice.verdicts where !verdict.isCorrect {
            lines.append("\(program): note: kernel \(kernel) skipped: \(verdict)")
        }
        return lines
    }

    /// How the kernel was chosen, in words.
    public static func describe(_ choice: KernelChoice) -> String {
        let features = choice.cpu.kernelFeatures.isEmpty ? "no vector features read" : choice.cpu.kernelFeatures
        switch choice.reason {
        case .selfTested(let cached):
            return "chosen for \(features); self-test passed\(cached ? " (cached verdict)" : "")"
        case .requested:
            return "named by REDI_PS_BLAS_KERNEL; self-test passed"
        case .presetByEnvironment(let preset):
            var text = "\(preset) set by the environment: kept"
            if let verdict = choice.verdicts.first?.verdict { text += verdict.isCorrect ? "; self-test passed" : "; self-test: \(verdict)" }
            if let best = choice.bestForFeatures, best.name.lowercased() != choice.running.lowercased(), best.level > choice.runningLevel {
                text += "; this CPU's features qualify for \(best)"
            }
            return text
        case .openBLASDefault(let why):
            return "OpenBLAS's own choice: \(why)"
        }
    }

    /// A warning when `rate` is below 40% of the floor the features promise (2 FMA ports'
    /// worth of FLOPs per cycle at the reported clock), or the kernel is SSE-class on an AVX2+ CPU.
    public static func speedWarning(_ choice: KernelChoice, rate: Double, threads: Int) -> String? {
        let level = choice.cpu.vectorLevel
        let expected = Double(threads) * choice.cpu.megahertz / 1000 * level.floorFlopsPerCycle
        let name = choice.runningName
        if choice.runningLevel != .unknown, choice.runningLevel < .avx, level >= .avx2 {
            return "OpenBLAS runs its \(name) (\(choice.runningLevel)) kernel on a CPU with \(level): matrix products run several times "
                + "slower than they could (sgemm \(Int(rate)) GFLOP/s). Run 'redi-ps doctor' and see the README's 'Speed'."
        }
        if expected > 0, rate < 0.4 * expected {
            return "sgemm runs at \(Int(rate)) GFLOP/s, under 40% of the ~\(Int(expected)) GFLOP/s \(threads) cores of \(level) "
                + "at \(Int(choice.cpu.megahertz)) MHz sustain (kernel \(name)); the machine may be oversubscribed. Run 'redi-ps doctor'."
        }
        return nil
    }

    /// Best of `repeats` timed sgemm calls of `shape` (after one warm-up), in GFLOP/s, at the
    /// current thread count: the machine's own limit that MFU figures are measured against.
    public static func sgemmRate(_ shape: MatmulShape, repeats: Int = 3) -> Double {
        ensureStarted()
        let (m, n, k) = (Int32(shape.m), Int32(shape.n), Int32(shape.k))
        let a = [Float](repeating: 0.5, count: shape.m * shape.k), b = [Float](repeating: 0.25, count: shape.k * shape.n)
        var c = [Float](repeating: 0, count: shape.m * shape.n)
        var best = Double.infinity
        for i in 0...repeats {
            let t0 = DispatchTime.now().uptimeNanoseconds
            cblas_sgemm(
                CblasRowMajor, shape.transposeA ? CblasTrans : CblasNoTrans, shape.transposeB ? CblasTrans : CblasNoTrans, m, n, k, 1,
                a, shape.transposeA ? m : k, b, shape.transposeB ? k : n, 0, &c, n)
            if i > 0 { best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9) }
        }
        return shape.flops / best / 1e9
    }
}

/// Runs a closure once per process, from any thread.
final class LogOnce: @unchecked Sendable {
    private let lock = NSLock()
    private var done = false
    func once(_ body: () -> Void) {
        lock.lock()
        defer { lock.unlock() }
        guard !done else { return }
        done = true
        body()
    }
}
