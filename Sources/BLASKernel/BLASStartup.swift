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
        let probe = sgemmProbe(shape)
        let threads = OpenBLASRuntime.threads
        // Processes started together (a local cluster, the tests) probe at once on the same cores.
        let busy =
            probe.coreShare < busyShare
            ? String(format: " (measured with %.0f%% of %d cores: other processes, a CPU quota or the hypervisor held the rest)", 100 * probe.coreShare, threads)
            : ""
        var lines = [
            "\(program): BLAS \(OpenBLASRuntime.version), kernel \(choice.runningName) "
                + "(\(describe(choice))), \(threads) threads, sgemm \(Int(probe.rate.rounded())) GFLOP/s at \(shape)\(busy)"
        ]
        if let warning = speedWarning(choice, rate: probe.rate, threads: threads, coreShare: probe.coreShare) { lines.append("\(program): WARNING: \(warning)") }
        for (kernel, verdict) in choice.verdicts where !verdict.isCorrect {
            lines.append("\(program): note: kernel \(kernel) skipped: \(verdict)")
        }
        return lines
    }

    /// Below this share of its threads' cores during a probe, a process was competing for them.
    public static let busyShare = 0.8

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
    /// worth of FLOPs per cycle at the reported clock) while the process had its cores
    /// (`coreShare`, `sgemmProbe`'s), or the kernel is SSE-class on an AVX2+ CPU.
    public static func speedWarning(_ choice: KernelChoice, rate: Double, threads: Int, coreShare: Double = 1) -> String? {
        let level = choice.cpu.vectorLevel
        let expected = Double(threads) * choice.cpu.megahertz / 1000 * level.floorFlopsPerCycle
        let name = choice.runningName
        if choice.runningLevel != .unknown, choice.runningLevel < .avx, level >= .avx2 {
            return "OpenBLAS runs its \(name) (\(choice.runningLevel)) kernel on a CPU with \(level): matrix products run several times "
                + "slower than they could (sgemm \(Int(rate)) GFLOP/s). Run 'redi-ps doctor' and see the README's 'Speed'."
        }
        // A rate measured while other processes held the cores says nothing about the kernel.
        if expected > 0, rate < 0.4 * expected, coreShare >= busyShare {
            return "sgemm runs at \(Int(rate)) GFLOP/s, under 40% of the ~\(Int(expected)) GFLOP/s \(threads) cores of \(level) "
                + "at \(Int(choice.cpu.megahertz)) MHz sustain (kernel \(name)), though this process had its cores: "
                + "the CPU may be throttled or shared by the hypervisor. Run 'redi-ps doctor'."
        }
        return nil
    }

    /// Best of `repeats` timed sgemm calls of `shape` (after one warm-up), in GFLOP/s, at the
    /// current thread count: the machine's own limit that MFU figures are measured against.
    public static func sgemmRate(_ shape: MatmulShape, repeats: Int = 3) -> Double { sgemmProbe(shape, repeats: repeats).rate }

    /// `sgemmRate`, and the share of its BLAS threads' cores the process had meanwhile (its CPU
    /// time over wall time × threads, at most 1): well under 1 when other processes competed.
    public static func sgemmProbe(_ shape: MatmulShape, repeats: Int = 3) -> (rate: Double, coreShare: Double) {
        ensureStarted()
        let (m, n, k) = (Int32(shape.m), Int32(shape.n), Int32(shape.k))
        let a = [Float](repeating: 0.5, count: shape.m * shape.k), b = [Float](repeating: 0.25, count: shape.k * shape.n)
        var c = [Float](repeating: 0, count: shape.m * shape.n)
        var best = Double.infinity, wall = 0.0, cpu = 0.0
        for i in 0...repeats {
            let t0 = DispatchTime.now().uptimeNanoseconds, cpu0 = processCPUSeconds()
            cblas_sgemm(
                CblasRowMajor, shape.transposeA ? CblasTrans : CblasNoTrans, shape.transposeB ? CblasTrans : CblasNoTrans, m, n, k, 1,
                a, shape.transposeA ? m : k, b, shape.transposeB ? k : n, 0, &c, n)
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            if i > 0 { best = min(best, dt); wall += dt; cpu += processCPUSeconds() - cpu0 }
        }
        let share = wall > 0 ? min(1, cpu / (wall * Double(max(1, OpenBLASRuntime.threads)))) : 1
        return (shape.flops / best / 1e9, share)
    }

    /// CPU time of every thread of this process so far.
    private static func processCPUSeconds() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
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
