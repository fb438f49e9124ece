// Which OpenBLAS kernel this process runs, and the one line it logs about it. The policy:
// an OPENBLAS_CORETYPE or OPENBLAS_L2_SIZE the environment sets is never changed (some
// processors need a preset one); otherwise the fastest kernel the CPU's features qualify for
// that passes the self-test, the verdicts cached per CPU and OpenBLAS build.
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// How the running kernel came to be chosen, and what was found on the way.
public struct KernelChoice: Sendable {
    public enum Reason: Sendable, Equatable {
        /// The first candidate that passed the self-test (`cached`: verdicts from an earlier run).
        case selfTested(cached: Bool)
        /// `OPENBLAS_CORETYPE` / `OPENBLAS_L2_SIZE` set by the environment: kept as they are.
        case presetByEnvironment(String)
        /// `REDI_PS_BLAS_KERNEL` named it.
        case requested
        /// OpenBLAS's own choice, kept: the build cannot switch, no candidate passed, or `REDI_PS_BLAS_KERNEL=openblas`.
        case openBLASDefault(String)
    }

    public var cpu: CPUFeatures
    /// The kernel running now, as OpenBLAS reports it.
    public var running: String
    public var reason: Reason
    /// Candidates in the order tried, with their verdicts (those after the chosen one untried).
    public var verdicts: [(kernel: KernelName, verdict: KernelVerdict)]
    /// The best kernel the features qualify for (whether or not it runs).
    public var bestForFeatures: KernelName?

    public init(
        cpu: CPUFeatures, running: String, reason: Reason, verdicts: [(kernel: KernelName, verdict: KernelVerdict)],
        bestForFeatures: KernelName?
    ) {
        self.cpu = cpu
        self.running = running
        self.reason = reason
        self.verdicts = verdicts
        self.bestForFeatures = bestForFeatures
    }

    /// The self-test's verdict on the running kernel, if it was tested.
    public var runningVerdict: KernelVerdict? { verdicts.first { $0.kernel.name.lowercased() == running.lowercased() }?.verdict }

    /// The running kernel as `OPENBLAS_CORETYPE` spells it ("Haswell"), or as OpenBLAS reports it.
    public var runningName: String { KernelName.named(running)?.name ?? running }

    /// The running kernel's vector class, if it is one this module knows.
    public var runningLevel: VectorLevel { KernelName.named(running)?.level ?? .unknown }
}

/// Chooses and switches the kernel; see the file comment for the policy.
public enum KernelChooser {
    /// - Parameters:
    ///   - environment: the process's environment (the variables above and `REDI_PS_BLAS_KERNEL`).
    ///   - cacheDirectory: where verdicts are kept (nil: not cached).
    ///   - faults: injected into the self-test of the named kernels (tests only; nothing is cached then).
    ///   - apply: switch this process to the kernel chosen (false: only decide, as tests do).
    ///   - probeTimeout: seconds one self-test may take.
    public static func choose(
        cpu: CPUFeatures = .current(), environment: [String: String] = ProcessInfo.processInfo.environment,
        cacheDirectory: URL? = defaultCacheDirectory(), faults: [KernelName: InjectedFault] = [:],
        apply: Bool = true, probeTimeout: Double = 60
    ) -> KernelChoice {
        let candidates = candidateKernels(for: cpu).filter(OpenBLASRuntime.has)
        var choice = KernelChoice(
            cpu: cpu, running: OpenBLASRuntime.coreName, reason: .openBLASDefault(""), verdicts: [],
            bestForFeatures: candidates.first)
        let preset = ["OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"].compactMap { name in
            environment[name].flatMap { $0.isEmpty ? nil : "\(name)=\($0)" }
        }
        let cache = faults.isEmpty ? cacheDirectory.map { VerdictCache(directory: $0, cpu: cpu) } : nil
        /// The cached verdict, else a fresh self-test (then cached).
        func verdict(_ kernel: KernelName) -> (KernelVerdict, cached: Bool) {
            if let found = cache?.lookup(kernel) { return (found, true) }
            let found = KernelProbe.verify(kernel, fault: faults[kernel], timeout: probeTimeout)
            cache?.store(kernel, found)
            return (found, false)
        }
        if !preset.isEmpty {
            // Kept; still self-tested (in a child, cached) so a wrong preset is said out loud.
            choice.reason = .presetByEnvironment(preset.joined(separator: " "))
            if let running = KernelName.named(choice.running) { choice.verdicts = [(running, verdict(running).0)] }
            return choice
        }
        guard OpenBLASRuntime.canSwitchKernels else {
            choice.reason = .openBLASDefault("this OpenBLAS cannot switch kernels (not a DYNAMIC_ARCH build)")
            return choice
        }
        var order = candidates
        let requested = environment["REDI_PS_BLAS_KERNEL"].flatMap { $0.isEmpty || $0.lowercased() == "auto" ? nil : $0 }
        if let requested {
            if requested.lowercased() == "openblas" {
                choice.reason = .openBLASDefault("REDI_PS_BLAS_KERNEL=openblas")
                return choice
            }
            guard let kernel = KernelName.named(requested), OpenBLASRuntime.has(kernel) else {
                let known = KernelName.known.filter(OpenBLASRuntime.has).map(\.name).joined(separator: ", ")
                choice.reason = .openBLASDefault("REDI_PS_BLAS_KERNEL=\(requested) is not a kernel of this OpenBLAS (it has \(known))")
                return choice
            }
            order = [kernel]
        }
        for kernel in order {
            let (found, cached) = verdict(kernel)
            choice.verdicts.append((kernel, found))
            if found.isCorrect, !apply || OpenBLASRuntime.switchKernel(to: kernel) {
                choice.running = apply ? OpenBLASRuntime.coreName : kernel.name.lowercased()
                choice.reason = requested != nil ? .requested : .selfTested(cached: cached)
                return choice
            }
        }
        choice.reason = .openBLASDefault(
            order.isEmpty
                ? "no kernel of this OpenBLAS matches the CPU's features"
                : "no candidate passed the self-test")
        return choice
    }

    /// `$REDI_PS_CACHE_DIR`, else `$XDG_CACHE_HOME/redi-ps`, else `~/.cache/redi-ps`.
    public static func defaultCacheDirectory() -> URL? {
        let env = ProcessInfo.processInfo.environment
        if let dir = env["REDI_PS_CACHE_DIR"], !dir.isEmpty { return URL(fileURLWithPath: dir) }
        if let dir = env["XDG_CACHE_HOME"], !dir.isEmpty { return URL(fileURLWithPath: dir).appendingPathComponent("redi-ps") }
        if let home = env["HOME"], !home.isEmpty { return URL(fileURLWithPath: home).appendingPathComponent(".cache/redi-ps") }
        return nil
    }
}

/// Self-test verdicts kept on disk, one file per (CPU features, OpenBLAS build), so each process
/// after the first starts in microseconds. A file that cannot be read or parsed is ignored and
/// rewritten; writes go through a temporary file and a rename, so concurrent starts are safe.
struct VerdictCache {
    struct Entry: Codable { var kernel: KernelName; var verdict: KernelVerdict }
    struct File: Codable { var cpu: String; var features: String; var openblas: String; var verdicts: [Entry] }

    let url: URL
    let cpu: CPUFeatures

    init(directory: URL, cpu: CPUFeatures) {
        self.cpu = cpu
        let key = fnv1a([cpu.fingerprint, OpenBLASRuntime.buildIdentity, OpenBLASRuntime.libraryIdentity].joined(separator: "|"))
        url = directory.appendingPathComponent("blas-kernel-\(key).json")
    }

    private func read() -> File? {
        guard let data = try? Data(contentsOf: url), data.count < 1 << 20 else { return nil }
        return try? JSONDecoder().decode(File.self, from: data)
    }

    func lookup(_ kernel: KernelName) -> KernelVerdict? { read()?.verdicts.first { $0.kernel == kernel }?.verdict }

    func store(_ kernel: KernelName, _ verdict: KernelVerdict) {
        // A timeout may be a busy machine, not the kernel: test it again next time.
        guard verdict != .timedOut else { return }
        var file = read() ?? File(cpu: cpu.modelName, features: cpu.kernelFeatures, openblas: OpenBLASRuntime.buildIdentity, verdicts: [])
        file.verdicts.removeAll { $0.kernel == kernel }
        file.verdicts.append(Entry(kernel: kernel, verdict: verdict))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        guard let data = try? encoder.encode(file) else { return }
        let directory = url.deletingLastPathComponent()
        try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let temporary = directory.appendingPathComponent(".\(url.lastPathComponent).\(getpid())")
        guard (try? data.write(to: temporary)) != nil else { return }
        if rename(temporary.path, url.path) != 0 { try? FileManager.default.removeItem(at: temporary) }
    }
}
