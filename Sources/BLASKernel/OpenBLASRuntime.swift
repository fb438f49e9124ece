// The OpenBLAS internals redi-ps reaches past its public API, looked up at run time so a build
// without them (not DYNAMIC_ARCH, or not threaded) still runs with what it has: switching the
// kernel family in a running process, and restarting the thread pool. Every call into them is
// in this file.
import COpenBLAS
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The OpenBLAS this process is linked with.
public enum OpenBLASRuntime {
    private typealias VoidFunction = @convention(c) () -> Void
    private typealias IntFunction = @convention(c) () -> Int32

    private static func symbol(_ name: String) -> UnsafeMutableRawPointer? {
        dlsym(UnsafeMutableRawPointer(bitPattern: 0), name)  // RTLD_DEFAULT: every loaded library
    }
    private static func voidFunction(_ name: String) -> VoidFunction? { symbol(name).map { unsafeBitCast($0, to: VoidFunction.self) } }
    private static func intFunction(_ name: String) -> IntFunction? { symbol(name).map { unsafeBitCast($0, to: IntFunction.self) } }

    /// The kernel family running now, as OpenBLAS names it (`openblas_get_corename`, lower case, e.g. "skylakex").
    public static var coreName: String { String(cString: openblas_get_corename()) }

    /// OpenBLAS's build description (`openblas_get_config`), e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64".
    public static var config: String { String(cString: openblas_get_config()) }

    /// "OpenBLAS 0.3.21": the first two words of `config`.
    public static var version: String { config.split(separator: " ").prefix(2).joined(separator: " ") }

    /// The build description without the running kernel's name: what identifies this build.
    static var buildIdentity: String {
        let core = coreName.lowercased()
        return config.split(separator: " ").filter { $0.lowercased() != core }.joined(separator: " ")
    }

    /// The shared library's path, from the process's memory map ("" when not found).
    public static var libraryPath: String {
        let maps = String(decoding: FileHandle(forReadingAtPath: "/proc/self/maps")?.readDataToEndOfFile() ?? Data(), as: UTF8.self)
        guard let line = maps.split(separator: "\n").first(where: { $0.contains("libopenblas") }),
            let slash = line.firstIndex(of: "/")
        else { return "" }
        return String(line[slash...])
    }

    /// The shared library's path and size, so a different OpenBLAS gets its own cached verdict.
    static var libraryIdentity: String {
        let size = (try? FileManager.default.attributesOfItem(atPath: libraryPath))?[.size] as? Int ?? 0
        return "\(libraryPath) \(size)"
    }

    /// Whether this OpenBLAS can change its kernel family at run time (a DYNAMIC_ARCH build).
    public static var canSwitchKernels: Bool {
        ["gotoblas_dynamic_init", "gotoblas_dynamic_quit", "blas_thread_shutdown_", "blas_thread_init"].allSatisfy { symbol($0) != nil }
    }

    /// Whether this OpenBLAS build carries `kernel`.
    public static func has(_ kernel: KernelName) -> Bool { symbol(kernel.tableSymbol) != nil }

    /// Makes `kernel` the one every later product runs, through OpenBLAS's own start-up path
    /// (`gotoblas_dynamic_init` reading `OPENBLAS_CORETYPE`, which is set only for the call and
    /// restored after, so child processes inherit the environment unchanged).
    ///
    /// Call with no product in flight (it restarts the thread pool). It does not check that the
    /// kernel runs correctly here: that is `KernelProbe`'s job, in a child process.
    /// - Returns: whether OpenBLAS now reports `kernel` as its core.
    @discardableResult
    public static func switchKernel(to kernel: KernelName) -> Bool {
        if coreName.lowercased() == kernel.name.lowercased() { return true }
        guard canSwitchKernels, has(kernel),
            let quit = voidFunction("gotoblas_dynamic_quit"), let initialize = voidFunction("gotoblas_dynamic_init"),
            let shutdown = intFunction("blas_thread_shutdown_"), let startThreads = intFunction("blas_thread_init")
        else { return false }
        let previous = getenv("OPENBLAS_CORETYPE").map { String(cString: $0) }
        _ = shutdown()
        quit()
        setenv("OPENBLAS_CORETYPE", kernel.name, 1)
        initialize()
        if let previous { setenv("OPENBLAS_CORETYPE", previous, 1) } else { unsetenv("OPENBLAS_CORETYPE") }
        _ = startThreads()
        return coreName.lowercased() == kernel.name.lowercased()
    }

    /// Makes OpenBLAS's idle worker threads go to sleep after ~2^12 cycles instead of spinning on
    /// `sched_yield` for ~2^28 (its default, fixed when the library loads). Between products the
    /// same cores run redi-ps's own threaded passes (attention, norms, SwiGLU, sampling), and a
    /// spinning BLAS worker takes its core from them: on 2 cores, SmolLM2-135M decoding at batch 32
    /// ran 267 → 297 tokens/s and a training step 186 → 216 tokens/s with this (`redi-bench`).
    /// Waking a sleeping worker costs microseconds per product, far below a product's time.
    /// An `OPENBLAS_THREAD_TIMEOUT` the user set is kept. Restarts the thread pool.
    public static func letIdleThreadsSleep() {
        guard let readEnvironment = voidFunction("openblas_read_env"), let shutdown = intFunction("blas_thread_shutdown_"),
            let startThreads = intFunction("blas_thread_init")
        else { return }
        setenv("OPENBLAS_THREAD_TIMEOUT", "12", 0)
        readEnvironment()
        _ = shutdown()
        _ = startThreads()
    }

    /// Threads OpenBLAS uses for each product.
    public static var threads: Int { Int(openblas_get_num_threads()) }
}
