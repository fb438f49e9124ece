// What this processor can run, read the way the kernel's own scheduler sees it: the flags
// /proc/cpuinfo lists are the CPUID bits the OS also enabled (AVX-512 needs the OS to save
// its registers), so they, not the model name a VM may mask, decide which BLAS kernels qualify.
import Foundation

/// The processor's identity and instruction-set features, as /proc/cpuinfo reports them.
public struct CPUFeatures: Sendable, Equatable {
    public enum Architecture: String, Sendable { case x86_64, aarch64, other }

    public var architecture: Architecture
    /// `vendor_id` on x86 (`GenuineIntel`, `AuthenticAMD`); `CPU implementer` on Arm.
    public var vendor: String
    /// `model name` (often masked in VMs, e.g. "Intel(R) Xeon(R) Processor").
    public var modelName: String
    /// `cpu family` and `model` on x86; `CPU part` on Arm.
    public var family: String, model: String
    /// `flags` on x86, `Features` on Arm.
    public var flags: Set<String>
    /// `cpu MHz` of the first processor (the nominal clock in most VMs), 0 when absent.
    public var megahertz: Double
    /// Processors listed.
    public var processors: Int

    public init(
        architecture: Architecture, vendor: String = "", modelName: String = "", family: String = "", model: String = "",
        flags: Set<String>, megahertz: Double = 0, processors: Int = 1
    ) {
        self.architecture = architecture
        self.vendor = vendor
        self.modelName = modelName
        self.family = family
        self.model = model
        self.flags = flags
        self.megahertz = megahertz
        self.processors = processors
    }

    /// Parses the text of /proc/cpuinfo (the first processor's fields; every processor is counted).
    public init(cpuinfo: String, architecture: Architecture) {
        var fields: [String: String] = [:]
        var processors = 0
        for line in cpuinfo.split(separator: "\n", omittingEmptySubsequences: true) {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let key = line[..<colon].trimmingCharacters(in: .whitespaces)
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            if key == "processor" { processors += 1 }
            if fields[key] == nil { fields[key] = value }
        }
        let flagText = fields["flags"] ?? fields["Features"] ?? ""
        self.init(
            architecture: architecture,
            vendor: fields["vendor_id"] ?? fields["CPU implementer"] ?? "",
            modelName: fields["model name"] ?? "",
            family: fields["cpu family"] ?? fields["CPU architecture"] ?? "",
            model: fields["model"] ?? fields["CPU part"] ?? "",
            flags: Set(flagText.split(separator: " ").map(String.init)),
            megahertz: Double(fields["cpu MHz"] ?? "") ?? 0,
            processors: max(1, processors))
    }

    /// This machine's processor (empty flags where /proc/cpuinfo cannot be read).
    public static func current() -> CPUFeatures {
        #if arch(x86_64)
        let architecture = Architecture.x86_64
        #elseif arch(arm64)
        let architecture = Architecture.aarch64
        #else
        let architecture = Architecture.other
        #endif
        let text = String(decoding: FileHandle(forReadingAtPath: "/proc/cpuinfo")?.readDataToEndOfFile() ?? Data(), as: UTF8.self)
        return CPUFeatures(cpuinfo: text, architecture: architecture)
    }

    public func has(_ flag: String) -> Bool { flags.contains(flag) }

    /// The widest vector instruction set matrix products can use here.
    public var vectorLevel: VectorLevel {
        switch architecture {
        case .x86_64:
            if ["avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"].allSatisfy(has) { return .avx512 }
            if has("avx2") && has("fma") { return .avx2 }
            if has("avx") { return .avx }
            return .sse
        case .aarch64: return has("sve") ? .sve : .neon
        case .other: return .unknown
        }
    }

    /// The features that decide the kernel, for logs and reports (e.g. "avx2 fma avx512f avx512bw avx512vl avx512_bf16").
    public var kernelFeatures: String {
        let relevant = [
            "sse3", "pni", "ssse3", "sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd",
            "avx512_bf16", "amx_bf16", "asimd", "asimddp", "sve", "sve2", "bf16"
        ]
        return relevant.filter(has).joined(separator: " ")
    }

    /// A stable digest of what decides the kernel and its verdict: architecture, vendor, family, model, flags.
    public var fingerprint: String {
        let text = [architecture.rawValue, vendor, family, model, flags.sorted().joined(separator: " ")].joined(separator: "|")
        return fnv1a(text)
    }
}

/// Vector instruction-set classes, in increasing width.
public enum VectorLevel: Int, Sendable, Comparable, CustomStringConvertible {
    case unknown, sse, avx, avx2, avx512, neon, sve
    public static func < (a: VectorLevel, b: VectorLevel) -> Bool { a.rawValue < b.rawValue }
    public var description: String {
        switch self {
        case .unknown: "unknown"
        case .sse: "SSE"
        case .avx: "AVX"
        case .avx2: "AVX2+FMA"
        case .avx512: "AVX-512"
        case .neon: "NEON"
        case .sve: "SVE"
        }
    }
    /// Single-precision FLOPs per cycle per core every processor of this class sustains in
    /// sgemm at least (one 2-wide FMA port set: AVX-512 and AVX2 cores run 2 FMAs of 256 bits,
    /// some AVX-512 cores 2 of 512): the floor for "far below what the features allow".
    var floorFlopsPerCycle: Double {
        switch self {
        case .avx512, .avx2: 32
        case .avx: 16
        case .sse, .neon, .sve: 8
        case .unknown: 0
        }
    }
}

/// 64-bit FNV-1a of `text`, as 16 hex digits.
func fnv1a(_ text: String) -> String {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in text.utf8 { h = (h ^ UInt64(byte)) &* 0x100_0000_01b3 }
    return String(h, radix: 16).leftPadded(to: 16)
}

extension String {
    func leftPadded(to width: Int) -> String { count >= width ? self : String(repeating: "0", count: width - count) + self }
}
